"""The baseline features of the paper's ablations (docs/method.md section 6), beside the signature.

- spectral: the output margin f_i - f_j divided by the spectral complexity R of Bartlett, Foster
  and Telgarsky (2017) with zero reference matrices; quartile signature.
- jacobian: the output margin divided by the spectral norm of the Jacobian of the logits with
  respect to the input at the same example (Sokolic et al. 2016), computed exactly; quartile
  signature.
- lm: the large-margin quantity of Elsayed et al. (2018) at the signature's four layers.

Like the signature, the quartiles use positive output margins only (correctly classified
examples). They are members of the feature registry (demogen.measure.registry) registered by
this module: the producer "baselines" (which needs the margins) and the groups spectral,
jacobian and lm, marked not shipped, so that the runtime never computes them and a frozen
predictor cannot name them.
"""

import numpy as np

from demogen.measure import features
from demogen.measure.graph import WEIGHTED, ModelGraph, class_name
from demogen.measure.layers import SLOTS
from demogen.measure.signature import STATISTICS, quartile_signature

BASELINES_VERSION = 1
# About the pool-wide median of the positive unnormalized margins, which lie between 0.3 and 1.6
# at every layer in our pools; one value for all four layers.
LM_GAMMA = 1.0
MATRIX_LAYERS = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D"})


def layer_matrices(model):
    """The linear maps of the network as (inputs x outputs) matrices, in forward order.

    A Dense kernel is its own matrix; a conv kernel (k..., c_in, c_out) is reshaped to
    (prod(k) * c_in, c_out), so each output channel's column holds its incoming weights (the
    documented choice; not the conv's operator norm). An inference-mode BatchNormalization is
    folded into the weighted layer it follows: output channel c is scaled by
    gamma_c / sqrt(moving_variance_c + epsilon). Biases are ignored, and so are the other layers
    (ReLU, max-pooling, dropout and flatten are 1-Lipschitz or the identity at inference).
    """
    graph = ModelGraph(model)
    matrices = {}
    for k, layer in enumerate(graph.layers):
        name = class_name(layer)
        if name in MATRIX_LAYERS:
            kernel = np.asarray(layer.kernel, dtype=np.float64)
            matrices[k] = kernel.reshape(-1, kernel.shape[-1])
        elif name in WEIGHTED:
            raise ValueError(f"layer {graph.label(k)}: the spectral complexity is defined here "
                             f"for {', '.join(sorted(MATRIX_LAYERS))} layers only")
        elif name == "BatchNormalization":
            parent = graph.inbound[k].layer
            if parent not in matrices:
                raise ValueError(f"layer {graph.label(k)} does not follow a Dense or conv layer, "
                                 "so it cannot be folded into one")
            variance = np.asarray(layer.moving_variance, dtype=np.float64)
            gamma = 1.0 if layer.gamma is None else np.asarray(layer.gamma, dtype=np.float64)
            matrices[parent] = matrices[parent] * (gamma / np.sqrt(variance + layer.epsilon))
    return [matrices[k] for k in sorted(matrices)]


def log_spectral_complexity(model):
    """ln R, R = prod_l ||W_l||_sigma * (sum_l (||W_l^T||_{2,1} / ||W_l||_sigma)^(2/3))^(3/2),
    with ||W_l^T||_{2,1} the sum over output units of the L2 norms of their incoming weights."""
    spectral, norms21 = [], []
    for matrix in layer_matrices(model):
        spectral.append(np.linalg.norm(matrix, ord=2))
        norms21.append(np.linalg.norm(matrix, axis=0).sum())
    spectral, norms21 = np.array(spectral), np.array(norms21)
    return float(np.log(spectral).sum() + 1.5 * np.log(np.sum((norms21 / spectral) ** (2 / 3))))


def _jacobian_step(graph):
    """A compiled function of a batch x: the logits and each example's Jacobian of the logits
    with respect to its input, flattened to (n_classes, input size)."""
    import tensorflow as tf

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            _, logits, _ = graph.forward(x, [])
        jacobian = tape.batch_jacobian(logits, x)
        return logits, tf.reshape(jacobian, [tf.shape(x)[0], graph.n_classes, -1])

    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), graph.input_dtype)
    return tf.function(step, input_signature=[spec])


