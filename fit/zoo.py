"""Train a preset's model pool into PGDL-format task directories, and extract its features.

Resumable: a model is finished once its row is in the preset's feature table or its
model_<id>/done.json exists (written last, atomically); a finished model is never trained again,
and a half-written model folder is redone. Models train in parallel processes with one thread
each, seeded: model <id> of a task is initialized and shuffled with seed int(id). Rows made
before the baseline features existed get them from the models on disk (`backfill`).
"""

import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import pathlib
import shutil
import subprocess
import time

import numpy as np
import tensorflow as tf

from demogen import EXTRACTOR_VERSION, extract_margins, pgdl
from demogen.margins import DEFAULTS
from fit import train as training
from fit.baselines import BASELINES_VERSION, baseline_columns, sampled_examples
from fit.presets import ARCHITECTURES, PRESETS

INPUT_SHAPE = (28, 28, 1)
VARIANTS = [(statistic, normalize, signed) for statistic in ("quartile", "moment")
            for normalize in (True, False) for signed in (False, True)]


def variant_prefix(statistic, normalize, signed):
    """Column prefix of a signature variant, e.g. "qrt" or "mom.unnorm.signed"."""
    return ".".join(["qrt" if statistic == "quartile" else "mom"]
                    + ([] if normalize else ["unnorm"]) + (["signed"] if signed else []))


def feature_columns(margins):
    """Every signature variant the extractor offers, as {column: value}."""
    columns = {}
    for statistic, normalize, signed in VARIANTS:
        signature = margins.signature(statistic, normalize, signed)
        prefix = variant_prefix(statistic, normalize, signed)
        columns.update({f"{prefix}.{name}": float(value)
                        for name, value in zip(signature.names, signature.values)})
    return columns


def measure(model, data):
    """What a trained model's row gets from its training data (a dataset or (inputs, labels)):
    (signature columns, with the reason in "error" when there is no signature; baseline
    columns, whenever the margins could be extracted)."""
    try:
        margins = extract_margins(model, data)
    except ValueError as error:  # e.g. training diverged: the fit stage drops such rows
        return {"layers": "", "error": str(error)}, {"baselines_version": BASELINES_VERSION}
    baselines = baseline_columns(model, margins, *sampled_examples(model, data, margins))
    try:
        return {"layers": " ".join(margins.layers), "error": "",
                **feature_columns(margins)}, baselines
    except ValueError as error:  # a layer with zero total variation (dead ReLUs)
        return {"layers": "", "error": str(error)}, baselines


def weights_digest(model):
    """SHA-256 of the model's weight values, in order (independent of the file format)."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def task_data(n_train, data_seed, noise, data_dir):
    """A task's training images, the labels its models train on, and the test set."""
    (x, y), (x_test, y_test) = training.fashion_mnist_subset(n_train, data_seed, data_dir)
    return x, training.corrupt_labels(y, noise, seed=data_seed), x_test, y_test


