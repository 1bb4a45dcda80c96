"""Transfer evaluation on a synthetic corpus built here: one feature ranks the gap within every
task, another is noise; leave-one-task-out must pick the first and score it as computed by hand;
the held-out task's gaps never reach its own fits or choices."""

import itertools
import json
import pathlib
import types

import numpy as np
import pandas as pd
import pytest

from demogen.competition import scoring
from demogen_fit import candidates, sidefiles, transfer

NAMES = ["random", "output_margin", "weights_shape"]


def synthetic(n_tasks=4, seed=0, swap=None):
    """Tasks of 16 models over 4 binary hyperparameters; out.q2 = -(offset + gap) (a perfect inverse
    ranking within each task), alpha features pure noise. `swap` = (task index, r, s): exchange
    the gaps of the models of gap ranks r and s of that task after out.q2 is set."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_tasks):
        grid = list(itertools.product((0, 1), repeat=4))
        ranks = rng.permutation(16)
        gap = 0.05 + 0.02 * k + ranks * 0.01
        frame = pd.DataFrame(grid, columns=["hp.a", "hp.b", "hp.c", "hp.d"]).assign(
            task=f"t{k}", model_id=[str(i) for i in range(16)], preset="synthetic", error="",
            gap=gap, train_acc=1.0, test_acc=1.0 - gap, n_test=10_000)
        frame["out.q2"] = -0.1 * k - frame["gap"]
        frame["acc.sample"] = 1.0
        frame["w.alpha.mean"] = rng.normal(3, 1, 16)
        frame["w.alpha_hat.mean"] = rng.normal(3, 1, 16)
        for column in candidates.WEIGHT_SCALE:
            frame[column] = rng.normal(0, 1, 16)
        if swap is not None and swap[0] == k:
            i, j = (int(np.flatnonzero(ranks == r)[0]) for r in swap[1:])
            frame.loc[[i, j], "gap"] = frame.loc[[j, i], "gap"].to_numpy()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def report():
    return transfer.evaluate(synthetic(swap=(2, 5, 8)), NAMES, n_jobs=1)


def test_the_ranking_feature_is_chosen_and_scored_as_computed_by_hand(report):
    scores = report["candidates"]["output_margin"]["tasks"]
    for task in ("t0", "t1", "t3"):  # predictions reverse out.q2, which reverses the gap exactly
        assert scores[task]["kendall_tau"] == pytest.approx(1.0)
        assert scores[task]["granulated_psi"] == pytest.approx(1.0)
        assert scores[task]["cmi"] == pytest.approx(100.0)
    # Gap ranks 5 and 8 exchanged: the pair itself and each of them with ranks 6 and 7 are
    # discordant, 5 of C(16, 2) = 120 pairs: tau-b = (115 - 5) / 120.
    assert scores["t2"]["kendall_tau"] == pytest.approx(110 / 120)
    assert report["selected"] == "output_margin"
    assert set(report["nested"]["chosen"].values()) == {"output_margin"}
    assert report["nested"]["mean"]["cmi"] == report["candidates"]["output_margin"]["mean"]["cmi"]
    assert report["candidates"]["weights_shape"]["mean"]["kendall_tau"] < 0.5


def test_the_selection_sees_the_direction_that_cmi_barely_does():
    """Across tasks out.q2 rises with the gap, within each it falls: fitted on the other tasks,
    output_margin ranks every held-out task backwards (tau -1) yet keeps a high CMI; the
    selection, on tau, must not take it."""
    table = synthetic()
    table["out.q2"] += table["task"].str[1:].astype(int) * 10.0
    report = transfer.evaluate(table, NAMES, views=("task",), n_jobs=1)
    scores = report["candidates"]
    assert all(r["kendall_tau"] == pytest.approx(-1.0)
               for r in scores["output_margin"]["tasks"].values())
    assert scores["output_margin"]["mean"]["cmi"] > 3 * scores["weights_shape"]["mean"]["cmi"]
    assert report["selected"] == "weights_shape"
    assert set(report["nested"]["chosen"].values()) == {"weights_shape"}


def test_the_scores_are_those_of_the_frozen_predictions_on_the_held_out_task():
    table = synthetic()
    corpus = transfer.Corpus(table)
    candidate = candidates.get(["weights_shape"])[0]
    predictions, _ = transfer.Evaluator(corpus, candidate).held_out({"t1"})
    frozen = candidates.fit(candidate, table[table["task"] != "t1"])[None]
    rows = table["task"] == "t1"
    expected = candidates.predict(candidate, frozen, table[rows])
    np.testing.assert_array_equal(predictions[rows.to_numpy()], expected)
    got = corpus.score(predictions, "t1")
    assert got["kendall_tau"] == pytest.approx(scoring.kendall_tau(expected, table["gap"][rows]))


def test_the_held_out_task_never_reaches_its_own_fits_or_choices():
    table = synthetic()
    shuffled = table.copy()
    rows = shuffled["task"] == "t1"
    shuffled.loc[rows, "gap"] = np.random.default_rng(5).permutation(shuffled.loc[rows, "gap"])
    for name in ("output_margin", "weights_shape"):
        candidate = candidates.get([name])[0]
        a = transfer.Evaluator(transfer.Corpus(table), candidate)
        b = transfer.Evaluator(transfer.Corpus(shuffled), candidate)
        np.testing.assert_array_equal(a.held_out({"t1"})[0], b.held_out({"t1"})[0])
        units = {t: (t,) for t in ("t0", "t1", "t2", "t3")}
        assert a.inner_tau(units, "t1") == b.inner_tau(units, "t1")


def test_tuning_uses_only_the_training_tasks(monkeypatch):
    seen = []
    fit = candidates.fit

    def recording(candidate, table, pool=None):
        seen.append(frozenset(table["task"]))
        return fit(candidate, table, pool)

    monkeypatch.setattr(candidates, "fit", recording)
    evaluator = transfer.Evaluator(transfer.Corpus(synthetic()),
                                   candidates.get(["weights_scale"])[0])
    evaluator.held_out({"t0"})
    assert seen and all("t0" not in tasks for tasks in seen)
    assert {frozenset({"t1", "t2", "t3"})} | {frozenset({"t1", "t2", "t3"}) - {t}
                                             for t in ("t1", "t2", "t3")} == set(seen)


def test_bad_input():
    table = synthetic(n_tasks=2)
    with pytest.raises(ValueError, match="leave-one-task-out needs at least 3 task units, the "
                                         "tables hold 2"):
        transfer.evaluate(table, NAMES, views=("task",), n_jobs=1)
    with pytest.raises(ValueError, match="unknown candidate.* nope; the candidates are random, "
                                         "train_accuracy"):
        transfer.evaluate(synthetic(), ["nope"], n_jobs=1)
    report = transfer.evaluate(synthetic(), ["output_margin", "paper"], views=("task",),
                               n_jobs=1)
    assert report["skipped"]["paper"].startswith("the tables lack 20 of its features")
    with pytest.raises(ValueError, match="needs at least 22 usable models"):
        candidates.fit(candidates.get(["paper_unnorm"])[0], synthetic().assign(
            **{c: 1.0 for c in candidates.CANDIDATES["paper_unnorm"].features}).iloc[:20])


def test_the_registry_is_closed_and_ordered():
    assert list(candidates.CANDIDATES) == [
        "random", "train_accuracy", "input_margin", "input_lower_fence", "winner", "sharpness",
        "mixup_robustness", "noise_robustness", "output_margin", "weights_shape",
        "weights_scale", "accuracy_output", "h3_unnorm", "two_part_input",
        "two_part_input_within", "two_part_keep_input", "rank_few", "rank_few_task_scaled",
        "rank_keep_input", "paper", "paper_unnorm", "signed_ridge", "within_unnorm",
        "two_part_paper", "two_part_paper_within", "two_part_many", "two_part_keep",
        "rank_many", "rank_perturb_many", "lasso_all", "within_all", "boosting"]
    added = {version: {n for n, c in candidates.CANDIDATES.items() if c.added == version}
             for version in ("v2", "v3")}
    assert added["v2"] == {"train_accuracy", "input_margin", "input_lower_fence",
                           "two_part_input", "two_part_input_within", "rank_few",
                           "rank_few_task_scaled", "two_part_paper", "two_part_paper_within",
                           "two_part_many", "rank_many"}
    assert added["v3"] == {"winner", "sharpness", "mixup_robustness", "noise_robustness",
                           "two_part_keep_input", "rank_keep_input", "two_part_keep",
                           "rank_perturb_many"}
    assert transfer.choose({"b": [1.0, 1.2], "a": [1.05, 1.1]}, ["a", "b"]) == "a"
    assert transfer.choose({"b": [2.0, 2.2], "a": [1.0, 1.1]}, ["a", "b"]) == "b"


def test_the_permutation_null_and_the_noise_ceiling(report, tmp_path):
    for task in ("t0", "t1", "t2", "t3"):
        assert 0 < report["tasks"][task]["cmi_null_95"] < 60
        assert report["tasks"][task]["noise_ceiling_cmi"] is None  # no side files
    assert report["candidates"]["output_margin"]["mean"]["above_null"] == 4
    # Side files whose test-correctness bits are nested sets (a model with a higher test accuracy
    # is right wherever a lower one is): every bootstrap keeps the order, the ceiling is 100.
    # Independent bits of equal accuracy: the re-measured order is noise, the ceiling is low.
    history = types.SimpleNamespace(accuracy=[1.0], cross_entropy=[0.0])
    table = synthetic().assign(source=str(tmp_path / "t.csv"), train_acc=1.0)
    rng = np.random.default_rng(0)
    for index, row in table.iterrows():
        if row["task"] == "t0":
            correct = np.arange(2000) < 1000 + 20 * int(row["model_id"])
        else:
            correct = rng.random(2000) < 0.7
        table.loc[index, ["test_acc", "gap"]] = correct.mean(), 1 - correct.mean()
        sidefiles.write(sidefiles.path(tmp_path, "synthetic", row["task"], row["model_id"]),
                        None, correct, np.ones(10, bool), history)
    corpus = transfer.Corpus(table)
    assert transfer.noise_ceiling(corpus, "t0", n=10) == pytest.approx(100.0)
    assert transfer.noise_ceiling(corpus, "t1", n=10) < 50


def test_fit_candidate_tunes_inside_and_freezes_what_evaluate_scores():
    table = synthetic()
    frozen, report = transfer.fit_candidate(table, "output_margin")
    from sklearn.linear_model import LinearRegression

    ols = LinearRegression().fit(table[["out.q2"]], table["gap"])
    assert report["parameter"] is None
    assert report["r2"] == pytest.approx(ols.score(table[["out.q2"]], table["gap"]))
    assert report["tasks"] == {t: pytest.approx(1.0) for t in ("t0", "t1", "t2", "t3")}
    frozen_ridge, report = transfer.fit_candidate(table, "weights_scale")
    corpus = transfer.Corpus(table)
    assert report["parameter"] == transfer.Evaluator(
        corpus, candidates.get(["weights_scale"])[0]).tuned(frozenset())
    assert frozen_ridge["metrics"]["parameter"] == report["parameter"]


def test_cli_fit_candidate_writes_a_schema_2_file(tmp_path, capsys):
    from demogen.cli import main
    from demogen.frozen import coefficients
    from demogen_fit import tables

    out = tmp_path / "p.json"
    assert main(["fit", str(tables.PRIMARY_POOL), "--candidate", "paper_unnorm", "--out",
                 str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    predictor = coefficients.load(out)
    assert isinstance(predictor, coefficients.Predictor) and predictor.name == "paper_unnorm"
    assert report["n_models"] == 288 and set(report["tasks"]) == {"nin_clean", "nin_noise20"}
    assert predictor.pool["sources"] == {"features_cache/nin.csv": tables.file_digest(
        [tables.PRIMARY_POOL])}
    assert main(["fit", str(tables.CORPUS_LOCKBOX), "--candidate",
                 "rank_few"]) == 0
    text = capsys.readouterr().out  # a ranking head's output is a score, which has no R^2
    assert "a score, not a gap: no R^2; Kendall tau within each task (in-sample): mlp_fmnist" \
        in text
    assert main(["fit", "--candidate", "nope"]) == 2
    assert "unknown candidate(s) nope; the candidates are random" in capsys.readouterr().err


def test_the_shipped_selection_is_what_the_committed_evaluation_selected(monkeypatch):
    """demogen/frozen/resources/selected.json is the candidate results/evaluate.json selected,
    fitted on the same committed tables (refresh both with the commands in docs/submission.md)."""
    from demogen.frozen import coefficients
    from demogen_fit import tables

    root = pathlib.Path(__file__).parents[1]
    monkeypatch.chdir(root)
    result = json.loads(pathlib.Path("results/evaluate.json").read_text())
    shipped = coefficients.load(predictor="selected").as_dict()
    assert shipped["name"] == result["selected"]
    assert shipped["pool"]["sources"] == result["sources"] == tables.source_digests(
        result["sources"])
    table = tables.read_sources(list(result["sources"]))
    refit, _ = transfer.fit_candidate(table, result["selected"], sources=result["sources"])

    def rounded(obj):  # to 9 significant digits, what another BLAS may change
        return json.loads(json.dumps({k: v for k, v in obj.items() if k != "created_with"}),
                          parse_float=lambda text: float(f"{float(text):.9g}"))
    assert rounded(shipped) == rounded(refit)


def test_the_simpson_view_finds_a_sign_that_flips_inside_tasks():
    table = synthetic().rename(columns={"hp.a": "hp.depth"})
    corpus = transfer.Corpus(table)
    k = table["task"].str[1:].astype(int).to_numpy()
    flipping = table["gap"].to_numpy() - 1.0 * k  # rises with the gap inside each task only
    view = transfer.simpson(corpus, {"flipping": flipping, "out.q2": table["out.q2"]})
    assert view["flipping"]["pooled"] < 0
    assert view["flipping"]["within_tasks"] == {t: pytest.approx(1.0) for t in corpus.tasks}
    assert len(view["flipping"]["within_depth"]) == 8  # 4 tasks x depth {0, 1}
    assert view["flipping"]["flips"] == sorted(corpus.tasks + list(
        view["flipping"]["within_depth"]))
    assert view["out.q2"]["pooled"] < 0 and view["out.q2"]["flips"] == []


def test_tasks_with_an_incomplete_grid_are_left_out(monkeypatch):
    from demogen_fit import presets

    grid = {"a": (0, 1), "b": (0, 1), "c": (0, 1), "d": (0, 1)}
    preset = presets.Preset("synthetic", tuple(
        presets.Task(f"t{k}", "f", "mlp", "digits", 100, grid, 1) for k in range(5)))
    monkeypatch.setitem(presets.PRESETS, "synthetic", preset)
    table = synthetic(n_tasks=5)
    table = table[(table["task"] != "t4") | (table["model_id"].astype(int) < 10)]
    report = transfer.evaluate(table, ["output_margin"], views=("task",), n_jobs=1)
    assert report["incomplete_tasks"] == {"t4": "10 of 16 models"}
    assert set(report["tasks"]) == {"t0", "t1", "t2", "t3"}


def test_lockbox_tasks_are_left_out_unless_asked_for(monkeypatch, tmp_path, capsys):
    from demogen.cli import main
    from demogen_fit import presets

    grid = {"a": (0, 1), "b": (0, 1), "c": (0, 1), "d": (0, 1)}
    preset = presets.Preset("synthetic", tuple(
        presets.Task(f"t{k}", f"f{k}", "mlp", "digits", 100, grid, 1, lockbox=k == 3)
        for k in range(4)))
    monkeypatch.setitem(presets.PRESETS, "synthetic", preset)
    path = tmp_path / "synthetic.csv"
    synthetic().assign(train_acc=1.0, test_acc=lambda f: 1.0 - f["gap"], extractor_version=1,
                       n_examples=16, sample_seed=0).to_csv(path, index=False)
    for extra, tasks in (([], ["t0", "t1", "t2"]), (["--lockbox"], ["t0", "t1", "t2", "t3"])):
        assert main(["evaluate", str(path), "--candidates", "output_margin", "--jobs", "1",
                     "--json"] + extra) == 0
        report = json.loads(capsys.readouterr().out)
        assert sorted(report["tasks"]) == tasks
        assert report["lockbox"] == {"tasks": ["t3"], "included": bool(extra)}


def test_the_library_leaves_lockbox_tasks_out_unless_asked(monkeypatch):
    """The rule lives in transfer.evaluate itself, so a notebook cannot include them by
    accident."""
    from demogen_fit import presets

    grid = {"a": (0, 1), "b": (0, 1), "c": (0, 1), "d": (0, 1)}
    preset = presets.Preset("synthetic", tuple(
        presets.Task(f"t{k}", f"f{k}", "mlp", "digits", 100, grid, 1, lockbox=k == 3)
        for k in range(4)))
    monkeypatch.setitem(presets.PRESETS, "synthetic", preset)
    table = synthetic()
    default = transfer.evaluate(table, ["output_margin"], views=("task",), n_jobs=1)
    assert sorted(default["tasks"]) == ["t0", "t1", "t2"]
    assert "t3" not in default["candidates"]["output_margin"]["tasks"]
    assert default["lockbox"] == {"tasks": ["t3"], "included": False}
    asked = transfer.evaluate(table, ["output_margin"], views=("task",), n_jobs=1, lockbox=True)
    assert sorted(asked["tasks"]) == ["t0", "t1", "t2", "t3"]


def test_the_lockbox_is_a_table_of_its_own_with_pairs_no_corpus_task_uses():
    from demogen_fit import presets

    corpus, lockbox = presets.PRESETS["corpus"].tasks, presets.PRESETS["corpus_lockbox"].tasks
    assert len(lockbox) == 2 and all(t.lockbox for t in lockbox)
    assert not any(t.lockbox for t in corpus)
    assert not {(t.family, t.source) for t in lockbox} & {(t.family, t.source) for t in corpus}


def test_sources_inside_the_repository_are_recorded_from_its_root(tmp_path, monkeypatch):
    from demogen_fit import tables

    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "t.csv"
    outside.write_text("x\n")
    recorded = tables.source_digests([tables.CORPUS, outside])
    assert list(recorded) == ["features_cache/corpus.csv", str(outside)]
    assert recorded["features_cache/corpus.csv"] == tables.file_digest([tables.CORPUS])


def test_the_committed_lockbox_run_read_the_committed_tables(monkeypatch):
    from demogen_fit import tables

    monkeypatch.chdir(pathlib.Path(__file__).parents[1])
    result = json.loads(pathlib.Path("results/lockbox.json").read_text())
    assert result["lockbox"] == {"tasks": ["mlp_fmnist", "nin_mnist1d"], "included": True}
    assert {"mlp_fmnist", "nin_mnist1d"} <= set(result["tasks"])
    assert result["sources"] == tables.source_digests(result["sources"])


def _final_preset(monkeypatch):
    """Six tasks of their own families; t4 and t5 are the final lockbox's."""
    from demogen_fit import presets

    grid = {"a": (0, 1), "b": (0, 1), "c": (0, 1), "d": (0, 1)}
    preset = presets.Preset("synthetic", tuple(
        presets.Task(f"t{k}", f"f{k}", "mlp", "digits", 100, grid, 1, final=k >= 4)
        for k in range(6)))
    monkeypatch.setitem(presets.PRESETS, "synthetic", preset)
    table = synthetic(n_tasks=6)
    final = table["task"].isin(["t4", "t5"])
    return table[~final], table[final]


