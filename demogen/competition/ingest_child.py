"""The child process of `demogen ingest`: runs untrusted submission code on one task's models.

Run as a script (never imported by demogen): it reads a job from stdin, {"submission", "task",
"ids", "budget", "elapsed"}, and writes one JSON line per model to its original stdout, {"id",
"value"} or {"id", "error"}, then {"exceeded": true} once the task's budget is spent. Anything the
submission prints goes to stderr. It loads demogen/competition/pgdl.py and demogen/console.py by
their paths and then forgets the installed demogen modules they imported, so that the submission
imports its own copy of demogen.
TensorFlow's start-up lines are silenced, so that a dead child's last words are its own, and it
writes nothing outside the task, the submission's temporary folder and demogen's cache folder
(demogen/console.py).
"""

import importlib
import importlib.util
import inspect
import json
import math
import os
import pathlib
import reprlib
import sys
import time

PACKAGE = pathlib.Path(__file__).parents[1]


def _load(relative):
    path = PACKAGE / relative
    spec = importlib.util.spec_from_file_location(f"_demogen_ingest_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error(error):
    return f"{type(error).__name__}: {error}"


def _predict(function, takes_dir, model, dataset, program_dir):
    """{"value": float} or {"error": reason} for one model."""
    try:
        value = function(model, dataset, program_dir=program_dir) if takes_dir \
            else function(model, dataset)
    except Exception as error:  # noqa: BLE001 - untrusted code: any failure is recorded
        return {"error": f"complexity raised {_error(error)}"}
    try:
        number = float(value)
    except Exception:  # noqa: BLE001
        return {"error": f"complexity returned {reprlib.repr(value)} ({type(value).__name__}), "
                         "which float() does not convert"}
    if not math.isfinite(number):
        return {"error": f"complexity returned {number}, not a finite number"}
    return {"value": number}


def main():
    job = json.load(sys.stdin)
    start = time.perf_counter() - job["elapsed"]
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message):
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    sys.dont_write_bytecode = True  # no __pycache__ of autograph's generated files in $TMPDIR
    _load("console.py").import_tensorflow()
    pgdl = _load("competition/pgdl.py")
    for name in [m for m in sys.modules if m == "demogen" or m.startswith("demogen.")]:
        del sys.modules[name]  # pgdl.py imported the installed demogen; the submission has its own
    dataset = pgdl.load_dataset(job["task"], "train")
    sys.path.insert(0, job["submission"])
    try:
        function = importlib.import_module("complexity").complexity
        takes_dir = "program_dir" in inspect.signature(function).parameters
    except Exception as error:  # noqa: BLE001
        for model_id in job["ids"]:
            send({"id": model_id, "error": f"complexity.py does not load: {_error(error)}"})
        return
    for model_id in job["ids"]:
        try:
            model = pgdl.load_model(job["task"], model_id)
        except Exception as error:  # noqa: BLE001
            send({"id": model_id, "error": f"the model does not load: {_error(error)}"})
        else:
            send({"id": model_id, **_predict(function, takes_dir, model, dataset,
                                             job["submission"])})
        if time.perf_counter() - start > job["budget"]:
            send({"exceeded": True})
            return


if __name__ == "__main__":
    main()
