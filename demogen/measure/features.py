"""The features a predictor can use: one registry of small functions of a model's measurement.

A `Measurement` is what demogen measures of one trained model: its margins at four layers on a
seeded sample of its training data (demogen.measure.margins) and the singular values of its
kernels (demogen.measure.weights). Every feature is computed from it by one function of `GROUPS`,
which maps a group name to its column names and the function; a column is named
"<group>.<name>", e.g. "qrt.h2.q3" or "w.alpha.mean". Feature tables, side files and the frozen
predictor all go through `compute`, so a feature has one definition.

Groups:
- qrt, mom and their .unnorm / .signed variants: the 20-number margin signatures (quartiles or
  moments; normalized by the total variation unless .unnorm; positive margins only unless
  .signed).
- out: the quartile signature of the signed output margin f_i - f_j over all sampled examples.
- acc: acc.sample, the share of sampled training examples classified correctly.
- tv: each slot's total variation (tv.input, tv.h1, tv.h2, tv.h3).
- w: data-free weight metrics (demogen.measure.weights): w.log_spectral.mean/.sum,
  w.log_frobenius.mean/.sum, w.alpha.mean, w.alpha_hat.mean, w.alpha.count, w.n_kernels.
"""

import dataclasses
import json
import warnings

import numpy as np

from demogen.measure import weights
from demogen.measure.layers import SLOTS
from demogen.measure.signature import STATISTICS, Margins, feature_names, quartile_signature

FEATURES_VERSION = 1  # goes up when a feature changes or one is added
MARGINS, WEIGHTS = "margins", "weights"


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One model's margins (or None when not measured) and kernel spectra (or None)."""
    margins: Margins = None
    spectra: tuple = None


@dataclasses.dataclass(frozen=True)
class Group:
    """Columns computed together from one part of a measurement (`needs`)."""
    names: tuple
    needs: str
    compute: object


def _signature_group(statistic, normalize, signed):
    prefix = ".".join(["qrt" if statistic == "quartile" else "mom"]
                      + ([] if normalize else ["unnorm"]) + (["signed"] if signed else []))

    def compute(measurement):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no correct example: NaN, recorded by the caller
            return measurement.margins.signature(statistic, normalize, signed).values

    names = tuple(f"{prefix}.{name}" for name in feature_names(SLOTS, statistic))
    return prefix, Group(names, MARGINS, compute)


def _output_margin(measurement):
    return quartile_signature(measurement.margins.output_margin)


def sample_accuracy_of(margins):
    """The share of the margin sample classified correctly (a positive output margin)."""
    return float(np.mean(margins.output_margin > 0))


def _sample_accuracy(measurement):
    return [sample_accuracy_of(measurement.margins)]


def _total_variation(measurement):
    return measurement.margins.total_variation


WEIGHT_METRICS = ("log_spectral.mean", "log_spectral.sum", "log_frobenius.mean",
                  "log_frobenius.sum", "alpha.mean", "alpha_hat.mean", "alpha.count",
                  "n_kernels")


def _weight_metrics(measurement):
    values = weights.metrics(measurement.spectra)
    return [values[name] for name in WEIGHT_METRICS]


GROUPS = dict(_signature_group(statistic, normalize, signed)
              for statistic in STATISTICS for normalize in (True, False)
              for signed in (False, True))
GROUPS.update({
    "out": Group(tuple(f"out.{s}" for s in STATISTICS["quartile"]), MARGINS, _output_margin),
    "acc": Group(("acc.sample",), MARGINS, _sample_accuracy),
    "tv": Group(tuple(f"tv.{slot}" for slot in SLOTS), MARGINS, _total_variation),
    "w": Group(tuple(f"w.{name}" for name in WEIGHT_METRICS), WEIGHTS, _weight_metrics),
})
COLUMNS = {name: group for group, spec in GROUPS.items() for name in spec.names}


