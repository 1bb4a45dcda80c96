"""Rank scores (demogen.competition.scoring): CMI against hand-computed tables and a literal slow
reference, Kendall's tau-b against scipy, granulated Kendall on hand-computed grids, and input
checks."""

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from demogen.competition.scoring import (GranulatedKendall, UndefinedScore,
                                         conditional_mutual_information, granulated_kendall,
                                         kendall_tau)


def grid(**values):
    """One hparams dict per point of the complete grid, the last name varying fastest."""
    return [dict(zip(values, point)) for point in itertools.product(*values.values())]


def entropy(probabilities):
    return -sum(p * math.log2(p) for p in probabilities if p > 0)


def mi_and_h(table):
    """I(A;B) and H(A) in bits of a hand-written table [[n(A0,B0), n(A0,B1)], [n(A1,B0), n(A1,B1)]]."""
    total = sum(map(sum, table))
    pa = [sum(row) / total for row in table]
    pb = [(table[0][j] + table[1][j]) / total for j in range(2)]
    joint = [table[i][j] / total for i in range(2) for j in range(2)]
    return entropy(pa) + entropy(pb) - entropy(joint), entropy(pa)


def reference_cmi(predictions, gaps, hparams):
    """The competition's program taken literally: string-keyed bins, log2(p + 1e-12) in H(A)."""
    names = list(hparams[0])
    scores = []
    for h1 in names:
        for h2 in names:
            if h1 == h2:
                continue
            bins = {}
            for m1 in range(len(gaps)):
                for m2 in range(len(gaps)):
                    key = (str(hparams[m1][h1]) + str(hparams[m2][h1])
                           + str(hparams[m1][h2]) + str(hparams[m2][h2]))
                    table = bins.setdefault(key, [[0, 0], [0, 0]])
                    table[int(gaps[m1] > gaps[m2])][int(predictions[m1] > predictions[m2])] += 1
            total_mi = total_h = 0.0
            for table in bins.values():
                total = sum(map(sum, table))
                pa = [sum(row) / total for row in table]
                pb = [(table[0][j] + table[1][j]) / total for j in range(2)]
                total_h -= sum(p * math.log2(p + 1e-12) for p in pa)
                for i in range(2):
                    for j in range(2):
                        if table[i][j]:
                            joint = table[i][j] / total
                            total_mi += joint * math.log2(joint / (pa[i] * pb[j]))
            scores.append((total_mi / len(bins)) / (total_h / len(bins)))
    return min(scores)


# --- CMI: hand-computed cases -------------------------------------------------------------

CUBE = grid(a=[0, 1], b=[0, 1], c=[0, 1])  # conditioning on any pair leaves groups of 2 models


def test_perfect_ranking_scores_100():
    gaps = [0.05, 0.31, 0.12, 0.27, 0.08, 0.22, 0.40, 0.17]
    assert conditional_mutual_information(gaps, gaps, CUBE) == pytest.approx(100, abs=1e-9)
    squashed = np.tanh(np.array(gaps)) * 3 + 7  # any strictly increasing transform
    assert conditional_mutual_information(squashed, gaps, CUBE) == pytest.approx(100, abs=1e-9)


def test_reversed_ranking_keeps_only_the_off_diagonal_information():
    """m = m' pairs are counted (A = B = 0), so a reversed ranking does not reach 100.

    Gaps rise with the (a, b) group, so for the pair (a, b) every bin across two groups has a
    constant A (H = 0), and each of the 4 within-group bins holds (m, m), (m, m'), (m', m),
    (m', m'): A = 0, 0, 1, 0 and, reversed, B = 0, 1, 0, 0.
    """
    gaps = [0.1 * i for i in range(8)]
    within_group = [[2, 1], [1, 0]]
    mi, h = mi_and_h(within_group)
    assert mi == pytest.approx(0.5 * math.log2(32 / 27)) and h == pytest.approx(entropy([.25, .75]))
    expected = 100 * (4 * mi / 16) / (4 * h / 16)  # 16 bins, 12 of them with I = H = 0
    reversed_score = conditional_mutual_information([-g for g in gaps], gaps, CUBE)
    assert reversed_score == pytest.approx(expected, abs=1e-9)
    assert 15 < reversed_score < 16


def test_constant_prediction_scores_0():
    gaps = [0.05, 0.31, 0.12, 0.27, 0.08, 0.22, 0.40, 0.17]
    assert conditional_mutual_information([3.0] * 8, gaps, CUBE) == 0


