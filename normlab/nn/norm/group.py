"""Layer, group and instance normalization: the core's x_hat form over other axes.

    out = gamma * (x - mean) / sqrt(var + eps) + beta,   statistics per sample

- layer norm (Ba et al. 2016): x (N, D), statistics over D, gamma/beta (D,).
- group norm (Wu & He 2018): x (N, C, H, W) viewed as (N, G, C/G, H, W),
  statistics over each group's (C/G, H, W); gamma/beta per channel, (C,) or (1, C, 1, 1).
- instance norm: group norm with G = C.

Statistics depend on one sample only, so train and test mode are identical and
there is no running state. Variance is biased (mean of squared deviations).
gamma varies inside each statistic's reduction (per reduced feature; per
channel of a group), so it is applied to the core's x_hat (``core.normalize``,
``core.normalize_backward``) rather than folded into its scale.

The caches hold x, mean and inv_std (a number per statistic), not x_hat: the
backward recomputes ``x_hat = (x - mean) * inv_std``, the very bits the forward
formed, so the forward writes one array (out) rather than two.

Fast path: with the Numba backend (``normlab.nn.backend``) and float32/float64
input, forward and backward run on the fused kernels of ``_jit_rows`` (the
same equations, statistics accumulated in float64), with the same signatures,
cache types and dtypes; float16 and other dtypes stay on the NumPy reference.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import backend
from .._checks import as_float_array, param_vector, require_ndim
from . import _jit_rows
from .core import NormCache, normalize, normalize_backward

__all__ = [
    "LayerNormCache", "GroupNormCache",
    "layernorm_forward", "layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "instancenorm_forward", "instancenorm_backward",
]

_PARAM_KEYS = {"eps", "mode"}   # 'mode' is accepted and ignored: the course's nets set it on every norm layer


def _eps(param, name: str) -> float:
    if param is None:
        return 1e-5
    if not isinstance(param, dict):
        raise TypeError(f"{name} must be a dict like {{'eps': 1e-5}}, got {type(param).__name__}")
    unknown = set(param) - _PARAM_KEYS
    if unknown:
        raise ValueError(f"unknown {name} keys {sorted(unknown)}; allowed: {sorted(_PARAM_KEYS)}")
    eps = param.get("eps", 1e-5)
    if not float(eps) > 0:
        raise ValueError(f"{name}['eps'] must be positive, got {eps}")
    return float(eps)


class LayerNormCache(NamedTuple):
    x: np.ndarray                   # (N, D): x itself (the fast path's C-contiguous copy if it was not)
    mean: np.ndarray                # (N, 1), x's dtype
    inv_std: np.ndarray             # (N, 1), 1 / sqrt(var + eps)
    gamma: np.ndarray               # (D,)
    param_shape: tuple[int, ...]    # gamma as given, for dgamma / dbeta

    @property
    def x_hat(self) -> np.ndarray:
        """(x - mean) * inv_std, (N, D): what the forward multiplied by gamma."""
        return (self.x - self.mean) * self.inv_std


class GroupNormCache(NamedTuple):
    x: np.ndarray                   # (N, C, H, W): x itself (the fast path's C-contiguous copy if it was not)
    mean: np.ndarray                # (N, G, 1, 1, 1): keepdims of the grouped view (N, G, C/G, H, W)
    inv_std: np.ndarray             # (N, G, 1, 1, 1)
    gamma: np.ndarray               # (C,)
    groups: int
    param_shape: tuple[int, ...]

    @property
    def x_hat(self) -> np.ndarray:
        """(x - mean) * inv_std over the grouped view, returned as (N, C, H, W)."""
        n, c, h, w = self.x.shape
        grouped = self.x.reshape(n, self.groups, c // self.groups, h, w)   # (N, G, C/G, H, W)
        return ((grouped - self.mean) * self.inv_std).reshape(n, c, h, w)


def _fast(x: np.ndarray) -> bool:
    return backend.fast() and _jit_rows.supports(x)


def _fast_grad(dout, x: np.ndarray) -> bool:
    """The kernels take dout of x's shape and dtype; anything else the reference broadcasts or casts."""
    return (_fast(x) and isinstance(dout, np.ndarray) and dout.shape == x.shape and dout.dtype == x.dtype)


def layernorm_forward(x, gamma, beta, ln_param):
    """Forward pass for layer normalization.

    Inputs:
    - x: Data of shape (N, D)
    - gamma: Scale parameter of shape (D,)
    - beta: Shift parameter of shape (D,)
    - ln_param: Dictionary with optional key eps (default 1e-5)

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: a LayerNormCache
    """
    eps = _eps(ln_param, "ln_param")
    x = as_float_array(x, "x")
    require_ndim(x, 2, "input x", "(N, D)")
    d = x.shape[1]
    g = np.ascontiguousarray(param_vector(gamma, d, "gamma", x.dtype))
    b = np.ascontiguousarray(param_vector(beta, d, "beta", x.dtype))
    if _fast(x):
        xc = np.ascontiguousarray(x)
        res = backend.compiled(_jit_rows.layernorm_forward, xc, g, b, eps)
        if res is not None and res[3]:   # statistics not finite: the reference raises NonFiniteError
            out, mean, inv_std, _ = res
            return out, LayerNormCache(xc, mean.reshape(-1, 1), inv_std.reshape(-1, 1), g, np.shape(gamma))
    x_hat, mean, _, norm = normalize(x, (1,), eps, where="layernorm")
    out = x_hat * g
    out += b
    return out, LayerNormCache(x, mean, norm.inv_std, g, np.shape(gamma))