def _one_thread():
    """Use one thread per process (so parallel workers do not compete); only possible before
    TensorFlow has run anything in this process."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def _batches(x, y, batch_size, seed, augment):
    """Shuffled training batches; with `augment`, random shifts of up to 2 pixels and flips."""
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    if augment:
        @tf.autograph.experimental.do_not_convert  # plain TensorFlow ops: nothing to convert
        def shift_and_flip(image, label):
            padded = tf.pad(image, [[2, 2], [2, 2], [0, 0]])
            image = tf.image.random_crop(padded, INPUT_SHAPE, seed=seed)
            return tf.image.random_flip_left_right(image, seed=seed), label
        data = data.map(shift_and_flip)
    return data.batch(batch_size)


def train_model(preset, task, model_id, hparams, task_dir, data_dir=None):
    """Train one model of the pool, write it into the task folder, return its feature row."""
    _one_thread()
    start = time.perf_counter()
    x, labels, x_test, y_test = task_data(preset.n_train, preset.data_seed, preset.tasks[task],
                                          data_dir)
    seed = int(model_id)
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = ARCHITECTURES[preset.architecture](**hparams)
    model_dir = pathlib.Path(task_dir) / f"model_{model_id}"
    shutil.rmtree(model_dir, ignore_errors=True)  # a half-written model is redone
    model_dir.mkdir(parents=True)
    pgdl.write_weights_hdf5(model, model_dir / "weights_init.hdf5")
    model.compile(optimizer=tf.keras.optimizers.SGD(
        hparams.get("learning_rate", preset.learning_rate), momentum=0.9),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(_batches(x, labels, hparams.get("batch_size", preset.batch_size), seed,
                       hparams.get("augmentation", 0)), epochs=preset.epochs, shuffle=False,
              verbose=0)
    train_acc = training.accuracy(model, x, labels)
    test_acc = training.accuracy(model, x_test, y_test)
    pgdl.write_model(model_dir, model, INPUT_SHAPE)
    row = {"task": task, "model_id": model_id, "preset": preset.name, "seed": seed,
           "extractor_version": EXTRACTOR_VERSION, "n_examples": DEFAULTS["n_examples"],
           "sample_seed": DEFAULTS["seed"], "weights_digest": weights_digest(model),
           **{f"hp.{name}": value for name, value in hparams.items()},
           "train_acc": train_acc, "test_acc": test_acc, "gap": train_acc - test_acc}
    signature, baselines = measure(model, (x, labels))
    row.update(**signature, **baselines)
    row["seconds"] = round(time.perf_counter() - start, 1)
    pgdl.write_json(model_dir / "done.json", row)
    return row


def read_table(path):
    """The rows of a feature table, numbers parsed (model ids stay strings)."""
    if not pathlib.Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{key: value if key in ("task", "model_id", "preset", "weights_digest", "layers",
                                       "error") else _number(value)
                 for key, value in row.items()} for row in csv.DictReader(handle)]


def _number(text):
    if text == "":
        return float("nan")
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def write_table(path, rows):
    """Write rows (sorted by task and model id) as CSV, atomically; NaN as an empty cell, as
    read_table reads it."""
    rows = sorted(({key: "" if isinstance(value, float) and math.isnan(value) else value
                    for key, value in row.items()} for row in rows),
                  key=lambda r: (r["task"], int(r["model_id"])))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pgdl.atomic_path(path) as tmp:
        pathlib.Path(tmp).write_text(buffer.getvalue(), encoding="utf-8")


def model_configs(preset, rows):
    """The model_configs.json contents of one task, from its rows."""
    return {row["model_id"]: {
        "hparams": {name: {"current_value": row[f"hp.{name}"], "possible_values": list(values)}
                    for name, values in preset.grid.items()},
        "metrics": {"train_acc": row["train_acc"], "test_acc": row["test_acc"]}} for row in rows}


def _finished(task_dir, table_rows, task):
    """{model id: row} of the models of `task` already finished with this extractor version. A
    table row without the baseline columns counts only while its model is on disk (so that
    `backfill` can add them)."""
    done = {r["model_id"]: r for r in table_rows
            if r["task"] == task and r["extractor_version"] == EXTRACTOR_VERSION
            and (_has_baselines(r) or _model_done(task_dir, r["model_id"]))}
    for marker in pathlib.Path(task_dir).glob("model_*/done.json"):
        row = json.loads(marker.read_text())
        if row["extractor_version"] == EXTRACTOR_VERSION:
            done.setdefault(row["model_id"], row)
    return done


def _write_task_data(preset, task, task_dir, data_dir):
    """The task's training split (with its labels) and the full test set, once."""
    marker = task_dir / "dataset_1" / "complete"
    if marker.exists():
        return
    x, labels, x_test, y_test = task_data(preset.n_train, preset.data_seed, preset.tasks[task],
                                          data_dir)
    pgdl.write_dataset(task_dir / "dataset_1" / "train", x, labels, n_shards=1)
    pgdl.write_dataset(task_dir / "dataset_1" / "test", x_test, y_test, n_shards=4)
    marker.write_text("")


def _has_baselines(row):
    return row.get("baselines_version") == BASELINES_VERSION


def _model_done(task_dir, model_id):
    return (pathlib.Path(task_dir) / f"model_{model_id}" / "done.json").is_file()


def _preset(preset_name):
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset_name]


