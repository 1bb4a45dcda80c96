"""Models built by tf_keras (the legacy Keras 2 that TF_USE_LEGACY_KERAS=1 selects) give the
signature of their Keras 3 twins. tf.keras is chosen at import time, so they run in a subprocess."""

import json
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
from conftest import BUILDERS, data_for

from demogen import margin_signature

HERE = pathlib.Path(__file__).parent


def test_tf_keras_models_match_their_keras3_twins(tmp_path):
    arrays, expected = {}, {}
    for name, builder in BUILDERS.items():
        model = builder()
        x, y = data_for(model, n=40)
        for i, weight in enumerate(model.get_weights()):
            arrays[f"{name}.w{i}"] = weight
        arrays[f"{name}.x"], arrays[f"{name}.y"] = x, y
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected[name] = margin_signature(model, (x, y))
    np.savez(tmp_path / "models.npz", **arrays)

    env = dict(os.environ, TF_USE_LEGACY_KERAS="1",
               PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    run = subprocess.run([sys.executable, str(HERE / "legacy_keras_worker.py"),
                          str(tmp_path / "models.npz"), str(tmp_path / "out.json")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())
    for name, signature in expected.items():
        assert got[name]["module"].startswith("tf_keras"), got[name]["module"]
        assert got[name]["layers"] == signature.layers
        np.testing.assert_allclose(got[name]["values"], signature.values, rtol=1e-5,
                                   atol=1e-6 * np.abs(signature.values).max())
