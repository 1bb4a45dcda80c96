"""Training the pools' models as the competition's were: SGD with momentum 0.9 at a constant
learning rate on the cross-entropy of the logits, until the model fits its training data.

The stopping rule (`fit_to_data`): at the end of every epoch the model is evaluated in inference
mode on the full, un-augmented training set with the labels it trains on; training stops at the
first epoch whose accuracy reaches `stop_at` (e.g. 0.99), or at the epoch cap. A loss that turns
NaN or infinite stops training at once (the model diverged).
"""

import dataclasses

import numpy as np
import tensorflow as tf

@dataclasses.dataclass
class History:
    """What training did: per epoch, the training-set accuracy and cross-entropy (inference
    mode, un-augmented; empty without a stopping rule), the epochs run, whether the stopping
    criterion was met, and why training diverged (None if it did not)."""
    accuracy: list
    cross_entropy: list
    epochs: int = 0
    reached: bool = False
    diverged: str = None


def corrupt_labels(labels, fraction, n_classes=10, seed=0):
    """Labels with `fraction` of them replaced by a different class, chosen uniformly."""
    rng = np.random.default_rng(seed)
    labels = labels.copy()
    flip = rng.random(len(labels)) < fraction
    labels[flip] = (labels[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
    return labels


def scores(model, x, batch_size=1024):
    """The model's logits on x, in inference mode."""
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def accuracy(model, x, y, batch_size=1024):
    """Fraction of examples whose highest score is their label."""
    return float(np.mean(scores(model, x, batch_size).argmax(axis=1) == y))


def evaluate(model, x, y):
    """(accuracy, mean cross-entropy) of the model on (x, y) in inference mode."""
    logits = scores(model, x)
    loss = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return float(np.mean(logits.argmax(axis=1) == y)), float(np.mean(loss))


def batches(x, y, batch_size, seed, augment=None):
    """Shuffled training batches (reshuffled every epoch, seeded); with `augment` = (shift,
    flip) (images only), random shifts of up to `shift` pixels (zeros shifted in) and, if
    `flip`, random horizontal flips."""
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    if augment:
        if x.ndim != 4:
            raise ValueError("data augmentation (shifts and flips) is defined for images only")
        shape, (shift, flip) = x.shape[1:], augment

        @tf.autograph.experimental.do_not_convert  # plain TensorFlow ops: nothing to convert
        def shift_and_flip(image, label):
            padded = tf.pad(image, [[shift, shift], [shift, shift], [0, 0]])
            image = tf.image.random_crop(padded, shape, seed=seed)
            return (tf.image.random_flip_left_right(image, seed=seed) if flip else image), label
        data = data.map(shift_and_flip)
    return data.batch(batch_size)


class _StopWhenFitted(tf.keras.callbacks.Callback):
    """Evaluates the un-augmented training set after every epoch; stops at `stop_at`."""

    def __init__(self, x, y, stop_at, history):
        super().__init__()
        self.x, self.y, self.stop_at, self.history = x, y, stop_at, history

    def on_epoch_end(self, epoch, logs=None):
        acc, loss = evaluate(self.model, self.x, self.y)
        self.history.accuracy.append(acc)
        self.history.cross_entropy.append(loss)
        if not np.isfinite(loss):
            self.history.diverged = f"the training loss became {loss} at epoch {epoch + 1}"
            self.model.stop_training = True
        elif acc >= self.stop_at:
            self.history.reached = True
            self.model.stop_training = True


class _EpochCounter(tf.keras.callbacks.Callback):
    def __init__(self, history):
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        self.history.epochs = epoch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss) and self.history.diverged is None:
            self.history.diverged = f"the training loss became {loss} at epoch {epoch + 1}"
            self.model.stop_training = True


def fit_to_data(model, x, y, *, learning_rate, batch_size, epochs, stop_at=None, seed=0,
                augment=None):
    """Train `model` (SGD, momentum 0.9, constant `learning_rate`, cross-entropy of the logits)
    on (x, y) for at most `epochs` epochs, stopping once the training accuracy reaches `stop_at`
    (None: run every epoch, no per-epoch evaluation). Returns the History."""
    history = History([], [])
    callbacks = [_EpochCounter(history)]
    if stop_at is not None:
        callbacks.append(_StopWhenFitted(x, y, stop_at, history))
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(batches(x, y, batch_size, seed, augment), epochs=epochs, shuffle=False, verbose=0,
              callbacks=callbacks)
    return history
