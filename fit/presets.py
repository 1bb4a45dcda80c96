"""Model pools: the tasks `demogen zoo` trains, each a complete hyperparameter grid.

A preset is a list of tasks. A task is one PGDL task: one architecture family on one data source
(with its label noise), a grid over `grid` (every combination once, no seed axis unless the
preset says so), fixed architecture settings, and the training protocol (demogen_fit.train). The
model id is the combination's position in the grid (itertools.product order over the sorted
hyperparameter names); model <id> is initialized, shuffled and augmented with seed int(id).
"""

import dataclasses
import itertools
import math

from demogen_fit.sources import INPUT_SHAPES, SOURCES


@dataclasses.dataclass(frozen=True)
class Task:
    """One PGDL task of a pool.

    grid: {hyperparameter: values} (architecture arguments, or learning_rate, batch_size,
        augmentation); fixed: architecture arguments constant in the task.
    learning_rate, batch_size: used unless the grid varies them.
    augment: what augmentation = 1 means, (largest shift in pixels, horizontal flips or not).
    epochs: the epoch cap; stop_at: the training accuracy that ends training (None: always run
        `epochs`). lockbox: kept out of the transfer evaluation until its one final run.
        final: a task of the final lockbox (lockbox2), trained after registry v3 was committed:
        `demogen evaluate` refuses it, only its one final run (`--final`) reads its gaps.
    """
    name: str
    family: str
    architecture: str
    source: str
    n_train: int
    grid: dict
    epochs: int
    fixed: dict = dataclasses.field(default_factory=dict)
    label_noise: float = 0.0
    learning_rate: float = 0.05
    batch_size: int = 128
    stop_at: float = None
    data_seed: int = 0
    lockbox: bool = False
    final: bool = False
    augment: tuple = (2, True)

    @property
    def input_shape(self):
        return INPUT_SHAPES[self.source]

    @property
    def n_models(self):
        """The size of the grid: the models of a complete task."""
        return math.prod(len(values) for values in self.grid.values())

    def combinations(self):
        """(model id, hyperparameters) for every combination of the grid."""
        names = sorted(self.grid)
        for index, values in enumerate(itertools.product(*(self.grid[n] for n in names))):
            yield str(index), dict(zip(names, values))

    def training(self, hparams):
        """The training settings of one model: learning rate, batch size, augmentation."""
        return {"learning_rate": hparams.get("learning_rate", self.learning_rate),
                "batch_size": hparams.get("batch_size", self.batch_size),
                "augment": self.augment if hparams.get("augmentation", 0) else None}

    def architecture_arguments(self, hparams):
        training = ("learning_rate", "batch_size", "augmentation")
        return {**self.fixed, **{k: v for k, v in hparams.items() if k not in training}}

    def definition(self):
        """A JSON-ready description (what a committed manifest records and compares)."""
        return {key: (list(value) if isinstance(value, tuple) else value)
                for key, value in dataclasses.asdict(self).items()} | {
            "grid": {name: list(values) for name, values in self.grid.items()}}

    def same_definition(self, committed):
        """Whether a committed definition() is this task's; a field it lacks (added to Task
        after it was written) counts as the field's default."""
        current = self.definition()
        for field in dataclasses.fields(self):
            if field.name not in committed and getattr(self, field.name) == field.default:
                del current[field.name]
        return current == committed


@dataclasses.dataclass(frozen=True)
class Preset:
    """A pool: its tasks, whether its rows get the baseline features of the ablations
    (demogen_fit.baselines), a line on what it is for, and whether it is a scratch pool (the
    tests', the demo's) whose table is never committed (demogen_fit.zoo.features_folder)."""
    name: str
    tasks: tuple
    baselines: bool = True
    description: str = ""
    scratch: bool = False

    def task(self, name):
        for task in self.tasks:
            if task.name == name:
                return task
        raise ValueError(f"preset {self.name!r} has no task {name!r}; its tasks are "
                         f"{', '.join(t.name for t in self.tasks)}")


