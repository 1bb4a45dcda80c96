"""Transfer: fit each candidate on some tasks and score it, with the competition's measures, on a
task it has never seen.

A view groups the tasks into units left out together: "task" (each task alone), "cluster" (the
tasks sharing an architecture family and a data source), "family", "source". For every unit u,
a candidate is fitted on the tasks outside u and its predictions for u's tasks (from the frozen
predictor, fallbacks included, for every model of the grid) are scored: CMI x 100, Kendall's tau-b
and Psi per task. An undefined score counts as 0 and the task as failed. Per task, beside the
scores: the 95th percentile of CMI under 200 within-task shuffles (the permutation null) and,
where side files hold the test-correctness bits, the noise ceiling (the CMI of the gaps against
gaps re-measured on bootstrap resamples of the test set).

Everything chosen is chosen inside the training tasks of each split: a candidate's tuning
parameter maximizes the mean within-task Kendall tau over leave-one-task-out inside them, and
the nested score picks the candidate for each outer unit by the same leave-one-unit-out on the
remaining units only (mean Kendall tau, which sees the direction of a ranking where CMI barely
does; the simplest candidate within one standard error of the best, in registry order), then
scores that candidate's fit on the outer unit. The held-out unit's gaps never reach a fit or a
choice made for it.
"""

import math
import pathlib

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from demogen.competition import scoring
from demogen_fit import candidates as registry
from demogen_fit import presets, tables
from demogen_fit.transfer_results import FinalResults, TransferResults

VIEWS = ("task", "cluster", "family", "source")
FITTED = 0.99  # the train accuracy of a model that fits its data (the fitted-only view)
MEASURES = scoring.MEASURES
SELECTION_VIEW = "cluster"
REFERENCES = ("paper", "winner")  # the candidates every other is compared with, task by task


def task_info(table):
    """{task: {"family", "source", "cluster", "lockbox", "final", "n_grid"}} from the presets
    that made the rows; a task of no known preset is its own family and source."""
    info = {}
    for (preset, task), _ in table.groupby(["preset", "task"], sort=True):
        spec = next((t for t in presets.PRESETS[preset].tasks if t.name == task), None) \
            if preset in presets.PRESETS else None
        family, source = (spec.family, spec.source) if spec else (task, task)
        info[task] = {"family": family, "source": source, "cluster": f"{family}/{source}",
                      "lockbox": bool(spec and spec.lockbox), "final": bool(spec and spec.final),
                      "n_grid": spec.n_models if spec else None}
    return info


class Corpus:
    """A feature table as tasks: their rows, gaps, hyperparameters and the units of each view,
    and which models fit their training data (train accuracy >= FITTED)."""

    def __init__(self, table):
        self.table = table.reset_index(drop=True)
        self.info = task_info(self.table)
        self.tasks = sorted(self.info)
        self.rows = {t: np.flatnonzero(self.table["task"].to_numpy() == t) for t in self.tasks}
        self.gaps = self.table["gap"].to_numpy(dtype=np.float64)
        self.fitted = self.table["train_acc"].to_numpy(dtype=np.float64) >= FITTED
        hp = [c for c in self.table.columns if c.startswith("hp.")]
        self.hparams = {}
        for task, rows in self.rows.items():
            own = self.table.loc[rows, hp].dropna(axis=1, how="all")
            self.hparams[task] = own.rename(columns=lambda c: c[3:]).to_dict("records")

    def units(self, view):
        """{unit: tuple of its tasks} for a view; fewer than 3 units is an error."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; the views are {', '.join(VIEWS)}")
        units = {}
        for task in self.tasks:
            key = task if view == "task" else self.info[task][view]
            units.setdefault(key, []).append(task)
        if len(units) < 3:
            raise ValueError(f"leave-one-{view}-out needs at least 3 {view} units, the tables "
                             f"hold {len(units)} ({', '.join(units)}); add tasks")
        return {unit: tuple(tasks) for unit, tasks in units.items()}

    def score(self, predictions, task, measures=MEASURES):
        """scoring.score_task of one task's predictions (taken from `predictions` over all
        rows): an undefined score is None, with its reason under "undefined"."""
        rows = self.rows[task]
        return scoring.score_task(predictions[rows], self.gaps[rows], self.hparams[task],
                                  measures)

    def fitted_only(self, predictions, task):
        """{"kendall_tau", "n_models"} among the task's models that fit their training data,
        where the training accuracy cannot rank them: tau is None (undefined) below 2 models or
        where the predictions or the gaps are constant."""
        rows = self.rows[task][self.fitted[self.rows[task]]]
        tau = None
        if len(rows) >= 2:
            tau = scoring.score_task(predictions[rows], self.gaps[rows], None,
                                     ("kendall_tau",))["kendall_tau"]
        return {"kendall_tau": tau, "n_models": int(len(rows))}

    def cmi(self, predictions, task):
        """The task's CMI x 100 alone (0 where undefined): what the nulls and ceilings read."""
        return self.score(predictions, task, ("cmi",))["cmi"] or 0.0

    def within_tau(self, predictions, task):
        """The task's Kendall tau alone (0 where undefined): what tuning and selection read."""
        return self.score(predictions, task, ("kendall_tau",))["kendall_tau"] or 0.0


