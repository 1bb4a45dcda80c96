"""Train a preset's tasks into PGDL-format task folders, and measure every model once.

Resumable: a model is finished once its row is in the preset's feature table (with the current
extractor version, and its side file where the preset keeps them) or its model_<id>/done.json
exists (written last, atomically); a finished model is never trained again, and a half-written
model folder is redone. Every model trains in a worker process with one thread (also with one
worker), seeded: model <id> of a task is initialized, shuffled and augmented with seed int(id),
with TensorFlow's op determinism on, so a retrain gives the same weights whatever the number of
workers. Every row records the version of each feature group it holds (`versions`); rows that
lack a group the preset measures, or hold an old version of one, get it from the model on disk
(`backfill`) or, with `remeasure`, from a deterministic retrain whose weights digest must equal
the row's (the weights are dropped afterwards). TensorFlow (with the architectures and
training) is imported by the functions that build or measure a model, so that `describe` runs
without it.
"""

import functools
import hashlib
import json
import math
import pathlib
import shutil
import subprocess
import time

import numpy as np

from demogen import EXTRACTOR_VERSION
from demogen.competition import pgdl
from demogen.defaults import DEFAULTS
from demogen.measure import features
from demogen_fit import baselines, cluster, sidefiles, sources
from demogen_fit.presets import PRESETS
from demogen_fit.tables import parse_versions, read_table, versions_text, write_table

MANIFEST = "zoo_manifest.json"  # inside each task folder: the competition's ingestion skips it


def weights_digest(model):
    """SHA-256 of the model's weight values, in order (independent of the file format)."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
    return digest.hexdigest()


def task_data(task, data_dir=None):
    """A task's training inputs, the labels its models train on, and the test set."""
    return _data(task.source, task.n_train, task.data_seed, task.label_noise, data_dir)


@functools.lru_cache(maxsize=4)
def _data(source, n_train, seed, label_noise, data_dir):
    from demogen_fit import train as training

    x, y, x_test, y_test = sources.load(source, n_train, seed, data_dir)
    return x, training.corrupt_labels(y, label_noise, seed=seed), x_test, y_test


def preset_groups(preset):
    """The feature groups a preset's rows hold: every shipped group, and the ablations'
    baselines where the preset measures them."""
    return [g for g, spec in features.GROUPS.items()
            if spec.shipped or (preset.baselines and g in baselines.BASELINE_GROUPS)]


def measure(model, data, groups):
    """The feature columns of a trained model measured on its training data (a dataset or
    (inputs, labels)) for the given groups, and its Measurement (None when the margins cannot be
    extracted, e.g. NaN weights; the reason is then in "error"). Columns: layers, error,
    feature_errors (groups that could not be computed, with the reason), versions (of the
    groups) and the groups' features."""
    producers = features.producers_of(groups)
    versions = versions_text(groups)
    try:
        measurement = features.measure(model, data, producers,
                                       tolerate=[p for p in producers if p != features.MARGINS])
    except (ValueError, np.linalg.LinAlgError) as error:
        return {"layers": "", "error": str(error), "feature_errors": "",
                "versions": versions}, None
    values, errors = features.compute(measurement, groups)
    margins = measurement.margins
    return {"layers": " ".join(margins.layers) if margins is not None else "", "error": "",
            "feature_errors": "; ".join(f"{group}: {reason}" for group, reason in
                                        errors.items()),
            "versions": versions, **values}, measurement


def missing_groups(row, groups):
    """The groups that a row lacks or holds in another version than this demogen's."""
    held = parse_versions(row.get("versions", ""))
    return [g for g in groups if held.get(g) != features.version(g)]


