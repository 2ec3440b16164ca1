"""Batch normalization (Ioffe & Szegedy 2015) and its spatial variant: the core at axes (0,) and (0, 2, 3).

Train mode, over the m entries of each feature (the batch; and H, W for spatial):

    mu = mean(x),  var = mean((x - mu)^2)          biased variance, as in the paper
    x_hat = (x - mu) / sqrt(var + eps)
    out = gamma * x_hat + beta

With ``BatchNormConfig(batch_variance='unbiased')`` train mode normalizes
with ``var * m / (m - 1)`` instead (``sum((x - mu)^2) / (m - 1)``: Ba, Kiros &
Hinton 2016 trained their batch-norm baselines so, at batch 4), and the
backward is that forward's gradient. The running variance is updated as its
convention says either way.

Test mode uses the running statistics instead of mu and var.

Running statistics: two conventions, chosen per layer by ``BatchNormConfig``.

- ``'course'`` (default, CS231n): ``running = momentum * running + (1 - momentum) * batch``,
  momentum 0.9 weights the OLD value, biased variance, running mean and var start at 0.
- ``'torch'`` (PyTorch / the paper): ``running = (1 - momentum) * running + momentum * batch``,
  momentum 0.1 weights the NEW batch, unbiased variance ``var * m / (m - 1)``,
  running mean starts at 0 and running var at 1.

The numbers are the normalization core's (``core``): its ``moments`` and its
folded form (gamma and beta are one per statistic), ``affine_normalize`` and
``affine_normalize_backward``, which run on the blocked kernels of
``_kernels`` for this layout because batch norm is memory-bound. Only the
course's staged backward walks its own graph. The layer is functional:
running statistics come in as a ``RunningStats`` and a new one goes out;
nothing is mutated. ``batchnorm_forward`` and friends are the course's
``bn_param``-dict adapters over it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import backend
from .._checks import as_float_array, param_vector, require_mode, require_ndim
from . import _jit, _jit_layer
from .core import (affine_normalize, affine_normalize_backward, batch_param_grads, reduced_size,
                   train_normalize)

__all__ = [
    "BatchNormConfig", "RunningStats", "BatchNormCache",
    "batchnorm_train", "batchnorm_eval", "batchnorm_backward_staged", "batchnorm_backward_closed",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward", "batchnorm_after_bias",
]

CONVENTIONS = ("course", "torch")
BATCH_VARIANCES = ("biased", "unbiased")
_DEFAULT_MOMENTUM = {"course": 0.9, "torch": 0.1}


@dataclass(frozen=True)
class BatchNormConfig:
    """Hyperparameters of one batch-norm layer (see the module docstring for conventions)."""
    eps: float = 1e-5
    momentum: float | None = None      # None: 0.9 for 'course', 0.1 for 'torch'
    convention: str = "course"
    batch_variance: str = "biased"     # train mode normalizes with it: 'biased' (/ m) or 'unbiased' (/ (m - 1))

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown batch-norm convention {self.convention!r}; "
                             f"expected 'course' (CS231n) or 'torch' (PyTorch)")
        if self.batch_variance not in BATCH_VARIANCES:
            raise ValueError(f"unknown batch_variance {self.batch_variance!r}; expected 'biased' (divide by m, "
                             f"the paper's) or 'unbiased' (divide by m - 1)")
        if self.momentum is None:
            object.__setattr__(self, "momentum", _DEFAULT_MOMENTUM[self.convention])
        if not 0.0 <= float(self.momentum) <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {self.momentum}")
        if not float(self.eps) > 0.0:
            raise ValueError(f"eps must be positive, got {self.eps}")

    @property
    def ddof(self) -> int:
        """The batch variance's divisor is m - ddof: 0 biased, 1 unbiased."""
        return int(self.batch_variance == "unbiased")

    @property
    def new_weight(self) -> float:
        """Weight of the current batch in the running average."""
        return 1.0 - self.momentum if self.convention == "course" else self.momentum


class RunningStats(NamedTuple):
    """Running mean and variance, each of shape (C,)."""
    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def initial(cls, num_features: int, dtype, config: BatchNormConfig) -> "RunningStats":
        var0 = np.zeros if config.convention == "course" else np.ones
        return cls(np.zeros(num_features, dtype=dtype), var0(num_features, dtype=dtype))


