"""Bad input through the command line: the message names the file, the model or the argument and
says what to do; a broken model fails alone; nothing is created for a refused run; help and
argument errors do not import TensorFlow."""

import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from pgdl_task import small_cnn

from demogen.cli import main
from demogen.competition import pgdl
from demogen.competition.ingest import ingest

# Model id -> the error its broken files give, in `demogen signature` and in `demogen ingest`.
BROKEN = {
    "1": r"model_1/weights\.hdf5 is not readable HDF5 \(.*truncated file.*\); the file is "
         "truncated or corrupt: copy it again",
    "2": r"model_2/weights\.hdf5 is not readable HDF5 \(.*file signature not found.*\); the file "
         "is truncated or corrupt",
    "3": r"model_3/weights\.hdf5 does not match config\.json \(Layer count mismatch.*\); the "
         "weights belong to another architecture",
    "4": r"model_4/config\.json is not valid JSON \(Expecting value: line 3 column 1 .*\); the "
         "file is truncated or corrupt",
    "5": r"model_5/config\.json: layer #1 \(Lambda\): .*may carry code; only if you trust this "
         "task, build it with allow_code_layers=True \(Python\) or --allow-code-layers",
}


def write_task(root, x, y, n_models=1):
    pgdl.write_dataset(root / "dataset_1" / "train", x, y)
    for model_id in range(n_models):
        pgdl.write_model(root / f"model_{model_id}", small_cnn(model_id), (6, 6, 1))
    return root


