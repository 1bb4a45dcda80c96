"""The examples a signature is measured on: a seeded uniform sample without replacement.

Data comes as the competition passes it (a tf.data.Dataset of single (input, label) pairs, not
batched) or as a pair of numpy arrays (inputs, labels). Labels may be class indices or one-hot
vectors. Inputs are kept exactly as given: never rescaled.
"""

import numpy as np
import tensorflow as tf


def sample_indices(n_total, n_examples, seed):
    """Sorted positions of a seeded uniform sample without replacement (all when n_total is
    smaller than n_examples)."""
    if n_examples is None or n_examples >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n_examples, replace=False))


def _dataset_length(dataset):
    length = int(dataset.cardinality())
    if length >= 0:
        return length
    if length == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError("the dataset is infinite (repeated); pass it without .repeat()")
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _from_dataset(dataset, n_examples, seed, input_rank):
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"the dataset's elements are {spec}; demogen needs (input, label) pairs")
    if spec[0].shape.rank == input_rank + 1:  # batched: take it apart
        dataset = dataset.unbatch()
    n_total = _dataset_length(dataset)
    if n_total == 0:
        raise ValueError("the dataset is empty: there are no examples to measure margins on")
    keep = np.zeros(n_total, dtype=bool)
    keep[sample_indices(n_total, n_examples, seed)] = True
    keep = tf.constant(keep)
    chosen = dataset.enumerate().filter(lambda index, _: keep[index])
    chosen = chosen.map(lambda _, pair: pair)
    inputs, labels = [], []
    for x, y in chosen.batch(1024).as_numpy_iterator():
        inputs.append(x)
        labels.append(y)
    return np.concatenate(inputs), np.concatenate(labels)


def _class_indices(labels, n_classes):
    """Integer class indices from labels given as indices (shape (n,) or (n, 1)) or one-hot."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == n_classes and n_classes > 1:
        labels = labels.argmax(axis=1)
    elif labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"labels of shape {labels.shape[1:]} per example: give class indices or "
                         f"one-hot vectors of length {n_classes}")
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise ValueError("labels must be whole class indices; found fractional values")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise ValueError(f"labels out of range: the model has {n_classes} classes (0 to "
                         f"{n_classes - 1}) but {int(bad.sum())} labels lie outside, e.g. "
                         f"{labels[bad][:5].tolist()}")
    return labels.astype(np.int32)


def sample(data, input_shape, n_classes, n_examples=2048, seed=0):
    """A seeded sample of `data` as numpy arrays (inputs, integer labels)."""
    if isinstance(data, tf.data.Dataset):
        inputs, labels = _from_dataset(data, n_examples, seed, len(input_shape))
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        inputs, labels = np.asarray(data[0]), np.asarray(data[1])
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        if len(inputs) == 0:
            raise ValueError("no examples: the input array is empty")
        chosen = sample_indices(len(inputs), n_examples, seed)
        inputs, labels = inputs[chosen], labels[chosen]
    else:
        raise TypeError("data must be a tf.data.Dataset of (input, label) pairs or a pair of "
                        f"arrays (inputs, labels); got {type(data).__name__}")
    expected = tuple(input_shape)
    given = inputs.shape[1:]
    if len(given) != len(expected) or any(e is not None and e != g for e, g in zip(expected, given)):
        raise ValueError(f"inputs have shape {given} per example but the model expects "
                         f"{expected}; give the data the model was built for")
    return inputs, _class_indices(labels, n_classes)
