"""What the console entry point and the ingest child do before any work, never on import:
TensorFlow imported without its start-up lines and with its Python warnings (retracing) off."""

import logging
import os
import sys


def quiet_tensorflow():
    """Import TensorFlow with its C++ log level at fatal errors only, the absl lines it prints
    before its logging is set up sent to /dev/null, and its Python logger at errors only. A
    TF_CPP_MIN_LOG_LEVEL already set is kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
