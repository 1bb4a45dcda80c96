"""The `demogen` command line. Offline packages (fit/, tqdm) are imported only once a subcommand
runs, so that help and argument errors are instant and the runtime stays importable without the
offline packages; TensorFlow only by the subcommands that run a model (`_runs_models`)."""

import argparse
import contextlib
import json
import math
import os
import pathlib
import sys

from demogen.defaults import BUDGET_COUNTS, DEFAULTS, SHIPPED_PREDICTORS


def _number(kind, minimum, inclusive=True):
    """An argparse type: a finite number of `kind`, at least `minimum` (above it when not
    `inclusive`)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and (value >= minimum if inclusive else value > minimum)):
            raise argparse.ArgumentTypeError(
                f"must be {'at least' if inclusive else 'above'} {minimum}, got {text}")
        return value
    return parse


def _add_signature_options(parser):
    parser.add_argument("--n-examples", type=_number(int, 2), default=DEFAULTS["n_examples"],
                        help="training examples sampled per model, at least 2 "
                             "(default %(default)s)")
    parser.add_argument("--seed", type=_number(int, 0), default=DEFAULTS["seed"],
                        help="seed of the sample (default %(default)s)")
    parser.add_argument("--batch-size", type=_number(int, 1), default=DEFAULTS["batch_size"],
                        help="examples per batch (default %(default)s)")
    parser.add_argument("--statistic", choices=["quartile", "moment"], default="quartile")
    parser.add_argument("--unnormalized", action="store_true",
                        help="do not divide by the square root of the total variation")
    parser.add_argument("--signed", action="store_true",
                        help="use all margins, misclassified examples included")
    parser.add_argument("--layers", nargs=3, metavar="LAYER",
                        help="h1 h2 h3 as positions, 'index:ClassName' or Keras layer names, "
                             "instead of the default rule")


def _add_cluster_option(parser, task="one model"):
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help=f"send the work, {task} a task, to the Dask scheduler at ADDRESS "
                             "(host:port), or to local:N, N worker processes started here for "
                             "the run; needs demogen[cluster] (docs/cluster.md)")


def _connected(args):
    """The Dask client of --cluster for the subcommand's work (None without --cluster)."""
    if args.cluster is None:
        return contextlib.nullcontext()
    from demogen_fit import cluster

    return cluster.connect(args.cluster)


def _signature_kwargs(args):
    return {"n_examples": args.n_examples, "seed": args.seed, "batch_size": args.batch_size,
            "statistic": args.statistic, "normalize": not args.unnormalized,
            "signed": args.signed,
            "layers": [int(s) if s.lstrip("-").isdigit() else s for s in args.layers]
            if args.layers else None}


def _format_signature(title, signature):
    """The text table of one signature: per layer the margins used and the five statistics."""
    lines = [f"{title} (n_sampled {signature.settings['n_sampled']}; n_used: the margins each "
             "layer's statistics were computed on)"]
    stats = [name.split(".", 1)[1] for name in signature.names[:5]]
    lines.append(f"  {'layer':<24}{'n_used':>7}" + "".join(f"{s:>13}" for s in stats))
    for i, layer in enumerate(signature.layers):
        slot = signature.names[5 * i].split(".")[0]
        row = signature.values[5 * i:5 * i + 5]
        lines.append(f"  {slot + ' ' + layer:<24}{signature.n_used[i]:>7}"
                     + "".join(f"{v:>13.5g}" for v in row))
    lines += [f"  note: {note}" for note in signature.notes]
    return "\n".join(lines)


def _signature(folder, model_id, allow_code_layers, options):
    """One model's margin signature, or the reason it has none (text); run on a Dask worker
    with --cluster."""
    from demogen import margin_signature
    from demogen.competition import pgdl

    try:
        model = pgdl.load_model(folder, model_id, allow_code_layers=allow_code_layers)
        return margin_signature(model, pgdl.task_dataset(folder, "train"), **options)
    except (ValueError, FileNotFoundError) as error:
        return str(error)


