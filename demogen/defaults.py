"""Defaults in a module without TensorFlow, so that the command line can show them in its help
and the feature tables and frozen files can be checked without importing it: the extractor's
sampling settings and version, and the predictors shipped as package data
(demogen/frozen/resources/<name>.json)."""

DEFAULTS = {"n_examples": 2048, "seed": 0, "batch_size": 256}
EXTRACTOR_VERSION = 1  # goes up when the extracted margins change
BUDGET_COUNTS = (256, 512, 1024, 2048, 4096)  # the sample sizes of `demogen budget`

# "selected": the candidate the nested transfer rule chose (`demogen evaluate`), fitted on the
# corpus, the default everywhere; "paper_nin": the paper's configuration (the candidate "paper")
# fitted on the primary reference pool, the nin pool.
SHIPPED_PREDICTORS = ("selected", "paper_nin")
SHIPPED_DESCRIPTIONS = {
    "selected": "the candidate the transfer evaluation selected, fitted on the corpus",
    "paper_nin": "the paper's configuration (20 log margin quartiles, least squares) fitted on "
                 "the nin pool"}
