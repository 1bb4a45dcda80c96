"""The frozen predictor file: everything needed to turn a trained model into its prediction.
Both schemas load as one `Predictor`, which the runtime (demogen.frozen.predictor) evaluates one
way.

Schema 2: any columns of demogen.measure.features, each with its transform, and a linear or
boosted-trees head.

    {"schema_version": 2, "name": ..., "target": "gap" | "test_acc" | "score",
     "features": ["qrt.unnorm.h1.q2", ...], "transforms": ["log" | "linear", ...],
     "head": {"kind": "linear", "coefficients": [...], "intercept": b}
           | {"kind": "trees", "init": c, "learning_rate": r,
              "trees": [{"feature", "threshold", "left", "right", "value"}, ...]},
     "fallback": g, "extractor": {"version", "n_examples", "seed", "batch_size"},
     "feature_versions": {group: "<producer version>.<group version>", ...},
     "pool": {...}, "metrics": {...}, "created_with": {...},
     "train_accuracy": {"n_examples", "seed"}}          (only with target "test_acc")

`target` is what the head predicts, and so what complexity() returns:
- "gap": the predicted generalization gap;
- "score": a ranking score (a higher score predicts a larger gap; not in accuracy units);
- "test_acc": the test accuracy, of a *two-part* predictor: complexity() returns the gap
  measured training accuracy - predicted test accuracy, the training accuracy measured on a
  seeded sample of `train_accuracy["n_examples"]` training examples drawn with its `seed`.

Schema 1 (the paper's log-linear map of the 20-number margin signature; the shipped `paper_nin`
file) loads as a Predictor with a linear head on the 20 columns of its signature variant:

    {"schema_version": 1, "target": "gap" | "test_acc", "transform": "log" | "linear",
     "features": ["input.lower_fence", ...], "coefficients": [...], "intercept": b,
     "extractor": {"version", "n_examples", "seed", "batch_size", "statistic", "normalize",
                   "signed", "layer_rule"},
     "pool": {...}, "metrics": {...}, "created_with": {...}}

(a schema-1 file fitted on the test accuracy returns the predicted test accuracy).

A tree is a list of nodes given by five arrays, node 0 the root; a leaf has left == right == -1
and an internal node children with larger indices. A row goes left where its transformed value,
cast to float32, is <= the threshold (scikit-learn's rule), and the prediction is init plus
learning_rate times each tree's leaf value, added tree by tree.

The fallback rule, one for every file: a model with an undefined feature (NaN or infinite, or
<= 0 under log) gets the file's `fallback` as its prediction (what `demogen_fit` writes: the
median gap, or the median score, of the training models); a schema-1 file has none, and its
fallback is SCHEMA_1_FALLBACK, a gap of 0.

Loading validates all of it and refuses a file that this demogen cannot honour.
"""

import dataclasses
import functools
import importlib.resources
import json
import math

import numpy as np

from demogen.defaults import EXTRACTOR_VERSION, SHIPPED_PREDICTORS
from demogen.measure import features as registry
from demogen.measure.layers import SLOTS
from demogen.measure.signature import STATISTICS, feature_names

SCHEMA_VERSIONS = (1, 2)
PREDICTOR_SCHEMA_VERSION = 2  # what demogen_fit writes
TRANSFORMS = ("log", "linear")
TARGETS = ("gap", "test_acc", "score")
SCHEMA_1_FALLBACK = 0.0
EXTRACTOR_KEYS = ("version", "n_examples", "seed", "batch_size", "statistic", "normalize",
                  "signed", "layer_rule")
SCHEMA_1_KEYS = ("target", "transform", "features", "coefficients", "intercept", "extractor",
                 "pool", "metrics", "created_with")
PREDICTOR_KEYS = ("name", "target", "features", "transforms", "head", "fallback", "extractor",
                  "feature_versions", "pool", "metrics", "created_with")
# Before groups had versions of their own, a file had one "features_version"; its 1 is version
# "1.1" of every group it names.
LEGACY_FEATURES_VERSION = {1: "1.1"}
PREDICTOR_EXTRACTOR_KEYS = ("version", "n_examples", "seed", "batch_size")
TRAIN_ACCURACY_KEYS = ("n_examples", "seed")
HEAD_KEYS = {"linear": ("kind", "coefficients", "intercept"),
             "trees": ("kind", "init", "learning_rate", "trees")}
TREE_KEYS = ("feature", "threshold", "left", "right", "value")


