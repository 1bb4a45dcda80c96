"""Schema 2 of the frozen file: any features, a linear or boosted-trees head, a fallback; its
validation, its exactness against scikit-learn, complexity() and the bundle."""

import copy
import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for, keras, layers, randomize
from sklearn.ensemble import GradientBoostingRegressor

from demogen import EXTRACTOR_VERSION
from demogen.cli import main
from demogen.frozen import coefficients, predictor
from demogen.measure import features, margins
from demogen_fit import freeze

SETTINGS = {"n_examples": 128, "seed": 3, "batch_size": 32}


def _valid(head=None, **changes):
    obj = {"schema_version": 2, "name": "test", "target": "gap",
           "features": ["qrt.unnorm.h1.q2", "out.q2", "w.log_spectral.mean"],
           "transforms": ["log", "linear", "linear"],
           "head": head or {"kind": "linear", "coefficients": [0.5, -2.0, 0.25],
                            "intercept": 0.125},
           "fallback": 0.375, "extractor": {"version": EXTRACTOR_VERSION, **SETTINGS},
           "pool": {"n_models": 3}, "metrics": {}, "created_with": {}}
    obj.update(changes)
    obj.setdefault("feature_versions", features.versions(features.groups_of(obj["features"])))
    return obj


def _tree():
    return {"feature": [1, -2, 0, -2, -2], "threshold": [0.5, -2.0, 1.0, -2.0, -2.0],
            "left": [1, -1, 3, -1, -1], "right": [2, -1, 4, -1, -1],
            "value": [0.0, 1.0, 0.0, 2.0, 3.0]}


def _trees_head():
    return {"kind": "trees", "init": 0.5, "learning_rate": 0.1, "trees": [_tree(), _tree()]}


def _dataset(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))


def _write(tmp_path, obj):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "coefficients.json").write_text(json.dumps(obj))
    return str(tmp_path)


def test_a_boosting_head_equals_scikit_learn_on_thresholds_and_float32_boundaries():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = X[:, 0] ** 2 + np.sin(3 * X[:, 1]) - X[:, 2] * X[:, 3] + 0.1 * rng.normal(size=400)
    model = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0).fit(X, y)
    frozen = coefficients.from_dict(freeze.predictor_dict(
        "boost", ["tv.input", "tv.h1", "out.q2", "acc.sample"], ["linear"] * 4,
        freeze.trees_head(model), 0.0, {}, {}))
    splits = [(f, t) for e in model.estimators_[:, 0] for f, t, c in zip(
        e.tree_.feature, e.tree_.threshold, e.tree_.children_left) if c >= 0]
    Z = rng.normal(size=(3 * len(splits), 4))
    for k, (f, t) in enumerate(splits):  # on the threshold, and the float64 values beside it
        Z[3 * k:3 * k + 3, f] = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
    columns = np.array([f for f, _ in splits]).repeat(3)
    thresholds = np.array([t for _, t in splits]).repeat(3)
    chosen = Z[np.arange(len(Z)), columns]
    # the data separate the float32 rule from a float64 one
    assert np.any((chosen <= thresholds) != (chosen.astype(np.float32) <= thresholds))
    np.testing.assert_allclose(frozen.predict_many(Z), model.predict(Z), rtol=0, atol=1e-12)
    assert frozen.head["init"] == pytest.approx(y.mean())


def test_a_hand_built_tree_head_and_its_fallback():
    frozen = coefficients.from_dict(_valid(_trees_head()))
    X = np.array([[2.0, 0.5, 0.0], [2.0, 0.6, 0.0], [np.e, 0.6, 0.0], [np.e ** 2, 0.6, 0.0],
                  [0.0, 0.1, 0.0]])
    # out.q2 <= 0.5: leaf 1; else log(qrt.unnorm.h1.q2) <= 1: leaf 3, else leaf 4; log(0) is
    # undefined
    np.testing.assert_allclose(frozen.predict_many(X), [0.5 + 0.2, 0.5 + 0.4, 0.5 + 0.4,
                                                        0.5 + 0.6, 0.375])


