"""The training helpers of the offline stage."""

import numpy as np

from fit import train


def test_corrupt_labels_changes_the_chosen_fraction_to_other_classes():
    labels = np.arange(10000) % 10
    noisy = train.corrupt_labels(labels, 0.3, seed=1)
    changed = noisy != labels
    assert abs(changed.mean() - 0.3) < 0.02
    assert noisy.min() == 0 and noisy.max() == 9
    np.testing.assert_array_equal(train.corrupt_labels(labels, 0.3, seed=1), noisy)


def test_training_is_seeded_and_reproducible():
    (x, y), (x_test, y_test) = train.fashion_mnist_subset(200, seed=3)
    assert x.shape == (200, 28, 28, 1) and x.dtype == np.float32 and 0 <= x.min() < x.max() <= 1
    assert x_test.shape == (10000, 28, 28, 1)
    runs = [train.train(train.small_cnn(width=4, seed=5), x, y, epochs=1, seed=5)
            for _ in range(2)]
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights()):
        np.testing.assert_array_equal(a, b)
    other = train.train(train.small_cnn(width=4, seed=6), x, y, epochs=1, seed=6)
    assert not np.array_equal(other.get_weights()[0], runs[0].get_weights()[0])
