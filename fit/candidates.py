"""The closed registry of candidate predictors that `demogen evaluate` judges by transfer.

A candidate is a feature set (columns of demogen.measure.features), a transform per feature, a
head and what the head predicts. Fitting a candidate gives the frozen predictor (schema 2 of
demogen.frozen.coefficients), and every prediction, in the evaluation as in a submission, comes
from that frozen file's `predict_many`, fallbacks included. A head's one tuning parameter (the
penalty, the number of trees) takes each value of `grid`; `demogen_fit.transfer` chooses among
them inside the training tasks.

Three kinds of output:
- a gap (target "gap"): a regression of the gap (OLS, ridge, lasso, boosted trees), or a fit
  within tasks ("within": features and gap centred per task) shipped with an intercept that
  makes its mean prediction over the pool the pool's mean gap;
- a two-part gap (target "test_acc"): the head predicts the test accuracy, from features that do
  not encode the training accuracy, and the prediction is the measured training accuracy
  (acc.sample in the tables; at predict time on the sample TRAIN_ACCURACY) minus it;
- a score (heads "measure" and "rank"): an unfitted single measure with a sign fixed by theory,
  or a ranking head (demogen_fit.ranking) fitted on pairs of models of one task. A score is not
  a gap and is never subtracted from an accuracy.
The fallback of a model whose features are undefined is the median prediction (gap or score) of
the usable training models, which ranks it in the middle.

The registry runs from the simplest candidate to the most complex: the selection rule (the
simplest within one standard error of the best) reads that order. Registry v1 (13 candidates)
was fixed before the first full-corpus evaluation; registry v2 added the unfitted measures, the
two-part and the ranking candidates (marked `added` "v2") after the analysis of the corpus that
docs/transfer.md describes; registry v3 (marked "v3") the candidates of the perturbation and
winner families, committed before the corpus held any of their features; each is placed by its
complexity.
"""

import dataclasses

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from demogen.defaults import DEFAULTS
from demogen.frozen import coefficients
from demogen.measure import features
from demogen.measure.layers import SLOTS
from demogen.measure.signature import STATISTICS
from demogen_fit import freeze, ranking, tables

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
INPUT_QUARTILES = ("qrt.input.q1", "qrt.input.q2")
# The test-accuracy part of a two-part predictor reads only features that do not encode the
# training accuracy: the margins of correctly classified examples and the total variations.
MANY = _signature("qrt") + _signature("qrt.unnorm") + tuple(f"tv.{slot}" for slot in SLOTS)
# The training accuracy a two-part predictor measures at predict time: a seeded sample of 4,096
# training examples (one forward pass over them), where the margin sample has 2,048; the sample
# size was set after benchmarks/train_accuracy_sample.py measured what 2,048 costs and
# benchmarks/complexity.py what a forward pass costs (it changes no corpus figure: every corpus
# task has fewer training examples, so both samples are the whole set).
TRAIN_ACCURACY = {"n_examples": 2 * DEFAULTS["n_examples"], "seed": DEFAULTS["seed"]}

# Registry v3: the perturbation family's shares of correctly classified training examples that
# stay correct under each perturbation (keep.*: they do not encode the training accuracy) and
# its class-separation indices, and the competition winner's measure.
KEEP_INPUT = ("keep.noise.input.auc", "keep.mixup_within.input.auc",
              "keep.mixup_across.input.auc", "keep.shift.auc")
KEEP = tuple(f"keep.{family}.{slot}.auc" for family in ("noise", "mixup_within", "mixup_across")
             for slot in SLOTS) + ("keep.shift.auc", "keep.weights.auc")
SEPARATION = tuple(f"db.{slot}" for slot in SLOTS[1:])

