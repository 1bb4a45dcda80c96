"""How a trained classifier responds to perturbations of its training examples, and how well its
hidden features separate the classes.

`measure` runs every perturbation on a seeded sample (inputs and labels, e.g. from
demogen.measure.sampling) and returns `Responses`: for each condition, which examples stay
correct (true class strictly above every other on the logits) and the mean output margin
f_i - f_j (j the best other class), plus the Davies-Bouldin index of the classes at h1, h2, h3.
The feature functions (`FEATURE_GROUPS`) are plain numpy on `Responses`.

Conditions (CONDITIONS, 48 in all; strengths as in the names):
- "clean": the unperturbed model (strength 0 of every response curve).
- "noise/<slot>/<sigma>", sigma in NOISE: Gaussian noise added to the slot's activations (the
  input, h1, h2, h3 of demogen.measure.layers), each coordinate's noise scaled by that
  coordinate's standard deviation over the sample (ddof 0; a constant coordinate gets none);
  the rest of the network runs from the slot (ModelGraph.run_from).
- "mixup_within/<slot>/<lambda>", lambda in MIXUP: the slot's activations become
  (1 - lambda) a + lambda a', a' those of a partner of the same class, the label kept. Partners:
  a seeded permutation of each class, each example paired with the next one of its class (never
  itself, unless it is its class's only example in the sample: then it is unchanged, and a note
  says so).
- "mixup_across/<slot>/<lambda>": the same with a partner drawn uniformly (seeded) from the
  examples of the other classes; lambda < 0.5, so the example itself dominates and gives the
  label. Undefined (NaN, with the reason) when the sample holds one class.
- "shift/<k>", k in SHIFTS: the input moved by k positions with zero fill, along one direction
  (either way along one spatial axis) drawn per example (seeded, the same for every k): the
  condition's accuracy estimates the mean over all directions at the cost of one pass. Spatial
  axes: every axis of an example but the last (channels): images (H, W, C), 1-D signals (L, C).
  An input of rank 1 has none: the shift family is undefined (NaN, with the reason), the others
  are computed.
- "weights/<sigma>/<draw>", sigma in WEIGHT_NOISE, WEIGHT_DRAWS draws: every weight of the
  weighted layers (the kernels and biases of Dense and convolution layers; not batch-norm
  parameters or statistics) multiplied by 1 + sigma z, z ~ N(0, 1) per weight (magnitude-aware
  noise, the sharpness comparison). The weights are restored exactly afterwards, also on error.

Seeds: each family's draws come from its own `numpy.random.default_rng`, seeded by the
measurement's seed and a fixed label ("noise/<layer position>", "mixup_within", "mixup_across",
"shift", "weights/<draw>"); nothing touches a global random state (numpy's, Python's or
TensorFlow's). Within a family the same draws serve every strength (common random numbers: one
noise direction scaled up, one partner per example), so a response curve compares strengths on
the same draws. One model and seed give the same numbers bit for bit on CPU.

A frozen predictor measures only what its columns need (`conditions_for`: the conditions of
their response curves, and the class statistics only for the Davies-Bouldin columns).

Cost (forward passes over the sample, all conditions): 1 for the statistics (each slot's
per-coordinate spread and the class centroids), 1 clean, 2 for the mixup partners' activations,
9 from the input (noise and mixups), 27 from h1, h2 or h3 (each a part of a forward pass), 2 for
the shifts, 9 for the weight noise: at most 51 forward passes. Measured on 2 CPU cores
(benchmarks/perturbation.py, docs/performance.md): 12 to 16 times one forward+backward pass over
the same examples for the CIFAR-sized VGG of benchmarks/complexity.py on 2,048 examples (about a
minute), 22 to 25 times for the corpus's VGG on 28x28x1 with 1,000 examples (about 7 s; a small
model pays relatively more for tracing and per-call overhead).

Features, per family (the group name leads each name; curves average the draws at a strength):
"<family>[.<slot>].acc.<strength>" and ".margin.<strength>" at each strength, and ".acc.auc" and
".margin.auc": the trapezoid area under the response curve over [0, largest strength] (strength
0: the clean value) divided by the largest strength, i.e. the curve's mean height, in the units
of accuracy or margin. "keep.<family>[.<slot>].auc": the same area for the share of the examples
correct unperturbed that stay correct (which, unlike the accuracies, does not encode the
training accuracy). "db.h1", "db.h2", "db.h3": the Davies-Bouldin index of the classes in the
flattened activations at h1, h2, h3 (NaN where undefined, with the reason).
"""

