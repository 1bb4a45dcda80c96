"""Perturbation responses: the rest of the network from a slot, closed forms under input and hidden
noise and under mixup, exact shift invariance, the Davies-Bouldin index against scikit-learn, the
seeds, and the caller's weights left untouched."""

import math
import random

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for, keras, layers, randomize, resnet, softmax_mlp
from sklearn.metrics import davies_bouldin_score

from demogen.measure import perturbation
from demogen.measure.graph import INPUT, ModelGraph
from demogen.measure.layers import candidates, choose_layers
from demogen.measure.perturbation import (CONDITIONS, FEATURE_GROUPS, GRIDS, NOISE, Responses,
                                          across_class_partners, davies_bouldin_index,
                                          conditions_for, family_features, feature_names,
                                          generator, measure,
                                          perturbed_weights, shift, shift_directions,
                                          within_class_partners)


def functional_mlp():
    inputs = keras.Input((6,))
    hidden = layers.Dense(7, activation="relu")(inputs)
    hidden = layers.Dense(5, activation="tanh")(hidden)
    return randomize(keras.Model(inputs, layers.Dense(3)(hidden)), seed=2)


def relu_mlp(n_classes=2, width=8):
    model = keras.Sequential([keras.Input((4,))] + [layers.Dense(width, activation="relu")
                                                    for _ in range(3)] + [layers.Dense(n_classes)])
    return randomize(model, seed=5)


@pytest.mark.filterwarnings("ignore:the model's last layer")
@pytest.mark.parametrize("build", [cnn, resnet, functional_mlp, softmax_mlp])
def test_the_rest_of_the_network_from_a_slot_reproduces_the_logits(build):
    model = build()
    graph = ModelGraph(model)
    x = data_for(model, n=20)[0]
    positions = [INPUT] + candidates(graph)
    activations, logits, _ = graph.forward(x, positions)
    for k, activation in zip(positions, activations):
        np.testing.assert_allclose(graph.run_from(k, activation), logits, rtol=1e-6, atol=1e-6)


def test_the_rest_of_the_network_cannot_run_from_inside_a_branch():
    graph = ModelGraph(resnet())
    with pytest.raises(ValueError, match="not a cut"):
        graph.run_from(3, tf.zeros((1, 10, 10, 4)))  # a conv inside the first residual block


def phi(z):
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def assert_noise_closed_form(responses, slot, margins, spread, difference):
    """Two classes, logits linear in the slot's activations a: under noise sigma * spread * N(0, I)
    the output margin is m + (w_y - w_other) . noise, so an example stays correct with probability
    Phi(m / (sigma * ||(w_0 - w_1) * spread||)) and the mean margin is m's mean in expectation.
    Each example has its own draw, so the accuracy is a sum of independent Bernoulli(p_e) over n:
    standard deviation sqrt(sum p_e (1 - p_e)) / n; the tolerance is 4 of them (the margin's: 4
    times the noise's standard deviation over sqrt(n))."""
    n = len(margins)
    width = np.linalg.norm(difference * spread)
    for sigma in NOISE:
        row = CONDITIONS.index(f"noise/{slot}/{sigma:g}")
        p = phi(margins / (sigma * width))
        tolerance = 4 * np.sqrt(np.sum(p * (1 - p))) / n
        assert abs(responses.correct[row].mean() - p.mean()) < tolerance
        assert abs(responses.margin[row] - margins.mean()) < 4 * sigma * width / np.sqrt(n)
    return width


