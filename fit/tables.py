"""Feature tables for the fit stage: read committed CSVs or PGDL task folders, check that they
were made the same way, and keep the models a regression can use (saying which were dropped).

A task folder's models are measured once (every feature and the baselines, as the zoo measures
its pools) and cached by joblib in the user's cache folder (`cache_dir`), keyed by the model's
files, the training data and the extractor and baseline versions.
"""

import csv
import hashlib
import io
import math
import os
import pathlib

import numpy as np
import pandas as pd

from demogen import EXTRACTOR_VERSION
from demogen.competition import pgdl
from demogen.competition.tasks import configs_candidates
from demogen.console import cache_folder
from demogen.defaults import DEFAULTS
from demogen.measure import features
from demogen_fit import baselines  # noqa: F401  (registers the ablations' baseline groups)
from demogen_fit import sources as data_sources
from demogen_fit.presets import PRESETS

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
PRIMARY_POOL = REPOSITORY / "features_cache" / "nin.csv"
CORPUS = REPOSITORY / "features_cache" / "corpus.csv"
CORPUS_LOCKBOX = REPOSITORY / "features_cache" / "corpus_lockbox.csv"
LOCKBOX2 = REPOSITORY / "features_cache" / "lockbox2.csv"


def cache_dir():
    """joblib's cache of task folders' features: $DEMOGEN_CACHE, else joblib/ in demogen's cache
    folder ($XDG_CACHE_HOME/demogen or ~/.cache/demogen), never inside the committed
    features_cache/."""
    if os.environ.get("DEMOGEN_CACHE"):
        return pathlib.Path(os.environ["DEMOGEN_CACHE"]).expanduser()
    return cache_folder() / "joblib"


SETTINGS = ("extractor_version", "n_examples", "sample_seed")
# The columns of a feature table that hold text (`source`: what read_sources adds); every other
# cell is a number, empty for NaN.
TEXT_COLUMNS = ("task", "model_id", "preset", "weights_digest", "layers", "error",
                "feature_errors", "versions", "source")
# Tables made before feature groups had versions of their own (with a features_version or
# baselines_version column, or neither: only version 1 of each ever existed) hold version "1.1"
# of every group whose columns they have.
LEGACY_VERSION = "1.1"
REFRESH = ("`demogen zoo --preset NAME --out DIR` (from the trained models there; with "
           "--remeasure where they are gone, by a checked retrain)")


def _parse(row):
    return {key: value if key in TEXT_COLUMNS else _number(value) for key, value in row.items()}


def _with_versions(rows, header):
    """Rows of a table made before the `versions` column get one (LEGACY_VERSION of every
    group with a column in the header)."""
    if "versions" in header:
        return rows
    held = " ".join(f"{g}={LEGACY_VERSION}" for g, spec in features.GROUPS.items()
                    if set(spec.names) & set(header))
    for row in rows:
        row["versions"] = held
    return rows


def _number(text):
    if text == "":
        return float("nan")
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def read_table(path):
    """The rows of a feature table as dicts, numbers parsed (an int where the cell is written as
    one, so that `write_table` writes the rows back unchanged; model ids stay strings); no rows
    when the file does not exist."""
    if not pathlib.Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return _with_versions([_parse(row) for row in reader], reader.fieldnames or ())


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


def read_csv(path):
    """One committed feature table as a DataFrame, parsed as `read_table` parses it."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no feature table {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise ValueError(f"feature table {path} is empty; write it again with demogen zoo "
                             "(or restore it with git checkout)")
        rows = _with_versions([_parse(row) for row in reader], reader.fieldnames)
    if not rows:
        raise ValueError(f"feature table {path} has a header but no rows; run demogen zoo to "
                         "fill it, or leave it out")
    table = pd.DataFrame(rows, columns=list(dict.fromkeys([*reader.fieldnames, *rows[0]])))
    missing = [c for c in ("task", "model_id", "gap", "train_acc", "test_acc", *SETTINGS)
               if c not in table.columns]
    if missing:
        raise ValueError(f"{path} is not a demogen feature table: it lacks the column(s) "
                         f"{', '.join(missing)}")
    return table.assign(source=str(path))


def file_digest(paths):
    """SHA-256 of the files' contents, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def source_digests(sources):
    """{source: SHA-256 of the file} (None for a folder): what a result records of its inputs,
    a source inside the repository by its path from the repository's root, so that a result
    committed on one machine checks on another."""
    def name(source):
        path = pathlib.Path(source).resolve()
        return path.relative_to(REPOSITORY).as_posix() if path.is_relative_to(REPOSITORY) \
            else str(source)
    return {name(s): file_digest([s]) if os.path.isfile(s) else None for s in sources}