import contextlib
import dataclasses
import functools
import json
import zlib

import numpy as np

from demogen.defaults import DEFAULTS
from demogen.measure import registry
from demogen.measure.accuracy import output_margin
from demogen.measure.graph import INPUT, WEIGHTED, ModelGraph, class_name
from demogen.measure.layers import SLOTS, choose_layers

NOISE = (0.1, 0.3, 1.0)  # noise standard deviation, in units of each coordinate's spread
MIXUP = (0.1, 0.25, 0.4)  # the partner's weight lambda
SHIFTS = (1, 2)  # positions
WEIGHT_NOISE = (0.025, 0.05, 0.1)  # relative standard deviation of each weight's noise
WEIGHT_DRAWS = 3
SLOT_FAMILIES = ("noise", "mixup_within", "mixup_across")
GRIDS = {"noise": NOISE, "mixup_within": MIXUP, "mixup_across": MIXUP, "shift": SHIFTS,
         "weights": WEIGHT_NOISE}
HIDDEN = SLOTS[1:]  # the slots of the Davies-Bouldin index


def _text(strength):
    return f"{strength:g}"


def _plan(slots):
    """(condition name, key) in CONDITIONS order; a key names what is computed: ("clean",),
    (family, layer position, strength), ("shift", k) or ("weights", sigma, draw)."""
    plan = [("clean", ("clean",))]
    for family in SLOT_FAMILIES:
        plan += [(f"{family}/{slot}/{_text(s)}", (family, position, s))
                 for slot, position in zip(SLOTS, slots) for s in GRIDS[family]]
    plan += [(f"shift/{k}", ("shift", k)) for k in SHIFTS]
    plan += [(f"weights/{_text(s)}/{draw}", ("weights", s, draw))
             for s in WEIGHT_NOISE for draw in range(1, WEIGHT_DRAWS + 1)]
    return plan


CONDITIONS = tuple(name for name, _ in _plan([INPUT] * len(SLOTS)))


@dataclasses.dataclass(frozen=True)
class Responses:
    """One model's responses on a sample of n examples.

    conditions: the condition names (CONDITIONS); correct: (n_conditions, n) bool, whether each
    example is classified correctly under each condition; margin: (n_conditions,) float64, the
    mean output margin; davies_bouldin: (3,) float64 at h1, h2, h3; layers: the four slots'
    layers ("input" or "index:ClassName"); reasons: {family or "db": why it is undefined}
    (its conditions have no correct example and a NaN margin); notes: remarks on the measurement.
    """
    conditions: tuple
    correct: np.ndarray
    margin: np.ndarray
    davies_bouldin: np.ndarray
    layers: tuple
    reasons: dict
    notes: tuple


def generator(seed, label):
    """The random generator of one family's draws: seeded by the measurement's seed and a label."""
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


def within_class_partners(labels, rng):
    """Each example's partner of the same class: a seeded permutation of every class, each
    example paired with the next one of its class (itself only when it is alone in its class)."""
    partners = np.arange(len(labels))
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        partners[members] = np.roll(members, -1)
    return partners


