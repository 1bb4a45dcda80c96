"""The corpus: its data sources, architectures, stopping rule and side files."""

import dataclasses
import json
import math
import shutil
import socket
import sys

import numpy as np
import pytest
import tensorflow as tf

from demogen.competition import pgdl
from demogen.frozen import coefficients, predictor
from demogen.measure import features
from demogen_fit import freeze, presets, sidefiles, sources, tables, zoo
from demogen_fit import train as training
from demogen_fit.architectures import ARCHITECTURES

CORPUS = presets.PRESETS["corpus"]
ALL_TASKS = (CORPUS.tasks + presets.PRESETS["corpus_lockbox"].tasks
             + presets.PRESETS["lockbox2"].tasks)


@pytest.mark.parametrize("source", ["mnist1d", "digits", "fmnist", "fmnist_color"])
def test_each_source_loads_offline_with_fixed_seeds(source, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a data source tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    sources._mnist1d.cache_clear()
    first = sources.load(source, 100, seed=4)
    again = sources.load(source, 100, seed=4)
    other = sources.load(source, 100, seed=5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    x, y, x_test, y_test = first
    assert x.shape == (100,) + sources.INPUT_SHAPES[source] and x.dtype == np.float32
    assert y.dtype == np.int32 and set(np.unique(y)) <= set(range(10))
    assert x_test.shape[1:] == x.shape[1:] and len(x_test) == len(y_test)
    expected_test = {"mnist1d": 10_000, "digits": 1797 - 100, "fmnist": 10_000,
                     "fmnist_color": 10_000}[source]
    assert len(x_test) == expected_test


def test_mnist1d_leaves_the_global_random_states_alone():
    import random

    random.seed(11)
    np.random.seed(11)
    python_state, numpy_state = random.random(), np.random.random()
    random.seed(11)
    np.random.seed(11)
    sources._mnist1d.cache_clear()
    sources.load("mnist1d", 50, seed=2)
    assert (random.random(), np.random.random()) == (python_state, numpy_state)


def test_digits_refuses_more_than_600_training_images_and_colour_is_seeded():
    with pytest.raises(ValueError, match="at most 600"):
        sources.load("digits", 700)
    grey = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    coloured = sources.colorize(grey, seed=1)
    assert coloured.shape == (3, 32, 32, 3)
    assert np.all(coloured[:, 0, 0] <= 0.5)  # the padding shows the background colour
    np.testing.assert_array_equal(coloured, sources.colorize(grey, seed=1))


def test_unknown_source_or_missing_package_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown data source 'cifar'"):
        sources.check("cifar")
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match="pip install mnist1d"):
        sources.check("mnist1d")


def smallest(task):
    """The task's first configuration of its grid."""
    return next(task.combinations())[1]


@pytest.mark.parametrize("task", ALL_TASKS, ids=[t.name for t in ALL_TASKS])
def test_each_corpus_architecture_trains_is_measured_and_round_trips(task, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((64,) + task.input_shape).astype(np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    tf.keras.utils.set_random_seed(0)
    hparams = smallest(task)
    model = ARCHITECTURES[task.architecture](task.input_shape,
                                             **task.architecture_arguments(hparams))
    before = [w.copy() for w in model.get_weights()]
    settings = task.training(hparams)
    training.fit_to_data(model, x, y, epochs=1, learning_rate=settings["learning_rate"],
                         batch_size=64, augment=settings["augment"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    measurement = features.measure(model, (x, y), [features.MARGINS], n_examples=64)
    assert len(measurement.margins.layers) == 4
    signature = measurement.margins.signature("quartile", normalize=False, signed=True)
    assert signature.values.shape == (20,) and np.isfinite(signature.values).all()
    pgdl.write_model(tmp_path / "model_0", model, task.input_shape)
    loaded = pgdl.load_model(tmp_path, "0")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(training.scores(model, x), training.scores(loaded, x))


def separable(n=200, seed=0):
    """Two well separated Gaussian blobs labelled 0 and 1, as 2-feature inputs."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int32)
    x = (rng.normal(size=(n, 2)) * 0.6 + np.where(y[:, None] == 1, 1.0, -1.0)).astype(np.float32)
    return x, y


def linear_model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(10)])


def test_the_stopping_rule_stops_at_the_first_epoch_that_fits():
    x, y = separable()
    tf.keras.utils.set_random_seed(3)
    model = linear_model()
    history = training.fit_to_data(model, x, y, learning_rate=0.001, batch_size=32, epochs=50,
                                   stop_at=0.97, seed=3)
    assert history.reached and 1 < history.epochs < 50
    assert len(history.accuracy) == history.epochs == len(history.cross_entropy)
    assert all(acc < 0.97 for acc in history.accuracy[:-1]) and history.accuracy[-1] >= 0.97
    assert history.accuracy[-1] == training.accuracy(model, x, y)
    assert history.cross_entropy[-1] == pytest.approx(training.evaluate(model, x, y)[1])
    # the same model trained for exactly that many epochs without the rule is the same model
    tf.keras.utils.set_random_seed(3)
    plain = linear_model()
    training.fit_to_data(plain, x, y, learning_rate=0.001, batch_size=32,
                         epochs=history.epochs, seed=3)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_model_that_cannot_fit_runs_to_the_cap():
    x, _ = separable()
    y = np.random.default_rng(1).integers(0, 10, len(x)).astype(np.int32)  # random labels
    history = training.fit_to_data(linear_model(), x, y, learning_rate=0.01, batch_size=32,
                                   epochs=4, stop_at=0.99, seed=0)
    assert history.epochs == 4 and not history.reached and len(history.accuracy) == 4
    assert history.diverged is None


def test_a_diverging_model_stops_with_its_reason():
    x, y = separable()
    history = training.fit_to_data(linear_model(), x * 1e30, y, learning_rate=10.0,
                                   batch_size=32, epochs=5, stop_at=0.99, seed=0)
    assert history.diverged and "epoch 1" in history.diverged and history.epochs == 1


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """A two-task corpus-like preset (digits MLPs, trained until fitted) run by the zoo."""
    root = tmp_path_factory.mktemp("corpus")
    grid = {"width": (8, 16), "learning_rate": (0.05, 0.1)}
    preset = presets.Preset("small", (
        presets.Task("small_digits", "mlp", "mlp", "digits", 200, grid, 6,
                     fixed={"depth": 1}, batch_size=32, stop_at=0.99),
        presets.Task("small_noisy", "mlp", "mlp", "digits", 200, grid, 3,
                     fixed={"depth": 1}, batch_size=32, stop_at=0.99, label_noise=0.5)),
        baselines=False)
    presets.PRESETS["small"] = preset
    try:
        rows = zoo.run("small", root / "pool", workers=1, features=root / "features",
                       progress=False)
    finally:
        del presets.PRESETS["small"]
    return root, preset, rows


def test_side_files_give_back_the_table_columns(small_corpus):
    root, preset, rows = small_corpus
    table = zoo.read_table(root / "features" / "small.csv")
    assert len(table) == 8 and all(row["error"] == "" for row in table)
    for row in table:
        measurement, extras = sidefiles.read(
            sidefiles.path(root / "features", "small", row["task"], row["model_id"]))
        values, _ = features.compute(measurement)
        for column, value in values.items():
            assert (math.isnan(value) and math.isnan(row[column])) or value == row[column], column
        assert extras["test_correct"].mean() == pytest.approx(row["test_acc"])
        assert extras["train_correct"].mean() == pytest.approx(row["train_acc"])
        assert len(extras["history"]) == row["epochs"]
        assert extras["history"][-1, 0] == pytest.approx(row["train_acc"])


def test_a_changed_group_is_refreshed_from_the_side_files_without_the_models(
        small_corpus, monkeypatch, tmp_path):
    """A new version of a group whose producer the side files keep is computed from them: no
    model needed, nothing else of the rows changes."""
    root, preset, _ = small_corpus
    shutil.copytree(root / "features", tmp_path / "features")
    monkeypatch.setitem(presets.PRESETS, "small", preset)
    monkeypatch.setitem(features.GROUPS, "noise",
                        dataclasses.replace(features.GROUPS["noise"], version=2))
    before = zoo.read_table(tmp_path / "features" / "small.csv")
    after = zoo.backfill("small", tmp_path / "no_models", workers=1,
                         features=tmp_path / "features", progress=False)
    assert len(after) == len(before)
    for old, new in zip(before, sorted(after, key=lambda r: (r["task"], int(r["model_id"])))):
        versions = tables.parse_versions(new["versions"])
        assert versions["noise"] == "1.2"
        assert {g: v for g, v in versions.items() if g != "noise"} == {
            g: v for g, v in tables.parse_versions(old["versions"]).items() if g != "noise"}
        def plain(row):
            return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v
                    for k, v in row.items() if k != "versions"}
        assert plain(new) == plain(old)


def test_stopping_rule_metrics_are_recorded_under_metrics(small_corpus):
    root, preset, rows = small_corpus
    configs = pgdl.read_model_configs(root / "pool" / "small_noisy")
    for entry in configs.values():
        assert set(entry["hparams"]) == {"width", "learning_rate"}
        assert set(entry["metrics"]) == {"train_acc", "test_acc", "epochs", "reached_stop",
                                         "train_cross_entropy"}
    noisy = [r for r in rows if r["task"] == "small_noisy"]
    assert all(r["epochs"] == 3 and r["reached_stop"] == 0 for r in noisy)  # 50% noise: capped
    manifest = (root / "pool" / "small_digits" / zoo.MANIFEST)
    assert manifest.is_file() and not (root / "pool" / "manifest.json").exists()


def test_unknown_task_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="no task 'nope'.*vgg_fmnist"):
        zoo.run("corpus", tmp_path, tasks=["nope"])
    assert not any(tmp_path.iterdir())


def test_corpus_grids_are_complete_and_large_enough():
    for task in ALL_TASKS:
        combos = list(task.combinations())
        assert len(combos) >= 32 and len(task.grid) >= 3 and "seed" not in task.grid
        for a, b in [(a, b) for a in task.grid for b in task.grid if a < b]:
            per_pair = len(combos) / (len(task.grid[a]) * len(task.grid[b]))
            assert per_pair >= 8, (task.name, a, b)
        assert task.stop_at == 0.99


def test_extremes_orders_configurations_by_cost():
    task = CORPUS.task("vgg_fmnist")
    (fast_id, fast), (slow_id, slow) = zoo.extremes(task)
    assert fast["width"] == min(task.grid["width"]) and slow["width"] == max(task.grid["width"])
    assert fast["depth"] <= slow["depth"] and fast_id != slow_id


def test_changed_task_definition_is_refused(small_corpus):
    root, preset, _ = small_corpus
    changed = dataclasses.replace(preset, tasks=(dataclasses.replace(preset.tasks[0], epochs=9),
                                                 preset.tasks[1]))
    presets.PRESETS["small"] = changed
    try:
        with pytest.raises(ValueError, match="task 'small_digits' of preset 'small' has changed"):
            zoo.run("small", root / "pool", workers=1, features=root / "features",
                    progress=False)
    finally:
        del presets.PRESETS["small"]


def test_complexity_on_a_model_read_from_its_pgdl_files_reproduces_its_table_row(
        small_corpus, tmp_path, monkeypatch):
    """The features complexity() computes (the dataset read back from the TFRecord shards, the
    model from config.json and weights.hdf5) equal the zoo's table row to 1e-6."""
    root, _, _ = small_corpus
    row = next(r for r in zoo.read_table(root / "features" / "small.csv")
               if r["task"] == "small_digits" and r["model_id"] == "1")
    columns = [c for c, group in features.COLUMNS.items()
               if features.GROUPS[group].shipped and math.isfinite(row[c])]
    assert len(columns) > 150
    frozen = freeze.predictor_dict("all", columns, ["linear"] * len(columns),
                                   freeze.linear_head(np.zeros(len(columns)), 0.0), 0.0, {}, {})
    (tmp_path / "coefficients.json").write_text(json.dumps(frozen))
    seen = []
    predict_many = coefficients.Predictor.predict_many
    monkeypatch.setattr(coefficients.Predictor, "predict_many",
                        lambda self, X, *rest: seen.append(np.array(X)) or predict_many(self, X))
    task = root / "pool" / "small_digits"
    assert predictor.complexity(pgdl.load_model(task, "1"), pgdl.load_dataset(task, "train"),
                                str(tmp_path)) == 0.0
    np.testing.assert_allclose(seen[0][0], [row[c] for c in columns], rtol=1e-6, atol=1e-6)


def test_the_demo_task_is_trained_like_the_corpus_and_is_not_in_it():
    (task,) = presets.PRESETS["demo"].tasks
    assert len(task.grid) == 4 and all(len(v) == 2 for v in task.grid.values())
    assert sum(1 for _ in task.combinations()) == task.n_models == 16 and task.stop_at == 0.99
    assert task.name not in {t.name for t in ALL_TASKS}
    assert (task.source, task.data_seed) != ("mnist1d", 0)  # not the corpus's MNIST-1D data


def test_describe_summarizes_each_task_from_the_table(small_corpus, monkeypatch):
    root, preset, _ = small_corpus
    monkeypatch.setitem(presets.PRESETS, "small", preset)
    rows = zoo.read_table(root / "features" / "small.csv")
    (digits, noisy) = zoo.describe("small", root / "features")
    assert digits["task"] == "small_digits" and digits["models"] == "4/4"
    own = [r for r in rows if r["task"] == "small_noisy"]
    assert noisy["fitted"] == 0.0  # 50% noise, 3 epochs: capped
    test = np.array([r["test_acc"] for r in own])
    gap = np.array([r["train_acc"] for r in own]) - test
    se = math.sqrt(np.mean(test * (1 - test)) / (1797 - 200))
    assert noisy["gap se"] == pytest.approx(se)
    assert noisy["spread/se"] == pytest.approx(gap.std() / se)
    assert noisy["hours"] == pytest.approx(sum(r["seconds"] for r in own) / 3600)
