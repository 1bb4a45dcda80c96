"""The frozen coefficient file: a fitted log-linear (or linear) map from a margin signature to the
predicted generalization gap, with everything needed to reproduce the signature it expects.

A small JSON object (SCHEMA_VERSION 1):

    {"schema_version": 1, "target": "gap", "transform": "log" | "linear",
     "features": ["input.lower_fence", ...], "coefficients": [...], "intercept": b,
     "extractor": {"version", "n_examples", "seed", "batch_size", "statistic", "normalize",
                   "signed", "layer_rule"},
     "pool": {...}, "metrics": {...}, "created_with": {...}}

Loading validates all of it and refuses a file that this demogen cannot honour.
"""

import dataclasses
import importlib.resources
import json
import math

import numpy as np

from demogen.layers import SLOTS
from demogen.margins import EXTRACTOR_VERSION
from demogen.signature import STATISTICS, feature_names

SCHEMA_VERSION = 1
TRANSFORMS = ("log", "linear")
TARGETS = ("gap", "test_acc")
EXTRACTOR_KEYS = ("version", "n_examples", "seed", "batch_size", "statistic", "normalize",
                  "signed", "layer_rule")
DEFAULT_FILE = "default_coefficients.json"


@dataclasses.dataclass(frozen=True)
class Coefficients:
    """g_hat = coefficients . phi(signature) + intercept, phi = log or the identity."""
    features: list
    coefficients: np.ndarray
    intercept: float
    transform: str
    target: str
    extractor: dict
    pool: dict
    metrics: dict
    created_with: dict

    def predict(self, signature):
        """The predicted target (the gap by default) from signature values in `features` order."""
        values = np.asarray(signature, dtype=np.float64)
        if values.shape != (len(self.features),):
            raise ValueError(f"expected {len(self.features)} signature values ({self.features[0]}"
                             f" ... {self.features[-1]}), got shape {values.shape}")
        if self.transform == "log":
            if not np.all(values > 0):
                bad = [n for n, v in zip(self.features, values) if not v > 0]
                raise ValueError(f"the log transform needs positive features; {', '.join(bad)} "
                                 "are zero, negative or NaN (e.g. no correctly classified "
                                 "example in the sample)")
            values = np.log(values)
        elif not np.all(np.isfinite(values)):
            raise ValueError("the signature holds NaN or infinite values")
        return float(values @ self.coefficients + self.intercept)

    def as_dict(self):
        """The JSON object of the file."""
        return {"schema_version": SCHEMA_VERSION, "target": self.target,
                "transform": self.transform, "features": list(self.features),
                "coefficients": [float(c) for c in self.coefficients],
                "intercept": float(self.intercept), "extractor": dict(self.extractor),
                "pool": self.pool, "metrics": self.metrics, "created_with": self.created_with}


def _require(condition, where, message):
    if not condition:
        raise ValueError(f"{where}: {message}")


def from_dict(obj, where="coefficient file"):
    """Validate a coefficient object and return it as `Coefficients`."""
    _require(isinstance(obj, dict), where, "not a JSON object")
    version = obj.get("schema_version")
    _require(version == SCHEMA_VERSION, where,
             f"schema version {version!r}, this demogen reads version {SCHEMA_VERSION}; refit "
             "with `demogen fit` or use the demogen release that wrote it")
    missing = [k for k in ("target", "transform", "features", "coefficients", "intercept",
                           "extractor", "pool", "metrics", "created_with") if k not in obj]
    _require(not missing, where, f"missing keys {', '.join(missing)}")
    _require(obj["transform"] in TRANSFORMS, where,
             f"transform {obj['transform']!r}; expected one of {', '.join(TRANSFORMS)}")
    _require(obj["target"] in TARGETS, where,
             f"target {obj['target']!r}; expected one of {', '.join(TARGETS)}")
    extractor = obj["extractor"]
    _require(isinstance(extractor, dict) and set(extractor) == set(EXTRACTOR_KEYS), where,
             f"extractor settings must have exactly the keys {', '.join(EXTRACTOR_KEYS)}")
    _require(extractor["version"] == EXTRACTOR_VERSION, where,
             f"fitted on signatures of extractor version {extractor['version']}, but this "
             f"demogen extracts version {EXTRACTOR_VERSION}; refit with `demogen fit` on tables "
             "made by this version")
    _require(extractor["statistic"] in STATISTICS, where,
             f"unknown statistic {extractor['statistic']!r}")
    _require(extractor["layer_rule"] == "default", where,
             "only the default layer rule can be frozen (user-named layers differ per model)")
    for key in ("n_examples", "batch_size"):
        _require(isinstance(extractor[key], int) and extractor[key] >= 1, where,
                 f"extractor {key} must be a positive integer")
    _require(not (extractor["signed"] and obj["transform"] == "log"), where,
             "signed margins can be negative: they need the linear transform")
    expected = feature_names(SLOTS, extractor["statistic"])
    _require(obj["features"] == expected, where,
             f"features must be the {len(expected)} signature names in order "
             f"({expected[0]}, ..., {expected[-1]})")
    coefficients = obj["coefficients"]
    _require(isinstance(coefficients, list) and len(coefficients) == len(expected), where,
             f"expected {len(expected)} coefficients, one per feature")
    numbers = coefficients + [obj["intercept"]]
    _require(all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
                 for c in numbers), where, "coefficients and intercept must be finite numbers")
    return Coefficients(list(obj["features"]), np.array(coefficients, dtype=np.float64),
                        float(obj["intercept"]), obj["transform"], obj["target"],
                        dict(extractor), obj["pool"], obj["metrics"], obj["created_with"])


def load(path=None):
    """Read and validate a coefficient file; None reads the default one shipped with demogen."""
    if path is None:
        text = importlib.resources.files("demogen").joinpath("resources", DEFAULT_FILE) \
            .read_text(encoding="utf-8")
        where = f"demogen's default coefficients ({DEFAULT_FILE})"
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        where = str(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error})") from None
    return from_dict(obj, where)
