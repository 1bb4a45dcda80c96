"""The one rule for `--tasks DIR`: one task folder (it has model_* folders or a model_configs.json)
or a folder of task folders (like the competition's input_data, or the released archives'
reference_data, which holds only <task>/model_configs.json). A task's model_configs.json is looked
for in the task folder, then in <folder of tasks>/../reference_data/<task>/ (the released
archives' layout), then in <reference>/<task>/."""

import pathlib


def _is_task(folder):
    return (folder / "model_configs.json").is_file() or any(p.is_dir()
                                                            for p in folder.glob("model_*"))


def configs_candidates(task_dir, reference=None):
    """Where a task's model_configs.json may be, in lookup order."""
    task = pathlib.Path(task_dir).resolve()
    places = [task, task.parent.parent / "reference_data" / task.name]
    if reference is not None:
        places.append(pathlib.Path(reference).resolve() / task.name)
    return [place / "model_configs.json" for place in places]


def find_tasks(tasks_dir, reference=None, require_configs=True):
    """[(name, task folder, model_configs.json path or None)] sorted by name; with
    `require_configs` a task without model_configs.json is an error that says where it looked."""
    root = pathlib.Path(tasks_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"tasks folder {root} does not exist")
    folders = [root] if _is_task(root) else sorted(p for p in root.iterdir()
                                                   if p.is_dir() and _is_task(p))
    if not folders:
        raise FileNotFoundError(
            f"{root} is neither a task folder (with model_* folders or a model_configs.json) nor "
            f"a folder of task folders (it holds {sorted(p.name for p in root.iterdir())[:10]}); "
            "pass the folder of one task, whose models are model_<id> folders with config.json "
            "and weights.hdf5, or the folder that holds such task folders (what demogen zoo "
            "--out writes)")
    tasks = []
    for folder in folders:
        candidates = configs_candidates(folder, reference)
        found = next((path for path in candidates if path.is_file()), None)
        if found is None and require_configs:
            raise FileNotFoundError(
                f"task {folder.name}: no model_configs.json; looked in "
                + ", ".join(str(path.parent) for path in candidates)
                + ("" if reference is not None else " (pass --reference DIR to name its folder)"))
        tasks.append((folder.name, folder, found))
    return tasks
