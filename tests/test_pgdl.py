"""Tests for demogen.competition.pgdl: reading and writing PGDL task directories."""

import json
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from demogen.competition import pgdl

L = tf.keras.layers


def _random_cnn(seed=0, dense_units=5):
    """A tiny CNN with random weights and non-trivial BatchNormalization statistics."""
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 3)),
        L.Conv2D(4, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.MaxPooling2D(),
        L.Dropout(0.25),
        L.Flatten(),
        L.Dense(dense_units),
    ])
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = [rng.normal(size=w.shape).astype(np.float32) for w in layer.weights]
        if isinstance(layer, L.BatchNormalization):
            values[3] = rng.uniform(0.5, 2.0, size=values[3].shape).astype(np.float32)
        layer.set_weights(values)
    return model


def _examples(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.stack(xs), np.array(ys)


def test_round_trip_model_and_dataset(tmp_path):
    model = _random_cnn()
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(7, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 5, size=7)
    task = tmp_path / "task1"
    pgdl.write_model(task / "model_3", model, (8, 8, 3))
    pgdl.write_dataset(task / "dataset_1" / "train", x, y, n_shards=2)

    # Written files only (atomic writes leave no temp files), in the documented layout.
    assert sorted(p.name for p in (task / "model_3").iterdir()) == ["config.json", "weights.hdf5"]
    split = task / "dataset_1" / "train"
    assert sorted(p.name for p in split.iterdir()) == ["shard_000.tfrecord", "shard_001.tfrecord"]
    config = json.loads((task / "model_3" / "config.json").read_text())
    assert config["input_shape"] == [8, 8, 3]
    assert [c["layer_name"] for c in config["model_config"]] == [
        "Conv2D", "BatchNormalization", "MaxPooling2D", "Dropout", "Flatten", "Dense"]
    conv = config["model_config"][0]
    assert conv["filters"] == 4 and conv["kernel_size"] == [3, 3] and conv["activation"] == "relu"
    assert not {"name", "dtype", "trainable", "kernel_initializer"} & set(conv)
    with h5py.File(task / "model_3" / "weights.hdf5", "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names == [layer.name for layer in model.layers]
        bn = model.layers[1].name
        assert [n.decode() for n in f[bn].attrs["weight_names"]] == [
            f"{bn}/{w}:0" for w in ("gamma", "beta", "moving_mean", "moving_variance")]
        assert len(f[model.layers[2].name].attrs["weight_names"]) == 0

    assert pgdl.model_ids(task) == ["3"]
    loaded = pgdl.load_model(task, "3")
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)
    assert np.array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())

    ds = pgdl.load_dataset(task, "train")
    assert ds.element_spec[0].shape == (8, 8, 3) and ds.element_spec[0].dtype == tf.float32
    assert ds.element_spec[1].shape == () and ds.element_spec[1].dtype == tf.int32
    got_x, got_y = _examples(ds)
    assert np.array_equal(got_x, x) and np.array_equal(got_y, y)

    # Rewriting a split replaces its shards; stale ones do not linger.
    pgdl.write_dataset(split, x[:3], y[:3])
    assert [p.name for p in split.iterdir()] == ["shard_000.tfrecord"]
    assert np.array_equal(_examples(pgdl.load_dataset(task))[1], y[:3])


def _hand_built_task(task):
    """A task written directly in the on-disk format, without demogen.competition.pgdl."""
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 1, 16)).astype(np.float32)
    bias = rng.normal(size=(16,)).astype(np.float32)
    dense_k = rng.normal(size=(9 * 16, 3)).astype(np.float32)
    dense_b = rng.normal(size=(3,)).astype(np.float32)
    model_dir = task / "model_0"
    model_dir.mkdir(parents=True)
    config = {
        "model_config": [
            {"layer_name": "Conv2D", "filters": 16.0, "kernel_size": [3.0, 3.0],
             "padding": "same", "activation": "relu"},
            {"layer_name": "MaxPooling2D", "pool_size": [2.0, 2.0]},
            {"layer_name": "Flatten"},
            {"layer_name": "Dense", "units": 3},
        ],
        "input_shape": [6, 6, 1],
    }
    (model_dir / "config.json").write_text(json.dumps(config))
    with h5py.File(model_dir / "weights.hdf5", "w") as f:
        # Names unlike the ones Keras assigns: layers are matched by order.
        f.attrs["layer_names"] = np.array([b"conv2d_7", b"max_pooling2d_2", b"flatten_4",
                                           b"dense_9"])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.3.1"
        for name, weights in (("conv2d_7", {"kernel": kernel, "bias": bias}),
                              ("max_pooling2d_2", {}), ("flatten_4", {}),
                              ("dense_9", {"kernel": dense_k, "bias": dense_b})):
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array(
                [f"{name}/{w}:0".encode() for w in weights], dtype="S")
            for w, value in weights.items():
                g.create_dataset(f"{name}/{w}:0", data=value)
    x = rng.uniform(0, 255, size=(5, 6, 6, 1)).astype(np.float32)
    y = np.array([2, 0, 1, 1, 2], dtype=np.int32)
    split = task / "dataset_1" / "train"
    split.mkdir(parents=True)

    def feature(t):
        data = tf.io.serialize_tensor(t).numpy()
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))

    with tf.io.TFRecordWriter(str(split / "shard_000.tfrecord")) as w:
        for xi, yi in zip(x, y):
            ex = tf.train.Example(features=tf.train.Features(feature={
                "inputs": feature(tf.constant(xi)), "output": feature(tf.constant(yi))}))
            w.write(ex.SerializeToString())
    return [kernel, bias, dense_k, dense_b], x, y


