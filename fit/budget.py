"""The budget curve: what a frozen predictor scores, and costs, with fewer or more sampled training
examples.

A budget point is the frozen predictor with its sample sizes replaced (`at_count`): n examples
for the margin sample and, for a two-part predictor, a training-accuracy sample scaled with it
in the predictor's own ratio (the two-part candidates measure their training accuracy on twice
the margin sample: 4,096 beside 2,048). One curve thus passes through the predictor's default, every
point is a predictor one could ship, and the training-accuracy sample alone has its own curve
(demogen_fit.sample_size).

- `task_curve` (`demogen budget`): on PGDL task folders, each point measured by the runtime
  (demogen.frozen.predictor.predict) on every model and scored against the tasks' reference
  gaps (CMI x 100, Kendall tau-b, Psi; an undefined score counts as 0 in the means), with the
  time per model. The runtime samples without replacement, so a count at or above a task's
  training-set size is its whole set (marked).
- `corpus_curve` (benchmarks/budget_curve.py): on the corpus, without retraining or running a
  model: each task's margin sample (the side files' per-example output margins and gradient
  norms; on the corpus the whole training set) is subsampled, n examples drawn with
  replacement (one draw of positions per task, shared by its models, as the runtime samples
  one set per dataset; a model of a training set much larger than the sample, as
  demogen_fit.sample_size draws the training accuracy), the features of every `per_example`
  group recomputed from the subsample (from the margins and gradient norms; the kept shares
  from the perturbation responses' correctness bits, on the same examples), a two-part
  candidate's training accuracy from its own draw of the per-example correctness bits, and the
  candidates' held-out predictions (each task predicted by the fit on the other clusters,
  fitted on the table's values) are scored again, over several seeds. At or above a task's
  sample size the whole sample is used (marked), which gives the table's own features. Each
  layer's total variation (the normalization) stays the whole sample's: the side files keep
  no activations. At the input layer it is a property of the examples alone, the same for
  every model of a task, so for input-margin features it shifts a task's log predictions by
  one constant and changes no rank.
"""

import dataclasses
import time

import numpy as np

from demogen.defaults import BUDGET_COUNTS, DEFAULTS
from demogen.measure import features
from demogen_fit import candidates as registry
from demogen_fit import sample_size, transfer

def check_models(n_models):
    """Refuse tasks ({task: number of models}) with fewer than 2 models."""
    few = {task: n for task, n in n_models.items() if n < 2}
    if few:
        raise ValueError("the budget curve scores how a predictor ranks a task's models, which "
                         "needs at least 2 models per task; "
                         + ", ".join(f"{task} has {n}" for task, n in few.items())
                         + ": leave those tasks out or add models")


def train_accuracy_examples(n, margin_default, accuracy_default):
    """The training-accuracy sample beside a margin sample of n: n in the ratio of the
    predictor's own two samples, at least 1."""
    return max(1, round(n * accuracy_default / margin_default))


def at_count(frozen, n):
    """The frozen predictor (coefficients.Predictor) measured on n sampled training examples: its
    margin sample, and a two-part predictor's training-accuracy sample scaled with it."""
    accuracy = None
    if frozen.two_part:
        accuracy = {**frozen.train_accuracy, "n_examples": train_accuracy_examples(
            n, frozen.extractor["n_examples"], frozen.train_accuracy["n_examples"])}
    return dataclasses.replace(frozen, extractor={**frozen.extractor, "n_examples": n},
                               train_accuracy=accuracy)