class Evaluator:
    """One candidate over one corpus: fits keyed by the set of tasks left out, so a fit is made
    once whichever split or selection needs it."""

    def __init__(self, corpus, candidate, seed=0):
        self.corpus, self.candidate, self.seed = corpus, candidate, seed
        self._frozen = {}
        self._fits = {}
        self._tuned = {}

    def frozen(self, excluded):
        """{parameter: frozen predictor dict} fitted on the tasks outside `excluded`."""
        excluded = frozenset(excluded)
        if excluded not in self._frozen:
            table = self.corpus.table
            self._frozen[excluded] = registry.fit(self.candidate,
                                                  table[~table["task"].isin(excluded)])
        return self._frozen[excluded]

    def predictions(self, excluded):
        """{parameter: predictions for every row} of the fits on the tasks outside `excluded`."""
        excluded = frozenset(excluded)
        if excluded not in self._fits:
            table = self.corpus.table
            if not self.candidate.shippable:
                floor = registry.predict(self.candidate, None, table, self.seed)
                self._fits[excluded] = {p: floor for p in self.candidate.grid}
            else:
                self._fits[excluded] = {p: registry.predict(self.candidate, f, table)
                                        for p, f in self.frozen(excluded).items()}
        return self._fits[excluded]

    def tuned(self, excluded):
        """The grid value with the best mean within-task tau over leave-one-task-out inside the
        tasks outside `excluded` (the first, i.e. simplest, on ties, and when one training task
        leaves nothing to tune on)."""
        excluded = frozenset(excluded)
        grid = self.candidate.grid
        inner = [t for t in self.corpus.tasks if t not in excluded]
        if len(grid) == 1 or len(inner) < 2:
            return grid[0]
        if excluded not in self._tuned:
            means = [np.mean([self.corpus.within_tau(self.predictions(excluded | {t})[p], t)
                              for t in inner]) for p in grid]
            self._tuned[excluded] = grid[int(np.argmax(means))]
        return self._tuned[excluded]

    def held_out(self, excluded):
        """(predictions for every row, the parameter) of the tuned fit outside `excluded`."""
        parameter = self.tuned(excluded)
        return self.predictions(excluded)[parameter], parameter

    def leave_one_out(self, units):
        """({task: scores}, predictions for every row), each unit's tasks predicted by the fit
        on the other units."""
        results, held_out = {}, np.zeros(len(self.corpus.gaps))
        for tasks in units.values():
            predictions, parameter = self.held_out(tasks)
            for task in tasks:
                results[task] = {**self.corpus.score(predictions, task),
                                 "fitted_only": self.corpus.fitted_only(predictions, task),
                                 "parameter": parameter}
                held_out[self.corpus.rows[task]] = predictions[self.corpus.rows[task]]
        return results, held_out

    def inner_tau(self, units, outer):
        """{unit v: mean Kendall tau over v's tasks from the fit outside outer and v}, v != outer."""
        result = {}
        for unit, tasks in units.items():
            if unit != outer:
                predictions, _ = self.held_out(set(units[outer]) | set(tasks))
                result[unit] = float(np.mean([self.corpus.within_tau(predictions, t)
                                              for t in tasks]))
        return result


