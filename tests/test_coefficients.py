"""The frozen coefficient file: validation, prediction, and the predictors shipped with demogen."""

import copy
import json

import numpy as np
import pytest

from demogen import EXTRACTOR_VERSION
from demogen.frozen import coefficients
from demogen.measure.layers import SLOTS
from demogen.measure.signature import feature_names


def _valid():
    return {"schema_version": 1, "target": "gap", "transform": "log",
            "features": feature_names(SLOTS, "quartile"),
            "coefficients": [0.01 * k for k in range(20)], "intercept": 0.5,
            "extractor": {"version": EXTRACTOR_VERSION, "n_examples": 2048, "seed": 0,
                          "batch_size": 256, "statistic": "quartile", "normalize": True,
                          "signed": False, "layer_rule": "default"},
            "pool": {}, "metrics": {}, "created_with": {}}


def test_a_schema_1_file_is_the_log_linear_formula_with_a_fallback_of_0():
    frozen = coefficients.from_dict(_valid())
    assert isinstance(frozen, coefficients.Predictor) and frozen.schema_version == 1
    assert frozen.features == [f"qrt.{name}" for name in feature_names(SLOTS, "quartile")]
    signature = np.linspace(0.5, 3.0, 20)
    expected = sum(0.01 * k * np.log(v) for k, v in enumerate(signature)) + 0.5
    undefined = np.r_[1.0, 0.0, np.ones(18)]  # input.q1 = 0 under log
    assert frozen.predict_many([signature, undefined]) == pytest.approx(
        [expected, coefficients.SCHEMA_1_FALLBACK])
    with pytest.raises(ValueError, match=r"expected an \(n, 20\) array"):
        frozen.predict_many([np.ones(19)])
    linear = coefficients.from_dict({**_valid(), "transform": "linear"})
    assert linear.predict_many([signature]) == pytest.approx(
        [sum(0.01 * k * v for k, v in enumerate(signature)) + 0.5])
    unnorm = coefficients.from_dict({**_valid(), "extractor": {**_valid()["extractor"],
                                                               "normalize": False}})
    assert unnorm.features[0] == "qrt.unnorm.input.lower_fence"


def test_round_trip_through_a_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coefficients.from_dict(_valid()).as_dict()))
    assert coefficients.load(path).as_dict() == _valid()


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(schema_version=3), "schema version 3, .* versions 1 and 2"),
    (lambda c: c.pop("intercept"), "missing keys intercept"),
    (lambda c: c.update(transform="sqrt"), "transform 'sqrt'"),
    (lambda c: c["extractor"].update(version=EXTRACTOR_VERSION + 1), "refit with `demogen fit`"),
    (lambda c: c["extractor"].pop("seed"), "exactly the keys"),
    (lambda c: c["extractor"].update(signed=True), "need the linear transform"),
    (lambda c: c["extractor"].update(layer_rule="user"), "default layer rule"),
    (lambda c: c["features"].reverse(), "signature names in order"),
    (lambda c: c["coefficients"].pop(), "expected 20 head coefficients"),
    (lambda c: c["coefficients"].__setitem__(3, float("nan")), "finite numbers"),
    (lambda c: c["extractor"].update(statistic="moment"), "signature names in order"),
])
def test_invalid_files_are_refused_with_the_reason(change, message):
    obj = copy.deepcopy(_valid())
    change(obj)
    with pytest.raises(ValueError, match=message):
        coefficients.from_dict(obj)


def test_broken_json_is_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        coefficients.load(path)


def test_the_shipped_predictors_load_and_the_selected_one_is_the_default():
    assert coefficients.load() == coefficients.load(predictor="selected")
    assert isinstance(coefficients.load(), coefficients.Predictor)
    with pytest.raises(ValueError, match="no shipped predictor 'best'; the shipped ones are "
                                         "selected, paper_nin"):
        coefficients.load(predictor="best")
    frozen = coefficients.load(predictor="paper_nin")
    assert frozen.transforms == ["log"] * 20 and frozen.extractor["version"] == EXTRACTOR_VERSION
    assert frozen.pool["sources"][0]["table"] == "features_cache/nin.csv"