def test_reads_hand_built_task(tmp_path):
    task = tmp_path / "task2"
    weights, x, y = _hand_built_task(task)
    model = pgdl.load_model(task, 0)
    assert model.layers[0].filters == 16 and isinstance(model.layers[0].filters, int)
    loaded = model.get_weights()
    assert len(loaded) == 4
    for a, b in zip(loaded, weights):
        assert np.array_equal(a, b)

    ref = tf.keras.Sequential([
        tf.keras.Input((6, 6, 1)),
        L.Conv2D(16, (3, 3), padding="same", activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Flatten(),
        L.Dense(3),
    ])
    ref.set_weights(weights)
    assert np.array_equal(model(x, training=False).numpy(), ref(x, training=False).numpy())

    got_x, got_y = _examples(pgdl.load_dataset(task))
    assert np.array_equal(got_x, x) and np.array_equal(got_y, y)
    assert got_y.dtype == np.int32


def test_build_model_casts_only_integer_arguments():
    model = pgdl.build_model({
        "model_config": [
            {"layer_name": "Dense", "units": 4.0},
            {"layer_name": "BatchNormalization", "momentum": 1.0, "epsilon": 2.0},
            {"layer_name": "Dropout", "rate": 0.0},
            {"layer_name": "Reshape", "target_shape": [2.0, 2.0]},
            {"layer_name": "ZeroPadding1D", "padding": 1.0},
        ],
        "input_shape": [3.0],
    })
    dense, bn, drop, reshape, pad = model.layers
    assert type(dense.units) is int and dense.units == 4
    assert type(bn.momentum) is float and type(bn.epsilon) is float
    assert type(drop.rate) is float
    assert type(pad.padding[0]) is int
    assert model.output_shape == (None, 4, 2)


def test_find_model_configs(tmp_path):
    configs = {"0": {"hparams": {"depth": {"current_value": 2.0, "possible_values": [2, 3]}},
                     "metrics": {"train_acc": 1.0, "test_acc": 0.8}}}
    public = tmp_path / "public_data" / "input_data" / "task1"  # the released archives' layout
    public.mkdir(parents=True)
    assert pgdl.find_model_configs(public) is None
    assert pgdl.read_model_configs(public) is None

    ref = tmp_path / "public_data" / "reference_data" / "task1" / "model_configs.json"
    ref.parent.mkdir(parents=True)
    ref.write_text(json.dumps(configs))
    assert pgdl.find_model_configs(public) == ref
    assert pgdl.read_model_configs(public) == configs

    local = public / "model_configs.json"
    local.write_text(json.dumps({"1": configs["0"]}))
    assert pgdl.find_model_configs(public) == local
    assert pgdl.read_model_configs(public) == {"1": configs["0"]}


def test_missing_files_raise(tmp_path):
    task = tmp_path / "task"
    pgdl.write_model(task / "model_0", _random_cnn(), (8, 8, 3))
    (task / "model_0" / "weights.hdf5").unlink()
    with pytest.raises(FileNotFoundError, match=r"model_0[/\\]weights\.hdf5"):
        pgdl.load_model(task, "0")
    (task / "model_0" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"model_0[/\\]config\.json"):
        pgdl.load_model(task, "0")

    with pytest.raises(FileNotFoundError, match=r"dataset_1[/\\]test"):
        pgdl.load_dataset(task, "test")
    (task / "dataset_1" / "train").mkdir(parents=True)
    (task / "dataset_1" / "train" / "other.txt").write_text("not a shard")
    with pytest.raises(FileNotFoundError, match=r"shard_\*\.tfrecord.*dataset_1[/\\]train"):
        pgdl.load_dataset(task, "train")


def _config(*layers):
    return {"model_config": list(layers), "input_shape": [4]}


def test_code_layers_refused_unless_allowed():
    lam = _config({"layer_name": "Dense", "units": 2}, {"layer_name": "Lambda", "function": "x"})
    with pytest.raises(ValueError, match=r"layer #1 \(Lambda\).*allow_code_layers=True"):
        pgdl.build_model(lam)
    # A serialized object in an argument can name code as well.
    obj = _config({"layer_name": "Dense", "units": 2,
                   "kernel_initializer": {"class_name": "Zeros", "config": {}}})
    with pytest.raises(ValueError, match=r"layer #0 \(Dense\).*kernel_initializer.*allow_code"):
        pgdl.build_model(obj)
    # With the opt-in, any class on tf.keras.layers is built.
    other = _config({"layer_name": "Identity"}, {"layer_name": "Dense", "units": 2})
    with pytest.raises(ValueError, match="allow_code_layers"):
        pgdl.build_model(other)
    model = pgdl.build_model(other, allow_code_layers=True)
    assert type(model.layers[0]).__name__ == "Identity"
    assert pgdl.build_model(obj, allow_code_layers=True).output_shape == (None, 2)


def test_unknown_layer_class_and_bad_arguments():
    unknown = _config({"layer_name": "Dense", "units": 2}, {"layer_name": "NoSuchLayer"})
    for allow in (False, True):
        with pytest.raises(ValueError, match=r"layer #1.*unknown layer class 'NoSuchLayer'"):
            pgdl.build_model(unknown, allow_code_layers=allow)
    bad = _config({"layer_name": "Dense", "units": 2, "bogus_arg": 1})
    with pytest.raises(ValueError, match=r"layer #0 \(Dense\).*bogus_arg"):
        pgdl.build_model(bad)
    with pytest.raises(ValueError, match="layer_name"):
        pgdl.build_model(_config({"units": 2}))


def test_weights_not_matching_config(tmp_path):
    task = tmp_path / "task"
    pgdl.write_model(task / "model_12", _random_cnn(dense_units=5), (8, 8, 3))
    path = task / "model_12" / "config.json"
    config = json.loads(path.read_text())
    assert config["model_config"][-1]["units"] == 5
    config["model_config"][-1]["units"] = 7
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"weights file .*model_12[/\\]weights\.hdf5 does not "
                                         r"match config\.json \(.*\); the weights belong to "
                                         "another architecture"):
        pgdl.load_model(task, "12")
    # A missing layer with weights: the layer count no longer matches.
    del config["model_config"][1]
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model_12.*does not match config\.json \(Layer count"):
        pgdl.load_model(task, "12")


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], r"weights\.hdf5 is not readable HDF5 \(.*truncated"),
    (lambda data: bytes(len(data)), r"weights\.hdf5 is not readable HDF5 \(.*signature"),
])
def test_a_truncated_or_corrupt_weights_file_is_a_clear_error(tmp_path, damage, message):
    pgdl.write_model(tmp_path / "model_0", _random_cnn(), (8, 8, 3))
    weights = tmp_path / "model_0" / "weights.hdf5"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ValueError, match=message + r".*\); the file is truncated or corrupt"):
        pgdl.load_model(tmp_path, "0")


