"""The data sources of the pools, all offline and seeded: `load(source, n_train, seed)`.

- fmnist: Fashion-MNIST (Debian's dataset-fashion-mnist, see demogen.data): a seeded subset of
  n_train of the 60,000 training images, the full 10,000-image test set; float32 in [0, 1],
  shape (28, 28, 1).
- fmnist_color: the same images padded to 32x32 and coloured, shape (32, 32, 3): each image
  gets a seeded random garment colour (each channel uniform in [0.5, 1]) and background colour
  (each channel in [0, 0.5]), pixel = background + (garment - background) * intensity.
- mnist1d: MNIST-1D generated locally by the `mnist1d` package's make_dataset (never its
  download path) with its default arguments but num_samples = n_train + 10,000, the last
  10,000 as the test set and seed `seed`; Python's and numpy's global random states are saved
  and restored around it. Shape (40, 1), standardized by make_dataset.
- digits: scikit-learn's load_digits (1,797 8x8 images): a seeded n_train (at most 600) for
  training, the rest for test; float32 pixel / 16, shape (8, 8, 1).

Labels are int32 class indices 0-9. A missing package raises a clear error naming it and the
install command.
"""

import contextlib
import functools
import importlib
import random

import numpy as np

from demogen.data import find_fashion_mnist, load_fashion_mnist

N_TEST_MNIST1D = 10_000
N_TEST_FMNIST = 10_000  # the official test set
N_DIGITS = 1797  # load_digits' images
MAX_TRAIN_DIGITS = 600


def _subset(n_total, n_train, seed):
    """Sorted positions of a seeded sample of n_train out of n_total."""
    if not 0 < n_train <= n_total:
        raise ValueError(f"n_train must be between 1 and {n_total}, got {n_train}")
    return np.sort(np.random.default_rng(seed).choice(n_total, n_train, replace=False))


def _missing(package, error):
    return ImportError(f"the data source needs the Python package {package!r}, which is not "
                       f"installed ({error}); install it with `pip install {package}` (or "
                       "`pip install -e '.[fit]'` in a demogen checkout)")


def fmnist(n_train, seed=0, data_dir=None):
    """(x, y, x_test, y_test): a seeded Fashion-MNIST subset and the full test set."""
    (x, y), (x_test, y_test) = load_fashion_mnist(data_dir)
    chosen = _subset(len(x), n_train, seed)
    scale = lambda images: (images[..., None] / np.float32(255)).astype(np.float32)  # noqa: E731
    return scale(x[chosen]), y[chosen].astype(np.int32), scale(x_test), y_test.astype(np.int32)


def colorize(images, seed):
    """Grey images (n, 28, 28, 1) in [0, 1] as (n, 32, 32, 3): padded by 2 pixels, with a seeded
    garment colour (each channel uniform in [0.5, 1]) and background colour (each channel
    uniform in [0, 0.5]) per image: pixel = background + (garment - background) * intensity."""
    rng = np.random.default_rng(seed)
    n = len(images)
    garment = rng.uniform(0.5, 1.0, (n, 1, 1, 3))
    background = rng.uniform(0.0, 0.5, (n, 1, 1, 3))
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return (background + (garment - background) * padded).astype(np.float32)


def fmnist_color(n_train, seed=0, data_dir=None):
    """Fashion-MNIST coloured at 32x32x3; the training and test colours use seeds seed + 1 and
    seed + 2."""
    x, y, x_test, y_test = fmnist(n_train, seed, data_dir)
    return colorize(x, seed + 1), y, colorize(x_test, seed + 2), y_test


@contextlib.contextmanager
def _isolated_global_random_state():
    """Leave Python's and numpy's global random states as they were."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@functools.lru_cache(maxsize=2)
def _mnist1d(n_total, seed):
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as error:
        raise _missing("mnist1d", error) from None
    args = get_dataset_args()
    args.num_samples, args.seed = n_total, seed
    args.train_split = 1.0  # the split is ours
    with _isolated_global_random_state():
        generated = make_dataset(args)
    return generated["x"].astype(np.float32), generated["y"].astype(np.int32)


def mnist1d(n_train, seed=0, data_dir=None):
    """MNIST-1D generated with `seed`: n_train training and 10,000 test examples."""
    x, y = _mnist1d(n_train + N_TEST_MNIST1D, seed)
    x = x[..., None]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def digits(n_train, seed=0, data_dir=None):
    """scikit-learn's 8x8 digits: a seeded n_train (at most 600) for training, the rest for
    test."""
    if n_train > MAX_TRAIN_DIGITS:
        raise ValueError(f"the digits source keeps at most {MAX_TRAIN_DIGITS} images for "
                         f"training (the rest are the test set), got n_train={n_train}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise _missing("scikit-learn", error) from None
    bunch = load_digits()
    x = (bunch.images[..., None] / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    chosen = _subset(len(x), n_train, seed)
    test = np.setdiff1d(np.arange(len(x)), chosen)
    return x[chosen], y[chosen], x[test], y[test]


def n_test(source, n_train):
    """The size of a source's test set (what the standard error of a measured gap depends on)."""
    return {"digits": N_DIGITS - n_train, "mnist1d": N_TEST_MNIST1D}.get(source, N_TEST_FMNIST)


SOURCES = {"fmnist": fmnist, "fmnist_color": fmnist_color, "mnist1d": mnist1d,
           "digits": digits}
INPUT_SHAPES = {"fmnist": (28, 28, 1), "fmnist_color": (32, 32, 3), "mnist1d": (40, 1),
                "digits": (8, 8, 1)}


def check(source, data_dir=None):
    """Raise a clear error, before any work, when a source's data or package is missing."""
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {sorted(SOURCES)}")
    if source.startswith("fmnist"):
        find_fashion_mnist(data_dir)
        return
    package, module = {"mnist1d": ("mnist1d", "mnist1d.data"),
                       "digits": ("scikit-learn", "sklearn.datasets")}[source]
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise _missing(package, error) from None


def load(source, n_train, seed=0, data_dir=None):
    """(x, y, x_test, y_test) of a source; `data_dir` is used by the Fashion-MNIST sources."""
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {sorted(SOURCES)}")
    return SOURCES[source](n_train, seed, data_dir)
