"""The frozen predictor as the PGDL competition calls it: complexity(model, ds, program_dir).

It measures the margin signature with the extractor settings stored in the coefficient file
(a seeded sample of the unbatched training data, inputs as given, no augmentation) and returns
the predicted generalization gap. Where the signature is undefined (no sampled example classified
correctly, or a layer whose activations are constant, i.e. every ReLU dead) the model has not fit
its training data, so its train and test accuracy are both near chance: complexity returns
FALLBACK, a gap of 0, with a warning.
"""

import os
import warnings

from demogen import coefficients
from demogen.margins import extract_margins

FALLBACK = 0.0
_LOADED = {}


def load_coefficients(program_dir=None):
    """The coefficient file of a submission folder (program_dir/coefficients.json), else
    demogen's default; read and validated once per process."""
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