def _signatures(jobs, args):
    """`_signature` of each (task, folder, model id) in order: one by one here, or with
    --cluster on its workers (the bar then follows the finished ones)."""
    from tqdm import tqdm

    options = (args.allow_code_layers, _signature_kwargs(args))
    bar = {"desc": "signatures", "unit": "model", "file": sys.stderr, "disable": len(jobs) < 2}
    if args.cluster is None:
        for _, folder, model_id in tqdm(jobs, **bar):
            yield _signature(folder, model_id, *options)
        return
    from demogen_fit import cluster

    with _connected(args) as client, cluster.pool(client=client) as pool:
        futures = [pool.submit(_signature, pathlib.Path(folder).resolve(), model_id, *options)
                   for _, folder, model_id in jobs]
        for _ in tqdm(pool.as_completed(futures), total=len(futures), **bar):
            pass
        yield from (future.result() for future in futures)


def cmd_signature(args):
    """Signatures of the models of a PGDL task folder, or of every task in a folder of task
    folders (what `demogen zoo --out` writes)."""
    from tqdm import tqdm

    from demogen.competition import pgdl
    from demogen.competition.tasks import find_tasks

    jobs = []
    for task, folder, _ in find_tasks(args.task_dir, require_configs=False):
        available = pgdl.model_ids(folder)
        wanted = [m.removeprefix("model_") for m in args.model] if args.model else available
        unknown = [m for m in wanted if m not in available]
        if unknown:
            raise ValueError(f"no model {', '.join(unknown)} in {folder}; its models are "
                             f"{', '.join(available)}")
        pgdl.shard_paths(pathlib.Path(folder) / "dataset_1" / "train")  # refused before any work
        jobs += [(task, folder, model_id) for model_id in wanted]
    several = len({task for task, _, _ in jobs}) > 1
    results, failed = [], 0
    for (task, _, model_id), signature in zip(jobs, _signatures(jobs, args)):
        name = f"{task}/model_{model_id}" if several else f"model {model_id}"
        if isinstance(signature, str):
            failed += 1
            results.append({"task": task, "model_id": model_id, "error": signature})
            tqdm.write(f"demogen: {name}: {signature}", file=sys.stderr)
            continue
        results.append({"task": task, "model_id": model_id, **signature.as_dict()})
        if not args.json:
            tqdm.write(_format_signature(name, signature), file=sys.stdout)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    return 1 if failed else 0


def cmd_demo(args):
    """The whole path on the built-in default: train the demo task (16 MNIST-1D MLPs over 4
    binary hyperparameters, each until it fits its training data; a task no predictor was fitted
    on), bundle the two shipped predictors (the selected one and the paper's configuration) as
    PGDL submissions, ingest them over the task as the competition did, print the competition's
    scores of both and say which ranked the task better."""
    import shutil
    import tempfile

    from demogen_fit import zoo

    from demogen.competition.bundle import write_bundle
    from demogen.competition.evaluation import score_predictions
    from demogen.competition.ingest import ingest
    from demogen.frozen import coefficients

    temporary = args.work is None
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="demogen-demo-"))
    print(f"working in {work}" + (" (removed at the end; --keep keeps it)"
                                  if temporary and not args.keep else ""), flush=True)
    tasks = work / "tasks"
    names = {name: _predictor_name(name, coefficients.load(predictor=name))
             for name in SHIPPED_PREDICTORS}
    try:
        print(f"1/4 train the demo task (16 MNIST-1D MLPs) into {tasks}", flush=True)
        zoo.run("demo", tasks, workers=args.workers, features=work / "features")
        print("2/4 bundle the shipped predictors as PGDL submissions: "
              + "; ".join(names.values()), flush=True)
        for name in SHIPPED_PREDICTORS:
            write_bundle(work / f"submission_{name}.zip", predictor=name)
        print(f"3/4 ingest each over {tasks} as the competition did", flush=True)
        for name in SHIPPED_PREDICTORS:
            ingest(work / f"submission_{name}.zip", tasks, work / f"predictions_{name}")
        print("4/4 score them", flush=True)
        scores = {}
        for name in SHIPPED_PREDICTORS:
            scores[name] = score_predictions(work / f"predictions_{name}", tasks)
            print(f"\n{name}:")
            _print_scores(scores[name])
        print()
        print(_verdict(scores))
        print(_what_it_predicts(coefficients.load()))
        print("How to read it: CMI x 100 is the competition's score, 0 (the predictor says "
              "nothing about which model generalizes worse beyond what the hyperparameters "
              "tell) to 100; tau-b is Kendall's rank correlation of prediction and gap, -1 "
              "(reversed) to 1 (same order); Psi is tau among models that differ in one "
              "hyperparameter, averaged. CMI barely sees the direction: a predictor that ranks "
              "the models backwards still scores, so read tau for it. 16 models are few: read "
              "differences of a few CMI points as noise.")
    finally:
        if temporary and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            print(f"removed {work}")
    return 0