def _one_thread():
    """Use one thread in this process (so parallel workers do not compete, and every model is
    computed the same way); only possible before TensorFlow has run anything in it."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


class DigestMismatch(ValueError):
    """A retrained model whose weights differ from the ones its feature row was made from."""


def train_model(preset, task, model_id, hparams, task_dir, data_dir=None, expected_digest=None,
                replace_differing=False):
    """Train one model, write it into the task folder, return its feature row and what its side
    file holds (the arguments of sidefiles.write after the path, None when the task keeps no
    side files), for the caller to write. With `expected_digest` (a re-measure) the retrained
    weights must have that digest, else DigestMismatch is raised (with `replace_differing` the
    retrained model is measured instead and its row, of another model, replaces the old one);
    the model folder (its weights) is then removed, since the row is all that is kept."""
    import tensorflow as tf

    from demogen_fit import train as training
    from demogen_fit.architectures import ARCHITECTURES

    _one_thread()
    start = time.perf_counter()
    x, labels, x_test, y_test = task_data(task, data_dir)
    seed = int(model_id)
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = ARCHITECTURES[task.architecture](task.input_shape,
                                             **task.architecture_arguments(hparams))
    model_dir = pathlib.Path(task_dir) / f"model_{model_id}"
    shutil.rmtree(model_dir, ignore_errors=True)  # a half-written model is redone
    model_dir.mkdir(parents=True)
    pgdl.write_weights_hdf5(model, model_dir / "weights_init.hdf5")
    history = training.fit_to_data(model, x, labels, epochs=task.epochs, stop_at=task.stop_at,
                                   seed=seed, **task.training(hparams))
    digest = weights_digest(model)
    if expected_digest is not None and digest != expected_digest and not replace_differing:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise DigestMismatch(
            f"{task.name}/model_{model_id}: the retrained weights have digest {digest[:12]}..., "
            f"the row's are {expected_digest[:12]}... (another TensorFlow build or training "
            "code than the one that trained the pool); the row is kept as it was")
    train_correct = training.scores(model, x).argmax(axis=1) == labels
    test_correct = training.scores(model, x_test).argmax(axis=1) == y_test
    train_acc, test_acc = float(train_correct.mean()), float(test_correct.mean())
    pgdl.write_model(model_dir, model, task.input_shape)
    row = {"task": task.name, "model_id": model_id, "preset": preset.name, "seed": seed,
           "extractor_version": EXTRACTOR_VERSION, "n_examples": DEFAULTS["n_examples"],
           "sample_seed": DEFAULTS["seed"], "weights_digest": digest,
           **{f"hp.{name}": value for name, value in hparams.items()},
           "train_acc": train_acc, "test_acc": test_acc, "gap": train_acc - test_acc,
           **_training_metrics(task, history)}
    columns, measurement = measure(model, (x, labels), preset_groups(preset))
    if history.diverged:
        columns["error"] = f"training diverged: {history.diverged}"
    row.update(columns)
    side = (measurement, test_correct, train_correct, history) if task.stop_at is not None \
        else None
    row["seconds"] = round(time.perf_counter() - start, 1)
    if expected_digest is not None:
        shutil.rmtree(model_dir)
    else:
        pgdl.write_json(model_dir / "done.json", row)
    return row, side


def _training_metrics(task, history):
    """What a stopping-rule task records of training (under metrics, never hparams)."""
    if task.stop_at is None:
        return {}
    return {"epochs": history.epochs, "reached_stop": int(history.reached),
            "train_cross_entropy": history.cross_entropy[-1] if history.cross_entropy
            else float("nan")}


def model_configs(task, rows):
    """The model_configs.json contents of one task, from its rows."""
    metrics = ("train_acc", "test_acc") + (("epochs", "reached_stop", "train_cross_entropy")
                                           if task.stop_at is not None else ())
    return {row["model_id"]: {
        "hparams": {name: {"current_value": row[f"hp.{name}"], "possible_values": list(values)}
                    for name, values in task.grid.items()},
        "metrics": {name: _plain(row[name]) for name in metrics}} for row in rows}


def _plain(value):
    """A JSON-ready metric: NaN as None, numpy scalars as Python numbers."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _finished(preset, task, task_dir, table_rows, features_dir, remeasure=False):
    """{model id: row} of the models of `task` already finished with this extractor version;
    when re-measuring, a row that lacks a group of the preset (or holds an old version of one)
    is not finished. A row without its side file (when the task keeps them) never is."""
    groups = preset_groups(preset)

    def kept(row):
        side = task.stop_at is None or sidefiles.path(features_dir, preset.name, task.name,
                                                      row["model_id"]).is_file()
        return side and not (remeasure and missing_groups(row, groups))

    done = {r["model_id"]: r for r in table_rows
            if r["task"] == task.name and r["extractor_version"] == EXTRACTOR_VERSION and kept(r)}
    for marker in pathlib.Path(task_dir).glob("model_*/done.json"):
        row = json.loads(marker.read_text())
        if row["extractor_version"] == EXTRACTOR_VERSION and kept(row):
            done.setdefault(row["model_id"], row)
    return done


