"""The PGDL competition winner's measure, a reference to compare with: the Davies-Bouldin index
of the classes in an early layer's output times one minus the accuracy on label-wise mixups.

Written from the description of Natekar and Sharma ("Representation Based Complexity Measures
for Predicting Generalization in Deep Learning", arXiv 2012.02775) and of the entry's public
code (parthnatekar/pgdl, the "DBI, Mixup" measure, without augmentation); no line is taken
from it. `complexity` = `davies_bouldin` x (1 - `mixup_accuracy`), the competition's
orientation: a higher value predicts a larger generalization gap (classes less separated in
the early layer, mixups of a class less often kept in it).

Davies-Bouldin part:
- The layer read (`representation_layer`): the first layer, in forward order, with a
  `strides` setting (a convolution or a pooling layer), whatever its stride. The entry's code
  tests for the setting, not its value, and its docstring calls it "the first conv/pooling
  layer"; so a stride-1 convolution counts, and for a VGG the first convolution is read, not
  its first max-pool. Where a weighted layer without strides (Dense, EinsumDense) comes first,
  as in an MLP, that layer is read instead, unpooled; a model with neither is refused. The
  entry looked only at the first three layers (and gave NaN past them); here every layer is
  searched.
- The layer's own output is read, as the entry does: after the activation the layer applies
  itself (Conv2D(activation="relu")), before a BatchNormalization or activation layer that
  follows it.
- A strided layer's output is max-pooled over windows of 4 along each spatial axis (4x4 for
  images, 4 for sequences), with stride 4 and no padding (a remainder smaller than 4 is
  dropped); a spatial axis shorter than 4 is pooled whole. Channels last: a channels_first
  layer is refused. Each example's pooled output, flattened, is its feature vector.
- 10 draws of 120 examples each, the index of each draw, then their mean. The entry sets
  computeOver=400 and batchSize=40 and runs 400 / 40 = 10 rounds, each over three fresh batches
  of 40 (120 examples), so "10 draws of 400" are 10 draws of 120, 1,200 examples in all. Here
  the draws are taken from the sample given without overlap where it holds 1,200 examples or
  more, else each draw anew (without repeats within a draw; all examples when fewer than 120).
- The index is scikit-learn's (and the entry's): a class's scatter is the mean Euclidean
  distance of its examples to their centroid; the index is the mean over the classes present
  in the draw of the largest (scatter_i + scatter_j) / distance(centroid_i, centroid_j); two
  classes with the same centroid are not compared; 0 when every scatter or every centroid
  distance is 0. A class with one example in a draw counts, with a scatter of 0; a class
  with none is absent. A draw with fewer than 2 classes is refused (ValueError).

Mixup part:
- 10 batches of 10 x n_classes examples (n_classes: the model's output width), drawn as the DB
  draws are (disjoint where the sample allows). Like the entry's batches they are not
  stratified: a class holds about 10 examples of a batch, fewer when it is rare in the sample.
- Every pair of examples of one class in a batch gives one mixup, their mean (weight 0.5),
  labelled with that class. A mixup is correct where its class scores strictly above every
  other on the logits (demogen.measure.accuracy.correct; the entry took the argmax).
- The accuracy of a class is the mean over the batches where it has a pair of the share of
  its mixups there that are correct; `mixup_accuracy` is the mean over the classes that have a
  pair in some batch. A class with fewer than 2 examples in a batch adds nothing from it
  (where the entry's code gave NaN); a class never paired is left out; when no class has a
  pair, the measure is refused (ValueError).

Every draw comes from numpy.random.default_rng(seed): the DB draws first, then the mixup
batches; no global random state is read or changed. The model runs in inference mode.
Cost per model: one forward pass over the union of the DB draws (at most 1,200 examples) and
one over the mixups, n (n - 1) / 2 for a class of n examples in a batch: about 5,000 for 10
balanced classes, more where a class is common (benchmarks/winner.py: about 2x one forward
and backward pass over 2,048 examples for a CIFAR-sized VGG).
"""

import numpy as np

from demogen.defaults import DEFAULTS
from demogen.measure import registry
from demogen.measure.accuracy import correct
from demogen.measure.graph import WEIGHTED, ModelGraph, class_name

POOL_WINDOW = 4
DB_DRAWS = 10
DB_DRAW_SIZE = 120
MIXUP_BATCHES = 10
MIXUP_PER_CLASS = 10


def representation_layer(graph):
    """The position of the layer whose output the Davies-Bouldin part reads, and whether that
    output is max-pooled (see the module docstring)."""
    import tensorflow as tf

    for k in sorted(graph.inbound):
        layer = graph.layers[k]
        if "strides" in layer.get_config():
            if layer.get_config().get("data_format") == "channels_first":
                raise ValueError(f"layer {graph.label(k)} is channels_first; the winner's measure "
                                 "pools channels-last feature maps")
            return k, len(tf.nest.flatten(layer.output)[0].shape) > 2
        if class_name(layer) in WEIGHTED:
            return k, False
    raise ValueError("the model has no convolution, pooling or dense layer for the winner's "
                     "measure to read")


def max_pool(x, window=POOL_WINDOW):
    """Max over windows of `window` along each spatial axis of a channels-last batch (stride
    `window`, no padding; an axis shorter than `window` is pooled whole)."""
    import tensorflow as tf

    sizes = [min(window, int(side)) for side in x.shape[1:-1]]
    return tf.nn.max_pool(x, ksize=sizes, strides=sizes, padding="VALID")


