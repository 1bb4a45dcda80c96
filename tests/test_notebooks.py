"""The notebooks run from top to bottom against the committed tables, and are committed
without outputs."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_is_committed_clean(path):
    notebook = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") or cell.get("execution_count")
                   for cell in notebook.cells if cell.cell_type == "code"), \
        f"{path.name} holds outputs: clear them before committing"
    # without PYTEST_CURRENT_TEST, in whose presence ipykernel shows nothing written to fd 2
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    start_up = ("absl::InitializeLog", "cudart", "cpu_feature_guard", "oneDNN")
    assert not [o.text for o in outputs if o.output_type == "stream"
                and any(line in o.text for line in start_up)]  # TensorFlow's start-up lines
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) == 2  # the two figures


def test_there_are_notebooks():
    assert NOTEBOOKS


def test_the_committed_transfer_result_matches_its_tables():
    """notebooks/transfer.ipynb reads results/evaluate.json: its input tables must be the
    committed ones (else run `demogen evaluate ... --out results/evaluate.json` again)."""
    import json

    from demogen_fit import candidates, tables

    root = pathlib.Path(__file__).parents[1]
    result = json.loads((root / "results" / "evaluate.json").read_text())
    assert result["sources"]
    for source, digest in result["sources"].items():
        assert tables.file_digest([root / source]) == digest, source
    assert set(result["candidates"]) <= set(candidates.CANDIDATES)
    assert result["selected"] in result["candidates"]