class BatchNormCache(NamedTuple):
    """Everything both backward passes need. Statistics and gamma are per channel, in
    the core's keepdims shape: (1, C), or (1, C, 1, 1) for spatial.

    ``x_hat`` is recomputed on demand rather than stored: the closed-form
    backward rebuilds it block by block in cache, which is cheaper than
    writing and re-reading a second array the size of x.
    """
    x: np.ndarray             # the input as given
    mean: np.ndarray          # batch mean (train) or running mean (test)
    var: np.ndarray           # batch variance normalized with (train) or running variance (test)
    inv_std: np.ndarray       # 1 / sqrt(var + eps)
    gamma: np.ndarray
    eps: float
    axes: tuple[int, ...]     # the reduced axes of x: (0,) or (0, 2, 3)
    batch_stats: bool         # True in train mode: the statistics depend on x
    param_shape: tuple[int, ...]  # gamma's shape as given, for dgamma / dbeta
    ddof: int = 0             # train mode: var = sum((x - mean)^2) / (m - ddof)

    @property
    def x_hat(self) -> np.ndarray:
        """(x - mean) * inv_std, with x's shape."""
        return (self.x - self.mean) * self.inv_std


def _prepare(x, gamma, beta, axes):
    """x as a float array; gamma, beta per channel in keepdims shape; gamma's shape as given."""
    x = as_float_array(x, "x")
    require_ndim(x, 2 if axes == (0,) else 4, "input x", "(N, D)" if axes == (0,) else "(N, C, H, W)")
    c = x.shape[1]
    keep = (1, c) + (1,) * (x.ndim - 2)
    g = param_vector(gamma, c, "gamma", x.dtype).reshape(keep)
    b = param_vector(beta, c, "beta", x.dtype).reshape(keep)
    return x, g, b, np.shape(gamma)


def batchnorm_train(x, gamma, beta, stats: RunningStats | None, config: BatchNormConfig,
                    axes: tuple[int, ...] = (0,), offset=None):
    """Train-mode batch norm; returns ``(out, new_stats, cache)``.

    x: (N, C) with axes (0,), or (N, C, H, W) with axes (0, 2, 3).
    gamma, beta: (C,) (or any shape with C entries, e.g. (1, C, 1, 1)).
    offset: None, or a per-channel bias (C,) that the layer before added: the
    layer's input is then ``x + offset``. The centering cancels it exactly,
    so it is never added to x: the output and the cache are those of x, and
    only the batch mean that enters the running mean includes it. In exact
    arithmetic nothing changes; in floating point the output no longer
    carries the rounding of ``x + offset``, so finite differences of that
    bias (whose true gradient is 0) read exactly 0 instead of rounding noise.
    ``config.batch_variance == 'unbiased'`` normalizes with ``var * m / (m - 1)``;
    the running variance is updated as without it.
    Raises ValueError when each channel has a single value (m == 1: the
    variance is 0, or 0/0 unbiased, and the output carries no information),
    and NonFiniteError on NaN/inf input; the running statistics are untouched
    in both cases.
    """
    x, g, b, param_shape = _prepare(x, gamma, beta, axes)
    m = reduced_size(x.shape, axes)
    if m < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got input shape "
                         f"{x.shape}; use a batch of at least 2 or mode='test'")
    v = np.ascontiguousarray(x)   # the kernels' layout: copied (if at all) once for both passes
    out, mean, var, norm_var, inv_std = train_normalize(v, axes, g, b, config.eps, config.ddof, where="batchnorm")
    if stats is None:
        stats = RunningStats.initial(x.shape[1], x.dtype, config)
    batch_mean, batch_var = mean.reshape(-1), var.reshape(-1)
    if offset is not None:
        batch_mean = batch_mean + param_vector(offset, x.shape[1], "offset", x.dtype)
    new_stats = _running_update(stats, batch_mean, batch_var, config, m, x.dtype)
    cache = BatchNormCache(x, mean, norm_var, inv_std, g, config.eps, axes, True, param_shape, config.ddof)
    return out, new_stats, cache


def _running_update(stats: RunningStats, batch_mean, batch_var, config: BatchNormConfig, m: int, dtype):
    """The running statistics after this batch, in x's dtype (the convention's weights and variance)."""
    w = config.new_weight
    ratio = m / (m - 1) if config.convention == "torch" else None
    arrays = (stats.mean, stats.var, batch_mean, batch_var)
    if backend.fast() and arrays[0].dtype == dtype and _jit.supports(*arrays) \
            and all(a.flags.c_contiguous for a in arrays):
        res = backend.compiled(_jit_layer.running_update, *arrays, w, ratio)
        if res is not None:
            return RunningStats(*res)
    if ratio is not None:
        batch_var = batch_var * ratio
    return RunningStats(((1 - w) * stats.mean + w * batch_mean).astype(dtype, copy=False),
                        ((1 - w) * stats.var + w * batch_var).astype(dtype, copy=False))