def test_accuracy_under_input_noise_has_the_closed_form_of_a_linear_model(rng):
    model = keras.Sequential([keras.Input((6,)), layers.Dense(2)])
    # The class difference weighs most the coordinate of the largest spread, so that the noise's
    # per-coordinate scale matters.
    kernel = (rng.normal(size=(6, 2)) * [[0.3], [0.3], [0.3], [0.3], [1.0], [0.3]]).astype(np.float32)
    model.set_weights([kernel, np.array([0.3, -0.2], np.float32)])
    scale = np.array([0.1, 0.3, 1.0, 2.0, 4.0, 0.5])
    x = (rng.normal(size=(6000, 6)) * scale).astype(np.float32)
    y = np.asarray(model(x)).argmax(axis=1)  # every example correct: noise can only lose some
    responses = measure(model, x, y, seed=0, batch_size=1000)
    logits = np.asarray(model(x), dtype=np.float64)
    margins = np.where(y == 0, 1, -1) * (logits[:, 0] - logits[:, 1])
    spread, difference = x.astype(np.float64).std(axis=0), kernel[:, 0].astype(np.float64) - kernel[:, 1]
    width = assert_noise_closed_form(responses, "input", margins, spread, difference)
    # One overall scale (the mean spread) would be far off.
    row = CONDITIONS.index(f"noise/input/{NOISE[1]:g}")
    wrong = phi(margins / (NOISE[1] * np.linalg.norm(difference) * spread.mean()))
    p = phi(margins / (NOISE[1] * width))
    assert abs(responses.correct[row].mean() - wrong.mean()) > 8 * np.sqrt(np.sum(p * (1 - p))) / len(p)


def test_noise_at_h3_is_scaled_by_that_layer_s_spread_and_runs_the_rest_from_there(rng):
    model = relu_mlp()
    x = rng.normal(size=(6000, 4)).astype(np.float32)
    y = np.asarray(model(x)).argmax(axis=1)
    responses = measure(model, x, y, seed=0, batch_size=1000)
    graph = ModelGraph(model)
    assert choose_layers(graph)[0] == [INPUT, 0, 1, 2]
    hidden = np.asarray(graph.forward(x, [2])[0][0], dtype=np.float64)
    logits = np.asarray(model(x), dtype=np.float64)
    margins = np.where(y == 0, 1, -1) * (logits[:, 0] - logits[:, 1])
    kernel = model.layers[3].get_weights()[0].astype(np.float64)
    assert_noise_closed_form(responses, "h3", margins, hidden.std(axis=0), kernel[:, 0] - kernel[:, 1])


def test_mixup_keeps_the_label_of_the_dominant_example(rng):
    # Two classes, logits linear in h3: mixing a with its partner's a' gives the margin
    # (1 - lambda) m + lambda m' within a class and (1 - lambda) m - lambda m' across classes
    # (the example's own label scores the partner at -m').
    model = relu_mlp()
    x = rng.normal(size=(500, 4)).astype(np.float32)
    y = data_for(model, n=500)[1]
    responses = measure(model, x, y, seed=3, batch_size=128)
    logits = np.asarray(model(x), dtype=np.float64)
    margins = np.where(y == 0, 1, -1) * (logits[:, 0] - logits[:, 1])
    within = within_class_partners(y, generator(3, "mixup_within"))
    across = across_class_partners(y, generator(3, "mixup_across"))
    for family, partner, sign in (("mixup_within", within, 1), ("mixup_across", across, -1)):
        for lam in GRIDS[family]:
            row = CONDITIONS.index(f"{family}/h3/{lam:g}")
            expected = (1 - lam) * margins + sign * lam * margins[partner]
            clear = np.abs(expected) > 1e-4
            assert np.array_equal(responses.correct[row][clear], expected[clear] > 0)
            np.testing.assert_allclose(responses.margin[row], expected.mean(), rtol=1e-5)
    # Within a class the partners are a permutation of each class: the mean margin is unchanged.
    clean = responses.margin[CONDITIONS.index("clean")]
    np.testing.assert_allclose(responses.margin[CONDITIONS.index("mixup_within/h3/0.4")], clean,
                               rtol=1e-5)