def _predictor_name(name, frozen):
    """How the demo names a shipped predictor: its file name and what it is."""
    from demogen.defaults import SHIPPED_DESCRIPTIONS

    chosen = f": {frozen.name}, {frozen.metrics['description']}" \
        if "description" in frozen.metrics else ""
    return f"{name} ({SHIPPED_DESCRIPTIONS[name]}{chosen})"


def _verdict(scores):
    """One line in plain words: which shipped predictor ranked the task better, by tau."""
    tau = {name: result["mean"]["kendall_tau"] or 0.0 for name, result in scores.items()}
    cmi = {name: result["mean"]["cmi"] or 0.0 for name, result in scores.items()}
    figures = ", ".join(f"{name} tau-b {tau[name]:.2f}, CMI x 100 {cmi[name]:.1f}"
                        for name in scores)
    best = max(tau, key=tau.get)
    if tau[best] <= 0:
        return f"Neither predictor ranked this task in the right direction ({figures})."
    others = [name for name in tau if name != best]
    return f"{best} ranked this task's models better than {', '.join(others)} ({figures})."


def _what_it_predicts(frozen):
    """One line on what the selected predictor's number is."""
    if frozen.two_part:
        return ("selected is a two-part prediction: gap = the training accuracy measured on a "
                f"seeded sample of {frozen.train_accuracy['n_examples']:,} training examples (all "
                "of them where there are fewer) minus a test accuracy predicted from "
                f"{', '.join(frozen.features)}.")
    if frozen.target == "score":
        return ("selected returns a ranking score, not a gap: a higher score predicts a larger "
                "gap, which is all the competition's scores read.")
    return "selected returns a predicted generalization gap (train minus test accuracy)."


def _format(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def cmd_bundle(args):
    """Write the frozen predictor as a PGDL submission zip (complexity.py, metadata, the
    coefficient file and demogen's runtime modules)."""
    from demogen.competition.bundle import write_bundle

    names = write_bundle(args.out, args.coefficients, args.predictor)
    print(f"wrote {args.out} ({args.coefficients or f'the shipped predictor {args.predictor!r}'}): "
          f"{', '.join(names)}")
    return 0


def cmd_ingest(args):
    """Run a submission (zip or folder, ours or another team's) over every model of every task
    as the competition did, in a child process, and write <out>/<task>.predict."""
    from demogen.competition.ingest import EXCEEDED, ingest

    results = ingest(args.submission, args.tasks, args.out, budget_per_model=args.budget)
    status = 0
    for task, predictions in results.items():
        failed = {k: v for k, v in predictions.items() if isinstance(v, str)}
        for key, value in failed.items():
            print(f"demogen: {task}/{key}: {value}", file=sys.stderr)
        exceeded = sum(v == EXCEEDED for v in failed.values())
        print(f"{task}: {len(predictions) - len(failed)} predictions, {len(failed) - exceeded} "
              f"failed, {exceeded} EXCEEDED -> {args.out}/{task}.predict")
        status = status or int(bool(failed))
    return status


def _print_scores(result):
    print(f"{'task':<20}{'models':>7}{'CMI x 100':>11}{'tau-b':>9}{'Psi':>9}")
    rows = list(result["tasks"].items()) + [("mean", result["mean"])]
    for task, scores in rows:
        cells = "".join(f"{_format(scores[k], 3):>{w}}"
                        for k, w in (("cmi", 11), ("kendall_tau", 9), ("granulated_psi", 9)))
        print(f"{task:<20}{scores.get('n_models', ''):>7}{cells}")
    for task, scores in result["tasks"].items():
        for name, reason in scores.get("undefined", {}).items():
            print(f"  {task} {name} undefined: {reason}")


def cmd_score(args):
    """The competition's score of a folder of <task>.predict files: CMI x 100 per task and on
    average, with Kendall's tau-b and the granulated Kendall coefficient Psi."""
    from demogen.competition.evaluation import score_predictions

    result = score_predictions(args.predictions, args.tasks, args.reference)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        _print_scores(result)
    return 0


def cmd_budget(args):
    """The budget curve of a frozen predictor on PGDL tasks: at each number of sampled training
    examples (a two-part predictor's training-accuracy sample scaled with it, in the
    predictor's own ratio), CMI x 100, Kendall tau-b and Psi against the tasks' reference gaps
    and the time per model; counts at or above a task's training-set size are its whole set.
    With --out, writes budget.json and budget.png there."""
    from demogen_fit import budget

    from demogen.frozen import coefficients

    frozen = coefficients.load(args.coefficients, args.predictor)
    result = budget.task_curve(args.tasks, frozen, args.n_examples, args.reference)
    result["predictor"] = args.coefficients or args.predictor
    print(f"{result['predictor']} ({result['name']}) on {len(result['n_train'])} task(s), "
          f"{result['n_models']} models; training-set sizes: "
          + ", ".join(f"{task} {size:,}" for task, size in result["n_train"].items()))
    print(f"{'n':>7}{'acc. n':>8}{'CMI x 100':>11}{'tau-b':>9}{'Psi':>9}{'s/model':>9}  "
          "whole set for")
    for point in result["points"]:
        cells = "".join(f"{_format(point[k], 3):>{w}}"
                        for k, w in (("cmi", 11), ("kendall_tau", 9), ("granulated_psi", 9)))
        print(f"{point['n_examples']:>7}{point['train_accuracy_examples'] or '-':>8}{cells}"
              f"{point['seconds_per_model']:>9.2f}  {', '.join(point['whole_set']) or '-'}"
              + ("  (the predictor's default)" if point["default"] else ""))
    if args.out is not None:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "budget.json").write_text(json.dumps(result, indent=1) + "\n")
        budget.plot({result["name"]: result["points"]}, result["default"], result["n_train"],
                    out / "budget.png", f"The budget curve of {result['predictor']}")
        print(f"wrote {out / 'budget.json'} and {out / 'budget.png'}")
    return 0