def permutation_null(corpus, task, n=200, seed=0):
    """The 95th percentile of a task's CMI under n within-task shuffles of a tie-free predictor
    (without ties the null does not depend on the predictor: CMI reads only the order)."""
    rng = np.random.default_rng([seed, *map(ord, task)])
    order = np.arange(len(corpus.rows[task]), dtype=np.float64)
    predictions = np.zeros(len(corpus.gaps))
    values = []
    for _ in range(n):
        predictions[corpus.rows[task]] = rng.permutation(order)
        values.append(corpus.cmi(predictions, task))
    return float(np.percentile(values, 95))


def noise_ceiling(corpus, task, n=50, seed=0):
    """The mean CMI of the task's gaps against gaps re-measured on bootstrap resamples of its
    test set (one resample shared by all its models), from the side files' test-correctness
    bits; None when the task has no side files."""
    from demogen_fit import sidefiles

    rows = corpus.table.loc[corpus.rows[task]]
    paths = [sidefiles.path(pathlib.Path(r["source"]).parent, r["preset"], task, r["model_id"])
             for _, r in rows.iterrows()] if "source" in rows else []
    if not paths or not all(p.is_file() for p in paths):
        return None
    correct = np.stack([sidefiles.read(p)[1]["test_correct"] for p in paths])
    rng = np.random.default_rng([seed, *map(ord, task)])
    train = rows["train_acc"].to_numpy(dtype=np.float64)
    predictions = np.zeros(len(corpus.gaps))
    values = []
    for _ in range(n):
        resample = rng.integers(0, correct.shape[1], correct.shape[1])
        predictions[corpus.rows[task]] = train - correct[:, resample].mean(axis=1)
        values.append(corpus.cmi(predictions, task))
    return float(np.mean(values))


def fit_candidate(table, name, seed=0, sources=None):
    """(frozen predictor dict, in-sample report) of one candidate fitted on all of `table`, its
    tuning parameter chosen by leave-one-task-out inside it (which needs 2 tasks when it has
    more than one value). The frozen pool records the tasks, the models and `sources` ({path:
    digest}). The report: the parameter, the models used, the in-sample R^2 (of a gap; None for
    a score) and each task's Kendall tau."""
    candidate = registry.get([name])[0]
    corpus = Corpus(table)
    if len(candidate.grid) > 1 and len(corpus.tasks) < 2:
        raise ValueError(f"candidate {name!r} chooses its tuning parameter by "
                         f"leave-one-task-out, which needs at least 2 tasks; the tables hold "
                         f"{len(corpus.tasks)} ({', '.join(corpus.tasks)})")
    parameter = Evaluator(corpus, candidate, seed).tuned(frozenset())
    frozen = registry.fit(candidate, corpus.table)[parameter]
    frozen["pool"]["sources"] = sources or {}
    predictions = registry.predict(candidate, frozen, corpus.table)
    residual = corpus.gaps - predictions
    r2 = None if candidate.output == "score" else float(
        1 - residual @ residual / np.sum((corpus.gaps - corpus.gaps.mean()) ** 2))
    report = {"candidate": name, "description": candidate.description, "parameter": parameter,
              "output": candidate.output, "n_models": int(len(corpus.gaps)),
              "fallbacks": int(np.sum(predictions == frozen["fallback"])), "r2": r2,
              "tasks": {t: corpus.within_tau(predictions, t) for t in corpus.tasks}}
    frozen["metrics"].update(r2=report["r2"], n_models=report["n_models"],
                             description=candidate.description)
    return frozen, report


# One feature per family for the Simpson's-paradox view.
SIMPSON_FEATURES = ("out.q2", "acc.sample", "qrt.h3.q2", "qrt.unnorm.h3.q2",
                    "qrt.unnorm.signed.h3.q2", "tv.h3", "w.log_spectral.sum",
                    "w.log_frobenius.sum", "w.alpha.mean", "w.alpha_hat.mean")


def _tau(x, y):
    keep = np.isfinite(x) & np.isfinite(y)
    try:
        return scoring.kendall_tau(x[keep], y[keep]) if keep.sum() > 2 else math.nan
    except scoring.UndefinedScore:
        return math.nan


