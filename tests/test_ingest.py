"""Local ingestion and the competition's score: bundle -> ingest -> score, bad submissions, the
budget rule, the directory rule."""

import json
import zipfile

import pytest
from pgdl_task import make_task

from demogen.cli import main
from demogen.competition import pgdl
from demogen.competition.evaluation import score_predictions
from demogen.competition.ingest import ingest

FLAKY = """import os
calls = []
def complexity(model, ds, program_dir=None):
    assert os.path.isfile(os.path.join(program_dir, "metadata"))
    print("noise on stdout")
    if len(model.layers) == 4:
        raise RuntimeError("boom")
    calls.append(model)
    return "abc" if len(calls) == 1 else float(len(model.layers))
"""


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest")
    make_task(root / "input_data" / "a", configs_dir=root / "reference_data" / "a")
    make_task(root / "input_data" / "b", seed=1)
    return root


def folder_submission(path, code, metadata=True):
    path.mkdir()
    (path / "complexity.py").write_text(code)
    if metadata:
        (path / "metadata").write_text("")
    return path


def test_bundle_ingest_score_end_to_end(tasks, tmp_path, capsys):
    assert main(["bundle", "--out", str(tmp_path / "sub.zip")]) == 0
    assert main(["ingest", "--submission", str(tmp_path / "sub.zip"), "--tasks",
                 str(tasks / "input_data"), "--out", str(tmp_path / "pred")]) == 0
    predictions = json.loads((tmp_path / "pred" / "a.predict").read_text())
    assert sorted(predictions) == [f"model_{i}" for i in range(8)]
    assert all(isinstance(v, float) for v in predictions.values())
    capsys.readouterr()
    assert main(["score", "--predictions", str(tmp_path / "pred"), "--tasks",
                 str(tasks / "input_data"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["tasks"]) == {"a", "b"} and result["tasks"]["a"]["n_models"] == 8
    for name in ("cmi", "kendall_tau", "granulated_psi"):
        values = [result["tasks"][t][name] for t in ("a", "b")]
        assert result["mean"][name] == pytest.approx(sum(values) / 2)
    assert 0 <= result["tasks"]["a"]["cmi"] <= 100
    assert main(["score", "--predictions", str(tmp_path / "pred"), "--tasks",
                 str(tasks / "input_data" / "b")]) == 0
    assert "CMI x 100" in capsys.readouterr().out


def test_a_failing_model_is_recorded_the_others_run_and_score_refuses(tasks, tmp_path):
    submission = folder_submission(tmp_path / "flaky", FLAKY)
    got = ingest(submission, tasks / "input_data" / "a", tmp_path / "pred", progress=False)["a"]
    assert all(got[f"model_{i}"] == "FAILED: complexity raised RuntimeError: boom"
               for i in range(4))  # depth 1: four layers
    assert got["model_4"] == "FAILED: complexity returned 'abc' (str), which float() does not " \
                             "convert"
    assert [got[f"model_{i}"] for i in (5, 6, 7)] == [5.0] * 3
    assert json.loads((tmp_path / "pred" / "a.predict").read_text()) == got
    with pytest.raises(ValueError, match="task a, model_0: the submission failed on this model: "
                                         "complexity raised RuntimeError"):
        score_predictions(tmp_path / "pred", tasks / "input_data" / "a")


def test_a_dying_process_fails_only_its_model(tasks, tmp_path):
    code = ("import os\ndef complexity(model, ds, program_dir):\n"
            "    marker = os.path.join(program_dir, 'died')\n"
            "    if not os.path.exists(marker):\n        open(marker, 'w').close()\n"
            "        os._exit(3)\n    return 1.0\n")
    got = ingest(folder_submission(tmp_path / "s", code), tasks / "input_data" / "a",
                 tmp_path / "pred", progress=False)["a"]
    assert got["model_0"].startswith("FAILED: the submission's process died (exit code 3)")
    assert [got[f"model_{i}"] for i in range(1, 8)] == [1.0] * 7


def test_the_budget_rule_exceeds_the_rest_of_the_task_and_every_later_task(tasks, tmp_path):
    code = "def complexity(model, ds):\n    return 1.5\n"
    got = ingest(folder_submission(tmp_path / "s", code), tasks / "input_data", tmp_path / "pred",
                 budget_per_model=0.0, progress=False)
    assert got["a"]["model_0"] == 1.5
    assert set(list(got["a"].values())[1:]) == set(got["b"].values()) == {"EXCEEDED"}
    with pytest.raises(ValueError, match="task a, model_1: EXCEEDED"):
        score_predictions(tmp_path / "pred", tasks / "input_data")


@pytest.mark.parametrize("entry", ["../evil.py", "/abs/evil.py", "sub/../../evil.py"])
def test_zips_with_paths_outside_are_refused_before_extracting(tasks, tmp_path, entry):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("complexity.py", "def complexity(model, ds):\n    return 0.0\n")
        archive.writestr("metadata", "")
        archive.writestr(entry, "")
    with pytest.raises(ValueError, match="refused"):
        ingest(tmp_path / "bad.zip", tasks / "input_data", tmp_path / "pred", progress=False)
    assert not (tmp_path / "pred").exists() or not list((tmp_path / "pred").iterdir())


@pytest.mark.parametrize("missing", ["metadata", "complexity.py"])
def test_a_submission_without_its_entry_point_or_metadata_is_refused(tasks, tmp_path, missing):
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as archive:
        for name in {"complexity.py", "metadata"} - {missing}:
            archive.writestr(name, "")
    assert main(["ingest", "--submission", str(tmp_path / "s.zip"), "--tasks",
                 str(tasks / "input_data"), "--out", str(tmp_path / "pred")]) == 2
    with pytest.raises(ValueError, match=f"has no {missing} at its root"):
        ingest(tmp_path / "s.zip", tasks / "input_data", tmp_path / "pred", progress=False)


def test_model_configs_lookup_order_and_a_missing_one(tasks, tmp_path):
    task = tmp_path / "alone" / "a"
    task.mkdir(parents=True)
    (task / "model_0").mkdir()
    with pytest.raises(FileNotFoundError, match="task a: no model_configs.json; looked in") as info:
        score_predictions(tmp_path, task)
    assert str(task) in str(info.value) and "reference_data" in str(info.value)
    (tmp_path / "a.predict").write_text(json.dumps({"model_0": 0.5}))
    with pytest.raises(ValueError, match="task a, model_1: no prediction"):
        score_predictions(tmp_path, task, reference=tasks / "reference_data")


def test_score_refuses_an_incomplete_grid_and_missing_predictions(tasks, tmp_path):
    configs = json.loads((tasks / "input_data" / "b" / "model_configs.json").read_text())
    pgdl.write_json(tmp_path / "b.predict", {f"model_{i}": float(i) for i in range(7)})
    with pytest.raises(ValueError, match="task b, model_7: no prediction"):
        score_predictions(tmp_path, tasks / "input_data" / "b")
    del configs["7"]
    (tmp_path / "ref" / "b").mkdir(parents=True)
    pgdl.write_json(tmp_path / "ref" / "b" / "model_configs.json", configs)
    (tmp_path / "in" / "b" / "model_0").mkdir(parents=True)
    with pytest.raises(ValueError, match="task b .*grid is incomplete"):
        score_predictions(tmp_path, tmp_path / "in", reference=tmp_path / "ref")


def counting_submission(path, calls):
    """A submission that appends a line to `calls` (outside it, so its digest stays) per model."""
    return folder_submission(path, "def complexity(model, ds):\n"
                                   f"    with open({str(calls)!r}, 'a') as f:\n"
                                   "        f.write('x\\n')\n"
                                   "    return float(len(model.layers))\n")


def test_an_interrupted_ingest_resumes_with_the_unfinished_tasks_only(tasks, tmp_path, capsys):
    calls = tmp_path / "calls"
    submission = counting_submission(tmp_path / "s", calls)
    first = ingest(submission, tasks / "input_data", tmp_path / "pred", progress=False)
    assert len(calls.read_text().split()) == 16
    (tmp_path / "pred" / "b.predict").write_text('{"model_0": 4.0')  # cut off while writing b
    again = ingest(submission, tasks / "input_data", tmp_path / "pred")
    assert again == first
    assert len(calls.read_text().split()) == 16 + 8  # task a was kept, task b ran again
    assert "resuming the ingest in" in capsys.readouterr().err


def test_the_exceeded_flag_survives_a_resume(tasks, tmp_path):
    submission = counting_submission(tmp_path / "s", tmp_path / "calls")
    ingest(submission, tasks / "input_data", tmp_path / "pred", budget_per_model=0.0,
           progress=False)
    (tmp_path / "pred" / "b.predict").unlink()
    got = ingest(submission, tasks / "input_data", tmp_path / "pred", budget_per_model=300.0,
                 progress=False)
    assert set(got["b"].values()) == {"EXCEEDED"}


def test_a_resume_with_another_submission_or_other_tasks_is_refused(tasks, tmp_path, capsys):
    submission = counting_submission(tmp_path / "s", tmp_path / "calls")
    ingest(submission, tasks / "input_data" / "a", tmp_path / "pred", progress=False)
    other = folder_submission(tmp_path / "t", "def complexity(model, ds):\n    return 2.0\n")
    with pytest.raises(ValueError, match=r"holds an ingest of another submission .*; to start "
                                         r"over, delete .*\.ingest_state\.json"):
        ingest(other, tasks / "input_data" / "a", tmp_path / "pred", progress=False)
    assert main(["ingest", "--submission", str(submission), "--tasks", str(tasks / "input_data"),
                 "--out", str(tmp_path / "pred")]) == 2
    assert "holds an ingest over other tasks or models (they differ in task(s) b)" in \
        capsys.readouterr().err


def test_score_reads_a_folder_holding_only_model_configs(tasks, tmp_path, capsys):
    """The released archives' reference_data: <task>/model_configs.json and nothing else."""
    reference = tmp_path / "reference_data"
    (tmp_path / "pred").mkdir()
    for task in ("a", "b"):
        pgdl.write_json(tmp_path / "pred" / f"{task}.predict",
                        {f"model_{i}": float(i % 3) for i in range(8)})
        found = pgdl.find_model_configs(tasks / "input_data" / task)
        (reference / task).mkdir(parents=True)
        (reference / task / "model_configs.json").write_bytes(found.read_bytes())
    assert main(["score", "--predictions", str(tmp_path / "pred"), "--tasks", str(reference),
                 "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["tasks"]) == {"a", "b"}


def test_the_submission_imports_its_own_demogen_not_the_installed_one(tasks, tmp_path):
    code = ("import demogen\ndef complexity(model, ds, program_dir):\n"
            "    return float(demogen.__file__.startswith(program_dir))\n")
    submission = folder_submission(tmp_path / "s", code)
    (submission / "demogen").mkdir()
    (submission / "demogen" / "__init__.py").write_text("")
    got = ingest(submission, tasks / "input_data" / "a", tmp_path / "pred", progress=False)["a"]
    assert list(got.values()) == [1.0] * 8