def cmd_zoo(args):
    """Train a preset's tasks into PGDL-format task folders under --out (resumable: finished
    models are never retrained), and write its feature table, side files and each task's
    model_configs.json under --features; rows that lack a feature group of this demogen (or hold
    an old version of one) get it from the trained models under --out. With --remeasure, such
    rows whose models are gone are retrained instead (weights digest checked, weights dropped).
    With --pilot, train only the fastest and the slowest configuration of every task into --out
    (a scratch folder) and print the projected cost."""
    from demogen_fit import presets, zoo

    features = args.features or zoo.features_folder(args.preset, args.out)
    if args.describe:
        import pandas as pd

        _print_frame(f"{args.preset}: per task, from {features}/{args.preset}.csv",
                     pd.DataFrame(zoo.describe(args.preset, features)))
        return 0
    if args.out is None:
        raise ValueError("--out is required to train (name the folder for the task folders)")
    with _connected(args) as client:
        workers = len(client.scheduler_info()["workers"]) if client else args.workers or 2
        options = {"workers": workers, "data_dir": args.data_dir, "tasks": args.task or (),
                   "client": client}
        if args.pilot:
            rows = zoo.pilot(args.preset, args.out, **options)
            _print_pilot(rows, workers)
            return 0
        if args.remeasure:
            before = zoo.read_table(pathlib.Path(features) / f"{args.preset}.csv")
            rows, mismatches = zoo.remeasure(args.preset, args.out, features=features,
                                             replace_differing=args.replace_differing, **options)
            if mismatches:
                print(f"{args.preset}: {len(mismatches)} retrained model(s) differ from their "
                      "rows (" + ("replaced by the retrained models" if args.replace_differing
                                  else "kept as they were") + "):\n  " + "\n  ".join(mismatches),
                      file=sys.stderr)
                if not args.replace_differing:
                    return 1
        else:
            zoo.run(args.preset, args.out, features=features, **options)
            rows = zoo.backfill(args.preset, args.out, workers, features, args.data_dir,
                                client=client)
    gaps = [row["gap"] for row in rows]
    failed = sum(1 for row in rows if row["error"])
    final = any(task.final for task in presets.PRESETS[args.preset].tasks)
    if args.remeasure and args.replace_differing and not final:
        _print_agreement(args.preset, zoo.retrain_agreement(before, rows))
    print(f"{args.preset}: {len(rows)} models in {args.out}, "
          + ("gaps not shown (a final lockbox's are read by its one final run)" if final else
             f"gap from {min(gaps):.3f} to {max(gaps):.3f}")
          + f"; features in {features}/{args.preset}.csv"
          + (f"; {failed} without features (see the error column)" if failed else ""))
    return 0


