"""Batch renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch
Dependence in Batch-Normalized Models", arXiv:1702.03275, Algorithm 1).

Train mode, per feature over the batch of m values, with mu, sigma the running
statistics *before* this step (sigma = sqrt(running_var + eps)):

    mu_B = mean(x),  sigma_B = sqrt(var_B + eps)          var_B as batch norm normalizes with
    r = clip(sigma_B / sigma, 1 / r_max, r_max)           r, d: constants in backward (stop-gradient)
    d = clip((mu_B - mu) / sigma, -d_max, d_max)
    out = gamma * ((x - mu_B) / sigma_B * r + d) + beta

then the running statistics are updated exactly as batch norm's (its
convention, momentum and variance). Test mode is batch norm's test mode:
``gamma * (x - mu) / sigma + beta``. Since r = sigma_B / sigma and d = (mu_B -
mu) / sigma unclipped make the train-mode output equal the test-mode one, the
clips bound how far training may move away from batch norm.

Computed as batch norm with scale ``gamma * r`` and shift ``beta + gamma * d``
(both constants of x), so the backward is batch norm's closed form with that
scale, and ``dgamma = r * sum(dout * x_hat) + d * sum(dout)``, ``dbeta =
sum(dout)``. With r_max = 1 and d_max = 0 (the defaults) r = 1 and d = 0
exactly: the layer *is* batch norm, bit for bit.

The paper's warm-up: r_max = 1, d_max = 0 for the first steps, then relaxed
linearly. ``bn_param['warmup'] = (start, r_end, d_end)`` (steps): the limits are
1 and 0 up to step ``start``, reach ``r_max`` at ``r_end`` and ``d_max`` at
``d_end`` (the paper: 5000, 40k, 25k of Inception's training). The step is
``bn_param['step']``, the number of train-mode forward passes this layer has
made (absent: 0), advanced by every one of them; so a net's layers count the
net's training steps themselves, and a probe that forwards in train mode
advances them too. Without ``warmup`` the limits are r_max and d_max at once.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, require_ndim
from .batchnorm import BatchNormCache, _config, _stats, batchnorm_after_bias, batchnorm_backward_closed
from .core import moments

__all__ = ["RenormCache", "renorm_limits", "check_renorm_param", "batchrenorm_forward", "batchrenorm_backward",
           "RENORM_KEYS"]

#: The keys batch renorm adds to batch norm's ``bn_param``.
RENORM_KEYS = ("r_max", "d_max", "warmup", "step")


class RenormCache(NamedTuple):
    bn: BatchNormCache          # batch norm's cache, with scale gamma * r
    r: np.ndarray | None        # (D,) in train mode; None in test mode
    d: np.ndarray | None


def check_renorm_param(p: dict) -> tuple[float, float, tuple | None, int]:
    """``(r_max, d_max, warmup, step)`` from a ``bn_param`` (defaults 1, 0, None, 0); ValueError naming
    a bad value."""
    r_max, d_max, warmup, step = p.get("r_max", 1.0), p.get("d_max", 0.0), p.get("warmup"), p.get("step", 0)
    for name, v, lo in (("r_max", r_max, 1.0), ("d_max", d_max, 0.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
            raise ValueError(f"{name} must be a finite number >= {lo:g}, got {v!r}")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"bn_param['step'] must be an integer >= 0 (train-mode passes so far), got {step!r}")
    if warmup is not None:
        ok = (isinstance(warmup, (list, tuple)) and len(warmup) == 3
              and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in warmup)
              and warmup[1] > warmup[0] and warmup[2] > warmup[0])
        if not ok:
            raise ValueError(f"warmup must be (start, r_end, d_end), integer steps with start < r_end and "
                             f"start < d_end, got {warmup!r}")
        warmup = tuple(warmup)
    return float(r_max), float(d_max), warmup, int(step)


def renorm_limits(r_max: float, d_max: float, warmup: tuple | None, step: int) -> tuple[float, float]:
    """The clip limits at ``step`` (0-based train-mode pass): r_max, d_max, relaxed linearly by ``warmup``."""
    if warmup is None:
        return r_max, d_max
    start, r_end, d_end = warmup
    ramp = lambda end: min(max((step - start) / (end - start), 0.0), 1.0)
    return 1.0 + (r_max - 1.0) * ramp(r_end), d_max * ramp(d_end)


def batchrenorm_forward(x, gamma, beta, bn_param, bias=None):
    """Batch renormalization of ``x + bias`` (bias: None or the (D,) bias of the affine layer before).

    Inputs:
    - x: Data of shape (N, D)
    - gamma, beta: Scale and shift, of shape (D,)
    - bn_param: batch norm's dict (``batchnorm_forward``; the running statistics are stored back into
      it) plus r_max (>= 1, default 1), d_max (>= 0, default 0), warmup (optional (start, r_end, d_end))
      and step (train-mode passes so far, advanced here), see the module docstring

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: RenormCache
    """
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict like {{'mode': 'train'}}, got {type(bn_param).__name__}")
    r_max, d_max, warmup, step = check_renorm_param(bn_param)
    bn = {k: v for k, v in bn_param.items() if k not in RENORM_KEYS}
    config = _config(bn)
    x = as_float_array(x, "x")
    require_ndim(x, 2, "input x", "(N, D)")
    if bn["mode"] == "test":
        out, cache = batchnorm_after_bias(x, bias, gamma, beta, bn)
        return out, RenormCache(cache, None, None)
    if x.shape[0] < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got input shape {x.shape}")
    stats = _stats(bn, x.shape[1], x.dtype, config)
    mean, var = moments(np.ascontiguousarray(x), (0,), where="batchrenorm")
    mu_b = mean.reshape(-1) + (0.0 if bias is None else np.asarray(bias, dtype=x.dtype).reshape(-1))
    m = x.shape[0]
    var_b = var.reshape(-1) * (m / (m - 1)) if config.ddof else var.reshape(-1)
    eps = np.asarray(config.eps, dtype=x.dtype)
    sigma_b, sigma = np.sqrt(var_b + eps), np.sqrt(np.asarray(stats.var, dtype=x.dtype) + eps)
    r_lim, d_lim = renorm_limits(r_max, d_max, warmup, step)
    r = np.clip(sigma_b / sigma, 1.0 / r_lim, r_lim).astype(x.dtype)
    d = np.clip((mu_b - stats.mean) / sigma, -d_lim, d_lim).astype(x.dtype)
    g = np.asarray(gamma, dtype=x.dtype).reshape(-1)
    out, cache = batchnorm_after_bias(x, bias, g * r, np.asarray(beta, dtype=x.dtype).reshape(-1) + g * d, bn)
    bn_param["running_mean"], bn_param["running_var"] = bn["running_mean"], bn["running_var"]
    bn_param["step"] = step + 1
    return out, RenormCache(cache, r, d)


def batchrenorm_backward(dout, cache: RenormCache):
    """Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,); r and d are constants."""
    dx, dscale, dbeta = batchnorm_backward_closed(dout, cache.bn)    # dscale = sum(dout * x_hat)
    if cache.r is None:
        return dx, dscale, dbeta
    return dx, cache.r * dscale + cache.d * dbeta, dbeta
