"""Fashion-MNIST loader for the gzipped IDX files, using only numpy and the stdlib.

The four files are looked up, in order, in: the ``data_dir`` argument
(``--data-dir``), the ``DEMOGEN_DATA`` environment variable, the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) and the Keras
cache (``$KERAS_HOME/datasets/fashion-mnist`` or ``~/.keras/datasets/fashion-mnist``).
"""

import gzip
import os
import pathlib
import struct
import zlib

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
_UINT8 = 0x08


class DataNotFoundError(FileNotFoundError):
    """No searched location holds the Fashion-MNIST files."""


def _keras_dir():
    home = os.environ.get("KERAS_HOME")
    base = pathlib.Path(home) if home else pathlib.Path.home() / ".keras"
    return base / "datasets" / "fashion-mnist"


def candidate_dirs(data_dir=None):
    """Return the ``(label, directory)`` pairs searched, in order."""
    dirs = []
    if data_dir is not None:
        dirs.append(("--data-dir", pathlib.Path(data_dir).expanduser()))
    if os.environ.get("DEMOGEN_DATA"):
        dirs.append(("DEMOGEN_DATA", pathlib.Path(os.environ["DEMOGEN_DATA"]).expanduser()))
    dirs.append(("dataset-fashion-mnist", pathlib.Path(DEBIAN_DIR)))
    dirs.append(("Keras cache", _keras_dir()))
    return dirs


def _missing(directory):
    return [name for name in FILES.values() if not (directory / name).is_file()]


def find_fashion_mnist(data_dir=None):
    """Return the first candidate directory holding all four files.

    A directory named explicitly (``data_dir`` or ``DEMOGEN_DATA``) must hold
    the files: if it does not, raise instead of looking elsewhere.
    """
    looked = []
    for label, directory in candidate_dirs(data_dir):
        missing = _missing(directory)
        if not missing:
            return directory
        if label in ("--data-dir", "DEMOGEN_DATA"):
            raise DataNotFoundError(
                f"Fashion-MNIST not found in {directory} (given via {label}): "
                f"missing {', '.join(missing)}"
            )
        looked.append(f"  {directory} ({label})")
    keras = _keras_dir()
    raise DataNotFoundError(
        "Fashion-MNIST data not found. Looked in:\n" + "\n".join(looked) + "\n"
        f"Expected files: {', '.join(FILES.values())}.\n"
        "Provide them in one of these ways:\n"
        "  - pass --data-dir DIR (or data_dir=DIR) naming a directory that holds them;\n"
        "  - set the environment variable DEMOGEN_DATA=DIR;\n"
        f"  - apt-get install dataset-fashion-mnist (installs them in {DEBIAN_DIR});\n"
        f"  - put them in the Keras cache directory {keras}."
    )


def read_idx(path):
    """Parse one uint8 IDX file (gzipped if the name ends in .gz) into an array."""
    path = pathlib.Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot read ({exc}): file truncated or corrupt; "
                         "delete it and reinstall") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: file too short for an IDX header ({len(raw)} bytes)")
    zero1, zero2, code, ndim = raw[:4]
    if zero1 or zero2:
        raise ValueError(f"{path}: bad magic {raw[:4].hex()}: not an IDX file")
    if code != _UINT8:
        raise ValueError(f"{path}: unsupported IDX type code 0x{code:02x} (only 0x08, uint8)")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: header truncated: {ndim} dimensions need {header} bytes, "
                         f"found {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(raw) - header
    if found != expected:
        raise ValueError(f"{path}: shape {shape} expects {expected} bytes of data, found "
                         f"{found}: file truncated or corrupt; delete it and reinstall")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _split(directory, name):
    images = read_idx(directory / FILES[f"{name}_images"])
    labels = read_idx(directory / FILES[f"{name}_labels"])
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{name} images in {directory}: shape {images.shape}, "
                         "expected (N, 28, 28)")
    if labels.ndim != 1:
        raise ValueError(f"{name} labels in {directory}: shape {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise ValueError(f"{name} split in {directory}: {len(images)} images but "
                         f"{len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{name} labels in {directory}: value {labels.max()} "
                         "outside 0..9")
    return images, labels


def load_fashion_mnist(data_dir=None):
    """Return ``((x_train, y_train), (x_test, y_test))`` as stored (uint8, unscaled)."""
    directory = find_fashion_mnist(data_dir)
    return _split(directory, "train"), _split(directory, "test")
