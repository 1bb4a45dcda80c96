"""The PGDL submission zip: complexity.py, metadata and coefficients.json at the root, and only the
demogen modules the predictor imports (found by walking its imports), with the __init__.py of
their packages."""

import ast
import pathlib
import zipfile

from demogen.competition.pgdl import atomic_path
from demogen.defaults import SHIPPED_PREDICTORS
from demogen.frozen import coefficients

PACKAGE = pathlib.Path(__file__).parents[1]
COMPLEXITY_PY = '''"""PGDL submission: demogen's frozen margin-signature predictor of the gap."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from demogen.frozen.predictor import complexity as _complexity  # noqa: E402


def complexity(model, ds, program_dir=None):
    return _complexity(model, ds, program_dir or HERE)
'''
METADATA = "description: demogen margin-signature predictor (Jiang et al., ICLR 2019)\n"


def _module_file(name):
    """The file of the demogen module or package of dotted name `name`, relative to the package
    folder; None where `name` is not one (another package's, or a name a module defines)."""
    parts = name.split(".")
    if parts[0] != "demogen":
        return None
    where = PACKAGE.joinpath(*parts[1:])
    for path in [where / "__init__.py"] + ([where.with_suffix(".py")] if len(parts) > 1 else []):
        if path.is_file():
            return path.relative_to(PACKAGE).as_posix()
    return None


def _imports(path):
    """Files (relative to the package folder) of the demogen modules imported anywhere in a module
    (module level or inside functions)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            module = _module_file(name)
            if module is not None:
                yield module


def runtime_modules(root="demogen.frozen.predictor"):
    """Files (relative to the package folder) of the demogen modules `root` needs, with the
    __init__.py of the package and of every subpackage on the way to each."""
    needed, todo = set(), [_module_file(root)]
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo += _imports(PACKAGE / module)
            todo += [(parent / "__init__.py").as_posix()
                     for parent in pathlib.PurePosixPath(module).parents]
    return sorted(needed)


def write_bundle(out_zip, coefficients_path=None, predictor=SHIPPED_PREDICTORS[0]):
    """Write the submission zip atomically with the predictor file at `coefficients_path`, or
    else the shipped `predictor` (validated first); returns the names it holds."""
    coefficients.load(coefficients_path, predictor)
    text = (coefficients.shipped_text(predictor) if coefficients_path is None
            else pathlib.Path(coefficients_path).read_text(encoding="utf-8"))
    files = {"complexity.py": COMPLEXITY_PY, "metadata": METADATA, "coefficients.json": text}
    for module in runtime_modules():
        files[f"demogen/{module}"] = (PACKAGE / module).read_text(encoding="utf-8")
    out_zip = pathlib.Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return sorted(files)
