"""Shared helpers: small Keras models with seeded random weights; the suite's default of one
pytest-xdist worker per core.

TensorFlow is imported on first use (`from conftest import keras, layers` or a model helper),
so that pytest-xdist's controlling process, which runs no test, does not load it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def _keras():
    import tensorflow as tf

    return tf.keras


def __getattr__(name):
    if name == "keras":
        return _keras()
    if name == "layers":
        return _keras().layers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Without -n, run on one pytest-xdist worker per core, each test file on one worker (so that
    its module fixtures are built once); only where pytest-xdist is installed, the machine has
    two cores or more, the tests asked for may span more than one file, and neither --pdb nor
    --collect-only asks for one process. `-n 0` runs the tests in this process."""
    files = {arg.split("::")[0] for arg in config.args}
    one_file = len(files) == 1 and next(iter(files)).endswith(".py")
    if (config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput")
            and config.option.numprocesses is None and len(os.sched_getaffinity(0)) > 1
            and not one_file and not config.option.usepdb and not config.option.collectonly):
        config.option.numprocesses = "auto"
        if config.option.dist == "no":
            config.option.dist = "loadfile"


def randomize(model, seed=0, scale=0.5):
    """Give every weight seeded random values; batch-norm variances stay positive."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.name:
            values.append(rng.uniform(0.5, 2.0, shape))
        else:
            values.append(rng.normal(0, scale, shape))
    model.set_weights([v.astype(np.float32) for v in values])
    return model


def cnn(input_shape=(12, 12, 1), n_classes=5, seed=0):
    """A small CNN with batch norm (random moving statistics) and dropout."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(6, 3, padding="same"),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2D(6, 3, strides=2, activation="relu"),
        layers.Dropout(0.5),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(12, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(n_classes),
    ])
    return randomize(model, seed)


def resnet(input_shape=(10, 10, 2), n_classes=4, blocks=2, seed=0):
    """A small functional residual network: a stem conv, `blocks` residual blocks, logits."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    for _ in range(blocks):
        y = layers.Conv2D(4, 3, padding="same")(x)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(4, 3, padding="same")(y)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return randomize(keras.Model(inputs, layers.Dense(n_classes)(x)), seed)


def data_for(model, n=64, seed=1):
    """Random inputs for `model` and the labels it predicts, with a quarter of them changed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + tuple(model.inputs[0].shape)[1:]).astype(np.float32)
    n_classes = model.outputs[0].shape[-1]
    y = np.asarray(model(x, training=False)).argmax(axis=1)
    flip = rng.random(n) < 0.25
    y[flip] = (y[flip] + 1) % n_classes
    return x, y


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def softmax_mlp(seed=0):
    """An MLP whose last layer applies softmax itself."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    return randomize(model, seed)


BUILDERS = {"cnn": cnn, "resnet": resnet, "softmax_mlp": softmax_mlp}
