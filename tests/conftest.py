"""Shared helpers: small Keras models with seeded random weights."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

keras = tf.keras
layers = keras.layers


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
    model = keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    return randomize(model, seed)


BUILDERS = {"cnn": cnn, "resnet": resnet, "softmax_mlp": softmax_mlp}