def test_one_hyperparameter_conditions_on_it_alone():
    """Bins (h of m, h of m'): (x, x), (x, y), (y, x), (y, y), 4 ordered pairs each."""
    hparams = [{"width": "x"}, {"width": "x"}, {"width": "y"}, {"width": "y"}]
    gaps, predictions = [1, 2, 3, 4], [1, 2, 5, 0]
    # (x, x): pairs (0,0) (0,1) (1,0) (1,1): A = 0 0 1 0, B = 0 0 1 0
    # (x, y): A = 0 0 0 0 (all gaps of x below those of y), B = 0 0 1 1
    # (y, x): A = 1 1 1 1, B = 1 0 1 0
    # (y, y): pairs (2,2) (2,3) (3,2) (3,3): A = 0 0 1 0, B = 0 1 0 0
    tables = [[[3, 0], [0, 1]], [[2, 2], [0, 0]], [[0, 0], [2, 2]], [[2, 1], [1, 0]]]
    q = entropy([0.25, 0.75])  # H(A) of (x, x) and (y, y)
    expected_mi = [q, 0, 0, 0.5 * math.log2(32 / 27)]
    expected_h = [q, 0, 0, q]
    for table, mi, h in zip(tables, expected_mi, expected_h):
        assert mi_and_h(table) == pytest.approx((mi, h), abs=1e-12)
    expected = 100 * (sum(expected_mi) / 4) / (sum(expected_h) / 4)
    assert expected == pytest.approx(57.553, abs=1e-3)
    score = conditional_mutual_information(predictions, gaps, hparams)
    assert score == pytest.approx(expected, abs=1e-9)


def test_no_hyperparameter_is_one_unconditional_bin():
    gaps, predictions = [1, 2, 3], [1, 3, 2]
    # 9 ordered pairs; A = 1 for (1,0) (2,0) (2,1); B = 1 for (1,0) (1,2) (2,0)
    table = [[5, 1], [1, 2]]
    mi = 5 / 9 * math.log2((5 / 9) / (6 / 9 * 6 / 9)) + 2 * (1 / 9) * math.log2(
        (1 / 9) / (6 / 9 * 3 / 9)) + 2 / 9 * math.log2((2 / 9) / (3 / 9 * 3 / 9))
    h = entropy([6 / 9, 3 / 9])
    assert mi_and_h(table) == pytest.approx((mi, h), abs=1e-12)
    score = conditional_mutual_information(predictions, gaps, [{}, {}, {}])
    assert score == pytest.approx(100 * mi / h, abs=1e-9)
    assert score == pytest.approx(19.476, abs=1e-3)


def test_equal_gaps_are_undefined():
    with pytest.raises(UndefinedScore, match="undefined"):
        conditional_mutual_information(np.arange(8.0), [0.2] * 8, CUBE)


def test_complete_grid_over_two_hyperparameters_is_undefined():
    """Each bin then holds a single pair of models, so every H(A) is 0."""
    with pytest.raises(UndefinedScore, match="single pair"):
        conditional_mutual_information([1, 2, 3, 4], [4, 1, 3, 2], grid(a=[0, 1], b=[0, 1]))


def test_undefined_pairs_are_left_out_of_the_minimum():
    """(a, b) identifies each model (undefined); c is constant, so (a, c) is a alone, (b, c) b."""
    hparams = [dict(point, c=7) for point in grid(a=[0, 1], b=[0, 1])]
    gaps, predictions = [0.3, 0.1, 0.4, 0.2], [2, 1, 0, 3]
    by_a = conditional_mutual_information(predictions, gaps, [{"a": h["a"]} for h in hparams])
    by_b = conditional_mutual_information(predictions, gaps, [{"b": h["b"]} for h in hparams])
    assert min(by_a, by_b) < 100
    assert conditional_mutual_information(predictions, gaps, hparams) == min(by_a, by_b)


def test_values_compare_numerically():
    rng = np.random.default_rng(1)
    ints = grid(filters=[256, 512], depth=[1, 3], lr=[1, 2])
    mixed = [{k: float(v) if i % 2 else v for k, v in h.items()} for i, h in enumerate(ints)]
    predictions, gaps = rng.random(8), rng.random(8)
    assert mixed[1]["filters"] == 256.0 and isinstance(mixed[1]["filters"], float)
    assert (conditional_mutual_information(predictions, gaps, mixed)
            == conditional_mutual_information(predictions, gaps, ints))


