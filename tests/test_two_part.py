"""Registry v2: the two-part predictor (measured training accuracy minus a predicted test
accuracy), the ranking head fitted on pairs of models of one task, the unfitted measures and
the fitted-only view, on synthetic corpora built here and checked by hand."""

import itertools
import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import cnn, data_for

from demogen import extract_margins
from demogen.competition import scoring
from demogen.frozen import coefficients, predictor
from demogen.measure.accuracy import sample_accuracy
from demogen_fit import candidates, freeze, ranking, transfer


def two_part_corpus(seed=0):
    """4 tasks of 16 models. Task k has difficulty d_k: its train accuracies are 1 - d_k u (u in
    [0, 1]) and its test accuracies 1 - 2 d_k + 0.05 z, z = log qrt.input.q2, the same 16 values
    of z in every task. So gap = 2 d_k - d_k u - 0.05 z: within a task the gap rises with the
    train accuracy, across tasks it falls with it (the easy tasks fit better and generalize
    better), and the test accuracy is the same function of z in every task up to its task's
    offset."""
    rng = np.random.default_rng(seed)
    z = np.linspace(-1.0, 1.0, 16) * 0.9
    frames = []
    for k in range(4):
        d = 0.05 + 0.1 * k
        u = rng.uniform(0, 1, 16)
        zk = rng.permutation(z)
        acc, test = 1 - d * u, 1 - 2 * d + 0.05 * zk
        frame = pd.DataFrame(list(itertools.product((0, 1), repeat=4)),
                             columns=["hp.a", "hp.b", "hp.c", "hp.d"])
        frames.append(frame.assign(
            task=f"t{k}", model_id=[str(i) for i in range(16)], preset="synthetic", error="",
            train_acc=acc, test_acc=test, gap=acc - test, n_test=10_000,
            **{"acc.sample": acc, "qrt.input.q2": np.exp(zk),
               "qrt.input.q1": 0.5 * np.exp(zk)}))
    return pd.concat(frames, ignore_index=True)


def held_out_taus(candidate, table):
    corpus = transfer.Corpus(table)
    scores, _ = transfer.Evaluator(corpus, candidate).leave_one_out(
        {t: (t,) for t in corpus.tasks})
    return {t: s["kendall_tau"] for t, s in scores.items()}


def test_the_two_part_candidate_recovers_both_parts_and_a_gap_regression_does_not():
    table = two_part_corpus()
    two_part = candidates.CANDIDATES["two_part_input"]
    fits = candidates.fit(two_part, table[table["task"] != "t2"])
    frozen = coefficients.from_dict(fits[0.1])
    assert frozen.target == "test_acc" and frozen.train_accuracy == candidates.TRAIN_ACCURACY
    # The test part: 0.05 z split between the collinear log q1 and log q2, nearly unshrunk.
    assert sum(frozen.head["coefficients"]) == pytest.approx(0.05, rel=0.01)
    held_out = table[table["task"] == "t2"]
    predicted = candidates.predict(two_part, fits[0.1], held_out)
    z = np.log(held_out["qrt.input.q2"].to_numpy())
    (c1, c2), intercept = frozen.head["coefficients"], frozen.head["intercept"]
    np.testing.assert_allclose(predicted, held_out["acc.sample"] - intercept
                               - c1 * (z + np.log(0.5)) - c2 * z, rtol=1e-12)
    # Ranked as by hand: acc - 0.05 z is the gap up to the task's constant, so tau is 1.
    assert scoring.kendall_tau(predicted, held_out["gap"]) == pytest.approx(1.0)
    assert held_out_taus(two_part, table) == {t: pytest.approx(1.0) for t in
                                              ("t0", "t1", "t2", "t3")}
    # A regression of the gap across tasks on the same features learns the tasks' levels: the
    # training accuracy gets the between-task sign and every held-out task is ranked worse.
    gap_regression = candidates.Candidate(
        "gap_input", "the gap across tasks on the same features", ("acc.sample",)
        + candidates.INPUT_QUARTILES, ("linear", "log", "log"), "ridge", candidates.RIDGE_ALPHAS)
    gap_fit = candidates.fit(gap_regression, table[table["task"] != "t2"])[0.1]
    assert gap_fit["head"]["coefficients"][0] < 0
    worse = held_out_taus(gap_regression, table)
    assert all(tau < 0.6 for tau in worse.values()) and np.mean(list(worse.values())) < 0


@pytest.mark.parametrize("name", ["train_accuracy", "two_part_input", "two_part_input_within",
                                  "rank_few", "rank_few_task_scaled"])
