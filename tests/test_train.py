"""The training helpers of the offline stage."""

import numpy as np
import tensorflow as tf

from demogen_fit import sources, train
from demogen_fit.architectures import ARCHITECTURES


def test_corrupt_labels_changes_the_chosen_fraction_to_other_classes():
    labels = np.arange(10000) % 10
    noisy = train.corrupt_labels(labels, 0.3, seed=1)
    changed = noisy != labels
    assert abs(changed.mean() - 0.3) < 0.02
    assert noisy.min() == 0 and noisy.max() == 9
    np.testing.assert_array_equal(train.corrupt_labels(labels, 0.3, seed=1), noisy)


def trained(seed, x, y):
    tf.keras.utils.set_random_seed(seed)
    model = ARCHITECTURES["tiny"]((28, 28, 1), width=4, dropout=0.5)
    train.fit_to_data(model, x, y, learning_rate=0.05, batch_size=32, epochs=1, seed=seed,
                      augment=(2, True))
    return model


def test_training_is_seeded_and_reproducible():
    x, y, x_test, _ = sources.load("fmnist", 200, seed=3)
    assert x.shape == (200, 28, 28, 1) and x.dtype == np.float32 and 0 <= x.min() < x.max() <= 1
    assert x_test.shape == (10000, 28, 28, 1)
    runs = [trained(5, x, y) for _ in range(2)]
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(trained(6, x, y).get_weights()[0], runs[0].get_weights()[0])
