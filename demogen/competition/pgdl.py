"""Read and write task directories in the PGDL (NeurIPS 2020) competition format.

A task directory holds ``model_<id>/config.json`` + ``model_<id>/weights.hdf5`` for every
model, the data as TFRecord shards under ``dataset_1/<split>/``, and ``model_configs.json``
(hyperparameters and accuracies; released archives keep it in
``<folder of tasks>/../reference_data/<task>/``).
See docs/pgdl-format.md for the exact layout.

Reader: :func:`find_model_configs`, :func:`read_model_configs`, :func:`read_json`,
:func:`model_ids`, :func:`build_model`, :func:`load_model`, :func:`load_dataset`;
:func:`validate_grid` and :func:`hparam_values` check and read the hyperparameter grid.
Writer: :func:`layer_config`, :func:`write_weights_hdf5`, :func:`write_model`,
:func:`write_dataset`, :func:`write_model_configs`. All files are written atomically (temp file + ``os.replace``).

Models are built with ``tf.keras`` only from an allowlist of plain layer classes; layers that
can carry code (``Lambda``, any other class) and serialized objects in arguments need
``allow_code_layers=True``. TensorFlow is imported by the functions that build a model or read
or write a dataset, so that reading JSON files and grids (scoring) does not load it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import json
import os
import pathlib
import tempfile

import h5py
import numpy as np

from demogen.competition.tasks import configs_candidates

__all__ = [
    "ALLOWED_LAYERS",
    "find_model_configs",
    "read_model_configs",
    "read_json",
    "model_ids",
    "build_model",
    "load_model",
    "load_dataset",
    "layer_config",
    "write_weights_hdf5",
    "write_model",
    "write_dataset",
    "validate_grid",
    "hparam_values",
    "write_model_configs",
]

#: Layer classes (looked up on ``tf.keras.layers``) that hold no code and are always allowed.
ALLOWED_LAYERS = frozenset({
    "Dense",
    "Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "Flatten", "Reshape", "Permute",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
    "BatchNormalization", "LayerNormalization",
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D",
})

# Arguments that are integers (or nested lists of integers); 64.0 in a config means 64.
_INT_ARGS = frozenset({
    "units", "filters", "kernel_size", "strides", "pool_size", "dilation_rate",
    "depth_multiplier", "size", "padding", "cropping", "groups", "target_shape", "dims",
    "axis", "seed",
})

_SHARD_GLOB = "shard_*.tfrecord"


# --------------------------------------------------------------------------- reader


def find_model_configs(task_dir, reference=None) -> pathlib.Path | None:
    """Path of the task's model_configs.json, or None: in the task folder, then in
    <folder of tasks>/../reference_data/<task>/, then in <reference>/<task>/
    (demogen.competition.tasks)."""
    return next((path for path in configs_candidates(task_dir, reference) if path.is_file()),
                None)


_CORRUPT = "the file is truncated or corrupt: copy it again from its source"


def read_json(path, fix=_CORRUPT):
    """The parsed JSON file at `path`; a file that is not JSON is a ValueError that names it and
    says what to do (`fix`)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({error}); {fix}") from None


def read_model_configs(task_dir) -> dict | None:
    """The parsed model_configs.json of a task ({bare id: {"hparams", "metrics"}}), or None."""
    path = find_model_configs(task_dir)
    if path is None:
        return None
    return read_json(path)


def _sorted_ids(ids) -> list[str]:
    """Bare model ids, numerically sorted when all are integers, else lexicographically."""
    ids = list(ids)
    try:
        return sorted(ids, key=lambda i: (int(i), i))
    except ValueError:
        return sorted(ids)