def test_a_truncated_config_is_a_clear_error(tmp_path):
    pgdl.write_model(tmp_path / "model_0", _random_cnn(), (8, 8, 3))
    config = tmp_path / "model_0" / "config.json"
    text = config.read_text()
    config.write_text(text[:text.index(":") + 1] + "\n")
    with pytest.raises(ValueError, match=r"model_0[/\\]config\.json is not valid JSON \(Expecting "
                                         r"value: line 3 column 1 .*\); the file is truncated"):
        pgdl.load_model(tmp_path, "0")


def test_model_ids_sorting(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path.name)):
        pgdl.model_ids(tmp_path)
    (tmp_path / "net_0").mkdir()
    (tmp_path / "model_").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds \['model_', 'net_0'\]\); each model goes "
                                                r"in a folder model_<id>"):
        pgdl.model_ids(tmp_path)
    for name in ("model_10", "model_2", "model_1", "dataset_1"):
        (tmp_path / name).mkdir()
    (tmp_path / "model_99").write_text("a file, not a model folder")
    assert pgdl.model_ids(tmp_path) == ["1", "2", "10"]
    (tmp_path / "model_b").mkdir()
    assert pgdl.model_ids(tmp_path) == ["1", "10", "2", "b"]


# --------------------------------------------------------------------------- model_configs


def _entry(train=1.0, test=0.8, **hparams):
    """One model_configs entry; each hparam is given as (current_value, possible_values)."""
    return {"hparams": {name: {"current_value": cur, "possible_values": list(possible)}
                        for name, (cur, possible) in hparams.items()},
            "metrics": {"train_acc": train, "test_acc": test}}


