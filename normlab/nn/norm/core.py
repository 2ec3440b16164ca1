"""The one normalization core: batch, layer, group and instance norm are this
computation over different axes.

Over the m entries that each statistic reduces (the ``axes`` of x):

    mean    = (1/m) sum x
    var     = (1/m) sum (x - mean)^2        biased (divided by m)
    inv_std = 1 / sqrt(var + eps)
    x_hat   = (x - mean) * inv_std
    y       = gamma * x_hat + beta

and the simplified backward, with dxhat = dL/dx_hat = gamma * dL/dy,

    dx = (1/m) inv_std (m dxhat - sum dxhat - x_hat sum(dxhat x_hat))     (sums over axes)

The layers pick the axes:

    batch norm          x (N, D)                    axes (0,)          per feature
    spatial batch norm  x (N, C, H, W)              axes (0, 2, 3)     per channel
    layer norm          x (N, D)                    axes (1,)          per sample
    group norm          x as (N, G, C/G, H, W)      axes (2, 3, 4)     per sample and group
    instance norm       group norm with G = C                          per sample and channel

Two forms of y and its backward, by where gamma lives:

- x_hat form (``normalize``, ``normalize_backward``): x_hat is formed and
  cached, the layer applies gamma and beta. Layer, group and instance norm:
  their gamma varies inside a statistic's reduction (per reduced feature, per
  channel of a group), so it cannot join a per-statistic scale.
- folded form (``affine_normalize``, ``affine_normalize_backward``): gamma and
  beta are one per statistic (batch norm), so ``y = (x - mean) * (gamma *
  inv_std) + beta`` is one pass, x rather than x_hat is cached, and the
  backward is one pass of sums and one of ``dx = k dout + a (x - mean) + c``.

The forms round differently (gamma * x_hat rounds twice, the folded scale
once); each layer keeps the form its published numbers were computed with.

Reference and fast paths. The code below is the plain NumPy reference, valid
for any axes. The folded form's reductions and passes (``moments``,
``centered_sums``, ``affine_normalize``, ``affine_normalize_backward``,
``train_normalize``) run instead on kernels when the statistics are per
channel with the channels on axis 1 -- x (N, C, ...) reduced over every
other axis, batch norm's layout (``fast_layout``): the compiled Numba kernels
of ``_jit`` and ``_jit_layer`` when that backend is on (``normlab.nn.backend``)
and x is float32 or float64, else the cache-blocked NumPy kernels of
``_kernels``. ``fast=False`` forces the reference, ``fast=True`` the kernels.
The elementwise passes are the same operations in the same order on every
path, so given the same statistics they agree bitwise; the reductions round
differently (block sums merged in float64, against NumPy's pairwise sums).
The x_hat form's layers (layer, group, instance norm) have statistics per
sample, never this layout; their Numba path is ``_jit_rows``, dispatched by
``group``. tests/nn/norm/test_core.py and test_batchnorm_jit.py check that
the paths agree.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _jit, _jit_layer, _kernels
from .. import backend
from .._checks import require_finite_stats

__all__ = ["NormCache", "reduced_size", "fast_layout", "moments", "normalize", "normalize_backward",
           "project_out", "centered_sums", "affine_normalize", "affine_normalize_backward", "train_normalize",
           "batch_param_grads"]


class NormCache(NamedTuple):
    """What the x_hat form's backward needs; stats have keepdims shape (1 on reduced axes)."""
    x_hat: np.ndarray     # normalized input, same shape and dtype as x
    inv_std: np.ndarray   # 1 / sqrt(var + eps)
    axes: tuple[int, ...]