def _write_task_data(task, task_dir, data_dir):
    """The task's training split (with its labels) and its test set, once."""
    marker = task_dir / "dataset_1" / "complete"
    if marker.exists():
        return
    x, labels, x_test, y_test = task_data(task, data_dir)
    pgdl.write_dataset(task_dir / "dataset_1" / "train", x, labels, n_shards=1)
    pgdl.write_dataset(task_dir / "dataset_1" / "test", x_test, y_test, n_shards=4)
    marker.write_text("")


def _model_done(task_dir, model_id):
    return (pathlib.Path(task_dir) / f"model_{model_id}" / "done.json").is_file()


def _preset(preset_name):
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset_name]


def _tasks(preset, names):
    """The preset's tasks named (all when `names` is empty); an unknown name lists the valid
    ones."""
    return [preset.task(name) for name in names] if names else list(preset.tasks)


def features_folder(preset_name, out=None):
    """Where a preset's feature table, side files and model_configs.json go unless named: for a
    committed pool features_cache/ in the current folder, for a scratch preset <out>/features
    (beside its task folders), so that trying one writes nothing into a checkout."""
    preset = _preset(preset_name)
    if not preset.scratch:
        return pathlib.Path("features_cache")
    if out is None:
        raise ValueError(f"{preset.name} is a scratch preset, whose table is in DIR/features "
                         "beside its task folders: pass --out DIR (or --features)")
    return pathlib.Path(out) / "features"


def run(preset_name, out, workers=2, features=None, data_dir=None, progress=True, tasks=(),
        client=None):
    """Train every unfinished model of a preset (or of its tasks named in `tasks`), in `workers`
    processes or on a Dask `client`'s workers (demogen_fit.cluster); returns the rows of the
    preset's feature table (in `features`, by default `features_folder`)."""
    return _train(preset_name, out, workers, features, data_dir, progress, tasks, client)[0]


def remeasure(preset_name, out, workers=2, features=None, data_dir=None, progress=True,
              tasks=(), replace_differing=False, client=None):
    """Re-measure the rows of a preset's table that lack a feature group of this demogen (or
    hold an old version of one) and whose models are gone: each is retrained into `out` (a
    scratch folder) with the committed preset, its weights digest checked against the row's,
    measured, its row and side file written, and its weights removed; resumable row by row.
    Returns (rows, mismatches): a retrain whose digest differs (training is bit for bit only on
    the same CPU and TensorFlow build) leaves its row as it was and is listed with the reason;
    with `replace_differing` its row is replaced by the retrained model's (another model, with
    its own gap) and listed."""
    return _train(preset_name, out, workers, features, data_dir, progress, tasks, client,
                  remeasure=True, replace_differing=replace_differing)


