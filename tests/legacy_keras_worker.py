"""Run by test_legacy_keras.py under TF_USE_LEGACY_KERAS=1: rebuild each model of an .npz file
with tf.keras (then tf_keras, the legacy Keras 2), load its weights, write its signature as JSON."""

import json
import sys
import warnings

import numpy as np
from conftest import BUILDERS

from demogen import margin_signature

archive, out = np.load(sys.argv[1]), sys.argv[2]
results = {}
for name, builder in BUILDERS.items():
    model = builder()
    model.set_weights([archive[f"{name}.w{i}"] for i in range(len(model.weights))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signature = margin_signature(model, (archive[f"{name}.x"], archive[f"{name}.y"]))
    results[name] = {"module": type(model).__module__, "layers": signature.layers,
                     "values": signature.values.tolist()}
with open(out, "w") as handle:
    json.dump(results, handle)
