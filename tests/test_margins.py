"""Margins: closed forms, invariances, and agreement with a slow per-example reference."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for, keras, layers, randomize, resnet

from demogen import extract_margins, margin_signature


def linear_classifier(rng, d=5, n=4, activation="softmax"):
    model = keras.Sequential([keras.Input((d,)), layers.Dense(n, activation=activation)])
    weights = rng.normal(size=(d, n)).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    model.set_weights([weights, bias])
    return model, weights.astype(np.float64), bias.astype(np.float64)


def test_linear_model_margin_is_the_exact_distance_to_the_boundary(rng):
    model, weights, bias = linear_classifier(rng)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    with pytest.warns(UserWarning, match="softmax"):
        margins = extract_margins(model, (x, y))

    scores = x.astype(np.float64) @ weights + bias
    rival = np.where(np.eye(4, dtype=bool)[y], -np.inf, scores).argmax(axis=1)
    normal = (weights[:, y] - weights[:, rival]).T
    rows = np.arange(len(y))
    exact = (scores[rows, y] - scores[rows, rival]) / np.linalg.norm(normal, axis=1)
    np.testing.assert_allclose(margins.distances[0], exact, rtol=1e-5, atol=1e-6)
    # Stepping that far along the normal lands on the boundary between the two classes.
    on_boundary = x - exact[:, None] * normal / np.linalg.norm(normal, axis=1, keepdims=True)
    moved = on_boundary @ weights + bias
    np.testing.assert_allclose(moved[rows, y], moved[rows, rival], atol=1e-9)
    # A linear model has no hidden layer: the input fills every slot, and the result says so.
    assert margins.layers == ["input"] * 4
    assert np.array_equal(margins.distances[1], margins.distances[0])
    assert any("linear" in note for note in margins.notes)
    assert np.mean(margins.distances[0] > 0) == np.mean(scores.argmax(axis=1) == y)


def mlp():
    model = keras.Sequential([keras.Input((6,))] + [layers.Dense(16, activation="relu")
                                                    for _ in range(3)] + [layers.Dense(4)])
    return randomize(model, seed=3)


def small_cnn():
    model = keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(5, 3, activation="relu"),
        layers.Conv2D(5, 3, activation="relu"), layers.Flatten(),
        layers.Dense(10, activation="relu"), layers.Dense(3)])
    return randomize(model, seed=4)


def assert_close(actual, expected):
    """Equal to 1e-5 relative, with an absolute floor of 1e-6 of the largest value for near-ties
    (margins near 0), where float32 round-off in f_i - f_j dominates."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("build, scaled, following", [(mlp, 1, 2), (small_cnn, 1, 3)])
def test_rescaling_a_relu_layer_changes_nothing_once_normalized(build, scaled, following):
    model = build()
    x, y = data_for(model, n=200)
    before_norm = margin_signature(model, (x, y))
    before_raw = margin_signature(model, (x, y), normalize=False)
    predictions = np.asarray(model(x))

    c = 3.7
    kernel, bias = model.layers[scaled].get_weights()
    model.layers[scaled].set_weights([kernel * c, bias * c])
    kernel, bias = model.layers[following].get_weights()
    model.layers[following].set_weights([kernel / c, bias])

    np.testing.assert_allclose(np.asarray(model(x)), predictions, rtol=1e-5, atol=1e-5)
    after_norm = margin_signature(model, (x, y))
    after_raw = margin_signature(model, (x, y), normalize=False)
    assert after_norm.layers[2] == f"{scaled}:{type(model.layers[scaled]).__name__}"
    assert_close(after_norm.values, before_norm.values)
    # Unnormalized, the rescaled layer's distances grow by c; the others do not move.
    assert_close(after_raw.values[10:15], c * before_raw.values[10:15])
    assert_close(after_raw.values[:10], before_raw.values[:10])
    assert not np.allclose(after_raw.values, before_raw.values, rtol=0.1)


def reference_margins(model, x, y, positions):
    """Per example and layer: run the layers below, then differentiate the rest. Also the total
    variation of each layer's activations, by numpy."""
    distances = np.zeros((len(positions), len(x)))
    activations = [[] for _ in positions]
    for e, (example, label) in enumerate(zip(x, y)):
        for row, position in enumerate(positions):
            hidden = tf.constant(example[None])
            for layer in model.layers[:position + 1]:
                hidden = layer(hidden, training=False)
            activations[row].append(hidden.numpy().ravel())
            with tf.GradientTape() as tape:
                tape.watch(hidden)
                logits = hidden
                for layer in model.layers[position + 1:]:
                    logits = layer(logits, training=False)
                scores = logits.numpy()[0].astype(np.float64)
                scores[label] = -np.inf
                rival = int(scores.argmax())
                difference = logits[0, label] - logits[0, rival]
            gradient = tape.gradient(difference, hidden).numpy()
            distances[row, e] = float(difference) / np.linalg.norm(gradient)
    variation = np.array([np.var(np.stack(a).astype(np.float64), axis=0).sum() for a in activations])
    return distances, variation


