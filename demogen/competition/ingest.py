"""A local ingestion: run any PGDL submission over every model of every task the way the
competition did, with its time budget, writing <out>/<task>.predict.

The submission is untrusted: it runs only in a child process per task
(demogen/competition/ingest_child.py, `python -I`, which inherits TF_USE_LEGACY_KERAS). Each
.predict file maps "model_<id>" to a float, to "EXCEEDED" (the competition's budget rule), or to
"FAILED: <reason>" where the competition's program would have stopped (complexity raised or
returned a non-number, the model did not load, the child process died); the other models still
run.

The budget: a task may take (number of models) x budget_per_model seconds, timed from the start
of its child (data loading included) and checked after each model. Once exceeded, every remaining
model of that task and of all later tasks is "EXCEEDED". A child still busy GRACE seconds past its
task's budget is stopped (its model counts as EXCEEDED).

Resumable: <out>/.ingest_state.json (written atomically) records the submission's SHA-256, the
tasks and their models, and the EXCEEDED flag. Run again into the same folder, a finished task
(a complete <task>.predict) is kept, an unfinished one runs again from its start, and a set flag
stays set; a different submission or task list is refused.
"""

import contextlib
import hashlib
import json
import os
import pathlib
import selectors
import stat
import subprocess
import sys
import tempfile
import time
import zipfile

from demogen.competition import pgdl
from demogen.competition.tasks import find_tasks

CHILD = pathlib.Path(__file__).with_name("ingest_child.py")
GRACE = 60.0
EXCEEDED = "EXCEEDED"
STATE = ".ingest_state.json"


def _check_zip(archive, name):
    """Refuse absolute paths, '..' entries and symbolic links before anything is extracted."""
    for info in archive.infolist():
        path = info.filename.replace("\\", "/")
        if path.startswith("/") or (len(path) > 1 and path[1] == ":") \
                or ".." in path.split("/"):
            raise ValueError(f"submission {name}: refused: entry {info.filename!r} would be "
                             "written outside the submission folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(f"submission {name}: refused: entry {info.filename!r} is a "
                             "symbolic link")


def _check_folder(folder, name):
    missing = [f for f in ("complexity.py", "metadata") if not (folder / f).is_file()]
    if missing:
        found = sorted(p.name for p in folder.iterdir())
        raise ValueError(f"submission {name} has no {' and no '.join(missing)} at its root "
                         f"(it holds {found[:10]}); zip the submission folder's contents, not "
                         "the folder itself")


@contextlib.contextmanager
def submission_folder(submission):
    """The submission as a folder: a zip is checked and extracted into a temporary folder."""
    submission = pathlib.Path(submission)
    if submission.is_dir():
        _check_folder(submission, submission)
        yield submission.resolve()
        return
    if not zipfile.is_zipfile(submission):
        raise ValueError(f"submission {submission} is neither a folder nor a zip file")
    with zipfile.ZipFile(submission) as archive, \
            tempfile.TemporaryDirectory(prefix="demogen-submission-") as tmp:
        _check_zip(archive, submission)
        archive.extractall(tmp)
        _check_folder(pathlib.Path(tmp), submission)
        yield pathlib.Path(tmp).resolve()