def test_partners_are_of_the_same_class_or_of_another():
    labels = np.repeat([0, 1, 2, 3], [5, 1, 7, 3])
    within = within_class_partners(labels, np.random.default_rng(0))
    assert np.array_equal(np.sort(within), np.arange(len(labels)))
    assert np.array_equal(labels[within], labels)
    alone = np.flatnonzero(labels == 1)
    assert np.array_equal(within == np.arange(len(labels)), labels == 1) and within[alone] == alone
    across = np.stack([across_class_partners(labels, np.random.default_rng(s)) for s in range(50)])
    assert np.all(labels[across] != labels)
    assert set(labels[across[:, 0]]) == {1, 2, 3}  # drawn from every other class
    with pytest.raises(ValueError, match="one class only"):
        across_class_partners(np.zeros(4, int), np.random.default_rng(0))


def test_shift_moves_with_zero_fill():
    x = np.arange(1, 5)[None, :, None]
    assert shift(x, 1, 1).ravel().tolist() == [0, 1, 2, 3]
    assert shift(x, 1, -2).ravel().tolist() == [3, 4, 0, 0]
    assert shift(x, 1, 5).ravel().tolist() == [0, 0, 0, 0]
    assert shift_directions((8, 8, 3)) == [(1, 1), (1, -1), (2, 1), (2, -1)]
    assert shift_directions((8, 3)) == [(1, 1), (1, -1)]
    assert shift_directions((5,)) == []


def centred(rng, shape, n):
    """Whole-number inputs that are zero within 2 positions of every spatial border, so that
    shifts by 1 or 2 with zero fill keep every value, and sums are exact in float32."""
    x = np.zeros((n,) + shape, np.float32)
    inner = (slice(None),) + tuple(slice(2, size - 2) for size in shape[:-1])
    x[inner] = rng.integers(-3, 4, size=x[inner].shape)
    return x


@pytest.mark.parametrize("shape, pooling", [((8, 8, 3), "GlobalAveragePooling2D"),
                                            ((9, 2), "GlobalAveragePooling1D")])
def test_a_model_that_averages_over_space_scores_the_same_under_shifts(rng, shape, pooling):
    invariant = randomize(keras.Sequential([keras.Input(shape), getattr(layers, pooling)(),
                                            layers.Dense(3)]), seed=1)
    flat = randomize(keras.Sequential([keras.Input(shape), layers.Flatten(), layers.Dense(3)]),
                     seed=1)
    x, y = centred(rng, shape, 200), rng.integers(0, 3, 200)
    clean = CONDITIONS.index("clean")
    for model, same in ((invariant, True), (flat, False)):
        responses = measure(model, x, y, seed=0, batch_size=64)
        for k in (1, 2):
            row = CONDITIONS.index(f"shift/{k}")
            assert (np.array_equal(responses.correct[row], responses.correct[clean])
                    and responses.margin[row] == responses.margin[clean]) == same


def test_an_input_without_spatial_axes_has_no_shifts_and_every_other_family(rng):
    model = relu_mlp(n_classes=3)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    responses = measure(model, x, data_for(model, n=100)[1], seed=0, batch_size=64)
    assert "no spatial axes" in responses.reasons["shift"]
    rows = [CONDITIONS.index(f"shift/{k}") for k in (1, 2)]
    assert np.isnan(responses.margin[rows]).all() and not responses.correct[rows].any()
    with pytest.raises(ValueError, match="no spatial axes"):
        family_features(responses, "shift")
    for family in ("noise", "mixup_within", "mixup_across", "weights", "db"):
        assert np.isfinite(FEATURE_GROUPS[family][1](responses)).all()


@pytest.fixture(scope="module")
def cnn_responses():
    model = cnn()
    x, y = data_for(model, n=200)
    return model, x, y, measure(model, x, y, seed=0, batch_size=64)