def retrain_agreement(old_rows, new_rows):
    """{task: {"models", "replaced", "kendall_tau", "mean_abs_gap_change"}} for every task of
    which some row was replaced by a retrain with other weights: how the new rows' gaps rank
    against the old ones' (Kendall tau-b over the models both measured) and how far they moved,
    the noise a retrain on another TensorFlow build adds to a task's gaps."""
    from scipy.stats import kendalltau

    old = {(r["task"], r["model_id"]): r for r in old_rows}
    out = {}
    for task in dict.fromkeys(r["task"] for r in new_rows):
        pairs = [(old[key], r) for r in new_rows
                 if r["task"] == task and (key := (task, r["model_id"])) in old]
        replaced = sum(a["weights_digest"] != b["weights_digest"] for a, b in pairs)
        pairs = [(a["gap"], b["gap"]) for a, b in pairs
                 if all(isinstance(g, float) and math.isfinite(g) for g in (a["gap"], b["gap"]))]
        if replaced and pairs:
            before, after = np.array(pairs).T
            out[task] = {"models": len(pairs), "replaced": replaced,
                         "kendall_tau": float(kendalltau(before, after).statistic),
                         "mean_abs_gap_change": float(np.mean(np.abs(after - before)))}
    return out


def _train(preset_name, out, workers, features, data_dir, progress, tasks, client,
           remeasure=False, replace_differing=False):
    from tqdm import tqdm

    preset = _preset(preset_name)
    chosen = _tasks(preset, tasks)
    for source in sorted({task.source for task in chosen}):
        sources.check(source, data_dir)
    out = pathlib.Path(out).resolve()  # the workers' path to it, wherever they run
    features = pathlib.Path(features or features_folder(preset.name, out))
    table = features / f"{preset.name}.csv"
    _write_manifests(preset, chosen, out, features)
    table_rows = read_table(table)
    rows = {(r["task"], r["model_id"]): r for r in table_rows}
    jobs = []
    for task in chosen:
        task_dir = out / task.name
        _write_task_data(task, task_dir, data_dir)
        done = _finished(preset, task, task_dir, table_rows, features, remeasure)
        rows.update({(task.name, model_id): row for model_id, row in done.items()})
        jobs += [(task, model_id, hparams) for model_id, hparams in task.combinations()
                 if model_id not in done]
    for task in chosen:
        _write_configs_when_complete(task, rows, out, features, preset)
    mismatches = []
    if jobs:
        with cluster.pool(workers, client) as pool:
            futures = [pool.submit(
                train_model, preset, task, model_id, hparams, out / task.name, data_dir,
                rows[(task.name, model_id)]["weights_digest"]
                if remeasure and (task.name, model_id) in rows else None, replace_differing)
                for task, model_id, hparams in jobs]
            for future in tqdm(pool.as_completed(futures), total=len(jobs),
                               desc=f"zoo {preset.name}", unit="model", disable=not progress):
                try:
                    row, side = future.result()
                except DigestMismatch as error:
                    mismatches.append(str(error))
                    tqdm.write(f"demogen: {error}")
                    continue
                old = rows.get((row["task"], row["model_id"]))
                if remeasure and old and old["weights_digest"] != row["weights_digest"]:
                    mismatches.append(f"{row['task']}/model_{row['model_id']}: retrained with "
                                      "other weights; its row is now the retrained model's")
                if side is not None:  # before the row: a kept row always has its side file
                    sidefiles.write(sidefiles.path(features, preset.name, row["task"],
                                                   row["model_id"]), *side)
                rows[(row["task"], row["model_id"])] = row
                write_table(table, rows.values())
                _write_configs_when_complete(preset.task(row["task"]), rows, out, features,
                                             preset)
    write_table(table, rows.values())
    return list(rows.values()), mismatches


def _write_configs_when_complete(task, rows, out, features, preset):
    """Write the task's model_configs.json (in its folder and under features/) once every model
    of its grid has a row."""
    task_rows = [r for (name, _), r in rows.items() if name == task.name]
    if len(task_rows) == task.n_models:
        configs = model_configs(task, task_rows)
        pgdl.write_model_configs(out / task.name, configs)
        pgdl.write_model_configs(features / preset.name / task.name, configs)


