"""How the command line, its worker processes and the ingest child import TensorFlow, before they
run a model and never on import of this module: without its start-up lines (unless asked for
them), and with Keras and matplotlib (which Keras imports) keeping their configuration in
demogen's cache folder where they would otherwise create ~/.keras/keras.json and matplotlib's
folders in the home folder."""

import contextlib
import logging
import os
import pathlib
import sys


def cache_folder():
    """demogen's cache folder: $XDG_CACHE_HOME/demogen, else ~/.cache/demogen."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base).expanduser() / "demogen"


def redirected_settings():
    """{variable: folder in demogen's cache folder} for Keras (KERAS_HOME, where it writes
    keras.json) and matplotlib (MPLCONFIGDIR, its configuration and font cache), each only where
    the variable is unset and the user's own configuration (~/.keras/keras.json,
    $XDG_CONFIG_HOME/matplotlib) does not exist, so that one that exists is always read."""
    home = pathlib.Path.home()
    config = pathlib.Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    own = {"KERAS_HOME": ("keras", home / ".keras" / "keras.json"),
           "MPLCONFIGDIR": ("matplotlib", config / "matplotlib")}
    return {name: str(cache_folder() / folder) for name, (folder, path) in own.items()
            if name not in os.environ and not path.exists()}


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow(quiet=True):
    """Import TensorFlow with the `redirected_settings` set while it imports (and reads them),
    so that later reads of the variables, such as the Fashion-MNIST look-up in
    $KERAS_HOME/datasets, see the user's values. With `quiet`: its C++ log level at fatal errors
    only (a TF_CPP_MIN_LOG_LEVEL already set is kept), the absl lines it prints before its
    logging is set up sent to /dev/null, its Python logger at errors only, and worker processes
    started afterwards told so (DEMOGEN_QUIET=1, read by `import_tensorflow_as_asked`)."""
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ["DEMOGEN_QUIET"] = "1"
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    settings = redirected_settings()
    os.environ.update(settings)
    try:
        with _stderr_to_devnull() if quiet else contextlib.nullcontext():
            import tensorflow  # noqa: F401
    finally:
        for name in settings:
            del os.environ[name]


def import_tensorflow_as_asked():
    """`import_tensorflow` in a worker process, quiet when the command line that started it is."""
    import_tensorflow(quiet=os.environ.get("DEMOGEN_QUIET") == "1")
