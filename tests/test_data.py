"""Tests for demogen.data, the numpy-only Fashion-MNIST IDX loader."""

import gzip
import pathlib
import struct

import numpy as np
import pytest

from demogen import data
from demogen.data import DataNotFoundError, FILES, find_fashion_mnist, load_fashion_mnist, read_idx


def write_idx(path, array, type_code=0x08, magic_prefix=b"\x00\x00", payload=None):
    """Write ``array`` as a gzipped IDX file; arguments allow corrupting it."""
    array = np.asarray(array, dtype=np.uint8)
    header = magic_prefix + bytes([type_code, array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    body = array.tobytes() if payload is None else payload
    with gzip.open(path, "wb") as f:
        f.write(header + body)


def make_dataset(directory, seed=0, n_train=5, n_test=3):
    """Write a tiny synthetic Fashion-MNIST into ``directory``; return its arrays."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (9 - np.arange(n_test, dtype=np.uint8)) % 10,
    }
    for key, array in arrays.items():
        write_idx(directory / FILES[key], array)
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No environment variable and no system or Keras directory holds data."""
    monkeypatch.delenv("DEMOGEN_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    return tmp_path


def test_load_synthetic_roundtrip(isolated):
    expected = make_dataset(isolated / "d")
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir=isolated / "d")
    assert x_train.shape == (5, 28, 28) and x_test.shape == (3, 28, 28)
    assert y_train.shape == (5,) and y_test.shape == (3,)
    for arr in (x_train, y_train, x_test, y_test):
        assert arr.dtype == np.uint8
    np.testing.assert_array_equal(x_train, expected["train_images"])
    np.testing.assert_array_equal(y_train, expected["train_labels"])
    np.testing.assert_array_equal(x_test, expected["test_images"])
    np.testing.assert_array_equal(y_test, expected["test_labels"])


def test_read_idx_raw_uncompressed(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "raw-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 3, 4) + array.tobytes())
    np.testing.assert_array_equal(read_idx(path), array)


def test_data_dir_beats_env_and_env_beats_others(isolated, monkeypatch):
    arg = make_dataset(isolated / "arg", seed=1)
    env = make_dataset(isolated / "env", seed=2)
    make_dataset(isolated / "empty-keras-home" / "datasets" / "fashion-mnist", seed=3)
    monkeypatch.setenv("DEMOGEN_DATA", str(isolated / "env"))
    assert find_fashion_mnist(isolated / "arg") == isolated / "arg"
    (x_train, _), _ = load_fashion_mnist(data_dir=isolated / "arg")
    np.testing.assert_array_equal(x_train, arg["train_images"])
    assert find_fashion_mnist() == isolated / "env"
    (x_train, _), _ = load_fashion_mnist()
    np.testing.assert_array_equal(x_train, env["train_images"])


def test_candidate_dirs_order(isolated, monkeypatch):
    monkeypatch.setenv("DEMOGEN_DATA", str(isolated / "env"))
    labels_dirs = data.candidate_dirs(isolated / "arg")
    assert [d for _, d in labels_dirs] == [
        isolated / "arg",
        isolated / "env",
        isolated / "no-debian",
        isolated / "empty-keras-home" / "datasets" / "fashion-mnist",
    ]
    assert [label for label, _ in labels_dirs][:2] == ["--data-dir", "DEMOGEN_DATA"]


def test_keras_cache_found(isolated):
    keras_dir = isolated / "empty-keras-home" / "datasets" / "fashion-mnist"
    expected = make_dataset(keras_dir, seed=4)
    assert find_fashion_mnist() == keras_dir
    _, (x_test, y_test) = load_fashion_mnist()
    np.testing.assert_array_equal(x_test, expected["test_images"])
    np.testing.assert_array_equal(y_test, expected["test_labels"])


def test_keras_cache_defaults_to_home(isolated, monkeypatch):
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    keras_dir = isolated / "home" / ".keras" / "datasets" / "fashion-mnist"
    make_dataset(keras_dir)
    assert find_fashion_mnist() == keras_dir


def test_missing_everywhere_message(isolated):
    with pytest.raises(DataNotFoundError) as info:
        find_fashion_mnist()
    message = str(info.value)
    keras_dir = isolated / "empty-keras-home" / "datasets" / "fashion-mnist"
    for needle in ("--data-dir", "DEMOGEN_DATA", "dataset-fashion-mnist", str(keras_dir),
                   str(isolated / "no-debian"), *FILES.values()):
        assert needle in message
    assert isinstance(info.value, FileNotFoundError)


def test_explicit_data_dir_does_not_fall_through(isolated):
    make_dataset(isolated / "empty-keras-home" / "datasets" / "fashion-mnist")
    partial = isolated / "partial"
    make_dataset(partial)
    (partial / FILES["test_labels"]).unlink()
    with pytest.raises(DataNotFoundError) as info:
        load_fashion_mnist(data_dir=partial)
    assert str(partial) in str(info.value)
    assert FILES["test_labels"] in str(info.value)
    assert FILES["train_images"] not in str(info.value)


def test_env_dir_does_not_fall_through(isolated, monkeypatch):
    make_dataset(isolated / "empty-keras-home" / "datasets" / "fashion-mnist")
    monkeypatch.setenv("DEMOGEN_DATA", str(isolated / "nowhere"))
    with pytest.raises(DataNotFoundError, match="nowhere"):
        find_fashion_mnist()


def test_truncated_payload(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((5, 28, 28)), payload=b"\x00" * 1000)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*3920 bytes.*found 1000"):
        read_idx(path)


def test_extra_payload(tmp_path):
    path = tmp_path / "x.gz"
    write_idx(path, np.zeros((2, 3)), payload=b"\x00" * 7)
    with pytest.raises(ValueError, match=r"x\.gz"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(path, np.ones((3, 28, 28)))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz"):
        read_idx(path)


def test_bad_magic(tmp_path):
    path = tmp_path / "bad-magic.gz"
    write_idx(path, np.zeros((2, 2)), magic_prefix=b"\x01\x00")
    with pytest.raises(ValueError, match=r"bad-magic\.gz.*magic"):
        read_idx(path)


def test_wrong_type_code(tmp_path):
    path = tmp_path / "float-idx.gz"
    write_idx(path, np.zeros((2, 2)), type_code=0x0D)
    with pytest.raises(ValueError, match=r"float-idx\.gz.*0x0d"):
        read_idx(path)


def test_labels_out_of_range(isolated):
    make_dataset(isolated / "d")
    write_idx(isolated / "d" / FILES["train_labels"], [0, 1, 2, 10, 4])
    with pytest.raises(ValueError, match="0..9"):
        load_fashion_mnist(data_dir=isolated / "d")


def test_count_mismatch(isolated):
    make_dataset(isolated / "d")
    write_idx(isolated / "d" / FILES["test_labels"], [0, 1])
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_fashion_mnist(data_dir=isolated / "d")


def test_real_fashion_mnist_from_debian_package(monkeypatch):
    """Loads the installed Debian package; fails (never skips) if it is missing."""
    monkeypatch.delenv("DEMOGEN_DATA", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    assert find_fashion_mnist() == pathlib.Path("/usr/share/datasets/fashion-mnist")
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    for arr in (x_train, y_train, x_test, y_test):
        assert arr.dtype == np.uint8
    assert set(np.unique(y_train)) == set(range(10))
    assert set(np.unique(y_test)) == set(range(10))
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    assert x_train.max() == 255 and x_train.min() == 0
    assert x_test.max() == 255 and x_test.min() == 0


def test_module_imports_only_numpy_and_stdlib():
    import ast
    import sys

    tree = ast.parse(pathlib.Path(data.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots, "expected some imports"
    assert roots <= set(sys.stdlib_module_names) | {"numpy"}, roots