def test_batched_extraction_equals_a_per_example_reference():
    model = cnn()
    x, y = data_for(model, n=40)
    margins = extract_margins(model, (x, y), batch_size=16)
    positions = [-1] + [int(label.split(":")[0]) for label in margins.layers[1:]]
    assert margins.layers == ["input", "2:ReLU", "3:Conv2D", "7:Dense"]
    distances, variation = reference_margins(model, x, y, positions)
    np.testing.assert_allclose(margins.total_variation, variation, rtol=1e-5)
    np.testing.assert_allclose(margins.distances, distances, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(margins.normalized(), distances / np.sqrt(variation)[:, None],
                               rtol=1e-4, atol=1e-6)


def test_batch_size_does_not_change_the_result():
    model = resnet()
    x, y = data_for(model, n=50)
    whole = extract_margins(model, (x, y), batch_size=256)
    pieces = extract_margins(model, (x, y), batch_size=7)
    np.testing.assert_allclose(pieces.distances, whole.distances, rtol=1e-5)
    np.testing.assert_allclose(pieces.total_variation, whole.total_variation, rtol=1e-5)


def softmax_variants(rng):
    """A logits model and three ways of putting a softmax on top of the same weights."""
    hidden = [layers.Dense(8, activation="relu")]
    twin = keras.Sequential([keras.Input((5,))] + hidden + [layers.Dense(3)])
    randomize(twin, seed=5)
    weights = twin.get_weights()
    variants = [
        keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="relu"),
                          layers.Dense(3, activation="softmax")]),
        keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="relu"), layers.Dense(3),
                          layers.Softmax()]),
        keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="relu"), layers.Dense(3),
                          layers.Activation("softmax")]),
    ]
    inputs = keras.Input((5,))
    logits = layers.Dense(3)(layers.Dense(8, activation="relu")(inputs))
    variants.append(keras.Model(inputs, layers.Softmax()(logits)))
    for variant in variants:
        variant.set_weights(weights)
    return twin, variants


def test_a_softmax_model_has_the_signature_of_its_logits_twin(rng):
    twin, variants = softmax_variants(rng)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    y = rng.integers(0, 3, 120)
    expected = margin_signature(twin, (x, y), signed=True)
    for variant in variants:
        with pytest.warns(UserWarning, match="softmax"):
            got = margin_signature(variant, (x, y), signed=True)
        np.testing.assert_allclose(got.values, expected.values, rtol=1e-5)


def test_dataset_and_arrays_give_the_same_sample_and_signature():
    model = cnn()
    x, y = data_for(model, n=100)
    from_arrays = margin_signature(model, (x, y), n_examples=30, seed=4)
    dataset = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    from_dataset = margin_signature(model, dataset, n_examples=30, seed=4)
    unknown_length = dataset.filter(lambda a, b: True)
    from_unknown = margin_signature(model, unknown_length, n_examples=30, seed=4)
    batched = margin_signature(model, dataset.batch(8), n_examples=30, seed=4)
    one_hot = margin_signature(model, (x, np.eye(5)[y]), n_examples=30, seed=4)
    for other in (from_dataset, from_unknown, batched, one_hot):
        np.testing.assert_array_equal(other.values, from_arrays.values)
    other_seed = margin_signature(model, (x, y), n_examples=30, seed=5)
    assert not np.array_equal(other_seed.values, from_arrays.values)
    assert from_arrays.settings["n_sampled"] == 30


def test_signed_margins_include_the_misclassified():
    model = cnn()
    x, y = data_for(model, n=80)
    margins = extract_margins(model, (x, y))
    correct = np.asarray(model(x)).argmax(axis=1) == y
    np.testing.assert_array_equal(margins.distances[0] > 0, correct)
    positive = margins.signature()
    signed = margins.signature(signed=True)
    assert positive.n_used == [int(correct.sum())] * 4
    assert signed.n_used == [80] * 4
    assert signed.values[0] < 0 < positive.values[0]
