"""The competition winner's measure (demogen.measure.winner): the layer it reads, its pooling,
its Davies-Bouldin index against scikit-learn's, its label-wise mixups, its seeds, bad input."""

import random

import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score

from conftest import cnn, data_for, keras, layers, randomize, resnet


def winner():
    from demogen.measure import winner as module

    return module


def layer_read(model):
    from demogen.measure.graph import ModelGraph

    return winner().representation_layer(ModelGraph(model))


def sequential(input_shape, *stack, n_classes=3):
    return randomize(keras.Sequential([keras.Input(input_shape), *stack, layers.Flatten(),
                                       layers.Dense(n_classes)]))


def test_a_strided_convolution_first_is_read_pooled():
    model = sequential((8, 8, 1), layers.Conv2D(4, 3, strides=2, activation="relu"),
                       layers.Conv2D(4, 3))
    assert layer_read(model) == (0, True)


def test_a_stride_one_convolution_counts_as_strided():
    """The entry tests for a strides setting, not its value: the stride-1 conv at 0 is read,
    not the stride-2 conv at 3."""
    model = cnn()
    assert layer_read(model) == (0, True)
    assert model.layers[3].get_config()["strides"] in ((2, 2), [2, 2])


def test_the_first_strided_layer_after_unstrided_ones():
    model = sequential((8, 8, 1), layers.BatchNormalization(), layers.Dropout(0.5),
                       layers.MaxPooling2D(), layers.Conv2D(4, 3))
    assert layer_read(model) == (2, True)
    assert layer_read(resnet()) == (1, True)  # functional: position 0 is the InputLayer


def test_a_dense_layer_first_is_read_unpooled():
    mlp = randomize(keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="relu"),
                                      layers.Dense(3)]))
    assert layer_read(mlp) == (0, False)
    flattened = sequential((6, 6, 1), layers.Dense(4), layers.Conv2D(4, 3))  # Dense before a conv
    assert layer_read(flattened) == (0, False)
    linear = sequential((6, 6, 1))  # no hidden layer: the logits layer itself
    assert layer_read(linear) == (1, False)


def test_a_model_with_nothing_to_read_or_channels_first_is_refused():
    softmax_only = keras.Sequential([keras.Input((4,)), layers.Activation("relu")])
    with pytest.raises(ValueError, match="no convolution, pooling or dense layer"):
        layer_read(softmax_only)
    channels_first = keras.Sequential([keras.Input((1, 8, 8)),
                                       layers.Conv2D(2, 3, data_format="channels_first"),
                                       layers.Flatten(), layers.Dense(3)])
    with pytest.raises(ValueError, match="channels_first"):
        layer_read(channels_first)


def test_max_pooling_matches_numpy():
    rng = np.random.default_rng(0)
    pool = winner().max_pool
    x = rng.normal(size=(2, 10, 9, 3)).astype(np.float32)  # remainders dropped
    expected = x[:, :8, :8].reshape(2, 2, 4, 2, 4, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(pool(x), expected)
    thin = rng.normal(size=(2, 3, 6, 2)).astype(np.float32)  # an axis shorter than 4: pooled whole
    np.testing.assert_array_equal(pool(thin), thin[:, :, :4].max(axis=(1, 2), keepdims=True))
    sequence = rng.normal(size=(2, 9, 3)).astype(np.float32)  # Conv1D outputs: windows of 4
    np.testing.assert_array_equal(pool(sequence), sequence[:, :8].reshape(2, 2, 4, 3).max(axis=2))


def test_davies_bouldin_matches_scikit_learn():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2, 5], [30, 20, 9, 1])  # class 5: a single example
    features = rng.normal(size=(60, 7)) + 3 * rng.normal(size=(6, 7))[labels]
    assert winner().davies_bouldin(features, labels) == pytest.approx(
        davies_bouldin_score(features, labels), rel=1e-10)
    same_centroid = features.copy()  # classes 0 and 1 share a centroid: they are not compared
    same_centroid[labels == 1] += features[labels == 0].mean(0) - features[labels == 1].mean(0)
    assert winner().davies_bouldin(same_centroid, labels) == pytest.approx(
        davies_bouldin_score(same_centroid, labels), rel=1e-10)
    wide = rng.normal(size=(60, 2048)) + 5 + rng.normal(size=(6, 2048))[labels]  # rounding
    assert winner().davies_bouldin(wide, labels) == pytest.approx(
        davies_bouldin_score(wide, labels), rel=1e-10)
    points = np.repeat(np.eye(3), 2, axis=0)  # no scatter at all
    assert winner().davies_bouldin(points, [0, 0, 1, 1, 2, 2]) == davies_bouldin_score(
        points, [0, 0, 1, 1, 2, 2]) == 0.0
    with pytest.raises(ValueError, match="at least 2 classes"):
        winner().davies_bouldin(features[:5], np.zeros(5, dtype=int))


