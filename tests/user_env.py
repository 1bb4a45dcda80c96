"""The environment of a user with an empty home folder and an empty $TMPDIR, for the tests that
check what demogen writes outside the folders it is given."""

import os

SETTINGS = ("KERAS_HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
            "TF_CPP_MIN_LOG_LEVEL", "DEMOGEN_QUIET", "DEMOGEN_CACHE")


def fresh_home(tmp_path):
    """(home, tmpdir, environment): os.environ without the settings demogen reads, with HOME and
    TMPDIR two new empty folders under `tmp_path`."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return home, tmp, {**env, "HOME": str(home), "TMPDIR": str(tmp)}


def files_under(folder):
    """The files under `folder`, as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
