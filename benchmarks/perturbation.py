"""The cost of the perturbation responses (demogen.measure.perturbation.measure) per model,
against one forward and one backward pass over the same examples (run on demand).

Two models with seeded random weights, labelled by their own predictions with 20% flipped:
- corpus-like: the corpus's VGG (demogen_fit.architectures.vgg, width 16, depth 2) on 28x28x1,
  1,000 examples (a corpus task's training set);
- CIFAR-sized: the VGG-like CNN of benchmarks/complexity.py on 32x32x3, 2,048 examples.
Each `measure` call traces its compiled functions anew, as it does for every model; the figure is
the faster of two calls. With --columns, the same for only the conditions those feature columns
need (`conditions_for`, what a frozen predictor reading them measures), beside all of them.

    .venv/bin/python benchmarks/perturbation.py [--batch-size 256] [--columns COLUMN ...]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from complexity import floor_seconds, vgg_like  # noqa: E402
from demogen.measure import features  # noqa: E402, F401 (registers the feature columns)
from demogen.measure.perturbation import CONDITIONS, conditions_for, measure  # noqa: E402
from demogen_fit.architectures import vgg  # noqa: E402


def labelled(model, n, rng):
    x = rng.uniform(size=(n,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
    y = np.asarray(model.predict(x, batch_size=256, verbose=0)).argmax(axis=1)
    flip = rng.random(n) < 0.2
    y[flip] = (y[flip] + 1) % 10
    return x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--columns", nargs="+", metavar="COLUMN",
                        help="also time only the conditions these feature columns need")
    args = parser.parse_args()
    subsets = {"all conditions": {}}
    if args.columns:
        subsets[" ".join(args.columns)] = conditions_for(args.columns)
    rng = np.random.default_rng(0)
    models = {"corpus-like VGG, 28x28x1, 1,000 examples": (vgg((28, 28, 1), 16, 2), 1000),
              "CIFAR-sized VGG, 32x32x3, 2,048 examples": (vgg_like(0), 2048)}
    for name, (model, n) in models.items():
        x, y = labelled(model, n, rng)
        floor = floor_seconds(model, x, args.batch_size)
        for subset, options in subsets.items():
            times = []
            for _ in range(2):
                start = time.perf_counter()
                responses = measure(model, x, y, seed=0, batch_size=args.batch_size, **options)
                times.append(time.perf_counter() - start)
            n = len(responses.conditions)
            print(f"{name} ({model.count_params():,} parameters), {subset} ({n} of "
                  f"{len(CONDITIONS)}): floor {floor:.2f} s; measure {min(times):.2f} s = "
                  f"{min(times) / floor:.1f}x floor, {min(times) / floor / n:.2f} floor per "
                  "condition")


if __name__ == "__main__":
    main()