def _model_row(task_dir, model_id, model_sha256, data_sha256, versions, measured=None):
    """The feature row of one model of a task folder: every feature and the baselines (the
    digests of its files and of the training data, and the versions, only key joblib's cache);
    `measured`, the row when a Dask worker measured it, is returned as it is (and is no key).
    A model that cannot be loaded gets its reason in "error"."""
    from demogen_fit.zoo import measure, weights_digest

    if measured is not None:
        return measured
    settings = {"extractor_version": EXTRACTOR_VERSION, "n_examples": DEFAULTS["n_examples"],
                "sample_seed": DEFAULTS["seed"]}
    try:
        model = pgdl.load_model(task_dir, model_id)
    except (ValueError, OSError) as error:
        return {**settings, "weights_digest": "", "layers": "", "feature_errors": "",
                "error": f"the model could not be loaded: {error}"}
    columns, _ = measure(model, pgdl.task_dataset(task_dir, "train"), list(features.GROUPS))
    return {**settings, "weights_digest": weights_digest(model), **columns}


def _count_examples(split_dir):
    """The number of examples in a split's TFRecord shards (NaN when it has none)."""
    import tensorflow as tf

    try:
        shards = pgdl.shard_paths(split_dir)
    except FileNotFoundError:
        return np.nan
    return int(tf.data.TFRecordDataset(shards).reduce(np.int64(0), lambda n, _: n + 1))


def read_task(task_dir, cache=None, progress=True, client=None):
    """The feature table of a PGDL task folder (its model_configs.json gives gaps and
    hyperparameters); each model is measured once (here, or on a Dask `client`'s workers, each
    model a task), then read from joblib's cache."""
    import joblib
    from tqdm import tqdm

    from demogen_fit import cluster

    task_dir = pathlib.Path(task_dir)
    configs = pgdl.read_model_configs(task_dir)
    if configs is None:
        looked = ", ".join(str(p.parent) for p in configs_candidates(task_dir))
        raise FileNotFoundError(f"{task_dir} has no model_configs.json (looked in {looked}); the "
                                "fit needs the models' train and test accuracies")
    hparams = pgdl.hparam_values(configs)
    data_sha = file_digest(pgdl.shard_paths(task_dir / "dataset_1" / "train"))
    n_test = _count_examples(task_dir / "dataset_1" / "test")
    measure = joblib.Memory(cache or cache_dir(), verbose=0).cache(_model_row,
                                                                   ignore=["measured"])
    keys = {}
    for model_id in pgdl.model_ids(task_dir):
        if model_id not in configs:
            raise ValueError(f"model_{model_id} of {task_dir} has no entry in model_configs.json")
        model_files = [task_dir / f"model_{model_id}" / name
                       for name in ("config.json", "weights.hdf5")]
        keys[model_id] = (str(task_dir.resolve()), model_id, file_digest(model_files), data_sha,
                          (EXTRACTOR_VERSION, versions_text(features.GROUPS)))
    measured = {}
    todo = [m for m, key in keys.items() if not measure.check_call_in_cache(*key)] \
        if client is not None else []
    if todo:
        with cluster.pool(client=client) as pool:
            futures = {pool.submit(_model_row, *keys[m]): m for m in todo}
            for future in tqdm(pool.as_completed(futures), total=len(todo),
                               desc=f"features {task_dir.name}", unit="model",
                               disable=not progress):
                measured[futures[future]] = future.result()
    rows = []
    for model_id in tqdm(keys, desc=f"features {task_dir.name}", unit="model",
                         disable=not progress or bool(measured)):
        metrics = configs[model_id]["metrics"]
        rows.append({"task": task_dir.name, "model_id": model_id, "preset": "",
                     **measure(*keys[model_id], measured=measured.get(model_id)),
                     **{f"hp.{k}": v for k, v in hparams[model_id].items()},
                     "train_acc": metrics["train_acc"], "test_acc": metrics["test_acc"],
                     "gap": metrics["train_acc"] - metrics["test_acc"], "n_test": n_test})
    return pd.DataFrame(rows).assign(source=str(task_dir))


def read_sources(sources=(), cache=None, progress=True, client=None):
    """One table from feature CSVs and PGDL task folders (default: the primary reference pool;
    a folder's models measured here or on a Dask `client`'s workers); refuses tables made with
    different extractor versions or settings."""
    sources = list(sources) or [PRIMARY_POOL]
    frames = []
    for source in sources:
        path = pathlib.Path(source)
        if path.is_dir():
            frames.append(read_task(path, cache, progress, client))
        elif path.suffix == ".csv" or path.is_file():
            frames.append(read_csv(path))
        else:
            raise FileNotFoundError(f"{source} is neither a feature table (.csv) nor a PGDL task "
                                    "folder")
    table = pd.concat(frames, ignore_index=True).copy()  # one block per dtype: no fragmentation
    table["error"] = table["error"].fillna("")
    duplicated = table.duplicated(["task", "model_id"])
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise ValueError(f"model {first['task']}/{first['model_id']} appears twice; give each "
                         "pool once")
    check_settings(table)
    specs = [_preset_task(p, t) for p, t in zip(table["preset"], table["task"])]
    table = table.assign(label_noise=[s.label_noise if s else np.nan for s in specs])
    known = [data_sources.n_test(s.source, s.n_train) if s else np.nan for s in specs]
    return table.assign(n_test=table["n_test"].fillna(pd.Series(known, index=table.index))
                        if "n_test" in table else known)