def simpson(corpus, scores):
    """Kendall tau of each score (name -> values over all rows) with the gap, pooled over all
    tasks beside within each task and within each depth of the tasks whose grid varies depth;
    "flips": the partitions whose tau has the sign opposite to the pooled one."""
    table, out = corpus.table, {}
    depth = table["hp.depth"].to_numpy(dtype=float) if "hp.depth" in table else None
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64)
        within = {t: _tau(values[r], corpus.gaps[r]) for t, r in corpus.rows.items()}
        by_depth = {}
        for task, rows in corpus.rows.items():
            depths = depth[rows] if depth is not None else np.array([np.nan])
            if np.isfinite(depths).all() and len(set(depths)) > 1:
                for d in sorted(set(depths)):
                    part = rows[depths == d]
                    by_depth[f"{task}/depth={d:g}"] = _tau(values[part], corpus.gaps[part])
        pooled = _tau(values, corpus.gaps)
        out[name] = {"pooled": pooled, "within_tasks": within, "within_depth": by_depth,
                     "flips": sorted(k for k, v in {**within, **by_depth}.items()
                                     if np.sign(v) == -np.sign(pooled) != 0)}
    return out


def summary(per_task):
    """scoring.mean_scores over tasks (an undefined score counts as 0), the mean fitted-only
    tau (likewise) and the failed tasks (tau <= 0 or undefined)."""
    out = scoring.mean_scores(per_task)
    out["fitted_only"] = scoring.mean_scores(
        {t: r["fitted_only"] for t, r in per_task.items()}, ("kendall_tau",))
    out["failed_tasks"] = sorted(t for t, r in per_task.items()
                                 if r["kendall_tau"] is None or r["kendall_tau"] <= 0)
    return out


def paired(scores, reference):
    """The mean per-task difference of CMI and of Kendall tau between two candidates' scores
    ({task: scores}, an undefined score counting as 0) and the standard errors of the means."""
    out = {}
    for measure, key in (("cmi", "cmi_difference"), ("kendall_tau", "tau_difference")):
        diff = np.array([(scores[t][measure] or 0.0) - (reference[t][measure] or 0.0)
                         for t in reference])
        out[key] = float(diff.mean())
        out["se" if measure == "cmi" else "tau_se"] = (
            float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else None)
    return out


def _compare(per_candidate, nulls):
    """Add to each candidate's entry ({"tasks", "mean"}) how many tasks score above their
    permutation null (`nulls`: {task: CMI}) and its paired differences from the references."""
    for entry in per_candidate.values():
        entry["mean"]["above_null"] = sum((r["cmi"] or 0.0) > nulls[t]
                                          for t, r in entry["tasks"].items())
        for reference in REFERENCES:
            if reference in per_candidate:
                entry[f"vs_{reference}"] = paired(entry["tasks"],
                                                  per_candidate[reference]["tasks"])


def choose(scores, order):
    """The simplest name (first in `order`) whose mean is within one standard error of the best
    mean; `scores` maps a name to the values it is judged on."""
    means = {n: float(np.mean(v)) for n, v in scores.items()}
    best = max(means, key=means.get)
    values = np.asarray(scores[best], dtype=float)
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return next(n for n in order if n in means and means[n] >= means[best] - se)


def _candidate_results(corpus, candidate, views, seed):
    """Per view: the leave-one-unit-out scores per task, and the inner tau matrix of the nested
    selection ({outer: {v: mean Kendall tau}})."""
    evaluator = Evaluator(corpus, candidate, seed)
    out = {}
    for view in views:
        units = corpus.units(view)
        scores, held_out = evaluator.leave_one_out(units)
        out[view] = {"tasks": scores, "held_out": held_out,
                     "inner": {u: evaluator.inner_tau(units, u) for u in units}
                     if candidate.shippable else {}}
    return out


def _unit_tau(per_task, units):
    return {u: float(np.mean([per_task[t]["kendall_tau"] or 0.0 for t in tasks]))
            for u, tasks in units.items()}


def _map(function, items, n_jobs, client, progress, desc):
    """[function(item) for item in items], over `n_jobs` threads here (the work is numpy and
    scikit-learn, which release the GIL in their inner loops) or on a Dask `client`'s workers
    (joblib's Dask backend); a bar follows the results in order."""
    backend = {"backend": "threading", "n_jobs": n_jobs} if client is None else \
        {"backend": "dask", "client": client}
    with parallel_config(**backend):
        run = Parallel(return_as="generator")(delayed(function)(item) for item in items)
        return list(tqdm(run, total=len(items), desc=desc, unit="candidate",
                         disable=not progress))


