"""The `demogen` command line."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import keras, layers, randomize

from demogen import margin_signature
from demogen.cli import main
from demogen.competition import pgdl


def tiny_model(seed):
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(3, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(8, activation="relu"),
                              layers.Dense(3)])
    return randomize(model, seed)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    pgdl.write_dataset(root / "dataset_1" / "train", x, y, n_shards=2)
    for model_id in (0, 1, 10):
        pgdl.write_model(root / f"model_{model_id}", tiny_model(model_id), (6, 6, 1))
    return root


def test_signature_json_matches_the_library(task, capsys):
    assert main(["signature", str(task), "--json", "--n-examples", "30"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["model_id"] for r in results] == ["0", "1", "10"]
    dataset = pgdl.load_dataset(task)
    for result in results:
        expected = margin_signature(pgdl.load_model(task, result["model_id"]), dataset,
                                    n_examples=30)
        assert result["layers"] == expected.layers == ["input", "0:Conv2D", "2:Dense", "2:Dense"]
        np.testing.assert_allclose(result["signature"], expected.values, rtol=1e-6)
        assert len(result["signature"]) == 20


def test_signature_reads_a_task_s_sample_once_for_all_its_models(task, capsys, monkeypatch):
    from demogen.measure import sampling

    reads = []
    read = sampling._from_dataset
    monkeypatch.setattr(sampling, "_from_dataset", lambda *a: reads.append(a) or read(*a))
    sampling.clear_cache()
    pgdl._task_dataset.cache_clear()
    assert main(["signature", str(task), "--json", "--n-examples", "30"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3 and len(reads) == 1


def test_signature_options_and_model_selection(task, capsys):
    args = ["signature", str(task), "--model", "model_10", "1", "--json", "--signed",
            "--unnormalized", "--statistic", "moment", "--layers", "0", "1", "2:Dense"]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["model_id"] for r in results] == ["10", "1"]
    settings = results[0]["settings"]
    assert (settings["signed"], settings["normalize"], settings["statistic"]) == \
        (True, False, "moment")
    assert results[0]["layers"] == ["input", "0:Conv2D", "1:Flatten", "2:Dense"]
    assert results[0]["names"][-1] == "h3.m5"


def test_text_output(task, capsys):
    assert main(["signature", str(task), "--model", "0"]) == 0
    out = capsys.readouterr().out
    assert "model 0" in out and "lower_fence" in out and "h3 2:Dense" in out
    assert "n_sampled 50" in out and "n_used" in out
    signature = margin_signature(pgdl.load_model(task, "0"), pgdl.load_dataset(task))
    h3 = next(line for line in out.splitlines() if "h3 2:Dense" in line)
    assert h3.split()[2] == str(signature.n_used[3])  # the margins its statistics used


def test_unknown_model_and_missing_task(task, tmp_path, capsys):
    assert main(["signature", str(task), "--model", "7"]) == 2
    assert "no model 7" in capsys.readouterr().err
    assert main(["signature", str(tmp_path)]) == 2
    assert "model_" in capsys.readouterr().err


def test_a_failing_model_is_reported_and_the_others_still_run(task, tmp_path, capsys):
    broken = tmp_path / "task"
    pgdl.write_dataset(broken / "dataset_1" / "train", *pgdl_data(task))
    pgdl.write_model(broken / "model_0", tiny_model(0), (6, 6, 1))
    bad = tiny_model(1)
    bad.layers[0].set_weights([np.full((3, 3, 1, 3), np.nan, np.float32), np.zeros(3, np.float32)])
    pgdl.write_model(broken / "model_1", bad, (6, 6, 1))
    assert main(["signature", str(broken), "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert "signature" in results[0] and "NaN" in results[1]["error"]


def pgdl_data(task):
    pairs = list(pgdl.load_dataset(task).as_numpy_iterator())
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def test_console_entry_point_runs(task):
    run = subprocess.run([sys.executable, "-m", "demogen.cli", "signature", str(task), "--model",
                          "0", "--json", "--n-examples", "30"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(json.loads(run.stdout)[0]["signature"]) == 20


def test_unknown_zoo_preset_is_a_clear_error(capsys, tmp_path):
    assert main(["zoo", "--preset", "huge", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'huge'; choose one of ['corpus', 'corpus_lockbox', 'demo', 'lockbox2', 'nin', 'tiny', 'vgg']" in capsys.readouterr().err


def test_signature_reads_a_folder_of_task_folders(task, tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).symlink_to(task, target_is_directory=True)
    assert main(["signature", str(tmp_path), "--json", "--n-examples", "30"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["task"], r["model_id"]) for r in results] == \
        [(t, m) for t in ("a", "b") for m in ("0", "1", "10")]
    assert [r["signature"] for r in results[:3]] == [r["signature"] for r in results[3:]]
    assert main(["signature", str(tmp_path), "--model", "1", "--n-examples", "30"]) == 0
    out = capsys.readouterr().out
    assert "a/model_1 (n_sampled 30" in out and "b/model_1 (n_sampled 30" in out


def test_zoo_help_lists_the_presets_of_the_code_and_the_workers_default(capsys):
    from demogen_fit.presets import PRESETS

    with pytest.raises(SystemExit):
        main(["zoo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    names = [name + (" (scratch)" if preset.scratch else "")
             for name, preset in sorted(PRESETS.items())]
    assert f"--preset NAME the pool to train: {', '.join(names)} --task" in help_text
    assert "tiny (scratch)" in names and "demo (scratch)" in names and "nin" in names
    assert "one thread each (default 2)" in help_text