def test_the_slots_are_those_of_the_layer_rule(cnn_responses):
    model, x, y, responses = cnn_responses
    graph = ModelGraph(model)
    assert responses.layers == tuple(graph.label(k) for k in choose_layers(graph)[0])
    named = measure(model, x, y, seed=0, batch_size=64, layers=[2, 3, 3])
    assert named.layers == ("input", "2:ReLU", "3:Conv2D", "3:Conv2D")
    assert "layers named by the user" in named.notes
    h2, h3 = (CONDITIONS.index(f"noise/{slot}/1") for slot in ("h2", "h3"))
    assert np.array_equal(named.correct[h2], named.correct[h3]) and named.margin[h2] == named.margin[h3]


def test_the_davies_bouldin_index_agrees_with_scikit_learn(rng, cnn_responses):
    points = rng.normal(size=(300, 4)) + np.repeat(rng.normal(scale=3, size=(3, 4)), 100, axis=0)
    labels = np.repeat([0, 2, 5], 100)
    centroids = np.stack([points[labels == c].mean(axis=0) for c in (0, 2, 5)])
    spreads = [np.linalg.norm(points[labels == c] - centroid, axis=1).mean()
               for c, centroid in zip((0, 2, 5), centroids)]
    assert davies_bouldin_index(centroids, spreads) == pytest.approx(
        davies_bouldin_score(points, labels), rel=1e-12)
    with pytest.raises(ValueError, match="same centroid"):
        davies_bouldin_index(np.zeros((2, 3)), [1.0, 1.0])
    # At h1, h2, h3 of a model: the classes in the flattened activations.
    model, x, y, responses = cnn_responses
    graph = ModelGraph(model)
    activations = graph.forward(x, choose_layers(graph)[0][1:])[0]
    expected = [davies_bouldin_score(np.asarray(a, np.float64).reshape(len(x), -1), y)
                for a in activations]
    np.testing.assert_allclose(responses.davies_bouldin, expected, rtol=1e-5)
    assert np.array_equal(FEATURE_GROUPS["db"][1](responses), responses.davies_bouldin)


def test_features_are_read_from_the_conditions(cnn_responses):
    responses = cnn_responses[3]
    assert responses.conditions == CONDITIONS and len(CONDITIONS) == 48
    assert responses.correct.shape == (48, 200) and responses.correct.dtype == bool
    for group, (names, compute) in FEATURE_GROUPS.items():
        assert all(name.startswith(group + ".") for name in names)
        assert len(compute(responses)) == len(names)
    values = dict(zip(feature_names("noise"), family_features(responses, "noise")))
    row = CONDITIONS.index("noise/h2/0.3")
    assert values["noise.h2.acc.0.3"] == responses.correct[row].mean()
    assert values["noise.h2.margin.0.3"] == responses.margin[row]


def test_weight_curves_average_the_draws_and_the_area_is_the_curve_s_mean_height():
    n = 10
    accuracy = {"clean": 1.0}
    for s, draws in zip(("0.025", "0.05", "0.1"), ((0.8, 0.9, 1.0), (0.7, 0.8, 0.9), (0.5, 0.5, 0.5))):
        accuracy.update({f"weights/{s}/{d}": a for d, a in enumerate(draws, start=1)})
    correct = np.array([np.arange(n) < round(accuracy.get(name, 0) * n) for name in CONDITIONS])
    margin = np.array([2 * accuracy.get(name, 0) for name in CONDITIONS])
    responses = Responses(CONDITIONS, correct, margin, np.full(3, np.nan), ("input",) * 4, {}, ())
    values = dict(zip(feature_names("weights"), family_features(responses, "weights")))
    assert [values[f"weights.acc.{s}"] for s in ("0.025", "0.05", "0.1")] == pytest.approx(
        [0.9, 0.8, 0.5])
    # (0.025 (1 + 0.9) / 2 + 0.025 (0.9 + 0.8) / 2 + 0.05 (0.8 + 0.5) / 2) / 0.1
    assert values["weights.acc.auc"] == pytest.approx(0.775)
    assert values["weights.margin.auc"] == pytest.approx(1.55)


