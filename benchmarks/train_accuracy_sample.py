"""What the size of the training-accuracy sample costs in transfer (demogen_fit.sample_size).

    .venv/bin/python benchmarks/train_accuracy_sample.py [--candidates NAME ...]
        [--sizes 128 256 ...] [--seeds 20] [--out results/train_accuracy_sample.json]

For each sample size, each candidate's leave-one-cluster-out predictions on the corpus with
acc.sample re-measured on that many training examples (drawn with replacement from the side
files' per-example correctness, several seeds): mean Kendall tau and CMI x 100 over tasks, their
standard error over seeds, and the RMS error of the sampled accuracy. Sizes at or beyond a task's
training set (600 to 2,000 examples) are extrapolations and marked. Default candidates: the
unfitted training accuracy and the selected one of results/evaluate.json.
"""

import argparse
import json
import pathlib
import time

from demogen_fit import sample_size, tables

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(sample_size.SIZES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    names = args.candidates or list(dict.fromkeys(
        ["train_accuracy", json.loads((ROOT / "results" / "evaluate.json").read_text())
         ["selected"]]))
    start = time.perf_counter()
    result = sample_size.curve(tables.read_sources([tables.CORPUS]), names, args.sizes,
                               args.seeds)
    print(f"training-set sizes: {result['n_train']}; {args.seeds} seeds, leave-one-"
          f"{result['view']}-out, {time.perf_counter() - start:.0f} s")
    for name in names:
        exact = result["exact"][name]
        print(f"\n{name}: exact training accuracy: tau {exact['kendall_tau']:.3f}, "
              f"CMI {exact['cmi']:.2f}")
        print(f"{'n':>6} {'acc RMS error':>14} {'tau':>7} {'+-':>6} {'CMI':>7} {'+-':>6}  "
              "extrapolated for")
        for row in result["candidates"][name]:
            print(f"{row['n_examples']:>6} {row['accuracy_error']:>14.4f} "
                  f"{row['kendall_tau']:>7.3f} {row['kendall_tau_se']:>6.3f} {row['cmi']:>7.2f} "
                  f"{row['cmi_se']:>6.2f}  {', '.join(row['extrapolation']) or '-'}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