def test_a_linear_head_is_the_hand_computation_and_undefined_rows_fall_back():
    frozen = coefficients.from_dict(_valid())
    X = np.array([[2.0, 0.3, -1.5], [0.0, 0.3, 1.0], [-1.0, 0.3, 1.0], [2.0, np.nan, 1.0],
                  [1.5, -0.7, np.inf]])
    expected = [0.5 * np.log(2.0) - 2.0 * 0.3 + 0.25 * -1.5 + 0.125] + [0.375] * 4
    np.testing.assert_allclose(frozen.predict_many(X), expected, rtol=1e-15)
    assert frozen.undefined(X).tolist() == [[False] * 3, [True, False, False],
                                            [True, False, False], [False, True, False],
                                            [False, False, True]]
    assert frozen.predict_many(np.empty((0, 3))).shape == (0,)
    with pytest.raises(ValueError, match=r"expected an \(n, 3\) array"):
        frozen.predict_many(np.ones(3))


@pytest.mark.parametrize("head", [None, _trees_head()])
def test_as_dict_round_trips_through_a_file(tmp_path, head):
    obj = _valid(head)
    frozen = coefficients.from_dict(obj)
    (tmp_path / "c.json").write_text(json.dumps(frozen.as_dict()))
    loaded = coefficients.load(tmp_path / "c.json")
    assert isinstance(loaded, coefficients.Predictor)
    assert loaded == frozen and loaded.as_dict() == obj


def test_a_file_of_one_features_version_loads_as_version_1_1_of_its_groups():
    obj = _valid()
    obj["features_version"] = obj.pop("feature_versions") and 1
    frozen = coefficients.from_dict(obj)
    assert frozen.feature_versions == {"qrt.unnorm": "1.1", "out": "1.1", "w": "1.1"}
    assert frozen.as_dict() == _valid()
    with pytest.raises(ValueError, match="features_version 2 is not one this demogen knows"):
        coefficients.from_dict({**obj, "features_version": 2})


def test_schema_1_loads_as_a_predictor_and_writes_back_as_it_was():
    shipped = coefficients.load(predictor="paper_nin")
    assert isinstance(shipped, coefficients.Predictor) and shipped.head["kind"] == "linear"
    signature = np.linspace(0.5, 3.0, 20)
    assert shipped.predict_many([signature])[0] == pytest.approx(
        float(np.log(signature) @ shipped.head["coefficients"] + shipped.head["intercept"]),
        rel=1e-15)
    assert shipped.as_dict() == json.loads(coefficients.shipped_text("paper_nin"))
    assert coefficients.from_dict(shipped.as_dict()) == shipped


def _set_node(key, node, value):
    return lambda c: c["head"]["trees"][0][key].__setitem__(node, value)


@pytest.mark.parametrize("head, change, message", [
    (None, lambda c: c.pop("fallback"), "missing keys fallback"),
    (None, lambda c: c["features"].append("qrt.h4.q2"),
     r"c.json: unknown feature\(s\) qrt.h4.q2; .* groups .*\bqrt, .*\bw\b.*; name only these columns"),
    (None, lambda c: c["feature_versions"].update(w="1.2"),
     r"groups have changed since: w version 1.2 \(this demogen computes 1.1\); refit"),
    (None, lambda c: c["feature_versions"].pop("out"),
     "feature_versions must give the version of exactly the groups qrt.unnorm, out, w"),
    (None, lambda c: c.update(features="jacobian.q2 out.q2 w.n_kernels".split()),
     "the groups jacobian are offline baselines"),
    (None, lambda c: c["extractor"].update(version=EXTRACTOR_VERSION + 1),
     "extractor version .*refit with `demogen fit`"),
    (None, lambda c: c["extractor"].update(statistic="quartile"), "exactly the keys"),
    (None, lambda c: c["extractor"].update(seed=-1), "seed must be a non-negative integer"),
    (None, lambda c: c["transforms"].pop(), "expected 3 transforms"),
    (None, lambda c: c["transforms"].__setitem__(1, "sqrt"), "transform 'sqrt'"),
    (None, lambda c: c["head"]["coefficients"].pop(), "expected 3 head coefficients"),
    (None, lambda c: c["head"].update(intercept=float("inf")), "finite numbers"),
    (None, lambda c: c.update(fallback=float("nan")), "fallback must be a finite number"),
    (None, lambda c: c["features"].__setitem__(2, "out.q2"), "must not repeat"),
    (None, lambda c: c.update(target="loss"), "target 'loss'"),
    (None, lambda c: c["head"].update(kind="forest"), "head kind must be one of linear, trees"),
    (_trees_head(), lambda c: c["head"].pop("init"), "a trees head must have exactly the keys"),
    (_trees_head(), lambda c: c["head"]["trees"][0]["value"].pop(), "tree 0: .*one length"),
    (_trees_head(), _set_node("threshold", 0, float("nan")), "tree 0: threshold and value"),
    (_trees_head(), _set_node("left", 0, 5), "tree 0: node 0 has children 5 and 2"),
    (_trees_head(), _set_node("right", 2, 1), "node 2 has children 3 and 1"),
    (_trees_head(), _set_node("left", 1, 3), "node 1 has children 3 and -1"),
    (_trees_head(), _set_node("feature", 2, 3), "node 2 splits on feature 3, but there are 3"),
    (_trees_head(), _set_node("feature", 0, 1.0), "must hold integers"),
    (_trees_head(), lambda c: c["head"].update(learning_rate=None), "init and learning_rate"),
])
def test_invalid_predictors_are_refused_with_the_file_and_the_reason(head, change, message):
    obj = copy.deepcopy(_valid(head))
    change(obj)
    with pytest.raises(ValueError, match=message) as error:
        coefficients.from_dict(obj, "c.json")
    assert str(error.value).startswith("c.json: ")