def across_class_partners(labels, rng):
    """Each example's partner drawn uniformly from the examples of the other classes."""
    order = np.argsort(labels, kind="stable")
    classes, first, count = np.unique(labels[order], return_index=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"the sample holds examples of one class only ({classes[0]}): mixup "
                         "across classes needs two; measure on a sample of several classes")
    own = np.searchsorted(classes, labels)
    draw = rng.integers(0, len(labels) - count[own])
    return order[draw + (draw >= first[own]) * count[own]]


def shift(x, axis, offset):
    """x moved by `offset` positions along `axis`, zero-filled."""
    moved = np.zeros_like(x)
    size = x.shape[axis]
    if abs(offset) >= size:
        return moved
    target, source = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    target[axis] = slice(offset, None) if offset >= 0 else slice(0, size + offset)
    source[axis] = slice(0, size - offset) if offset >= 0 else slice(-offset, None)
    moved[tuple(target)] = x[tuple(source)]
    return moved


def shift_directions(input_shape):
    """(batch axis, sign) of every direction of every spatial axis of an input: all axes of an
    example but the last (channels); none for an input of rank 1."""
    return [(axis + 1, sign) for axis in range(len(input_shape) - 1) for sign in (1, -1)]


def _weighted_layers(graph):
    return [layer for layer in graph.layers if class_name(layer) in WEIGHTED]


def _sync_head(graph):
    """The softmax-free twin of the logits layer (see ModelGraph) takes that layer's weights."""
    if graph.logits_head is not None:
        graph.logits_head.set_weights(graph.layers[graph.logits_layer].get_weights())


@contextlib.contextmanager
def perturbed_weights(graph, sigma, rng):
    """Within the block, every weight w of the weighted layers is w * (1 + sigma z), z ~ N(0, 1)
    drawn from `rng`; afterwards the weights are restored exactly, also when the block raises."""
    layers = _weighted_layers(graph)
    saved = [layer.get_weights() for layer in layers]
    try:
        for layer, weights in zip(layers, saved):
            layer.set_weights([(w * (1 + sigma * rng.standard_normal(w.shape))).astype(w.dtype)
                               for w in weights])
        _sync_head(graph)
        yield
    finally:
        for layer, weights in zip(layers, saved):
            layer.set_weights(weights)
        _sync_head(graph)


def davies_bouldin_index(centroids, spreads):
    """The Davies-Bouldin index of classes with these centroids (K, d) and spreads (K,) (the mean
    distance of a class's points to its centroid): the mean over classes i of the largest
    (s_i + s_j) / ||c_i - c_j|| over the other classes j."""
    centroids = np.asarray(centroids, dtype=np.float64)
    spreads = np.asarray(spreads, dtype=np.float64)
    if len(centroids) < 2:
        raise ValueError("one class only: the Davies-Bouldin index needs two")
    distances = np.stack([np.linalg.norm(centroids - c, axis=1) for c in centroids])
    apart = ~np.eye(len(centroids), dtype=bool)
    if not np.all(distances[apart] > 0):
        raise ValueError("two classes have the same centroid")
    ratios = np.where(apart, spreads[:, None] + spreads[None, :], 0) / np.where(apart, distances, 1)
    return float(ratios.max(axis=1).mean())


def _statistics_step(graph, positions, n_classes):
    """A compiled function of a batch (x, y): per tap, the per-coordinate batch mean and sum of
    squared deviations, and the per-class sums of the flattened activations."""
    import tensorflow as tf


    def step(x, y):
        activations = graph.forward(x, positions)[0]
        out = []
        for activation in activations:
            flat = tf.reshape(tf.cast(activation, tf.float32), [tf.shape(x)[0], -1])
            mean = tf.reduce_mean(flat, axis=0)
            out.append((mean, tf.reduce_sum(tf.square(flat - mean), axis=0),
                        tf.math.unsorted_segment_sum(flat, y, n_classes)))
        return out

    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), graph.input_dtype)
    return tf.function(step, input_signature=[spec, tf.TensorSpec((None,), tf.int32)])


