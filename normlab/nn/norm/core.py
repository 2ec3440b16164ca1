"""The one normalization core that batch, layer, group and instance norm share.

Every normalization here is the same computation over different axes:

    mean = E[x],  var = E[(x - mean)^2]    (biased: the mean over the m reduced entries)
    x_hat = (x - mean) / sqrt(var + eps)

and its backward, given g = dL/dx_hat:

    dx = inv_std * (g - E[g] - x_hat * E[g * x_hat])          (all E over the reduced axes)

Batch norm reduces over the batch axis (and H, W for spatial), layer norm over
the features, group norm over each group of channels and H, W. The wrappers in
``batchnorm.py`` and ``norms.py`` only pick axes and reshape.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import require_finite_stats

__all__ = ["NormCache", "normalize", "normalize_backward", "project_out", "reduced_size"]


class NormCache(NamedTuple):
    """What the backward pass needs; stats have keepdims shape (1 on reduced axes)."""
    x_hat: np.ndarray     # normalized input, same shape and dtype as x
    inv_std: np.ndarray   # 1 / sqrt(var + eps)
    axes: tuple[int, ...]


def reduced_size(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """m: how many entries each statistic averages over."""
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def normalize(x: np.ndarray, axes: tuple[int, ...], eps: float, where: str = "normalize"):
    """Normalize ``x`` over ``axes``.

    Returns ``(x_hat, mean, var, cache)``: mean and var (biased) in keepdims
    shape and x's dtype. Raises NonFiniteError when x holds NaN/inf, so bad data
    never reaches running statistics.
    """
    # NaN/inf input makes the statistics non-finite and is reported below as
    # NonFiniteError; the intermediate warnings would only hide that.
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x.mean(axis=axes, keepdims=True)
        # Two-pass variance (mean of squared deviations): E[x^2] - E[x]^2 cancels
        # catastrophically in float32 when |mean| >> std.
        x_hat = x - mean
        var = np.mean(np.square(x_hat), axis=axes, keepdims=True)
    require_finite_stats(mean, var, where=where)
    inv_std = 1.0 / np.sqrt(var + np.asarray(eps, dtype=x.dtype))
    x_hat *= inv_std
    return x_hat, mean, var, NormCache(x_hat, inv_std, axes)


def project_out(g: np.ndarray, x_hat: np.ndarray, scale: np.ndarray,
                mean_g: np.ndarray, mean_gx: np.ndarray) -> np.ndarray:
    """``scale * (g - mean_g - x_hat * mean_gx)``: the closed-form normalization backward.

    Removes from the upstream gradient its components along the two directions
    normalization makes invisible (a shift, and a scaling of x_hat).
    """
    dx = x_hat * mean_gx
    np.subtract(g, dx, out=dx)
    dx -= mean_g
    dx *= scale
    return dx


def normalize_backward(g: np.ndarray, cache: NormCache) -> np.ndarray:
    """dL/dx from g = dL/dx_hat: ``inv_std * (g - E[g] - x_hat * E[g * x_hat])``."""
    x_hat, inv_std, axes = cache
    mean_g = g.mean(axis=axes, keepdims=True)
    mean_gx = np.mean(g * x_hat, axis=axes, keepdims=True)
    return project_out(g, x_hat, inv_std, mean_g, mean_gx)
