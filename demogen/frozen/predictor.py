"""The frozen predictor as the PGDL competition calls it: complexity(model, ds, program_dir).

It reads the frozen file (demogen.frozen.coefficients) of the submission folder, else demogen's
default, measures what that file's features need with its extractor settings (a seeded sample of
the unbatched training data, inputs as given, no augmentation; no margins at all for a predictor
of weight metrics only) and returns its prediction: the predicted gap, the ranking score, or for
a two-part predictor the measured training accuracy minus the predicted test accuracy. Files of
both schemas go this one way.

Where a feature is undefined (no sampled example classified correctly, a layer whose activations
are constant, ...) the prediction is the file's fallback, with a warning that names the features
and why (coefficients.py states the rule).
"""

import os
import warnings

import numpy as np

from demogen.frozen import coefficients
from demogen.measure import features
from demogen.measure.accuracy import sample_accuracy

_LOADED = {}


def load_coefficients(program_dir=None):
    """The frozen file of a submission folder (program_dir/coefficients.json), else demogen's
    default; read and validated once per process."""
    path = None
    if program_dir is not None:
        candidate = os.path.join(program_dir, "coefficients.json")
        path = os.path.abspath(candidate) if os.path.isfile(candidate) else None
    if path not in _LOADED:
        _LOADED[path] = coefficients.load(path)
    return _LOADED[path]


def complexity(model, ds, program_dir=None):
    """The prediction of the frozen file for a trained Keras classifier, as a float."""
    return predict(load_coefficients(program_dir), model, ds)


def predict(frozen, model, ds):
    """The prediction of a loaded frozen predictor (coefficients.Predictor) for one model."""
    groups = features.groups_of(frozen.features)
    sample = {k: frozen.extractor[k] for k in ("n_examples", "seed", "batch_size")}
    measurement = features.measure(model, ds, features.producers_of(groups),
                                   columns=frozen.features, **sample)
    values, errors = features.compute(measurement, groups)
    row = np.array([[values[name] for name in frozen.features]])
    train_accuracy = None
    if frozen.two_part:
        margins = measurement.margins
        if margins is not None and _same_examples(frozen.train_accuracy, margins.settings):
            train_accuracy = [features.sample_accuracy_of(margins)]
        else:
            train_accuracy = [sample_accuracy(model, ds, batch_size=sample["batch_size"],
                                              **frozen.train_accuracy)]
    undefined = frozen.undefined(row)[0]
    if undefined.any():
        named = [f"{name} = {values[name]}" + (" under log" if transform == "log" else "")
                 for name, transform, bad in zip(frozen.features, frozen.transforms, undefined)
                 if bad]
        reasons = [f"{group}: {errors[group]}" for group in features.groups_of(
            [name for name, bad in zip(frozen.features, undefined) if bad]) if group in errors]
        warnings.warn(f"the features {', '.join(named)} are undefined"
                      + (f" ({'; '.join(reasons)})" if reasons else "")
                      + f"; predicting the fallback {frozen.fallback}", stacklevel=3)
    return float(frozen.predict_many(row, train_accuracy)[0])


def _same_examples(settings, margin_settings):
    """Whether a training-accuracy sample is the margin sample: the same size and seed, or both
    the whole training set (the margin sample took every example, and so would this one)."""
    whole = margin_settings["n_sampled"] < margin_settings["n_examples"]
    return ((settings["n_examples"], settings["seed"])
            == (margin_settings["n_examples"], margin_settings["seed"])
            or (whole and settings["n_examples"] >= margin_settings["n_sampled"]))
