"""The features of the runtime: the families that demogen's predictor can compute, registered in
demogen.measure.registry (whose names this module re-exports, so that callers read one place).

Producers: "margins" (demogen.measure.margins: the margins at four layers on a seeded sample of
the training data) and "spectra" (demogen.measure.weights: the singular values of the kernels).
Groups, their columns named "<group>.<name>":
- qrt, mom and their .unnorm / .signed variants: the 20-number margin signatures (quartiles or
  moments; normalized by the total variation unless .unnorm; positive margins only unless
  .signed).
- out: the quartile signature of the signed output margin f_i - f_j over all sampled examples.
- acc: acc.sample, the share of sampled training examples classified correctly.
- tv: each slot's total variation (tv.input, tv.h1, tv.h2, tv.h3).
- w: data-free weight metrics (demogen.measure.weights): w.log_spectral.mean/.sum,
  w.log_frobenius.mean/.sum, w.alpha.mean, w.alpha_hat.mean, w.alpha.count, w.n_kernels.
Every other family is a module of its own that registers itself, imported at the end of this
module, one line each:
- demogen.measure.perturbation: the producer "perturbation" (responses to noise, mixup, shifts
  and weight noise on the margin sample) and its groups noise, mixup_within, mixup_across,
  shift, weights and db;
- demogen.measure.winner: the producer and group "winner", the PGDL competition winner's measure
  (a reference).
"""

import dataclasses
import json
import warnings

import numpy as np

from demogen.defaults import EXTRACTOR_VERSION
from demogen.measure import weights
from demogen.measure.layers import SLOTS
from demogen.measure.registry import (COLUMNS, GROUPS, PRODUCERS, Group, Measurement,  # noqa: F401
                                      Producer, compute, from_arrays, groups_of, measure,
                                      producers_of, register, register_producer, to_arrays,
                                      version, versions)
from demogen.measure.signature import STATISTICS, Margins, feature_names, quartile_signature

MARGINS, SPECTRA = "margins", "spectra"


def _signature_group(statistic, normalize, signed):
    prefix = ".".join(["qrt" if statistic == "quartile" else "mom"]
                      + ([] if normalize else ["unnorm"]) + (["signed"] if signed else []))

    def signature(margins):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no correct example: NaN, recorded by the caller
            return margins.signature(statistic, normalize, signed).values

    names = tuple(f"{prefix}.{name}" for name in feature_names(SLOTS, statistic))
    return prefix, Group(names, MARGINS, signature, per_example=True)


def sample_accuracy_of(margins):
    """The share of the margin sample classified correctly (a positive output margin)."""
    return float(np.mean(margins.output_margin > 0))


WEIGHT_METRICS = ("log_spectral.mean", "log_spectral.sum", "log_frobenius.mean",
                  "log_frobenius.sum", "alpha.mean", "alpha_hat.mean", "alpha.count",
                  "n_kernels")


def _weight_metrics(spectra):
    values = weights.metrics(spectra)
    return [values[name] for name in WEIGHT_METRICS]


def _extract_margins(model, data, sample, measurement):
    from demogen.measure.margins import extract_margins  # with TensorFlow

    return extract_margins(model, data, **sample)


def _margins_to_arrays(margins):
    """Margins and norms at float32 (their precision when measured), total variations at
    float64, so that `_margins_from_arrays` gives back identical features."""
    return {"output_margin": margins.output_margin.astype(np.float32),
            "gradient_norms": margins.gradient_norms.astype(np.float32),
            "total_variation": margins.total_variation.astype(np.float64),
            "margin_info": np.array(json.dumps({"layers": margins.layers,
                                                "settings": margins.settings,
                                                "notes": margins.notes}))}


def _margins_from_arrays(arrays):
    if "output_margin" not in arrays:
        return None
    info = json.loads(str(arrays["margin_info"]))
    return Margins(np.asarray(arrays["gradient_norms"], dtype=np.float64),
                   np.asarray(arrays["total_variation"], dtype=np.float64),
                   np.asarray(arrays["output_margin"], dtype=np.float64),
                   info["layers"], info["settings"], info["notes"])


def _subsample_margins(margins, positions):
    """The Margins of the examples at `positions` of the margin sample; each layer's total
    variation (the normalization) stays the whole sample's: no activations are kept."""
    return dataclasses.replace(
        margins, gradient_norms=margins.gradient_norms[:, positions],
        output_margin=margins.output_margin[positions],
        settings={**margins.settings, "n_sampled": len(positions)})


def _spectra_to_arrays(spectra):
    """The spectra at float32 (see weights.spectra), concatenated with their sizes."""
    return {"spectrum_labels": np.array([s.label for s in spectra]),
            "matrix_sizes": np.array([s.matrix.size for s in spectra], dtype=np.int64),
            "matrix_values": _concatenate([s.matrix for s in spectra]),
            "slice_sizes": np.array([s.slices.size for s in spectra], dtype=np.int64),
            "slice_values": _concatenate([s.slices for s in spectra])}


def _concatenate(pieces):
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)


def _spectra_from_arrays(arrays):
    if "spectrum_labels" not in arrays:
        return None

    def split(values, sizes):
        return np.split(np.asarray(values, np.float64), np.cumsum(sizes)[:-1])

    return tuple(weights.Spectrum(str(label), matrix, slices) for label, matrix, slices in
                 zip(arrays["spectrum_labels"],
                     split(arrays["matrix_values"], arrays["matrix_sizes"]),
                     split(arrays["slice_values"], arrays["slice_sizes"])))


register_producer(MARGINS, Producer(EXTRACTOR_VERSION, _extract_margins, _margins_to_arrays,
                                    _margins_from_arrays, subsample=_subsample_margins))
register_producer(SPECTRA, Producer(1, lambda model, data, sample, measurement: tuple(
    weights.spectra(model)), _spectra_to_arrays, _spectra_from_arrays))
for _statistic in STATISTICS:
    for _normalize in (True, False):
        for _signed in (False, True):
            register(*_signature_group(_statistic, _normalize, _signed))
register("out", Group(tuple(f"out.{s}" for s in STATISTICS["quartile"]), MARGINS,
                      lambda margins: quartile_signature(margins.output_margin),
                      per_example=True))
register("acc", Group(("acc.sample",), MARGINS, lambda margins: [sample_accuracy_of(margins)],
                      per_example=True))
register("tv", Group(tuple(f"tv.{slot}" for slot in SLOTS), MARGINS,
                     lambda margins: margins.total_variation, per_example=True))
register("w", Group(tuple(f"w.{name}" for name in WEIGHT_METRICS), SPECTRA, _weight_metrics))




from demogen.measure import perturbation  # noqa: E402,F401  (registers its family)
from demogen.measure import winner  # noqa: E402,F401  (registers its family)