def model_ids(task_dir) -> list[str]:
    """Bare ids of the task's ``model_<id>`` folders, numerically sorted when all are integers."""
    task = pathlib.Path(task_dir)
    ids = [p.name[len("model_"):] for p in task.glob("model_?*") if p.is_dir()]
    if not ids:
        found = sorted(p.name for p in task.iterdir())[:10] if task.is_dir() else "nothing"
        raise FileNotFoundError(f"no model_* folders in task directory {task} (it holds {found}); "
                                "each model goes in a folder model_<id> with config.json and "
                                "weights.hdf5")
    return _sorted_ids(ids)


def _intify(value):
    """Floats with integral values -> int, recursively through lists."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_intify(v) for v in value]
    return value


def _has_object(value) -> bool:
    """Whether a config value holds a serialized object (a dict), which may name code."""
    if isinstance(value, dict):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_object(v) for v in value)
    return False


_TRUST = ("only if you trust this task, build it with allow_code_layers=True (Python) or "
          "--allow-code-layers (demogen signature)")


def _make_layer(index: int, spec: dict, allow_code_layers: bool):
    """One tf.keras layer from a config.json layer entry (index is its 0-based position)."""
    import tensorflow as tf

    if not isinstance(spec, dict) or "layer_name" not in spec:
        raise ValueError(f"layer #{index}: expected a dict with a 'layer_name' key, got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.pop("layer_name")
    where = f"layer #{index} ({name})"
    cls = getattr(tf.keras.layers, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, tf.keras.layers.Layer)):
        raise ValueError(f"{where}: unknown layer class {name!r}: not a layer on tf.keras.layers")
    if not allow_code_layers:
        if name not in ALLOWED_LAYERS:
            raise ValueError(
                f"{where}: layer class {name!r} is not in the allowlist of plain layers and may "
                f"carry code; {_TRUST}")
        objects = sorted(k for k, v in kwargs.items() if _has_object(v))
        if objects:
            raise ValueError(
                f"{where}: argument(s) {objects} hold serialized objects, which may carry code; "
                f"{_TRUST}")
    kwargs = {k: (_intify(v) if k in _INT_ARGS else v) for k, v in kwargs.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        params = inspect.signature(cls.__init__).parameters
        base = {"name", "dtype", "trainable", "input_shape", "input_dim", "batch_size",
                "batch_input_shape", "autocast", "activity_regularizer"}
        bad = sorted(k for k in kwargs if k not in params and k not in base)
        hint = f" (unexpected argument(s): {bad})" if bad else ""
        raise ValueError(f"{where}: invalid arguments {kwargs}{hint}: {e}") from e


def build_model(config: dict, allow_code_layers: bool = False):
    """Build the tf.keras Sequential described by a parsed config.json dict.

    ``config`` is {"model_config": [{"layer_name": CLASS, **kwargs}, ...], "input_shape": [H, W, C]};
    the model is built for input shape [None] + input_shape.
    """
    import tensorflow as tf

    if not isinstance(config, dict) or "model_config" not in config or "input_shape" not in config:
        raise ValueError("config must be a dict with keys 'model_config' and 'input_shape'")
    layers = [_make_layer(i, spec, allow_code_layers)
              for i, spec in enumerate(config["model_config"])]
    input_shape = [int(_intify(d)) for d in config["input_shape"]]
    model = tf.keras.Sequential(layers)
    try:
        model.build([None] + input_shape)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot build the model for input_shape {input_shape}: {e}") from e
    return model


def _model_dir(task_dir, model_id) -> pathlib.Path:
    model_id = str(model_id)
    if model_id.startswith("model_"):
        model_id = model_id[len("model_"):]
    return pathlib.Path(task_dir) / f"model_{model_id}"


def load_model(task_dir, model_id, allow_code_layers: bool = False):
    """Build ``model_<id>`` of a task from its config.json and load its weights.hdf5.

    Every way this can fail (a missing, unreadable or mismatched file) is a FileNotFoundError or
    ValueError that names the file and says what to do."""
    model_dir = _model_dir(task_dir, model_id)
    config_path = model_dir / "config.json"
    weights_path = model_dir / "weights.hdf5"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"missing {path}: a model folder holds config.json and "
                                    "weights.hdf5 (docs/pgdl-format.md)")
    config = read_json(config_path)
    try:
        model = build_model(config, allow_code_layers=allow_code_layers)
    except ValueError as e:
        raise ValueError(f"{config_path}: {e}") from None
    try:
        model.load_weights(str(weights_path))
    except OSError as e:  # h5py cannot read the file
        raise ValueError(f"weights file {weights_path} is not readable HDF5 ({e}); "
                         f"{_CORRUPT}") from None
    except (ValueError, KeyError, IndexError) as e:
        raise ValueError(
            f"weights file {weights_path} does not match config.json ({e}); the weights belong "
            "to another architecture: use the weights.hdf5 saved with this config.json") from None
    return model


def shard_paths(split_dir: pathlib.Path) -> list[str]:
    shards = sorted(str(p) for p in split_dir.glob(_SHARD_GLOB) if p.is_file())
    if not shards:
        raise FileNotFoundError(f"no {_SHARD_GLOB} files in {split_dir}")
    return shards


def load_dataset(task_dir, split: str = "train") -> tf.data.Dataset:
    """The task's ``dataset_1/<split>`` as unbatched (float32 inputs, int32 scalar label) pairs.

    Shards are read in sorted order, examples in file order. The input shape is taken from the
    first example.
    """
    import tensorflow as tf

    shards = shard_paths(pathlib.Path(task_dir) / "dataset_1" / split)
    features = {"inputs": tf.io.FixedLenFeature([], tf.string),
                "output": tf.io.FixedLenFeature([], tf.string)}

    def parse(record):
        feats = tf.io.parse_single_example(record, features)
        x = tf.io.parse_tensor(feats["inputs"], tf.float32)
        y = tf.io.parse_tensor(feats["output"], tf.int32)
        return x, tf.ensure_shape(y, [])

    ds = tf.data.TFRecordDataset(shards).map(parse)
    first = next(iter(ds.take(1)), None)
    if first is not None:
        shape = first[0].shape
        ds = ds.map(lambda x, y: (tf.ensure_shape(x, shape), y))
    return ds


def task_dataset(task_dir, split="train"):
    """`load_dataset`, the same object again while the split's shard files are unchanged (for
    the last two splits asked in this process): the models of a task read one by one then share
    its seeded sample (demogen.measure.sampling keeps one per dataset object) instead of reading
    the whole split again for each."""
    task_dir = pathlib.Path(task_dir).resolve()
    stats = [(path, os.stat(path)) for path in shard_paths(task_dir / "dataset_1" / split)]
    return _task_dataset(tuple((path, s.st_mtime_ns, s.st_size) for path, s in stats),
                         str(task_dir), split)


@functools.lru_cache(maxsize=2)
def _task_dataset(shards, task_dir, split):  # `shards` (paths, times, sizes) only keys the cache
    return load_dataset(task_dir, split)


# --------------------------------------------------------------------------- writer


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path next to ``path``; on success move it onto ``path`` (readable like any
    new file: mkstemp's owner-only mode is widened by the umask), else delete it."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _legacy_weights(layer):
    # The order Keras 2 wrote and Keras 3's legacy loader reads: trainable, then non-trainable
    # (the same as layer.weights for the allowlisted layers, e.g. BatchNormalization's gamma,
    # beta, moving_mean, moving_variance).
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def write_weights_hdf5(model, path) -> None:
    """Write a Keras model's weights in the Keras-2 HDF5 layout (what ``save_weights`` wrote)."""
    path = pathlib.Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = np.array([layer.name.encode("utf8") for layer in model.layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.21.0"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = []
            for w in _legacy_weights(layer):
                short = w.name.split("/")[-1].split(":")[0]
                names.append(f"{layer.name}/{short}:0")
            if len(set(names)) != len(names):
                raise ValueError(f"layer {layer.name}: duplicate weight names {names}")
            group.attrs["weight_names"] = np.array([n.encode("utf8") for n in names], dtype=bytes)
            for name, w in zip(names, _legacy_weights(layer)):
                group.create_dataset(name, data=np.asarray(w.numpy()))


def _plain(value):
    """A JSON-ready copy of a config value (tuples -> lists), or raise TypeError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(type(value).__name__)


_DROP_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def layer_config(model) -> list[dict]:
    """The config.json ``model_config`` list of a Sequential made of allowlisted layers.

    Keeps the constructor arguments that differ from their defaults; drops the name, dtype,
    trainable flag and initializers/regularizers/constraints (weights are loaded afterwards).
    """
    import tensorflow as tf

    if not isinstance(model, tf.keras.Sequential):
        raise ValueError(f"expected a tf.keras.Sequential, got {type(model).__name__}")
    out = []
    for i, layer in enumerate(model.layers):
        cls = type(layer).__name__
        if cls not in ALLOWED_LAYERS or getattr(tf.keras.layers, cls, None) is not type(layer):
            raise ValueError(f"layer #{i} ({cls}): not an allowlisted tf.keras layer class")
        params = inspect.signature(type(layer).__init__).parameters
        entry = {"layer_name": cls}
        for key, value in layer.get_config().items():
            if key in ("name", "dtype", "trainable") or key.endswith(_DROP_SUFFIXES):
                continue
            param = params.get(key)
            if param is None or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            try:
                value = _plain(value)
            except TypeError:
                raise ValueError(
                    f"layer #{i} ({cls}): argument {key!r} is not a plain JSON value") from None
            if param.default is not param.empty and _plain_default(param.default) == value:
                continue
            entry[key] = value
        out.append(entry)
    return out


def _plain_default(default):
    try:
        return _plain(default)
    except TypeError:
        return object()  # never equal to a config value


def write_json(path, obj) -> None:
    """Write `obj` as JSON to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")


def write_model(model_dir, model, input_shape) -> None:
    """Write ``config.json`` and ``weights.hdf5`` of a Sequential into ``model_dir``."""
    model_dir = pathlib.Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    config = {"model_config": layer_config(model), "input_shape": [int(d) for d in input_shape]}
    write_json(model_dir / "config.json", config)
    write_weights_hdf5(model, model_dir / "weights.hdf5")


def _example(x, y) -> bytes:
    import tensorflow as tf

    def feature(t):
        data = tf.io.serialize_tensor(t).numpy()
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))

    features = {
        "inputs": feature(tf.constant(x, tf.float32)),
        "output": feature(tf.constant(y, tf.int32)),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_dataset(split_dir, x, y, n_shards: int = 1) -> None:
    """Write (x[i], y[i]) as TFRecord shards ``shard_000.tfrecord``... in ``split_dir``.

    Examples are split into contiguous shards, so reading the shards in sorted order gives back
    the original order. Stale shard files from an earlier write are removed.
    """
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
    if y.ndim != 1 or not np.array_equal(y, np.round(y)):
        raise ValueError("y must be a 1-d array of integer class indices")
    if n_shards < 1 or (len(x) and n_shards > len(x)):
        raise ValueError(f"n_shards must be between 1 and len(x)={len(x)}, got {n_shards}")
    split_dir = pathlib.Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(n_shards - 1)))
    written = set()
    for k, idx in enumerate(np.array_split(np.arange(len(x)), n_shards)):
        path = split_dir / f"shard_{k:0{width}d}.tfrecord"
        with atomic_path(path) as tmp:
            with tf.io.TFRecordWriter(tmp) as writer:
                for i in idx:
                    writer.write(_example(x[i], int(y[i])))
        written.add(path.name)
    for stale in split_dir.glob(_SHARD_GLOB):
        if stale.name not in written:
            stale.unlink()



