"""Numba kernels for per-sample statistics: layer, group and instance norm, forward and backward.

``group`` dispatches here when the backend is Numba (``normlab.nn.backend``)
and x is float32 or float64; other dtypes (float16) stay on the reference.
Two layouts, each statistic over one contiguous row:

    layer norm   x (N, D)             a row per sample, gamma/beta (D,) per feature
    group norm   x as (N*G, M)        a row per (sample, group), M = C/G*H*W;
                                      gamma/beta (C,) per channel, a run of H*W inside the row
    instance     group norm with G = C

Numerics, the reference's (``core.normalize``, ``core.normalize_backward``) or better:

- A row fits in cache, so the statistics are a true two-pass in float64:
  ``mean = sum x / M``, then ``var = sum (x - mean)^2 / M`` about the float64
  mean; ``inv_std = 1 / sqrt(var + eps)`` rounded once to x's dtype. The two
  passes are pipelined across rows (``_forward``), so x is read from memory once.
- The elementwise passes are the reference's operations in its order and
  dtype, with mean and inv_std in x's dtype: ``x_hat = (x - mean) * inv_std``,
  ``y = x_hat * gamma + beta``; backward ``g = dout * gamma`` and
  ``dx = ((g - x_hat * mean(g x_hat)) - mean(g)) * inv_std`` (``core.project_out``),
  without contraction into FMAs. The backward recomputes x_hat from x, mean
  and inv_std, so the forward writes y and two numbers per row, nothing more.
- The row sums (``sum g``, ``sum g x_hat``) and the per-feature sums across
  samples (``dgamma = sum dout x_hat``, ``dbeta = sum dout``) accumulate in
  float64, of products formed in float64 (exact for float32 data; the
  reference rounds ``g`` first). Rows are cut into blocks fixed by the shape
  (``BLOCK_BYTES``); each block adds its rows into its own row of a partial
  array, and the partials are added in block order. Threads
  (``_threads.kernel_threads``) take runs of whole blocks, so their number
  changes the speed and never a bit.

Reductions over a contiguous run are compiled with reassociation allowed
(``_REDUCE``, as in ``_jit``), so they vectorize; the elementwise passes are
not. Every row's sums come from the same loop, wherever a block or a thread's
run starts, so a row's statistics do not depend on its neighbours.
"""
from __future__ import annotations

import numpy as np

from ..._threads import kernel_threads
from ..backend import jit
from ._jit import _REDUCE
from ._kernels import _map_runs

__all__ = ["supports", "layernorm_forward", "layernorm_backward", "groupnorm_forward", "groupnorm_backward"]

BLOCK_BYTES = 1 << 18        # rows of x per block: a few hundred KiB, in L2 with dout and dx
SERIAL_BYTES = 1 << 20       # below this one thread does it all: hand-off costs more than it saves
CHUNK_BYTES = 1 << 14        # backward: rows of x and dout that stay in L1 from the sums to the dx pass
FORWARD_CHUNK_BYTES = 1 << 12   # forward: rows of x written out together, read from L1


def supports(x: np.ndarray) -> bool:
    """The kernels take non-empty float32 and float64 input."""
    return x.dtype in (np.float32, np.float64) and x.size > 0


# ----------------------------------------------------------------------------- kernels over rows [r0, r1)

@jit()
def _ln_affine(x, gamma, beta, mean, inv_std, out, r0, r1):
    """out = ((x - mean) * inv_std) * gamma + beta, gamma/beta per feature (D,)."""
    D = x.shape[1]
    for i in range(r0, r1):
        m, s = mean[i], inv_std[i]
        for j in range(D):
            out[i, j] = (x[i, j] - m) * s * gamma[j] + beta[j]


@jit()
def _gn_affine(x, G, gamma, beta, mean, inv_std, out, r0, r1):
    """As ``_ln_affine`` over x (N*G, M), gamma/beta per channel (C,): a run of M/(C/G) per channel."""
    M = x.shape[1]
    Cg = gamma.shape[0] // G
    HW = M // Cg
    for r in range(r0, r1):
        m, s = mean[r], inv_std[r]
        c0 = (r % G) * Cg
        for k in range(Cg):
            # one channel's run as a view: its index is then provably >= 0, and the loop vectorizes
            xs, os_ = x[r, k * HW:(k + 1) * HW], out[r, k * HW:(k + 1) * HW]
            gm, bt = gamma[c0 + k], beta[c0 + k]
            for j in range(HW):
                os_[j] = (xs[j] - m) * s * gm + bt


