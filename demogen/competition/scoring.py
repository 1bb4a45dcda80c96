"""Rank scores of a generalization measure against the true gaps of a pool of models.

:func:`conditional_mutual_information` is the PGDL competition's score (docs/pgdl-format.md,
"The score"), on its 0..100 scale. :func:`kendall_tau` (tau-b) and :func:`granulated_kendall`
(Psi of Jiang et al. 2020, "Fantastic generalization measures and where to find them") are the
other rank measures in use. :func:`score_task` computes them for one task and
:func:`mean_scores` averages them over tasks, with the one rule for undefined scores that every
report of demogen follows: a score that is undefined for a task is None (``null`` in JSON) with
its reason under "undefined", and a mean over tasks counts it as 0 (a predictor that cannot rank
a task gains nothing there) and says for how many tasks it was undefined. Only numpy and the
standard library: this module ships.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["UndefinedScore", "GranulatedKendall", "MEASURES", "conditional_mutual_information",
           "kendall_tau", "granulated_kendall", "score_task", "mean_scores"]

MEASURES = ("cmi", "kendall_tau", "granulated_psi")


class UndefinedScore(ValueError):
    """The score is undefined for these inputs (the message says why)."""


@dataclasses.dataclass(frozen=True)
class GranulatedKendall:
    """Psi, the mean of the per-hyperparameter values, with those values and the skip counts."""

    psi: float
    per_hparam: dict
    skipped: dict


def conditional_mutual_information(predictions, gaps, hparams) -> float:
    """The PGDL score of ``predictions`` against ``gaps`` (0..100: the task score times 100).

    ``hparams`` holds one dict {name: value} per model, all with the same names. For every pair
    of distinct hyperparameters (h1, h2) and every ordered pair of models (m, m'), m = m'
    included, A = [gap(m) > gap(m')] and B = [prediction(m) > prediction(m')] are counted in the
    bin (h1 of m, h1 of m', h2 of m, h2 of m'). The value of (h1, h2) is the mean over bins of
    I(A;B) divided by the mean over bins of H(A), in bits; the task score is the minimum over
    pairs. Differences from the competition's program: bins are keyed by value tuples, numbers
    compared numerically (256.0 is 256), and only the bins that occur are counted (the same bins
    on a complete grid). (h1, h2) and (h2, h1) make the same bins, so each is computed once.

    Edge cases: with one hyperparameter the bins condition on it alone, with none there is one
    bin. A pair whose bins all have H(A) = 0 (the gaps' order is fixed by the bin, e.g. a
    complete grid over exactly two hyperparameters, where each bin holds one pair of models)
    is undefined and left out of the minimum; :class:`UndefinedScore` only when every pair is.

    The score is not exactly sign-invariant: the m = m' pairs give A = B = 0 whatever the sign,
    so a reversed ranking scores below 100 when bins are small (reversing both predictions and
    gaps changes nothing).
    """
    p, g, names, codes = _validate(predictions, gaps, hparams)
    n = len(p)
    cells = (2 * (g[:, None] > g[None, :]) + (p[:, None] > p[None, :])).ravel()
    columns = list(range(len(names)))
    conditionings = list(itertools.combinations(columns, 2)) if len(names) > 1 else [columns]
    values = []
    for conditioning in conditionings:
        group, k = _groups(codes[:, conditioning], n)
        bins = (group[:, None] * k + group[None, :]).ravel()
        tables = np.bincount(bins * 4 + cells, minlength=4 * k * k).reshape(-1, 4)
        tables = tables[tables.sum(axis=1) > 0]  # per bin, counts of (A, B) = 00, 01, 10, 11
        pa = np.stack([tables[:, 0] + tables[:, 1], tables[:, 2] + tables[:, 3]], axis=1)
        pb = np.stack([tables[:, 0] + tables[:, 2], tables[:, 1] + tables[:, 3]], axis=1)
        h_a = _entropy(pa)
        mean_h = h_a.mean()
        if mean_h > 0:
            mutual = h_a + _entropy(pb) - _entropy(tables)
            values.append(mutual.mean() / mean_h)
    if not values:
        raise UndefinedScore(
            "the score is undefined: inside every bin all gaps compare the same way (H(A) = 0 "
            "for every hyperparameter pair), e.g. all gaps are equal or each bin holds a single "
            "pair of models (a complete grid over exactly two hyperparameters)")
    return float(100.0 * min(values))


def kendall_tau(predictions, gaps) -> float:
    """Kendall's tau-b between predictions and gaps over all models (ties handled)."""
    p, g, _, _ = _validate(predictions, gaps, None)
    tau = _tau_b(p, g)
    if math.isnan(tau):
        raise UndefinedScore("Kendall's tau is undefined: the predictions or the gaps are "
                             "constant")
    return tau


def granulated_kendall(predictions, gaps, hparams) -> GranulatedKendall:
    """Granulated Kendall coefficient Psi (Jiang et al. 2020).

    For each hyperparameter h, models that share the values of all other hyperparameters form a
    group; the value of h is the mean tau-b over groups. Groups where tau is undefined (a single
    model, or constant predictions or gaps) are skipped and counted in ``skipped``; a
    hyperparameter with no usable group gets NaN. Psi is the mean over the defined values.
    """
    p, g, names, codes = _validate(predictions, gaps, hparams)
    if not names:
        raise UndefinedScore("granulated Kendall needs at least one hyperparameter: the models "
                             "have none (use kendall_tau for the plain coefficient)")
    per_hparam, skipped = {}, {}
    for column, name in enumerate(names):
        others = [c for c in range(len(names)) if c != column]
        group, k = _groups(codes[:, others], len(p))
        taus = [_tau_b(p[group == i], g[group == i]) for i in range(k)]
        used = [tau for tau in taus if not math.isnan(tau)]
        per_hparam[name] = float(np.mean(used)) if used else math.nan
        skipped[name] = len(taus) - len(used)
    defined = [value for value in per_hparam.values() if not math.isnan(value)]
    if not defined:
        raise UndefinedScore("granulated Kendall is undefined: no group of models that differ "
                             "in one hyperparameter has a defined tau (see skipped counts)")
    return GranulatedKendall(float(np.mean(defined)), per_hparam, skipped)


def score_task(predictions, gaps, hparams, measures=MEASURES) -> dict:
    """The measures of one task's predictions: {measure: value or None, "n_models": n}, plus
    "undefined": {measure: reason} when any is undefined. "cmi" is the competition's CMI x 100,
    "kendall_tau" tau-b, "granulated_psi" Psi; ``hparams`` as for
    :func:`conditional_mutual_information`."""
    functions = {"cmi": lambda: conditional_mutual_information(predictions, gaps, hparams),
                 "kendall_tau": lambda: kendall_tau(predictions, gaps),
                 "granulated_psi": lambda: granulated_kendall(predictions, gaps, hparams).psi}
    unknown = [m for m in measures if m not in functions]
    if unknown:
        raise ValueError(f"unknown measure(s) {', '.join(unknown)}; the measures are "
                         f"{', '.join(MEASURES)}")
    result, undefined = {"n_models": len(predictions)}, {}
    for name in measures:
        try:
            result[name] = float(functions[name]())
        except UndefinedScore as error:
            result[name], undefined[name] = None, str(error)
    if undefined:
        result["undefined"] = undefined
    return result


def mean_scores(per_task, measures=MEASURES) -> dict:
    """The mean over tasks of each measure of ``per_task`` ({task: score_task(...)}), an
    undefined score counting as 0; "<measure>_se", the standard error of that mean (None with one
    task); "undefined": {measure: number of tasks where it was undefined}."""
    out, undefined = {}, {}
    for name in measures:
        values = np.array([0.0 if r[name] is None else r[name] for r in per_task.values()])
        out[name] = float(values.mean()) if len(values) else None
        out[f"{name}_se"] = float(values.std(ddof=1) / math.sqrt(len(values))) \
            if len(values) > 1 else None
        undefined[name] = sum(r[name] is None for r in per_task.values())
    out["undefined"] = undefined
    return out


def _entropy(counts):
    """Entropy in bits of the distribution given by each row of counts (0 log 0 = 0)."""
    probabilities = counts / counts.sum(axis=1, keepdims=True)
    safe = np.where(probabilities > 0, probabilities, 1.0)
    return -(probabilities * np.log2(safe)).sum(axis=1)


def _tau_b(x, y):
    """Tau-b of two equal-length arrays; NaN when undefined (fewer than 2 values or a constant)."""
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    denominator = math.sqrt(float(np.abs(sx).sum()) * float(np.abs(sy).sum()))
    return float((sx * sy).sum()) / denominator if denominator > 0 else math.nan


def _groups(codes, n):
    """Integer group ids (0..k-1) of the rows of an (n, columns) code array, and k."""
    if codes.shape[1] == 0:
        return np.zeros(n, dtype=np.int64), 1
    unique, group = np.unique(codes, axis=0, return_inverse=True)
    return group.reshape(-1).astype(np.int64), len(unique)


def _normalize(value):
    """Hashable bin value: real numbers as floats (256 == 256.0), lists as tuples."""
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normalize(v) for v in value)
    return value


