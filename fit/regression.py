"""The regression of the generalization gap on a (log-)signature (docs/method.md section 5).

`GapRegressor` is a scikit-learn estimator whose fit is a statsmodels OLS (its results object,
with summary() and standard errors, is `results_`). With `selection`, it first picks features on
the data it is fitted on, so cross-validation makes the choice inside each training fold.
"""

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.feature_selection import f_regression
from sklearn.model_selection import GroupKFold, KFold, cross_val_predict, cross_val_score
from sklearn.utils.validation import check_is_fitted, validate_data

from demogen.frozen import coefficients

SELECTIONS = (None, "sf", "sl", "best4")
N_FOLDS = 10


def check_size(n_models, n_features, warn=True):
    """Refuse fewer than p + 2 models; warn below 5(p + 1), where k-fold figures are unreliable."""
    if n_models < n_features + 2:
        raise ValueError(f"{n_models} models cannot fit {n_features} features and an intercept: "
                         f"a fit needs at least {n_features + 2}; use a bigger pool or fewer "
                         "features (this pool can still be used to evaluate fitted coefficients)")
    if warn and n_models < 5 * (n_features + 1):
        warnings.warn(f"only {n_models} models for {n_features} features: below 5(p + 1) = "
                      f"{5 * (n_features + 1)}, the k-fold R^2 is unreliable", stacklevel=3)


def _training_r2(phi, y):
    """R^2 of the least-squares fit with an intercept (for comparing candidate feature sets)."""
    design = np.column_stack([np.ones(len(y)), phi])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return 1.0 - residual @ residual / np.sum((y - y.mean()) ** 2)


def select_features(phi, y, selection, n_layers=4):
    """Column indices chosen by training R^2 (columns laid out layer by layer): "sf" the one
    statistic best at all layers, "sl" the best layer's statistics, "best4" four features by
    greedy forward selection; None keeps every column."""
    n_features = phi.shape[1]
    if selection is None:
        return np.arange(n_features)
    if n_features % n_layers:
        raise ValueError(f"selection {selection!r} needs {n_layers} layers of equally many "
                         f"statistics, got {n_features} features")
    n_stats = n_features // n_layers
    if selection == "sf":
        candidates = [np.arange(s, n_features, n_stats) for s in range(n_stats)]
    elif selection == "sl":
        candidates = [np.arange(l * n_stats, (l + 1) * n_stats) for l in range(n_layers)]
    elif selection == "best4":
        chosen = []
        for _ in range(4):
            rest = [j for j in range(n_features) if j not in chosen]
            chosen.append(max(rest, key=lambda j: _training_r2(phi[:, chosen + [j]], y)))
        return np.array(chosen)
    else:
        raise ValueError(f"unknown selection {selection!r}; choose one of {SELECTIONS}")
    return max(candidates, key=lambda columns: _training_r2(phi[:, columns], y))


def transform_features(X, transform):
    """phi(X): the natural log (every value must be positive) or the identity."""
    if transform not in coefficients.TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; choose 'log' or 'linear'")
    X = np.asarray(X, dtype=np.float64)
    phi = coefficients.transform(X, [transform] * X.shape[1])
    if transform == "log" and np.isnan(phi).any():
        raise ValueError(f"the log transform needs positive features, but "
                         f"{int(np.isnan(phi).any(axis=1).sum())} model(s) have a value <= 0 or "
                         "NaN; drop them (fit.tables.usable does, saying which) or use "
                         "transform='linear'")
    return phi


