"""The training accuracy of a model on a seeded sample of its training data, by a forward pass.

A two-part predictor subtracts its predicted test accuracy from this measured training accuracy
(demogen.frozen.predictor). On the margin sample it equals the feature acc.sample, which the
margin pass gives for free; a larger sample lowers its noise at the cost of one forward pass over
it. An example counts as correct where its true class scores strictly above every other class on
the logits (a softmax on top is read below), the rule of the margins' sign.
"""

import numpy as np

from demogen.defaults import DEFAULTS
from demogen.measure.graph import ModelGraph


def output_margin(logits, labels):
    """Each example's output margin f_i - f_j (float64): its true class's logit i less the
    highest other class's j."""
    logits = np.asarray(logits, dtype=np.float64)
    true = logits[np.arange(len(labels)), labels]
    others = np.where(np.eye(logits.shape[1], dtype=bool)[labels], -np.inf, logits)
    return true - others.max(axis=1)


def correct(logits, labels):
    """Whether each example's true class scores strictly above every other class (a positive
    output margin: in floating point, a > b exactly when a - b > 0)."""
    return output_margin(logits, labels) > 0


def sample_accuracy(model, data, n_examples=DEFAULTS["n_examples"], seed=DEFAULTS["seed"],
                    batch_size=DEFAULTS["batch_size"]):
    """The share of a seeded sample of `data` (see demogen.measure.sampling) that `model`
    classifies correctly, in inference mode."""
    import tensorflow as tf

    from demogen.measure.sampling import sample

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    graph = ModelGraph(model)
    inputs, labels = sample(data, graph.input_shape, graph.n_classes, n_examples, seed)
    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), graph.input_dtype)
    logits_of = tf.function(lambda x: graph.forward(x, [])[1], input_signature=[spec])
    hits = 0
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size].astype(graph.input_dtype.as_numpy_dtype, copy=False)
        hits += int(correct(logits_of(x), labels[start:start + batch_size]).sum())
    return hits / len(inputs)