def groups_of(columns):
    """The groups that compute `columns`, in registry order; an unknown column is an error that
    lists the groups."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown feature(s) {', '.join(unknown[:5])}; features are "
                         f"<group>.<name> with the groups {', '.join(GROUPS)}")
    wanted = {COLUMNS[c] for c in columns}
    return [group for group in GROUPS if group in wanted]


def needs_of(groups):
    """What a measurement must hold for these groups: a subset of {"margins", "weights"}."""
    return {GROUPS[group].needs for group in groups}


def measure(model, data, needs=(MARGINS, WEIGHTS), **extract_kwargs):
    """The Measurement of a trained model: margins on a seeded sample of `data` (options of
    extract_margins) when "margins" is needed, kernel spectra when "weights" is."""
    from demogen.measure.margins import extract_margins  # with TensorFlow

    return Measurement(
        margins=extract_margins(model, data, **extract_kwargs) if MARGINS in needs else None,
        spectra=tuple(weights.spectra(model)) if WEIGHTS in needs else None)


def compute(measurement, groups=None):
    """({column: value}, {group: reason}) for the given groups (default: every group the
    measurement can serve). A group that cannot be computed for this model (e.g. a layer with
    zero total variation, for the normalized signatures) gets NaN values and its reason."""
    if groups is None:
        held = {MARGINS} if measurement.margins is not None else set()
        held |= {WEIGHTS} if measurement.spectra is not None else set()
        groups = [g for g in GROUPS if GROUPS[g].needs in held]
    values, errors = {}, {}
    for group in groups:
        spec = GROUPS[group]
        try:
            numbers = np.asarray(spec.compute(measurement), dtype=np.float64)
        except ValueError as error:
            numbers, errors[group] = np.full(len(spec.names), np.nan), str(error)
        values.update(zip(spec.names, (float(v) for v in numbers)))
    return values, errors


def to_arrays(measurement):
    """The measurement as a flat dict of numpy arrays (what a side file stores): margins and
    norms at float32 (their precision when measured), spectra at float32 (see weights.spectra),
    so `from_arrays` gives back a measurement with identical features."""
    arrays = {}
    margins = measurement.margins
    if margins is not None:
        arrays.update(output_margin=margins.output_margin.astype(np.float32),
                      gradient_norms=margins.gradient_norms.astype(np.float32),
                      total_variation=margins.total_variation.astype(np.float64),
                      margin_info=np.array(json.dumps({"layers": margins.layers,
                                                       "settings": margins.settings,
                                                       "notes": margins.notes})))
    if measurement.spectra is not None:
        arrays.update(
            spectrum_labels=np.array([s.label for s in measurement.spectra]),
            matrix_sizes=np.array([s.matrix.size for s in measurement.spectra], dtype=np.int64),
            matrix_values=_concatenate([s.matrix for s in measurement.spectra]),
            slice_sizes=np.array([s.slices.size for s in measurement.spectra], dtype=np.int64),
            slice_values=_concatenate([s.slices for s in measurement.spectra]))
    return arrays


def _concatenate(pieces):
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)


def from_arrays(arrays):
    """The Measurement stored by `to_arrays`."""
    margins = spectra = None
    if "output_margin" in arrays:
        info = json.loads(str(arrays["margin_info"]))
        margins = Margins(np.asarray(arrays["gradient_norms"], dtype=np.float64),
                          np.asarray(arrays["total_variation"], dtype=np.float64),
                          np.asarray(arrays["output_margin"], dtype=np.float64),
                          info["layers"], info["settings"], info["notes"])
    if "spectrum_labels" in arrays:
        split = lambda values, sizes: np.split(np.asarray(values, np.float64),  # noqa: E731
                                               np.cumsum(sizes)[:-1])
        spectra = tuple(weights.Spectrum(str(label), matrix, slices) for label, matrix, slices in
                        zip(arrays["spectrum_labels"],
                            split(arrays["matrix_values"], arrays["matrix_sizes"]),
                            split(arrays["slice_values"], arrays["slice_sizes"])))
    return Measurement(margins, spectra)