def test_the_final_run_fits_on_the_training_tasks_only(monkeypatch):
    """No fit, tuning or selection of the final run sees a final task's rows; the final tasks
    are scored as the synthetic corpus makes them (out.q2 reverses the gap exactly)."""
    training, final = _final_preset(monkeypatch)
    fitted_on, tuned_on = set(), set()
    fit, within_tau = candidates.fit, transfer.Corpus.within_tau

    def recording_fit(candidate, table, pool=None):
        fitted_on.update(table["task"])
        return fit(candidate, table, pool)

    def recording_tau(self, predictions, task):
        tuned_on.add(task)
        return within_tau(self, predictions, task)

    monkeypatch.setattr(candidates, "fit", recording_fit)
    monkeypatch.setattr(transfer.Corpus, "within_tau", recording_tau)
    result = transfer.final_run(training, final, ["train_accuracy", "output_margin",
                                                  "weights_shape"], n_jobs=1)
    assert fitted_on == tuned_on == {"t0", "t1", "t2", "t3"}
    assert result["training_tasks"] == ["t0", "t1", "t2", "t3"]
    assert sorted(result["final_tasks"]) == ["t4", "t5"]
    for task in ("t4", "t5"):
        scores = result["candidates"]["output_margin"]["tasks"][task]
        assert scores["kendall_tau"] == pytest.approx(1.0)
        assert scores["cmi"] == pytest.approx(100.0)
    # acc.sample is constant: train_accuracy's tau is undefined, counted as 0
    assert result["candidates"]["train_accuracy"]["mean"]["kendall_tau"] == 0.0
    assert result["selected"] == {"v1": "output_margin", "v2": "output_margin"}
    margin, shape = (result["candidates"][n]["tasks"] for n in ("output_margin", "weights_shape"))
    diff = [margin[t]["kendall_tau"] - (shape[t]["kendall_tau"] or 0.0) for t in ("t4", "t5")]
    assert result["candidates"]["output_margin"].get("vs_winner") is None
    assert transfer.paired(margin, shape)["tau_difference"] == pytest.approx(np.mean(diff))
    assert transfer.paired(margin, shape)["tau_se"] == pytest.approx(
        np.std(diff, ddof=1) / np.sqrt(2))
    assert "v2 output_margin" in result.summary()


