"""Score a folder of <task>.predict files against the tasks' true gaps, as the competition did:
CMI x 100, plus Kendall's tau-b and the granulated Kendall coefficient Psi."""

import math
import pathlib

from demogen.competition import pgdl, scoring
from demogen.competition.tasks import find_tasks

def read_predictions(path, task, ids):
    """[prediction per model id] from one .predict file; refuses missing, EXCEEDED, failed or
    non-numeric entries and predictions of models the grid does not have."""
    if not path.is_file():
        raise FileNotFoundError(f"task {task}: no predictions file {path}")
    predictions = pgdl.read_json(path, f"rerun demogen ingest to write task {task}'s "
                                       "predictions again")
    if not isinstance(predictions, dict):
        raise ValueError(f"task {task}: {path} is not a JSON object {{\"model_<id>\": value}}")
    extra = sorted(set(predictions) - {f"model_{i}" for i in ids})
    if extra:
        raise ValueError(f"task {task}: {path.name} has predictions for {', '.join(extra[:5])}, "
                         "which model_configs.json does not list")
    values = []
    for model_id in ids:
        key = f"model_{model_id}"
        value = predictions.get(key)
        if value == "EXCEEDED":
            raise ValueError(f"task {task}, {key}: EXCEEDED the time budget (the competition "
                             "scores a submission with any EXCEEDED as 0)")
        if isinstance(value, str) and value.startswith("FAILED"):
            raise ValueError(f"task {task}, {key}: the submission failed on this model: "
                             f"{value.removeprefix('FAILED: ')}")
        if value is None:
            raise ValueError(f"task {task}, {key}: no prediction in {path}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not math.isfinite(value):
            raise ValueError(f"task {task}, {key}: prediction {value!r} is not a finite number")
        values.append(float(value))
    return values


def score_task(predictions, configs, hparams):
    """scoring.score_task of one task's predictions against the gaps of its model_configs.json
    (`hparams` as pgdl.hparam_values(configs) gives them, in the predictions' order)."""
    ids = list(hparams)
    gaps = [configs[i]["metrics"]["train_acc"] - configs[i]["metrics"]["test_acc"] for i in ids]
    return scoring.score_task(predictions, gaps, [hparams[i] for i in ids])


def reference_tasks(tasks_dir, reference=None):
    """(task, its folder, its model_configs.json, its hyperparameters as pgdl.hparam_values
    gives them) for every task of `tasks_dir` (configs from `reference` where given)."""
    for task, folder, configs_path in find_tasks(tasks_dir, reference):
        configs = pgdl.read_json(configs_path)
        try:
            hparams = pgdl.hparam_values(configs)
        except ValueError as error:
            raise ValueError(f"task {task} ({configs_path}): {error}") from None
        yield task, folder, configs, hparams


def score_predictions(predictions_dir, tasks_dir, reference=None):
    """{"tasks": {task: score_task(...)}, "mean": scoring.mean_scores of them (an undefined
    score counts as 0 in the mean)}."""
    results = {}
    for task, _, configs, hparams in reference_tasks(tasks_dir, reference):
        values = read_predictions(pathlib.Path(predictions_dir) / f"{task}.predict", task,
                                  list(hparams))
        results[task] = score_task(values, configs, hparams)
    return {"tasks": results, "mean": scoring.mean_scores(results)}