def task_curve(tasks_dir, frozen, counts=BUDGET_COUNTS, reference=None, progress=True):
    """{"name", "default", "n_train": {task: size}, "n_models", "points": [per count
    {"n_examples", "train_accuracy_examples" (None unless two-part), "default", "whole_set":
    [tasks whose training set the count covers], "seconds_per_model", "cmi", "kendall_tau",
    "granulated_psi" (means over tasks), "tasks": {task: score_task}, "predictions": {task:
    {model id: prediction}}}]}: the budget curve of a frozen predictor on PGDL task folders
    (`--tasks DIR` as `demogen score` reads it). seconds_per_model: the mean wall time of
    predict() (sampling, margins, training accuracy) over the models of every task, loading
    excluded."""
    from tqdm import tqdm

    from demogen.competition import evaluation, pgdl, scoring
    from demogen.frozen.predictor import predict
    from demogen.measure import sampling

    sample_size.check_sizes(counts)
    tasks = {task: (folder, configs, hparams) for task, folder, configs, hparams
             in evaluation.reference_tasks(tasks_dir, reference)}
    check_models({task: len(hparams) for task, (_, _, hparams) in tasks.items()})
    data = {task: pgdl.load_dataset(folder, "train") for task, (folder, _, _) in tasks.items()}
    n_train = {task: sampling.dataset_length(ds) for task, ds in data.items()}
    # One untimed call first, so that TensorFlow's one-time start-up does not count against the
    # first point; its sample is dropped, so that every point pays for its own first draw.
    first, (folder, _, hparams) = next(iter(tasks.items()))
    predict(at_count(frozen, counts[0]), pgdl.load_model(folder, next(iter(hparams))), data[first])
    sampling.clear_cache()
    n_models = sum(len(hparams) for _, _, hparams in tasks.values())
    bar = tqdm(total=len(counts) * n_models, desc="budget", unit="model", disable=not progress)
    points = []
    for n in counts:
        at_n = at_count(frozen, n)
        scores, predictions, seconds = {}, {}, []
        for task, (folder, configs, hparams) in tasks.items():
            predictions[task] = {}
            for model_id in hparams:
                model = pgdl.load_model(folder, model_id)
                start = time.perf_counter()
                predictions[task][model_id] = predict(at_n, model, data[task])
                seconds.append(time.perf_counter() - start)
                bar.update()
            scores[task] = evaluation.score_task(list(predictions[task].values()), configs,
                                                 hparams)
        mean = scoring.mean_scores(scores)
        points.append({
            "n_examples": n,
            "train_accuracy_examples": at_n.train_accuracy["n_examples"] if at_n.two_part
            else None,
            "default": n == frozen.extractor["n_examples"],
            "whole_set": sorted(t for t, size in n_train.items() if n >= size),
            "seconds_per_model": float(np.mean(seconds)),
            **{m: mean[m] for m in scoring.MEASURES}, "tasks": scores,
            "predictions": predictions})
    bar.close()
    return {"name": frozen.name, "default": frozen.extractor["n_examples"], "n_train": n_train,
            "n_models": n_models, "points": points}


def draw(rng, n, size):
    """Positions of n examples of a sample of `size`, drawn with replacement; every position, in
    order, where n is at least `size` (the whole sample)."""
    return np.arange(size) if n >= size else rng.integers(0, size, n)


def recompute(measurement, positions, groups):
    """{column: value} of the `groups` (each `per_example`) computed from the examples at
    `positions` of the measurement's sample."""
    producers = {features.GROUPS[g].needs for g in groups}
    missing = [p for p in producers if measurement.get(p) is None]
    if missing:
        raise ValueError(f"a side file has no {', '.join(missing)} values for the groups "
                         f"{', '.join(groups)}: add them with `demogen zoo` (backfill or "
                         "--remeasure) first")
    return features.compute(features.Measurement({
        p: features.PRODUCERS[p].subsample(measurement[p], positions) for p in producers}),
        groups)[0]


def resampled_groups(candidates):
    """The groups of the candidates' features measured on the sample, in registry order; each
    must be `per_example` (a feature whose per-example values the side files do not keep cannot
    be re-measured from them; data-free weight metrics need no re-measuring)."""
    groups = [g for g in features.groups_of([f for c in candidates for f in c.features])
              if features.GROUPS[g].needs != features.SPECTRA]
    other = [g for g in groups if not features.GROUPS[g].per_example]
    if other:
        raise ValueError(f"the budget curve re-measures features from the side files' "
                         f"per-example values; those of the groups {', '.join(other)} are not "
                         "kept per example: leave out the candidates that read them")
    return groups


def corpus_curve(table, names, counts=BUDGET_COUNTS, n_seeds=20, view="cluster", seed=0):
    """{"counts", "n_train": {task: margin-sample size}, "view", "n_seeds", "default",
    "full": {name: {"kendall_tau", "cmi"}}, "curves": {name: [per count {"n_examples",
    "train_accuracy_examples", "whole_set", "kendall_tau", "kendall_tau_se", "cmi",
    "cmi_se"}]}, "smallest_within_one_se": {name: {measure: count}}}: the candidates' held-out
    scores (means over tasks; mean over seeds and the standard error over seeds) with the
    sample's features re-measured on n examples of every model's side file, beside the full
    scores on the whole sample (the table's features)."""
    sample_size.check_sizes(counts)
    if n_seeds < 2:
        raise ValueError(f"a standard error over seeds needs at least 2 seeds, got {n_seeds}")
    corpus = transfer.Corpus(table)
    check_models({task: len(rows) for task, rows in corpus.rows.items()})
    candidates = registry.get(names)
    groups = resampled_groups(candidates)
    units = corpus.units(view)
    files = sample_size.side_files(corpus)
    correct = sample_size.train_correct(files)
    measured = {task: [m if m.margins is not None else None for m, _ in models]
                for task, models in files.items()}
    sizes = {task: next(len(m.margins.output_margin) for m in ms if m is not None)
             for task, ms in measured.items()}
    fits = sample_size.held_out(corpus, names, units)
    full = {name: dict(zip(("kendall_tau", "cmi"), sample_size.mean_scores(
        corpus, units, name, fits[name], corpus.table))) for name in names}
    accuracy_ratio = {}
    for name in names:
        fit = next(iter(fits[name].values()))
        if fit.get("train_accuracy"):
            accuracy_ratio[name] = (fit["extractor"]["n_examples"],
                                    fit["train_accuracy"]["n_examples"])
    out = {"counts": list(counts), "n_train": sizes, "view": view, "n_seeds": n_seeds,
           "default": DEFAULTS["n_examples"], "full": full, "curves": {name: [] for name in names}}
    for n in counts:
        n_accuracy = {name: train_accuracy_examples(n, *ratio)
                      for name, ratio in accuracy_ratio.items()}
        draws = {name: [] for name in names}
        for s in range(n_seeds):
            remeasured, accuracy = resample(corpus, (measured, sizes, correct), groups, n,
                                            n_accuracy, (seed, s))
            for name in names:
                scored = remeasured.assign(**{"acc.sample": accuracy[name]}) \
                    if name in accuracy else remeasured
                draws[name].append(sample_size.mean_scores(corpus, units, name, fits[name],
                                                           scored))
        for name in names:
            out["curves"][name].append({
                "n_examples": int(n), "train_accuracy_examples": n_accuracy.get(name),
                "whole_set": sorted(t for t, size in sizes.items() if n >= size),
                **sample_size.over_seeds(draws[name])})
    out["smallest_within_one_se"] = {name: smallest_within_one_se(out["curves"][name],
                                                                   full[name])
                                     for name in names}
    return out