def _check(graph, inputs, labels, seed, batch_size):
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"the seed must be a whole number >= 0, got {seed!r}")
    if len(inputs) == 0 or len(inputs) != len(labels):
        raise ValueError(f"{len(inputs)} inputs and {len(labels)} labels: give one integer label "
                         "per input, at least one example (demogen.measure.sampling.sample)")
    if len(inputs.shape) != len(graph.input_shape) + 1 or any(
            e is not None and e != g for e, g in zip(graph.input_shape, inputs.shape[1:])):
        raise ValueError(f"inputs have shape {inputs.shape[1:]} per example but the model expects "
                         f"{tuple(graph.input_shape)}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or np.any(
            (labels < 0) | (labels >= graph.n_classes)):
        raise ValueError(f"labels must be class indices 0 to {graph.n_classes - 1}, one per input")


def _statistics(graph, positions, inputs, labels, batches):
    """Pass 1: at each tap, the per-coordinate spread (float32) and the per-class sums (float64,
    (n_classes, size)), from the batches' means and sums of squared deviations: the spread's
    square is (sum of deviations + sum over batches of count * mean^2 - n * overall mean^2) / n."""
    step = _statistics_step(graph, positions, graph.n_classes)
    class_sums, squares, deviations = ([0.0] * len(positions) for _ in range(3))
    for rows in batches:
        count = len(inputs[rows])
        for i, (mean, deviation, sums) in enumerate(step(inputs[rows], labels[rows])):
            class_sums[i] = class_sums[i] + sums.numpy().astype(np.float64)
            squares[i] = squares[i] + count * mean.numpy().astype(np.float64) ** 2
            deviations[i] = deviations[i] + deviation.numpy()
    n = len(inputs)
    scales = [np.sqrt(np.maximum(d + q - s.sum(axis=0) ** 2 / n, 0) / n).astype(np.float32)
              for s, q, d in zip(class_sums, squares, deviations)]
    return scales, class_sums


def _draws(graph, labels, seed, reasons, notes):
    """The mixup partners (within and across classes) and each example's shift direction (None
    without spatial axes); what is undefined goes to `reasons`."""
    within = within_class_partners(labels, generator(seed, "mixup_within"))
    if np.any(within == np.arange(len(labels))):
        notes.append("a class with a single example in the sample: its mixup within the class "
                     "leaves it unchanged")
    try:
        across = across_class_partners(labels, generator(seed, "mixup_across"))
    except ValueError as error:
        across, reasons["mixup_across"] = within, str(error)
    directions = shift_directions(graph.input_shape)
    if not directions:
        reasons["shift"] = (f"the input has shape {tuple(graph.input_shape)}, no spatial axes "
                            "(an example of rank 1): shifts need images (H, W, C) or signals (L, C)")
        return within, across, None
    return within, across, generator(seed, "shift").integers(0, len(directions), len(labels))


def conditions_for(columns):
    """{"conditions": the condition names, "separation": whether the Davies-Bouldin indices are
    wanted} that the perturbation columns among `columns` are computed from (every strength of
    each of their response curves; the others are ignored): the arguments of `measure` that
    measure no more than those columns need."""
    wanted, separation = set(), False
    for column in columns:
        group = registry.COLUMNS.get(column)
        if group == "db":
            separation = True
        for family in GRIDS if group == "keep" else [group] if group in GRIDS else []:
            for prefix, strengths in _curves(family):
                if column == f"keep.{prefix}.auc" or (group != "keep"
                                                      and column.startswith(prefix + ".")):
                    wanted.update(name for names in strengths for name in names)
    return {"conditions": wanted, "separation": separation}