def test_the_davies_bouldin_part_reads_the_pooled_layer():
    """With fewer than 120 examples every draw holds them all: the part is scikit-learn's index
    of the first conv's output (its own ReLU applied), 4x4-max-pooled in numpy."""
    model = sequential((9, 9, 2), layers.Conv2D(3, 2, activation="relu"), layers.Conv2D(3, 3))
    x, y = data_for(model, n=90)
    conv = np.asarray(keras.Model(model.inputs[0], model.layers[0].output)(x))  # 8x8x3
    pooled = conv.reshape(90, 2, 4, 2, 4, 3).max(axis=(2, 4)).reshape(90, -1)
    result = winner().winner_measure(model, x, y, seed=3)
    assert result["davies_bouldin"] == pytest.approx(davies_bouldin_score(pooled, y), rel=1e-5)


def linear_model():
    """Logits (x0, x1, 0, -10) for inputs (x0, x1)."""
    model = keras.Sequential([keras.Input((2,)), layers.Dense(4)])
    model.set_weights([np.eye(2, 4, dtype=np.float32), np.array([0, 0, 0, -10], np.float32)])
    return model


def test_label_wise_mixups_are_same_class_midpoints():
    x = np.array([[0, 0], [1, 10], [2, 4], [6, 8], [3, 20], [9, 9]], np.float32)
    y = np.array([0, 1, 0, 0, 1, 2])  # class 2 has no partner
    mixed, classes = winner().label_wise_mixups(x, y)
    expected = {((1, 2), 0), ((3, 4), 0), ((4, 6), 0), ((2, 15), 1)}
    assert {(tuple(row), int(c)) for row, c in zip(mixed, classes)} == expected
    assert len(classes) == 4


def test_mixup_accuracy_on_a_hand_built_case():
    """Class 0's midpoints (0, -1) (a tie with class 2: wrong, though first in an argmax),
    (2, 0), (-1, -1): 1 of 3 correct; class 1's (0, 1.5): correct; class 2's (0, -2) (a tie
    with class 0: wrong), (-1.5, -1.5), (-0.5, -2.5): 2 of 3; class 3 has one example, no pair,
    and is left out (pooled over all mixups: 4 of 7). Fewer than 40 examples (10 per class x
    4 classes): every batch is the whole sample, every draw too."""
    x = np.array([[3, 0], [-3, -2], [1, 0], [0, 1], [0, 2], [-1, -1], [1, -3], [-2, -2], [5, 5]],
                 np.float32)
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    result = winner().winner_measure(linear_model(), x, y, seed=0)
    assert result["mixup_accuracy"] == pytest.approx((1 / 3 + 1 + 2 / 3) / 3)
    logits = x @ np.eye(2, 4) + [0, 0, 0, -10]  # the only weighted layer, unpooled
    assert result["davies_bouldin"] == pytest.approx(davies_bouldin_score(logits, y), rel=1e-6)
    assert result["complexity"] == pytest.approx(result["davies_bouldin"] * (1 - 2 / 3))


def test_draws_are_disjoint_where_the_sample_allows():
    draws = winner()._draws
    rng = np.random.default_rng(0)
    assert len(np.unique(draws(rng, 2048, 10, 120))) == 1200
    small = draws(rng, 1000, 10, 120)
    assert small.shape == (10, 120) and all(len(set(row)) == 120 for row in small)
    assert len(np.unique(small)) < 1000 and small.max() < 1000
    tiny = draws(rng, 50, 10, 120)
    assert all(sorted(row) == list(range(50)) for row in tiny)


def test_seeded_reproducible_and_global_random_states_untouched():
    import tensorflow as tf

    model = cnn()
    x, y = data_for(model, n=400)
    random.seed(5)
    np.random.seed(5)
    tf.random.set_seed(5)
    expected_tf = tf.random.uniform([4]).numpy()
    tf.random.set_seed(5)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    first = winner().winner_measure(model, x, y, seed=7)
    assert random.getstate() == python_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))
    np.testing.assert_array_equal(tf.random.uniform([4]).numpy(), expected_tf)
    assert winner().winner_measure(model, x, np.eye(5)[y], seed=7) == first  # one-hot labels
    other = winner().winner_measure(model, x, y, seed=8)
    assert other["davies_bouldin"] != first["davies_bouldin"]


def test_bad_samples_get_clear_errors():
    model = linear_model()
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="at least 2 classes; all 6 examples given are of class 1"):
        winner().winner_measure(model, x, np.ones(6, dtype=int))
    with pytest.raises(ValueError, match="no mixup batch holds two examples of one class"):
        winner().winner_measure(model, x[:4], np.arange(4))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        winner().winner_measure(model, x, np.arange(6) % 2, batch_size=0)
