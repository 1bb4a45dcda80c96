"""A small PGDL task for the submission tests: random small CNNs on a complete 2x2x2 grid."""

import itertools

import numpy as np
from conftest import keras, layers, randomize

from demogen.competition import pgdl

GRID = {"depth": [1, 2], "dropout": [0.0, 0.5], "seed": [0, 1]}


def small_cnn(seed, depth=1):
    model = keras.Sequential([keras.Input((6, 6, 1))]
                             + [layers.Conv2D(3, 3, padding="same", activation="relu")
                                for _ in range(depth)]
                             + [layers.Flatten(), layers.Dense(8, activation="relu"),
                                layers.Dense(3)])
    return randomize(model, seed)


def make_task(task_dir, configs_dir=None, seed=0):
    """Write a task of 8 models (ids 0..7) with made-up accuracies; model_configs.json goes to
    `configs_dir` (default: the task folder)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 6, 6, 1)).astype(np.float32)
    pgdl.write_dataset(task_dir / "dataset_1" / "train", x, rng.integers(0, 3, 40))
    configs = {}
    for index, values in enumerate(itertools.product(*GRID.values())):
        hparams = dict(zip(GRID, values))
        pgdl.write_model(task_dir / f"model_{index}",
                         small_cnn(seed * 100 + index, hparams["depth"]), (6, 6, 1))
        train = float(rng.uniform(0.6, 1.0))
        configs[str(index)] = {
            "hparams": {k: {"current_value": v, "possible_values": GRID[k]}
                        for k, v in hparams.items()},
            "metrics": {"train_acc": train, "test_acc": train - float(rng.uniform(0, 0.3))}}
    pgdl.write_model_configs(configs_dir or task_dir, configs)
    return configs
