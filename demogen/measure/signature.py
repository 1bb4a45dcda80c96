"""Summaries of a margin distribution (docs/method.md section 4): five numbers per layer, and
the Margins of one model (what demogen.measure.margins extracts) with the Signature they give."""

import dataclasses
import math
import warnings

import numpy as np

from demogen.measure.layers import SLOTS

STATISTICS = {
    "quartile": ("lower_fence", "q1", "q2", "q3", "upper_fence"),
    "moment": ("m1", "m2", "m3", "m4", "m5"),
}


def quartile_signature(margins):
    """Lower fence, Q1, median, Q3, upper fence. The fences are the most extreme data points inside
    the Tukey whiskers Q1 - 1.5 IQR and Q3 + 1.5 IQR. NaN for an empty distribution."""
    margins = np.asarray(margins, dtype=np.float64)
    if margins.size == 0:
        return np.full(5, np.nan)
    q1, q2, q3 = np.quantile(margins, [0.25, 0.5, 0.75])
    iqr = q3 - q1
    upper = margins[margins <= q3 + 1.5 * iqr].max()
    lower = margins[margins >= q1 - 1.5 * iqr].min()
    return np.array([lower, q1, q2, q3, upper])


def moment_signature(margins):
    """The raw moments mean(d^k), k = 1..5, each as its sign-preserving k-th root, so that all five
    are on the scale of the margins. NaN for an empty distribution."""
    margins = np.asarray(margins, dtype=np.float64)
    if margins.size == 0:
        return np.full(5, np.nan)
    moments = np.array([np.mean(margins ** k) for k in range(1, 6)])
    return np.sign(moments) * np.abs(moments) ** (1.0 / np.arange(1, 6))


SUMMARIES = {"quartile": quartile_signature, "moment": moment_signature}


def feature_names(slots, statistic="quartile"):
    """Names like "h2.q3" for the given layer slots, in signature order."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    return [f"{slot}.{stat}" for slot in slots for stat in STATISTICS[statistic]]


@dataclasses.dataclass(frozen=True)
class Signature:
    """The signature of one model: `values[i]` is the feature `names[i]`."""
    values: np.ndarray
    names: list
    layers: list
    settings: dict
    n_used: list
    notes: list

    def as_dict(self):
        """A JSON-ready description."""
        return {"layers": list(self.layers), "names": list(self.names),
                "signature": [None if math.isnan(v) else float(v) for v in self.values],
                "n_used": list(self.n_used), "settings": dict(self.settings),
                "notes": list(self.notes)}


@dataclasses.dataclass(frozen=True)
class Margins:
    """Per-example margins at the four layer slots (input, h1, h2, h3) of one model.

    gradient_norms: (4, n) || grad_{x^l} (f_i - f_j) || at each slot.
    total_variation: (4,) the sum of per-coordinate variances of each layer's activations over
        the same n examples.
    output_margin: (n,) f_i - f_j, positive where the example is classified correctly.
    """
    gradient_norms: np.ndarray
    total_variation: np.ndarray
    output_margin: np.ndarray
    layers: list
    settings: dict
    notes: list

    @property
    def distances(self):
        """(4, n) signed, unnormalized d(x^l) = output margin / gradient norm; NaN where the
        gradient vanishes."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.gradient_norms > 0, self.output_margin / self.gradient_norms,
                            np.nan)

    def normalized(self):
        """Distances divided by the square root of each layer's total variation."""
        for label, variation in zip(self.layers, self.total_variation):
            if not variation > 0:
                raise ValueError(f"layer {label} has zero total variation over the "
                                 f"{len(self.output_margin)} examples (its activations are "
                                 "constant, e.g. dead ReLUs), so margins there cannot be "
                                 "normalized; use normalize=False or name other layers")
        return self.distances / np.sqrt(self.total_variation)[:, None]

    def signature(self, statistic="quartile", normalize=True, signed=False):
        """The 20-number signature: per slot, five statistics of the (normalized) distances;
        positive distances only unless `signed`."""
        names = feature_names(SLOTS, statistic)
        distances = self.normalized() if normalize else self.distances
        notes = list(self.notes)
        values, used = [], []
        for row in distances:
            row = row[np.isfinite(row)]
            if not signed:
                row = row[row > 0]
            values.append(SUMMARIES[statistic](row))
            used.append(int(row.size))
        if not signed and used[0] == 0:
            notes.append("no example is classified correctly: the signature is NaN")
            warnings.warn("no sampled example is classified correctly, so there are no positive "
                          "margins: the signature is NaN (pass signed=True to use all margins)",
                          stacklevel=2)
        settings = dict(self.settings, statistic=statistic, normalize=normalize, signed=signed)
        return Signature(np.concatenate(values), names, list(self.layers), settings, used, notes)