def evaluate(table, names=None, views=VIEWS, n_jobs=2, seed=0, progress=False, lockbox=False,
             client=None):
    """The transfer evaluation of the candidates named (default: all) on a feature table (see
    the module docstring), as a TransferResults (`summary()`, `to_json()`), the candidates
    evaluated in `n_jobs` threads or on a Dask `client`'s workers. The lockbox tasks
    (their presets say so) are left out unless `lockbox` is True: their one final run. Candidates
    whose features the table lacks are skipped with the reason, and views with fewer than 3
    units likewise; so are tasks whose grid is not complete yet (fewer rows than their preset's
    grid, e.g. while the zoo is still training them). Tasks of the final lockbox are refused:
    only `final_run` reads them."""
    final = sorted(t for t, i in task_info(table).items() if i["final"])
    if final:
        raise ValueError(f"the tables hold tasks of the final lockbox ({', '.join(final)}); their "
                         "gaps are read only by the one final run: `demogen evaluate --final` "
                         "(demogen_fit.transfer.final_run)")
    boxed = sorted(t for t, i in task_info(table).items() if i["lockbox"])
    if not lockbox:
        table = table[~table["task"].isin(boxed)]
    rows = table.groupby("task").size()
    incomplete = {t: f"{rows[t]} of {i['n_grid']} models" for t, i in task_info(table).items()
                  if i["n_grid"] is not None and rows[t] < i["n_grid"]}
    corpus = Corpus(table[~table["task"].isin(incomplete)])
    chosen, skipped = [], {}
    for candidate in registry.get(names):
        missing = [c for c in candidate.features if c not in corpus.table.columns]
        if missing:
            skipped[candidate.name] = (f"the tables lack {len(missing)} of its features (e.g. "
                                       f"{missing[0]}); rebuild them with this demogen")
        else:
            chosen.append(candidate)
    if not any(c.shippable for c in chosen):
        raise ValueError("no candidate can be evaluated on these tables: "
                         + "; ".join(f"{n}: {r}" for n, r in skipped.items()))
    too_few = {}
    for view in views:  # before any work: a view needs 3 units
        try:
            corpus.units(view)
        except ValueError as error:
            too_few[view] = str(error)
    views = tuple(v for v in views if v not in too_few)
    if not views:
        raise ValueError("; ".join(too_few.values()))
    results = dict(zip([c.name for c in chosen],
                       _map(lambda c: _candidate_results(corpus, c, views, seed), chosen, n_jobs,
                            client, progress, "evaluate")))
    order = [c.name for c in chosen if c.shippable]
    for task, info in corpus.info.items():
        info.update(cmi_null_95=permutation_null(corpus, task, seed=seed),
                    noise_ceiling_cmi=noise_ceiling(corpus, task, seed=seed))
    report = {"views": {}, "skipped": skipped, "skipped_views": too_few, "tasks": corpus.info,
              "incomplete_tasks": incomplete}
    for view in views:
        units = corpus.units(view)
        per_candidate = {n: {"tasks": r[view]["tasks"], "mean": summary(r[view]["tasks"])}
                         for n, r in results.items()}
        _compare(per_candidate, {t: i["cmi_null_95"] for t, i in corpus.info.items()})
        nested_tasks, nested_choice = {}, {}
        for outer, tasks in units.items():
            name = choose({n: list(results[n][view]["inner"][outer].values()) for n in order},
                          order)
            nested_choice[outer] = name
            for task in tasks:
                nested_tasks[task] = {**per_candidate[name]["tasks"][task], "candidate": name}
        selected = choose({n: list(_unit_tau(per_candidate[n]["tasks"], units).values())
                           for n in order}, order)
        nested_mean = summary(nested_tasks)
        nested_mean["above_null"] = sum((r["cmi"] or 0.0) > corpus.info[t]["cmi_null_95"]
                                        for t, r in nested_tasks.items())
        report["views"][view] = {
            "units": {u: list(t) for u, t in units.items()}, "candidates": per_candidate,
            "nested": {"tasks": nested_tasks, "mean": nested_mean, "chosen": nested_choice},
            "selected": selected}
    headline = report["views"]["task" if "task" in views else views[0]]
    selected = report["views"].get(SELECTION_VIEW, headline)["selected"]
    first = views[0]
    report["held_out"] = {
        name: {"view": first, "tasks": {
            t: {"model_id": corpus.table.loc[r, "model_id"].astype(str).tolist(),
                "prediction": results[name][first]["held_out"][r].tolist(),
                "gap": corpus.gaps[r].tolist()} for t, r in corpus.rows.items()}}
        for name in dict.fromkeys([selected, "paper"]) if name in results}
    report["simpson"] = simpson(corpus, {
        f"{selected} (held out, {views[0]} view)": results[selected][views[0]]["held_out"],
        **{f: corpus.table[f].to_numpy(dtype=np.float64) for f in SIMPSON_FEATURES
           if f in corpus.table}})
    report.update(candidates=headline["candidates"], nested=headline["nested"],
                  selected=selected,
                  selection_view=SELECTION_VIEW if SELECTION_VIEW in views else views[0],
                  lockbox={"tasks": boxed, "included": bool(lockbox)},
                  sources=tables.source_digests(sorted(set(table["source"])))
                  if "source" in table else {})
    return TransferResults(report)