def _print_agreement(preset, agreement):
    if not agreement:
        return
    print(f"{preset}: the retrained models' gaps against the rows they replaced (this run):")
    for task, a in agreement.items():
        print(f"  {task}: {a['replaced']} of {a['models']} replaced; Kendall tau-b of old and new "
              f"gaps {a['kendall_tau']:.3f}, mean |gap change| {a['mean_abs_gap_change']:.4f}")


def _print_pilot(rows, workers):
    print(f"{'task':<20}{'config':>9}{'id':>4}{'seconds':>9}{'epochs':>8}{'fitted':>8}"
          f"{'train':>7}{'test':>7}  hyperparameters")
    for row in rows:
        hparams = ", ".join(f"{k[3:]}={v}" for k, v in row.items() if k.startswith("hp."))
        print(f"{row['task']:<20}{row['which']:>9}{row['model_id']:>4}{row['seconds']:>9.1f}"
              f"{row['epochs']:>8}{row['reached_stop']:>8}{row['train_acc']:>7.3f}"
              f"{row['test_acc']:>7.3f}  {hparams}")
    tasks = {row["task"]: row["projected_task_seconds"] for row in rows}
    for task, seconds in tasks.items():
        print(f"projected {task}: {seconds / 60:.0f} min of one worker")
    total = sum(tasks.values())
    print(f"projected in all: {total / 3600:.1f} h of one worker, {total / 3600 / workers:.1f} h "
          f"with {workers} workers")


def _print_frame(title, frame):
    print(f"\n{title}")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def cmd_evaluate(args):
    """Judge the candidate predictors by transfer: for every task, fit each candidate on the
    other tasks and score its predictions on the task left out (CMI x 100, Kendall tau-b, Psi,
    and tau among the models that fit their data), side by side leave-one-cluster-, family- and
    source-out, and the nested score that also chooses the candidate inside the training tasks.
    Works from committed feature tables; lockbox tasks only with --lockbox. With --final, the
    one final run: every candidate fitted on the corpus and its lockbox, scored on the final
    lockbox (lockbox2.csv), beside the selection per registry version; it never overwrites a
    result file, so that the final tasks are read once."""
    from demogen_fit import tables, transfer

    if args.final and (args.out is None or pathlib.Path(args.out).exists()):
        raise ValueError(f"the final run writes its result once: give --out a file that does "
                         f"not exist yet ({args.out or 'none given'}); its tasks' gaps are read "
                         "by one run only")
    sources = args.sources or ([tables.CORPUS, tables.CORPUS_LOCKBOX]
                               if args.lockbox or args.final else [tables.CORPUS])
    with _connected(args) as client:
        read = {"cache": args.cache, "progress": not args.json, "client": client}
        table = tables.read_sources(sources, **read)
        run = {"n_jobs": args.jobs or 2, "progress": not args.json, "client": client}
        if args.final:
            final = tables.read_sources([tables.LOCKBOX2], **read)
            results = transfer.final_run(table, final, args.candidates, **run)
        else:
            results = transfer.evaluate(table, args.candidates, lockbox=args.lockbox, **run)
    text = results.to_json(args.out)
    if args.json:
        print(text, end="")
    else:
        print(results.summary())
    return 0


def _fit_candidate(args, table, sources):
    """`demogen fit --candidate NAME`: the candidate fitted on all the given models."""
    from demogen_fit import freeze, tables, transfer

    frozen, report = transfer.fit_candidate(table, args.candidate, args.seed,
                                            tables.source_digests(sources))
    if args.out is not None:
        freeze.write(frozen, args.out)
    report["out"] = args.out
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return 0
    print(f"{args.candidate}: {report['description']}")
    print(f"  {report['n_models']} models ({report['fallbacks']} predicted by the fallback), "
          f"tuning parameter {report['parameter']} (chosen by leave-one-task-out inside them)")
    fit = ("a score, not a gap: no R^2" if report["r2"] is None
           else f"in-sample R^2 {report['r2']:.3f}")
    print(f"  {fit}; Kendall tau within each task (in-sample): "
          + ", ".join(f"{t} {v:.2f}" for t, v in report["tasks"].items()))
    print(f"\nwrote {args.out}" if args.out is not None else
          "\n(no predictor file written: add --out FILE to freeze this fit)")
    return 0