def _check(preset):
    for task in preset.tasks:
        if task.source not in SOURCES:
            raise ValueError(f"task {task.name}: unknown source {task.source!r}")
    names = [task.name for task in preset.tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"preset {preset.name}: duplicate task names")
    return preset


NIN_GRID = {"width": (16, 32, 48), "batch_norm": (0, 1), "dropout": (0.0, 0.2, 0.5),
            "weight_decay": (0.0, 0.0005), "augmentation": (0, 1), "seed": (0, 1)}

PRESETS = {preset.name: _check(preset) for preset in [
    Preset("nin", tuple(
        Task(name, "nin", "nin", "fmnist", 2000, NIN_GRID, 30, label_noise=noise)
        for name, noise in (("nin_clean", 0.0), ("nin_noise20", 0.2))),
        description="the primary reference pool (30 epochs, under-trained)"),
    Preset("vgg", (Task("vgg_clean", "vgg", "vgg_pgdl", "fmnist", 2000,
                        {"filters": (16, 32), "dropout": (0.0, 0.5), "conv_blocks": (1, 3),
                         "learning_rate": (0.01, 0.05), "batch_size": (32, 512)}, 20),),
           description="a transfer family like PGDL's Fashion-MNIST task (20 epochs)"),
    Preset("tiny", (Task("tiny", "tiny", "tiny", "fmnist", 256,
                         {"width": (4, 8), "dropout": (0.0, 0.5), "seed": (0, 1)}, 2,
                         batch_size=64),),
           description="8 models in about a second each, for the tests", scratch=True),
]}


MLP_GRID = {"width": (128, 512), "depth": (1, 3), "dropout": (0.0, 0.3),
            "weight_decay": (0.0, 0.0001), "learning_rate": (0.02, 0.1), "batch_size": (32, 128)}


def _corpus():
    """The transfer corpus (docs/pools.md, "The corpus"): PGDL-style tasks over four architecture
    families and three data sources, every model trained until it fits its training data."""
    fit = {"stop_at": 0.99}
    allconv = {"width": (16, 24), "depth": (2, 3), "dropout": (0.0, 0.2),
               "weight_decay": (0.0, 0.0005), "learning_rate": (0.03, 0.06)}
    return (
        Task("vgg_fmnist", "vgg", "vgg", "fmnist", 1000,
             {"width": (8, 16), "depth": (1, 2), "dropout": (0.0, 0.5),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.01, 0.03),
              "batch_size": (32, 128)}, 60, **fit),
        # shifts of up to 1 pixel, no flips: with 2 and flips no augmented NiN reached 0.95
        Task("nin_fmnist", "nin", "nin", "fmnist", 1000,
             {"width": (16, 32), "depth": (2, 3), "dropout": (0.0, 0.3),
              "weight_decay": (0.0, 0.0005), "augmentation": (0, 1),
              "learning_rate": (0.01, 0.03)}, 100, fixed={"batch_norm": 1}, batch_size=64,
             augment=(1, False), **fit),
        Task("nin_fmnist_noise", "nin", "nin", "fmnist", 1000,
             {"width": (16, 32), "depth": (2, 3), "batch_norm": (0, 1), "dropout": (0.0, 0.3),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.01, 0.03)}, 100,
             label_noise=0.1, batch_size=64, **fit),
        Task("allconv_color", "allconv", "allconv", "fmnist_color", 1000, allconv, 150,
             fixed={"batch_norm": 0}, batch_size=64, **fit),
        Task("allconv_color_bn", "allconv", "allconv", "fmnist_color", 1000, allconv, 150,
             fixed={"batch_norm": 1}, batch_size=64, **fit),
        Task("vgg_mnist1d", "vgg", "vgg", "mnist1d", 2000,
             {"width": (16, 32), "depth": (1, 3), "dropout": (0.0, 0.5),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.01, 0.03),
              "batch_size": (32, 128)}, 80, **fit),
        Task("allconv_mnist1d", "allconv", "allconv", "mnist1d", 2000,
             {"width": (16, 32), "depth": (2, 3), "batch_norm": (0, 1), "dropout": (0.0, 0.2),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.02, 0.05)}, 80,
             batch_size=64, **fit),
        Task("mlp_mnist1d", "mlp", "mlp", "mnist1d", 2000, MLP_GRID, 100, **fit),
        Task("mlp_digits", "mlp", "mlp", "digits", 600, MLP_GRID, 150, label_noise=0.1, **fit),
        Task("vgg_digits", "vgg", "vgg", "digits", 600,
             {"width": (16, 32), "depth": (1, 2), "dropout": (0.0, 0.5),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.02, 0.05)}, 150,
             label_noise=0.1, batch_size=32, **fit),
    )


