"""What the console entry point and the ingest child do before any work, never on import:
TensorFlow imported without its start-up lines and with its Python warnings (retracing) off."""

import logging
import os
import sys


def quiet_tensorflow():
    """Import TensorFlow with its C++ log level at fatal errors only, the absl lines it prints
    before its logging is set up sent to /dev/null, and its Python logger at errors only. A
    TF_CPP_MIN_LOG_LEVEL already set is kept. Worker processes started afterwards inherit the
    wish (DEMOGEN_QUIET=1, read by `quiet_if_asked`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["DEMOGEN_QUIET"] = "1"
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


def quiet_if_asked():
    """`quiet_tensorflow` in a worker process whose parent asked for quiet."""
    if os.environ.get("DEMOGEN_QUIET") == "1":
        quiet_tensorflow()
