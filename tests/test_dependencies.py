"""What ships in a submission (demogen's runtime) imports only tensorflow, numpy, h5py and the
standard library; offline packages are imported by the command line inside its subcommands."""

import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).parent.parent / "demogen"
ALLOWED = {"tensorflow", "numpy", "h5py", "demogen"} | set(sys.stdlib_module_names)
OFFLINE = ["demogen_fit", "fit", "statsmodels", "sklearn", "joblib", "tqdm", "matplotlib", "pandas", "scipy",
           "keras", "tf_keras"]


def module_level_imports(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_runtime_modules_import_only_the_allowed_packages():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) >= 5
    bad = {f"{path.relative_to(PACKAGE)}: {name}" for path in modules
           for name in module_level_imports(path) if name not in ALLOWED}
    assert not bad


def test_importing_the_runtime_loads_no_offline_package():
    """Beyond what tensorflow, numpy and h5py load themselves (tensorflow loads keras and scipy)."""
    names = [".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
             for path in PACKAGE.rglob("*.py") if path.stem != "__init__"]
    code = ("import sys, importlib, tensorflow, numpy, h5py\n"
            "before = set(sys.modules)\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            f"print([m for m in {OFFLINE!r} if m in set(sys.modules) - before])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