def test_kept_shares_are_of_the_examples_correct_unperturbed():
    """8 examples, 6 correct unperturbed; under weight noise 3 of those 6 stay correct at every
    strength and draw, and 2 wrong ones become correct (which the accuracy counts, the kept share
    does not): keep.weights.auc = (0.025 (1 + 0.5) / 2 + 0.075 * 0.5) / 0.1 = 0.5625."""
    clean = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
    perturbed = np.array([1, 1, 1, 0, 0, 0, 1, 1], bool)
    correct = np.array([clean if name == "clean" else perturbed for name in CONDITIONS])
    responses = Responses(CONDITIONS, correct, np.zeros(len(CONDITIONS)), np.full(3, np.nan),
                          ("input",) * 4, {"shift": "no spatial axes"}, ())
    names, compute = FEATURE_GROUPS["keep"]
    values = dict(zip(names, compute(responses)))
    assert values["keep.weights.auc"] == pytest.approx(0.5625)
    assert values["keep.noise.h2.auc"] == pytest.approx((0.1 * 1.5 / 2 + 0.9 * 0.5) / 1.0)
    assert np.isnan(values["keep.shift.auc"])  # an undefined family
    assert family_features(responses, "weights")[0] == pytest.approx(5 / 8)  # the accuracy
    none = Responses(CONDITIONS, np.zeros_like(correct), np.zeros(len(CONDITIONS)),
                     np.full(3, np.nan), ("input",) * 4, {}, ())
    assert np.isnan(compute(none)).all()


def test_one_model_and_seed_give_the_same_numbers_and_no_global_state_moves(cnn_responses):
    model, x, y, first = cnn_responses
    numpy_state, python_state = np.random.get_state(), random.getstate()
    tf_state = tf.random.get_global_generator().state.numpy()
    tf.random.set_seed(11)
    expected = tf.random.uniform([4]).numpy()
    tf.random.set_seed(11)
    again = measure(model, x, y, seed=0, batch_size=64)
    assert np.array_equal(tf.random.uniform([4]).numpy(), expected)
    assert np.array_equal(tf.random.get_global_generator().state.numpy(), tf_state)
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1])
    assert random.getstate() == python_state
    assert np.array_equal(again.correct, first.correct)
    assert np.array_equal(again.margin, first.margin) and np.array_equal(again.davies_bouldin,
                                                                          first.davies_bouldin)
    other = measure(model, x, y, seed=1, batch_size=64)
    assert not np.array_equal(other.margin[1:], first.margin[1:])
    assert other.margin[0] == first.margin[0]  # the clean model draws nothing


def test_the_caller_s_weights_are_bit_identical_afterwards(cnn_responses, monkeypatch):
    model, x, y, _ = cnn_responses
    before = [w.copy() for w in model.get_weights()]
    measure(model, x, y, seed=0, batch_size=64)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))

    class Failing:
        """Draws for two weights, then fails: some layers are perturbed when it raises."""

        def __init__(self, rng):
            self.rng, self.calls = rng, 0

        def standard_normal(self, shape):
            self.calls += 1
            if self.calls > 2:
                raise RuntimeError("interrupted")
            return self.rng.standard_normal(shape)

    real = perturbation.generator
    monkeypatch.setattr(perturbation, "generator", lambda seed, label: (
        Failing(real(seed, label)) if label == "weights/2" else real(seed, label)))
    with pytest.raises(RuntimeError, match="interrupted"):
        measure(model, x, y, seed=0, batch_size=64)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


