"""How the command line imports TensorFlow (demogen/console.py): without its start-up lines, and
with Keras's and matplotlib's configuration in demogen's cache folder unless the user has one."""

import pathlib
import subprocess
import sys

from user_env import SETTINGS, files_under, fresh_home

from demogen import console


def test_the_python_example_imports_tensorflow_quietly_and_writes_only_the_cache(tmp_path):
    home, tmp, env = fresh_home(tmp_path)
    code = ("import os\n"
            "from demogen.console import import_tensorflow\n"
            "import_tensorflow()\n"
            "from demogen import margin_signature\n"
            "print(os.environ.get('KERAS_HOME'))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr == ""
    assert run.stdout == "None\n"  # set only while TensorFlow imported: the user's is read after
    assert "keras/keras.json" in files_under(home / ".cache" / "demogen")
    assert all(name.startswith(".cache/demogen/") for name in files_under(home))
    assert files_under(tmp) == []


def test_a_command_that_runs_models_is_quiet(tmp_path):
    _, tmp, env = fresh_home(tmp_path)
    code = ("import sys\nfrom demogen.cli import main\n"
            f"status = main(['signature', {str(tmp / 'none')!r}])\n"
            "print(status, 'tensorflow' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.stdout == "2 True\n", run.stderr[-2000:]
    assert run.stderr == f"demogen: error: tasks folder {tmp / 'none'} does not exist\n"


def test_a_configuration_of_the_users_is_read_where_it_is(tmp_path, monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = tmp_path / ".cache" / "demogen"
    assert console.cache_folder() == cache
    assert console.redirected_settings() == {"KERAS_HOME": str(cache / "keras"),
                                             "MPLCONFIGDIR": str(cache / "matplotlib")}
    (tmp_path / ".keras").mkdir()
    (tmp_path / ".keras" / "keras.json").write_text("{}")
    (tmp_path / "config" / "matplotlib").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert console.redirected_settings() == {}
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "mine"))
    assert console.redirected_settings() == {
        "MPLCONFIGDIR": str(pathlib.Path(tmp_path / "xdg" / "demogen" / "matplotlib"))}