def final_run(table, final_table, names=None, n_jobs=2, seed=0, progress=False, client=None):
    """The one final run: every candidate named (default: all) fitted on all the tasks of
    `table` (its parameter tuned by leave-one-task-out inside them) and scored on the final
    lockbox's tasks in `final_table`, whose gaps reach no fit and no choice. Beside: per
    registry version, the candidate the selection rule chooses on `table`'s tasks alone (the
    evaluation's leave-one-cluster-out, the lockbox tasks included), each candidate's paired
    differences with the references, and each final task's permutation null and noise
    ceiling. Every final task must be complete (its whole grid)."""
    info = task_info(final_table)
    final = sorted(t for t, i in info.items() if i["final"])
    if not final or len(final) < len(info):
        raise ValueError("the final run scores the final lockbox's tasks only; the final tables "
                         f"hold {', '.join(sorted(info)) or 'no task'}; give "
                         "features_cache/lockbox2.csv")
    rows = final_table.groupby("task").size()
    incomplete = [f"{t} {rows[t]} of {info[t]['n_grid']}" for t in final
                  if rows[t] < info[t]["n_grid"]]
    if incomplete:
        raise ValueError(f"the final lockbox is not complete ({', '.join(incomplete)} models); "
                         "finish it with `demogen zoo --preset lockbox2` before its one run")
    lacking = sorted({f for c in registry.get(names) for f in c.features
                      if f in table.columns and f not in final_table.columns})
    if lacking:
        raise ValueError(f"the final tables lack {len(lacking)} features the candidates read "
                         f"(e.g. {lacking[0]}); add them with `demogen zoo --preset lockbox2 "
                         "--out DIR` (from the trained models there; --remeasure where they "
                         "are gone)")
    development = evaluate(table, names, views=(SELECTION_VIEW,), n_jobs=n_jobs, seed=seed,
                           progress=progress, lockbox=True, client=client)
    view = development["views"][SELECTION_VIEW]
    chosen = registry.get(list(view["candidates"]))
    selected = {}
    for version in sorted({c.added for c in chosen}):
        order = [c.name for c in chosen if c.shippable and c.added <= version]
        selected[version] = choose({n: list(_unit_tau(view["candidates"][n]["tasks"],
                                                       view["units"]).values())
                                    for n in order}, order)
    corpus = Corpus(pd.concat([table[table["task"].isin(development["tasks"])], final_table],
                              ignore_index=True))

    def scores(candidate):
        predictions, parameter = Evaluator(corpus, candidate, seed).held_out(final)
        return {t: {**corpus.score(predictions, t),
                    "fitted_only": corpus.fitted_only(predictions, t), "parameter": parameter}
                for t in final}

    candidates = {c.name: {"tasks": r} for c, r in zip(
        chosen, _map(scores, chosen, n_jobs, client, progress, "final"))}
    tasks = {t: {**corpus.info[t], "cmi_null_95": permutation_null(corpus, t, seed=seed),
                 "noise_ceiling_cmi": noise_ceiling(corpus, t, seed=seed)} for t in final}
    for entry in candidates.values():
        entry["mean"] = summary(entry["tasks"])
    _compare(candidates, {t: i["cmi_null_95"] for t, i in tasks.items()})
    return FinalResults({"final_tasks": tasks, "training_tasks": sorted(development["tasks"]),
                         "selected": selected, "candidates": candidates,
                         "development": {"view": SELECTION_VIEW,
                                         "candidates": {n: e["mean"] for n, e in
                                                        view["candidates"].items()}},
                         "sources": {**development["sources"],
                                     **(tables.source_digests(sorted(set(final_table["source"])))
                                        if "source" in final_table else {})}})