def measure(model, inputs, labels, *, seed=DEFAULTS["seed"], batch_size=DEFAULTS["batch_size"],
            layers=None, conditions=None, separation=True):
    """The Responses of a trained Keras classifier on a sample (inputs, integer labels).

    layers: None for the default layer rule (demogen.measure.layers), or names for h1, h2, h3
    (or all four slots) as `choose_layers` takes them. conditions: None for all of CONDITIONS,
    or the names to measure ("clean" is always measured); separation: whether to measure the
    Davies-Bouldin indices (NaN otherwise). A condition measured gives the same numbers whichever
    others are (each family and layer draws from its own generator). The model's weights are
    unchanged afterwards."""
    import tensorflow as tf

    graph = ModelGraph(model)
    inputs = np.asarray(inputs).astype(graph.input_dtype.as_numpy_dtype, copy=False)
    labels = np.asarray(labels)
    _check(graph, inputs, labels, seed, batch_size)
    labels = labels.astype(np.int32)
    slots, notes = choose_layers(graph, layers)
    plan = [(name, key) for name, key in _plan(slots)
            if conditions is None or name == "clean" or name in conditions]
    keys = {key for _, key in plan}
    positions = sorted({INPUT} | {key[1] for key in keys if key[0] in SLOT_FAMILIES}
                       | (set(slots[1:]) if separation else set()))
    batches = [slice(start, start + batch_size) for start in range(0, len(inputs), batch_size)]

    scales, class_sums = _statistics(graph, positions, inputs, labels, batches)
    counts = np.bincount(labels, minlength=graph.n_classes)
    present = counts > 0
    centroids = [tf.constant((sums[present] / counts[present, None]).astype(np.float32))
                 for sums in class_sums]
    class_index = np.cumsum(present) - 1  # a label's row among the classes present
    reasons = {}
    within, across, direction = _draws(graph, labels, seed, reasons, notes)
    directions = shift_directions(graph.input_shape)
    noise = [generator(seed, f"noise/{p}") for p in positions]

    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), graph.input_dtype)
    taps_of = tf.function(lambda x: graph.forward(x, positions)[:2], input_signature=[spec])
    tap_specs = taps_of.get_concrete_function().structured_outputs[0]
    logits_from = {p: tf.function(functools.partial(graph.run_from, p),
                                  input_signature=[tf.TensorSpec(t.shape, t.dtype)])
                   for p, t in zip(positions, tap_specs)}
    margins = {}  # key (see _plan): the output margins of each batch

    def record(key, logits, rows):
        margins.setdefault(key, []).append(output_margin(logits, labels[rows]))

    # Pass 2: the clean model, noise, mixups and shifts, batch by batch; the class spreads.
    distance_sums = [np.zeros(int(present.sum())) for _ in positions]
    for rows in batches:
        x, y = inputs[rows], labels[rows]
        count = len(x)
        clean, logits = taps_of(x)
        record(("clean",), logits, rows)
        if any(key[0] in ("mixup_within", "mixup_across") for key in keys):
            partners = taps_of(inputs[np.concatenate([within[rows], across[rows]])])[0]
        for i, p in enumerate(positions):
            a = clean[i]
            if separation:
                flat = tf.reshape(tf.cast(a, tf.float32), [count, -1])
                distances = tf.norm(flat - tf.gather(centroids[i], class_index[y]),
                                    axis=1).numpy()
                distance_sums[i] += np.bincount(class_index[y], distances,
                                                len(distance_sums[i]))
            if any(("noise", p, s) in keys for s in NOISE):
                unit = noise[i].standard_normal((count, scales[i].size), np.float32) * scales[i]
                unit = tf.cast(tf.reshape(unit, tf.shape(a)), a.dtype)
            for s in NOISE:
                if ("noise", p, s) in keys:
                    record(("noise", p, s), logits_from[p](a + s * unit), rows)
            for j, family in enumerate(("mixup_within", "mixup_across")):
                for s in MIXUP:
                    if (family, p, s) in keys:
                        partner = partners[i][j * count:(j + 1) * count]
                        record((family, p, s), logits_from[p]((1 - s) * a + s * partner), rows)
        if direction is not None and any(key[0] == "shift" for key in keys):
            for k in SHIFTS:
                moved = np.empty_like(x)
                for d, (axis, sign) in enumerate(directions):
                    chosen = direction[rows] == d
                    moved[chosen] = shift(x[chosen], axis, sign * k)
                record(("shift", k), logits_from[INPUT](moved), rows)

    # Pass 3: weight noise, one pass per strength and draw.
    for draw in range(1, WEIGHT_DRAWS + 1):
        for s in WEIGHT_NOISE:
            if ("weights", s, draw) not in keys:
                continue
            with perturbed_weights(graph, s, generator(seed, f"weights/{draw}")):
                for rows in batches:
                    record(("weights", s, draw), logits_from[INPUT](inputs[rows]), rows)

    margin = np.full((len(plan), len(labels)), np.nan)
    for row, (name, key) in enumerate(plan):
        if name.split("/")[0] not in reasons:
            margin[row] = np.concatenate(margins[key])
    davies_bouldin = np.full(len(HIDDEN), np.nan)
    for j, slot in enumerate(HIDDEN if separation else ()):
        i = positions.index(slots[SLOTS.index(slot)])
        try:
            davies_bouldin[j] = davies_bouldin_index(centroids[i].numpy(),
                                                     distance_sums[i] / counts[present])
        except ValueError as error:
            reasons.setdefault("db", f"{slot}: {error}")
    return Responses(tuple(name for name, _ in plan), margin > 0, margin.mean(axis=1),
                     davies_bouldin, tuple(graph.label(k) for k in slots), reasons, tuple(notes))