def _from_side_file(preset, row, groups, features_dir):
    """The side file's measurement when it holds every producer these groups need (so they are
    computed from it without the model), else None."""
    side = sidefiles.path(features_dir, preset.name, row["task"], row["model_id"])
    if preset.task(row["task"]).stop_at is None or not side.is_file():
        return None
    measurement, _ = sidefiles.read(side)
    return measurement if all(p in measurement for p in features.producers_of(groups)) else None


def add_groups(preset, row, task_dir, groups, features_dir, data_dir=None):
    """`row` with the given feature groups computed from its side file where it holds their
    producers, else measured on its model in `task_dir` (whose weights digest must be the
    row's); and the Measurement when they were measured on the model (for the caller to add to
    the side file, where it keeps one: sidefiles.add), else None."""
    task = preset.task(row["task"])
    measurement = _from_side_file(preset, row, groups, features_dir)
    new = None
    if measurement is not None:
        values, errors = features.compute(measurement, groups)
        columns = {"feature_errors": "; ".join(f"{g}: {r}" for g, r in errors.items()),
                   "versions": versions_text(groups), **values}
    else:
        _one_thread()
        model = pgdl.load_model(task_dir, row["model_id"])
        if weights_digest(model) != row["weights_digest"]:
            folder = pathlib.Path(task_dir) / f"model_{row['model_id']}"
            raise ValueError(f"the weights of {folder} are not the ones its feature row was made "
                             "from (weights_digest differs); retrain the pool into a fresh folder")
        x, labels, _, _ = task_data(task, data_dir)
        columns, measurement = measure(model, (x, labels), groups)
        if columns.pop("error"):
            raise ValueError(f"{task.name}/model_{row['model_id']}: its margins cannot be "
                             "measured again, though its row holds them")
        columns.pop("layers")
        new = measurement
    held = {**parse_versions(row.get("versions", "")), **parse_versions(columns.pop("versions"))}
    errors = "; ".join(filter(None, [row.get("feature_errors", ""), columns.pop("feature_errors")]))
    return {**row, **columns, "feature_errors": errors,
            "versions": " ".join(f"{g}={v}" for g, v in held.items())}, new


def backfill(preset_name, out, workers=2, features=None, data_dir=None, progress=True,
             groups=None, client=None):
    """Add the feature groups a row lacks (default: any of the preset's; or holds in an old
    version) to every row of the preset's feature table: from its side file where that holds
    the groups' producers (a new version of a group of a kept producer), else from the trained
    model under `out` (its weights digest checked); other columns stay as they are. A row with
    neither is an error that says to re-measure (`remeasure` retrains it). Resumable: the table
    is rewritten after every model; the models are measured in `workers` processes or on a
    Dask `client`'s workers. Returns the rows."""
    from tqdm import tqdm

    preset = _preset(preset_name)
    groups = list(groups) if groups else preset_groups(preset)
    features = pathlib.Path(features or features_folder(preset.name, out))
    table = features / f"{preset.name}.csv"
    out = pathlib.Path(out).resolve()
    rows = {(r["task"], r["model_id"]): r for r in read_table(table)}
    todo = [(r, missing_groups(r, groups)) for r in rows.values()]
    todo = [(r, missing) for r, missing in todo if missing and not r["error"]]
    on_side = [_from_side_file(preset, r, missing, features) is not None for r, missing in todo]
    kept = [item for item, side in zip(todo, on_side) if side]
    todo = [item for item, side in zip(todo, on_side) if not side]
    for row, missing in kept:  # numpy on the side file: here, without a worker
        row, _ = add_groups(preset, row, out / row["task"], missing, features, data_dir)
        rows[(row["task"], row["model_id"])] = row
    if kept:
        write_table(table, rows.values())
    absent = [f"{r['task']}/model_{r['model_id']}" for r, _ in todo
              if not _model_done(out / r["task"], r["model_id"])]
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} model(s) of {table} lack feature groups and are not (completely) on "
            f"disk under {out}, e.g. {', '.join(absent[:3])}; re-measure them with `demogen zoo "
            f"--preset {preset.name} --out SCRATCH --remeasure` (retraining is deterministic)")
    if todo:
        with cluster.pool(workers, client) as pool:
            futures = [pool.submit(add_groups, preset, row, out / row["task"], missing,
                                   features.resolve(), data_dir) for row, missing in todo]
            for future in tqdm(pool.as_completed(futures), total=len(todo),
                               desc=f"backfill {preset.name}", unit="model",
                               disable=not progress):
                row, measurement = future.result()
                side = sidefiles.path(features, preset.name, row["task"], row["model_id"])
                if measurement is not None and side.is_file():
                    sidefiles.add(side, measurement)
                rows[(row["task"], row["model_id"])] = row
                write_table(table, rows.values())
    return list(rows.values())


