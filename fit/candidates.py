"""The closed registry of candidate predictors that `demogen evaluate` judges by transfer.

A candidate is a feature set (columns of demogen.measure.features), one transform for all of
them, and a head fitted by scikit-learn. Fitting a candidate gives the frozen predictor (schema 2
of demogen.frozen.coefficients), and every prediction, in the evaluation as in a submission,
comes from that frozen file's `predict_many`, fallbacks included. A head's one tuning parameter
(the penalty, the number of trees) takes each value of `grid`; `demogen_fit.transfer` chooses
among them inside the training tasks.

The registry runs from the simplest candidate to the most complex: the selection rule (the
simplest within one standard error of the best) reads that order. It was fixed before the first
full-corpus evaluation; docs/transfer.md says if anything is added after.
"""

import dataclasses

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from demogen.frozen import coefficients
from demogen.measure.layers import SLOTS
from demogen.measure.signature import STATISTICS
from demogen_fit import freeze

QUARTILES = STATISTICS["quartile"]


def _signature(prefix, slots=SLOTS):
    return tuple(f"{prefix}.{slot}.{s}" for slot in slots for s in QUARTILES)


WEIGHT_SCALE = ("w.log_spectral.mean", "w.log_spectral.sum", "w.log_frobenius.mean",
                "w.log_frobenius.sum")
WEIGHT_SHAPE = ("w.alpha.mean", "w.alpha_hat.mean")
# Everything that is defined for every model that fits its data (alpha is left out: it is NaN
# for kernels with too few eigenvalues, and has its own candidate).
ALL = (_signature("qrt.unnorm.signed") + tuple(f"out.{s}" for s in QUARTILES)
       + ("acc.sample",) + tuple(f"tv.{slot}" for slot in SLOTS) + WEIGHT_SCALE)

