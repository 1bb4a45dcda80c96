"""Model pools: the architectures and the full hyperparameter grids that `demogen zoo` trains.

Every preset is one or more PGDL tasks on Fashion-MNIST, one task per label-noise level (a task's
training split, labels included, is shared by all its models). Within a task the grid over
`grid` is complete: every combination once. The model id is the combination's position in the
grid (itertools.product order over the sorted hyperparameter names).
"""

import dataclasses
import itertools

import tensorflow as tf

L = tf.keras.layers


@dataclasses.dataclass(frozen=True)
class Preset:
    """A pool: `tasks` maps task names to their label-noise fraction; `grid` maps hyperparameter
    names to their values; the rest are training settings shared by every model."""
    name: str
    architecture: str
    tasks: dict
    grid: dict
    n_train: int
    epochs: int
    batch_size: int = 128
    learning_rate: float = 0.05
    data_seed: int = 0

    def combinations(self):
        """(model id, hyperparameters) for every combination of the grid."""
        names = sorted(self.grid)
        for index, values in enumerate(itertools.product(*(self.grid[n] for n in names))):
            yield str(index), dict(zip(names, values))


def nin(width, batch_norm, dropout, weight_decay, **_):
    """Network-in-Network without max-pool (method.md section 7): three blocks of a 3x3 stride-2
    conv and two 1x1 convs, dropout after the first two blocks, a 4x4 conv to the logits."""
    regularizer = tf.keras.regularizers.L2(weight_decay) if weight_decay else None
    layers = [tf.keras.Input((28, 28, 1))]
    for block in range(3):
        for size, stride in ((3, 2), (1, 1), (1, 1)):
            layers.append(L.Conv2D(width, size, strides=stride, padding="same",
                                   use_bias=not batch_norm, kernel_regularizer=regularizer))
            if batch_norm:
                layers.append(L.BatchNormalization())
            layers.append(L.ReLU())
        if dropout and block < 2:
            layers.append(L.Dropout(dropout))
    layers += [L.Conv2D(10, 4, padding="valid", kernel_regularizer=regularizer), L.Flatten()]
    return tf.keras.Sequential(layers)


def vgg(filters, dropout, conv_blocks, **_):
    """VGG-like, as the competition's Fashion-MNIST task: blocks of two 3x3 convs and a max-pool
    (filters doubling per block), then dense 128 with dropout, then the logits."""
    layers = [tf.keras.Input((28, 28, 1))]
    for block in range(conv_blocks):
        layers += [L.Conv2D(filters * 2 ** block, 3, padding="same", activation="relu"),
                   L.Conv2D(filters * 2 ** block, 3, padding="same", activation="relu"),
                   L.MaxPooling2D()]
    layers += [L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(dropout), L.Dense(10)]
    return tf.keras.Sequential(layers)


def tiny(width, dropout, **_):
    """Two strided convs and the logits: trains in about a second."""
    return tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        L.Conv2D(width, 3, strides=2, activation="relu"),
        L.Conv2D(width, 3, strides=2, activation="relu"),
        L.Dropout(dropout), L.Flatten(), L.Dense(10)])


ARCHITECTURES = {"nin": nin, "vgg": vgg, "tiny": tiny}

PRESETS = {preset.name: preset for preset in [
    Preset("nin", "nin", tasks={"nin_clean": 0.0, "nin_noise20": 0.2},
           grid={"width": (16, 32, 48), "batch_norm": (0, 1), "dropout": (0.0, 0.2, 0.5),
                 "weight_decay": (0.0, 0.0005), "augmentation": (0, 1), "seed": (0, 1)},
           n_train=2000, epochs=30),
    Preset("vgg", "vgg", tasks={"vgg_clean": 0.0},
           grid={"filters": (16, 32), "dropout": (0.0, 0.5), "conv_blocks": (1, 3),
                 "learning_rate": (0.01, 0.05), "batch_size": (32, 512)},
           n_train=2000, epochs=20),
    Preset("tiny", "tiny", tasks={"tiny": 0.0},
           grid={"width": (4, 8), "dropout": (0.0, 0.5), "seed": (0, 1)},
           n_train=256, epochs=2, batch_size=64),
]}