def _grid_2x3():
    """A complete depth {2, 3} x width {32, 64, 128} grid, ids "0".."5"."""
    combos = [(d, w) for d in (2, 3) for w in (32, 64, 128)]
    return {str(i): _entry(test=0.5 + i / 20, depth=(d, [2, 3]), width=(w, [32, 64, 128]))
            for i, (d, w) in enumerate(combos)}


def test_model_configs_complete_grid_round_trip(tmp_path):
    configs = _grid_2x3()
    task = tmp_path / "task"
    pgdl.write_model_configs(task, configs)
    assert [p.name for p in task.iterdir()] == ["model_configs.json"]  # no temp file left
    assert pgdl.read_model_configs(task) == configs
    assert pgdl.validate_grid(configs) == {"depth": [2, 3], "width": [32, 64, 128]}
    values = pgdl.hparam_values(configs)
    assert list(values) == ["0", "1", "2", "3", "4", "5"]
    assert values["4"] == {"depth": 3, "width": 64}


def test_model_configs_integral_float_matches_int():
    configs = _grid_2x3()
    configs["5"]["hparams"]["width"]["current_value"] = 128.0
    for entry in configs.values():
        entry["hparams"]["width"]["possible_values"] = [32.0, 64, 128.0]
    assert pgdl.validate_grid(configs) == {"depth": [2, 3], "width": [32, 64, 128]}
    values = pgdl.hparam_values(configs)
    assert values["5"]["width"] == 128 and type(values["5"]["width"]) is int
    assert len({tuple(v.values()) for v in values.values()}) == 6
    # A string never equals a number.
    configs["5"]["hparams"]["width"]["current_value"] = "128"
    with pytest.raises(ValueError, match=r"model 5: current value\(s\) \{'width': '128'\} not "
                                         r"among the possible values"):
        pgdl.validate_grid(configs)


def test_model_configs_missing_combination_refused(tmp_path):
    configs = _grid_2x3()
    del configs["4"]
    with pytest.raises(ValueError, match=r"incomplete: 1 of 6 combinations.*"
                                         r"\{'depth': 3, 'width': 64\}"):
        pgdl.write_model_configs(tmp_path, configs)
    assert not (tmp_path / "model_configs.json").exists()


def test_model_configs_duplicate_combination_refused():
    configs = _grid_2x3()
    configs["6"] = _entry(depth=(3.0, [2, 3]), width=(128, [32, 64, 128]))
    with pytest.raises(ValueError, match=r"models 5 and 6 have the same hyperparameters"):
        pgdl.validate_grid(configs)


def test_model_configs_current_value_outside_possible_values():
    configs = _grid_2x3()
    configs["2"]["hparams"]["width"]["current_value"] = 256
    with pytest.raises(ValueError, match=r"model 2: current value\(s\) \{'width': 256\}"):
        pgdl.validate_grid(configs)


def test_model_configs_different_hparams_refused():
    configs = _grid_2x3()
    configs["3"]["hparams"]["lr"] = {"current_value": 0.1, "possible_values": [0.1]}
    with pytest.raises(ValueError, match=r"model 3 lists hyperparameters .*'lr'.* but model 0"):
        pgdl.validate_grid(configs)
    configs = _grid_2x3()
    configs["1"]["hparams"]["width"]["possible_values"] = [32, 64]
    with pytest.raises(ValueError, match=r"model 1 lists .*same names and values"):
        pgdl.validate_grid(configs)


def test_model_configs_missing_or_bad_metrics_refused(tmp_path):
    configs = _grid_2x3()
    del configs["3"]["metrics"]["train_acc"]
    with pytest.raises(ValueError, match=r"model 3 in model_configs lacks 'train_acc'"):
        pgdl.write_model_configs(tmp_path, configs)
    assert not (tmp_path / "model_configs.json").exists()
    configs = _grid_2x3()
    configs["4"]["metrics"]["test_acc"] = "0.9"
    with pytest.raises(ValueError, match=r"model 4: train_acc and test_acc must be numbers"):
        pgdl.validate_grid(configs)


def test_model_configs_without_hyperparameters(tmp_path):
    configs = {str(i): _entry(test=0.1 * i) for i in range(3)}
    assert pgdl.validate_grid(configs) == {}
    assert pgdl.hparam_values(configs) == {"0": {}, "1": {}, "2": {}}
    pgdl.write_model_configs(tmp_path, configs)
    assert pgdl.read_model_configs(tmp_path) == configs


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    pgdl.write_json(tmp_path / "a.json", {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