def test_the_held_out_tasks_gaps_never_reach_its_fits_or_choices(name):
    """Shuffling the held-out task's gaps and test accuracies (what the two-part and ranking
    heads learn from) changes neither its predictions nor the inner scores of its choice."""
    table = two_part_corpus()
    shuffled = table.copy()
    rows = shuffled["task"] == "t1"
    order = np.random.default_rng(5).permutation(rows.sum())
    for column in ("gap", "test_acc"):
        shuffled.loc[rows, column] = shuffled.loc[rows, column].to_numpy()[order]
    candidate = candidates.CANDIDATES[name]
    a = transfer.Evaluator(transfer.Corpus(table), candidate)
    b = transfer.Evaluator(transfer.Corpus(shuffled), candidate)
    np.testing.assert_array_equal(a.held_out({"t1"})[0], b.held_out({"t1"})[0])
    units = {t: (t,) for t in ("t0", "t1", "t2", "t3")}
    assert a.inner_tau(units, "t1") == b.inner_tau(units, "t1")


def test_ranking_pairs_stay_inside_a_task_and_clear_the_threshold():
    rng = np.random.default_rng(1)
    tasks = np.repeat(["a", "b", "c"], [7, 5, 9])
    gaps, se = rng.uniform(0, 0.3, 21), rng.uniform(0.001, 0.02, 21)
    i, j = ranking.training_pairs(tasks, gaps, se, threshold=1.0)
    assert len(i) and (tasks[i] == tasks[j]).all() and (gaps[i] > gaps[j]).all()
    assert (gaps[i] - gaps[j] > np.sqrt(se[i] ** 2 + se[j] ** 2)).all()
    expected = sum(abs(gaps[p] - gaps[q]) > np.hypot(se[p], se[q])
                   for p, q in itertools.combinations(range(21), 2) if tasks[p] == tasks[q])
    assert len(i) == expected
    assert len(ranking.training_pairs(tasks, gaps, se, threshold=0.0)[0]) == 21 + 10 + 36
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="pair threshold must be a finite number"):
            ranking.training_pairs(tasks, gaps, se, threshold=bad)


@pytest.mark.parametrize("name", ["rank_few", "rank_few_task_scaled"])
def test_the_frozen_ranking_score_is_the_logistic_regressions_decision_function(name):
    table = two_part_corpus()
    candidate = candidates.CANDIDATES[name]
    phi = coefficients.transform(table[list(candidate.features)], candidate.transforms)
    se = ranking.gap_standard_error(table["test_acc"], table["n_test"])
    _, model, scale = ranking.fit(phi, table["task"].to_numpy(), table["gap"].to_numpy(), se,
                                  C=1.0, scaling=candidate.scaling)
    frozen = coefficients.from_dict(candidates.fit(candidate, table)[1.0])
    assert frozen.target == "score" and frozen.head["intercept"] == 0.0
    np.testing.assert_allclose(candidates.predict(candidate, frozen.as_dict(), table),
                               model.decision_function(phi / scale), rtol=1e-12, atol=1e-12)
    assert frozen.fallback == pytest.approx(np.median(model.decision_function(phi / scale)))


def test_a_ranking_head_refuses_bad_penalties_and_tables_without_what_it_needs():
    table = two_part_corpus()
    phi = np.log(table[["qrt.input.q2"]].to_numpy())
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="inverse penalty C must be a finite number > 0"):
            ranking.fit(phi, table["task"], table["gap"], np.full(len(table), 0.01), C=bad)
    with pytest.raises(ValueError, match="unknown scaling 'global'"):
        ranking.fit(phi, table["task"], table["gap"], np.full(len(table), 0.01), scaling="global")
    with pytest.raises(ValueError, match="no pair of models of one task"):
        ranking.fit(phi, table["task"], table["gap"], np.full(len(table), 10.0))
    for name, column in (("rank_few", "n_test"), ("rank_few", "test_acc"),
                         ("two_part_input", "test_acc")):
        with pytest.raises(ValueError, match=f"candidate '{name}' needs the models' {column}"):
            candidates.fit(candidates.CANDIDATES[name], table.drop(columns=column))
    with pytest.raises(ValueError, match="needs at least 2 tasks; the tables hold 1"):
        transfer.fit_candidate(table[table["task"] == "t0"], "two_part_input")


def test_unfitted_measures_have_their_theoretical_sign_and_a_median_fallback():
    table = two_part_corpus()
    table.loc[3, "qrt.input.q2"] = np.nan  # no correctly classified example
    candidate = candidates.CANDIDATES["input_margin"]
    frozen = candidates.fit(candidate, table)[None]
    predictions = candidates.predict(candidate, frozen, table)
    rest = np.delete(np.arange(len(table)), 3)
    np.testing.assert_array_equal(predictions[rest], -table["qrt.input.q2"].to_numpy()[rest])
    assert predictions[3] == frozen["fallback"] == np.median(-table["qrt.input.q2"].dropna())
    assert frozen["target"] == "score"
    accuracy = candidates.CANDIDATES["train_accuracy"]
    np.testing.assert_array_equal(
        candidates.predict(accuracy, candidates.fit(accuracy, table)[None], table),
        table["acc.sample"])