# --- CMI: random data ----------------------------------------------------------------------

def test_random_prediction_scores_near_0():
    """25 seeds per cell of a 2 x 2 grid: 100 models, bins of 625 pairs (little estimation bias)."""
    hparams = [h for h in grid(a=[0, 1], b=["x", "y"]) for _ in range(25)]
    rng = np.random.default_rng(2)
    for _ in range(3):
        score = conditional_mutual_information(rng.random(100), rng.random(100), hparams)
        assert 0 <= score < 5


def test_reversing_both_predictions_and_gaps_changes_nothing():
    """(m, m') of the reversed problem is (m', m) of the original, in the transposed bin."""
    hparams = grid(a=[0, 1, 2, 3], b=[0, 1, 2, 3], c=[0, 1, 2])
    rng = np.random.default_rng(3)
    for _ in range(3):
        predictions, gaps = rng.random(48), rng.integers(0, 10, 48) / 10
        score = conditional_mutual_information(predictions, gaps, hparams)
        assert conditional_mutual_information(-predictions, -gaps, hparams) == pytest.approx(
            score, abs=1e-9)
        order = rng.permutation(48)
        assert conditional_mutual_information(
            predictions[order], gaps[order], [hparams[i] for i in order]) == pytest.approx(
                score, abs=1e-9)


def test_agrees_with_the_literal_reference():
    rng = np.random.default_rng(4)
    for trial in range(6):
        sizes = rng.integers(2, 4, size=int(rng.integers(3, 5)))  # 2 would be undefined
        if trial == 0:
            sizes = np.array([3, 3, 2, 2])  # 36 models
        # values of one string length cannot collide once concatenated
        values = {f"h{i}": [int(v) for v in rng.choice(np.arange(10, 100), size, replace=False)]
                  for i, size in enumerate(sizes)}
        hparams = grid(**values)
        n = len(hparams)
        predictions = rng.integers(0, 6, n) / 6.0  # ties on both sides
        gaps = rng.integers(0, 8, n) / 8.0
        expected = 100 * reference_cmi(predictions, gaps, hparams)
        assert conditional_mutual_information(predictions, gaps, hparams) == pytest.approx(
            expected, abs=1e-9)


# --- Kendall's tau-b ----------------------------------------------------------------------

def test_kendall_tau_matches_scipy_tau_b_with_ties():
    rng = np.random.default_rng(5)
    for n in [2, 3, 7, 40, 200]:
        for _ in range(5):
            x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 5, n) * 0.1
            if len(set(x)) < 2 or len(set(y)) < 2:
                continue
            expected = scipy.stats.kendalltau(x, y, variant="b").statistic
            assert kendall_tau(x, y) == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_of_a_constant_is_undefined():
    with pytest.raises(UndefinedScore, match="constant"):
        kendall_tau([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])
    with pytest.raises(UndefinedScore, match="constant"):
        kendall_tau([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])


# --- granulated Kendall --------------------------------------------------------------------

def test_granulated_kendall_on_a_2x2_grid():
    hparams = grid(a=[0, 1], b=[0, 1])  # models (0,0) (0,1) (1,0) (1,1)
    gaps = [0.1, 0.2, 0.3, 0.4]
    predictions = [1, 3, 2, 2.5]
    # a varies, b fixed: b=0 -> models 0, 2: gaps up, predictions 1 -> 2 up: tau +1
    #                    b=1 -> models 1, 3: gaps up, predictions 3 -> 2.5 down: tau -1
    # b varies, a fixed: a=0 -> models 0, 1: 1 -> 3 up: +1; a=1 -> models 2, 3: 2 -> 2.5 up: +1
    result = granulated_kendall(predictions, gaps, hparams)
    assert isinstance(result, GranulatedKendall)
    assert result.per_hparam == pytest.approx({"a": 0.0, "b": 1.0}, abs=1e-12)
    assert result.skipped == {"a": 0, "b": 0}
    assert result.psi == pytest.approx(0.5, abs=1e-12)