def cmd_fit(args):
    """Fit the regression of the generalization gap on the quartile signature over one or more
    pools (feature tables or PGDL task folders; default: the committed primary reference pool),
    print the fit quality and, with --out, write the frozen coefficient file."""
    import warnings

    from demogen_fit import ablations, freeze, tables

    sources = args.sources or [tables.PRIMARY_POOL]
    with _connected(args) as client:
        table = tables.read_sources(sources, cache=args.cache, progress=not args.json,
                                    client=client)
    if args.candidate:
        return _fit_candidate(args, table, sources)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frozen, _, _, figures, dropped = freeze.fit(table, sources, args.transform, args.seed)
        report = {"table1": ablations.table1(table, args.seed),
                  "per_layer": ablations.per_layer(table, args.seed),
                  "competition": ablations.competition_view(table, seed=args.seed)} \
            if args.ablations else {}
    if args.out is not None:
        freeze.write(frozen, args.out)
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    if args.json:
        summary = {**frozen.metrics, "n_features": figures["n_features"], "dropped": dropped,
                   "notes": notes, "out": args.out}
        if report:
            summary["ablations"] = {name: json.loads(frame.to_json(orient="records"))
                                    for name, frame in report.items()}
        json.dump(summary, sys.stdout, indent=1)
        print()
        return 0
    metrics = frozen.metrics
    print(f"qrt+{args.transform} on {metrics['n_models']} models of "
          f"{', '.join(frozen.pool['tasks'])}")
    for item in dropped:
        print(f"  dropped {item['task']}/{item['model_id']}: {item['reason']}")
    for note in notes:
        print(f"  warning: {note}")
    print(f"  adjusted R^2      {metrics['adjusted_r2']:.3f}   (paper, CNN+CIFAR-10: 0.94)")
    print(f"  10-fold R^2       {metrics['kfold_r2']:.3f}   (paper: 0.90)")
    print(f"  grouped 10-fold   {metrics['grouped_kfold_r2']:.3f}   (seeds of a configuration "
          "kept together: the honest figure)")
    print(f"  MSE               {metrics['mse'] * 1e3:.3f}e-3 (paper: 1.5e-3)")
    for name, frame in report.items():
        _print_frame({"table1": "Table 1 (rows of docs/method.md section 6, and context rows)",
                      "per_layer": "Per layer (qrt+log)",
                      "competition": "Per task: the fitted predictor's R^2, Kendall tau-b and "
                                     "CMI x 100"}[name], frame)
    print(f"\nwrote {args.out}" if args.out is not None else
          "\n(no coefficient file written: add --out FILE to freeze this fit)")
    return 0