def test_the_fitted_only_view_on_a_hand_built_task():
    table = pd.DataFrame({
        "task": "t", "model_id": [str(i) for i in range(6)], "preset": "x", "error": "",
        "hp.a": [0, 1, 0, 1, 0, 1], "train_acc": [1.0, 0.995, 0.99, 0.98, 0.5, 1.0],
        "gap": [0.1, 0.2, 0.3, 0.05, 0.0, 0.4]})
    corpus = transfer.Corpus(table)
    predictions = np.array([1.0, 3.0, 2.0, 9.0, 9.0, 4.0])
    # Fitted: models 0, 1, 2, 5 (gaps 0.1, 0.2, 0.3, 0.4; predictions 1, 3, 2, 4): of the 6
    # pairs only (1, 2) is discordant, tau = (5 - 1) / 6.
    assert corpus.fitted_only(predictions, "t") == {"kendall_tau": pytest.approx(4 / 6),
                                                    "n_models": 4}
    one = transfer.Corpus(table.assign(train_acc=[1.0, 0.9, 0.9, 0.9, 0.9, 0.9]))
    assert one.fitted_only(predictions, "t") == {"kendall_tau": None, "n_models": 1}


def test_evaluate_reports_the_fitted_only_view_and_its_mean():
    table = two_part_corpus()
    report = transfer.evaluate(table, ["train_accuracy", "two_part_input"], views=("task",),
                               n_jobs=1)
    entry = report["candidates"]["two_part_input"]
    for task, scores in entry["tasks"].items():
        fitted = table[(table["task"] == task) & (table["train_acc"] >= 0.99)]
        assert scores["fitted_only"]["n_models"] == len(fitted)
    assert entry["mean"]["fitted_only"]["kendall_tau"] == pytest.approx(np.mean(
        [s["fitted_only"]["kendall_tau"] or 0.0 for s in entry["tasks"].values()]))
    assert "fitted-only tau" in report.summary()
    assert json.loads(report.to_json()) == json.loads(json.dumps(report.report))


def _two_part_file(path, n_examples, seed):
    obj = freeze.predictor_dict(
        "two", ["qrt.input.q2"], ["log"], freeze.linear_head([0.1], 0.5), 0.2, {}, {},
        target="test_acc", train_accuracy={"n_examples": n_examples, "seed": seed})
    path.mkdir(parents=True, exist_ok=True)
    (path / "coefficients.json").write_text(json.dumps(obj))
    return str(path)


def test_complexity_of_a_two_part_file_subtracts_from_the_measured_training_accuracy(
        tmp_path, monkeypatch):
    model = cnn()
    x, y = data_for(model, n=300)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    margins = extract_margins(model, (x, y), n_examples=2048, seed=0)
    test_part = 0.1 * np.log(margins.signature().values[2]) + 0.5
    same = predictor.complexity(model, ds, _two_part_file(tmp_path / "a", 2048, 0))
    assert same == pytest.approx(np.mean(margins.output_margin > 0) - test_part, rel=1e-9)
    other = predictor.complexity(model, ds, _two_part_file(tmp_path / "b", 100, 4))
    assert other == pytest.approx(sample_accuracy(model, ds, 100, 4) - test_part, rel=1e-9)
    assert other != same
    # 4,096 examples of a 300-example set: the whole set, as the margin sample is: no extra pass.
    monkeypatch.setattr(predictor, "sample_accuracy", lambda *a, **k: pytest.fail("extra pass"))
    assert predictor.complexity(model, ds, _two_part_file(tmp_path / "c", 4096, 0)) == same


def test_sample_accuracy_is_the_models_own_predictions_on_the_sample():
    model = cnn()
    x, y = data_for(model, n=300)
    chosen = np.sort(np.random.default_rng(4).choice(300, 100, replace=False))
    own = np.asarray(model(x[chosen], training=False)).argmax(axis=1) == y[chosen]
    assert sample_accuracy(model, (x, y), 100, 4, batch_size=7) == pytest.approx(own.mean())
    margins = extract_margins(model, (x, y), n_examples=2048, seed=0)
    assert sample_accuracy(model, (x, y)) == pytest.approx(np.mean(margins.output_margin > 0))


@pytest.mark.parametrize("change, message", [
    (lambda o: o.pop("train_accuracy"), "needs train_accuracy settings"),
    (lambda o: o["train_accuracy"].update(augment=True), "exactly the settings n_examples, seed"),
    (lambda o: o["train_accuracy"].update(n_examples=0), "n_examples must be a positive integer"),
    (lambda o: o["train_accuracy"].update(seed=-1), "seed must be a non-negative integer"),
    (lambda o: o.update(target="gap"), "belong to a two-part predictor"),
    (lambda o: o.update(extra=1), "unknown keys extra"),
])
def test_a_two_part_file_the_runtime_cannot_honour_is_refused(tmp_path, change, message):
    obj = json.loads(pathlib.Path(_two_part_file(tmp_path, 2048, 0), "coefficients.json")
                     .read_text())
    change(obj)
    with pytest.raises(ValueError, match=message):
        coefficients.from_dict(obj)