def _curves(family):
    """(name prefix, the conditions at each strength) of a family's response curves."""
    grid = [_text(s) for s in GRIDS[family]]
    if family in SLOT_FAMILIES:
        return [(f"{family}.{slot}", [[f"{family}/{slot}/{s}"] for s in grid]) for slot in SLOTS]
    if family == "shift":
        return [(family, [[f"shift/{s}"] for s in grid])]
    return [(family, [[f"weights/{s}/{d}" for d in range(1, WEIGHT_DRAWS + 1)] for s in grid])]


def feature_names(family):
    """The feature names of a perturbation family (a key of GRIDS)."""
    grid = [_text(s) for s in GRIDS[family]]
    return tuple(f"{prefix}.{quantity}.{s}" for prefix, _ in _curves(family)
                 for quantity in ("acc", "margin") for s in grid + ["auc"])


def _area(grid, clean, values):
    """The trapezoid area under (0, clean), (grid, values), divided by the largest strength."""
    x, y = np.concatenate([[0.0], grid]), np.concatenate([[clean], values])
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / x[-1])


def family_features(responses, family):
    """The values of `feature_names(family)`: accuracy and mean margin at each strength (the mean
    over draws) and the areas under the curves (NaN for a curve not measured); a ValueError with
    the reason when undefined."""
    if family in responses.reasons:
        raise ValueError(responses.reasons[family])
    row = {name: i for i, name in enumerate(responses.conditions)}
    accuracy, margin = responses.correct.mean(axis=1), responses.margin
    grid = np.asarray(GRIDS[family], dtype=np.float64)
    values = []
    for _, strengths in _curves(family):
        for quantity in (accuracy, margin):
            curve = [_mean(row, names, lambda i: quantity[i]) for names in strengths]
            values += curve + [_area(grid, quantity[row["clean"]], curve)]
    return np.array(values)


def _mean(row, names, value):
    """The mean of value(row of each condition named); NaN where one was not measured."""
    return np.mean([value(row[name]) for name in names]) if all(n in row for n in names) \
        else np.nan


def davies_bouldin_features(responses):
    """db.h1, db.h2, db.h3 (NaN where undefined: see responses.reasons["db"])."""
    return np.asarray(responses.davies_bouldin, dtype=np.float64)


