"""The extractor's default sampling settings, in a module without TensorFlow so that the command
line can show them in its help without importing it."""

DEFAULTS = {"n_examples": 2048, "seed": 0, "batch_size": 256}
