"""Benchmark of the frozen predictor as the PGDL ingestion calls it (run on demand).

It builds a PGDL-sized task with demogen's own PGDL writer: VGG-like models (3 blocks of two
3x3 convs, 32/64/128 filters, each block closed by a 2x2 max-pool, then dense 128 and 10 logits)
on 32x32x3 inputs, and a training split of random float32 images (50,000 by default, in 10
TFRecord shards) labelled by the first model's own predictions, 20% of them flipped to another
class (so that most sampled examples are classified correctly and the signature is defined). The
later models are the first one's weights times (1 + 5% noise), written as models of their own.

It then loads the training split once with `pgdl.load_dataset`, as the ingestion does, and for
every model (built from its config.json and weights.hdf5 by `pgdl.load_model`, a new object
each) times `demogen.frozen.predictor.complexity(model, ds)` on that same dataset object, with a
breakdown:
- sampling: `demogen.measure.sampling.sample` (reading the dataset and drawing the seeded sample);
- trace: compiling the margin step (`tf.function` tracing, the first call's overhead);
- loop: the compiled margin step on every batch;
- check: `_check_reproduces` (the model's own output on the first batch);
- train accuracy: a two-part predictor's forward pass over its own training-accuracy sample
  (4,096 examples for the shipped one), its first draw of that sample included;
- rest: everything else (layer view, layer rule, weight checks, numpy work, signature, fit).
With --families it then times every runtime feature family's producer on the later models
(`demogen.measure.registry`: margins, weight spectra, perturbation responses, the winner's
measure, each measured alone with what it needs measured before), each beside the floor
measured on the same model just before it, and marks the families the predictor reads: what a
predictor pays for each family it uses. The task's labels are the first model's predictions,
79% of them one class: the winner's mixups pair every two same-class examples of a batch, so
its cost grows with the square of a class's share (benchmarks/winner.py times it on balanced
labels, as PGDL's tasks have).
Targets: at most 10 s for the first model of a task, at most 4 s for each later one. It also
times the floor (one forward and one backward pass on the sampled examples) to give the figures
as ratios, which hold on a loaded machine, and with --compare-sampling ROUNDS the original
sampling algorithm against today's reader on the same dataset (the first, uncached sample).

It times the shipped default predictor (`selected`) unless told otherwise: `--predictor paper_nin`,
or `--coefficients FILE` for any frozen file (e.g. a candidate written by `demogen fit
--candidate NAME --out FILE`), whose features decide what is measured.

    .venv/bin/python benchmarks/complexity.py [--n-train 50000] [--shards 10] [--models 4]
        [--predictor selected|paper_nin | --coefficients FILE] [--compare-sampling ROUNDS]
        [--families] [--task-dir DIR]   (DIR: reuse or keep the task there instead of a temporary folder)
"""

import argparse
import contextlib
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from demogen.competition import pgdl  # noqa: E402
from demogen.defaults import SHIPPED_PREDICTORS  # noqa: E402
from demogen.frozen import coefficients  # noqa: E402
from demogen.frozen.predictor import complexity, load_coefficients  # noqa: E402
from timing import Breakdown, best_time, original_from_dataset  # noqa: E402

from demogen.measure import features, registry, sampling  # noqa: E402, F401 (features
# registers the runtime's families)

INPUT_SHAPE = (32, 32, 3)


def vgg_like(seed):
    layers = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    model = [tf.keras.Input(INPUT_SHAPE)]
    for block in range(3):
        model += [layers.Conv2D(32 * 2 ** block, 3, padding="same", activation="relu"),
                  layers.Conv2D(32 * 2 ** block, 3, padding="same", activation="relu"),
                  layers.MaxPooling2D()]
    model += [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)]
    return tf.keras.Sequential(model)


def build_task(task, n_train, n_shards, n_models):
    """Write the task folder (skipped where a previous run left it complete)."""
    done = task / "benchmark.json"
    expected = f"{n_train} {n_shards} {n_models}\n"
    if done.is_file() and done.read_text() == expected:
        return
    rng = np.random.default_rng(0)
    first = vgg_like(0)
    x = rng.uniform(size=(n_train,) + INPUT_SHAPE).astype(np.float32)
    y = np.concatenate([np.asarray(first(x[i:i + 1000], training=False)).argmax(axis=1)
                        for i in range(0, n_train, 1000)])
    flip = rng.random(n_train) < 0.2
    y[flip] = (y[flip] + rng.integers(1, 10, int(flip.sum()))) % 10
    pgdl.write_dataset(task / "dataset_1" / "train", x, y.astype(np.int32), n_shards=n_shards)
    weights = first.get_weights()
    for k in range(n_models):
        model = vgg_like(k)
        model.set_weights([w * (1 + 0.05 * rng.standard_normal(w.shape)).astype(np.float32)
                           if k else w for w in weights])
        pgdl.write_model(task / f"model_{k}", model, INPUT_SHAPE)
    done.write_text(expected)


def floor_seconds(model, inputs, batch_size=256, repeats=3):
    """One forward and one backward pass through the model on the sampled examples, in the
    extractor's batches: what no margin measure can go below (best of `repeats` after a warm-up)."""
    @tf.function(input_signature=[tf.TensorSpec((None,) + inputs.shape[1:], tf.float32)])
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(model(x, training=False))
        return tape.gradient(total, x)

    def run():
        for start in range(0, len(inputs), batch_size):
            forward_backward(inputs[start:start + batch_size])
    return best_time(run, repeats)