@pytest.mark.filterwarnings("ignore:the model's last layer")
def test_weight_noise_is_relative_to_each_weight_and_reaches_the_softmax_twin():
    model = randomize(keras.Sequential([keras.Input((30,)), layers.Dense(40),
                                        layers.BatchNormalization(),
                                        layers.Dense(3, activation="softmax")]))
    graph = ModelGraph(model)
    before = model.get_weights()
    with pytest.raises(RuntimeError, match="inside"):
        with perturbed_weights(graph, 0.1, np.random.default_rng(0)):
            kernel, bias = model.layers[0].get_weights()
            z = (kernel / before[0] - 1) / 0.1
            assert abs(z.mean()) < 0.05 and z.std() == pytest.approx(1, abs=0.05)
            assert not np.array_equal(bias, before[1])
            assert all(np.array_equal(a, b) for a, b in zip(model.layers[1].get_weights(),
                                                              before[2:6]))
            head = graph.logits_head.get_weights()
            assert all(np.array_equal(a, b) for a, b in zip(head, model.layers[2].get_weights()))
            assert not np.array_equal(head[0], before[6])
            raise RuntimeError("inside")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    assert all(np.array_equal(a, b) for a, b in zip(graph.logits_head.get_weights(), before[6:]))


def test_a_sample_of_one_class_has_no_mixup_across_classes_nor_davies_bouldin_index(rng):
    model = relu_mlp(n_classes=3)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    responses = measure(model, x, np.zeros(50, int), seed=0, batch_size=32)
    assert "one class only" in responses.reasons["mixup_across"]
    assert "one class only" in responses.reasons["db"] and np.isnan(responses.davies_bouldin).all()
    with pytest.raises(ValueError, match="one class only"):
        family_features(responses, "mixup_across")
    assert np.isfinite(family_features(responses, "mixup_within")).all()


@pytest.mark.parametrize("labels, seed, batch_size, match", [
    (np.full(20, 0.5), 0, 8, "class indices"), (np.full(20, 3), 0, 8, "class indices"),
    (np.zeros(19, int), 0, 8, "19 labels"), (np.zeros(20, int), -1, 8, "seed"),
    (np.zeros(20, int), 0, 0, "batch_size")])
def test_bad_input_is_refused_with_what_to_do(rng, labels, seed, batch_size, match):
    x = rng.normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        measure(relu_mlp(n_classes=3), x, labels, seed=seed, batch_size=batch_size)


KEEP_INPUT = ["keep.noise.input.auc", "keep.mixup_within.input.auc",
              "keep.mixup_across.input.auc", "keep.shift.auc"]


@pytest.mark.parametrize("columns, n_conditions", [
    (KEEP_INPUT, 12),  # clean, 3 x 3 mixups and noise at the input, 2 shifts
    (["weights.acc.auc"], 10),
    (["db.h2"], 1),
    (["noise.h1.margin.0.3", "mixup_across.h3.acc.auc", "keep.mixup_within.h2.auc"], 10),
])
def test_a_predictor_s_columns_are_measured_alone_with_the_same_values(cnn_responses, columns,
                                                                        n_conditions):
    """What a frozen predictor reads is measured without the other conditions, to the same
    numbers bit for bit; through the registry too."""
    from demogen.measure import registry

    model, x, y, full = cnn_responses
    narrowed = measure(model, x, y, seed=0, batch_size=64, **conditions_for(columns))
    assert len(narrowed.conditions) == n_conditions
    groups = registry.groups_of(columns)

    def values(responses):
        out = {}
        for group in groups:
            names, compute = FEATURE_GROUPS[group]
            out.update(zip(names, compute(responses)))
        return out

    expected, got = values(full), values(narrowed)
    measured = {c for c, v in got.items() if np.isfinite(v)}  # the curves of `columns`
    assert set(columns) <= measured and all(np.isfinite(v) for v in expected.values())
    assert {c: got[c] for c in measured} == {c: expected[c] for c in measured}
    assert set(narrowed.conditions) < set(full.conditions)
    measurement = registry.measure(model, (x, y), ["perturbation"], columns=columns,
                                   n_examples=len(x), batch_size=64)
    assert measurement.perturbation.conditions == narrowed.conditions
