"""Benchmark of --cluster against --workers (run on demand): the zoo's engine overhead.

A scratch preset defined here only, `tiny32` (the tiny task with eight seeds: 32 models of a
second or so each), is trained into fresh folders by two loky workers (`--workers 2`) and by a
LocalCluster of two single-threaded workers (`--cluster local:2`, started and closed inside the
timing), in alternating rounds so that a loaded machine weighs on both alike. Prints each round's
seconds, the ratio of the totals (cluster / workers; the aim is at most 1.3) and whether the two
feature tables are identical (wall-clock `seconds` excepted).

    .venv/bin/python benchmarks/cluster.py [--rounds 1] [--work DIR]
"""

import argparse
import dataclasses
import pathlib
import tempfile
import time

import pandas as pd
from joblib.externals.loky import get_reusable_executor

from demogen.console import import_tensorflow
from demogen_fit import cluster, presets, zoo

PRESET = "tiny32"


def _preset():
    tiny = presets.PRESETS["tiny"]
    task = dataclasses.replace(tiny.tasks[0], name=PRESET,
                               grid={**tiny.tasks[0].grid, "seed": tuple(range(8))})
    return dataclasses.replace(tiny, name=PRESET, tasks=(task,),
                               description="32 tiny models, for benchmarks/cluster.py only")


def _train(variant, out):
    """Seconds to train the preset into `out` with `variant` ("workers" or "cluster"), the
    workers started and stopped inside the timing."""
    start = time.perf_counter()
    if variant == "workers":
        zoo.run(PRESET, out, workers=2, progress=False)
        get_reusable_executor().shutdown(wait=True)
    else:
        with cluster.connect("local:2") as client:
            zoo.run(PRESET, out, progress=False, client=client)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--work", help="scratch folder (default: a new temporary folder)")
    args = parser.parse_args()
    import_tensorflow()
    presets.PRESETS[PRESET] = _preset()
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="demogen-cluster-"))
    totals = {"workers": 0.0, "cluster": 0.0}
    for round_ in range(args.rounds):
        for variant in totals:
            seconds = _train(variant, work / f"{variant}{round_}")
            totals[variant] += seconds
            print(f"round {round_ + 1} {variant:<8} {seconds:7.1f} s", flush=True)
    tables = [pd.read_csv(work / f"{variant}0" / "features" / f"{PRESET}.csv",
                          keep_default_na=False).drop(columns="seconds") for variant in totals]
    print(f"models: {len(tables[0])}; cluster / workers: "
          f"{totals['cluster'] / totals['workers']:.2f}; identical tables: "
          f"{tables[0].equals(tables[1])}")


if __name__ == "__main__":
    main()
