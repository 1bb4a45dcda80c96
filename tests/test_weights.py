"""Weight spectra and the heavy-tail exponent alpha (demogen.measure.weights)."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from demogen.measure import weights

L = tf.keras.layers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_agrees_with_the_powerlaw_package_on_pareto_draws(seed):
    powerlaw = pytest.importorskip("powerlaw")
    rng = np.random.default_rng(seed)
    draws = (rng.pareto(2.0, 2000) + 1.0) * 0.5  # density ~ x^-3 above 0.5
    alpha, xmin, n_tail = weights.power_law_alpha(draws)
    assert abs(alpha - 3.0) < 0.15
    assert 0.5 <= xmin < 0.6 and n_tail > 1500  # xmin estimated, not given
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # powerlaw caps alpha at 3 by default; HT-SR exponents are often larger
        oracle = powerlaw.Fit(draws, verbose=False, parameter_ranges={"alpha": [1.0, 20.0]})
    # the same choice of xmin, up to neighbouring data points with nearly equal distances
    assert xmin == pytest.approx(oracle.xmin, rel=0.01)
    assert alpha == pytest.approx(oracle.alpha, abs=0.01)


def test_alpha_with_a_body_below_the_tail():
    rng = np.random.default_rng(5)
    body = rng.uniform(0.01, 1.0, 1000)
    tail = (rng.pareto(3.0, 2000) + 1.0) * 1.0  # density ~ x^-4 above 1
    alpha, xmin, _ = weights.power_law_alpha(np.concatenate([body, tail]))
    assert abs(alpha - 4.0) < 0.2 and 0.95 < xmin < 1.2


def test_alpha_is_undefined_below_50_eigenvalues_or_10_in_the_tail():
    assert np.isnan(weights.power_law_alpha(np.arange(1, 50, dtype=float))[0])
    # a sample whose best tail is its last few values
    values = np.concatenate([np.ones(60), [5.0, 6.0, 7.0]])
    alpha, _, n_tail = weights.power_law_alpha(values)
    assert n_tail < 10 and np.isnan(alpha)


def test_spectra_of_dense_and_conv_kernels():
    model = tf.keras.Sequential([tf.keras.Input((6, 6, 2)), L.Conv2D(4, 3), L.Flatten(),
                                 L.Dense(5)])
    model.build((None, 6, 6, 2))
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    dense = np.eye(64, 5, dtype=np.float32) * 3.0
    model.set_weights([conv, np.zeros(4, np.float32), dense, np.zeros(5, np.float32)])
    first, second = weights.spectra(model)
    assert first.label == "0:Conv2D" and second.label == "2:Dense"
    np.testing.assert_allclose(first.matrix, np.linalg.svd(conv.reshape(18, 4), compute_uv=False),
                               rtol=1e-6)
    per_position = np.concatenate([np.linalg.svd(conv[i, j], compute_uv=False)
                                   for i in range(3) for j in range(3)])
    np.testing.assert_allclose(first.slices, np.sort(per_position)[::-1], rtol=1e-6)
    np.testing.assert_allclose(second.matrix, [3.0] * 5)
    assert second.slices is second.matrix
    metrics = weights.metrics([first, second])
    frobenius = [np.linalg.norm(conv), np.linalg.norm(dense)]
    assert metrics["log_frobenius.sum"] == pytest.approx(np.log(frobenius).sum(), rel=1e-6)
    assert metrics["log_spectral.mean"] == pytest.approx(
        (np.log(first.matrix[0]) + np.log(3.0)) / 2, rel=1e-6)
    # 36 eigenvalues and 5: fewer than 50 each, so alpha is undefined everywhere
    assert np.isnan(metrics["alpha.mean"]) and metrics["alpha.count"] == 0
    assert metrics["n_kernels"] == 2


def test_alpha_hat_is_alpha_times_log10_of_the_largest_eigenvalue():
    rng = np.random.default_rng(1)
    kernel = rng.standard_t(3, size=(200, 100))
    spectrum = weights.Spectrum("0:Dense", np.linalg.svd(kernel, compute_uv=False), None)
    spectrum = weights.Spectrum("0:Dense", spectrum.matrix, spectrum.matrix)
    metrics = weights.metrics([spectrum])
    alpha = weights.power_law_alpha(spectrum.slices ** 2)[0]
    assert metrics["alpha.mean"] == pytest.approx(alpha)
    assert metrics["alpha_hat.mean"] == pytest.approx(alpha * np.log10(spectrum.slices[0] ** 2))
    assert metrics["alpha.count"] == 1