def kept_features(responses):
    """keep.<curve>.auc for every response curve: the area under the curve of the share of the
    examples classified correctly unperturbed that stay correct (1 at strength 0), divided by
    the largest strength; NaN for an undefined family, a curve not measured (`conditions`) or
    where no example is correct unperturbed. Unlike the accuracies under perturbation, these do
    not encode the training accuracy itself."""
    row = {name: i for i, name in enumerate(responses.conditions)}
    clean = responses.correct[row["clean"]]
    values = []
    for family in GRIDS:
        grid = np.asarray(GRIDS[family], dtype=np.float64)
        for _, strengths in _curves(family):
            if family in responses.reasons or not clean.any():
                values.append(np.nan)
                continue
            curve = [_mean(row, names, lambda i: responses.correct[i][clean].mean())
                     for names in strengths]
            values.append(_area(grid, 1.0, curve))
    return np.array(values)


FEATURE_GROUPS = {family: (feature_names(family), functools.partial(family_features, family=family))
                  for family in GRIDS}
FEATURE_GROUPS["keep"] = (tuple(f"keep.{prefix}.auc" for family in GRIDS
                                for prefix, _ in _curves(family)), kept_features)
FEATURE_GROUPS["db"] = (tuple(f"db.{slot}" for slot in HIDDEN), davies_bouldin_features)


def _produce(model, data, sample, measurement, columns=None):
    """The producer "perturbation": `measure` on the margin sample, seeded by its seed; with
    `columns`, only the conditions they need."""
    from demogen.measure.sampling import sample as draw

    settings = registry.sample_settings(sample)
    graph = ModelGraph(model)
    inputs, labels = draw(data, graph.input_shape, graph.n_classes, settings["n_examples"],
                          settings["seed"])
    return measure(model, inputs, labels, seed=settings["seed"],
                   batch_size=settings["batch_size"],
                   **(conditions_for(columns) if columns is not None else {}))


def _to_arrays(responses):
    """Per condition the packed correctness bits and the mean margin, the
    Davies-Bouldin indices, and the rest as JSON."""
    return {"perturbation_correct": np.packbits(responses.correct, axis=1),
            "perturbation_n": np.int64(responses.correct.shape[1]),
            "perturbation_margin": np.asarray(responses.margin, np.float64),
            "perturbation_db": np.asarray(responses.davies_bouldin, np.float64),
            "perturbation_info": np.array(json.dumps({
                "conditions": list(responses.conditions), "layers": list(responses.layers),
                "reasons": responses.reasons, "notes": list(responses.notes)}))}


def _from_arrays(arrays):
    if "perturbation_correct" not in arrays:
        return None
    info = json.loads(str(arrays["perturbation_info"]))
    correct = np.unpackbits(arrays["perturbation_correct"], axis=1)
    return Responses(tuple(info["conditions"]),
                     correct[:, :int(arrays["perturbation_n"])].astype(bool),
                     np.asarray(arrays["perturbation_margin"], np.float64),
                     np.asarray(arrays["perturbation_db"], np.float64), tuple(info["layers"]),
                     info["reasons"], tuple(info["notes"]))


def _subsample(responses, positions):
    """The responses of the examples at `positions` of the sample: their correctness bits; the
    mean margins and the Davies-Bouldin indices are not kept per example (NaN)."""
    return dataclasses.replace(responses, correct=responses.correct[:, positions],
                               margin=np.full_like(responses.margin, np.nan),
                               davies_bouldin=np.full_like(responses.davies_bouldin, np.nan))


registry.register_producer("perturbation", registry.Producer(
    1, _produce, _to_arrays, _from_arrays, narrows=True, subsample=_subsample))
for _group, (_names, _compute) in FEATURE_GROUPS.items():
    registry.register(_group, registry.Group(_names, "perturbation", _compute,
                                             per_example=_group == "keep"))