def davies_bouldin(features, labels):
    """The Davies-Bouldin index of the classes `labels` in `features` (n, d), as scikit-learn
    computes it (see the module docstring); at least 2 classes."""
    features = np.asarray(features, dtype=np.float64)
    classes, members = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"the Davies-Bouldin index needs examples of at least 2 classes; these "
                         f"{len(labels)} examples are all of class {classes.tolist()}")
    centroids = np.stack([features[members == i].mean(axis=0) for i in range(len(classes))])
    scatter = np.array([np.linalg.norm(features[members == i] - centroids[i], axis=1).mean()
                        for i in range(len(classes))])
    squares = (centroids ** 2).sum(axis=1)
    gram = squares[:, None] + squares[None, :] - 2 * centroids @ centroids.T
    distance = np.sqrt(np.maximum(gram, 0))
    np.fill_diagonal(distance, 0)
    if np.allclose(scatter, 0) or np.allclose(distance, 0):
        return 0.0
    distance[distance == 0] = np.inf
    return float(((scatter[:, None] + scatter[None, :]) / distance).max(axis=1).mean())


def label_wise_mixups(inputs, labels):
    """The mean of every pair of same-class examples, and its class."""
    mixed, classes = [], []
    for label in np.unique(labels):
        members = inputs[labels == label]
        first, second = np.triu_indices(len(members), k=1)
        mixed.append(0.5 * (members[first].astype(np.float64) + members[second]))
        classes.append(np.full(len(first), label))
    return np.concatenate(mixed), np.concatenate(classes)


def _draws(rng, n, count, size):
    """`count` draws of `size` of n positions (all n when fewer), no position twice in a draw;
    disjoint draws when count * size <= n, else each drawn anew."""
    size = min(size, n)
    if count * size <= n:
        return rng.permutation(n)[:count * size].reshape(count, size)
    return np.stack([rng.permutation(n)[:size] for _ in range(count)])


def winner_measure(model, inputs, labels, seed=DEFAULTS["seed"], batch_size=DEFAULTS["batch_size"]):
    """The winner's measure on a training sample (numpy inputs and labels: class indices or
    one-hot), every draw seeded by `seed`: a dict of `davies_bouldin`, `mixup_accuracy` and
    `complexity` = davies_bouldin x (1 - mixup_accuracy), higher for a larger predicted
    generalization gap."""
    import tensorflow as tf

    from demogen.measure.sampling import sample

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    graph = ModelGraph(model)
    inputs, labels = sample((inputs, labels), graph.input_shape, graph.n_classes, None)
    if len(np.unique(labels)) < 2:
        raise ValueError(f"the winner's measure needs examples of at least 2 classes; all "
                         f"{len(labels)} examples given are of class {int(labels[0])}")
    layer, pooled = representation_layer(graph)
    dtype = graph.input_dtype.as_numpy_dtype
    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), graph.input_dtype)

    @tf.function(input_signature=[spec])
    def step(x):
        (hidden,), logits, _ = graph.forward(x, [layer])
        if pooled:
            hidden = max_pool(hidden)
        return tf.reshape(hidden, (tf.shape(hidden)[0], -1)), logits

    def run(x, part):
        return np.concatenate([np.asarray(step(x[start:start + batch_size].astype(dtype))[part])
                               for start in range(0, len(x), batch_size)])

    rng = np.random.default_rng(seed)
    draws = _draws(rng, len(labels), DB_DRAWS, DB_DRAW_SIZE)
    used, positions = np.unique(draws, return_inverse=True)
    features = run(inputs[used], 0)[positions.reshape(draws.shape)]
    index = np.mean([davies_bouldin(f, labels[d]) for f, d in zip(features, draws)])

    shares = {}
    for batch in _draws(rng, len(labels), MIXUP_BATCHES, MIXUP_PER_CLASS * graph.n_classes):
        mixed, classes = label_wise_mixups(inputs[batch], labels[batch])
        if not len(classes):
            continue
        hits = correct(run(mixed, 1), classes)
        for c in np.unique(classes):
            shares.setdefault(c, []).append(hits[classes == c].mean())
    if not shares:
        raise ValueError("no mixup batch holds two examples of one class, so there is no "
                         "label-wise mixup to score; give a sample with at least 2 examples of "
                         "some class")
    accuracy = float(np.mean([np.mean(s) for s in shares.values()]))
    return {"davies_bouldin": float(index), "mixup_accuracy": accuracy,
            "complexity": float(index) * (1 - accuracy)}


PARTS = ("davies_bouldin", "mixup_accuracy", "complexity")


def _produce(model, data, sample, measurement):
    """The producer "winner": `winner_measure` on the margin sample, seeded by its seed."""
    from demogen.measure.sampling import sample as draw

    settings = registry.sample_settings(sample)
    graph = ModelGraph(model)
    inputs, labels = draw(data, graph.input_shape, graph.n_classes, settings["n_examples"],
                          settings["seed"])
    return winner_measure(model, inputs, labels, settings["seed"], settings["batch_size"])


registry.register_producer("winner", registry.Producer(
    1, _produce, lambda value: {"winner": np.array([value[p] for p in PARTS], np.float64)},
    lambda arrays: dict(zip(PARTS, arrays["winner"].tolist())) if "winner" in arrays else None))
registry.register("winner", registry.Group(tuple(f"winner.{p}" for p in PARTS), "winner",
                                           lambda value: [value[p] for p in PARTS]))
