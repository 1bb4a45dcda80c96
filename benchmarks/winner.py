"""Cost of the competition winner's measure per model (run on demand).

For two models with random weights, on random inputs with balanced labels: a corpus-like VGG
(demogen_fit.architectures.vgg: 2 blocks of width 16 on 28x28x1) on its 1,000 training
examples, and the CIFAR-sized VGG of benchmarks/complexity.py on 2,048 examples. It prints
`winner_measure`'s first call, the best of --repeats later calls (every call traces its
tf.function anew, as every new model does), the three numbers, and the floor: one forward and
one backward pass over 2,048 examples in batches of 256 (best of 3).

    .venv/bin/python benchmarks/winner.py [--repeats 3]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from complexity import floor_seconds, vgg_like  # noqa: E402  (benchmarks/complexity.py)
from demogen.measure.winner import winner_measure  # noqa: E402
from demogen_fit.architectures import vgg  # noqa: E402


def balanced(n, input_shape, seed=0):
    """Random inputs and balanced labels: the cost of the mixups grows with the square of a
    class's count in a batch, so balanced classes (as in PGDL's tasks) are the case to time."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n,) + input_shape).astype(np.float32),
            rng.permutation(np.arange(n) % 10))


def timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = [("corpus-like VGG, 28x28x1, 1,000 examples", vgg((28, 28, 1), width=16, depth=2),
              (28, 28, 1), 1000),
             ("CIFAR-sized VGG, 32x32x3, 2,048 examples", vgg_like(0), (32, 32, 3), 2048)]
    for name, model, input_shape, n in cases:
        x, y = balanced(n, input_shape)
        first, result = timed(lambda: winner_measure(model, x, y))
        later = min(timed(lambda: winner_measure(model, x, y))[0] for _ in range(args.repeats))
        floor_x = balanced(2048, input_shape, seed=1)[0]
        floor = floor_seconds(model, floor_x)
        print(f"{name}: first call {first:.2f} s, later calls {later:.2f} s; floor (forward + "
              f"backward, 2,048 examples) {floor:.2f} s; later / floor {later / floor:.2f}x; "
              + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
