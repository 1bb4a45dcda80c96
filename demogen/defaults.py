"""Defaults in a module without TensorFlow, so that the command line can show them in its help
and the feature tables and frozen files can be checked without importing it: the extractor's
sampling settings and version, and the predictors shipped as package data
(demogen/frozen/resources/<name>.json)."""

DEFAULTS = {"n_examples": 2048, "seed": 0, "batch_size": 256}
EXTRACTOR_VERSION = 1  # goes up when the extracted margins change

# "selected": the candidate the nested transfer rule chose (`demogen evaluate`), the default
# everywhere; "paper": the paper's configuration fitted on the primary reference pool.
SHIPPED_PREDICTORS = ("selected", "paper")
