"""Sampling from a tf.data.Dataset: the faster reader gives exactly the sample of the original
algorithm, and a dataset's sample is drawn once per dataset object and then reused."""

import gc

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for

from demogen import margin_signature
from demogen.competition import pgdl
from demogen.measure import sampling


# --------------------------------------------------------------------------- the reference
# The algorithm as it was before the cache and the batched reader (extractor version 1): count
# element by element, then a filtered pass over the enumerated dataset. Kept verbatim, so that
# the sample (and with it every committed feature table) is known to be unchanged.

def reference_length(dataset):
    length = int(dataset.cardinality())
    if length >= 0:
        return length
    if length == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError("the dataset is infinite (repeated); pass it without .repeat()")
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def reference_from_dataset(dataset, n_examples, seed, input_rank):
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"the dataset's elements are {spec}; demogen needs (input, label) pairs")
    if spec[0].shape.rank == input_rank + 1:  # batched: take it apart
        dataset = dataset.unbatch()
    n_total = reference_length(dataset)
    if n_total == 0:
        raise ValueError("the dataset is empty: there are no examples to measure margins on")
    keep = np.zeros(n_total, dtype=bool)
    keep[sampling.sample_indices(n_total, n_examples, seed)] = True
    keep = tf.constant(keep)
    chosen = dataset.enumerate().filter(lambda index, _: keep[index])
    chosen = chosen.map(lambda _, pair: pair)
    inputs, labels = [], []
    for x, y in chosen.batch(1024).as_numpy_iterator():
        inputs.append(x)
        labels.append(y)
    return np.concatenate(inputs), np.concatenate(labels)


@pytest.fixture(autouse=True)
def empty_cache():
    sampling.clear_cache()
    yield
    sampling.clear_cache()


def arrays(n=2600, shape=(4, 3), seed=0, one_hot=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + shape).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    return x, (np.eye(10, dtype=np.float32)[y] if one_hot else y)


def variants(x, y):
    """The same examples as datasets of known and unknown length, batched and unbatched."""
    known = tf.data.Dataset.from_tensor_slices((x, y))
    unknown = known.filter(lambda a, b: True)
    return {"known": known, "unknown": unknown, "batched": known.batch(37),
            "batched unknown": unknown.batch(300)}


def assert_same(got, expected):
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_examples, seed", [(300, 0), (2048, 0), (2048, 7), (1, 3),
                                              (2600, 0), (5000, 1), (None, 0)])
@pytest.mark.parametrize("kind", ["known", "unknown", "batched", "batched unknown"])
def test_the_sample_is_that_of_the_original_algorithm(kind, n_examples, seed):
    x, y = arrays()
    dataset = variants(x, y)[kind]
    expected = reference_from_dataset(dataset, n_examples, seed, 2)
    assert_same(sampling._from_dataset(dataset, n_examples, seed, 2), expected)
    # served from the cache the second time, with the same arrays
    assert_same(sampling._cached_sample(dataset, n_examples, seed, 2), expected)
    assert_same(sampling._cached_sample(dataset, n_examples, seed, 2), expected)


def test_one_hot_labels_and_a_single_batch_match_the_original_algorithm():
    x, y = arrays(n=500, shape=(6,), one_hot=True)
    for dataset in variants(x, y).values():
        assert_same(sampling._from_dataset(dataset, 100, 2, 1),
                    reference_from_dataset(dataset, 100, 2, 1))


def test_a_pgdl_task_split_gives_the_original_sample(tmp_path):
    x, y = arrays(n=1500, shape=(5, 5, 3), seed=1)
    pgdl.write_dataset(tmp_path / "dataset_1" / "train", x, y, n_shards=3)
    dataset = pgdl.load_dataset(tmp_path)
    assert int(dataset.cardinality()) < 0  # TFRecords: the length is unknown
    expected = reference_from_dataset(dataset, 256, 0, 3)
    assert_same(sampling._from_dataset(dataset, 256, 0, 3), expected)
    np.testing.assert_array_equal(expected[0], x[sampling.sample_indices(1500, 256, 0)])


class CountingDataset:
    """A dataset of unknown length whose passes are counted (each pass restarts a generator)."""

    def __init__(self, x, y):
        self.passes = 0

        def generate():
            self.passes += 1
            yield from zip(x, y)

        signature = (tf.TensorSpec(x.shape[1:], tf.float32), tf.TensorSpec((), tf.int32))
        self.dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)


def test_a_second_call_with_the_same_dataset_does_not_read_it_again():
    x, y = arrays(n=700)
    counting = CountingDataset(x, y)
    first = sampling.sample(counting.dataset, (4, 3), 10, n_examples=100, seed=0)
    assert counting.passes == 2  # counting, then reading the sample
    again = sampling.sample(counting.dataset, (4, 3), 10, n_examples=100, seed=0)
    assert counting.passes == 2
    assert_same(again, first)
    assert_same(first, (x[sampling.sample_indices(700, 100, 0)],
                        y[sampling.sample_indices(700, 100, 0)]))
    assert not again[0].flags.writeable  # shared by later calls: read-only

    # another size or seed is drawn anew, not served from the cache
    sampling.sample(counting.dataset, (4, 3), 10, n_examples=50, seed=0)
    assert counting.passes == 4
    other_seed = sampling.sample(counting.dataset, (4, 3), 10, n_examples=100, seed=1)
    assert counting.passes == 6
    assert not np.array_equal(other_seed[0], first[0])
    # the whole dataset (n_examples=None) is never cached
    sampling.sample(counting.dataset, (4, 3), 10, n_examples=None)
    sampling.sample(counting.dataset, (4, 3), 10, n_examples=None)
    assert counting.passes == 10


def test_an_equal_but_distinct_dataset_object_is_read_anew():
    x, y = arrays(n=300)
    a, b = CountingDataset(x, y), CountingDataset(x, y)
    assert_same(sampling.sample(a.dataset, (4, 3), 10, 64), sampling.sample(b.dataset, (4, 3),
                                                                            10, 64))
    assert (a.passes, b.passes) == (2, 2)


def test_the_entry_dies_with_its_dataset_and_at_most_two_are_kept():
    x, y = arrays(n=300)
    datasets = [tf.data.Dataset.from_tensor_slices((x, y)) for _ in range(3)]
    for dataset in datasets:
        sampling.sample(dataset, (4, 3), 10, 64)
    assert len(sampling._cache) == 2  # the least recently used was evicted
    assert [entry.dataset() for entry in sampling._cache] == datasets[1:]
    del dataset
    datasets.pop()
    gc.collect()
    assert [entry.dataset() for entry in sampling._cache] == datasets[1:]
    datasets.clear()
    gc.collect()
    assert sampling._cache == []


def test_margins_from_the_cached_sample_equal_the_first_ones():
    model = cnn()
    x, y = data_for(model, n=120)
    counting = CountingDataset(x.astype(np.float32), y.astype(np.int32))
    first = margin_signature(model, counting.dataset, n_examples=50, seed=2)
    second = margin_signature(model, counting.dataset, n_examples=50, seed=2)
    assert counting.passes == 2
    np.testing.assert_array_equal(second.values, first.values)
    from_arrays = margin_signature(model, (x, y), n_examples=50, seed=2)
    np.testing.assert_array_equal(first.values, from_arrays.values)