@jit(fastmath=_REDUCE)
def _ln_sums(dout, x, mean, inv_std, gamma, mg, mgx, pg, pb, r0, r1):
    """Per row: mg = mean(g), mgx = mean(g x_hat), g = dout * gamma, x_hat = (x - mean) * inv_std rounded
    to x's dtype as the reference's, summed in float64; per feature: pg += dout * x_hat, pb += dout.

    gamma: float64. mg, mgx are indexed from r0. Rows go in pairs, so pg and pb are read and written once
    per two rows; a last odd row pairs with itself at weight 0, so every row's sums are the same loop's.
    """
    D = x.shape[1]
    for i in range(r0, r1, 2):
        k = min(i + 1, r1 - 1)
        w = 1.0 if k > i else 0.0
        m0, s0, m1, s1 = mean[i], inv_std[i], mean[k], inv_std[k]
        sg0 = 0.0
        sgx0 = 0.0
        sg1 = 0.0
        sgx1 = 0.0
        for j in range(D):
            d0, d1 = np.float64(dout[i, j]), np.float64(dout[k, j])
            t0 = d0 * np.float64((x[i, j] - m0) * s0)
            t1 = d1 * np.float64((x[k, j] - m1) * s1)
            pg[j] += t0 + w * t1
            pb[j] += d0 + w * d1
            sg0 += d0 * gamma[j]
            sgx0 += t0 * gamma[j]
            sg1 += d1 * gamma[j]
            sgx1 += t1 * gamma[j]
        mg[k - r0], mgx[k - r0] = sg1 / D, sgx1 / D
        mg[i - r0], mgx[i - r0] = sg0 / D, sgx0 / D


@jit(fastmath=_REDUCE)
def _gn_sums(dout, x, G, mean, inv_std, gamma, mg, mgx, pg, pb, r0, r1):
    """As ``_ln_sums`` over x (N*G, M), a row at a time; pg, pb per channel (C,)."""
    M = x.shape[1]
    Cg = gamma.shape[0] // G
    HW = M // Cg
    for r in range(r0, r1):
        m, s = mean[r], inv_std[r]
        c0 = (r % G) * Cg
        sg = 0.0
        sgx = 0.0
        for k in range(Cg):
            xs, ds = x[r, k * HW:(k + 1) * HW], dout[r, k * HW:(k + 1) * HW]
            sd = 0.0
            sdx = 0.0
            for j in range(HW):
                d = np.float64(ds[j])
                sd += d
                sdx += d * np.float64((xs[j] - m) * s)
            gm = gamma[c0 + k]
            sg += sd * gm
            sgx += sdx * gm
            pg[c0 + k] += sdx
            pb[c0 + k] += sd
        mg[r - r0] = sg / M
        mgx[r - r0] = sgx / M


@jit()
def _ln_dx(dout, x, mean, inv_std, gamma, mg, mgx, dx, r0, r1):
    """dx = ((g - x_hat * mgx) - mg) * inv_std, g = dout * gamma: ``core.project_out``'s order."""
    D = x.shape[1]
    for i in range(r0, r1):
        m, s, a, c = mean[i], inv_std[i], mgx[i - r0], mg[i - r0]
        for j in range(D):
            xh = (x[i, j] - m) * s
            g = dout[i, j] * gamma[j]
            dx[i, j] = (g - xh * a - c) * s


@jit()
def _gn_dx(dout, x, G, mean, inv_std, gamma, mg, mgx, dx, r0, r1):
    """As ``_ln_dx`` over x (N*G, M) with gamma per channel."""
    M = x.shape[1]
    Cg = gamma.shape[0] // G
    HW = M // Cg
    for r in range(r0, r1):
        m, s, a, c = mean[r], inv_std[r], mgx[r - r0], mg[r - r0]
        c0 = (r % G) * Cg
        for k in range(Cg):
            xs, ds, dxs = x[r, k * HW:(k + 1) * HW], dout[r, k * HW:(k + 1) * HW], dx[r, k * HW:(k + 1) * HW]
            gm = gamma[c0 + k]
            for j in range(HW):
                xh = (xs[j] - m) * s
                g = ds[j] * gm
                dxs[j] = (g - xh * a - c) * s