def test_granulated_kendall_skips_and_counts_undefined_groups():
    hparams = grid(b=[0, 1], a=[0, 1, 2], c=["same"])
    gaps = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    predictions = [1, 3, 2, 5, 3, 6]
    # a varies (b fixed): b=0: predictions 1, 3, 2 -> 2 concordant, 1 discordant pair: 1/3
    #                     b=1: predictions 5, 3, 6 -> 2 concordant, 1 discordant pair: 1/3
    # b varies (a fixed): a=0: 1 -> 5: +1; a=1: 3 -> 3: tie, skipped; a=2: 2 -> 6: +1
    # c varies (a, b fixed): every group is a single model: all 6 skipped, value NaN
    result = granulated_kendall(predictions, gaps, hparams)
    assert result.per_hparam["a"] == pytest.approx(1 / 3, abs=1e-12)
    assert result.per_hparam["b"] == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(result.per_hparam["c"])
    assert result.skipped == {"b": 1, "a": 0, "c": 6}
    assert result.psi == pytest.approx(2 / 3, abs=1e-12)


def test_granulated_kendall_undefined_cases():
    with pytest.raises(UndefinedScore, match="at least one hyperparameter"):
        granulated_kendall([1, 2], [1, 2], [{}, {}])
    with pytest.raises(UndefinedScore, match="no group"):
        # c tells every model apart, so each group of "the other hyperparameters" is one model
        unique = [dict(h, c=i) for i, h in enumerate(grid(a=[0, 1], b=[0, 1]))]
        granulated_kendall([1, 2, 3, 4], [1, 2, 3, 4], unique)


# --- bad input ------------------------------------------------------------------------------

def test_bad_input_is_refused_with_a_helpful_message():
    hparams = grid(a=[0, 1], b=[0, 1])
    with pytest.raises(ValueError, match="same length.*got 3 and 4"):
        conditional_mutual_information([1, 2, 3], [1, 2, 3, 4], hparams)
    with pytest.raises(ValueError, match=r"predictions has 1 non-finite value.*\[2\]"):
        conditional_mutual_information([1, 2, float("nan"), 4], [1, 2, 3, 4], hparams)
    with pytest.raises(ValueError, match=r"gaps has 2 non-finite.*\[0, 3\]"):
        kendall_tau([1, 2, 3, 4], [float("inf"), 2, 3, float("nan")])
    bad_keys = hparams[:3] + [{"a": 1, "depth": 1}]
    with pytest.raises(ValueError, match=r"hparams\[3\].*same hyperparameter names"):
        granulated_kendall([1, 2, 3, 4], [1, 2, 3, 4], bad_keys)
    with pytest.raises(ValueError, match="one dict per model"):
        conditional_mutual_information([1, 2, 3, 4], [1, 2, 3, 4], hparams[:3])
    with pytest.raises(ValueError, match="at least 2 models"):
        kendall_tau([1.0], [2.0])


def test_one_rule_for_undefined_scores_in_every_report():
    """score_task: an undefined score is None with its reason; mean_scores counts it as 0 and
    says how often; the competition's scorer and the transfer evaluation go through it."""
    import pandas as pd

    from demogen.competition import evaluation, scoring
    from demogen_fit import transfer

    hparams = [{"a": a} for a in (0, 0, 1, 1)]
    gaps = [0.1, 0.2, 0.3, 0.4]
    constant = scoring.score_task([1.0] * 4, gaps, hparams)
    assert constant["kendall_tau"] is None and "constant" in constant["undefined"]["kendall_tau"]
    ranked = scoring.score_task([1.0, 2.0, 3.0, 4.0], gaps, hparams)
    assert ranked["kendall_tau"] == 1.0 and "undefined" not in ranked
    mean = scoring.mean_scores({"x": constant, "y": ranked})
    assert mean["kendall_tau"] == 0.5 and mean["undefined"]["kendall_tau"] == 1
    configs = {str(i): {"metrics": {"train_acc": 1.0, "test_acc": 1.0 - g}} for i, g in
               enumerate(gaps)}
    assert evaluation.score_task([1.0] * 4, configs, {str(i): h for i, h in
                                                       enumerate(hparams)}) == constant
    table = pd.DataFrame({"task": "t", "model_id": ["0", "1", "2", "3"], "preset": "x",
                          "error": "", "hp.a": [0, 0, 1, 1], "gap": gaps, "train_acc": 1.0})
    assert transfer.Corpus(table).score(np.ones(4), "t") == constant
    assert transfer.Corpus(table).within_tau(np.ones(4), "t") == 0.0
