"""Batch norm's two layer passes, fused on the Numba kernels of ``_jit``.

``train_forward`` is ``core.train_normalize`` (the batch statistics, then
``affine_normalize`` with them) and ``folded_backward`` is
``core.affine_normalize_backward``, each one compiled call for inputs of one
block (every layer of the course's nets: no Python between the passes) and
the blocked, threaded kernels of ``_jit`` above that. Statistics and
coefficients are computed in x's dtype with the reference's operations in its
order, from sums in float64.
"""
from __future__ import annotations

import numpy as np

from ..backend import jit
from ._jit import (_affine2, _affine3, _block_moments, _dx2, _dx3, _gsums2, _gsums3, _merge, _merge_moments,
                   _stats2, _stats3, _starts, _threads_for)
from ._kernels import _map_runs

__all__ = ["train_forward", "folded_backward", "param_grads", "running_update"]


@jit()
def _finish_forward(mom, gamma, consts, stats):
    """From the merged moments to the statistics, in x's dtype as ``core`` computes them.

    consts = (m, eps, ratio, one) in x's dtype; ratio = m / (m - ddof), 1 for the biased variance.
    stats rows: mean, var (biased), the variance normalized with, inv_std, scale = inv_std * gamma.
    Returns False when a mean or variance is NaN/inf (the input held one).
    """
    m = np.float64(consts[0])
    eps, ratio, one = consts[1], consts[2], consts[3]
    finite = True
    for c in range(stats.shape[1]):
        stats[0, c] = mom[0, c]
        stats[1, c] = mom[1, c] / m
        stats[2, c] = stats[1, c] * ratio        # exact when ratio is 1
        stats[3, c] = one / np.sqrt(stats[2, c] + eps)
        stats[4, c] = stats[3, c] * gamma[c]
        finite = finite and np.isfinite(stats[0, c]) and np.isfinite(stats[1, c])
    return finite


@jit()
def _forward_serial2(x, gamma, beta, consts, starts, parts, mom, stats, out):
    """The whole forward of x (A, C) in one call: block moments, merge, statistics, output."""
    _stats2(x, starts, 0, len(starts) - 1, parts[0], parts[1])
    _merge_moments(parts[0], parts[1], starts, 1, mom)
    finite = _finish_forward(mom, gamma, consts, stats)
    _affine2(x, stats[0], stats[4], beta, out, 0, x.shape[0])
    return finite


@jit()
def _forward_serial3(x, gamma, beta, consts, starts, parts, mom, stats, out):
    _stats3(x, starts, 0, len(starts) - 1, parts[0], parts[1])
    _merge_moments(parts[0], parts[1], starts, x.shape[2], mom)
    finite = _finish_forward(mom, gamma, consts, stats)
    _affine3(x, stats[0], stats[4], beta, out, 0, x.shape[0])
    return finite


@jit()
def _finish_backward(sums, inv_std, gamma, consts, batch_stats, coef):
    """coef rows: dbeta, dgamma, k, a, c, residual (x's dtype), in the order of ``core.affine_normalize_backward``.

    consts = (m - ddof, m) in x's dtype.
    """
    m = np.float64(consts[1])
    for c in range(coef.shape[1]):
        coef[0, c] = sums[0, c]                  # dbeta
        # Train mode: sum(dout (x - mean)) about the exact batch mean. ``mean`` is rounded to
        # x's dtype, off the true mean by sum(x - mean) / m, which would add that times sum(dout)
        # (in float32 at x ~ 1e4 + N(0, 1): 5e-4 of dgamma). Test mode: mean is a constant.
        coef[1, c] = sums[1, c] - sums[2, c] / m * sums[0, c] if batch_stats else sums[1, c]
        coef[1, c] = coef[1, c] * inv_std[c]     # dgamma
        coef[2, c] = gamma[c] * inv_std[c]       # k
        if batch_stats:
            coef[3, c] = -coef[2, c] * inv_std[c] * coef[1, c] / consts[0]
            coef[5, c] = sums[2, c]              # residual sum(x - mean), in x's dtype
            coef[4, c] = -(coef[2, c] * coef[0, c] + coef[3, c] * coef[5, c]) / consts[1]
        else:
            coef[3, c] = 0.0
            coef[4, c] = 0.0