@jit()
def _merge(parts, out):
    """out[j] = sum_b parts[b, j], added in block order, rounded once to out's dtype."""
    for j in range(parts.shape[1]):
        t = 0.0
        for b in range(parts.shape[0]):
            t += parts[b, j]
        out[j] = t


# ----------------------------------------------------------------------------- drivers over blocks [b0, b1)

@jit(fastmath=_REDUCE)
def _forward(x, G, gamma, beta, eps, vmax, out, mean, inv_std, sub, r0, r1):
    """Normalize rows [r0, r1) of x (rows, M): layer norm when G == 0, else group norm with G groups.

    Per row, two passes in float64: mean = sum x / M, then var = sum (x - mean)^2 / M about it. The
    passes are pipelined: one loop takes the second pass of row t and the first of row t + 1, so each
    row is read from memory once, while the previous row's deviations are computed (a separate second
    pass costs ~40% more time, the row then waiting in L1 with memory idle). Row r0's first pass runs
    in that same loop, so every row's sums are added in the same order, wherever a run starts.
    y is written every ``sub`` rows, while they are in L1. True when every statistic is finite in x's
    dtype (vmax: the largest variance it holds).
    """
    M = x.shape[1]
    ok = True
    if r1 <= r0:
        return ok
    m_next = 0.0
    done = r0
    for t in range(r0 - 1, r1):
        i, k = max(t, r0), min(t + 1, r1 - 1)   # second pass over row i, first over row k
        m = m_next
        total = 0.0
        q = 0.0
        for j in range(M):
            total += np.float64(x[k, j])
            d = np.float64(x[i, j]) - m
            q += d * d
        m_next = total / M
        if t < r0:   # the first row's first pass only
            continue
        v = q / M
        mean[t] = m
        inv_std[t] = 1.0 / np.sqrt(v + eps)
        ok &= np.isfinite(m) and v <= vmax   # NaN fails the comparison
        if t + 1 - done >= sub or t == r1 - 1:
            if G:
                _gn_affine(x, G, gamma, beta, mean, inv_std, out, done, t + 1)
            else:
                _ln_affine(x, gamma, beta, mean, inv_std, out, done, t + 1)
            done = t + 1
    return ok


@jit()
def _ln_backward(dout, x, mean, inv_std, gamma, step, sub, b0, b1, pg, pb, dx, dgamma, dbeta):
    """dx over the blocks [b0, b1) of ``step`` rows, ``sub`` rows at a time (in L1 for both passes);
    each block's dgamma, dbeta in pg[b], pb[b] (float64).

    dgamma, dbeta: when not empty, the partials are merged into them (one thread did every block).
    """
    mg, mgx = np.empty(sub, x.dtype), np.empty(sub, x.dtype)
    g64 = gamma.astype(np.float64)
    for b in range(b0, b1):
        pg[b, :] = 0.0
        pb[b, :] = 0.0
        end = min((b + 1) * step, x.shape[0])
        for a in range(b * step, end, sub):
            _ln_sums(dout, x, mean, inv_std, g64, mg, mgx, pg[b], pb[b], a, min(a + sub, end))
            _ln_dx(dout, x, mean, inv_std, gamma, mg, mgx, dx, a, min(a + sub, end))
    if dgamma.shape[0]:
        _merge(pg, dgamma)
        _merge(pb, dbeta)


@jit()
def _gn_backward(dout, x, G, mean, inv_std, gamma, step, sub, b0, b1, pg, pb, dx, dgamma, dbeta):
    """As ``_ln_backward`` over x (N*G, M); partials pg, pb (blocks, C) per channel."""
    mg, mgx = np.empty(sub, x.dtype), np.empty(sub, x.dtype)
    g64 = gamma.astype(np.float64)
    for b in range(b0, b1):
        pg[b, :] = 0.0
        pb[b, :] = 0.0
        end = min((b + 1) * step, x.shape[0])
        for a in range(b * step, end, sub):
            _gn_sums(dout, x, G, mean, inv_std, g64, mg, mgx, pg[b], pb[b], a, min(a + sub, end))
            _gn_dx(dout, x, G, mean, inv_std, gamma, mg, mgx, dx, a, min(a + sub, end))
    if dgamma.shape[0]:
        _merge(pg, dgamma)
        _merge(pb, dbeta)