def forward_macs(model):
    """Multiply-adds of one forward pass of one example through the model's kernels."""
    total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            positions = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 \
                else 1
            total += int(np.prod(kernel.shape)) * positions
    return total


def extremes(task):
    """The (fastest, slowest) configurations of a task: by forward multiply-adds, then by the
    settings that make an epoch longer or training need more of them (a smaller batch, a
    smaller learning rate, augmentation, more dropout and weight decay)."""
    from demogen_fit.architectures import ARCHITECTURES

    def cost(item):
        _, hparams = item
        model = ARCHITECTURES[task.architecture](task.input_shape,
                                                 **task.architecture_arguments(hparams))
        training = task.training(hparams)
        return (forward_macs(model), -training["batch_size"], -training["learning_rate"],
                training["augment"] is not None, hparams.get("dropout", 0),
                hparams.get("weight_decay", 0))
    ranked = sorted(task.combinations(), key=cost)
    return ranked[0], ranked[-1]


def describe(preset_name, features=None):
    """Per task of a preset, from its committed table: models measured of the grid, the share
    that met the stopping rule and that reached 0.95 train accuracy, the train accuracy and gap
    ranges, the standard error of a gap from the test-set size (sqrt(p (1 - p) / n_test) at the
    mean test accuracy), the gaps' standard deviation over it, and hours of one worker."""
    preset = _preset(preset_name)
    features = pathlib.Path(features or features_folder(preset.name))
    rows = read_table(features / f"{preset.name}.csv")
    out = []
    for task in preset.tasks:
        own = [r for r in rows if r["task"] == task.name]
        if not own:
            continue
        train = np.array([r["train_acc"] for r in own])
        test = np.array([r["test_acc"] for r in own])
        gap = train - test
        se = float(np.sqrt(np.mean(test * (1 - test)) / sources.n_test(task.source,
                                                                          task.n_train)))
        out.append({"task": task.name, "models": f"{len(own)}/{task.n_models}",
                    "fitted": float(np.mean([r.get("reached_stop") == 1 for r in own])),
                    "train>=0.95": float(np.mean(train >= 0.95)),
                    "train acc": f"{train.min():.3f}-{train.max():.3f}",
                    "gap": f"{gap.min():.3f}-{gap.max():.3f}", "gap se": se,
                    "spread/se": float(gap.std() / se),
                    "hours": sum(r.get("seconds") or 0 for r in own) / 3600})
    return out