def _vector(values, what):
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a 1-d sequence of numbers (one per model), got shape "
                         f"{array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{what} has {bad.size} non-finite value(s) (NaN or inf) at position(s) "
                         f"{bad[:10].tolist()}: fix or drop those models before scoring")
    return array


def _validate(predictions, gaps, hparams):
    """Arrays of predictions and gaps, hyperparameter names, and an (n, names) integer code array."""
    p, g = _vector(predictions, "predictions"), _vector(gaps, "gaps")
    if len(p) != len(g):
        raise ValueError(f"predictions and gaps must have the same length (one per model), got "
                         f"{len(p)} and {len(g)}")
    if len(p) < 2:
        raise ValueError(f"a rank score needs at least 2 models, got {len(p)}")
    if hparams is None:
        return p, g, [], None
    if not isinstance(hparams, Sequence) or len(hparams) != len(p):
        raise ValueError(f"hparams must be a list of one dict per model ({len(p)} models), got "
                         f"{len(hparams) if isinstance(hparams, Sequence) else type(hparams)}")
    if not all(isinstance(h, Mapping) for h in hparams):
        raise ValueError("hparams must hold one dict {hyperparameter name: value} per model")
    names = list(hparams[0])
    for i, h in enumerate(hparams):
        if set(h) != set(names):
            raise ValueError(f"hparams[{i}] has the keys {sorted(h)} but hparams[0] has "
                             f"{sorted(names)}: every model needs the same hyperparameter names")
    codes = np.zeros((len(p), len(names)), dtype=np.int64)
    for column, name in enumerate(names):
        index = {}
        for i, h in enumerate(hparams):
            value = _normalize(h[name])
            if isinstance(value, float) and math.isnan(value):
                raise ValueError(f"hparams[{i}][{name!r}] is NaN: a hyperparameter value must "
                                 f"compare equal to itself")
            codes[i, column] = index.setdefault(value, len(index))
    return p, g, names, codes