def _preset_task(preset, task):
    """The preset's definition of a task (None for a task folder or an unknown task)."""
    known = {t.name: t for t in PRESETS[preset].tasks} if preset in PRESETS else {}
    return known.get(task)


def versions_text(groups):
    """The `versions` cell of a row that holds these groups: "group=version ..."."""
    return " ".join(f"{group}={features.version(group)}" for group in groups)


def parse_versions(text):
    """{group: version} of a `versions` cell."""
    return dict(item.split("=", 1) for item in str(text).split()) if text else {}


def check_settings(table):
    """Refuse a table whose rows were made with different extractor versions or settings, or
    hold different versions of one feature group."""
    measured = table[table["error"] == ""]
    for column in [c for c in SETTINGS if c in table.columns]:
        values = sorted(set(measured[column].dropna()))
        if len(values) > 1:
            by_source = measured.groupby("source")[column].unique().to_dict()
            raise ValueError(f"the tables mix {column} values {values} ({by_source}); features "
                             "made with different settings are not comparable: rebuild the old "
                             "table (demogen zoo) or fit them separately")
    if len(measured) and measured["extractor_version"].iloc[0] != EXTRACTOR_VERSION:
        raise ValueError(f"the tables were made by extractor version "
                         f"{measured['extractor_version'].iloc[0]}, this demogen is version "
                         f"{EXTRACTOR_VERSION}; rebuild them with demogen zoo")
    seen = {}
    for text in measured["versions"] if "versions" in measured else ():
        for group, value in parse_versions(text).items():
            seen.setdefault(group, set()).add(value)
    mixed = {group: sorted(values) for group, values in seen.items() if len(values) > 1}
    if mixed:
        raise ValueError("the tables mix versions of the feature groups " + ", ".join(
            f"{group} ({', '.join(values)})" for group, values in mixed.items())
            + f"; refresh the old rows with {REFRESH}, or fit the tables separately")


def table_versions(table, groups):
    """{group: version} of the given groups in the table's measured rows, which must be this
    demogen's (a table without a `versions` column, built by hand, is taken as measured by
    it)."""
    if "versions" not in table:
        return features.versions(groups)
    held = {}
    for text in table.loc[table["error"] == "", "versions"]:
        held.update(parse_versions(text))
    missing = [g for g in groups if g not in held]
    if missing:
        raise ValueError(f"the tables hold no features of the group(s) {', '.join(missing)}; "
                         f"add them with {REFRESH}")
    stale = {g: held[g] for g in groups if held[g] != features.version(g)}
    if stale:
        raise ValueError("the tables hold " + ", ".join(
            f"{g} version {v} (this demogen computes {features.version(g)})"
            for g, v in stale.items()) + f"; refresh them with {REFRESH}")
    return {g: held[g] for g in groups}


def usable(table, columns, transform="log"):
    """The rows whose `columns` a regression can use, and the dropped ones with the reason:
    rows marked with an error, with a missing gap or feature value, or (log transform) a value
    <= 0. No usable row at all is an error that says why the first rows were dropped."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {', '.join(missing[:5])}; rebuild it with "
                         "this demogen (demogen zoo) to get them")
    values = table[list(columns)].to_numpy(dtype=float)
    reasons = np.where(table["error"] != "", "no signature: " + table["error"].astype(str), "")
    reasons = np.where((reasons == "") & ~np.isfinite(table["gap"].to_numpy(dtype=float)),
                       "missing (NaN) gap", reasons)
    reasons = np.where((reasons == "") & ~np.isfinite(values).all(axis=1),
                       "missing (NaN) feature value", reasons)
    if transform == "log":
        reasons = np.where((reasons == "") & (values <= 0).any(axis=1),
                           "a feature <= 0 under the log transform", reasons)
    keep = reasons == ""
    dropped = [{"task": t, "model_id": m, "reason": r} for t, m, r in
               zip(table["task"][~keep], table["model_id"][~keep], reasons[~keep])]
    if not keep.any():
        shown = "; ".join(f"{d['task']}/{d['model_id']}: {d['reason']}" for d in dropped[:3])
        raise ValueError(f"no usable model among {len(table)} (e.g. {shown}); check the sources "
                         "given to the fit")
    return table[keep].reset_index(drop=True), dropped


def hparam_columns(table):
    """The hyperparameter columns of the table (hp.*)."""
    return [c for c in table.columns if c.startswith("hp.")]


def configuration_groups(table):
    """A label per row that is shared by models differing only by their seed (same task, same
    hyperparameters but hp.seed): the grouped k-fold keeps each group in one fold. Pools with
    different hyperparameters mix: a hyperparameter a pool does not have is empty there."""
    columns = ["task"] + [c for c in hparam_columns(table) if c != "hp.seed"]
    cells = table[columns].astype(object).where(table[columns].notna(), "")
    return cells.astype(str).agg("|".join, axis=1).to_numpy()