# ----------------------------------------------------------------------------- blocking and threads

def _plan(x2: np.ndarray):
    """(rows per block, blocks, threads) for x viewed (rows, row length): fixed by the shape, threads aside.

    Blocks hold an even number of rows (at least 2), so the backward's pairs of rows never straddle one.
    """
    rows, row_bytes = x2.shape[0], max(1, x2.shape[1] * x2.itemsize)
    step = max(2, BLOCK_BYTES // row_bytes // 2 * 2)
    nb = -(-rows // step)
    n = 1 if nb < 2 or x2.nbytes < SERIAL_BYTES else min(kernel_threads(), nb)
    return step, nb, n


def _sub(x2: np.ndarray, nbytes: int) -> int:
    """Rows in ``nbytes`` of x2, even, at least 2: how many go through a pass pair in L1 (no result depends on it)."""
    return max(2, nbytes // max(1, x2.shape[1] * x2.itemsize) // 2 * 2)


_VMAX = {np.dtype(np.float32): float(np.finfo(np.float32).max), np.dtype(np.float64): float(np.finfo(np.float64).max)}


def _run_forward(x2, G, gamma, beta, eps):
    """``_forward`` over x2's rows, on runs of blocks per thread; (out, mean, inv_std, all finite)."""
    rows = x2.shape[0]
    out = np.empty_like(x2)
    mean, inv_std = np.empty(rows, x2.dtype), np.empty(rows, x2.dtype)
    # eps as the reference adds it, rounded to x's dtype; vmax: the largest variance that dtype holds
    args = (x2, G, gamma, beta, float(x2.dtype.type(eps)), _VMAX[x2.dtype], out, mean, inv_std,
            _sub(x2, FORWARD_CHUNK_BYTES))
    step, nb, n = _plan(x2)
    if n == 1:
        ok = _forward(*args, 0, rows)
    else:
        oks = []
        _map_runs(lambda b0, b1: oks.append(_forward(*args, b0 * step, min(b1 * step, rows))), nb, n)
        ok = all(oks)
    return out, mean, inv_std, ok


_NONE = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def _backward(kernel, dout2, x2, args, mean, inv_std, gamma, width):
    """Run a backward kernel; (dx, dgamma, dbeta), the latter two (width,) in x's dtype."""
    step, nb, n = _plan(x2)
    pg, pb = np.empty((nb, width)), np.empty((nb, width))
    dx = np.empty_like(x2)
    dgamma, dbeta = np.empty(width, x2.dtype), np.empty(width, x2.dtype)
    head = (dout2, x2) + args + (mean, inv_std, gamma, step, min(step, _sub(x2, CHUNK_BYTES)))
    if n == 1:
        kernel(*head, 0, nb, pg, pb, dx, dgamma, dbeta)
    else:
        none = _NONE[x2.dtype]
        _map_runs(lambda b0, b1: kernel(*head, b0, b1, pg, pb, dx, none, none), nb, n)
        _merge(pg, dgamma)
        _merge(pb, dbeta)
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------- the four functions

def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float):
    """x (N, D) C-contiguous, gamma/beta (D,) in x's dtype: (out, mean (N,), inv_std (N,), finite)."""
    return _run_forward(x, 0, gamma, beta, eps)


def layernorm_backward(dout: np.ndarray, x: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, gamma: np.ndarray):
    """dout, x (N, D) C-contiguous of one dtype, mean/inv_std (N,), gamma (D,): (dx, dgamma, dbeta)."""
    return _backward(_ln_backward, dout, x, (), mean, inv_std, gamma, x.shape[1])


def groupnorm_forward(x: np.ndarray, groups: int, gamma: np.ndarray, beta: np.ndarray, eps: float):
    """x (N*G, M) C-contiguous, gamma/beta (C,): (out (N*G, M), mean (N*G,), inv_std (N*G,), finite)."""
    return _run_forward(x, groups, gamma, beta, eps)


def groupnorm_backward(dout: np.ndarray, x: np.ndarray, groups: int, mean: np.ndarray, inv_std: np.ndarray,
                       gamma: np.ndarray):
    """dout, x (N*G, M), mean/inv_std (N*G,), gamma (C,): (dx (N*G, M), dgamma (C,), dbeta (C,))."""
    return _backward(_gn_backward, dout, x, (groups,), mean, inv_std, gamma, gamma.shape[0])
