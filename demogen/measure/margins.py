"""Margins at four layers of a Keras classifier (the Margins and Signature they give are in
demogen.measure.signature, which needs no TensorFlow).

The first-order distance of example x to the boundary between its true class i and the highest
other class j, measured at layer l (docs/method.md section 1):

    d(x^l) = (f_i - f_j) / || grad_{x^l} (f_i - f_j) ||_2

In inference mode the examples of a batch do not interact, so one backward pass of
sum_k (f_i - f_j)(x_k) gives every example's gradient at all chosen layers at once.
"""

import numpy as np
import tensorflow as tf

from demogen.defaults import DEFAULTS, EXTRACTOR_VERSION
from demogen.measure.graph import ModelGraph
from demogen.measure.layers import SLOTS, choose_layers
from demogen.measure.sampling import sample
from demogen.measure.signature import Margins, feature_names

_CHECKED = 32  # examples of the first batch on which the model's own output is compared


def _check_finite_weights(model):
    for weight in model.weights:
        if not np.all(np.isfinite(np.asarray(weight))):
            raise ValueError(f"the model's weight {getattr(weight, 'path', weight.name)} holds NaN "
                             "or Inf values; the model is broken (diverged training?)")


def _margin_step(graph, taps):
    """A compiled function of a batch (x, y): output margins, gradient norms at the taps,
    per-tap activation means and summed squared deviations, finiteness flags, model output."""

    def step(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            activations, logits, output = graph.forward(x, taps)
            true = tf.gather(logits, y, batch_dims=1)
            others = tf.where(tf.one_hot(y, graph.n_classes) > 0, -np.inf, logits)
            runner_up = tf.gather(logits, tf.argmax(others, axis=1, output_type=tf.int32),
                                  batch_dims=1)
            margin = true - runner_up
            total = tf.reduce_sum(margin)
        gradients = tape.gradient(total, activations)
        norms, means, deviations, finite = [], [], [], []
        for activation, gradient in zip(activations, gradients):
            flat = tf.reshape(tf.cast(activation, tf.float32), [tf.shape(x)[0], -1])
            flat_grad = tf.reshape(tf.cast(gradient, tf.float32), [tf.shape(x)[0], -1])
            norms.append(tf.norm(flat_grad, axis=1))
            mean = tf.reduce_mean(flat, axis=0)
            means.append(mean)
            deviations.append(tf.reduce_sum(tf.square(flat - mean)))
            finite.append(tf.reduce_all(tf.math.is_finite(flat)))
        finite.append(tf.reduce_all(tf.math.is_finite(logits)))
        return margin, norms, means, deviations, tf.stack(finite), output

    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), graph.input_dtype)
    return tf.function(step, input_signature=[spec, tf.TensorSpec((None,), tf.int32)])


class _Variation:
    """Running total variation of one layer over batches (Chan et al.'s pairwise update)."""

    def __init__(self):
        self.count, self.mean, self.deviations = 0, 0.0, 0.0

    def add(self, count, mean, deviations):
        mean = np.asarray(mean, dtype=np.float64)
        total = self.count + count
        delta = mean - self.mean
        self.deviations += float(deviations) + float(np.sum(delta ** 2)) * self.count * count / total
        self.mean = self.mean + delta * count / total
        self.count = total

    @property
    def value(self):
        return self.deviations / self.count


def extract_margins(model, data, *, n_examples=DEFAULTS["n_examples"], seed=DEFAULTS["seed"],
                    batch_size=DEFAULTS["batch_size"], layers=None):
    """Measure the margins of a trained Keras classifier on a seeded sample of its training data.

    model: a built, single-input Keras classifier (Keras 3 or tf_keras) whose output is a vector of
        class scores; a softmax on top is read below (with a warning).
    data: a tf.data.Dataset of single (input, label) pairs, or a pair of arrays (inputs, labels);
        labels as class indices or one-hot.
    layers: None for the default rule, or names for h1, h2, h3 (positions, "index:ClassName",
        Keras layer names).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    graph = ModelGraph(model)
    _check_finite_weights(model)
    slots, notes = choose_layers(graph, layers)
    labels = [graph.label(k) for k in slots]
    taps = sorted(set(slots))
    inputs, targets = sample(data, graph.input_shape, graph.n_classes, n_examples, seed)
    inputs = inputs.astype(graph.input_dtype.as_numpy_dtype, copy=False)

    step = _margin_step(graph, taps)
    margins, norms = [], [[] for _ in taps]
    variations = [_Variation() for _ in taps]
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
        margin, batch_norms, means, deviations, finite, output = step(x, y)
        finite = finite.numpy()
        if not finite.all():
            where = [name for name, f in zip([graph.label(k) for k in taps] + ["the logits"], finite)
                     if not f]
            raise ValueError(f"NaN or Inf in the activations of {', '.join(where)}: the "
                             "model overflows on these inputs (check the weights and input range)")
        if start == 0:
            # The model's own forward pass on a few examples: enough to catch a graph that
            # demogen does not follow, at a small fraction of a batch's cost.
            _check_reproduces(model, x[:_CHECKED], output[:_CHECKED])
        margins.append(margin.numpy())
        for i in range(len(taps)):
            norms[i].append(batch_norms[i].numpy())
            variations[i].add(len(x), means[i].numpy(), deviations[i].numpy())

    margin = np.concatenate(margins).astype(np.float64)
    by_tap = {k: np.concatenate(n).astype(np.float64) for k, n in zip(taps, norms)}
    gradient_norms = np.stack([by_tap[k] for k in slots])
    vanished = int((~(gradient_norms > 0)).any(axis=0).sum())
    if vanished:
        notes.append(f"{vanished} example(s) with a zero margin gradient were left out")
    variation = {k: v.value for k, v in zip(taps, variations)}
    settings = {"n_examples": n_examples, "n_sampled": int(len(inputs)), "seed": seed,
                "batch_size": batch_size, "layer_rule": "default" if layers is None else "user",
                "extractor_version": EXTRACTOR_VERSION}
    return Margins(gradient_norms, np.array([variation[k] for k in slots]), margin, labels,
                   settings, notes)


def _check_reproduces(model, x, output):
    """Refuse to go on if the layer-by-layer pass does not reproduce the model's own output."""
    expected = np.asarray(model(x, training=False))
    output = np.asarray(output)
    scale = max(1.0, float(np.abs(expected).max()))
    if expected.shape != output.shape or not np.allclose(output, expected, rtol=1e-4,
                                                         atol=1e-4 * scale):
        raise ValueError("demogen's layer-by-layer pass does not reproduce the model's output on "
                         "these inputs; the model uses graph features demogen does not follow "
                         "(shared layers or extra call arguments)")


def margin_signature(model, data, *, statistic="quartile", normalize=True, signed=False,
                     n_examples=DEFAULTS["n_examples"], seed=DEFAULTS["seed"],
                     batch_size=DEFAULTS["batch_size"], layers=None):
    """The margin signature of a trained classifier (20 numbers; see `extract_margins` for the
    arguments): `statistic` "quartile" (default) or "moment", normalized by the total variation
    unless `normalize=False`, positive margins only unless `signed=True`."""
    feature_names(SLOTS, statistic)  # refuse an unknown statistic before the work
    margins = extract_margins(model, data, n_examples=n_examples, seed=seed,
                              batch_size=batch_size, layers=layers)
    return margins.signature(statistic=statistic, normalize=normalize, signed=signed)
