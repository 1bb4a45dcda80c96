"""Side files: what is kept of every trained model beside its feature-table row, so that later
features are derived without retraining (weights are never committed).

One compressed numpy archive per model, features_cache/<preset>/<task>/side/model_<id>.npz:
- the Measurement (demogen.measure.features.to_arrays): per sampled training example the output
  margin f_i - f_j and the margin-gradient norm at the four layers (float32; the signed,
  unnormalized distance is their ratio), each layer's total variation, the layers, the sample's
  settings; the singular values of every kernel (reshaped matrix and per-position slices, float32);
- test_correct, train_correct: per-example correctness bits (numpy.packbits) on the test set and
  on the training set with the labels the model trained on (n_test, n_train give the lengths);
- history: per epoch, training-set accuracy and cross-entropy (inference mode, un-augmented).
"""

import io
import pathlib

import numpy as np

from demogen.competition import pgdl
from demogen.measure import features


def path(features_dir, preset, task, model_id):
    """Where the side file of one model lives."""
    return pathlib.Path(features_dir) / preset / task / "side" / f"model_{model_id}.npz"


def write(target, measurement, test_correct, train_correct, history):
    """Write one model's side file atomically."""
    test_correct, train_correct = np.asarray(test_correct, bool), np.asarray(train_correct, bool)
    arrays = {**(features.to_arrays(measurement) if measurement is not None else {}),
              "test_correct": np.packbits(test_correct), "n_test": np.int64(test_correct.size),
              "train_correct": np.packbits(train_correct),
              "n_train": np.int64(train_correct.size),
              "history": np.array([history.accuracy, history.cross_entropy],
                                  dtype=np.float64).reshape(2, -1).T}
    _write_arrays(target, arrays)


def add(target, measurement):
    """Add a measurement's producers (those a side file keeps) to an existing side file,
    atomically; what it held stays."""
    with np.load(target, allow_pickle=False) as archive:
        arrays = dict(archive)
    arrays.update(features.to_arrays(measurement))
    _write_arrays(target, arrays)


def _write_arrays(target, arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with pgdl.atomic_path(target) as tmp:
        pathlib.Path(tmp).write_bytes(buffer.getvalue())


def read(source):
    """(Measurement, {"test_correct", "train_correct": bool arrays, "history": (epochs, 2)})."""
    with np.load(source, allow_pickle=False) as archive:
        arrays = dict(archive)
    extras = {"test_correct": np.unpackbits(arrays.pop("test_correct"))[:int(arrays["n_test"])]
              .astype(bool),
              "train_correct": np.unpackbits(arrays.pop("train_correct"))[:int(arrays["n_train"])]
              .astype(bool),
              "history": arrays.pop("history")}
    measurement = features.from_arrays(arrays)
    return measurement, extras