RIDGE_ALPHAS = (100.0, 10.0, 1.0, 0.1)  # on standardized features; strongest penalty first
LASSO_ALPHAS = (0.01, 0.003, 0.001, 0.0003)
TREES = (25, 50, 100, 200)  # boosting rounds at depth 3 and learning rate 0.05
RANK_C = (0.01, 0.1, 1.0, 10.0)  # inverse penalty of the ranking head; strongest first
HEADS = ("random", "measure", "ols", "ridge", "lasso", "within", "boosting", "rank")
TARGETS = ("gap", "test_acc")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A feature set, its transform ("log" or "linear", one for all or one per feature), a head
    (one of HEADS) with the values of its tuning parameter (`grid`, simplest first), what a
    regression head predicts (`target`: "gap", or "test_acc" for a two-part predictor), the
    sign of an unfitted measure, the scaling of a ranking head (demogen_fit.ranking) and the
    registry version that added it."""
    name: str
    description: str
    features: tuple
    transform: object
    head: str
    grid: tuple = (None,)
    target: str = "gap"
    sign: float = 1.0
    scaling: str = "pooled"
    added: str = "v1"

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; the heads are {', '.join(HEADS)}")
        if self.target not in TARGETS or (self.target == "test_acc"
                                          and self.head not in ("ridge", "within")):
            raise ValueError(f"candidate {self.name}: target {self.target!r}; a gap head "
                             "predicts 'gap', a two-part one (ridge or within) 'test_acc'")
        if self.head == "rank" and self.scaling not in ranking.SCALINGS:
            raise ValueError(f"candidate {self.name}: unknown scaling {self.scaling!r}")

    @property
    def shippable(self):
        return self.head != "random"

    @property
    def transforms(self):
        """One transform per feature."""
        if isinstance(self.transform, str):
            return (self.transform,) * len(self.features)
        return tuple(self.transform)

    @property
    def output(self):
        """What the frozen predictor returns: "gap" or "score"."""
        return "score" if self.head in ("measure", "rank") else "gap"


def _measure(name, description, feature, sign, added="v2"):
    return Candidate(name, description, (feature,), "linear", "measure", sign=sign, added=added)


def _two_part(name, description, features, transform, within=False, added="v2"):
    return Candidate(name, description, features, transform, "within" if within else "ridge",
                     RIDGE_ALPHAS, target="test_acc", added=added)


def _rank(name, description, features, transform, scaling="pooled", added="v2"):
    return Candidate(name, description, features, transform, "rank", RANK_C, scaling=scaling,
                     added=added)


CANDIDATES = {c.name: c for c in [
    Candidate("random", "the floor: a seeded random score per model", (), "linear", "random"),
    _measure("train_accuracy", "unfitted: the accuracy on the sampled training examples (a "
             "higher one, a larger gap)", "acc.sample", 1.0),
    _measure("input_margin", "unfitted: minus the median input margin of the correctly "
             "classified examples (a larger margin, a smaller gap)", "qrt.input.q2", -1.0),
    _measure("input_lower_fence", "unfitted: minus the lower fence of the signed input margins "
             "(a larger margin, a smaller gap)", "qrt.signed.input.lower_fence", -1.0),
    _measure("winner", "the PGDL competition winner's measure (Natekar and Sharma 2020): the "
             "Davies-Bouldin index of the first strided layer's output times one minus the "
             "accuracy on label-wise mixups; the reference", "winner.complexity", 1.0, "v3"),
    _measure("sharpness", "unfitted: minus the accuracy under magnitude-aware weight noise (area "
             "under the curve; a flatter minimum, a smaller gap)", "weights.acc.auc", -1.0, "v3"),
    _measure("mixup_robustness", "unfitted: minus the accuracy on within-class input mixups "
             "(area under the curve)", "mixup_within.input.acc.auc", -1.0, "v3"),
    _measure("noise_robustness", "unfitted: minus the accuracy under Gaussian input noise (area "
             "under the curve)", "noise.input.acc.auc", -1.0, "v3"),
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
    _two_part("two_part_input", "two-part: training accuracy minus the test accuracy predicted "
              "from the log input-margin q1 and q2, ridge across tasks", INPUT_QUARTILES, "log"),
    _two_part("two_part_input_within", "two_part_input fitted within tasks (features and test "
              "accuracy centred per task)", INPUT_QUARTILES, "log", within=True),
    _two_part("two_part_keep_input", "two-part: the test accuracy from the log input-margin q1 "
              "and q2 and the shares of correct training examples kept under input noise, "
              "mixups and shifts, ridge across tasks", INPUT_QUARTILES + KEEP_INPUT,
              ("log", "log") + ("linear",) * len(KEEP_INPUT), added="v3"),
    _rank("rank_few", "ranking head on the training accuracy and the log input-margin q1 and "
          "q2, pairs within tasks, pooled scale", ("acc.sample",) + INPUT_QUARTILES,
          ("linear", "log", "log")),
    _rank("rank_few_task_scaled", "rank_few with each task's features standardized by that "
          "task's spread while fitting", ("acc.sample",) + INPUT_QUARTILES,
          ("linear", "log", "log"), scaling="task"),
    _rank("rank_keep_input", "ranking head on rank_few's features and the shares kept under "
          "input noise, mixups and shifts", ("acc.sample",) + INPUT_QUARTILES + KEEP_INPUT,
          ("linear", "log", "log") + ("linear",) * len(KEEP_INPUT), added="v3"),
    Candidate("paper", "the paper: normalized margins of correct examples, 20 log quartiles, "
              "OLS", _signature("qrt"), "log", "ols"),
    Candidate("paper_unnorm", "the paper's signature without the normalization, log, OLS",
              _signature("qrt.unnorm"), "log", "ols"),
    Candidate("signed_ridge", "unnormalized margins of all examples (signed), 20 quartiles, "
              "ridge", _signature("qrt.unnorm.signed"), "linear", "ridge", RIDGE_ALPHAS),
    Candidate("within_unnorm", "paper_unnorm's features fitted within tasks (features and gap "
              "centred per task), ridge: a ranking score", _signature("qrt.unnorm"), "log",
              "within", RIDGE_ALPHAS),
    _two_part("two_part_paper", "two-part: training accuracy minus the test accuracy predicted "
              "from the paper's 20 log quartiles, ridge across tasks", _signature("qrt"), "log"),
    _two_part("two_part_paper_within", "two_part_paper fitted within tasks",
              _signature("qrt"), "log", within=True),
    _two_part("two_part_many", "two-part: the test accuracy from the normalized and "
              "unnormalized quartiles and the total variations (44, log), ridge across tasks",
              MANY, "log"),
    _two_part("two_part_keep", "two-part: the test accuracy from the log input-margin q1 and q2, "
              "every kept share (14) and the log Davies-Bouldin indices at h1-h3, ridge across "
              "tasks", INPUT_QUARTILES + KEEP + SEPARATION,
              ("log", "log") + ("linear",) * len(KEEP) + ("log",) * 3, added="v3"),
    _rank("rank_many", "ranking head on the training accuracy, the normalized and unnormalized "
          "quartiles and the total variations (45)", ("acc.sample",) + MANY,
          ("linear",) + ("log",) * len(MANY)),
    _rank("rank_perturb_many", "ranking head on the training accuracy, the log input-margin q1 "
          "and q2, every kept share, the log Davies-Bouldin indices and the winner's measure",
          ("acc.sample",) + INPUT_QUARTILES + KEEP + SEPARATION + ("winner.complexity",),
          ("linear", "log", "log") + ("linear",) * len(KEEP) + ("log",) * 3 + ("linear",),
          added="v3"),
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
    return coefficients.transform(table[list(candidate.features)], candidate.transforms)


def _standardized_linear(model, phi, y):
    """Fit `model` on standardized features; coefficients and intercept on the raw ones."""
    mean, scale = phi.mean(axis=0), phi.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model.fit((phi - mean) / scale, y)
    coef = model.coef_ / scale
    return coef, float(model.intercept_ - coef @ mean)


def _within(alpha, phi, y, tasks):
    """Ridge on features and target centred per task; the intercept makes the mean prediction
    over the pool its mean target."""
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


def _column(table, name, candidate, why):
    """A column the candidate needs, as floats; missing or all NaN is an error."""
    if name not in table or not np.isfinite(table[name].to_numpy(dtype=np.float64)).any():
        raise ValueError(f"candidate {candidate.name!r} needs the models' {name} ({why}), which "
                         "these tables lack; give tables made by demogen zoo or task folders "
                         "with model_configs.json")
    return table[name].to_numpy(dtype=np.float64)


def fit(candidate, table, pool=None):
    """{parameter: frozen predictor dict} for every value of the candidate's grid, fitted on the
    usable rows of `table` (no error, every transformed feature and what the head learns from
    finite). The fallback is the median prediction of those rows (their median gap, or their
    median score): a model whose features are undefined is ranked in the middle."""
    if not candidate.shippable:
        raise ValueError(f"candidate {candidate.name!r} is a floor, not a predictor: it has no "
                         "frozen form")
    versions = tables.table_versions(table, features.groups_of(candidate.features))
    phi = _phi(candidate, table)
    gaps = table["gap"].to_numpy(dtype=np.float64)
    keep = (table["error"].fillna("") == "").to_numpy() & np.isfinite(phi).all(axis=1)
    keep &= np.isfinite(gaps)
    if candidate.target == "test_acc" or candidate.head == "rank":
        test_acc = _column(table, "test_acc", candidate, "the test-accuracy part of a two-part "
                           "predictor" if candidate.target == "test_acc" else
                           "the noise of a gap, which decides the pairs")
        keep &= np.isfinite(test_acc)
    if candidate.head == "rank":
        n_test = _column(table, "n_test", candidate, "the test-set size of each task")
        keep &= np.isfinite(n_test)
        standard_errors = ranking.gap_standard_error(test_acc, n_test)[keep]
    y = (test_acc if candidate.target == "test_acc" else gaps)[keep]
    phi, gaps = phi[keep], gaps[keep]
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
        for parameter in candidate.grid:
            if candidate.head == "measure":
                coef, intercept = np.array([candidate.sign]), 0.0
            elif candidate.head == "rank":
                coef, _, _ = ranking.fit(phi, tasks, gaps, standard_errors, parameter,
                                         scaling=candidate.scaling)
                intercept = 0.0
            elif candidate.head == "ols":
                model = LinearRegression().fit(phi, y)
                coef, intercept = model.coef_, float(model.intercept_)
            elif candidate.head in ("ridge", "lasso"):
                model = (Ridge(alpha=parameter) if candidate.head == "ridge"
                         else Lasso(alpha=parameter, max_iter=20000))
                coef, intercept = _standardized_linear(model, phi, y)
            else:
                coef, intercept = _within(parameter, phi, y, tasks)
            heads[parameter] = freeze.linear_head(coef, intercept)
    pool = pool or {"tasks": sorted(set(tasks)), "n_models": int(len(y))}
    out = {}
    for parameter, head in heads.items():
        if candidate.output == "score":
            fallback = float(np.median(phi @ np.array(head["coefficients"])))
        else:
            fallback = float(np.median(gaps))
        out[parameter] = freeze.predictor_dict(
            candidate.name, list(candidate.features), list(candidate.transforms), head, fallback,
            pool, {"parameter": parameter},
            target="score" if candidate.output == "score" else candidate.target,
            train_accuracy=TRAIN_ACCURACY if candidate.target == "test_acc" else None,
            feature_versions=versions)
    return out


def predict(candidate, frozen, table, seed=0):
    """The predictions of a frozen candidate for every row of `table` (the runtime's
    predict_many: an undefined feature gives the fallback; a two-part predictor subtracts from
    the row's acc.sample); the random floor draws a seeded score per (task, model id)."""
    if not candidate.shippable:
        keys = (table["task"] + "/" + table["model_id"].astype(str)).to_numpy()
        return np.array([np.random.default_rng([seed, *map(ord, key)]).normal() for key in keys])
    predictor = coefficients.from_dict(frozen, f"candidate {candidate.name}")
    values = table[list(candidate.features)].to_numpy(dtype=np.float64, copy=True)
    errors = (table["error"].fillna("") != "").to_numpy()
    values[errors] = np.nan  # a model that could not be measured falls back
    accuracy = table["acc.sample"].to_numpy(dtype=np.float64) if predictor.two_part else None
    return predictor.predict_many(values, accuracy)