RIDGE_ALPHAS = (100.0, 10.0, 1.0, 0.1)  # on standardized features; strongest penalty first
LASSO_ALPHAS = (0.01, 0.003, 0.001, 0.0003)
TREES = (25, 50, 100, 200)  # boosting rounds at depth 3 and learning rate 0.05
HEADS = ("random", "ols", "ridge", "lasso", "within", "boosting")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A feature set, its transform ("log" or "linear") and a head (one of HEADS) with the
    values of its tuning parameter (`grid`, simplest first; () for none)."""
    name: str
    description: str
    features: tuple
    transform: str
    head: str
    grid: tuple = (None,)

    @property
    def shippable(self):
        return self.head != "random"


CANDIDATES = {c.name: c for c in [
    Candidate("random", "the floor: a seeded random score per model", (), "linear", "random"),
    Candidate("output_margin", "the median signed output margin on the sampled training "
              "examples, OLS", ("out.q2",), "linear", "ols"),
    Candidate("weights_shape", "heavy-tailed self-regularization: mean alpha and alpha-hat over "
              "layers, OLS (data-free)", WEIGHT_SHAPE, "linear", "ols"),
    Candidate("weights_scale", "log spectral and Frobenius norms, mean and sum over layers, "
              "ridge (data-free)", WEIGHT_SCALE, "linear", "ridge", RIDGE_ALPHAS),
    Candidate("accuracy_output", "accuracy on the sample and the output-margin quartiles, ridge",
              ("acc.sample",) + tuple(f"out.{s}" for s in QUARTILES), "linear", "ridge",
              RIDGE_ALPHAS),
    Candidate("h3_unnorm", "the unnormalized quartiles at the last hidden layer, log, OLS",
              _signature("qrt.unnorm", ("h3",)), "log", "ols"),
    Candidate("paper", "the paper: normalized margins of correct examples, 20 log quartiles, "
              "OLS", _signature("qrt"), "log", "ols"),
    Candidate("paper_unnorm", "the paper's signature without the normalization, log, OLS",
              _signature("qrt.unnorm"), "log", "ols"),
    Candidate("signed_ridge", "unnormalized margins of all examples (signed), 20 quartiles, "
              "ridge", _signature("qrt.unnorm.signed"), "linear", "ridge", RIDGE_ALPHAS),
    Candidate("within_unnorm", "paper_unnorm's features fitted within tasks (features and gap "
              "centred per task), ridge: a ranking score", _signature("qrt.unnorm"), "log",
              "within", RIDGE_ALPHAS),
    Candidate("lasso_all", "margins, output margin, accuracy, total variation and weight norms, "
              "lasso", ALL, "linear", "lasso", LASSO_ALPHAS),
    Candidate("within_all", "lasso_all's features fitted within tasks, ridge: a ranking score",
              ALL, "linear", "within", RIDGE_ALPHAS),
    Candidate("boosting", "lasso_all's features, gradient-boosted trees (depth 3)", ALL,
              "linear", "boosting", TREES),
]}


def get(names=None):
    """The candidates named (default: all), in registry order; an unknown name lists the valid
    ones."""
    if names is None:
        return list(CANDIDATES.values())
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown candidate(s) {', '.join(unknown)}; the candidates are "
                         f"{', '.join(CANDIDATES)}")
    return [c for c in CANDIDATES.values() if c.name in names]


def _phi(candidate, table):
    values = table[list(candidate.features)].to_numpy(dtype=np.float64)
    if candidate.transform == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)
    return values


def _standardized_linear(model, phi, y):
    """Fit `model` on standardized features; coefficients and intercept on the raw ones."""
    mean, scale = phi.mean(axis=0), phi.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model.fit((phi - mean) / scale, y)
    coef = model.coef_ / scale
    return coef, float(model.intercept_ - coef @ mean)


def _within(alpha, phi, y, tasks):
    """Ridge on features and gap centred per task; the intercept makes the mean prediction over
    the pool its mean gap."""
    centred_phi, centred_y = phi.copy(), y.copy()
    for task in np.unique(tasks):
        rows = tasks == task
        centred_phi[rows] -= phi[rows].mean(axis=0)
        centred_y[rows] -= y[rows].mean()
    scale = centred_phi.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = Ridge(alpha=alpha, fit_intercept=False).fit(centred_phi / scale, centred_y)
    coef = model.coef_ / scale
    return coef, float(y.mean() - coef @ phi.mean(axis=0))


def fit(candidate, table, pool=None):
    """{parameter: frozen predictor dict} for every value of the candidate's grid, fitted on the
    usable rows of `table` (no error, every transformed feature finite). The fallback is the
    median gap of those rows: a model whose features are undefined is ranked in the middle."""
    if not candidate.shippable:
        raise ValueError(f"candidate {candidate.name!r} is a floor, not a predictor: it has no "
                         "frozen form")
    phi = _phi(candidate, table)
    keep = (table["error"].fillna("") == "").to_numpy() & np.isfinite(phi).all(axis=1)
    phi, y = phi[keep], table["gap"].to_numpy(dtype=np.float64)[keep]
    if len(y) < len(candidate.features) + 2:
        raise ValueError(f"candidate {candidate.name!r} needs at least "
                         f"{len(candidate.features) + 2} usable models to fit, got {len(y)}")
    tasks = table["task"].to_numpy()[keep]
    heads = {}
    if candidate.head == "boosting":
        # Boosting rounds do not depend on how many follow (no subsampling), so one fit with the
        # most trees gives every grid value by truncation.
        model = GradientBoostingRegressor(n_estimators=max(candidate.grid), max_depth=3,
                                          learning_rate=0.05, random_state=0).fit(phi, y)
        full = freeze.trees_head(model)
        heads = {n: {**full, "trees": full["trees"][:n]} for n in candidate.grid}
    else:
        for alpha in candidate.grid:
            if candidate.head == "ols":
                model = LinearRegression().fit(phi, y)
                coef, intercept = model.coef_, float(model.intercept_)
            elif candidate.head in ("ridge", "lasso"):
                model = (Ridge(alpha=alpha) if candidate.head == "ridge"
                         else Lasso(alpha=alpha, max_iter=20000))
                coef, intercept = _standardized_linear(model, phi, y)
            else:
                coef, intercept = _within(alpha, phi, y, tasks)
            heads[alpha] = freeze.linear_head(coef, intercept)
    pool = pool or {"tasks": sorted(set(tasks)), "n_models": int(len(y))}
    return {parameter: freeze.predictor_dict(
                candidate.name, list(candidate.features),
                [candidate.transform] * len(candidate.features), head, float(np.median(y)),
                pool, {"parameter": parameter})
            for parameter, head in heads.items()}


def predict(candidate, frozen, table, seed=0):
    """The predictions of a frozen candidate for every row of `table` (the runtime's
    predict_many: an undefined feature gives the fallback); the random floor draws a seeded
    score per (task, model id)."""
    if not candidate.shippable:
        keys = (table["task"] + "/" + table["model_id"].astype(str)).to_numpy()
        return np.array([np.random.default_rng([seed, *map(ord, key)]).normal() for key in keys])
    predictor = coefficients.from_dict(frozen, f"candidate {candidate.name}")
    values = table[list(candidate.features)].to_numpy(dtype=np.float64, copy=True)
    errors = (table["error"].fillna("") != "").to_numpy()
    values[errors] = np.nan  # a model that could not be measured falls back
    return predictor.predict_many(values)