def layernorm_backward(dout, cache):
    """Backward pass for layer normalization.

    Inputs: dout of shape (N, D); cache from layernorm_forward.
    Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,).
    """
    x, mean, inv_std, g, param_shape = cache
    if _fast_grad(dout, x):
        res = backend.compiled(_jit_rows.layernorm_backward, np.ascontiguousarray(dout), np.ascontiguousarray(x),
                        mean.reshape(-1), inv_std.reshape(-1), g)
        if res is not None:
            dx, dgamma, dbeta = res
            return dx, dgamma.reshape(param_shape), dbeta.reshape(param_shape)
    x_hat = cache.x_hat
    dgamma = np.sum(dout * x_hat, axis=0)
    dbeta = dout.sum(axis=0)
    dx = normalize_backward(dout * g, NormCache(x_hat, inv_std, (1,))).astype(x.dtype, copy=False)
    return dx, dgamma.reshape(param_shape), dbeta.reshape(param_shape)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Forward pass for spatial group normalization.

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - gamma: Scale parameter, of shape (1, C, 1, 1) or (C,)
    - beta: Shift parameter, of shape (1, C, 1, 1) or (C,)
    - G: Integer number of groups to split into, should be a divisor of C
    - gn_param: Dictionary with optional key eps (default 1e-5)

    Returns a tuple of:
    - out: Output data, of shape (N, C, H, W)
    - cache: a GroupNormCache
    """
    return _groupnorm(x, gamma, beta, G, _eps(gn_param, "gn_param"))


def _groupnorm(x, gamma, beta, G, eps):
    x = as_float_array(x, "x")
    require_ndim(x, 4, "input x", "(N, C, H, W)")
    n, c, h, w = x.shape
    if isinstance(G, bool) or not isinstance(G, (int, np.integer)) or G < 1:
        raise ValueError(f"G must be a positive integer number of groups, got {G!r}")
    if c % G:
        raise ValueError(f"C={c} is not divisible by G={G}; choose G among the divisors of {c}")
    G = int(G)
    g = np.ascontiguousarray(param_vector(gamma, c, "gamma", x.dtype))
    b = np.ascontiguousarray(param_vector(beta, c, "beta", x.dtype))
    if _fast(x):
        xc, stats = np.ascontiguousarray(x), (n, G, 1, 1, 1)
        res = backend.compiled(_jit_rows.groupnorm_forward, xc.reshape(n * G, -1), G, g, b, eps)   # (N*G, C/G*H*W)
        if res is not None and res[3]:   # statistics not finite: the reference raises NonFiniteError
            out, mean, inv_std, _ = res
            return out.reshape(x.shape), GroupNormCache(xc, mean.reshape(stats), inv_std.reshape(stats), g, G,
                                                        np.shape(gamma))
    x_hat, mean, _, norm = normalize(x.reshape(n, G, c // G, h, w), (2, 3, 4), eps,  # (N, G, C/G, H, W)
                                     where="groupnorm")
    out = x_hat.reshape(n, c, h, w) * g.reshape(1, c, 1, 1)
    out += b.reshape(1, c, 1, 1)
    return out, GroupNormCache(x, mean, norm.inv_std, g, G, np.shape(gamma))


def spatial_groupnorm_backward(dout, cache):
    """Backward pass for spatial group normalization.

    Inputs: dout of shape (N, C, H, W); cache from spatial_groupnorm_forward.
    Returns (dx, dgamma, dbeta); dgamma and dbeta have gamma's shape.
    """
    x, mean, inv_std, g, groups, param_shape = cache
    n, c, h, w = x.shape
    if _fast_grad(dout, x):
        rows = (n * groups, -1)   # (N*G, C/G*H*W)
        res = backend.compiled(_jit_rows.groupnorm_backward, np.ascontiguousarray(dout).reshape(rows),
                        np.ascontiguousarray(x).reshape(rows), groups, mean.reshape(-1), inv_std.reshape(-1), g)
        if res is not None:
            dx, dgamma, dbeta = res
            return dx.reshape(x.shape), dgamma.reshape(param_shape), dbeta.reshape(param_shape)
    x_hat = cache.x_hat
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    grouped = (n, groups, c // groups, h, w)   # (N, G, C/G, H, W)
    dx_hat = (dout * g.reshape(1, c, 1, 1)).reshape(grouped)
    dx = normalize_backward(dx_hat, NormCache(x_hat.reshape(grouped), inv_std, (2, 3, 4)))
    return dx.reshape(n, c, h, w).astype(x.dtype, copy=False), dgamma.reshape(param_shape), dbeta.reshape(param_shape)


def instancenorm_forward(x, gamma, beta, in_param):
    """Instance norm: statistics per sample and channel over (H, W); group norm with G = C."""
    eps = _eps(in_param, "in_param")
    x = as_float_array(x, "x")
    require_ndim(x, 4, "input x", "(N, C, H, W)")
    return _groupnorm(x, gamma, beta, x.shape[1], eps)


def instancenorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta) as spatial_groupnorm_backward."""
    return spatial_groupnorm_backward(dout, cache)
