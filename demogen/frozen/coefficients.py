"""The frozen predictor file: everything needed to turn a trained model into its predicted
generalization gap. Two schemas are read.

Schema 1 (`Coefficients`): a log-linear (or linear) map of the 20-number margin signature.

    {"schema_version": 1, "target": "gap", "transform": "log" | "linear",
     "features": ["input.lower_fence", ...], "coefficients": [...], "intercept": b,
     "extractor": {"version", "n_examples", "seed", "batch_size", "statistic", "normalize",
                   "signed", "layer_rule"},
     "pool": {...}, "metrics": {...}, "created_with": {...}}

Schema 2 (`Predictor`): any columns of demogen.measure.features, each with its transform, and a
linear or boosted-trees head.

    {"schema_version": 2, "name": ..., "target": "gap",
     "features": ["qrt.unnorm.h1.q2", ...], "transforms": ["log" | "linear", ...],
     "head": {"kind": "linear", "coefficients": [...], "intercept": b}
           | {"kind": "trees", "init": c, "learning_rate": r,
              "trees": [{"feature", "threshold", "left", "right", "value"}, ...]},
     "fallback": g, "extractor": {"version", "n_examples", "seed", "batch_size"},
     "features_version": v, "pool": {...}, "metrics": {...}, "created_with": {...}}

A tree is a list of nodes given by five arrays, node 0 the root; a leaf has left == right == -1
and an internal node children with larger indices. A row goes left where its transformed value,
cast to float32, is <= the threshold (scikit-learn's rule), and the prediction is init plus
learning_rate times each tree's leaf value, added tree by tree. A row with an undefined feature
(NaN or infinite, or <= 0 under log) gets `fallback`.

Loading validates all of it and refuses a file that this demogen cannot honour.
"""

import dataclasses
import functools
import importlib.resources
import json
import math

import numpy as np

from demogen.defaults import EXTRACTOR_VERSION, SHIPPED_PREDICTORS
from demogen.measure.features import FEATURES_VERSION, groups_of
from demogen.measure.layers import SLOTS
from demogen.measure.signature import STATISTICS, feature_names

SCHEMA_VERSION = 1  # of `Coefficients` files
PREDICTOR_SCHEMA_VERSION = 2  # of `Predictor` files
TRANSFORMS = ("log", "linear")
TARGETS = ("gap", "test_acc")
EXTRACTOR_KEYS = ("version", "n_examples", "seed", "batch_size", "statistic", "normalize",
                  "signed", "layer_rule")
PREDICTOR_KEYS = ("name", "target", "features", "transforms", "head", "fallback", "extractor",
                  "features_version", "pool", "metrics", "created_with")
PREDICTOR_EXTRACTOR_KEYS = ("version", "n_examples", "seed", "batch_size")
HEAD_KEYS = {"linear": ("kind", "coefficients", "intercept"),
             "trees": ("kind", "init", "learning_rate", "trees")}
