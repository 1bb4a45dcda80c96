"""Benchmark of the margin extractor on PGDL-sized VGG-like CNNs (run on demand).

For each input shape it prints, measured in the same run on the same 2,048 examples:
- examples per second of `extract_margins` end to end (sampling, tracing and the batched loop),
  and of its compiled batched loop alone;
- the ratio of that loop to the floor: one forward plus one backward pass through the same model
  on the same examples, in the same batches (target: at most 1.5x);
- the ratio of the same margins computed one example at a time by a tf.function-compiled loop to
  the batched loop.

    .venv/bin/python benchmarks/extractor.py [--n-examples 2048] [--repeats 3]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from demogen import extract_margins  # noqa: E402
from demogen.graph import ModelGraph  # noqa: E402
from demogen.layers import choose_layers  # noqa: E402
from demogen.margins import _margin_step  # noqa: E402


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


def best_time(run, repeats):
    """The fastest of `repeats` timed calls (after one warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(input_shape, n_examples, batch_size, repeats):
    model = vgg_like(input_shape)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n_examples,) + input_shape).astype(np.float32)
    y = rng.integers(0, 10, n_examples).astype(np.int32)
    batches = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n_examples, batch_size)]

    start = time.perf_counter()
    extract_margins(model, (x, y), n_examples=n_examples, batch_size=batch_size)
    end_to_end = time.perf_counter() - start

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
    one_by_one = best_time(lambda: [step(x[i:i + 1], y[i:i + 1]) for i in range(n_examples)], 1)

    name = "x".join(map(str, input_shape))
    print(f"VGG-like, 3 blocks, input {name}, {model.count_params():,} parameters, "
          f"{n_examples} examples, batches of {batch_size}")
    print(f"  extract_margins end to end:      {end_to_end:7.2f} s  "
          f"{n_examples / end_to_end:8.0f} examples/s")
    print(f"  batched margin loop (compiled):  {batched:7.2f} s  {n_examples / batched:8.0f} "
          f"examples/s")
    print(f"  floor (forward + backward):      {floor:7.2f} s  -> loop / floor = "
          f"{batched / floor:.2f}x")
    print(f"  one example at a time (compiled): {one_by_one:6.2f} s  -> per-example / batched = "
          f"{one_by_one / batched:.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-examples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}")
    for shape in [(28, 28, 1), (32, 32, 3)]:
        measure(shape, args.n_examples, args.batch_size, args.repeats)


if __name__ == "__main__":
    main()
