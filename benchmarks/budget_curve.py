"""The budget curve on the corpus, from the side files (demogen_fit.budget.corpus_curve).

    .venv/bin/python benchmarks/budget_curve.py [--candidates NAME ...]
        [--n-examples 256 512 ...] [--seeds 20] [--out results/budget_curve.json]

For each number of sampled training examples, each candidate's leave-one-cluster-out
predictions on the corpus with the sample's features (margins, and the kept shares under
perturbation) re-measured on that many examples of every model's margin sample (drawn with
replacement, several seeds; a two-part candidate's training accuracy on its own sample,
scaled with it): mean Kendall tau and CMI x 100 over tasks, their standard error over seeds,
the full score on the whole sample, and the smallest count within one standard error of it.
No model is run. Counts at or beyond a task's training set (600 to 2,000 examples) are its
whole set and marked. --out also writes the plot beside the JSON (.png).
Default candidates: the selected one of results/evaluate.json and the paper's configuration.
"""

import argparse
import json
import pathlib
import time

from demogen.defaults import BUDGET_COUNTS
from demogen_fit import budget, tables

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+")
    parser.add_argument("--n-examples", nargs="+", type=int, default=list(BUDGET_COUNTS))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    names = args.candidates or list(dict.fromkeys(
        [json.loads((ROOT / "results" / "evaluate.json").read_text())["selected"], "paper"]))
    start = time.perf_counter()
    result = budget.corpus_curve(tables.read_sources([tables.CORPUS]), names, args.n_examples,
                                 args.seeds)
    print(f"margin-sample sizes: {result['n_train']}; {args.seeds} seeds, leave-one-"
          f"{result['view']}-out, {time.perf_counter() - start:.0f} s")
    for name in names:
        full, smallest = result["full"][name], result["smallest_within_one_se"][name]
        print(f"\n{name}: whole sample: tau {full['kendall_tau']:.3f}, CMI {full['cmi']:.2f}; "
              f"within one SE from n = {smallest['kendall_tau']} (tau), {smallest['cmi']} (CMI)")
        print(f"{'n':>6} {'acc. n':>7} {'tau':>7} {'+-':>6} {'CMI':>7} {'+-':>6}  whole set for")
        for row in result["curves"][name]:
            print(f"{row['n_examples']:>6} {row['train_accuracy_examples'] or '-':>7} "
                  f"{row['kendall_tau']:>7.3f} {row['kendall_tau_se']:>6.3f} {row['cmi']:>7.2f} "
                  f"{row['cmi_se']:>6.2f}  {len(row['whole_set'])} of {len(result['n_train'])}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        budget.plot(result["curves"], result["default"], result["n_train"],
                    args.out.with_suffix(".png"), "The budget curve on the corpus (held out by "
                    f"cluster; +- SE over {args.seeds} seeds)", result["full"])
        print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