def transform(X, transforms):
    """phi(X) column by column (X: (n, p), one transform per column): the natural log where the
    transform is "log", NaN where such a value is <= 0 or NaN; the value itself where it is
    "linear"."""
    values = np.asarray(X, dtype=np.float64)
    log = np.array([t == "log" for t in transforms], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(log, np.log(np.where(values > 0, values, np.nan)), values)


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A frozen predictor of either schema: columns of demogen.measure.features, one transform
    each, a head (the validated JSON object, numbers as floats and node indices as ints), the
    fallback, and, for a two-part predictor, the settings of its measured training accuracy."""
    name: str
    target: str
    features: list
    transforms: list
    head: dict
    fallback: float
    extractor: dict
    feature_versions: dict
    pool: dict
    metrics: dict
    created_with: dict
    train_accuracy: dict = None
    schema_version: int = PREDICTOR_SCHEMA_VERSION

    @property
    def two_part(self):
        """Whether the prediction is measured training accuracy - the head's test accuracy."""
        return self.train_accuracy is not None

    def undefined(self, X):
        """(n, p) booleans: where a value is NaN or infinite, or <= 0 under the log transform."""
        return ~np.isfinite(self._transform(X))

    def predict_many(self, X, train_accuracy=None):
        """The predictions (float64) for the rows of X, an (n, p) array of feature values in
        `features` order; a two-part predictor needs each row's measured training accuracy. A
        row with an undefined value gets `fallback`."""
        phi = self._transform(X)
        if self.two_part:
            if train_accuracy is None:
                raise ValueError(f"predictor {self.name!r} is two-part: give the measured "
                                 "training accuracy of each row")
            train_accuracy = np.asarray(train_accuracy, dtype=np.float64).reshape(-1)
            if train_accuracy.shape != (len(phi),):
                raise ValueError(f"expected {len(phi)} training accuracies, one per row, got "
                                 f"shape {train_accuracy.shape}")
            phi = np.column_stack([phi, train_accuracy])
        fallback = ~np.isfinite(phi).all(axis=1)
        phi[fallback] = 0.0
        p = len(self.features)
        if self.head["kind"] == "linear":  # a dot product per row: the same sums for any n
            out = np.array([row @ self._arrays for row in phi[:, :p]], dtype=np.float64)
            out += self.head["intercept"]
        else:
            out = self._boost(phi[:, :p].astype(np.float32))
        if self.two_part:
            out = phi[:, p] - out
        return np.where(fallback, self.fallback, out)

    def as_dict(self):
        """The JSON object of the file, in the schema it was read from."""
        if self.schema_version == 1:
            return {"schema_version": 1, "target": self.target, "transform": self.transforms[0],
                    "features": [".".join(f.split(".")[-2:]) for f in self.features],
                    "coefficients": list(self.head["coefficients"]),
                    "intercept": self.head["intercept"], "extractor": dict(self.extractor),
                    "pool": self.pool, "metrics": self.metrics, "created_with": self.created_with}
        obj = {"schema_version": PREDICTOR_SCHEMA_VERSION, "name": self.name,
               "target": self.target, "features": list(self.features),
               "transforms": list(self.transforms), "head": json.loads(json.dumps(self.head)),
               "fallback": self.fallback, "extractor": dict(self.extractor),
               "feature_versions": dict(self.feature_versions), "pool": self.pool,
               "metrics": self.metrics, "created_with": self.created_with}
        if self.two_part:
            obj["train_accuracy"] = dict(self.train_accuracy)
        return obj

    def _transform(self, X):
        values = np.asarray(X, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.features):
            raise ValueError(f"expected an (n, {len(self.features)}) array of the features "
                             f"{', '.join(self.features)}; got shape {values.shape}")
        return transform(values, self.transforms)

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


def _train_accuracy(obj, where):
    """The validated training-accuracy settings of a schema-2 object (None when it has none)."""
    settings = obj.get("train_accuracy")
    if obj["target"] != "test_acc":
        _require(settings is None, where,
                 "train_accuracy settings belong to a two-part predictor (target test_acc)")
        return None
    _require(isinstance(settings, dict), where,
             "a test_acc head is the second part of a two-part predictor: it needs "
             "train_accuracy settings {\"n_examples\", \"seed\"} for the measured training "
             "accuracy it is subtracted from")
    _require(set(settings) == set(TRAIN_ACCURACY_KEYS), where,
             f"this demogen measures the training accuracy with exactly the settings "
             f"{', '.join(TRAIN_ACCURACY_KEYS)} (got {', '.join(sorted(settings))}); refit with "
             "`demogen fit` or use the demogen release that wrote it")
    _require(_integer(settings["n_examples"]) and settings["n_examples"] >= 1, where,
             "train_accuracy n_examples must be a positive integer")
    _require(_integer(settings["seed"]) and settings["seed"] >= 0, where,
             "train_accuracy seed must be a non-negative integer")
    return dict(settings)


def _feature_versions(obj, names, where):
    """{group: version} of the groups the features belong to, each checked against this
    demogen's: a group this runtime does not compute, or computes in another version, is refused
    with its name (a file of an earlier demogen with one "features_version" maps it with
    LEGACY_FEATURES_VERSION)."""
    try:
        groups = registry.groups_of(names)
    except ValueError as error:
        raise ValueError(f"{where}: {error}; name only these columns, or refit with `demogen "
                         "fit`") from None
    offline = [g for g in groups if not registry.GROUPS[g].shipped]
    _require(not offline, where, f"the groups {', '.join(offline)} are offline baselines, which "
                                 "the runtime does not compute; a frozen predictor cannot use them")
    legacy = obj.get("features_version")
    if legacy is not None and "feature_versions" not in obj:
        _require(legacy in LEGACY_FEATURES_VERSION, where,
                 f"features_version {legacy!r} is not one this demogen knows; refit with "
                 "`demogen fit`")
        return {group: LEGACY_FEATURES_VERSION[legacy] for group in groups}
    stated = obj["feature_versions"]
    _require(isinstance(stated, dict) and set(stated) == set(groups), where,
             f"feature_versions must give the version of exactly the groups "
             f"{', '.join(groups)}")
    changed = {g: v for g, v in stated.items() if v != registry.version(g)}
    _require(not changed, where, "fitted on features whose groups have changed since: " + ", ".join(
        f"{g} version {v} (this demogen computes {registry.version(g)})"
        for g, v in changed.items()) + "; refit with `demogen fit` on tables measured by this "
        "demogen (`demogen zoo` or `demogen zoo --remeasure` refreshes a table's rows)")
    return dict(stated)


def _predictor(obj, where):
    """Validate a schema-2 object and return it as `Predictor`."""
    missing = [k for k in PREDICTOR_KEYS if k not in obj
               and not (k == "feature_versions" and "features_version" in obj)]
    _require(not missing, where, f"missing keys {', '.join(missing)}")
    unknown = sorted(set(obj) - set(PREDICTOR_KEYS)
                     - {"schema_version", "train_accuracy", "features_version"})
    _require(not unknown, where, f"unknown keys {', '.join(unknown)}")
    _require(isinstance(obj["name"], str) and obj["name"], where, "name must be a non-empty string")
    _require(obj["target"] in TARGETS, where,
             f"target {obj['target']!r}; expected one of {', '.join(TARGETS)}")
    train_accuracy = _train_accuracy(obj, where)
    names, transforms = obj["features"], obj["transforms"]
    _require(isinstance(names, list) and names and all(isinstance(n, str) for n in names),
             where, "features must be a non-empty list of column names")
    _require(len(set(names)) == len(names), where, "features must not repeat a column")
    feature_versions = _feature_versions(obj, names, where)
    _require(isinstance(transforms, list) and len(transforms) == len(names), where,
             f"expected {len(names)} transforms, one per feature")
    for name in transforms:
        _require(name in TRANSFORMS, where,
                 f"transform {name!r}; expected one of {', '.join(TRANSFORMS)}")
    _require(_number(obj["fallback"]), where, "fallback must be a finite number")
    extractor = obj["extractor"]
    _check_extractor(extractor, PREDICTOR_EXTRACTOR_KEYS, where)
    _require(_integer(extractor["seed"]) and extractor["seed"] >= 0, where,
             "extractor seed must be a non-negative integer")
    return Predictor(obj["name"], obj["target"], list(names), list(transforms),
                     _head(obj["head"], len(names), where), float(obj["fallback"]),
                     dict(extractor), feature_versions, obj["pool"], obj["metrics"],
                     obj["created_with"], train_accuracy)


def _schema_1(obj, where):
    """Validate a schema-1 object and return it as `Predictor`: a linear head on the columns of
    its signature variant, the fallback SCHEMA_1_FALLBACK."""
    missing = [k for k in SCHEMA_1_KEYS if k not in obj]
    _require(not missing, where, f"missing keys {', '.join(missing)}")
    _require(obj["transform"] in TRANSFORMS, where,
             f"transform {obj['transform']!r}; expected one of {', '.join(TRANSFORMS)}")
    _require(obj["target"] in ("gap", "test_acc"), where,
             f"target {obj['target']!r}; expected gap or test_acc")
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
    head = _head({"kind": "linear", "coefficients": obj["coefficients"],
                  "intercept": obj["intercept"]}, len(expected), where)
    prefix = ".".join(["qrt" if extractor["statistic"] == "quartile" else "mom"]
                      + ([] if extractor["normalize"] else ["unnorm"])
                      + (["signed"] if extractor["signed"] else []))
    return Predictor(f"schema-1 {prefix}+{obj['transform']}", obj["target"],
                     [f"{prefix}.{name}" for name in expected], [obj["transform"]] * len(expected),
                     head, SCHEMA_1_FALLBACK, dict(extractor), {prefix: registry.version(prefix)},
                     obj["pool"], obj["metrics"], obj["created_with"], schema_version=1)


def from_dict(obj, where="coefficient file"):
    """Validate a frozen predictor object of either schema and return it as `Predictor`."""
    _require(isinstance(obj, dict), where, "not a JSON object")
    version = obj.get("schema_version")
    _require(version in SCHEMA_VERSIONS, where,
             f"schema version {version!r}, this demogen reads versions "
             f"{' and '.join(map(str, SCHEMA_VERSIONS))}; refit with `demogen fit` or use the "
             "demogen release that wrote it")
    return _predictor(obj, where) if version == PREDICTOR_SCHEMA_VERSION else _schema_1(obj, where)


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
