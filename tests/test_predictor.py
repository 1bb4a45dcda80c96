"""The frozen predictor: complexity(model, ds, program_dir) as the competition calls it."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for

from demogen import margin_signature
from demogen.frozen import coefficients, predictor

HERE = pathlib.Path(__file__).parent


def dataset(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))


def test_complexity_is_the_frozen_prediction_from_the_unbatched_dataset(tmp_path):
    model = cnn()
    x, y = data_for(model, n=300)
    frozen = coefficients.load(predictor="paper_nin")
    (tmp_path / "coefficients.json").write_text(coefficients.shipped_text("paper_nin"))
    settings = {k: frozen.extractor[k] for k in ("n_examples", "seed", "batch_size",
                                                 "statistic", "normalize", "signed")}
    expected = frozen.predict_many([margin_signature(model, (x, y), **settings).values])[0]
    value = predictor.complexity(model, dataset(x, y), program_dir=str(tmp_path))
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-6)


def test_without_a_file_complexity_uses_the_selected_predictor():
    assert predictor.load_coefficients() == coefficients.load(predictor="selected")
    assert predictor.load_coefficients("/nonexistent") == coefficients.load(predictor="selected")


def test_program_dir_coefficients_are_used(tmp_path):
    model = cnn()
    x, y = data_for(model, n=100)
    obj = coefficients.load(predictor="paper_nin").as_dict()
    obj["coefficients"] = [0.0] * len(obj["coefficients"])
    obj["intercept"] = 0.125
    (tmp_path / "coefficients.json").write_text(json.dumps(obj))
    assert predictor.complexity(model, dataset(x, y), program_dir=str(tmp_path)) == 0.125
    assert predictor.complexity(model, dataset(x, y), program_dir=str(tmp_path / "none")) != 0.125


def test_an_undefined_signature_gives_the_documented_fallback(tmp_path):
    model = cnn()
    x, _ = data_for(model, n=60)
    wrong = (np.asarray(model(x)).argmax(axis=1) + 1) % 5  # no example classified correctly
    (tmp_path / "coefficients.json").write_text(coefficients.shipped_text("paper_nin"))
    with pytest.warns(UserWarning, match="undefined"):
        assert predictor.complexity(model, dataset(x, wrong),
                                    program_dir=str(tmp_path)) == coefficients.SCHEMA_1_FALLBACK


def test_complexity_under_tf_keras(tmp_path):
    model = cnn()
    x, y = data_for(model, n=120)
    np.savez(tmp_path / "m.npz", x=x, y=y, *model.get_weights())
    expected = predictor.complexity(model, dataset(x, y))
    code = ("import sys, numpy as np, tensorflow as tf\n"
            "from conftest import cnn\n"
            "from demogen.frozen.predictor import complexity\n"
            "a = np.load(sys.argv[1]); model = cnn()\n"
            "model.set_weights([a[f'arr_{i}'] for i in range(len(model.weights))])\n"
            "ds = tf.data.Dataset.from_tensor_slices((a['x'], a['y'].astype(np.int32)))\n"
            "print(type(model).__module__, repr(complexity(model, ds)))\n")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1",
               PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.npz")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    module, value = run.stdout.split()[-2:]
    assert module.startswith("tf_keras")
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_the_predictor_asks_only_for_the_columns_it_reads(monkeypatch):
    """Producers that narrow (the perturbation responses) measure what the frozen file's
    features need: the predictor passes them (tests/test_perturbation.py checks the values)."""
    from demogen.measure import features

    model = cnn()
    x, y = data_for(model, n=60)
    frozen = coefficients.load(predictor="paper_nin")
    asked = []
    measure = features.measure

    def recording(*args, columns=None, **kwargs):
        asked.append(columns)
        return measure(*args, columns=columns, **kwargs)

    monkeypatch.setattr(features, "measure", recording)
    predictor.predict(frozen, model, dataset(x, y))
    assert asked == [frozen.features]