@jit()
def _backward_serial2(g, x, mean, inv_std, gamma, consts, batch_stats, starts, parts, sums, coef, dx):
    """The whole backward of x (A, C) in one call: block sums, merge, coefficients, dx."""
    _gsums2(g, x, mean, starts, 0, len(starts) - 1, parts[0], parts[1], parts[2])
    _merge(parts, sums)
    _finish_backward(sums, inv_std, gamma, consts, batch_stats, coef)
    _dx2(g, x, mean, coef[2], coef[3], coef[4], dx, 0, x.shape[0])


@jit()
def _backward_serial3(g, x, mean, inv_std, gamma, consts, batch_stats, starts, parts, sums, coef, dx):
    _gsums3(g, x, mean, starts, 0, len(starts) - 1, parts[0], parts[1], parts[2])
    _merge(parts, sums)
    _finish_backward(sums, inv_std, gamma, consts, batch_stats, coef)
    _dx3(g, x, mean, coef[2], coef[3], coef[4], dx, 0, x.shape[0])


# ----------------------------------------------------------------------------- the passes

try:   # NumPy asks for transparent huge pages on large arrays; see _empty_like
    from numpy._core.multiarray import _set_madvise_hugepage
except ImportError:   # pragma: no cover - NumPy < 2
    _set_madvise_hugepage = None


def _empty_like(x: np.ndarray) -> np.ndarray:
    """np.empty_like(x), without NumPy's huge-page request.

    Where the kernel's huge-page policy is ``madvise`` with direct compaction
    (common: Debian and Ubuntu's default), the first touch of such an array
    stalls: a fresh 16 MiB output cost 1.6 ms of page faults here, more than
    the kernel writing it. Ordinary pages fault in a fraction of that.
    """
    if _set_madvise_hugepage is None or x.nbytes < (4 << 20):
        return np.empty_like(x)
    before = _set_madvise_hugepage(False)
    try:
        return np.empty_like(x)
    finally:
        _set_madvise_hugepage(before)


def train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, ddof: int):
    """Batch norm's train forward of x (A, C) or (A, C, B), gamma and beta (C,) in x's dtype.

    Returns ``(out, stats, finite)``, stats (5, C) in x's dtype with rows mean,
    biased variance, the variance normalized with (``var m / (m - ddof)``),
    inv_std, inv_std * gamma: ``core.moments`` then ``core.affine_normalize``,
    fused; finite is False when x held NaN/inf.
    """
    C = x.shape[1]
    m = x.shape[0] * (x.shape[2] if x.ndim == 3 else 1)
    consts = np.array([m, eps, m / (m - ddof) if ddof else 1.0, 1.0], dtype=x.dtype)
    starts = _starts(x)
    nb = len(starts) - 1
    stats = np.empty((5, C), dtype=x.dtype)
    out = _empty_like(x)
    n = _threads_for(x, nb)
    if nb == 1:   # one compiled call; several blocks always run the separate kernels, whatever n
        serial = _forward_serial2 if x.ndim == 2 else _forward_serial3
        finite = serial(x, gamma, beta, consts, starts, np.empty((2, nb, C)), np.empty((2, C)), stats, out)
        return out, stats, finite
    finite = _finish_forward(_block_moments(x), gamma, consts, stats)
    affine = _affine2 if x.ndim == 2 else _affine3
    _map_runs(lambda b0, b1: affine(x, stats[0], stats[4], beta, out, starts[b0], starts[b1]), nb, n)
    return out, stats, finite