class _ZooHelpFormatter(argparse.HelpFormatter):
    """zoo's help, with the presets of demogen_fit.presets (imported only when it is shown) after
    the help of --preset."""

    def _get_help_string(self, action):
        if action.dest != "preset":
            return action.help
        from demogen_fit.presets import PRESETS

        return f"{action.help}: " + ", ".join(name + (" (scratch)" if preset.scratch else "")
                                              for name, preset in sorted(PRESETS.items()))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="demogen", description="Predict the generalization gap of trained Keras networks "
                                    "from their margin distributions.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (start-up, retracing warnings)")
    commands = parser.add_subparsers(dest="command", required=True)

    tasks_help = "one task folder (with model_* folders) or a folder of task folders"
    signature = commands.add_parser("signature", help="margin signatures of a PGDL task's models",
                                    description=cmd_signature.__doc__)
    signature.add_argument("task_dir", metavar="TASKS", help=tasks_help)
    signature.add_argument("--model", nargs="+", metavar="ID",
                           help="bare model ids (17 for model_17); default: all")
    signature.add_argument("--json", action="store_true", help="print a JSON list")
    signature.add_argument("--allow-code-layers", action="store_true",
                           help="allow layers that can carry code (Lambda); only for trusted models")
    _add_cluster_option(signature)
    _add_signature_options(signature)
    signature.set_defaults(run=cmd_signature)

    demo = commands.add_parser("demo", help="demo task -> bundle -> ingest -> score",
                               description=cmd_demo.__doc__)
    demo.add_argument("--workers", type=_number(int, 1), default=2,
                      help="training processes (default %(default)s)")
    demo.add_argument("--work", help="folder for the task, the bundle and the predictions, "
                                     "kept (default: a new temporary folder, removed at the end)")
    demo.add_argument("--keep", action="store_true",
                      help="keep the temporary folder and print where it is")
    demo.set_defaults(run=cmd_demo)

    bundle = commands.add_parser("bundle", help="write the PGDL submission zip",
                                 description=cmd_bundle.__doc__)
    shipped = bundle.add_mutually_exclusive_group()
    shipped.add_argument("--predictor", choices=SHIPPED_PREDICTORS, default=SHIPPED_PREDICTORS[0],
                         help="which shipped predictor: the candidate the transfer evaluation "
                              "selected (default) or the paper's configuration")
    shipped.add_argument("--coefficients", help="a frozen predictor file of your own instead")
    bundle.add_argument("--out", required=True, help="the zip to write")
    bundle.set_defaults(run=cmd_bundle)

    ingest = commands.add_parser("ingest", help="run a submission over PGDL tasks",
                                 description=cmd_ingest.__doc__)
    ingest.add_argument("--submission", required=True, help="a submission zip or folder")
    ingest.add_argument("--tasks", required=True, help=tasks_help)
    ingest.add_argument("--out", required=True, help="folder for the <task>.predict files")
    ingest.add_argument("--budget", type=_number(float, 0, inclusive=False), default=300.0,
                        help="seconds per model of a task's budget, above 0 "
                             "(default %(default)s)")
    ingest.set_defaults(run=cmd_ingest)

    score = commands.add_parser("score", help="CMI, Kendall tau-b and Psi of predictions",
                                description=cmd_score.__doc__)
    score.add_argument("--predictions", required=True, help="folder of <task>.predict files")
    score.add_argument("--tasks", required=True,
                       help=f"{tasks_help}; model_configs.json is looked for in the task folder, "
                            "then in ../reference_data/<task>/ beside the folder of tasks, then "
                            "in --reference")
    score.add_argument("--reference", help="folder of <task>/model_configs.json")
    score.add_argument("--json", action="store_true", help="print a JSON object")
    score.set_defaults(run=cmd_score)

    budget = commands.add_parser("budget", help="a predictor's scores and cost per number of "
                                                "sampled examples", description=cmd_budget.__doc__)
    budget.add_argument("--tasks", required=True,
                        help=f"{tasks_help}, with model_configs.json as for score")
    budget.add_argument("--reference", help="folder of <task>/model_configs.json")
    budget_predictor = budget.add_mutually_exclusive_group()
    budget_predictor.add_argument("--predictor", choices=SHIPPED_PREDICTORS,
                                  default=SHIPPED_PREDICTORS[0],
                                  help="which shipped predictor (default %(default)s)")
    budget_predictor.add_argument("--coefficients", help="a frozen predictor file instead")
    budget.add_argument("--n-examples", nargs="+", type=_number(int, 2), metavar="N",
                        default=list(BUDGET_COUNTS),
                        help="the numbers of sampled training examples, increasing, each at "
                             "least 2 (default %(default)s)")
    budget.add_argument("--out", metavar="DIR", help="folder for budget.json and budget.png")
    budget.set_defaults(run=cmd_budget)

    zoo = commands.add_parser("zoo", help="train a preset's model pool into PGDL task folders",
                              description=cmd_zoo.__doc__, formatter_class=_ZooHelpFormatter)
    zoo.add_argument("--preset", required=True, metavar="NAME",
                     help="the pool to train")
    zoo.add_argument("--task", nargs="+", metavar="NAME",
                     help="train only these tasks of the preset (default: all)")
    zoo.add_argument("--pilot", action="store_true",
                     help="train only the fastest and slowest configuration of every task into "
                          "--out (scratch) and print the projected cost")
    zoo.add_argument("--remeasure", action="store_true",
                     help="retrain the models of the rows that lack a feature group of this "
                          "demogen (or hold an old version of one) into --out (scratch), check "
                          "each weights digest against its row, add the groups, drop the weights")
    zoo.add_argument("--replace-differing", action="store_true",
                     help="with --remeasure: where a retrain's weights differ from the row's "
                          "(training is bit for bit only on the same CPU and TensorFlow build), "
                          "replace the row by the retrained model's instead of keeping it")
    zoo.add_argument("--describe", action="store_true",
                     help="train nothing: print per task, from the committed table, the models "
                          "measured, the share fitted, accuracy and gap ranges, the gap's "
                          "standard error and the hours spent")
    zoo.add_argument("--out", metavar="DIR",
                     help="folder for the task folders (weights live here; never commit them)")
    parallel = zoo.add_mutually_exclusive_group()
    parallel.add_argument("--workers", type=_number(int, 1),
                          help="parallel processes, one thread each (default 2)")
    _add_cluster_option(parallel)
    zoo.add_argument("--features",
                     help="folder for the feature table, side files and model_configs.json "
                          "(default: features_cache in the current folder for a committed pool, "
                          "DIR/features beside the task folders for a scratch preset)")
    zoo.add_argument("--data-dir", help="folder with the Fashion-MNIST .gz files")
    zoo.set_defaults(run=cmd_zoo)

    evaluate = commands.add_parser(
        "evaluate", help="score the candidate predictors on tasks they were not fitted on",
        description=cmd_evaluate.__doc__)
    evaluate.add_argument("sources", nargs="*", metavar="CSV",
                          help="feature tables (default: features_cache/corpus.csv; with "
                               "--lockbox, corpus_lockbox.csv too)")
    evaluate.add_argument("--candidates", nargs="+", metavar="NAME",
                          help="the candidates to evaluate (default: all)")
    which = evaluate.add_mutually_exclusive_group()
    which.add_argument("--lockbox", action="store_true",
                       help="include the lockbox tasks, which are otherwise left out of any "
                            "table (their one final run)")
    which.add_argument("--final", action="store_true",
                       help="the one final run on the final lockbox (lockbox2.csv): needs "
                            "--out, a file that does not exist yet")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.add_argument("--out", help="also write the JSON result to this file")
    parallel = evaluate.add_mutually_exclusive_group()
    parallel.add_argument("--jobs", type=_number(int, 1),
                          help="worker threads (default 2)")
    _add_cluster_option(parallel, "one candidate's fits")
    evaluate.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    evaluate.set_defaults(run=cmd_evaluate)

    fit = commands.add_parser("fit", help="fit the gap regression and freeze its coefficients",
                              description=cmd_fit.__doc__)
    fit.add_argument("sources", nargs="*", metavar="TASK_DIR_OR_CSV",
                     help="feature tables (.csv) or PGDL task folders (default: "
                          "features_cache/nin.csv, the primary reference pool)")
    fit.add_argument("--candidate", metavar="NAME",
                     help="fit this candidate of `demogen evaluate` instead of the paper's "
                          "configuration, and freeze it as a schema-2 file")
    fit.add_argument("--transform", choices=["log", "linear"], default="log",
                     help="feature transform (default %(default)s)")
    fit.add_argument("--out", default=None,
                     help="write the frozen coefficient file here (default: nothing is written)")
    fit.add_argument("--json", action="store_true", help="print the figures as a JSON object")
    fit.add_argument("--ablations", action="store_true",
                     help="also print the paper's Table 1 for this pool and its context")
    fit.add_argument("--seed", type=int, default=0, help="seed of the 10-fold splits")
    fit.add_argument("--cache", default=None,
                     help="joblib cache for task folders' features (default: $DEMOGEN_CACHE, "
                          "else ~/.cache/demogen/joblib)")
    _add_cluster_option(fit, "one model of a task folder")
    fit.set_defaults(run=cmd_fit)
    return parser


def _runs_models(args):
    """Whether the subcommand builds or runs Keras models in this process (and so imports
    TensorFlow): score, bundle, ingest (its child process does), zoo --describe, and evaluate and
    fit on feature tables do not."""
    if args.command == "zoo":
        return not args.describe
    if args.command in ("evaluate", "fit"):
        return any(os.path.isdir(source) for source in args.sources)
    return args.command in ("signature", "demo", "budget")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if _runs_models(args):
        from demogen.console import import_tensorflow
        import_tensorflow(quiet=not args.verbose)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"demogen: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndemogen: {args.command} interrupted; what was finished is kept (zoo and ingest "
              "go on from there when run again)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
