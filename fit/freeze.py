"""Fit the signature regression on a pool and freeze it into a coefficient file
(demogen.coefficients): what `demogen fit` runs."""

import hashlib
import pathlib
from importlib.metadata import version

from demogen import coefficients, pgdl
from demogen.layers import SLOTS
from demogen.margins import DEFAULTS
from demogen.signature import feature_names
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
        "schema_version": coefficients.SCHEMA_VERSION, "target": "gap", "transform": transform,
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


def write(frozen, path):
    """Write a coefficient file atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pgdl.write_json(path, frozen.as_dict())