def jacobian_norms(model, inputs, batch_size=256):
    """The logits at `inputs` (inference mode) and the spectral norm of each example's Jacobian of
    the logits with respect to the input: sqrt of the largest eigenvalue of J J^T."""
    graph = ModelGraph(model)
    step = _jacobian_step(graph)
    inputs = np.asarray(inputs, dtype=graph.input_dtype.as_numpy_dtype)
    logits, norms = [], []
    for start in range(0, len(inputs), batch_size):
        batch_logits, jacobian = step(inputs[start:start + batch_size])
        jacobian = jacobian.numpy().astype(np.float64)
        gram = jacobian @ jacobian.transpose(0, 2, 1)
        norms.append(np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0)))
        logits.append(batch_logits.numpy().astype(np.float64))
    return np.concatenate(logits), np.concatenate(norms)


def large_margin(distances, gamma=LM_GAMMA):
    """Per layer, the mean over examples of max(0, gamma - d), d the signed unnormalized
    distances; NaN entries (vanished gradients) are left out, NaN when none is left."""
    values = []
    for row in np.asarray(distances, dtype=np.float64):
        row = row[np.isfinite(row)]
        values.append(np.maximum(0.0, gamma - row).mean() if row.size else np.nan)
    return np.array(values)


def sampled_examples(model, data, margins):
    """The examples `extract_margins(model, data)` measured `margins` on: (inputs, labels)."""
    from demogen.measure.sampling import sample  # with TensorFlow

    graph = ModelGraph(model)
    return sample(data, graph.input_shape, graph.n_classes, margins.settings["n_examples"],
                  margins.settings["seed"])


def _quartile_columns(prefix, values):
    return {f"{prefix}.{stat}": float(v)
            for stat, v in zip(STATISTICS["quartile"], quartile_signature(values))}


def baseline_columns(model, margins, inputs, labels):
    """The baseline columns of one model, {column: value}: spectral.* (and
    spectral.log_complexity), jacobian.* and lm.*. `margins` comes from
    extract_margins and `inputs, labels` are the examples it sampled (`sampled_examples`); the
    logits at `inputs` must reproduce its output margins."""
    logits, norms = jacobian_norms(model, inputs)
    labels = np.asarray(labels)
    true = logits[np.arange(len(labels)), labels]
    others = np.where(np.arange(logits.shape[1]) == labels[:, None], -np.inf, logits)
    margin = margins.output_margin
    scale = max(1.0, float(np.abs(logits).max()))
    if margin.shape != true.shape or not np.allclose(true - others.max(axis=1), margin,
                                                     rtol=1e-4, atol=1e-4 * scale):
        raise ValueError("the examples given are not the ones the margins were measured on")

    log_complexity = log_spectral_complexity(model)
    positive = margin > 0
    with_norm = positive & (norms > 0)
    return {**_quartile_columns("spectral", margin[positive] / np.exp(log_complexity)),
            "spectral.log_complexity": log_complexity,
            **_quartile_columns("jacobian", margin[with_norm] / norms[with_norm]),
            **{f"lm.{slot}": float(v) for slot, v in zip(SLOTS, large_margin(margins.distances))}}


def _measure(model, data, sample, measurement):
    margins = measurement.margins
    return baseline_columns(model, margins, *sampled_examples(model, data, margins))


QUARTILES = STATISTICS["quartile"]
BASELINE_GROUPS = {
    "spectral": tuple(f"spectral.{s}" for s in QUARTILES) + ("spectral.log_complexity",),
    "jacobian": tuple(f"jacobian.{s}" for s in QUARTILES),
    "lm": tuple(f"lm.{slot}" for slot in SLOTS)}
features.register_producer("baselines", features.Producer(
    BASELINES_VERSION, _measure, needs=("margins",), shipped=False))
for _name, _columns in BASELINE_GROUPS.items():
    features.register(_name, features.Group(
        _columns, "baselines", lambda columns, names=_columns: [columns[c] for c in names],
        shipped=False))
