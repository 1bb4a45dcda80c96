"""The frozen predictor as the PGDL competition calls it: complexity(model, ds, program_dir).

It reads the frozen file (demogen.frozen.coefficients) of the submission folder, else demogen's
default, measures what that file's features need with its extractor settings (a seeded sample of
the unbatched training data, inputs as given, no augmentation; no margins at all for a predictor
of weight metrics only) and returns the predicted generalization gap.

Where a feature is undefined the prediction is a fallback, with a warning that names the
features and why. Schema 1 (the margin signature): undefined where no sampled example is
classified correctly or a layer's activations are constant (every ReLU dead); the model has not
fit its training data, so its train and test accuracy are both near chance, and the fallback is
FALLBACK, a gap of 0. Schema 2: the file's own `fallback`, wherever a feature is NaN or, under
the log transform, <= 0.
"""

import os
import warnings

import numpy as np

from demogen.frozen import coefficients
from demogen.measure import features
from demogen.measure.margins import extract_margins

FALLBACK = 0.0
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
    """The predicted generalization gap of a trained Keras classifier, as a float."""
    frozen = load_coefficients(program_dir)
    if isinstance(frozen, coefficients.Predictor):
        return _predict(frozen, model, ds)
    settings = frozen.extractor
    margins = extract_margins(model, ds, n_examples=settings["n_examples"],
                              seed=settings["seed"], batch_size=settings["batch_size"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signature = margins.signature(settings["statistic"], settings["normalize"],
                                          settings["signed"])
        return float(frozen.predict(signature.values))
    except ValueError as error:  # raised only where the signature is undefined
        warnings.warn(f"the margin signature is undefined ({error}); predicting a gap of "
                      f"{FALLBACK}", stacklevel=2)
        return FALLBACK


def _predict(frozen, model, ds):
    """complexity() for a schema-2 predictor."""
    groups = features.groups_of(frozen.features)
    measurement = features.measure(model, ds, features.needs_of(groups),
                                   **{k: frozen.extractor[k]
                                      for k in ("n_examples", "seed", "batch_size")})
    values, errors = features.compute(measurement, groups)
    row = np.array([[values[name] for name in frozen.features]])
    undefined = frozen.undefined(row)[0]
    if undefined.any():
        named = [f"{name} = {values[name]}" + (" under log" if transform == "log" else "")
                 for name, transform, bad in zip(frozen.features, frozen.transforms, undefined)
                 if bad]
        reasons = [f"{group}: {errors[group]}" for group in features.groups_of(
            [name for name, bad in zip(frozen.features, undefined) if bad]) if group in errors]
        warnings.warn(f"the features {', '.join(named)} are undefined"
                      + (f" ({'; '.join(reasons)})" if reasons else "")
                      + f"; predicting the fallback gap {frozen.fallback}", stacklevel=3)
    return float(frozen.predict_many(row)[0])