class GapRegressor(RegressorMixin, BaseEstimator):
    """Least squares of the target on phi(features) (+ intercept), phi = log or the identity.

    transform: "log" (default) or "linear". selection: None, "sf", "sl" or "best4" (see
    `select_features`), made on the fitting data only. n_layers: how many layers the columns
    span (for sf and sl). After fit: coef_, intercept_, support_ (the columns used),
    feature_names_ and results_ (statsmodels OLS results).
    """

    def __init__(self, transform="log", selection=None, n_layers=4):
        self.transform = transform
        self.selection = selection
        self.n_layers = n_layers

    def fit(self, X, y):
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        X, y = validate_data(self, X, y, ensure_all_finite=self.transform == "linear",
                             y_numeric=True)
        phi = transform_features(X, self.transform)
        self.support_ = select_features(phi, y, self.selection, self.n_layers)
        check_size(len(y), len(self.support_), warn=False)
        names = names or [f"x{j}" for j in range(X.shape[1])]
        wrap = "log({})" if self.transform == "log" else "{}"
        self.feature_names_ = [names[j] for j in self.support_]
        exog = pd.DataFrame(phi[:, self.support_],
                            columns=[wrap.format(n) for n in self.feature_names_])
        self.results_ = sm.OLS(np.asarray(y), sm.add_constant(exog, has_constant="add")).fit()
        params = np.asarray(self.results_.params)
        self.intercept_, self.coef_ = float(params[0]), params[1:]
        return self

    def predict(self, X):
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, ensure_all_finite=self.transform == "linear")
        return transform_features(X, self.transform)[:, self.support_] @ self.coef_ \
            + self.intercept_


def folds(groups=None, seed=0, n_splits=N_FOLDS):
    """The shuffled, seeded 10-fold split; grouped (a group never split) when `groups` given."""
    if groups is None:
        return KFold(n_splits, shuffle=True, random_state=seed)
    return GroupKFold(n_splits, shuffle=True, random_state=seed)


def _check_folds(n_models, n_features, groups, seed):
    """Refuse a pool whose 10-fold training parts are too small to fit the features."""
    for splitter, kwargs in ((folds(None, seed), {}), (folds(groups, seed), {"groups": groups})):
        smallest = min(len(train) for train, _ in splitter.split(np.zeros(n_models), **kwargs))
        if smallest < n_features + 2:
            raise ValueError(f"a 10-fold split of {n_models} models leaves only {smallest} to fit "
                             f"{n_features} features in some fold (at least {n_features + 2} "
                             "needed); use a bigger pool")


def evaluate(estimator, X, y, groups, seed=0):
    """The fit-quality figures of docs/method.md section 5 for one estimator and table:
    adjusted R^2 and MSE of the fit on all models, the mean R^2 over held-out tenths of a
    shuffled 10-fold split, and the same with the folds grouped (the honest figure)."""
    y = np.asarray(y, dtype=np.float64)
    fitted = clone(estimator).fit(X, y)
    n, p = len(y), len(fitted.support_)
    check_size(n, p)
    _check_folds(n, p, groups, seed)
    r2 = fitted.score(X, y)
    kfold = cross_val_score(clone(estimator), X, y, cv=folds(None, seed), scoring="r2",
                            error_score="raise")
    grouped = cross_val_score(clone(estimator), X, y, groups=groups, cv=folds(groups, seed),
                              scoring="r2", error_score="raise")
    return {"adjusted_r2": 1.0 - (1.0 - r2) * (n - 1) / (n - p - 1), "r2": r2,
            "kfold_r2": float(kfold.mean()), "grouped_kfold_r2": float(grouped.mean()),
            "mse": float(np.mean((fitted.predict(X) - y) ** 2)), "n_models": n,
            "n_features": p, "features": list(fitted.feature_names_)}


def out_of_fold(estimator, X, y, groups, seed=0):
    """Each model's prediction by the fit on the grouped folds that do not hold it."""
    return cross_val_predict(clone(estimator), X, np.asarray(y, dtype=np.float64), groups=groups,
                             cv=folds(groups, seed))


def feature_tests(estimator, X, y):
    """Per feature of a fitted estimator: the univariate F-test of the target on that
    (transformed) feature alone, and its coefficient in the joint fit with standard error,
    t and p-value."""
    results = estimator.results_
    phi = transform_features(np.asarray(X, dtype=np.float64), estimator.transform)
    f_score, p_value = f_regression(phi[:, estimator.support_], np.asarray(y, dtype=np.float64))
    names = list(results.params.index[1:])
    return pd.DataFrame({"feature": estimator.feature_names_, "F": f_score,
                         "F_p_value": p_value, "coef": results.params[names].to_numpy(),
                         "std_err": results.bse[names].to_numpy(),
                         "t": results.tvalues[names].to_numpy(),
                         "t_p_value": results.pvalues[names].to_numpy()})