@pytest.fixture(scope="module")
def broken_task(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = write_task(tmp_path_factory.mktemp("broken") / "task",
                      rng.normal(size=(30, 6, 6, 1)), rng.integers(0, 3, 30), n_models=6)
    weights = root / "model_1" / "weights.hdf5"
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    (root / "model_2" / "weights.hdf5").write_bytes(os.urandom(4000))
    pgdl.write_weights_hdf5(small_cnn(3, depth=2), root / "model_3" / "weights.hdf5")
    config = root / "model_4" / "config.json"
    text = config.read_text()
    config.write_text(text[:text.index(":") + 1] + "\n")
    config = root / "model_5" / "config.json"
    spec = json.loads(config.read_text())
    spec["model_config"].insert(1, {"layer_name": "Lambda", "function": "lambda x: x"})
    config.write_text(json.dumps(spec))
    return root


def test_signature_gives_each_broken_model_its_error_and_runs_the_others(broken_task, capsys):
    assert main(["signature", str(broken_task), "--json", "--n-examples", "20"]) == 1
    results = {r["model_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(results["0"]["signature"]) == 20
    for model_id, message in BROKEN.items():
        assert re.search(message, results[model_id]["error"]), results[model_id]["error"]


def test_ingest_fails_each_broken_model_and_runs_the_others(broken_task, tmp_path):
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "complexity.py").write_text("def complexity(model, ds):\n    return 1.0\n")
    (submission / "metadata").write_text("")
    got = ingest(submission, broken_task, tmp_path / "out", progress=False)["task"]
    assert got["model_0"] == 1.0
    for model_id, message in BROKEN.items():
        value = got[f"model_{model_id}"]
        assert value.startswith("FAILED: the model does not load: ValueError: "), value
        assert re.search(message, value), value


def test_data_that_does_not_fit_the_model_is_the_model_s_error(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = write_task(tmp_path / "labels", rng.normal(size=(10, 6, 6, 1)), np.full(10, 5))
    shape = write_task(tmp_path / "shape", rng.normal(size=(10, 7, 7, 1)), np.zeros(10))
    for task, message in ((labels, r"labels out of range: the model has 3 classes"),
                          (shape, r"inputs have shape \(7, 7, 1\) per example but the model "
                                  r"expects \(6, 6, 1\)")):
        assert main(["signature", str(task), "--json"]) == 1
        assert re.search(message, json.loads(capsys.readouterr().out)[0]["error"])


@pytest.mark.parametrize("names, message", [
    (["2", "0", "1"], r"layers 2:Dense, 0:Conv2D, 1:Flatten are not in forward order"),
    (["0", "1", "3"], r"layer 3:Dense is the logits layer"),
])
def test_layers_out_of_order_or_the_logits_are_refused(broken_task, capsys, names, message):
    assert main(["signature", str(broken_task), "--model", "0", "--json", "--layers",
                 *names]) == 1
    assert re.search(message, json.loads(capsys.readouterr().out)[0]["error"])


@pytest.mark.parametrize("argv, message", [
    (["signature", "t", "--n-examples", "0"], "argument --n-examples: must be at least 2, got 0"),
    (["signature", "t", "--n-examples", "1"], "argument --n-examples: must be at least 2, got 1"),
    (["signature", "t", "--n-examples", "-3"], "must be at least 2, got -3"),
    (["signature", "t", "--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (["signature", "t", "--seed", "-1"], "argument --seed: must be at least 0"),
    (["signature", "t", "--n-examples", "ten"], "argument --n-examples: expected a number"),
    (["ingest", "--submission", "s", "--tasks", "t", "--out", "o", "--budget", "0"],
     "argument --budget: must be above 0, got 0"),
    (["ingest", "--submission", "s", "--tasks", "t", "--out", "o", "--budget", "-5"],
     "argument --budget: must be above 0, got -5"),
    (["ingest", "--submission", "s", "--tasks", "t", "--out", "o", "--budget", "nan"],
     "argument --budget: must be above 0, got nan"),
])
def test_bad_arguments_are_refused_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_and_argument_errors_do_not_import_tensorflow():
    code = ("import sys\nfrom demogen.cli import main\n"
            "for argv in (['--help'], ['signature', '--help'], ['signature'], "
            "['signature', 't', '--n-examples', '1'], ['nonsense']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('result', 'tensorflow' in sys.modules, file=sys.stderr)\n"
            "from demogen import margin_signature, DEFAULTS\n"
            "print('result', 'tensorflow' in sys.modules, DEFAULTS, file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    from demogen.defaults import DEFAULTS
    from demogen.measure.margins import DEFAULTS as EXTRACTOR_DEFAULTS
    assert DEFAULTS == EXTRACTOR_DEFAULTS
    results = [line for line in run.stderr.splitlines() if line.startswith("result ")]
    assert results == ["result False", f"result True {DEFAULTS}"]


def test_tensorflow_start_up_lines_are_silenced_unless_verbose(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-m", "demogen.cli", "score", "--predictions",
                          str(tmp_path), "--tasks", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 2
    assert run.stderr == f"demogen: error: tasks folder {tmp_path / 'none'} does not exist\n"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert main(["--verbose", "score", "--predictions", "p", "--tasks", str(tmp_path)]) == 2
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_ingest_into_an_existing_file_is_refused(broken_task, tmp_path, capsys):
    (tmp_path / "out").write_text("")
    assert main(["ingest", "--submission", str(tmp_path), "--tasks", str(broken_task), "--out",
                 str(tmp_path / "out")]) == 2
    assert f"output folder {tmp_path / 'out'} is an existing file; name a folder" in \
        capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (b"not a zip", "is neither a folder nor a zip file"),
    (None, "has no complexity.py at its root"),
])
def test_a_refused_submission_creates_nothing(broken_task, tmp_path, capsys, content, message):
    submission = tmp_path / "submission.zip"
    if content is None:
        with zipfile.ZipFile(submission, "w") as archive:
            archive.writestr("metadata", "")
    else:
        submission.write_bytes(content)
    assert main(["ingest", "--submission", str(submission), "--tasks", str(broken_task),
                 "--out", str(tmp_path / "out" / "predictions")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_folders_without_models(tmp_path, capsys):
    (tmp_path / "net_0").mkdir()
    assert main(["signature", str(tmp_path)]) == 2
    assert f"{tmp_path} is neither a task folder (with model_* folders or a model_configs.json) " \
           "nor a folder of task folders (it holds ['net_0']); pass the folder of one task, " \
           "whose models are model_<id> folders" in capsys.readouterr().err
    assert main(["ingest", "--submission", str(tmp_path), "--tasks", str(tmp_path), "--out",
                 str(tmp_path / "out")]) == 2
    assert "is neither a task folder (with model_* folders or a model_configs.json) nor a " \
           "folder of task folders" in capsys.readouterr().err


def test_score_names_a_file_that_is_not_json(tmp_path, capsys):
    task = tmp_path / "reference" / "a"
    task.mkdir(parents=True)
    (task / "model_configs.json").write_text("{")
    assert main(["score", "--predictions", str(tmp_path), "--tasks", str(task)]) == 2
    assert f"{task / 'model_configs.json'} is not valid JSON (Expecting" in \
        capsys.readouterr().err
    pgdl.write_json(task / "model_configs.json", {"0": {
        "hparams": {}, "metrics": {"train_acc": 1.0, "test_acc": 0.5}}})
    (tmp_path / "a.predict").write_text('{"model_0": 0.')
    assert main(["score", "--predictions", str(tmp_path), "--tasks", str(task)]) == 2
    assert f"{tmp_path / 'a.predict'} is not valid JSON (Expecting" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("", r"not valid JSON \(Expecting value: line 1 column 1"),
    ("NaN", "coefficients and intercept must be finite numbers"),
])
def test_bundle_refuses_an_empty_or_nan_coefficient_file(tmp_path, capsys, text, message):
    path = tmp_path / "coefficients.json"
    if text == "NaN":
        from demogen.frozen import coefficients
        obj = coefficients.load(predictor="paper_nin").as_dict()
        obj["coefficients"][3] = float("nan")
        text = json.dumps(obj)
    path.write_text(text)
    assert main(["bundle", "--coefficients", str(path), "--out", str(tmp_path / "s.zip")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and re.search(message, err)
    assert not (tmp_path / "s.zip").exists()


def test_an_interrupted_command_says_what_is_kept(monkeypatch, capsys):
    from demogen import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_zoo", interrupted)
    assert cli.main(["zoo", "--preset", "tiny", "--out", "x"]) == 130
    assert "zoo interrupted; what was finished is kept" in capsys.readouterr().err


@pytest.mark.parametrize("keep", [False, True])
def test_the_demo_names_its_folder_and_removes_it_unless_kept(tmp_path, monkeypatch, capsys, keep):
    """Even when a step fails: here training, stopped after it wrote into the folder."""
    import tempfile

    from demogen_fit import zoo

    work = tmp_path / "demo"

    def failing_run(preset, out, **options):
        out.mkdir(parents=True)
        (out / "partial").write_text("")
        raise ValueError("no data")

    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(work.mkdir() or work))
    monkeypatch.setattr(zoo, "run", failing_run)
    assert main(["demo"] + (["--keep"] if keep else [])) == 2
    out = capsys.readouterr().out
    assert f"working in {work}" in out
    assert work.exists() == keep and (f"removed {work}" in out) != keep
