"""Every feature group of the registry (demogen.measure.features.GROUPS) against a computation of
its own on a small random CNN: the model's own predictions and logits, numpy's quantiles,
fences and moments, activations read with Keras sub-models, distances from a GradientTape per
example (test_margins.reference_margins), numpy.linalg on the kernels, and the powerlaw package
for alpha."""

import warnings

import numpy as np
import pytest
from conftest import cnn, data_for, keras
from test_margins import reference_margins

from demogen.measure import features, perturbation

N, N_SAMPLED, SEED = 60, 40, 3
# The default rule's layers on conftest's cnn (input, h1, h2, h3): positions in model.layers.
LAYERS = ["input", "2:ReLU", "3:Conv2D", "7:Dense"]
POSITIONS = [-1, 2, 3, 7]
SLOTS = ("input", "h1", "h2", "h3")
QUARTILE_NAMES = ("lower_fence", "q1", "q2", "q3", "upper_fence")
MOMENT_NAMES = ("m1", "m2", "m3", "m4", "m5")


def quartiles_and_fences(values):
    """Q1, median, Q3 by numpy, and the most extreme values inside the Tukey whiskers."""
    q1, q2, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    reach = 1.5 * (q3 - q1)
    return [values[values >= q1 - reach].min(), q1, q2, q3, values[values <= q3 + reach].max()]


def moments(values):
    """mean(d^k), k = 1..5, each as its sign-preserving k-th root."""
    raw = [np.mean(values ** k) for k in range(1, 6)]
    return [np.sign(m) * abs(m) ** (1 / k) for k, m in zip(range(1, 6), raw)]


@pytest.fixture(scope="module")
def measured():
    """The model, its seeded sample of 40 of 60 examples (numpy's draw without replacement,
    sorted) and the registry's features of it."""
    model = cnn()
    x, y = data_for(model, n=N)
    measurement = features.measure(model, (x, y), n_examples=N_SAMPLED, seed=SEED)
    assert measurement.margins.layers == LAYERS
    values, errors = features.compute(measurement)
    assert errors == {}
    chosen = np.sort(np.random.default_rng(SEED).choice(N, N_SAMPLED, replace=False))
    return model, x[chosen], y[chosen], values


@pytest.fixture(scope="module")
def variation(measured):
    """Each slot's total variation: the summed per-coordinate variance (numpy) of the
    activations, read with a Keras sub-model that ends at the slot's layer."""
    model, x, _, _ = measured
    result = []
    for position in POSITIONS:
        activations = x if position < 0 else np.asarray(
            keras.Model(model.inputs[0], model.layers[position].output)(x, training=False))
        result.append(np.var(activations.reshape(len(x), -1).astype(np.float64), axis=0).sum())
    return np.array(result)


@pytest.fixture(scope="module")
def distances(measured):
    """(4, n) signed, unnormalized distances, one GradientTape per example and layer."""
    model, x, y, _ = measured
    return reference_margins(model, x, y, POSITIONS)[0]


def signature_values(values, group, names):
    return [values[f"{group}.{slot}.{name}"] for slot in SLOTS for name in names]


def test_every_group_has_an_oracle_here():
    signatures = {f"{statistic}{variant}" for statistic in ("qrt", "mom")
                  for variant in ("", ".signed", ".unnorm", ".unnorm.signed")}
    # The perturbation and winner families have their oracles in test_perturbation.py and
    # test_winner.py.
    assert {g for g, spec in features.GROUPS.items() if spec.shipped} == signatures | {
        "out", "acc", "tv", "w", "winner"} | set(perturbation.FEATURE_GROUPS)


def test_sample_accuracy_is_the_share_of_the_sample_the_model_predicts(measured):
    model, x, y, values = measured
    correct = np.asarray(model(x, training=False)).argmax(axis=1) == y
    assert 0 < correct.mean() < 1
    assert values["acc.sample"] == correct.mean()


