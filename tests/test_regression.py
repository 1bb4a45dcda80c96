"""The regression: closed-form fits, the fold figures against hand loops, feature selection
inside the folds, the estimator conventions, and the size checks."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from demogen_fit import regression
from demogen_fit.regression import GapRegressor


def _exact(n=60, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = np.exp(rng.normal(size=(n, p)))
    coef = rng.normal(size=p)
    return X, coef, np.log(X) @ coef + 0.3


def test_log_fit_recovers_exact_coefficients_and_predicts():
    X, coef, y = _exact()
    model = GapRegressor().fit(X, y)
    np.testing.assert_allclose(model.coef_, coef, atol=1e-10)
    assert model.intercept_ == pytest.approx(0.3, abs=1e-10)
    np.testing.assert_allclose(model.predict(X * 2.0), y + np.log(2.0) * coef.sum(), atol=1e-10)
    assert model.score(X, y) == pytest.approx(1.0)


def test_linear_fit_matches_least_squares_and_statsmodels_names():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    y = rng.normal(size=40)
    model = GapRegressor(transform="linear").fit(X, y)
    design = np.column_stack([np.ones(40), X])
    expected = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(np.r_[model.intercept_, model.coef_], expected, atol=1e-12)
    assert list(model.results_.params.index) == ["const", "a", "b", "c"]
    assert "log(a)" in GapRegressor().fit(np.exp(X), y).results_.summary().as_text()


def test_estimator_conventions():
    X, _, y = _exact()
    model = GapRegressor(transform="log", selection="sf")
    assert clone(model).get_params() == {"transform": "log", "selection": "sf", "n_layers": 4}
    scores = cross_val_score(GapRegressor(), X, y, cv=5)
    assert scores == pytest.approx(np.ones(5))


def test_log_of_non_positive_feature_is_refused():
    X, _, y = _exact()
    X[3, 1] = 0.0
    with pytest.raises(ValueError, match="log transform needs positive features.*1 model"):
        GapRegressor().fit(X, y)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="transform='linear'"):
        GapRegressor().fit(X, y)


def test_too_few_models_refused_and_few_warned():
    X, _, y = _exact(n=5, p=4)
    with pytest.raises(ValueError, match="5 models cannot fit 4 features.*at least 6"):
        GapRegressor().fit(X, y)
    X, _, y = _exact(n=20, p=4)
    with pytest.warns(UserWarning, match=r"below 5\(p \+ 1\) = 25"):
        regression.evaluate(GapRegressor(), X, y, groups=np.arange(20))


def _layered(n=120, seed=0):
    """20 features (4 layers x 5 statistics); the target depends on one statistic or layer."""
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(n, 20))
    return phi


def test_selection_picks_the_informative_statistic_layer_and_features():
    phi = _layered()
    noise = 0.01 * np.random.default_rng(9).normal(size=len(phi))
    statistic_2 = phi[:, [2, 7, 12, 17]].sum(axis=1) + noise
    layer_1 = phi[:, 5:10] @ np.arange(1, 6) + noise
    four = phi[:, [3, 8, 14, 19]] @ np.array([4.0, 3.0, 2.0, 1.0]) + noise
    assert list(regression.select_features(phi, statistic_2, "sf")) == [2, 7, 12, 17]
    assert list(regression.select_features(phi, layer_1, "sl")) == [5, 6, 7, 8, 9]
    assert sorted(regression.select_features(phi, four, "best4")) == [3, 8, 14, 19]
    with pytest.raises(ValueError, match="unknown selection"):
        regression.select_features(phi, four, "best5")


def test_selection_is_made_on_the_fitting_data_only():
    """Two halves with different informative layers: each fit chooses from its own data, so
    cross-validation chooses inside each training fold."""
    phi = _layered(n=200)
    y = np.where(np.arange(200) < 100, phi[:, 0:5].sum(axis=1), phi[:, 15:20].sum(axis=1))
    X = np.exp(phi)
    first = GapRegressor(selection="sl").fit(X[:100], y[:100])
    second = GapRegressor(selection="sl").fit(X[100:], y[100:])
    assert list(first.support_) == [0, 1, 2, 3, 4]
    assert list(second.support_) == [15, 16, 17, 18, 19]
    assert first.feature_names_ == [f"x{j}" for j in range(5)]


def test_evaluate_against_hand_computed_figures():
    rng = np.random.default_rng(3)
    n, p = 80, 3
    X = np.exp(rng.normal(size=(n, p)))
    y = np.log(X) @ np.array([0.5, -1.0, 0.2]) + 0.3 * rng.normal(size=n)
    groups = np.repeat(np.arange(40), 2)
    figures = regression.evaluate(GapRegressor(), X, y, groups, seed=5)

    design = np.column_stack([np.ones(n), np.log(X)])

    def fit_predict(train, test):
        beta = np.linalg.lstsq(design[train], y[train], rcond=None)[0]
        return design[test] @ beta

    residual = y - fit_predict(np.arange(n), np.arange(n))
    r2 = 1 - residual @ residual / np.sum((y - y.mean()) ** 2)
    assert figures["r2"] == pytest.approx(r2)
    assert figures["adjusted_r2"] == pytest.approx(1 - (1 - r2) * (n - 1) / (n - p - 1))
    assert figures["mse"] == pytest.approx(np.mean(residual ** 2))

    def mean_r2(splitter, **kwargs):
        values = []
        for train, test in splitter.split(X, y, **kwargs):
            error = y[test] - fit_predict(train, test)
            values.append(1 - error @ error / np.sum((y[test] - y[test].mean()) ** 2))
        return np.mean(values)

    assert figures["kfold_r2"] == pytest.approx(mean_r2(regression.folds(None, 5)))
    assert figures["grouped_kfold_r2"] == pytest.approx(
        mean_r2(regression.folds(groups, 5), groups=groups))
    for train, test in regression.folds(groups, 5).split(X, y, groups):
        assert not set(groups[train]) & set(groups[test])
    assert figures["n_models"] == n and figures["n_features"] == p


def test_feature_tests_are_univariate_f_and_joint_t():
    X, _, y = _exact(n=50, p=3)
    y = y + 0.1 * np.random.default_rng(2).normal(size=50)
    model = GapRegressor().fit(X, y)
    tests = regression.feature_tests(model, X, y)
    phi = np.log(X[:, 1])
    r = np.corrcoef(phi, y)[0, 1]
    assert tests.loc[1, "F"] == pytest.approx(r ** 2 / (1 - r ** 2) * 48)
    np.testing.assert_allclose(tests["coef"], model.coef_)
    np.testing.assert_allclose(tests["t"], model.coef_ / tests["std_err"])