def compare_sampling(ds, n_examples, seed, rounds):
    """Today's reader (uncached) against the original algorithm, interleaved, same dataset."""
    times = {"original": [], "new": []}
    for _ in range(rounds):
        for name, read in (("original", original_from_dataset), ("new", sampling._from_dataset)):
            start = time.perf_counter()
            result = read(ds, n_examples, seed, len(INPUT_SHAPE))
            times[name].append(time.perf_counter() - start)
            if name == "original":
                expected = result
            else:
                assert all(np.array_equal(a, b) for a, b in zip(result, expected))
    for name, values in times.items():
        print(f"  {name:8s} reader: median {np.median(values):5.2f} s, best {min(values):5.2f} s")
    print(f"  original / new: {np.median(times['original']) / np.median(times['new']):.2f}x "
          f"(medians), {min(times['original']) / min(times['new']):.2f}x (best); same sample")


def time_families(task, ds, n_models, sample, used):
    """Seconds of each shipped producer per later model, measured in the registry's order, each
    with the producers it needs measured (and not timed) before it, beside the floor measured on
    the same model just before (the ratio per model holds while the machine's load changes)."""
    inputs, _ = sampling.sample(ds, INPUT_SHAPE, 10, sample["n_examples"], sample["seed"])
    names = [n for n, p in registry.PRODUCERS.items() if p.shipped]
    seconds, ratios = ({name: [] for name in names} for _ in range(2))
    for k in range(1, n_models):
        model = pgdl.load_model(task, k)
        for name in names:
            measurement = registry.Measurement()
            for need in registry.in_order(registry.PRODUCERS[name].needs):
                measurement[need] = registry.PRODUCERS[need].measure(model, ds, sample,
                                                                      measurement)
            floor = floor_seconds(model, inputs, sample["batch_size"])
            start = time.perf_counter()
            registry.PRODUCERS[name].measure(model, ds, sample, measurement)
            seconds[name].append(time.perf_counter() - start)
            ratios[name].append(seconds[name][-1] / floor)
    print(f"feature families per later model (mean of {n_models - 1}; * read by this "
          "predictor; its training-accuracy pass is in the breakdown above):")
    for name in names:
        print(f"  {'*' if name in used else ' '} {name:<13s} {np.mean(seconds[name]):6.2f} s = "
              f"{np.mean(ratios[name]):5.1f}x floor")


def run(task, n_models, sampling_rounds, program_dir, families=False):
    frozen = load_coefficients(program_dir)  # read once, as in the ingestion
    settings = frozen.extractor
    print(f"predictor: {frozen.name}, features "
          f"{', '.join(frozen.features[:3])}, ... ({len(frozen.features)})")
    start = time.perf_counter()
    ds = pgdl.load_dataset(task)
    print(f"load_dataset: {time.perf_counter() - start:.2f} s (the ingestion's, not timed below)")
    totals = []
    for k in range(n_models):
        start = time.perf_counter()
        model = pgdl.load_model(task, k)
        load = time.perf_counter() - start
        breakdown = Breakdown()
        with breakdown.installed():
            start = time.perf_counter()
            value = complexity(model, ds, program_dir)
            total = time.perf_counter() - start
        breakdown.finish(total)
        totals.append(total)
        print(f"model {k}: complexity {total:6.2f} s = {breakdown.line()}  (prediction "
              f"{value:.4f}; load_model {load:.2f} s, not included)")
    inputs, _ = sampling.sample(ds, INPUT_SHAPE, 10, settings["n_examples"], settings["seed"])
    floor = floor_seconds(model, inputs, settings["batch_size"])
    print(f"floor (forward + backward on the {len(inputs)} sampled examples): {floor:.2f} s")
    first, later = totals[0], totals[1:]
    print(f"first model: {first:.2f} s = {first / floor:.1f}x floor (target <= 10 s)")
    if later:
        print(f"later models: mean {np.mean(later):.2f} s = {np.mean(later) / floor:.1f}x floor, "
              f"max {max(later):.2f} s (target <= 4 s each)")
    if families and n_models > 1:
        used = registry.producers_of(registry.groups_of(frozen.features))
        sample = {k: settings[k] for k in ("n_examples", "seed", "batch_size")}
        time_families(task, ds, n_models, sample, used)
    if sampling_rounds:
        print(f"first sample of the dataset, {sampling_rounds} interleaved rounds:")
        compare_sampling(ds, settings["n_examples"], settings["seed"], sampling_rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--compare-sampling", type=int, default=0, metavar="ROUNDS",
                        help="also time the original sampling algorithm against today's")
    shipped = parser.add_mutually_exclusive_group()
    shipped.add_argument("--predictor", choices=SHIPPED_PREDICTORS, default=SHIPPED_PREDICTORS[0])
    shipped.add_argument("--coefficients", type=pathlib.Path, help="a frozen predictor file")
    parser.add_argument("--families", action="store_true",
                        help="also time every runtime feature family per later model")
    parser.add_argument("--task-dir", type=pathlib.Path, default=None,
                        help="build (or reuse) the task here and keep it")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    with contextlib.ExitStack() as stack:
        if args.task_dir is None:
            task = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory())) / "task"
        else:
            task = args.task_dir
        task.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        build_task(task, args.n_train, args.shards, args.models)
        print(f"task {task}: {args.n_train} training examples in {args.shards} shards, "
              f"{args.models} models (built or checked in {time.perf_counter() - start:.0f} s)")
        program_dir = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory()))
        (program_dir / "coefficients.json").write_text(
            args.coefficients.read_text() if args.coefficients
            else coefficients.shipped_text(args.predictor))
        run(task, args.models, args.compare_sampling, str(program_dir), args.families)


if __name__ == "__main__":
    main()
