"""Ghost batch normalization (Hoffer, Hubara & Soudry 2017, "Train longer, generalize better:
closing the generalization gap in large batch training of neural networks", arXiv:1705.08741,
Algorithm 1).

Train mode: the batch x (N, D) is split, in order, into k = N / g virtual ("ghost")
batches of ``ghost_size`` g rows, and each is batch-normalized with its own statistics:

    x = [x_1; ...; x_k],  x_j (g, D)
    out_j = gamma * (x_j - mean(x_j)) / sqrt(var(x_j) + eps) + beta

The backward is batch norm's closed form in each ghost batch; dgamma and dbeta
sum over them.

Running statistics: updated once per step, as batch norm's (its convention
and momentum), with the step's batch mean and variance replaced by the means
over the k ghost batches of their means and of their variances (biased, or
unbiased x g / (g - 1) for the 'torch' convention). So the running variance
estimates the variance train mode normalized with (the within-ghost-batch
one), and the momentum means per step what it means for batch norm. Hoffer
et al.'s Algorithm 1 updates the running statistics from the ghost batches
too; whether once per ghost batch or once per step it does not specify.

Test mode is batch norm's test mode. With g = N it is batch norm exactly.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, param_vector, require_ndim
from .batchnorm import (BatchNormCache, RunningStats, _config, _stats, batchnorm_after_bias,
                        batchnorm_backward_closed, batchnorm_train)

__all__ = ["GhostCache", "check_ghost_size", "ghost_batchnorm_forward", "ghost_batchnorm_backward"]


class GhostCache(NamedTuple):
    caches: tuple[BatchNormCache, ...]   # one per ghost batch, in order (train); the one of test mode


def check_ghost_size(g, n: int | None = None) -> int:
    """``g`` if it is an integer >= 2 (dividing ``n`` when given); else ValueError naming it."""
    if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 2:
        raise ValueError(f"ghost_size must be an integer >= 2 (batch norm needs 2 values a channel), got {g!r}")
    if n is not None and n % g:
        raise ValueError(f"ghost_size={g} does not divide the batch of N={n}; use a batch that is a multiple "
                         f"of ghost_size")
    return int(g)


def ghost_batchnorm_forward(x, gamma, beta, bn_param, bias=None):
    """Ghost batch norm of ``x + bias`` (bias: None or the (D,) bias of the affine layer before).

    Inputs:
    - x: Data of shape (N, D)
    - gamma, beta: Scale and shift, of shape (D,)
    - bn_param: batch norm's dict (``batchnorm_forward``; the running statistics are stored back into
      it) plus ghost_size (required: g >= 2 dividing N in train mode)

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: GhostCache
    """
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict like {{'mode': 'train'}}, got {type(bn_param).__name__}")
    if "ghost_size" not in bn_param:
        raise ValueError("bn_param needs 'ghost_size', the rows of each virtual batch")
    bn = {k: v for k, v in bn_param.items() if k != "ghost_size"}
    config = _config(bn)
    x = as_float_array(x, "x")
    require_ndim(x, 2, "input x", "(N, D)")
    if bn["mode"] == "test":
        check_ghost_size(bn_param["ghost_size"])
        out, cache = batchnorm_after_bias(x, bias, gamma, beta, bn)
        return out, GhostCache((cache,))
    n, c = x.shape
    g = check_ghost_size(bn_param["ghost_size"], n)
    stats = _stats(bn, c, x.dtype, config)
    outs, caches = [], []
    for j in range(0, n, g):
        out_j, _, cache_j = batchnorm_train(x[j:j + g], gamma, beta, None, config)
        outs.append(out_j)
        caches.append(cache_j)
    to_biased = (g - config.ddof) / g     # cache.var is the variance normalized with
    batch_mean = np.mean([cj.mean.reshape(-1) for cj in caches], axis=0)
    batch_var = np.mean([cj.var.reshape(-1) * to_biased for cj in caches], axis=0)
    if bias is not None:
        batch_mean = batch_mean + param_vector(bias, c, "bias", x.dtype)
    if config.convention == "torch":
        batch_var = batch_var * (g / (g - 1))
    w = config.new_weight
    new = RunningStats(((1 - w) * stats.mean + w * batch_mean).astype(x.dtype, copy=False),
                       ((1 - w) * stats.var + w * batch_var).astype(x.dtype, copy=False))
    bn_param["running_mean"], bn_param["running_var"] = new.mean, new.var
    return np.concatenate(outs, axis=0), GhostCache(tuple(caches))


def ghost_batchnorm_backward(dout, cache: GhostCache):
    """Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,)."""
    dxs, dgamma, dbeta, start = [], 0.0, 0.0, 0
    for cj in cache.caches:
        g = cj.x.shape[0]
        dx_j, dg_j, db_j = batchnorm_backward_closed(dout[start:start + g], cj)
        dxs.append(dx_j)
        dgamma, dbeta, start = dgamma + dg_j, dbeta + db_j, start + g
    return np.concatenate(dxs, axis=0), dgamma, dbeta