def _coefficients(dout, x, mean, inv_std, gamma, batch_stats: bool, consts, starts, n: int) -> np.ndarray:
    """The backward's sums over the blocks, merged in block order, turned into ``_finish_backward``'s coef."""
    C = x.shape[1]
    nb = len(starts) - 1
    parts = np.empty((3, nb, C))
    kernel = _gsums2 if x.ndim == 2 else _gsums3
    _map_runs(lambda b0, b1: kernel(dout, x, mean, starts, b0, b1, parts[0], parts[1], parts[2]), nb, n)
    sums = np.empty((3, C))
    _merge(parts, sums)
    coef = np.empty((6, C), dtype=x.dtype)
    _finish_backward(sums, inv_std, gamma, consts, batch_stats, coef)
    return coef


def _consts(x: np.ndarray, ddof: int) -> np.ndarray:
    m = x.shape[0] * (x.shape[2] if x.ndim == 3 else 1)
    return np.array([m - ddof, m], dtype=x.dtype)


def folded_backward(dout: np.ndarray, x: np.ndarray, mean, inv_std, gamma, batch_stats: bool, ddof: int):
    """``core.affine_normalize_backward`` fused: ``(dx, dgamma, dbeta)``, dgamma and dbeta (C,).

    x, dout (A, C) or (A, C, B) of one dtype; mean, inv_std, gamma (C,) in it.
    """
    C = x.shape[1]
    consts = _consts(x, ddof)
    starts = _starts(x)
    nb = len(starts) - 1
    dx = _empty_like(x)
    n = _threads_for(x, nb)
    if nb == 1:   # one compiled call, as in train_forward
        serial = _backward_serial2 if x.ndim == 2 else _backward_serial3
        coef = np.empty((6, C), dtype=x.dtype)
        serial(dout, x, mean, inv_std, gamma, consts, batch_stats, starts, np.empty((3, nb, C)), np.empty((3, C)),
               coef, dx)
        return dx, coef[1], coef[0]
    coef = _coefficients(dout, x, mean, inv_std, gamma, batch_stats, consts, starts, n)
    dxk = _dx2 if x.ndim == 2 else _dx3
    _map_runs(lambda b0, b1: dxk(dout, x, mean, coef[2], coef[3], coef[4], dx, starts[b0], starts[b1]), nb, n)
    return dx, coef[1], coef[0]


def param_grads(dout: np.ndarray, x: np.ndarray, mean, inv_std, gamma, batch_stats: bool):
    """``(dgamma, dbeta)`` (C,) of ``folded_backward``, bit for bit, without dx.

    The same kernels and coefficients; for one block ``folded_backward`` runs them inlined in one
    call, which rounds the same for x (A, C): those sums are compiled without reassociation.
    """
    starts = _starts(x)
    coef = _coefficients(dout, x, mean, inv_std, gamma, batch_stats, _consts(x, 0), starts,
                         _threads_for(x, len(starts) - 1))
    return coef[1], coef[0]


@jit()
def _running(rm, rv, bm, bv, k, out):
    """out[0] = k[0] rm + k[1] bm, out[1] = k[0] rv + k[1] (bv k[2]), in the arrays' dtype, NumPy's order."""
    for c in range(rm.shape[0]):
        out[0, c] = k[0] * rm[c] + k[1] * bm[c]
        out[1, c] = k[0] * rv[c] + k[1] * (bv[c] * k[2])


def running_update(rm: np.ndarray, rv: np.ndarray, bm: np.ndarray, bv: np.ndarray, w: float, var_ratio):
    """``((1 - w) rm + w bm, (1 - w) rv + w bv var_ratio)``, one compiled call, as ``batchnorm_train`` forms them.

    All four (C,) arrays of one float dtype; (1 - w), w and var_ratio rounded to it first, as NumPy
    rounds a Python float meeting an array. var_ratio None: bv as it is (x 1, exact).
    """
    k = np.array([1 - w, w, 1.0 if var_ratio is None else var_ratio], dtype=rm.dtype)
    out = np.empty((2, rm.shape[0]), dtype=rm.dtype)
    _running(rm, rv, bm, bv, k, out)
    return out[0], out[1]
