"""The subcommands that run no model never import TensorFlow: each runs in a child process whose
sys.modules is checked afterwards. Scoring, numpy only, is fast."""

import itertools
import json
import resource
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from demogen.competition import pgdl
from demogen_fit import tables

FEATURES = tables.REPOSITORY / "features_cache"
CHILD = ("import json, sys\n"
         "from demogen.cli import main\n"
         "status = main(sys.argv[1:])\n"
         "print(json.dumps({'status': status, 'tensorflow': 'tensorflow' in sys.modules}))\n")


def run_cli(args, cwd):
    """({"status", "tensorflow"}, CPU seconds) of `demogen ARGS` run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True,
                         text=True, cwd=cwd, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert run.returncode == 0, run.stderr[-2000:]
    seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return json.loads(run.stdout.strip().splitlines()[-1]), seconds


def test_score_of_162_models_takes_under_two_seconds_without_tensorflow(tmp_path):
    grid = {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3], "d": [1, 2, 3], "e": [0, 1]}
    rng = np.random.default_rng(0)
    configs, predictions = {}, {}
    for i, values in enumerate(itertools.product(*grid.values())):
        train = float(rng.uniform(0.9, 1.0))
        configs[str(i)] = {
            "hparams": {k: {"current_value": v, "possible_values": grid[k]}
                        for k, v in zip(grid, values)},
            "metrics": {"train_acc": train, "test_acc": train - float(rng.uniform(0, 0.3))}}
        predictions[f"model_{i}"] = float(rng.random())
    assert len(configs) == 162
    pgdl.write_model_configs(tmp_path / "tasks" / "grid", configs)
    (tmp_path / "predictions").mkdir()
    pgdl.write_json(tmp_path / "predictions" / "grid.predict", predictions)
    result, seconds = run_cli(["score", "--predictions", tmp_path / "predictions", "--tasks",
                               tmp_path / "tasks"], tmp_path)
    assert result == {"status": 0, "tensorflow": False}
    assert seconds < 2  # CPU seconds of the whole child process, interpreter start included


def test_evaluate_imports_no_tensorflow(tmp_path):
    corpus = pd.read_csv(FEATURES / "corpus.csv", dtype=str, keep_default_na=False)
    corpus[corpus["task"].isin(["allconv_color", "mlp_digits", "vgg_digits"])].to_csv(
        tmp_path / "three.csv", index=False)
    result, _ = run_cli(["evaluate", tmp_path / "three.csv", "--candidates", "output_margin",
                         "--jobs", "1", "--json"], tmp_path)
    assert result == {"status": 0, "tensorflow": False}


@pytest.mark.parametrize("args", [
    ["fit", FEATURES / "vgg.csv", "--json"],
    ["zoo", "--preset", "corpus", "--describe", "--features", FEATURES],
    ["bundle", "--out", "submission.zip"],
], ids=lambda args: args[0])
def test_commands_on_tables_and_files_import_no_tensorflow(args, tmp_path):
    result, _ = run_cli(args, tmp_path)
    assert result == {"status": 0, "tensorflow": False}