def batchnorm_eval(x, gamma, beta, stats: RunningStats | None, config: BatchNormConfig,
                   axes: tuple[int, ...] = (0,)):
    """Test-mode batch norm with the running statistics; returns ``(out, cache)``.

    Without running statistics (a layer never trained) the initial ones of
    the convention are used.
    """
    x, g, b, param_shape = _prepare(x, gamma, beta, axes)
    if stats is None:
        stats = RunningStats.initial(x.shape[1], x.dtype, config)
    mean = np.asarray(stats.mean, dtype=x.dtype).reshape(g.shape)
    var = np.asarray(stats.var, dtype=x.dtype).reshape(g.shape)
    inv_std = 1.0 / np.sqrt(var + np.asarray(config.eps, dtype=x.dtype))
    out = affine_normalize(x, axes, mean, inv_std, g, b)
    return out, BatchNormCache(x, mean, var, inv_std, g, config.eps, axes, False, param_shape)


def batchnorm_backward_staged(dout, cache: BatchNormCache):
    """Backward through the forward graph, one node at a time (the course's staged version).

    Graph: mu = mean(x); xc = x - mu; var = sum(xc^2) / (m - ddof); inv = 1/sqrt(var + eps);
    x_hat = xc * inv; out = gamma * x_hat + beta. Returns ``(dx, dgamma, dbeta)``.
    The course asks for this form; ``batchnorm_backward_closed`` is the core's.
    """
    c = cache
    m = reduced_size(c.x.shape, c.axes)
    mu, inv, gamma = c.mean, c.inv_std, c.gamma
    xc = c.x - mu
    # out = gamma * x_hat + beta: dbeta = sum(dout), dgamma = sum(dout * x_hat), summed
    # as the closed form sums them, so the two backward passes agree on them exactly
    dgamma, dbeta = batch_param_grads(np.asarray(dout, dtype=c.x.dtype), c.x, c.axes, c.mean, c.inv_std, c.gamma,
                                      c.batch_stats)
    dx_hat = dout * gamma
    if not c.batch_stats:                                        # mu, inv are constants in test mode
        return _finish(dx_hat * inv, dgamma, dbeta, c)
    dinv = np.sum(dx_hat * xc, axis=c.axes, keepdims=True)       # x_hat = xc * inv
    dxc = dx_hat * inv
    dvar = dinv * (-0.5) * inv ** 3                              # inv = (var + eps)^(-1/2)
    dxc += xc * (2.0 / (m - c.ddof)) * dvar                      # var = sum(xc^2) / (m - ddof)
    dmu = -dxc.sum(axis=c.axes, keepdims=True)                   # xc = x - mu
    dx = dxc + dmu / m                                           # mu = mean(x)
    return _finish(dx, dgamma, dbeta, c)


def batchnorm_backward_closed(dout, cache: BatchNormCache):
    """Simplified closed form: ``dx = gamma * inv_std * (dout - mean(dout) - x_hat * mean(dout * x_hat))``.

    The core's folded backward (``affine_normalize_backward``): the two means
    are the parameter gradients over m (dbeta / m, dgamma / m), so the whole
    backward is one blocked pass for the sums and one for dx.
    """
    c = cache
    dx, dgamma, dbeta = affine_normalize_backward(np.asarray(dout, dtype=c.x.dtype), c.x, c.axes, c.mean,
                                                  c.inv_std, c.gamma, c.batch_stats, ddof=c.ddof)
    return _finish(dx, dgamma, dbeta, c)


def _finish(dx, dgamma, dbeta, c: BatchNormCache):
    dx = dx.astype(c.x.dtype, copy=False)
    return dx, dgamma.reshape(c.param_shape), dbeta.reshape(c.param_shape)


# ----------------------------------------------------------------------------
# Course API: the bn_param dict, updated in place with the new running stats.

_BN_PARAM_KEYS = {"mode", "eps", "momentum", "running_mean", "running_var", "convention", "batch_variance"}


def _config(bn_param: dict) -> BatchNormConfig:
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict like {{'mode': 'train'}}, got {type(bn_param).__name__}")
    unknown = set(bn_param) - _BN_PARAM_KEYS
    if unknown:
        raise ValueError(f"unknown bn_param keys {sorted(unknown)}; allowed: {sorted(_BN_PARAM_KEYS)}")
    if "mode" not in bn_param:
        raise ValueError("bn_param needs a 'mode' key: 'train' or 'test'")
    require_mode(bn_param["mode"])
    key = (bn_param.get("eps", 1e-5), bn_param.get("momentum"), bn_param.get("convention", "course"),
           bn_param.get("batch_variance", "biased"))
    try:
        config = _configs.get(key)
    except TypeError:   # an unhashable value: validated (and refused) below
        config = key = None
    if config is None:
        config = BatchNormConfig(eps=key[0] if key else bn_param.get("eps", 1e-5),
                                 momentum=bn_param.get("momentum"),
                                 convention=bn_param.get("convention", "course"),
                                 batch_variance=bn_param.get("batch_variance", "biased"))
        if key is not None and len(_configs) < 64:
            _configs[key] = config
    return config


