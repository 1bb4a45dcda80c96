"""The architecture families of the pools, as Keras Sequential models (PGDL's config.json can
describe only Sequential models, so there is no residual family).

Every builder takes the input shape, then the model's hyperparameters by name, and returns an
Sequential with fresh weights whose last layer gives logits. Convolutions are 1-D for inputs of
shape (length, channels) and 2-D for (height, width, channels). Weight decay is an L2 penalty
on every kernel (Keras' L2(weight_decay): weight_decay * sum(w^2) added to the loss).
"""

import math

import tensorflow as tf

L = tf.keras.layers
N_CLASSES = 10


def _conv(input_shape):
    return L.Conv1D if len(input_shape) == 2 else L.Conv2D


def _pool(input_shape):
    return L.MaxPooling1D if len(input_shape) == 2 else L.MaxPooling2D


def _decay(weight_decay):
    return {"kernel_regularizer": tf.keras.regularizers.L2(weight_decay)} if weight_decay else {}


def _activated(layer, batch_norm):
    """`layer` then (batch norm and) a ReLU; with batch norm the layer has no bias."""
    return [layer, L.BatchNormalization(), L.ReLU()] if batch_norm else [layer, L.ReLU()]


def vgg(input_shape, width, depth, dropout=0.0, weight_decay=0.0, dense=128, **_):
    """VGG-like: `depth` blocks of two 3-wide convs (width doubling per block) and a 2-wide
    max-pool, then a dense layer of `dense` units with dropout, then the logits."""
    conv, pool = _conv(input_shape), _pool(input_shape)
    layers = [tf.keras.Input(input_shape)]
    for block in range(depth):
        for _ in range(2):
            layers.append(conv(width * 2 ** block, 3, padding="same", activation="relu",
                               **_decay(weight_decay)))
        layers.append(pool())
    layers += [L.Flatten(), L.Dense(dense, activation="relu", **_decay(weight_decay)),
               L.Dropout(dropout), L.Dense(N_CLASSES, **_decay(weight_decay))]
    return tf.keras.Sequential(layers)


def nin(input_shape, width, depth=3, batch_norm=0, dropout=0.0, weight_decay=0.0, **_):
    """Network-in-Network without max-pool (docs/method.md section 7): `depth` blocks of a 3-wide
    stride-2 conv and two 1-wide convs, dropout after every block but the last, then a conv as
    wide as what is left of the input, to the logits."""
    conv = _conv(input_shape)
    layers = [tf.keras.Input(input_shape)]
    for block in range(depth):
        for size, stride in ((3, 2), (1, 1), (1, 1)):
            layers += _activated(conv(width, size, strides=stride, padding="same",
                                      use_bias=not batch_norm, **_decay(weight_decay)),
                                 batch_norm)
        if dropout and block < depth - 1:
            layers.append(L.Dropout(dropout))
    remaining = math.ceil(input_shape[0] / 2 ** depth)
    layers += [conv(N_CLASSES, remaining, padding="valid", **_decay(weight_decay)), L.Flatten()]
    return tf.keras.Sequential(layers)


def allconv(input_shape, width, depth, batch_norm=0, dropout=0.0, weight_decay=0.0, **_):
    """All-convolutional (after Springenberg et al. 2015, small): `depth` stages of a 3-wide
    stride-2 conv and a 3-wide conv (width doubling per stage), dropout after each stage, then a
    1-wide conv to the logits and global average pooling. No dense layer, no max-pool."""
    conv = _conv(input_shape)
    pool = L.GlobalAveragePooling1D if len(input_shape) == 2 else L.GlobalAveragePooling2D
    layers = [tf.keras.Input(input_shape)]
    for stage in range(depth):
        for stride in (2, 1):
            layers += _activated(conv(width * 2 ** stage, 3, strides=stride, padding="same",
                                      use_bias=not batch_norm, **_decay(weight_decay)),
                                 batch_norm)
        if dropout:
            layers.append(L.Dropout(dropout))
    layers += [conv(N_CLASSES, 1, **_decay(weight_decay)), pool()]
    return tf.keras.Sequential(layers)


def mlp(input_shape, width, depth, dropout=0.0, weight_decay=0.0, batch_norm=0, **_):
    """A multilayer perceptron: the flattened input, `depth` hidden ReLU layers of `width` units
    (batch norm before the ReLU when on) each followed by dropout, then the logits."""
    layers = [tf.keras.Input(input_shape), L.Flatten()]
    for _ in range(depth):
        layers += _activated(L.Dense(width, use_bias=not batch_norm, **_decay(weight_decay)),
                             batch_norm)
        if dropout:
            layers.append(L.Dropout(dropout))
    layers.append(L.Dense(N_CLASSES, **_decay(weight_decay)))
    return tf.keras.Sequential(layers)


def sepconv(input_shape, width, depth, dropout=0.0, weight_decay=0.0, **_):
    """Depthwise-separable (after MobileNet, small): `depth` blocks of two 3-wide separable
    convs (width doubling per block), each with batch norm and a ReLU, and a 2-wide max-pool;
    then dropout and the logits from the flattened features. Weight decay on every depthwise,
    pointwise and dense kernel."""
    separable = L.SeparableConv1D if len(input_shape) == 2 else L.SeparableConv2D
    decay = ({"depthwise_regularizer": tf.keras.regularizers.L2(weight_decay),
              "pointwise_regularizer": tf.keras.regularizers.L2(weight_decay)}
             if weight_decay else {})
    layers = [tf.keras.Input(input_shape)]
    for block in range(depth):
        for _ in range(2):
            layers += _activated(separable(width * 2 ** block, 3, padding="same",
                                           use_bias=False, **decay), batch_norm=1)
        layers.append(_pool(input_shape)())
    layers += [L.Flatten(), L.Dropout(dropout), L.Dense(N_CLASSES, **_decay(weight_decay))]
    return tf.keras.Sequential(layers)


def tiny(input_shape, width, dropout, **_):
    """Two strided convs and the logits: trains in about a second (tests, demo)."""
    return tf.keras.Sequential([
        tf.keras.Input(input_shape),
        L.Conv2D(width, 3, strides=2, activation="relu"),
        L.Conv2D(width, 3, strides=2, activation="relu"),
        L.Dropout(dropout), L.Flatten(), L.Dense(N_CLASSES)])


def vgg_pgdl(input_shape, filters, conv_blocks, dropout, **_):
    """`vgg` under the hyperparameter names of the competition's VGG tasks (the vgg preset)."""
    return vgg(input_shape, filters, conv_blocks, dropout)


ARCHITECTURES = {"vgg": vgg, "vgg_pgdl": vgg_pgdl, "nin": nin, "allconv": allconv, "mlp": mlp,
                 "sepconv": sepconv, "tiny": tiny}