def test_final_tasks_are_read_by_the_final_run_only(monkeypatch):
    training, final = _final_preset(monkeypatch)
    with pytest.raises(ValueError, match="final lockbox .*t4, t5.*--final"):
        transfer.evaluate(pd.concat([training, final]), ["output_margin"], n_jobs=1)
    with pytest.raises(ValueError, match="final lockbox's tasks only.*t0"):
        transfer.final_run(training, pd.concat([final, training[training["task"] == "t0"]]),
                           ["output_margin"], n_jobs=1)
    short = final[(final["task"] != "t5") | (final["model_id"].astype(int) < 10)]
    with pytest.raises(ValueError, match="not complete .*t5 10 of 16.*--preset lockbox2"):
        transfer.final_run(training, short, ["output_margin"], n_jobs=1)
    with pytest.raises(ValueError, match="lack 1 features .*out.q2"):
        transfer.final_run(training, final.drop(columns="out.q2"), ["output_margin"], n_jobs=1)


def test_the_final_run_writes_its_result_once(monkeypatch, tmp_path, capsys):
    from demogen.cli import main
    from demogen_fit import tables

    training, final = _final_preset(monkeypatch)
    settings = {"extractor_version": 1, "n_examples": 16, "sample_seed": 0}
    training.assign(**settings).to_csv(tmp_path / "training.csv", index=False)
    final.assign(**settings).to_csv(tmp_path / "lockbox2.csv", index=False)
    monkeypatch.setattr(tables, "LOCKBOX2", tmp_path / "lockbox2.csv")
    command = ["evaluate", str(tmp_path / "training.csv"), "--final", "--candidates",
               "output_margin", "--jobs", "1"]
    assert main(command) == 2
    assert "give --out a file that does not exist yet (none given)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(command + ["--lockbox"])
    assert "--lockbox: not allowed with argument --final" in capsys.readouterr().err
    out = tmp_path / "final.json"
    assert main(command + ["--out", str(out)]) == 0
    assert "the final run: fitted on 4 tasks" in capsys.readouterr().out
    assert json.loads(out.read_text())["selected"] == {"v1": "output_margin"}
    written = out.read_text()
    assert main(command + ["--out", str(out)]) == 2
    assert "writes its result once" in capsys.readouterr().err
    assert out.read_text() == written
    assert main(["evaluate", str(tmp_path / "training.csv"), str(tmp_path / "lockbox2.csv"),
                 "--candidates", "output_margin", "--jobs", "1"]) == 2
    assert "read only by the one final run" in capsys.readouterr().err


def test_the_final_lockbox_has_pairs_no_earlier_task_uses():
    from demogen_fit import presets

    final = presets.PRESETS["lockbox2"].tasks
    earlier = presets.PRESETS["corpus"].tasks + presets.PRESETS["corpus_lockbox"].tasks
    assert len(final) == 3 and all(t.final and not t.lockbox for t in final)
    assert not any(t.final for t in earlier)
    assert not {(t.family, t.source) for t in final} & {(t.family, t.source) for t in earlier}
