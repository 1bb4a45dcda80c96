"""The PGDL submission zip: complexity.py, metadata and coefficients.json at the root, and only the
demogen modules the predictor imports (found by walking its imports)."""

import ast
import pathlib
import zipfile

from demogen import coefficients
from demogen.defaults import SHIPPED_PREDICTORS
from demogen.pgdl import atomic_path

PACKAGE = pathlib.Path(__file__).parent
COMPLEXITY_PY = '''"""PGDL submission: demogen's frozen margin-signature predictor of the gap."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from demogen.predictor import complexity as _complexity  # noqa: E402


def complexity(model, ds, program_dir=None):
    return _complexity(model, ds, program_dir or HERE)
'''
METADATA = "description: demogen margin-signature predictor (Jiang et al., ICLR 2019)\n"


def _imports(path):
    """demogen modules imported anywhere in a module (module level or inside functions)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "demogen" and len(parts) > 1 and (PACKAGE / f"{parts[1]}.py").is_file():
                yield parts[1]


def runtime_modules(root="predictor"):
    """Stems of the demogen modules `root` needs, the package's __init__ included."""
    needed, todo = set(), [root, "__init__"]
    while todo:
        stem = todo.pop()
        if stem not in needed:
            needed.add(stem)
            todo += _imports(PACKAGE / f"{stem}.py")
    return sorted(needed)


def write_bundle(out_zip, coefficients_path=None, predictor=SHIPPED_PREDICTORS[0]):
    """Write the submission zip atomically with the predictor file at `coefficients_path`, or
    else the shipped `predictor` (validated first); returns the names it holds."""
    coefficients.load(coefficients_path, predictor)
    text = (coefficients.shipped_text(predictor) if coefficients_path is None
            else pathlib.Path(coefficients_path).read_text(encoding="utf-8"))
    files = {"complexity.py": COMPLEXITY_PY, "metadata": METADATA, "coefficients.json": text}
    for stem in runtime_modules():
        files[f"demogen/{stem}.py"] = (PACKAGE / f"{stem}.py").read_text(encoding="utf-8")
    out_zip = pathlib.Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return sorted(files)
