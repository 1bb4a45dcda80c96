"""The examples a signature is measured on: a seeded uniform sample without replacement.

Data comes as the competition passes it (a tf.data.Dataset of single (input, label) pairs, not
batched) or as a pair of numpy arrays (inputs, labels). Labels may be class indices or one-hot
vectors. Inputs are kept exactly as given: never rescaled.

A dataset's sample is drawn once per dataset object and setting and then reused (see
`_cached_sample`): the competition passes the same dataset object for every model of a task.
"""

import dataclasses
import threading
import weakref

import numpy as np
import tensorflow as tf


def sample_indices(n_total, n_examples, seed):
    """Sorted positions of a seeded uniform sample without replacement (all when n_total is
    smaller than n_examples)."""
    if n_examples is None or n_examples >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n_examples, replace=False))


_BATCH = 1024  # examples per batch while reading a dataset
_CACHE_ENTRIES = 2  # samples of datasets kept for later models (see _cached_sample)
_cache = []  # _Entry objects, the most recently used last
# Re-entrant: _forget may run in a garbage collection that happens while the lock is held.
_lock = threading.RLock()


def dataset_length(dataset):
    """The number of elements, counted without keeping them when the dataset does not know it.

    The count runs over `dataset.map(<constant>)` with tf.data's map fusion on, so that the
    dataset's own map functions (e.g. decoding TFRecords) are fused with one whose result is a
    constant, and their decoding work is pruned where TensorFlow can; a map yields one element
    per element, so the count is that of the dataset. Batched, so that the reduction runs once per
    batch and not once per element."""
    length = int(dataset.cardinality())
    if length >= 0:
        return length
    if length == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError("the dataset is infinite (repeated); pass it without .repeat()")
    options = tf.data.Options()
    options.experimental_optimization.map_fusion = True
    ones = dataset.map(lambda *_: tf.constant(1, tf.int64)).with_options(options)
    return int(ones.batch(_BATCH * 4).reduce(
        np.int64(0), lambda count, batch: count + tf.size(batch, out_type=tf.int64)))


def _read_positions(dataset, positions):
    """The elements at the sorted `positions` of an unbatched dataset of pairs, as two arrays.

    One pass in batches: each batch keeps its chosen rows with a boolean mask inside tf.data,
    which is cheaper than filtering element by element; reading stops after the last position.
    """
    if len(positions) == 0:
        raise ValueError("n_examples must be at least 1")
    last = int(positions[-1])
    keep = np.zeros(last + 1, dtype=bool)
    keep[positions] = True
    keep = tf.constant(keep)

    def chosen(index, pair):
        rows = index * _BATCH + tf.range(tf.shape(pair[0], out_type=tf.int64)[0])
        mask = tf.gather(keep, rows)
        return tuple(tf.boolean_mask(part, mask) for part in pair)

    batches = dataset.take(last + 1).batch(_BATCH).enumerate().map(chosen)
    inputs, labels = [], []
    for x, y in batches.as_numpy_iterator():
        inputs.append(x)
        labels.append(y)
    return np.concatenate(inputs), np.concatenate(labels)


def _from_dataset(dataset, n_examples, seed, input_rank):
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"the dataset's elements are {spec}; demogen needs (input, label) pairs")
    if spec[0].shape.rank == input_rank + 1:  # batched: take it apart
        dataset = dataset.unbatch()
    n_total = dataset_length(dataset)
    if n_total == 0:
        raise ValueError("the dataset is empty: there are no examples to measure margins on")
    return _read_positions(dataset, sample_indices(n_total, n_examples, seed))


@dataclasses.dataclass
class _Entry:
    dataset: weakref.ref
    key: tuple
    inputs: np.ndarray
    labels: np.ndarray


def _forget(reference):
    """Called when a cached dataset dies: drop its entries."""
    with _lock:
        _cache[:] = [entry for entry in _cache if entry.dataset is not reference]


def _cached_sample(dataset, n_examples, seed, input_rank):
    """`_from_dataset`, drawn once per dataset object and setting, then served from memory.

    The PGDL ingestion passes the same dataset object for every model of a task, so the data is
    read (twice when its length is unknown) only for the first model. An entry is keyed by a
    weak reference to the dataset object (never by `id()`, which a new object may reuse) and by
    (n_examples, seed, input rank), so another size, seed or model input rank draws anew, and
    the entry is dropped as soon as the dataset object is garbage-collected. Memory bound: at
    most _CACHE_ENTRIES (2) samples are kept (the least recently used is evicted), i.e. at most
    2 x n_examples x (input size x 4 bytes for float32 + the label) in all, e.g. 2 x 2,048 x
    32 x 32 x 3 x 4 B = 50 MB for PGDL's CIFAR-10 tasks. The whole dataset (n_examples=None)
    is never kept. The arrays are returned read-only, since later calls get the same arrays.
    It assumes, as the competition's contract does, that the dataset yields the same elements
    each time it is iterated (not shuffled, no random maps)."""
    if n_examples is None:
        return _from_dataset(dataset, n_examples, seed, input_rank)
    key = (int(n_examples), int(seed), int(input_rank))
    with _lock:
        for entry in _cache:
            if entry.dataset() is dataset and entry.key == key:
                _cache.remove(entry)
                _cache.append(entry)
                return entry.inputs, entry.labels
    inputs, labels = _from_dataset(dataset, n_examples, seed, input_rank)
    try:
        reference = weakref.ref(dataset, _forget)
    except TypeError:  # an object that cannot be weakly referenced is never cached
        return inputs, labels
    inputs.flags.writeable = False
    labels.flags.writeable = False
    with _lock:
        _cache.append(_Entry(reference, key, inputs, labels))
        del _cache[:-_CACHE_ENTRIES]
    return inputs, labels


def clear_cache():
    """Forget every cached sample."""
    with _lock:
        _cache.clear()


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
    """A seeded sample of `data` as numpy arrays (inputs, integer labels).

    From a dataset, the sample is read once per dataset object, n_examples, seed and input rank
    and then served from a small cache (`_cached_sample`); its inputs are then read-only."""
    if isinstance(data, tf.data.Dataset):
        inputs, labels = _cached_sample(data, n_examples, seed, len(input_shape))
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
