"""Summaries of a margin distribution (docs/method.md section 4): five numbers per layer."""

import numpy as np

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
