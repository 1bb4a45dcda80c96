"""What the size of the training-accuracy sample costs a predictor that reads acc.sample.

On the corpus the 2,048-example sample is the whole training set (600 to 2,000 examples), so
acc.sample is the exact training accuracy; on a PGDL task of 50,000 examples it is measured on a
sample and carries sampling noise. `curve` measures that noise and what it costs in transfer:
for each sample size n and each of `n_seeds` seeds, every model's acc.sample is replaced by its
accuracy on n of its own training examples drawn with replacement (from the side files'
per-example correctness bits; one draw of positions per task, shared by its models, as the
runtime samples one set of examples per dataset), and each candidate's held-out predictions
(fitted on the exact values of the other units, as `demogen evaluate` fits them) are scored
again. Drawing with replacement models a training set much larger than the sample; where n is
at least a task's training-set size the figure is an extrapolation (marked per size).
Its side-file reading, held-out fits and scoring serve demogen_fit.budget's curve too.
"""

import pathlib

import numpy as np

from demogen_fit import sidefiles, transfer
from demogen_fit import candidates as registry

SIZES = (128, 256, 512, 1024, 2048, 4096, 8192)


def check_sizes(sizes):
    """Refuse sample sizes that are not a non-empty, increasing list of positive integers."""
    if not sizes or any(n < 1 for n in sizes) or list(sizes) != sorted(set(sizes)):
        raise ValueError(f"sample sizes must be increasing positive integers, got {list(sizes)}; "
                         "give at least one, smallest first, none twice (e.g. 256 512 1024)")


def side_files(corpus):
    """{task: [(Measurement, extras) of sidefiles.read per model]} in the corpus's row order."""
    out = {}
    for task, rows in corpus.rows.items():
        out[task] = []
        for _, row in corpus.table.loc[rows].iterrows():
            path = sidefiles.path(pathlib.Path(row["source"]).parent, row["preset"], task,
                                  row["model_id"])
            if not path.is_file():
                raise FileNotFoundError(f"no side file {path}: the sample-size curves need the "
                                        "per-example measurements of every model")
            out[task].append(sidefiles.read(path))
    return out


def train_correct(files):
    """{task: (models, n_train) bool array} of each model's per-example training correctness,
    from the side files (`side_files`)."""
    return {task: np.stack([extras["train_correct"] for _, extras in models])
            for task, models in files.items()}


def held_out(corpus, names, units):
    """{name: {unit: frozen predictor dict}}: each candidate's tuned fit on the tasks outside each
    unit, fitted on the table's values (as `demogen evaluate` fits them)."""
    out = {}
    for name in names:
        evaluator = transfer.Evaluator(corpus, registry.get([name])[0])
        out[name] = {unit: evaluator.frozen(tasks)[evaluator.tuned(tasks)]
                     for unit, tasks in units.items()}
    return out


def mean_scores(corpus, units, name, fits, table):
    """[mean Kendall tau, mean CMI x 100] over the corpus's tasks of a candidate's held-out
    predictions (`fits`: its entry of `held_out`) for the rows of `table`, the corpus's table
    with some columns re-measured; an undefined score counts as 0."""
    candidate = registry.get([name])[0]
    predictions = np.zeros(len(corpus.gaps))
    for unit, tasks in units.items():
        rows = np.concatenate([corpus.rows[t] for t in tasks])
        predictions[rows] = registry.predict(candidate, fits[unit], table.iloc[rows])
    per_task = [corpus.score(predictions, t, ("kendall_tau", "cmi")) for t in corpus.tasks]
    return [float(np.mean([s[m] or 0.0 for s in per_task])) for m in ("kendall_tau", "cmi")]


def over_seeds(draws):
    """{"kendall_tau", "kendall_tau_se", "cmi", "cmi_se"}: the mean over seeds of [tau, CMI]
    pairs, and the standard error over seeds."""
    values = np.array(draws)
    se = values.std(axis=0, ddof=1) / np.sqrt(len(values))
    return {"kendall_tau": float(values[:, 0].mean()), "kendall_tau_se": float(se[0]),
            "cmi": float(values[:, 1].mean()), "cmi_se": float(se[1])}


def curve(table, names, sizes=SIZES, n_seeds=20, view="cluster", seed=0):
    """{"sizes": [...], "n_train": {task: size}, "candidates": {name: [per size {"n_examples",
    "extrapolation", "accuracy_error", "kendall_tau", "kendall_tau_se", "cmi", "cmi_se"}]},
    "exact": {name: {"kendall_tau", "cmi"}}}: the means over tasks of the held-out scores with
    acc.sample measured on n examples (mean over seeds, and the standard error over seeds),
    beside the scores with the exact training accuracy. accuracy_error: the root mean squared
    difference between the sampled and the exact training accuracy over models and seeds."""
    check_sizes(sizes)
    corpus = transfer.Corpus(table)
    units = corpus.units(view)
    correct = train_correct(side_files(corpus))
    n_train = {task: int(bits.shape[1]) for task, bits in correct.items()}
    exact_accuracy = np.zeros(len(corpus.gaps))
    for task, rows in corpus.rows.items():
        exact_accuracy[rows] = correct[task].mean(axis=1)
    fits = held_out(corpus, names, units)

    def scores(name, accuracy):
        return mean_scores(corpus, units, name, fits[name],
                           corpus.table.assign(**{"acc.sample": accuracy}))

    out = {"sizes": list(sizes), "n_train": n_train, "view": view, "n_seeds": n_seeds,
           "exact": {name: dict(zip(("kendall_tau", "cmi"), scores(name, exact_accuracy)))
                     for name in names},
           "candidates": {name: [] for name in names}}
    for n in sizes:
        draws, errors = {name: [] for name in names}, []
        for s in range(n_seeds):
            accuracy = np.zeros(len(corpus.gaps))
            for task, rows in corpus.rows.items():
                rng = np.random.default_rng([seed, s, n, *map(ord, task)])
                positions = rng.integers(0, n_train[task], n)
                accuracy[rows] = correct[task][:, positions].mean(axis=1)
            errors.append(np.mean((accuracy - exact_accuracy) ** 2))
            for name in names:
                draws[name].append(scores(name, accuracy))
        for name in names:
            out["candidates"][name].append({
                "n_examples": int(n),
                "extrapolation": sorted(t for t, size in n_train.items() if n >= size),
                "accuracy_error": float(np.sqrt(np.mean(errors))), **over_seeds(draws[name])})
    return out