def run(preset_name, out, workers=2, features="features_cache", data_dir=None, progress=True):
    """Train every unfinished model of a preset; returns the preset's feature rows."""
    import joblib
    from tqdm import tqdm

    preset = _preset(preset_name)
    out, features = pathlib.Path(out), pathlib.Path(features)
    table = features / f"{preset.name}.csv"
    _write_manifest(preset, out, features)
    rows = {}
    jobs = []
    for task in preset.tasks:
        task_dir = out / task
        _write_task_data(preset, task, task_dir, data_dir)
        done = _finished(task_dir, read_table(table), task)
        rows.update({(task, model_id): row for model_id, row in done.items()})
        jobs += [(task, model_id, hparams) for model_id, hparams in preset.combinations()
                 if model_id not in done]

    results = joblib.Parallel(n_jobs=workers, return_as="generator_unordered")(
        joblib.delayed(train_model)(preset, task, model_id, hparams, out / task, data_dir)
        for task, model_id, hparams in jobs)
    for row in tqdm(results, total=len(jobs), desc=f"zoo {preset.name}", unit="model",
                    disable=not progress or not jobs):
        rows[(row["task"], row["model_id"])] = row
        write_table(table, rows.values())
    write_table(table, rows.values())
    for task in preset.tasks:
        configs = model_configs(preset, [r for (t, _), r in rows.items() if t == task])
        pgdl.write_model_configs(out / task, configs)
        pgdl.write_model_configs(features / preset.name / task, configs)
    return list(rows.values())


def add_baselines(preset, row, task_dir, data_dir=None):
    """`row` with the baseline columns of its model, measured on the model in `task_dir`."""
    _one_thread()
    model = pgdl.load_model(task_dir, row["model_id"])
    if weights_digest(model) != row["weights_digest"]:
        raise ValueError(f"the weights of {pathlib.Path(task_dir) / ('model_' + row['model_id'])} "
                         "are not the ones its feature row was made from (weights_digest "
                         "differs); retrain the pool into a fresh folder")
    x, labels, _, _ = task_data(preset.n_train, preset.data_seed, preset.tasks[row["task"]],
                                data_dir)
    return {**row, **measure(model, (x, labels))[1]}


def backfill(preset_name, out, workers=2, features="features_cache", data_dir=None,
             progress=True):
    """Add the baseline columns to every row of the preset's feature table that lacks them, from
    the trained models under `out`; other columns stay as they are. Resumable: the table is
    rewritten after every model. Returns the rows."""
    import joblib
    from tqdm import tqdm

    preset = _preset(preset_name)
    table = pathlib.Path(features) / f"{preset.name}.csv"
    out = pathlib.Path(out)
    rows = {(r["task"], r["model_id"]): r for r in read_table(table)}
    todo = [r for r in rows.values() if not _has_baselines(r)]
    missing = [f"{r['task']}/model_{r['model_id']}" for r in todo
               if not _model_done(out / r["task"], r["model_id"])]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} model(s) of {table} are not (completely) on disk under {out}, e.g. "
            f"{', '.join(missing[:3])}; rebuild them with `demogen zoo --preset {preset.name} "
            f"--out {out}` (retraining is deterministic)")
    results = joblib.Parallel(n_jobs=workers, return_as="generator_unordered")(
        joblib.delayed(add_baselines)(preset, row, out / row["task"], data_dir) for row in todo)
    for row in tqdm(results, total=len(todo), desc=f"baselines {preset.name}", unit="model",
                    disable=not progress or not todo):
        rows[(row["task"], row["model_id"])] = row
        write_table(table, rows.values())
    return list(rows.values())


def _write_manifest(preset, out, features):
    """What produced the pool: the preset, the seeds and the code versions. Refuses to go on
    when the committed table was made with another definition of the preset."""
    from importlib.metadata import version

    definition = json.loads(json.dumps(dataclasses.asdict(preset)))
    committed = features / preset.name / "manifest.json"
    if committed.is_file() and json.loads(committed.read_text())["preset"] != definition:
        raise ValueError(f"preset {preset.name!r} has changed since {committed} was written, so "
                         "its committed rows would mix two pools; restore the preset, or start "
                         f"a new table by deleting {features / preset.name}.csv and "
                         f"{features / preset.name}/")
    manifest = {"preset": definition,
                "seeds": {"data_subset_and_label_noise": preset.data_seed,
                          "model": "int(model_id): initialization, shuffling, augmentation",
                          "signature_sample": DEFAULTS["seed"]},
                "versions": {"demogen": version("demogen"), "git_commit": _git_commit(),
                             "extractor": EXTRACTOR_VERSION, "tensorflow": tf.__version__}}
    for folder in (out, features / preset.name):
        folder.mkdir(parents=True, exist_ok=True)
        pgdl.write_json(folder / "manifest.json", manifest)


def _git_commit():
    """The commit of the code that runs, when it runs from a git checkout (else None)."""
    run = subprocess.run(["git", "rev-parse", "HEAD"], cwd=pathlib.Path(__file__).parent,
                         capture_output=True, text=True)
    return run.stdout.strip() if run.returncode == 0 else None