def pilot(preset_name, out, workers=2, data_dir=None, tasks=(), progress=True, client=None):
    """Train the fastest and the slowest configuration of every task (`extremes`) into `out`,
    a scratch folder (nothing is added to any feature table), in `workers` processes or on a
    Dask `client`'s workers, and return one row per model with its seconds, epochs and
    accuracies, and per task the projected cost of its whole grid (the mean of the two times the
    number of models, in seconds of one worker)."""
    from tqdm import tqdm

    preset = _preset(preset_name)
    chosen = _tasks(preset, tasks)
    for source in sorted({task.source for task in chosen}):
        sources.check(source, data_dir)
    out = pathlib.Path(out).resolve()
    jobs = [(task, which, model_id, hparams) for task in chosen
            for which, (model_id, hparams) in zip(("fastest", "slowest"), extremes(task))]
    results = []
    with cluster.pool(workers, client) as pool:
        futures = {pool.submit(train_model, preset, task, model_id, hparams, out / task.name,
                               data_dir): (task, which)
                   for task, which, model_id, hparams in jobs}
        for future in tqdm(pool.as_completed(futures), total=len(futures),
                           desc=f"pilot {preset.name}", unit="model", disable=not progress):
            task, which = futures[future]
            row, _ = future.result()
            results.append({"task": task.name, "which": which, "model_id": row["model_id"],
                            **{k: v for k, v in row.items() if k.startswith("hp.")},
                            **{k: row.get(k) for k in ("seconds", "epochs", "reached_stop",
                                                       "train_acc", "test_acc", "gap",
                                                       "error")}})
    for task in chosen:
        times = [r["seconds"] for r in results if r["task"] == task.name]
        for r in results:
            if r["task"] == task.name:
                r["projected_task_seconds"] = float(np.mean(times)) * task.n_models
    return sorted(results, key=lambda r: (r["task"], r["which"]))


def _manifest(preset, task):
    from importlib.metadata import version

    import tensorflow as tf

    return {"preset": preset.name, "task": task.definition(),
            "seeds": {"data_subset_and_label_noise": task.data_seed,
                      "model": "int(model_id): initialization, shuffling, augmentation",
                      "signature_sample": DEFAULTS["seed"]},
            "versions": {"demogen": version("demogen"), "git_commit": _git_commit(),
                         "extractor": EXTRACTOR_VERSION, "tensorflow": tf.__version__}}


def _write_manifests(preset, tasks, out, features):
    """What produced each task: its definition, the seeds and the code versions, in the task
    folder (as zoo_manifest.json) and in the committed features/<preset>/manifest.json. Refuses
    to go on when a task's committed definition differs (its rows would mix two pools)."""
    committed_path = features / preset.name / "manifest.json"
    committed = json.loads(committed_path.read_text()) if committed_path.is_file() else {}
    for task in tasks:
        known = committed.get("tasks", {}).get(task.name)
        if known is not None and not task.same_definition(known["task"]):
            raise ValueError(
                f"task {task.name!r} of preset {preset.name!r} has changed since "
                f"{committed_path} was written, so its committed rows would mix two pools; "
                f"restore the task's definition, or start it anew by deleting its rows from "
                f"{features / preset.name}.csv, its folder {features / preset.name / task.name} "
                f"and its entry in {committed_path}")
    stale = out / "manifest.json"  # where older demogen versions wrote one for all tasks
    manifests = {task.name: _manifest(preset, task) for task in tasks}
    for task in tasks:
        (out / task.name).mkdir(parents=True, exist_ok=True)
        pgdl.write_json(out / task.name / MANIFEST, manifests[task.name])
    stale.unlink(missing_ok=True)
    # a task's committed entry records what first produced its rows, and stays
    tasks_known = {**{name: {k: v for k, v in m.items() if k != "preset"}
                      for name, m in manifests.items()}, **committed.get("tasks", {})}
    committed_path.parent.mkdir(parents=True, exist_ok=True)
    pgdl.write_json(committed_path, {"preset": preset.name, "description": preset.description,
                                     "tasks": dict(sorted(tasks_known.items()))})


def _git_commit():
    """The commit of the code that runs, when it runs from a git checkout (else None)."""
    run = subprocess.run(["git", "rev-parse", "HEAD"], cwd=pathlib.Path(__file__).parent,
                         capture_output=True, text=True)
    return run.stdout.strip() if run.returncode == 0 else None