# --------------------------------------------------------------------------- model_configs


def _value(value):
    """A hyperparameter value as scoring bins it: integral floats as int (256.0 is 256), lists as
    tuples (hashable)."""
    if isinstance(value, list):
        return tuple(_value(v) for v in value)
    return _intify(value)


def _order(value):
    """Sort key: numbers by value, before anything else by its text."""
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, repr(value))


def _is_accuracy(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def validate_grid(configs) -> dict[str, list]:
    """Check a parsed model_configs dict and return {hyperparameter: its possible values}.

    Every model needs ``metrics`` with ``train_acc`` and ``test_acc`` in [0, 1] and ``hparams``
    naming the same hyperparameters with the same possible values; each current value must be
    one of them, and the models must cover every combination exactly once (scoring needs a
    complete grid). Values compare as numbers (256.0 equals 256). A task without hyperparameters
    has no grid: any number of models is valid.
    """
    if not isinstance(configs, dict) or not configs:
        raise ValueError("model_configs must be a non-empty dict {bare model id: {'hparams': ..., "
                         "'metrics': ...}}")
    grid, first, seen = None, None, {}
    for model_id in _sorted_ids(configs):
        entry = configs[model_id]
        try:
            hparams, metrics = entry["hparams"], entry["metrics"]
            accuracies = metrics["train_acc"], metrics["test_acc"]
            possible = {name: sorted(set(map(_value, spec["possible_values"])), key=_order)
                        for name, spec in hparams.items()}
            current = {name: _value(spec["current_value"]) for name, spec in hparams.items()}
        except (KeyError, TypeError) as error:
            raise ValueError(f"model {model_id} in model_configs lacks {error}: every model needs "
                             "'hparams' {NAME: {'current_value', 'possible_values'}} and "
                             "'metrics' {'train_acc', 'test_acc'}") from None
        if not all(map(_is_accuracy, accuracies)):
            raise ValueError(f"model {model_id}: train_acc and test_acc must be numbers in [0, 1], "
                             f"got {accuracies}")
        if grid is None:
            grid, first = possible, model_id
        elif possible != grid:
            raise ValueError(f"model {model_id} lists hyperparameters {possible} but model {first} "
                             f"lists {grid}: every model must list the same names and values")
        outside = {name: v for name, v in current.items() if v not in grid[name]}
        if outside:
            raise ValueError(f"model {model_id}: current value(s) {outside} not among the possible "
                             "values; fix the current value or add it to possible_values")
        combination = tuple(current[name] for name in sorted(grid))
        if grid and combination in seen:
            raise ValueError(f"models {seen[combination]} and {model_id} have the same "
                             f"hyperparameters {current}: each combination must appear once")
        seen[combination] = model_id
    names = sorted(grid)
    missing = [c for c in itertools.product(*(grid[n] for n in names)) if c not in seen] \
        if names else []
    if missing:
        shown = [dict(zip(names, c)) for c in missing[:5]]
        raise ValueError(f"the grid is incomplete: {len(missing)} of {len(missing) + len(seen)} "
                         f"combinations have no model, e.g. {shown}; add those models or drop "
                         "the unused values from possible_values")
    return grid


def hparam_values(configs) -> dict[str, dict]:
    """{bare model id: {hyperparameter: current value}} as scoring bins them (256.0 is 256), after
    checking the grid with :func:`validate_grid`."""
    validate_grid(configs)
    return {model_id: {name: _value(spec["current_value"])
                       for name, spec in sorted(configs[model_id]["hparams"].items())}
            for model_id in _sorted_ids(configs)}


def write_model_configs(task_dir, configs) -> None:
    """Check ``configs`` with :func:`validate_grid`, then write ``<task_dir>/model_configs.json``
    atomically (nothing is written when the check fails)."""
    validate_grid(configs)
    task_dir = pathlib.Path(task_dir)
    task_dir.mkdir(parents=True, exist_ok=True)
    write_json(task_dir / "model_configs.json", configs)
