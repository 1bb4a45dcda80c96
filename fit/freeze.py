"""Fit the signature regression on a pool and freeze it into a coefficient file
(demogen.frozen.coefficients, schema 1): what `demogen fit` runs; and the pieces of a schema-2
predictor file (a linear or boosted-trees head, the whole object)."""

import hashlib
import pathlib
from importlib.metadata import version

from demogen.competition import pgdl
from demogen.defaults import DEFAULTS, EXTRACTOR_VERSION
from demogen.frozen import coefficients
from demogen.measure import features as registry
from demogen.measure.layers import SLOTS
from demogen.measure.signature import feature_names
from demogen_fit import ablations, regression, tables

DEFAULT_OUT = "coefficients.json"


def _describe(source):
    """A source as the file records it: its path (relative to the repository when inside it)
    and, for a table, its SHA-256."""
    path = pathlib.Path(source).resolve()
    shown = str(path.relative_to(tables.REPOSITORY)) if path.is_relative_to(
        tables.REPOSITORY) else str(path)
    if path.is_dir():
        return {"task_folder": shown}
    return {"table": shown, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def fit(table, sources, transform="log", seed=0):
    """Fit qrt+`transform` on the usable models of `table`; returns (Coefficients, fitted
    estimator, the models used, evaluation figures, dropped models)."""
    row = ablations.Row(f"qrt+{transform}", ablations.QUARTILES, transform)
    kept, dropped = tables.usable(table, row.features, transform)
    figures = regression.evaluate(row.estimator(), kept[row.features], kept["gap"],
                                  tables.configuration_groups(kept), seed)
    estimator = row.estimator().fit(kept[row.features], kept["gap"])
    metrics = {k: figures[k] for k in ("adjusted_r2", "kfold_r2", "grouped_kfold_r2", "mse",
                                       "n_models")}
    frozen = coefficients.from_dict({
        "schema_version": 1, "target": "gap", "transform": transform,
        "features": feature_names(SLOTS, "quartile"),
        "coefficients": [float(c) for c in estimator.coef_],
        "intercept": estimator.intercept_,
        "extractor": {"version": int(kept["extractor_version"].iloc[0]),
                      "n_examples": int(kept["n_examples"].iloc[0]),
                      "seed": int(kept["sample_seed"].iloc[0]),
                      "batch_size": DEFAULTS["batch_size"], "statistic": "quartile",
                      "normalize": True, "signed": False, "layer_rule": "default"},
        "pool": {"sources": [_describe(s) for s in sources],
                 "tasks": sorted(kept["task"].unique().tolist()),
                 "n_models": len(kept), "dropped": dropped,
                 "folds": {"n_splits": regression.N_FOLDS, "seed": seed,
                           "groups": "task and every hyperparameter but the seed"}},
        "metrics": metrics,
        "created_with": {"demogen": version("demogen")}})
    return frozen, estimator, kept, figures, dropped


def linear_head(coefficients, intercept):
    """A schema-2 linear head: prediction = coefficients . phi + intercept."""
    return {"kind": "linear", "coefficients": [float(c) for c in coefficients],
            "intercept": float(intercept)}


def trees_head(model):
    """A schema-2 trees head from a fitted GradientBoostingRegressor (squared error, default
    init: the constant training mean)."""
    if model.loss != "squared_error" or model.init is not None:
        raise ValueError("only a squared-error GradientBoostingRegressor with the default init "
                         "can be frozen")
    trees = []
    for estimator in model.estimators_[:, 0]:
        tree = estimator.tree_
        trees.append({"feature": [int(f) for f in tree.feature],
                      "threshold": [float(t) for t in tree.threshold],
                      "left": [int(c) for c in tree.children_left],
                      "right": [int(c) for c in tree.children_right],
                      "value": [float(v) for v in tree.value[:, 0, 0]]})
    return {"kind": "trees", "init": float(model.init_.constant_.ravel()[0]),
            "learning_rate": float(model.learning_rate), "trees": trees}


def predictor_dict(name, features, transforms, head, fallback, pool, metrics, target="gap",
                   train_accuracy=None, feature_versions=None):
    """A validated schema-2 predictor object, with this demogen's extractor defaults, the
    versions of the features' groups (default: this demogen's; a fit passes those of its
    tables) and the versions it was created with; a two-part one (target "test_acc") with its
    `train_accuracy` settings."""
    obj = {"schema_version": coefficients.PREDICTOR_SCHEMA_VERSION, "name": name,
           "target": target, "features": list(features), "transforms": list(transforms),
           "head": head, "fallback": float(fallback),
           "extractor": {"version": EXTRACTOR_VERSION, **DEFAULTS},
           "feature_versions": feature_versions or registry.versions(registry.groups_of(features)),
           "pool": pool, "metrics": metrics,
           "created_with": {p: version(p) for p in ("demogen", "numpy", "scikit-learn")}}
    if train_accuracy is not None:
        obj["train_accuracy"] = dict(train_accuracy)
    coefficients.from_dict(obj, f"predictor {name}")
    return obj


def write(frozen, path):
    """Write a frozen file atomically: a Coefficients, a Predictor or a predictor object (which
    is validated first)."""
    obj = frozen if isinstance(frozen, dict) else frozen.as_dict()
    coefficients.from_dict(obj, str(path))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pgdl.write_json(path, obj)