def test_complexity_is_predict_many_on_the_features_measured_directly(tmp_path):
    model = cnn()
    x, y = data_for(model, n=300)
    obj = _valid(features=["qrt.unnorm.h1.q2", "out.q2", "acc.sample", "tv.h2",
                           "w.log_spectral.mean"],
                 transforms=["log", "linear", "linear", "log", "linear"],
                 head={"kind": "linear", "coefficients": [0.5, -0.2, 0.3, 0.1, 0.05],
                       "intercept": 0.125})
    value = predictor.complexity(model, _dataset(x, y), program_dir=_write(tmp_path, obj))
    frozen = coefficients.from_dict(obj)
    measured, errors = features.compute(features.measure(model, _dataset(x, y), **SETTINGS),
                                        ["qrt.unnorm", "out", "acc", "tv", "w"])
    row = np.array([[measured[name] for name in obj["features"]]])
    assert not errors and not frozen.undefined(row).any()
    assert isinstance(value, float)
    assert value == pytest.approx(frozen.predict_many(row)[0], rel=1e-9)


def test_a_weights_only_predictor_extracts_no_margins(tmp_path, monkeypatch):
    model = cnn()
    obj = _valid(features=["w.log_spectral.mean", "w.log_frobenius.sum"],
                 transforms=["linear", "log"], head=_trees_head())
    expected = coefficients.from_dict(obj).predict_many([[
        features.compute(features.measure(model, None, [features.SPECTRA]), ["w"])[0][name]
        for name in obj["features"]]])[0]

    def refuse(*args, **kwargs):
        raise AssertionError("margins extracted")
    monkeypatch.setattr(margins, "extract_margins", refuse)  # features.measure imports it from there
    assert predictor.complexity(model, None, program_dir=_write(tmp_path, obj)) == expected


def test_an_undefined_feature_gives_the_fallback_with_the_reason(tmp_path):
    model = randomize(keras.Sequential([keras.Input((5,))]
                                       + [layers.Dense(8, activation="relu") for _ in range(3)]
                                       + [layers.Dense(3)]))
    weights = model.get_weights()
    weights[3][:] = -100.0  # every ReLU of the second layer is dead
    model.set_weights(weights)
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    obj = _valid(features=["qrt.h1.q2", "tv.input"], transforms=["log", "log"],
                 head={"kind": "linear", "coefficients": [1.0, 1.0], "intercept": 0.0})
    with pytest.warns(UserWarning, match=r"qrt.h1.q2 = nan under log are undefined \(qrt: "
                      r"layer 1:Dense has zero total variation.*fallback 0.375"):
        value = predictor.complexity(model, _dataset(x, np.zeros(64)),
                                     program_dir=_write(tmp_path, obj))
    assert value == 0.375


def test_the_bundle_ships_a_schema_2_file(tmp_path):
    path = tmp_path / "c.json"
    freeze.write(_valid(_trees_head()), path)
    assert main(["bundle", "--coefficients", str(path), "--out", str(tmp_path / "s.zip")]) == 0
    archive = zipfile.ZipFile(tmp_path / "s.zip")
    shipped = coefficients.from_dict(json.loads(archive.read("coefficients.json")))
    assert isinstance(shipped, coefficients.Predictor) and shipped.as_dict() == _valid(
        _trees_head())
    assert {"demogen/measure/features.py", "demogen/measure/weights.py"} <= set(archive.namelist())
