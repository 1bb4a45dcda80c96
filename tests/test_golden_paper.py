"""The shipped `paper` predictor (a schema-1 file) predicts what it predicted before frozen files
of both schemas went through one runtime path: golden signatures and predictions, recorded with
the schema-1 code path of demogen 0.1.0 (commit 8209d26) in tests/data/golden_paper.json."""

import json
import pathlib
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for, resnet

from demogen import margin_signature
from demogen.frozen import coefficients, predictor

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden_paper.json"


def cases():
    """{name: (model, dataset)}: three CNNs, a residual network and a CNN whose labels are all
    wrong (no correctly classified example: its signature is undefined)."""
    out = {}
    for name, model in [("cnn0", cnn(seed=0)), ("cnn1", cnn(seed=1)), ("cnn2", cnn(seed=2)),
                        ("resnet0", resnet(seed=0)), ("undefined", cnn(seed=3))]:
        x, y = data_for(model, n=300)
        if name == "undefined":
            y = (np.asarray(model(x)).argmax(axis=1) + 1) % model.outputs[0].shape[-1]
        out[name] = (model, tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))))
    return out


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper")
    (folder / "coefficients.json").write_text(coefficients.shipped_text("paper_nin"))
    return str(folder)


def test_complexity_gives_the_golden_predictions(golden, program_dir):
    """complexity() is the frozen map of the signature measured here, to the last bits; that
    signature is the golden one to float32 precision (TensorFlow's float32 kernels round
    differently on different CPUs: up to 3e-6 apart here, where 1e-5 still catches any change of
    method), and so is the prediction."""
    frozen = coefficients.load(predictor="paper_nin")
    for name, (model, ds) in cases().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = predictor.complexity(model, ds, program_dir=program_dir)
            signature = np.asarray(margin_signature(model, ds).values, dtype=float)
        expected = np.array([np.nan if v is None else v for v in golden[name]["signature"]])
        np.testing.assert_allclose(signature, expected, rtol=1e-5, atol=0, err_msg=name)
        assert value == pytest.approx(frozen.predict_many(signature[None])[0], rel=1e-12), name
        assert value == pytest.approx(golden[name]["prediction"], rel=1e-5, abs=1e-9), name
    assert golden["undefined"]["prediction"] == coefficients.SCHEMA_1_FALLBACK


def test_the_frozen_map_gives_the_golden_predictions_from_the_golden_signatures(golden):
    frozen = coefficients.load(predictor="paper_nin")
    signatures = np.array([[np.nan if v is None else v for v in case["signature"]]
                           for case in golden.values()])
    # to the last bits only: a 20-term dot product's rounding depends on the CPU's BLAS kernel
    np.testing.assert_allclose(frozen.predict_many(signatures),
                               [case["prediction"] for case in golden.values()],
                               rtol=1e-13, atol=0)
