"""Data-free weight metrics: the singular values of every weighted layer and what is derived from
them: scale (log spectral and log Frobenius norms) and shape (the power-law exponent alpha of the
eigenvalue distribution, heavy-tailed self-regularization, Martin and Mahoney 2021).

How a kernel becomes matrices (every weight variable of a weighted layer named "kernel",
"depthwise_kernel" or "pointwise_kernel", in layer order):
- matrix: the kernel reshaped to (prod(all dims but the last), last dim); a Dense kernel is its
  own matrix, a conv kernel (k..., c_in, c_out) becomes (prod(k) * c_in, c_out). Its largest
  singular value is the layer's spectral norm; the Frobenius norm does not depend on the shape.
- slices: for a conv kernel, the prod(k) matrices (c_in, c_out), one per kernel position; their
  singular values pooled together are the layer's eigenvalue sample for alpha (lambda = sigma^2,
  unnormalized). For a Dense kernel, the slices are the matrix itself.
Biases and batch-norm parameters are not part of these metrics.
"""

import dataclasses

import numpy as np

from demogen.measure.graph import WEIGHTED, class_name

KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")
MIN_EIGENVALUES = 50
MIN_TAIL = 10


@dataclasses.dataclass(frozen=True)
class Spectrum:
    """The singular values of one kernel: `matrix` (of the reshaped kernel) and `slices` (of its
    per-position slices, pooled; equal to `matrix` for a 2-D kernel)."""
    label: str
    matrix: np.ndarray
    slices: np.ndarray


def _kernels(layer):
    for weight in layer.weights:
        short = getattr(weight, "path", weight.name).split("/")[-1].split(":")[0]
        if short in KERNEL_NAMES:
            yield short, np.asarray(weight, dtype=np.float64)


def _single_precision(values):
    """Singular values kept to float32 precision (the weights' own), so that side files that
    store them as float32 give exactly the same metrics."""
    return values.astype(np.float32).astype(np.float64)


def spectra(model):
    """The Spectrum of every kernel of the model's weighted layers, in layer order; labels are
    "index:ClassName" (with ".depthwise_kernel" or ".pointwise_kernel" where a layer has two)."""
    result = []
    for index, layer in enumerate(model.layers):
        if class_name(layer) not in WEIGHTED:
            continue
        for short, kernel in _kernels(layer):
            label = f"{index}:{class_name(layer)}" + ("" if short == "kernel" else f".{short}")
            matrix = kernel.reshape(-1, kernel.shape[-1])
            values = _single_precision(np.linalg.svd(matrix, compute_uv=False))
            if kernel.ndim > 2:
                pieces = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1])
                slices = np.sort(np.linalg.svd(pieces, compute_uv=False).ravel())[::-1]
                slices = _single_precision(slices)
            else:
                slices = values
            result.append(Spectrum(label, values, slices))
    return result


def power_law_alpha(eigenvalues):
    """(alpha, xmin, n_tail) of the continuous power law p(x) ~ x^-alpha, x >= xmin, fitted by
    maximum likelihood, xmin chosen among the distinct values (all but the largest) by the
    smallest Kolmogorov-Smirnov distance between the tail's empirical and fitted CDFs at the
    tail's values (Clauset, Shalizi and Newman 2009). alpha is NaN with fewer than 50 positive
    eigenvalues, or fewer than 10 of them in the chosen tail."""
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    values = values[np.isfinite(values) & (values > 0)]
    if values.size < MIN_EIGENVALUES:
        return np.nan, np.nan, 0
    logs = np.log(values)
    n = values.size
    # how many values are <= each value; the tail's empirical CDF at its values is the share of
    # the tail above xmin that is <= the value (the powerlaw package's convention)
    at_most = np.searchsorted(values, values, side="right")
    best = (np.inf, np.nan, np.nan, 0)
    for xmin in np.unique(values)[:-1]:
        start = np.searchsorted(values, xmin)
        tail = logs[start:] - np.log(xmin)
        count = n - start
        total = tail.sum()
        if total <= 0:
            continue
        alpha = 1.0 + count / total
        empirical = (at_most[start:] - at_most[start]) / (n - at_most[start])
        fitted = 1.0 - np.exp((1.0 - alpha) * tail)
        distance = np.abs(empirical - fitted).max()
        if distance < best[0]:
            best = (distance, alpha, xmin, count)
    _, alpha, xmin, count = best
    if count < MIN_TAIL:
        return np.nan, xmin, count
    return alpha, xmin, count


def metrics(layer_spectra):
    """The weight metrics of a model, aggregated over its kernels: the mean and the sum of the
    log spectral and log Frobenius norms, the mean of alpha and of alpha-hat = alpha *
    log10(largest eigenvalue) over the kernels where alpha is defined, their count, and the number
    of kernels."""
    log_spectral = np.array([np.log(s.matrix[0]) for s in layer_spectra])
    log_frobenius = np.array([0.5 * np.log(np.sum(s.matrix ** 2)) for s in layer_spectra])
    alphas, hats = [], []
    for spectrum in layer_spectra:
        eigenvalues = spectrum.slices ** 2
        alpha = power_law_alpha(eigenvalues)[0]
        if np.isfinite(alpha):
            alphas.append(alpha)
            hats.append(alpha * np.log10(eigenvalues.max()))
    return {"log_spectral.mean": float(log_spectral.mean()),
            "log_spectral.sum": float(log_spectral.sum()),
            "log_frobenius.mean": float(log_frobenius.mean()),
            "log_frobenius.sum": float(log_frobenius.sum()),
            "alpha.mean": float(np.mean(alphas)) if alphas else np.nan,
            "alpha_hat.mean": float(np.mean(hats)) if hats else np.nan,
            "alpha.count": float(len(alphas)),
            "n_kernels": float(len(layer_spectra))}
