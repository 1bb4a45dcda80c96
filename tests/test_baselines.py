"""The baseline features: spectral complexity, Jacobian norm and large-margin quantity."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for, randomize

from demogen import extract_margins
from demogen.measure import features
from demogen.measure.signature import quartile_signature
from demogen_fit import baselines

keras = tf.keras
layers = keras.layers


def complexity(matrices):
    """R by hand, from (inputs x outputs) matrices."""
    spectral = [np.linalg.norm(m, ord=2) for m in matrices]
    norms21 = [np.linalg.norm(m, axis=0).sum() for m in matrices]
    return np.prod(spectral) * sum((n / s) ** (2 / 3) for n, s in zip(norms21, spectral)) ** 1.5


def columns(model, x, y):
    margins = extract_margins(model, (x, y))
    return margins, baselines.baseline_columns(model, margins,
                                               *baselines.sampled_examples(model, (x, y), margins))


def test_spectral_complexity_of_a_one_hidden_layer_network():
    model = randomize(keras.Sequential([keras.Input((5,)), layers.Dense(4, activation="relu"),
                                        layers.Dense(3)]))
    kernels = [np.asarray(layer.kernel, dtype=np.float64) for layer in model.layers]
    np.testing.assert_allclose(np.exp(baselines.log_spectral_complexity(model)),
                               complexity(kernels), rtol=1e-10)


def test_batch_norm_is_folded_into_the_layer_before_it():
    with_bn = randomize(keras.Sequential([keras.Input((5,)), layers.Dense(4, use_bias=False),
                                          layers.BatchNormalization(), layers.ReLU(),
                                          layers.Dense(3)]), seed=2)
    dense, bn, _, head = with_bn.layers
    scale = np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    folded = keras.Sequential([keras.Input((5,)), layers.Dense(4, use_bias=False), layers.ReLU(),
                               layers.Dense(3)])
    folded.set_weights([np.asarray(dense.kernel) * scale] + head.get_weights())
    assert not np.allclose(scale, 1.0)
    np.testing.assert_allclose(baselines.log_spectral_complexity(with_bn),
                               baselines.log_spectral_complexity(folded), rtol=1e-6)


def test_conv_kernels_are_reshaped_to_input_patch_by_output_channel_matrices():
    model = cnn()  # conv, batch norm, conv, dropout, max-pool, dense, dropout, dense
    conv1, bn, _, conv2, _, _, _, dense1, _, dense2 = model.layers
    scale = np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    kernels = [np.asarray(conv1.kernel).reshape(9 * 1, 6) * scale,
               np.asarray(conv2.kernel).reshape(9 * 6, 6),
               np.asarray(dense1.kernel), np.asarray(dense2.kernel)]
    np.testing.assert_allclose(np.exp(baselines.log_spectral_complexity(model)),
                               complexity(kernels), rtol=1e-6)


def test_a_linear_model_has_the_same_jacobian_everywhere():
    model = randomize(keras.Sequential([keras.Input((6,)), layers.Dense(4)]), seed=3)
    x, y = data_for(model, n=200)
    margins, result = columns(model, x, y)
    kernel = np.asarray(model.layers[0].kernel, dtype=np.float64)
    positive = margins.output_margin[margins.output_margin > 0]
    expected = quartile_signature(positive / np.linalg.norm(kernel, ord=2))
    np.testing.assert_allclose([result[f"jacobian.{s}"] for s in
                                ("lower_fence", "q1", "q2", "q3", "upper_fence")],
                               expected, rtol=1e-5)
    # One layer: R = ||W^T||_{2,1}.
    np.testing.assert_allclose(np.exp(result["spectral.log_complexity"]),
                               np.linalg.norm(kernel, axis=0).sum(), rtol=1e-10)
    assert result["spectral.q2"] == pytest.approx(
        np.median(positive) / np.linalg.norm(kernel, axis=0).sum(), rel=1e-10)
    assert {g: features.version(g) for g in baselines.BASELINE_GROUPS} == dict.fromkeys(
        baselines.BASELINE_GROUPS, f"{baselines.BASELINES_VERSION}.1")
    assert not any(features.GROUPS[g].shipped for g in baselines.BASELINE_GROUPS)


def test_jacobian_norms_match_a_per_example_reference():
    model = cnn()
    x, _ = data_for(model, n=5)
    _, norms = baselines.jacobian_norms(model, x, batch_size=2)
    for example, norm in zip(x, norms):
        example = tf.constant(example[None])
        with tf.GradientTape() as tape:
            tape.watch(example)
            logits = model(example, training=False)
        jacobian = tape.jacobian(logits, example).numpy().reshape(logits.shape[1], -1)
        assert norm == pytest.approx(np.linalg.norm(jacobian, ord=2), rel=1e-4)


def test_large_margin_quantity_by_hand():
    distances = np.array([[0.5, -0.2, 2.0, np.nan],
                          [1.0, 0.0, 0.25, 3.0],
                          [np.nan] * 4,
                          [-1.0, -1.0, 1.5, 0.5]])
    result = baselines.large_margin(distances)
    np.testing.assert_allclose(result[[0, 1, 3]], [(0.5 + 1.2 + 0) / 3, (0 + 1 + 0.75 + 0) / 4,
                                                   (2 + 2 + 0 + 0.5) / 4])
    assert np.isnan(result[2])


def test_the_examples_must_be_the_sampled_ones():
    model = cnn()
    x, y = data_for(model, n=80)
    margins = extract_margins(model, (x, y), n_examples=30, seed=4)
    inputs, labels = baselines.sampled_examples(model, (x, y), margins)
    assert len(inputs) == 30
    result = baselines.baseline_columns(model, margins, inputs, labels)
    assert np.isfinite([result[f"lm.{slot}"] for slot in ("input", "h1", "h2", "h3")]).all()
    with pytest.raises(ValueError, match="not the ones the margins were measured on"):
        baselines.baseline_columns(model, margins, x[:30], y[:30])
