"""Timing helpers shared by the benchmarks (not part of demogen)."""

import contextlib
import time

import numpy as np
import tensorflow as tf

from demogen.frozen import predictor as predictor_module
from demogen.measure import margins as margins_module
from demogen.measure.sampling import sample_indices

PARTS = ("sampling", "trace", "loop", "check", "train accuracy", "rest")


class Breakdown:
    """Times the parts of `extract_margins` by wrapping the functions demogen.measure.margins
    calls: sampling (`sample`), trace (building and tracing the compiled margin step, done here
    explicitly before its first call: its input signature is fixed, so the first call then does
    not trace again), loop (the compiled step's calls), check (`_check_reproduces`), and the
    forward pass of a two-part predictor's training accuracy (`sample_accuracy` as
    demogen.frozen.predictor calls it, its own sampling included); `rest` is what the caller's
    total leaves (see `finish`)."""

    def __init__(self):
        self.parts = dict.fromkeys(PARTS[:-1], 0.0)

    def add(self, part, seconds):
        self.parts[part] = self.parts.get(part, 0.0) + seconds

    def finish(self, total):
        self.parts["rest"] = total - sum(v for k, v in self.parts.items() if k != "rest")
        return self.parts

    def line(self):
        return ", ".join(f"{name} {self.parts.get(name, 0.0):.2f}" for name in PARTS)

    @contextlib.contextmanager
    def installed(self):
        saved = {name: getattr(margins_module, name)
                 for name in ("sample", "_margin_step", "_check_reproduces")}

        def timed(part, function):
            def call(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    self.add(part, time.perf_counter() - start)
            return call

        def margin_step(*args, **kwargs):
            start = time.perf_counter()
            step = saved["_margin_step"](*args, **kwargs)
            step.get_concrete_function()
            self.add("trace", time.perf_counter() - start)
            return timed("loop", step)

        margins_module.sample = timed("sampling", saved["sample"])
        margins_module._margin_step = margin_step
        margins_module._check_reproduces = timed("check", saved["_check_reproduces"])
        accuracy = predictor_module.sample_accuracy
        predictor_module.sample_accuracy = timed("train accuracy", accuracy)
        try:
            yield self
        finally:
            for name, value in saved.items():
                setattr(margins_module, name, value)
            predictor_module.sample_accuracy = accuracy


def best_time(run, repeats):
    """The fastest of `repeats` timed calls (after one warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def original_from_dataset(dataset, n_examples, seed, input_rank):
    """demogen.measure.sampling._from_dataset as it was before the batched reader and the cache
    (count element by element, then a filtered pass over the enumerated dataset), for
    comparison."""
    if dataset.element_spec[0].shape.rank == input_rank + 1:
        dataset = dataset.unbatch()
    n_total = int(dataset.cardinality())
    if n_total < 0:
        n_total = int(dataset.reduce(np.int64(0), lambda count, _: count + 1))
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
