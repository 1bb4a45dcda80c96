"""The paper's Table 1 for our pool (docs/method.md section 6), with the context a reader needs: the
per-layer table, the signed and test-accuracy variants, regressions on the hyperparameters and on
the label noise alone, R^2 within each noise level, and the competition's view (Kendall's tau and
CMI per task)."""

import dataclasses

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score

from demogen.competition import scoring
from demogen.measure.layers import SLOTS
from demogen.measure.signature import STATISTICS
from demogen_fit import regression, tables

PAPER_COLUMN = "paper CNN+CIFAR-10 (adj R2 / 10-fold R2 / MSE 1e-3)"
PAPER = {"qrt+log": "0.94 / 0.90 / 1.5", "qrt+log+unnorm": "0.89 / 0.86 / 2.0",
         "qrt+linear": "0.88 / 0.84 / 2.2", "sf+log": "0.73 / 0.69 / 3.5",
         "sl+log": "0.86 / 0.84 / 2.2", "moment+log": "0.93 / 0.87 / 1.6",
         "best4+log": "0.89 / 0.88 / 2.1", "spectral+log": "0.73 / 0.70 / 3.5",
         "Jacobian+log": "0.42 / negative / 5.0", "LM+linear": "0.35 / negative / 5.2"}
PAPER_LAYERS = {"input": 0.77, "h1": 0.77, "h2": 0.80, "h3": 0.86, "all": 0.94}


def columns(prefix, statistic="quartile", slots=SLOTS):
    """The signature columns of a variant, e.g. columns("qrt.unnorm")."""
    return [f"{prefix}.{slot}.{stat}" for slot in slots for stat in STATISTICS[statistic]]


@dataclasses.dataclass(frozen=True)
class Row:
    """One regression of the ablation table."""
    name: str
    features: list
    transform: str = "log"
    selection: str = None
    target: str = "gap"

    def estimator(self):
        return regression.GapRegressor(transform=self.transform, selection=self.selection)


QUARTILES = columns("qrt")
TABLE1 = [
    Row("qrt+log", QUARTILES),
    Row("qrt+log+unnorm", columns("qrt.unnorm")),
    Row("qrt+linear", QUARTILES, "linear"),
    Row("sf+log", QUARTILES, selection="sf"),
    Row("sl+log", QUARTILES, selection="sl"),
    Row("moment+log", columns("mom", "moment")),
    Row("best4+log", QUARTILES, selection="best4"),
    Row("spectral+log", [f"spectral.{s}" for s in STATISTICS["quartile"]]),
    Row("Jacobian+log", [f"jacobian.{s}" for s in STATISTICS["quartile"]]),
    Row("LM+linear", [f"lm.{slot}" for slot in SLOTS], "linear"),
]
VARIANTS = [
    Row("qrt+linear+signed", columns("qrt.signed"), "linear"),
    Row("qrt+log, target test accuracy", QUARTILES, target="test_acc"),
]


def one_hot(table):
    """The training conditions as indicator columns (first level of each dropped): every
    hyperparameter but the seed, and the label-noise level."""
    names = [c for c in tables.hparam_columns(table) if c != "hp.seed"]
    if table["label_noise"].notna().all():
        names.append("label_noise")
    return pd.get_dummies(table[names].astype(str), drop_first=True).astype(float)


def fit_row(table, row, seed=0):
    """Evaluate one row on the models it can use; the figures plus what was dropped."""
    kept, dropped = tables.usable(table, row.features, row.transform)
    figures = regression.evaluate(row.estimator(), kept[row.features], kept[row.target],
                                  tables.configuration_groups(kept), seed)
    return {"row": row.name, **figures, "dropped": dropped}


def _context_rows(table, seed):
    """Regressions on the training conditions alone: what the margins must beat."""
    rows = []
    kept, dropped = tables.usable(table, QUARTILES, "log")  # the same models as qrt+log
    groups = tables.configuration_groups(kept)
    conditions = one_hot(kept)
    for name, X in [("hyperparameters only (one-hot)", conditions),
                    ("label noise only", conditions.filter(like="label_noise"))]:
        if X.shape[1] == 0:
            continue
        figures = regression.evaluate(regression.GapRegressor(transform="linear"), X,
                                      kept["gap"], groups, seed)
        rows.append({"row": name, **figures, "dropped": dropped})
    return rows


def table1(table, seed=0):
    """Every row of Table 1, the signed and test-accuracy variants and the context rows, as a
    DataFrame beside the paper's numbers (rows whose columns the table lacks say so)."""
    results = []
    for row in TABLE1 + VARIANTS:
        try:
            results.append(fit_row(table, row, seed))
        except ValueError as error:
            results.append({"row": row.name, "note": str(error).split(";")[0]})
    results += _context_rows(table, seed)
    frame = pd.DataFrame(results)
    frame["mse_1e-3"] = frame["mse"] * 1e3
    frame["n_dropped"] = frame["dropped"].map(lambda d: len(d) if isinstance(d, list) else np.nan)
    frame[PAPER_COLUMN] = frame["row"].map(PAPER).fillna("")
    if "note" in frame:
        frame["note"] = frame["note"].fillna("")
    shown = ["row", "adjusted_r2", "kfold_r2", "grouped_kfold_r2", "mse_1e-3", "n_models",
             "n_features", "n_dropped", PAPER_COLUMN] + (["note"] if "note" in frame else [])
    return frame[shown]


def per_layer(table, seed=0):
    """qrt+log on each layer's five statistics alone, and on all four layers."""
    results = []
    for name, slots in [(slot, (slot,)) for slot in SLOTS] + [("all", SLOTS)]:
        figures = fit_row(table, Row(name, columns("qrt", slots=slots)), seed)
        results.append({"layer": name, **{k: figures[k] for k in
                                          ("adjusted_r2", "kfold_r2", "grouped_kfold_r2")},
                        "paper adjusted_r2": PAPER_LAYERS[name]})
    return pd.DataFrame(results)


def competition_view(table, row=TABLE1[0], seed=0):
    """Per task and per noise level, how the fitted predictor ranks and explains the models:
    R^2, Kendall's tau-b and CMI (x 100), of the fit on all models (in-sample) and of the
    grouped 10-fold out-of-fold predictions (honest)."""
    kept, _ = tables.usable(table, row.features, row.transform)
    X, y = kept[row.features], kept[row.target]
    predictions = {"in-sample": row.estimator().fit(X, y).predict(X),
                   "out-of-fold": regression.out_of_fold(row.estimator(), X, y,
                                                         tables.configuration_groups(kept), seed)}
    results = []
    for task, rows in kept.groupby("task", sort=True):
        index = rows.index.to_numpy()
        hparams = rows[tables.hparam_columns(rows)].rename(columns=lambda c: c[3:])
        hparams = hparams.to_dict("records")
        for kind, prediction in predictions.items():
            p, g = prediction[index], rows["gap"].to_numpy()
            scores = scoring.score_task(p, g, hparams, ("kendall_tau", "cmi"))
            results.append({"task": task, "label_noise": rows["label_noise"].iloc[0],
                            "predictions": kind, "n_models": len(rows), "r2": r2_score(g, p),
                            "kendall_tau": scores["kendall_tau"], "cmi": scores["cmi"]})
    return pd.DataFrame(results)