def resample(corpus, side, groups, n, n_accuracy, seeds):
    """(the corpus's table with the columns of the `groups` recomputed from n examples of
    each model's margin sample, {name: each model's training accuracy on n_accuracy[name] of
    its per-example correctness bits}) for one draw: per task one draw of positions, seeded by
    `seeds`, n and the task's name, shared by its models and its producers (every producer
    samples the margin sample). `side`: ({task: [Measurement or None per model]}, {task:
    margin-sample size}, {task: (models, n_train) correctness bits})."""
    measured, sizes, correct = side
    columns = [c for g in groups for c in features.GROUPS[g].names]
    values = corpus.table[columns].to_numpy(dtype=np.float64, copy=True)
    accuracy = {name: np.zeros(len(corpus.gaps)) for name in n_accuracy}
    for task, rows in corpus.rows.items():
        rng = np.random.default_rng([*seeds, n, *map(ord, task)])
        positions = draw(rng, n, sizes[task])
        for row, model in zip(rows, measured[task]):
            if model is not None:
                row_values = recompute(model, positions, groups)
                values[row] = [row_values[c] for c in columns]
        for name, n_acc in n_accuracy.items():
            picked = draw(rng, n_acc, correct[task].shape[1])
            accuracy[name][rows] = correct[task][:, picked].mean(axis=1)
    return corpus.table.assign(**dict(zip(columns, values.T))), accuracy


def smallest_within_one_se(points, full):
    """{measure: the smallest count whose mean is at least the full score less that count's
    standard error over seeds (None where no count is)} for Kendall tau and CMI."""
    return {m: next((p["n_examples"] for p in points
                     if p[m] + p[f"{m}_se"] >= full[m] or np.isclose(p[m], full[m])), None)
            for m in ("kendall_tau", "cmi")}


def plot(curves, default, n_train, path, title, full=None):
    """Write a PNG of Kendall tau-b and CMI x 100 against the number of sampled examples (log
    scale): a line per curve ({label: points}) with its standard errors where the points have
    them and its full score (`full`: {label: {"kendall_tau", "cmi"}}) dashed, the default count
    marked, and the span of the tasks' training-set sizes shaded (at its right end every count
    is every task's whole set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({p["n_examples"] for points in curves.values() for p in points})
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, measure, label in zip(axes, ("kendall_tau", "cmi"), ("Kendall tau-b", "CMI x 100")):
        low, high = min(n_train.values()), max(n_train.values())
        ax.axvspan(low, max(high, low * 1.02), color="0.85",
                   label=f"training-set sizes ({low:,} to {high:,})" if high > low
                   else f"training-set size ({low:,})")
        ax.axvline(default, color="k", linestyle=":", label=f"default ({default:,})")
        for name, points in curves.items():
            se = [p.get(f"{measure}_se") or 0.0 for p in points]
            line = ax.errorbar([p["n_examples"] for p in points],
                               [p[measure] or 0.0 for p in points], yerr=se, marker="o",
                               capsize=3, label=name)
            if full and name in full:
                ax.axhline(full[name][measure], color=line[0].get_color(), linestyle="--",
                           linewidth=1, label=f"{name}, whole set")
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [f"{n:,}" for n in counts])
        ax.minorticks_off()
        ax.set_xlabel("sampled training examples")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize="small")
    figure.suptitle(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)
