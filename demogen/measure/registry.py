"""The registry of features: producers, groups of columns, and measuring and computing them.

A measurement of a model is made by *producers*, each measured once per model for every feature
that needs it; a *group* of feature columns is computed from one producer's value by one
function, and a column is named "<group>.<name>". Each producer and each group has its own
version; a group's version string is "<producer version>.<group version>" (`version`). A
feature family is one module that registers its producer and its groups, and one line that
imports it (demogen.measure.features lists the runtime's); the offline package registers its own
(not shipped: the runtime never computes them). Feature tables, side files and the frozen
predictor all go through `measure` and `compute`, so a feature has one definition.
"""

import dataclasses

import numpy as np

from demogen.defaults import DEFAULTS


@dataclasses.dataclass(frozen=True)
class Producer:
    """A part of a measurement: `measure(model, data, sample, measurement)` gives its value
    (`sample`: the sampling settings n_examples, seed, batch_size; `measurement`: the values of
    the producers it `needs`, measured first); `to_arrays(value)` and `from_arrays(arrays)` keep
    it in a side file (None: not kept, and from_arrays gives None when the arrays lack it);
    `subsample(value, positions)` gives its value on the examples at `positions` of its sample
    (repeats allowed), for the groups marked `per_example` (None: it has none; see
    demogen_fit.budget).
    A producer that `narrows` also takes `columns=` (the feature columns wanted) and then
    measures only what they need, their values unchanged (the frozen predictor passes its
    features; tables and side files always get the whole value)."""
    version: int
    measure: object
    to_arrays: object = None
    from_arrays: object = None
    needs: tuple = ()
    shipped: bool = True
    narrows: bool = False
    subsample: object = None


@dataclasses.dataclass(frozen=True)
class Group:
    """Columns computed together by `compute(value)` from the value of one producer (`needs`);
    `per_example`: they read only what the producer's `subsample` keeps, so they can be
    computed again on fewer of the sampled examples."""
    names: tuple
    needs: str
    compute: object
    version: int = 1
    shipped: bool = True
    per_example: bool = False


class Measurement(dict):
    """{producer: value} of one model; a registered producer's value also reads as an attribute
    (measurement.margins), None when it was not measured; `failed`: {producer: reason} of the
    producers that could not be measured."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failed = {}

    def __getattr__(self, name):
        if name in PRODUCERS:
            return self.get(name)
        raise AttributeError(name)


PRODUCERS, GROUPS, COLUMNS = {}, {}, {}


def register_producer(name, producer):
    """Add a producer to the registry (again: replace it)."""
    PRODUCERS[name] = producer


def register(name, group):
    """Add a group of columns to the registry (again: replace it); its producer must be known
    and its columns must be new."""
    if group.needs not in PRODUCERS:
        raise ValueError(f"group {name}: unknown producer {group.needs!r}; register it first")
    taken = [c for c in group.names if COLUMNS.get(c, name) != name]
    if taken:
        raise ValueError(f"group {name}: the columns {', '.join(taken[:3])} belong to another "
                         "group")
    GROUPS[name] = group
    COLUMNS.update({column: name for column in group.names})


def sample_settings(sample):
    """The sampling settings a producer is given, with demogen's defaults where left out."""
    return {**DEFAULTS, **sample}


def version(group):
    """The version string of a group: "<producer version>.<group version>"."""
    spec = GROUPS[group]
    return f"{PRODUCERS[spec.needs].version}.{spec.version}"


def versions(groups=None):
    """{group: version string} of the given groups (default: every registered group)."""
    return {group: version(group) for group in (GROUPS if groups is None else groups)}


def groups_of(columns):
    """The groups that compute `columns`, in registry order; an unknown column is an error that
    lists the groups."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown feature(s) {', '.join(unknown[:5])}; features are "
                         f"<group>.<name> with the groups {', '.join(GROUPS)}")
    wanted = {COLUMNS[c] for c in columns}
    return [group for group in GROUPS if group in wanted]


def in_order(producers):
    """The producers with those they need, each after its needs."""
    order = []

    def add(name):
        for need in PRODUCERS[name].needs:
            add(need)
        if name not in order:
            order.append(name)

    for name in producers:
        add(name)
    return order


def producers_of(groups):
    """The producers these groups need, with the producers those need, in measuring order."""
    return in_order(GROUPS[group].needs for group in groups)


def measure(model, data, producers=None, tolerate=(), columns=None, **sample):
    """The Measurement of a trained model by the given producers (default: every registered
    one) and those they need; `sample`: the sampling settings n_examples, seed, batch_size of
    extract_margins (its defaults where left out); `columns`: the feature columns wanted, for
    the producers that narrow (None: everything). A ValueError of a producer named in
    `tolerate` is kept in `measurement.failed` (its groups are then NaN with the reason); any
    other propagates."""
    measurement = Measurement()
    for name in in_order(PRODUCERS if producers is None else producers):
        producer = PRODUCERS[name]
        narrow = {"columns": columns} if producer.narrows and columns is not None else {}
        try:
            measurement[name] = producer.measure(model, data, sample, measurement, **narrow)
        except ValueError as error:
            if name not in tolerate:
                raise
            measurement.failed[name] = str(error)
    return measurement


def compute(measurement, groups=None):
    """({column: value}, {group: reason}) for the given groups (default: every group the
    measurement can serve). A group that cannot be computed for this model (e.g. a layer with
    zero total variation, for the normalized signatures) gets NaN values and its reason."""
    if groups is None:
        groups = [g for g, spec in GROUPS.items()
                  if measurement.get(spec.needs) is not None or spec.needs in measurement.failed]
    values, errors = {}, {}
    for group in groups:
        spec = GROUPS[group]
        try:
            if spec.needs in measurement.failed:
                raise ValueError(measurement.failed[spec.needs])
            numbers = np.asarray(spec.compute(measurement[spec.needs]), dtype=np.float64)
        except ValueError as error:
            numbers, errors[group] = np.full(len(spec.names), np.nan), str(error)
        values.update(zip(spec.names, (float(v) for v in numbers)))
    return values, errors


def to_arrays(measurement):
    """The measurement as a flat dict of numpy arrays (what a side file stores): every producer
    that keeps its value there."""
    arrays = {}
    for name, value in measurement.items():
        if value is not None and PRODUCERS[name].to_arrays is not None:
            arrays.update(PRODUCERS[name].to_arrays(value))
    return arrays


def from_arrays(arrays):
    """The Measurement stored by `to_arrays` (the producers whose arrays are there)."""
    measurement = Measurement()
    for name, spec in PRODUCERS.items():
        value = spec.from_arrays(arrays) if spec.from_arrays is not None else None
        if value is not None:
            measurement[name] = value
    return measurement