def test_output_margin_signature_is_numpy_s_on_the_logits(measured):
    model, x, y, values = measured
    logits = np.asarray(model(x, training=False), dtype=np.float64)
    rival = np.where(np.eye(logits.shape[1], dtype=bool)[y], -np.inf, logits).max(axis=1)
    margin = logits[np.arange(len(y)), y] - rival
    np.testing.assert_allclose([values[f"out.{name}"] for name in QUARTILE_NAMES],
                               quartiles_and_fences(margin), rtol=1e-5, atol=1e-6)


def test_total_variation_is_numpy_s_variance_of_each_layer_s_activations(measured, variation):
    values = measured[3]
    np.testing.assert_allclose([values[f"tv.{slot}"] for slot in SLOTS], variation, rtol=1e-5)


@pytest.mark.parametrize("group, summary, names, normalize, signed", [
    ("qrt", quartiles_and_fences, QUARTILE_NAMES, True, False),
    ("qrt.signed", quartiles_and_fences, QUARTILE_NAMES, True, True),
    ("qrt.unnorm", quartiles_and_fences, QUARTILE_NAMES, False, False),
    ("qrt.unnorm.signed", quartiles_and_fences, QUARTILE_NAMES, False, True),
    ("mom", moments, MOMENT_NAMES, True, False),
    ("mom.signed", moments, MOMENT_NAMES, True, True),
    ("mom.unnorm", moments, MOMENT_NAMES, False, False),
    ("mom.unnorm.signed", moments, MOMENT_NAMES, False, True),
])
def test_signature_groups_are_numpy_s_statistics_of_per_example_distances(
        measured, distances, variation, group, summary, names, normalize, signed):
    if normalize:
        distances = distances / np.sqrt(variation)[:, None]
    expected = []
    for row in distances:
        assert (row > 0).any() and (row < 0).any()
        expected += summary(row if signed else row[row > 0])
    np.testing.assert_allclose(signature_values(measured[3], group, names), expected, rtol=1e-4,
                               atol=1e-6)


def test_weight_metrics_are_numpy_linalg_s_and_powerlaw_s_on_the_kernels(measured):
    powerlaw = pytest.importorskip("powerlaw")
    model, _, _, values = measured
    kernels = [layer.kernel.numpy().astype(np.float64) for layer in model.layers
               if hasattr(layer, "kernel")]
    assert [k.ndim for k in kernels] == [4, 4, 2, 2]
    spectral = [np.linalg.norm(k.reshape(-1, k.shape[-1]), ord=2) for k in kernels]
    frobenius = [np.linalg.norm(k) for k in kernels]
    alphas, hats = [], []
    for kernel in kernels:
        slices = kernel.reshape(-1, *kernel.shape[-2:])  # one matrix per kernel position
        eigenvalues = np.concatenate([np.linalg.svd(s, compute_uv=False) ** 2 for s in slices])
        if eigenvalues.size < 50:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = powerlaw.Fit(eigenvalues, verbose=False, parameter_ranges={"alpha": [1, 20]})
        if fit.n_tail >= 10:
            alphas.append(fit.alpha)
            hats.append(fit.alpha * np.log10(eigenvalues.max()))
    assert len(alphas) == 1  # the 6-to-6 convolution: 9 positions x 6 singular values
    expected = {"log_spectral.mean": np.mean(np.log(spectral)),
                "log_spectral.sum": np.sum(np.log(spectral)),
                "log_frobenius.mean": np.mean(np.log(frobenius)),
                "log_frobenius.sum": np.sum(np.log(frobenius)),
                "alpha.mean": np.mean(alphas), "alpha_hat.mean": np.mean(hats),
                "alpha.count": len(alphas), "n_kernels": len(kernels)}
    assert {name: values[f"w.{name}"] for name in expected} == \
        {name: pytest.approx(value, rel=1e-5) for name, value in expected.items()}
