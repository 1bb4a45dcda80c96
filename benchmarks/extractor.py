"""Benchmark of the margin extractor on PGDL-sized VGG-like CNNs (run on demand).

For each input shape it prints, measured in the same run on the same 2,048 examples:
- the floor: one forward plus one backward pass through the same model on the same examples, in
  the same batches;
- `extract_margins` end to end, its first call and the best of --repeats later calls, each with
  the tracing of its compiled step (every call traces anew) apart and a breakdown (sampling,
  trace, loop, check: `_check_reproduces`, rest), and the best call without its tracing as a
  ratio to the floor (target: at most 1.3x);
- the compiled batched loop alone, as a ratio to the floor (target: at most 1.5x);
- the ratio of the same margins computed one example at a time by a tf.function-compiled loop to
  the batched loop.

    .venv/bin/python benchmarks/extractor.py [--n-examples 2048] [--repeats 3]
        [--skip-per-example]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from demogen import extract_margins  # noqa: E402
from demogen.measure.graph import ModelGraph  # noqa: E402
from demogen.measure.layers import choose_layers  # noqa: E402
from demogen.measure.margins import _margin_step  # noqa: E402
from timing import Breakdown, best_time  # noqa: E402  (benchmarks/timing.py)


def vgg_like(input_shape, filters=32, blocks=3, n_classes=10):
    """Like PGDL's VGG tasks: blocks of two 3x3 convs and a max-pool, then two dense layers."""
    layers = tf.keras.layers
    model = [tf.keras.Input(input_shape)]
    for block in range(blocks):
        model += [layers.Conv2D(filters * 2 ** block, 3, padding="same", activation="relu"),
                  layers.Conv2D(filters * 2 ** block, 3, padding="same", activation="relu"),
                  layers.MaxPooling2D()]
    model += [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(n_classes)]
    return tf.keras.Sequential(model)


def end_to_end(model, x, y, n_examples, batch_size):
    """One call of extract_margins, timed, with its breakdown (tracing apart)."""
    breakdown = Breakdown()
    with breakdown.installed():
        start = time.perf_counter()
        extract_margins(model, (x, y), n_examples=n_examples, batch_size=batch_size)
        total = time.perf_counter() - start
    breakdown.finish(total)
    breakdown.total = total
    return breakdown


def measure(input_shape, n_examples, batch_size, repeats, per_example):
    model = vgg_like(input_shape)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n_examples,) + input_shape).astype(np.float32)
    y = rng.integers(0, 10, n_examples).astype(np.int32)
    batches = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n_examples, batch_size)]

    first = end_to_end(model, x, y, n_examples, batch_size)
    # Every call traces a new step; the best call without its tracing is what a model costs once
    # the process is warm.
    calls = [end_to_end(model, x, y, n_examples, batch_size) for _ in range(repeats)]
    best = min(calls, key=lambda call: call.total - call.parts["trace"])
    untraced = best.total - best.parts["trace"]

    graph = ModelGraph(model)
    taps = sorted(set(choose_layers(graph)[0]))
    step = _margin_step(graph, taps)
    batched = best_time(lambda: [step(a, b) for a, b in batches], repeats)

    @tf.function(input_signature=[tf.TensorSpec((None,) + input_shape, tf.float32)])
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(model(inputs, training=False))
        return tape.gradient(total, inputs)

    floor = best_time(lambda: [forward_backward(a) for a, _ in batches], repeats)

    name = "x".join(map(str, input_shape))
    print(f"VGG-like, 3 blocks, input {name}, {model.count_params():,} parameters, "
          f"{n_examples} examples, batches of {batch_size}")
    print(f"  floor (forward + backward):        {floor:7.2f} s")
    print(f"  extract_margins, first call:       {first.total:7.2f} s  of which tracing "
          f"{first.parts['trace']:.2f} s  ({first.line()})")
    print(f"  extract_margins, best of {repeats}:       {best.total:7.2f} s  of which tracing "
          f"{best.parts['trace']:.2f} s  ({best.line()})")
    print(f"  end to end without tracing:        {untraced:7.2f} s  {n_examples / untraced:8.0f} "
          f"examples/s  -> / floor = {untraced / floor:.2f}x (target <= 1.3x)")
    print(f"  batched margin loop (compiled):    {batched:7.2f} s  {n_examples / batched:8.0f} "
          f"examples/s  -> / floor = {batched / floor:.2f}x")
    if per_example:
        one_by_one = best_time(lambda: [step(x[i:i + 1], y[i:i + 1]) for i in range(n_examples)],
                               1)
        print(f"  one example at a time (compiled):  {one_by_one:7.2f} s  -> per-example / "
              f"batched = {one_by_one / batched:.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-examples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-per-example", action="store_true",
                        help="leave out the (slow) one-example-at-a-time comparison")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}, {os.cpu_count()} CPU "
          f"cores, load average {os.getloadavg()[0]:.1f}")
    for shape in [(28, 28, 1), (32, 32, 3)]:
        measure(shape, args.n_examples, args.batch_size, args.repeats,
                not args.skip_per_example)


if __name__ == "__main__":
    main()
