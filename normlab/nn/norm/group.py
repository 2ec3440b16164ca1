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
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, param_vector, require_ndim
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
    norm: NormCache
    gamma: np.ndarray               # (D,)
    param_shape: tuple[int, ...]    # gamma as given, for dgamma / dbeta


class GroupNormCache(NamedTuple):
    norm: NormCache                 # over the grouped view (N, G, C/G, H, W)
    gamma: np.ndarray               # (1, C, 1, 1)
    groups: int
    param_shape: tuple[int, ...]


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
    g = param_vector(gamma, d, "gamma", x.dtype)
    b = param_vector(beta, d, "beta", x.dtype)
    x_hat, _, _, norm = normalize(x, (1,), eps, where="layernorm")
    out = x_hat * g
    out += b
    return out, LayerNormCache(norm, g, np.shape(gamma))


def layernorm_backward(dout, cache):
    """Backward pass for layer normalization.

    Inputs: dout of shape (N, D); cache from layernorm_forward.
    Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,).
    """
    norm, g, param_shape = cache
    dgamma = np.sum(dout * norm.x_hat, axis=0)
    dbeta = dout.sum(axis=0)
    dx = normalize_backward(dout * g, norm).astype(norm.x_hat.dtype, copy=False)
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
    g = param_vector(gamma, c, "gamma", x.dtype).reshape(1, c, 1, 1)
    b = param_vector(beta, c, "beta", x.dtype).reshape(1, c, 1, 1)
    x_hat, _, _, norm = normalize(x.reshape(n, G, c // G, h, w), (2, 3, 4), eps,  # (N, G, C/G, H, W)
                                  where="groupnorm")
    out = x_hat.reshape(n, c, h, w) * g
    out += b
    return out, GroupNormCache(norm, g, int(G), np.shape(gamma))


def spatial_groupnorm_backward(dout, cache):
    """Backward pass for spatial group normalization.

    Inputs: dout of shape (N, C, H, W); cache from spatial_groupnorm_forward.
    Returns (dx, dgamma, dbeta); dgamma and dbeta have gamma's shape.
    """
    norm, g, groups, param_shape = cache
    n, c, h, w = dout.shape
    x_hat = norm.x_hat.reshape(n, c, h, w)
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    dx_hat = (dout * g).reshape(n, groups, c // groups, h, w)
    dx = normalize_backward(dx_hat, norm).reshape(n, c, h, w).astype(x_hat.dtype, copy=False)
    return dx, dgamma.reshape(param_shape), dbeta.reshape(param_shape)


def instancenorm_forward(x, gamma, beta, in_param):
    """Instance norm: statistics per sample and channel over (H, W); group norm with G = C."""
    eps = _eps(in_param, "in_param")
    x = as_float_array(x, "x")
    require_ndim(x, 4, "input x", "(N, C, H, W)")
    return _groupnorm(x, gamma, beta, x.shape[1], eps)


def instancenorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta) as spatial_groupnorm_backward."""
    return spatial_groupnorm_backward(dout, cache)
