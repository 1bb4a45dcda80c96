"""Training small Fashion-MNIST classifiers (the demo now; the reference pools later)."""

import numpy as np
import tensorflow as tf

from demogen.data import load_fashion_mnist


def fashion_mnist_subset(n_train, seed=0, data_dir=None):
    """A seeded training subset and the full test set, as float32 images in [0, 1] of shape
    (28, 28, 1) with integer labels."""
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir)
    chosen = np.sort(np.random.default_rng(seed).choice(len(x_train), n_train, replace=False))
    scale = lambda images: (images[..., None] / np.float32(255)).astype(np.float32)  # noqa: E731
    return (scale(x_train[chosen]), y_train[chosen].astype(np.int32)), \
        (scale(x_test), y_test.astype(np.int32))


def corrupt_labels(labels, fraction, n_classes=10, seed=0):
    """Labels with `fraction` of them replaced by a different class, chosen uniformly."""
    rng = np.random.default_rng(seed)
    labels = labels.copy()
    flip = rng.random(len(labels)) < fraction
    labels[flip] = (labels[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
    return labels


def small_cnn(width=16, n_classes=10, input_shape=(28, 28, 1), seed=0):
    """Two strided 3x3 conv layers, a dense layer, logits; weights initialized from `seed`."""
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    return tf.keras.Sequential([
        tf.keras.Input(input_shape),
        layers.Conv2D(width, 3, strides=2, activation="relu"),
        layers.Conv2D(2 * width, 3, strides=2, activation="relu"),
        layers.Flatten(),
        layers.Dense(4 * width, activation="relu"),
        layers.Dense(n_classes),
    ])


def train(model, x, y, epochs, seed=0, batch_size=64, learning_rate=1e-3):
    """Train with Adam on cross-entropy of the logits; `seed` fixes the shuffling."""
    tf.keras.utils.set_random_seed(seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def accuracy(model, x, y, batch_size=1024):
    """Fraction of examples whose highest score is their label."""
    scores = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(scores.argmax(axis=1) == y))