# Validated configurations by their bn_param values: a layer is called with the same
# ones every step, and building (and checking) the frozen dataclass costs more than the kernel.
_configs: dict = {}


def _stats(bn_param: dict, num_features: int, dtype, config) -> RunningStats:
    """The running statistics in bn_param, the convention's initial ones where absent."""
    mean, var = bn_param.get("running_mean"), bn_param.get("running_var")
    if mean is None or var is None:
        init = RunningStats.initial(num_features, dtype, config)
        mean = init.mean if mean is None else mean
        var = init.var if var is None else var
    stats = RunningStats(np.asarray(mean), np.asarray(var))
    for name, s in zip(("running_mean", "running_var"), stats):
        if s.shape != (num_features,):
            raise ValueError(f"bn_param[{name!r}] has shape {s.shape}, expected ({num_features},) "
                             f"to match the input's {num_features} features")
    return stats


def _forward(x, gamma, beta, bn_param, axes, bias=None):
    config = _config(bn_param)
    x = as_float_array(x, "x")
    require_ndim(x, {1: 2, 3: 4}[len(axes)], "input x", "(N, D)" if axes == (0,) else "(N, C, H, W)")
    nfeat = x.shape[1]
    stats = _stats(bn_param, nfeat, x.dtype, config)
    if bn_param["mode"] == "train":
        out, stats, cache = batchnorm_train(x, gamma, beta, stats, config, axes, offset=bias)
    else:
        if bias is not None:   # x + bias formed as the layer before would have formed it
            b = param_vector(bias, nfeat, "bias", x.dtype)
            x = x + (b if x.ndim == 2 else b.reshape(1, -1, 1, 1))
        out, cache = batchnorm_eval(x, gamma, beta, stats, config, axes)
    bn_param["running_mean"], bn_param["running_var"] = stats.mean, stats.var
    return out, cache


def batchnorm_after_bias(x, bias, gamma, beta, bn_param):
    """Batch norm (or spatial batch norm, for 4-D x) of ``x + bias``, bias per channel (C,).

    What a net computes for ``affine (or conv) with bias -> batch norm``, with x
    the product before its bias. In train mode the bias is cancelled exactly
    by the centering and only reaches the running mean (see ``batchnorm_train``'s
    ``offset``); in test mode ``x + bias`` is normalized with the running
    statistics. Same bn_param, cache and backward as ``batchnorm_forward``; the
    bias's gradient is ``dx.sum`` over the reduced axes, as for any bias.
    """
    x = as_float_array(x, "x")
    return _forward(x, gamma, beta, bn_param, (0,) if x.ndim == 2 else (0, 2, 3), bias)


def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass for batch normalization.

    Inputs:
    - x: Data of shape (N, D)
    - gamma: Scale parameter of shape (D,)
    - beta: Shift parameter of shape (D,)
    - bn_param: Dictionary with the following keys:
      - mode: 'train' or 'test'; required
      - eps: Constant for numeric stability (default 1e-5)
      - momentum: Constant for running mean / variance (default 0.9 'course', 0.1 'torch')
      - running_mean: Array of shape (D,) giving running mean of features
      - running_var: Array of shape (D,) giving running variance of features
      - convention: 'course' (default) or 'torch', see the module docstring
      - batch_variance: 'biased' (default) or 'unbiased', the variance train mode normalizes with

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: a BatchNormCache for the backward pass

    The running statistics are created on first use and stored back into bn_param.
    """
    return _forward(x, gamma, beta, bn_param, (0,))


def batchnorm_backward(dout, cache):
    """Backward pass for batch normalization, staged through the computation graph.

    Inputs: dout, upstream derivatives of shape (N, D); cache from batchnorm_forward.
    Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,).
    """
    return batchnorm_backward_staged(dout, cache)


def batchnorm_backward_alt(dout, cache):
    """Backward pass for batch normalization in simplified closed form.

    Same inputs, cache and results as batchnorm_backward, in fewer passes.
    """
    return batchnorm_backward_closed(dout, cache)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Spatial batch norm: statistics per channel over N, H and W.

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - gamma: Scale parameter, of shape (C,)
    - beta: Shift parameter, of shape (C,)
    - bn_param: as for batchnorm_forward

    Returns a tuple of:
    - out: Output data, of shape (N, C, H, W)
    - cache: Values needed for the backward pass
    """
    return _forward(x, gamma, beta, bn_param, (0, 2, 3))


def spatial_batchnorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta) of shapes (N, C, H, W), (C,), (C,)."""
    return batchnorm_backward_closed(dout, cache)