def _corpus_lockbox():
    """The corpus's lockbox: family and source pairs no corpus task uses, trained alike, in a
    table of their own (corpus_lockbox.csv) that `demogen evaluate` reads only for its one
    final run."""
    fit = {"stop_at": 0.99, "lockbox": True}
    return (
        Task("nin_mnist1d", "nin", "nin", "mnist1d", 2000,
             {"width": (16, 32), "depth": (2, 3), "batch_norm": (0, 1), "dropout": (0.0, 0.3),
              "learning_rate": (0.01, 0.03)}, 80, batch_size=64, **fit),
        Task("mlp_fmnist", "mlp", "mlp", "fmnist", 1000, MLP_GRID, 100, **fit),
    )


def _lockbox2():
    """The final lockbox: three family and source pairs no corpus task uses, defined after
    registry v3 was committed and trained alike, in a table of its own (lockbox2.csv) that
    only the one final run reads (`demogen evaluate --final`)."""
    fit = {"stop_at": 0.99, "final": True}
    return (
        Task("sepconv_fmnist", "sepconv", "sepconv", "fmnist", 1000,
             {"width": (16, 32), "depth": (1, 2), "dropout": (0.0, 0.3),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.02, 0.05)}, 100,
             batch_size=64, **fit),
        Task("allconv_digits", "allconv", "allconv", "digits", 600,
             {"width": (32, 64), "batch_norm": (0, 1), "dropout": (0.0, 0.2),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.02, 0.05)}, 150,
             fixed={"depth": 1}, label_noise=0.1, batch_size=32, **fit),
        # MLPs on coloured Fashion-MNIST were piloted first: neither extreme fit in 150
        # epochs (train accuracy 0.74 and 0.82)
        Task("vgg_color", "vgg", "vgg", "fmnist_color", 1000,
             {"width": (8, 16), "depth": (1, 2), "dropout": (0.0, 0.5),
              "weight_decay": (0.0, 0.0005), "learning_rate": (0.01, 0.03)}, 80,
             batch_size=64, **fit),
    )


PRESETS["demo"] = _check(Preset("demo", (
    Task("demo_mlp_mnist1d", "mlp", "mlp", "mnist1d", 1000,
         {"width": (64, 256), "depth": (1, 2), "dropout": (0.0, 0.3),
          "learning_rate": (0.05, 0.1)}, 60, batch_size=64, stop_at=0.99, data_seed=1),),
    baselines=False, scratch=True,
    description="the demo's task: 16 MNIST-1D MLPs trained until they fit, in no fit"))
PRESETS["corpus"] = _check(Preset("corpus", _corpus(), baselines=False,
                                  description="the transfer corpus: many tasks, fitted"))
PRESETS["corpus_lockbox"] = _check(Preset(
    "corpus_lockbox", _corpus_lockbox(), baselines=False,
    description="the corpus's two lockbox tasks, for the one final transfer run"))
PRESETS["lockbox2"] = _check(Preset(
    "lockbox2", _lockbox2(), baselines=False,
    description="the final lockbox: three new tasks, read only by `evaluate --final`"))