def _run_child(folder, task_dir, ids, budget, elapsed, on_result):
    """Run the child on `ids`; call on_result(id, value or "FAILED: ..." or EXCEEDED) per model.
    Returns (ids left without a result, the time spent, whether the budget was exceeded, a
    reason if the child died)."""
    job = {"submission": str(folder), "task": str(task_dir), "ids": ids, "budget": budget,
           "elapsed": elapsed}
    start = time.perf_counter() - elapsed
    child = subprocess.Popen([sys.executable, "-I", str(CHILD)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdin.write(json.dumps(job).encode())
    child.stdin.close()
    left, exceeded, pending, err = list(ids), False, b"", b""
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    selector.register(child.stderr, selectors.EVENT_READ)
    while selector.get_map():
        events = selector.select(timeout=max(budget + GRACE - (time.perf_counter() - start), 0))
        if not events:
            child.kill()
            exceeded = True
            break
        for key, _ in events:
            data = os.read(key.fd, 65536)
            if not data:
                selector.unregister(key.fileobj)
            elif key.fileobj is child.stderr:
                err = (err + data)[-2000:]
            else:
                *lines, pending = (pending + data).split(b"\n")
                for message in map(json.loads, lines):
                    if message.get("exceeded"):
                        exceeded = True
                    else:
                        left.remove(message["id"])
                        on_result(message["id"], message["value"] if "value" in message
                                  else f"FAILED: {message['error']}")
    selector.close()
    code = child.wait()
    died = None if exceeded or not left else \
        f"the submission's process died (exit code {code}): {err.decode(errors='replace').strip()}"
    return left, time.perf_counter() - start, exceeded, died


def _ingest_task(folder, task_dir, ids, budget, on_result):
    """Run one task; a child that dies fails its current model and a new one goes on.
    Returns whether the budget was exceeded."""
    left, elapsed = list(ids), 0.0
    while left:
        left, elapsed, exceeded, died = _run_child(folder, task_dir, left, budget, elapsed,
                                                   on_result)
        if exceeded:
            for model_id in left:
                on_result(model_id, EXCEEDED)
            return True
        if died:
            on_result(left.pop(0), f"FAILED: {died}")
            if elapsed > budget:
                for model_id in left:
                    on_result(model_id, EXCEEDED)
                return True
    return False


def submission_digest(submission):
    """SHA-256 of a submission zip, or of a folder's files (paths and contents; Python's
    __pycache__ left out, since running the submission writes it)."""
    submission = pathlib.Path(submission)
    digest = hashlib.sha256()
    if not submission.is_dir():
        digest.update(submission.read_bytes())
        return digest.hexdigest()
    for path in sorted(submission.rglob("*")):
        relative = path.relative_to(submission)
        if path.is_file() and "__pycache__" not in relative.parts:
            content = path.read_bytes()
            digest.update(f"{relative.as_posix()}\0{len(content)}\0".encode())
            digest.update(content)
    return digest.hexdigest()


def _earlier_run(out_dir, digest, task_ids):
    """The state of an earlier run into out_dir (None if there is none); refuses one of another
    submission or over other tasks."""
    path = out_dir / STATE
    if not path.is_file():
        return None
    state = pgdl.read_json(path, f"delete it to start over in {out_dir}")
    again = f"to start over, delete {path} (or choose another output folder)"
    if not isinstance(state, dict) or state.get("submission_sha256") != digest:
        raise ValueError(f"{out_dir} holds an ingest of another submission (its SHA-256 differs); "
                         f"{again}")
    then = state.get("tasks")
    if then != task_ids:
        then = then if isinstance(then, dict) else {}
        differ = sorted(name for name in set(then) | set(task_ids)
                        if then.get(name) != task_ids.get(name))
        raise ValueError(f"{out_dir} holds an ingest over other tasks or models (they differ in "
                         f"task(s) {', '.join(differ)}); {again}")
    return state


def _finished(path, ids):
    """The predictions of a complete <task>.predict file, or None."""
    try:
        predictions = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = [f"model_{i}" for i in ids]
    if not isinstance(predictions, dict) or set(predictions) != set(keys):
        return None
    return {key: predictions[key] for key in keys}


def ingest(submission, tasks_dir, out_dir, budget_per_model=300.0, progress=True):
    """Run `submission` (a zip or a folder) over every task of `tasks_dir`; write and return
    {task: {"model_<id>": float | "EXCEEDED" | "FAILED: <reason>"}}. Nothing is created before
    the submission, the tasks and the output folder are checked; a run into a folder that holds
    an unfinished run of the same submission over the same tasks resumes it."""
    from tqdm import tqdm

    tasks = [(name, folder, pgdl.model_ids(folder))
             for name, folder, _ in find_tasks(tasks_dir, require_configs=False)]
    task_ids = {name: ids for name, _, ids in tasks}
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output folder {out_dir} is an existing file; name a folder (it is "
                         "created if missing)")
    with submission_folder(submission) as folder:
        digest = submission_digest(submission)
        earlier = _earlier_run(out_dir, digest, task_ids)
        exceeded = bool(earlier and earlier.get("exceeded"))
        kept = {name: _finished(out_dir / f"{name}.predict", ids)
                for name, ids in task_ids.items()} if earlier else {}
        kept = {name: predictions for name, predictions in kept.items()
                if predictions is not None}
        out_dir.mkdir(parents=True, exist_ok=True)
        state = {"submission_sha256": digest, "tasks": task_ids, "exceeded": exceeded}
        pgdl.write_json(out_dir / STATE, state)
        if earlier and progress:
            print(f"resuming the ingest in {out_dir}: finished tasks kept: "
                  f"{', '.join(kept) or 'none'}", file=sys.stderr)
        results = {}
        with tqdm(total=sum(map(len, task_ids.values())), desc="ingest", unit="model",
                  disable=not progress, file=sys.stderr) as bar:
            for name, task_dir, ids in tasks:
                if name in kept:
                    results[name] = kept[name]
                    bar.update(len(ids))
                    continue
                predictions = {}

                def record(model_id, value, predictions=predictions):
                    predictions[f"model_{model_id}"] = value
                    bar.update()

                if exceeded:
                    for model_id in ids:
                        record(model_id, EXCEEDED)
                elif _ingest_task(folder, task_dir, ids, len(ids) * budget_per_model, record):
                    exceeded = state["exceeded"] = True
                    pgdl.write_json(out_dir / STATE, state)
                results[name] = {f"model_{i}": predictions[f"model_{i}"] for i in ids}
                pgdl.write_json(out_dir / f"{name}.predict", results[name])
    return results