TREE_KEYS = ("feature", "threshold", "left", "right", "value")


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


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A schema-2 predictor: columns of demogen.measure.features, one transform each, and a head
    (the validated JSON object, numbers as floats and node indices as ints)."""
    name: str
    target: str
    features: list
    transforms: list
    head: dict
    fallback: float
    extractor: dict
    features_version: int
    pool: dict
    metrics: dict
    created_with: dict

    def undefined(self, X):
        """(n, p) booleans: where a value is NaN or infinite, or <= 0 under the log transform."""
        return ~np.isfinite(self._transform(X))

    def predict_many(self, X):
        """The predictions (float64) for the rows of X, an (n, p) array of feature values in
        `features` order; a row with an undefined value gets `fallback`."""
        phi = self._transform(X)
        fallback = ~np.isfinite(phi).all(axis=1)
        phi[fallback] = 0.0
        if self.head["kind"] == "linear":
            out = (phi * self._arrays).sum(axis=1) + self.head["intercept"]
        else:
            out = self._boost(phi.astype(np.float32))
        return np.where(fallback, self.fallback, out)

    def as_dict(self):
        """The JSON object of the file."""
        return {"schema_version": PREDICTOR_SCHEMA_VERSION, "name": self.name,
                "target": self.target, "features": list(self.features),
                "transforms": list(self.transforms), "head": json.loads(json.dumps(self.head)),
                "fallback": self.fallback, "extractor": dict(self.extractor),
                "features_version": self.features_version, "pool": self.pool,
                "metrics": self.metrics, "created_with": self.created_with}

    def _transform(self, X):
        values = np.asarray(X, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.features):
            raise ValueError(f"expected an (n, {len(self.features)}) array of the features "
                             f"{', '.join(self.features)}; got shape {values.shape}")
        log = np.array([t == "log" for t in self.transforms])
        return np.where(log, np.log(np.where(values > 0, values, np.nan)), values)

    @functools.cached_property
    def _arrays(self):
        """The head as numpy: the coefficient vector, or one tuple of node arrays per tree."""
        if self.head["kind"] == "linear":
            return np.array(self.head["coefficients"], dtype=np.float64)
        return [(np.array(t["feature"], np.intp), np.array(t["threshold"], np.float64),
                 np.array(t["left"], np.intp), np.array(t["right"], np.intp),
                 np.array(t["value"], np.float64)) for t in self.head["trees"]]

    def _boost(self, x32):
        """init + learning_rate * leaf value, tree by tree; every row descends one level per
        step."""
        out = np.full(len(x32), self.head["init"], dtype=np.float64)
        for feature, threshold, left, right, value in self._arrays:
            node = np.zeros(len(x32), np.intp)
            rows = np.flatnonzero(left[node] >= 0)
            while rows.size:
                at = node[rows]
                node[rows] = np.where(x32[rows, feature[at]] <= threshold[at], left[at], right[at])
                rows = rows[left[node[rows]] >= 0]
            out += self.head["learning_rate"] * value[node]
        return out


def _require(condition, where, message):
    if not condition:
        raise ValueError(f"{where}: {message}")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_extractor(extractor, keys, where):
    """The checks both schemas make of the extractor settings."""
    _require(isinstance(extractor, dict) and set(extractor) == set(keys), where,
             f"extractor settings must have exactly the keys {', '.join(keys)}")
    _require(extractor["version"] == EXTRACTOR_VERSION, where,
             f"fitted on signatures of extractor version {extractor['version']}, but this "
             f"demogen extracts version {EXTRACTOR_VERSION}; refit with `demogen fit` on tables "
             "made by this version")
    for key in ("n_examples", "batch_size"):
        _require(isinstance(extractor[key], int) and extractor[key] >= 1, where,
                 f"extractor {key} must be a positive integer")


def _tree(tree, p, where):
    """A validated tree with ints and floats."""
    _require(isinstance(tree, dict) and set(tree) == set(TREE_KEYS), where,
             f"a tree must have exactly the keys {', '.join(TREE_KEYS)}")
    feature, threshold, left, right, value = (tree[k] for k in TREE_KEYS)
    _require(all(isinstance(tree[k], list) for k in TREE_KEYS)
             and len({len(tree[k]) for k in TREE_KEYS}) == 1 and feature, where,
             f"{', '.join(TREE_KEYS)} must be non-empty lists of one length (one entry per node)")
    _require(all(map(_integer, feature + left + right)), where,
             "feature, left and right must hold integers")
    _require(all(map(_number, threshold + value)), where,
             "threshold and value must hold finite numbers")
    n = len(feature)
    for node, (f, a, b) in enumerate(zip(feature, left, right)):
        if a == b == -1:
            continue
        _require(node < a < n and node < b < n, where,
                 f"node {node} has children {a} and {b}; a leaf has -1 and -1, an internal node "
                 f"two later nodes ({node + 1} to {n - 1})")
        _require(0 <= f < p, where, f"node {node} splits on feature {f}, but there are {p}")
    return {"feature": feature, "threshold": [float(t) for t in threshold], "left": left,
            "right": right, "value": [float(v) for v in value]}


def _head(head, p, where):
    """A validated head with ints and floats."""
    _require(isinstance(head, dict) and head.get("kind") in HEAD_KEYS, where,
             f"head kind must be one of {', '.join(HEAD_KEYS)}")
    kind = head["kind"]
    _require(set(head) == set(HEAD_KEYS[kind]), where,
             f"a {kind} head must have exactly the keys {', '.join(HEAD_KEYS[kind])}")
    if kind == "linear":
        coefficients = head["coefficients"]
        _require(isinstance(coefficients, list) and len(coefficients) == p, where,
                 f"expected {p} head coefficients, one per feature")
        _require(all(map(_number, coefficients + [head["intercept"]])), where,
                 "head coefficients and intercept must be finite numbers")
        return {"kind": kind, "coefficients": [float(c) for c in coefficients],
                "intercept": float(head["intercept"])}
    _require(_number(head["init"]) and _number(head["learning_rate"]), where,
             "head init and learning_rate must be finite numbers")
    _require(isinstance(head["trees"], list), where, "head trees must be a list")
    return {"kind": kind, "init": float(head["init"]),
            "learning_rate": float(head["learning_rate"]),
            "trees": [_tree(t, p, f"{where}: head tree {i}") for i, t in enumerate(head["trees"])]}


def _predictor(obj, where):
    """Validate a schema-2 object and return it as `Predictor`."""
    missing = [k for k in PREDICTOR_KEYS if k not in obj]
    _require(not missing, where, f"missing keys {', '.join(missing)}")
    _require(isinstance(obj["name"], str) and obj["name"], where, "name must be a non-empty string")
    _require(obj["target"] in TARGETS, where,
             f"target {obj['target']!r}; expected one of {', '.join(TARGETS)}")
    _require(_integer(obj["features_version"]) and obj["features_version"] == FEATURES_VERSION,
             where,
             f"fitted on features of version {obj['features_version']!r}, but this demogen "
             f"computes version {FEATURES_VERSION}; refit with `demogen fit` on tables made by "
             "this version")
    names, transforms = obj["features"], obj["transforms"]
    _require(isinstance(names, list) and names and all(isinstance(n, str) for n in names),
             where, "features must be a non-empty list of column names")
    _require(len(set(names)) == len(names), where, "features must not repeat a column")
    try:
        groups_of(names)
    except ValueError as error:
        raise ValueError(f"{where}: {error}; name only these columns, or refit with `demogen "
                         "fit`") from None
    _require(isinstance(transforms, list) and len(transforms) == len(names), where,
             f"expected {len(names)} transforms, one per feature")
    for transform in transforms:
        _require(transform in TRANSFORMS, where,
                 f"transform {transform!r}; expected one of {', '.join(TRANSFORMS)}")
    _require(_number(obj["fallback"]), where, "fallback must be a finite number")
    extractor = obj["extractor"]
    _check_extractor(extractor, PREDICTOR_EXTRACTOR_KEYS, where)
    _require(_integer(extractor["seed"]) and extractor["seed"] >= 0, where,
             "extractor seed must be a non-negative integer")
    return Predictor(obj["name"], obj["target"], list(names), list(transforms),
                     _head(obj["head"], len(names), where), float(obj["fallback"]),
                     dict(extractor), obj["features_version"], obj["pool"], obj["metrics"],
                     obj["created_with"])


def from_dict(obj, where="coefficient file"):
    """Validate a frozen predictor object: `Coefficients` for schema version 1, `Predictor` for
    schema version 2."""
    _require(isinstance(obj, dict), where, "not a JSON object")
    version = obj.get("schema_version")
    _require(version in (SCHEMA_VERSION, PREDICTOR_SCHEMA_VERSION), where,
             f"schema version {version!r}, this demogen reads versions {SCHEMA_VERSION} and "
             f"{PREDICTOR_SCHEMA_VERSION}; refit with `demogen fit` or use the demogen release "
             "that wrote it")
    if version == PREDICTOR_SCHEMA_VERSION:
        return _predictor(obj, where)
    missing = [k for k in ("target", "transform", "features", "coefficients", "intercept",
                           "extractor", "pool", "metrics", "created_with") if k not in obj]
    _require(not missing, where, f"missing keys {', '.join(missing)}")
    _require(obj["transform"] in TRANSFORMS, where,
             f"transform {obj['transform']!r}; expected one of {', '.join(TRANSFORMS)}")
    _require(obj["target"] in TARGETS, where,
             f"target {obj['target']!r}; expected one of {', '.join(TARGETS)}")
    extractor = obj["extractor"]
    _check_extractor(extractor, EXTRACTOR_KEYS, where)
    _require(extractor["statistic"] in STATISTICS, where,
             f"unknown statistic {extractor['statistic']!r}")
    _require(extractor["layer_rule"] == "default", where,
             "only the default layer rule can be frozen (user-named layers differ per model)")
    _require(not (extractor["signed"] and obj["transform"] == "log"), where,
             "signed margins can be negative: they need the linear transform")
    expected = feature_names(SLOTS, extractor["statistic"])
    _require(obj["features"] == expected, where,
             f"features must be the {len(expected)} signature names in order "
             f"({expected[0]}, ..., {expected[-1]})")
    coefficients = obj["coefficients"]
    _require(isinstance(coefficients, list) and len(coefficients) == len(expected), where,
             f"expected {len(expected)} coefficients, one per feature")
    _require(all(map(_number, coefficients + [obj["intercept"]])), where,
             "coefficients and intercept must be finite numbers")
    return Coefficients(list(obj["features"]), np.array(coefficients, dtype=np.float64),
                        float(obj["intercept"]), obj["transform"], obj["target"],
                        dict(extractor), obj["pool"], obj["metrics"], obj["created_with"])


def shipped_text(predictor=SHIPPED_PREDICTORS[0]):
    """The text of a predictor file shipped with demogen (one of SHIPPED_PREDICTORS)."""
    if predictor not in SHIPPED_PREDICTORS:
        raise ValueError(f"no shipped predictor {predictor!r}; the shipped ones are "
                         f"{', '.join(SHIPPED_PREDICTORS)}")
    return importlib.resources.files("demogen.frozen").joinpath("resources", f"{predictor}.json") \
        .read_text(encoding="utf-8")


def load(path=None, predictor=SHIPPED_PREDICTORS[0]):
    """Read and validate a frozen predictor file of either schema; None reads the shipped
    predictor of that name."""
    if path is None:
        text, where = shipped_text(predictor), f"demogen's shipped predictor {predictor!r}"
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        where = str(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error})") from None
    return from_dict(obj, where)
