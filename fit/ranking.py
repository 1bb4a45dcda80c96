"""The ranking head: a linear score fitted on pairs of models of the same task.

For every training task, each pair of its models whose gaps differ by more than
`threshold` standard errors of a gap difference (from the test-set size: the gap's own noise) is
an example: the difference of their transformed features, labelled by which gap is larger. A
logistic regression without intercept on these differences (scikit-learn) gives weights w, and
the shipped score of one model is the linear function phi(x) @ w / s of its own features: no
per-task statistic at predict time. Its objective is that of both orientations of every pair
(so the classes balance); it is computed on half the rows, every other pair entering reversed,
with C doubled, which has the same minimum.

s is one scale per feature: the pooled within-task standard deviation over the training tasks
(the standard deviation of the features after centring each task). With `scaling="pooled"` the
pair differences are divided by s when fitting, so the fitted score and the shipped score are the
same function of the features, and s only makes the penalty blind to the features' units. With
`scaling="task"` each task's differences are divided by that task's own standard deviations while
fitting (every task's features in its own units), but the shipped score still divides by the
pooled s, the only scale known at predict time: on a task whose spreads differ from the pooled
ones, the weights then act in other proportions than those fitted.
"""

import numpy as np
from sklearn.linear_model import LogisticRegression

PAIR_THRESHOLD = 1.0  # in standard errors of a gap difference; fixed, not tuned
SCALINGS = ("pooled", "task")


def gap_standard_error(test_acc, n_test):
    """The standard error of a gap from its test-set size: sqrt(a (1 - a) / n_test)."""
    test_acc, n_test = np.asarray(test_acc, np.float64), np.asarray(n_test, np.float64)
    return np.sqrt(test_acc * (1 - test_acc) / n_test)


def training_pairs(tasks, gaps, standard_errors, threshold=PAIR_THRESHOLD):
    """(i, j): the row indices of every pair of models of one task whose gap difference exceeds
    `threshold` standard errors of that difference (sqrt(se_i^2 + se_j^2)), with gaps[i] >
    gaps[j]. Models of different tasks are never paired."""
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"the pair threshold must be a finite number of standard errors >= 0, "
                         f"got {threshold}")
    tasks, gaps = np.asarray(tasks), np.asarray(gaps, np.float64)
    se = np.asarray(standard_errors, np.float64)
    first, second = [], []
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        a, b = np.triu_indices(len(rows), 1)
        i, j = rows[a], rows[b]
        difference = gaps[i] - gaps[j]
        keep = np.abs(difference) > threshold * np.sqrt(se[i] ** 2 + se[j] ** 2)
        larger = difference[keep] > 0
        first.append(np.where(larger, i[keep], j[keep]))
        second.append(np.where(larger, j[keep], i[keep]))
    return np.concatenate(first), np.concatenate(second)


def within_scale(phi, tasks):
    """The pooled within-task standard deviation of each column (1 where it is 0)."""
    centred = np.array(phi, dtype=np.float64)
    for task in np.unique(tasks):
        rows = tasks == task
        centred[rows] -= centred[rows].mean(axis=0)
    scale = centred.std(axis=0)
    return np.where(scale > 0, scale, 1.0)


def fit(phi, tasks, gaps, standard_errors, C=1.0, threshold=PAIR_THRESHOLD, scaling="pooled"):
    """(coefficients of the shipped score phi @ coefficients, the fitted LogisticRegression, the
    pooled scale s): the score's weights are model.coef_ / s."""
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"the ranking head's inverse penalty C must be a finite number > 0, "
                         f"got {C}")
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
    phi, tasks = np.asarray(phi, np.float64), np.asarray(tasks)
    scale = within_scale(phi, tasks)
    if scaling == "pooled":
        x = phi / scale
    else:
        x = np.empty_like(phi)
        for task in np.unique(tasks):
            rows = tasks == task
            own = phi[rows].std(axis=0)
            x[rows] = phi[rows] / np.where(own > 0, own, 1.0)
    i, j = training_pairs(tasks, gaps, standard_errors, threshold)
    if len(i) == 0:
        raise ValueError("no pair of models of one task has gaps further apart than "
                         f"{threshold} standard errors: nothing to fit a ranking on")
    flip = np.arange(len(i)) % 2 == 1
    differences = np.where(flip[:, None], x[j] - x[i], x[i] - x[j])
    # Newton steps on a Cholesky factorization: few features and many pairs, a handful of
    # iterations to a tight optimum.
    model = LogisticRegression(C=2 * C, fit_intercept=False, solver="newton-cholesky",
                               max_iter=200).fit(differences, (~flip).astype(float))
    return model.coef_[0] / scale, model, scale