def reduced_size(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """m: how many entries each statistic averages over."""
    return math.prod(shape[a] for a in axes)


def fast_layout(shape: tuple[int, ...], axes: tuple[int, ...]) -> bool:
    """True for per-channel statistics of x (N, C, ...): every axis but 1 reduced, the kernels' layout."""
    return len(shape) >= 2 and tuple(axes) == (0, *range(2, len(shape)))


def _use_kernels(x: np.ndarray, axes, fast: bool | None) -> bool:
    if fast is None:
        return fast_layout(x.shape, axes)
    if fast and not fast_layout(x.shape, axes):
        raise ValueError(f"the blocked kernels reduce every axis but 1 of x (N, C, ...); got axes {axes} "
                         f"for shape {x.shape}; use fast=None or False")
    return bool(fast)


def _engine(*arrays):
    """The kernels of the blocked layout: Numba's when that backend is on and takes the dtype, else NumPy's."""
    return _jit if backend.fast() and _jit.supports(*arrays) else _kernels


def _run(name: str, *args):
    """``engine.name(*args)``; a kernel that fails to compile turns the backend off and NumPy's run instead."""
    engine = _engine(*(a for a in args if isinstance(a, np.ndarray) and a.ndim >= 2))
    result = backend.compiled(getattr(_jit, name), *args) if engine is _jit else None
    return getattr(_kernels, name)(*args) if result is None else result


def _channels(a: np.ndarray) -> np.ndarray:
    """a (N, C, ...) as the kernels' contiguous (N, C) or (N, C, rest) view."""
    a = np.ascontiguousarray(a)
    return a if a.ndim == 2 else a.reshape(a.shape[0], a.shape[1], -1)


def _vectors(*stats) -> list[np.ndarray]:
    """Per-statistic arrays (keepdims shape) as the kernels' (C,) vectors."""
    return [s.reshape(-1) for s in stats]


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """A kernels' (C,) result in keepdims shape (1, C, 1, ...)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _like(v, x: np.ndarray) -> np.ndarray:
    """A statistic in x's dtype, as the kernels cast it."""
    return np.asarray(v).astype(x.dtype, copy=False)


def _two_pass(x: np.ndarray, axes):
    """The reference statistics: ``(mean, x - mean, var)``, keepdims."""
    # NaN/inf input makes the statistics non-finite and is reported by the caller
    # as NonFiniteError; the intermediate warnings would only hide that.
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x.mean(axis=axes, keepdims=True)
        # Two-pass variance (mean of squared deviations): E[x^2] - E[x]^2 cancels
        # catastrophically in float32 when |mean| >> std.
        centered = x - mean
        var = np.mean(np.square(centered), axis=axes, keepdims=True)
    return mean, centered, var


def moments(x: np.ndarray, axes: tuple[int, ...], where: str = "normalize", *, fast: bool | None = None):
    """Mean and biased variance of x over ``axes``, keepdims shape, x's dtype.

    Raises NonFiniteError when x holds NaN/inf, so bad data never reaches
    running statistics.
    """
    if _use_kernels(x, axes, fast):
        mean, var = (_per_channel(v, x.ndim) for v in _run("moments", _channels(x)))
    else:
        mean, _, var = _two_pass(x, axes)
    require_finite_stats(mean, var, where=where)
    return mean, var


# ----------------------------------------------------------------------------- x_hat form

def normalize(x: np.ndarray, axes: tuple[int, ...], eps: float, where: str = "normalize"):
    """Normalize ``x`` over ``axes`` (reference path).

    Returns ``(x_hat, mean, var, cache)``: mean and var (biased) in keepdims
    shape and x's dtype. Raises NonFiniteError when x holds NaN/inf.
    """
    mean, x_hat, var = _two_pass(x, axes)
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


# ----------------------------------------------------------------------------- folded form

def affine_normalize(x: np.ndarray, axes: tuple[int, ...], mean, inv_std, gamma, beta, *,
                     fast: bool | None = None) -> np.ndarray:
    """``y = (x - mean) * (gamma * inv_std) + beta``: gamma * x_hat + beta in one pass.

    mean, inv_std, gamma, beta: one per statistic, keepdims shape (e.g. (1, C, 1, 1)).
    Centred first, never ``x * scale - mean * scale`` (see ``_kernels.affine_pass``).
    """
    scale = inv_std * gamma
    if _use_kernels(x, axes, fast):
        return _run("affine_pass", _channels(x), *_vectors(mean, scale, beta)).reshape(x.shape)
    out = np.subtract(x, _like(mean, x))
    out *= _like(scale, x)
    out += _like(beta, x)
    return out


def train_normalize(x: np.ndarray, axes: tuple[int, ...], gamma, beta, eps: float, ddof: int = 0,
                    where: str = "normalize"):
    """Batch statistics and ``affine_normalize`` with them: the folded form's forward in train mode.

    Returns ``(out, mean, var, norm_var, inv_std)``, statistics in keepdims
    shape and x's dtype: var is biased; x is normalized with ``norm_var = var *
    m / (m - ddof)``. gamma, beta: keepdims shape. Raises NonFiniteError on NaN/inf.
    """
    if _use_kernels(x, axes, None) and backend.fast() and _jit.supports(x, gamma, beta):
        res = backend.compiled(_jit_layer.train_forward, _channels(x), np.ascontiguousarray(gamma).reshape(-1),
                               np.ascontiguousarray(beta).reshape(-1), eps, ddof)
        if res is not None:
            out, st, finite = res
            keep = (4, 1, -1) + (1,) * (x.ndim - 2)
            mean, var, norm_var, inv_std = st[:4].reshape(keep)
            if not finite:
                require_finite_stats(mean, var, where=where)
            return out.reshape(x.shape), mean, var, norm_var, inv_std
    mean, var = moments(x, axes, where=where)
    m = reduced_size(x.shape, axes)
    norm_var = var * (m / (m - ddof)) if ddof else var
    inv_std = 1.0 / np.sqrt(norm_var + np.asarray(eps, dtype=x.dtype))
    return affine_normalize(x, axes, mean, inv_std, gamma, beta), mean, var, norm_var, inv_std


def centered_sums(g: np.ndarray, x: np.ndarray, axes: tuple[int, ...], mean, *, fast: bool | None = None):
    """``(sum g, sum g (x - mean), sum (x - mean))`` over axes, keepdims; one pass on the fast path.

    The last is 0 in exact arithmetic; its rounding residual lets the folded
    backward make dx sum to 0 as exactly as it can be evaluated.
    """
    if _use_kernels(x, axes, fast):
        sums = _run("grad_sums", _channels(g), _channels(x), *_vectors(mean))
        return tuple(_per_channel(s, x.ndim) for s in sums)
    t = x - mean
    return g.sum(axis=axes, keepdims=True), np.sum(g * t, axis=axes, keepdims=True), t.sum(axis=axes, keepdims=True)


def batch_param_grads(dout: np.ndarray, x: np.ndarray, axes: tuple[int, ...], mean, inv_std, gamma,
                      batch_stats: bool = True):
    """``(dgamma, dbeta)`` exactly as ``affine_normalize_backward`` computes them (keepdims).

    For a backward that forms dx its own way (the course's staged one) but must
    agree with the closed form on the parameter gradients bit for bit.
    """
    # x (N, D) only: there the one-block backward's inlined sums round as the separate kernels do
    if x.ndim == 2 and _use_kernels(x, axes, None) and backend.fast() and _jit.supports(x, dout, gamma):
        res = backend.compiled(_jit_layer.param_grads, _channels(dout), _channels(x),
                               *_vectors(mean, inv_std, gamma), bool(batch_stats))
        if res is not None:
            return tuple(_per_channel(v, x.ndim) for v in res)
    dbeta, s1, _ = centered_sums(dout, x, axes, mean)
    return s1 * inv_std, dbeta


def _backward_pass(dout, x, mean, k, a, c) -> np.ndarray:
    """Reference of ``_kernels.backward_pass``: ``k * dout + a * (x - mean) + c``, centred first."""
    t = np.subtract(x, _like(mean, x))
    t *= _like(a, x)
    d = dout * _like(k, x)
    d += t
    d += _like(c, x)
    return d


def affine_normalize_backward(dout: np.ndarray, x: np.ndarray, axes: tuple[int, ...], mean, inv_std, gamma,
                              batch_stats: bool = True, *, fast: bool | None = None, ddof: int = 0):
    """``(dx, dgamma, dbeta)`` of ``affine_normalize``; dgamma, dbeta per statistic (keepdims).

    dout has x's dtype. ``batch_stats``: mean and inv_std are x's own
    statistics (train mode); False: they are constants (running statistics),
    so ``dx = gamma * inv_std * dout``. With batch statistics:

        dgamma = sum(dout x_hat),  dbeta = sum(dout)
        dx = k dout + a (x - mean) + c,  k = gamma inv_std,  a = -k inv_std dgamma / (m - ddof),  c = -k dbeta / m

    which is the core's dx for dxhat = gamma dout. ``ddof``: inv_std is
    ``1 / sqrt(sum((x - mean)^2) / (m - ddof) + eps)``; 0 the biased variance
    (the core's), 1 the unbiased one. Only the variance's path, ``a``, sees it.
    """
    shape, m = x.shape, reduced_size(x.shape, axes)
    kernels = _use_kernels(x, axes, fast)
    if kernels and backend.fast() and _jit.supports(x, dout, gamma):
        res = backend.compiled(_jit_layer.folded_backward, _channels(dout), _channels(x),
                               *_vectors(mean, inv_std, gamma), bool(batch_stats), ddof)
        if res is not None:
            dx, dgamma, dbeta = res
            return dx.reshape(shape), _per_channel(dgamma, len(shape)), _per_channel(dbeta, len(shape))
    if kernels:   # the kernels' (N, C, rest) views and (C,) vectors, formed once for both passes
        x, dout = _channels(x), _channels(dout)
        mean, inv_std, gamma = _vectors(mean, inv_std, gamma)
        dbeta, s1, residual = _run("grad_sums", dout, x, mean)
        backward_pass = lambda *args: _run("backward_pass", *args)  # noqa: E731
    else:
        dbeta, s1, residual = centered_sums(dout, x, axes, mean, fast=False)
        backward_pass = _backward_pass
    # s1 = sum(dout * (x - mean))
    dgamma = s1 * inv_std
    k = gamma * inv_std
    if not batch_stats:
        dx = backward_pass(dout, x, mean, k, np.zeros_like(k), np.zeros_like(k))
    else:
        a = -k * inv_std * dgamma / (m - ddof)
        # sum(dx) over the reduced axes is exactly 0 (it is the gradient of a bias
        # before the norm). residual = sum(x - mean) is 0 too, up to the rounding
        # of the mean; charging it to the constant term keeps that rounding,
        # amplified by a, out of the sum (an N=2 batch with var ~ eps otherwise
        # leaves ~1e-12 where the course's check expects ~1e-16).
        dx = backward_pass(dout, x, mean, k, a, -(k * dbeta + a * residual) / m)
    if kernels:
        return dx.reshape(shape), _per_channel(dgamma, len(shape)), _per_channel(dbeta, len(shape))
    return dx, dgamma, dbeta
