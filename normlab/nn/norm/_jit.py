"""Numba kernels for batch norm's layout: the fast path of the core's folded form.

The same four functions as ``_kernels`` (``moments``, ``affine_pass``,
``grad_sums``, ``backward_pass``), over x viewed as (A, C) or (A, C, B) with
statistics per channel C (batch norm (N, D); spatial (N, C, H*W), read in
place, no transpose), compiled and fused: each is one read of its inputs.
``core`` dispatches here when the backend is Numba (``normlab.nn.backend``)
and x is float32 or float64; other dtypes (float16) stay on the reference.

Numerics, the reference's or better:

- Statistics are sums in float64, never E[x^2] - E[x]^2 of raw values:
  an input of one block (small: every layer of the course's nets) gets the
  reference's two passes (the mean, then the squared deviations from it);
  each of several blocks of (A, C) is read once, its sums taken about its
  own first row (spatial blocks get two passes, the second from cache), and
  the blocks' (mean, M2) are merged exactly (Chan et al.). Either way
  x ~ 1e4 + N(0, 1) in float32 keeps its variance.
- In train mode dgamma is taken about the exact batch mean: the cached
  mean, rounded to x's dtype, is corrected by sum(x - mean) / m
  (``_jit_layer._finish_backward``; the reference leaves it: 5e-4 of dgamma
  in float32 at x ~ 1e4 + N(0, 1), 1e-6 corrected).
- The elementwise passes are the reference's operations in its order and
  dtype (``(x - mean) * scale + offset``; ``k dout + a (x - mean) + c``),
  without contraction into FMAs, so given the same statistics they agree
  with ``core``'s NumPy code bit for bit.
- Large inputs are cut into row blocks fixed by the shape (``BLOCK_BYTES``);
  each block's sums land in its own row of a partial array, and the rows are
  added in block order. Threads (``_threads.kernel_threads``) take runs of
  whole blocks, so their number changes the speed and never a bit.

Reductions over a contiguous run (the spatial B axis) are compiled with
reassociation allowed, so they vectorize: the order of the additions is then
the compiler's, fixed for a machine, the same in every call and thread.
"""
from __future__ import annotations

import numpy as np

from ..._threads import kernel_threads
from ..backend import jit
from ._kernels import _map_runs

__all__ = ["supports", "moments", "affine_pass", "grad_sums", "backward_pass"]

BLOCK_BYTES = 1 << 18        # rows of x per block: a few hundred KiB, in L2 with its partner array
SERIAL_BYTES = 1 << 20       # below this one thread does it all: hand-off costs more than it saves
_REDUCE = {"reassoc", "contract", "nsz"}   # sums only: no 'nnan'/'ninf', NaN input must stay visible


def supports(*arrays) -> bool:
    """The kernels take float32 and float64 (all of the same dtype)."""
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


# ----------------------------------------------------------------------------- compiled kernels

@jit()
def _stats2(x, starts, b0, b1, means, m2s):
    """Block b in [b0, b1) of x (A, C): its mean and M2 = sum (x - mean)^2 per channel, in float64.

    A single block (small inputs) is read twice: its mean, then the squared
    deviations from it, the reference's two-pass variance. Each of several
    blocks is read once, its sums taken about its own first row,
    ``M2 = sum d^2 - (sum d)^2 / n`` with ``d = x - x[first]``: d is of the
    order of the spread within the block, so in float64 nothing is lost that
    float32 statistics would keep; the merge then adds whole blocks exactly.
    Rows are taken four at a time (their sum first), which quarters the
    traffic to the accumulators; the grouping is fixed by the block's rows.
    """
    C = x.shape[1]
    two_pass = len(starts) == 2
    for b in range(b0, b1):
        p1, p2 = means[b], m2s[b]
        a0, end = starts[b], starts[b + 1]
        n = np.float64(end - a0)
        for c in range(C):
            p1[c] = 0.0
            p2[c] = 0.0
        if two_pass:
            _sum_rows(x, a0, end, p1)
            for c in range(C):
                p1[c] /= n
            _sq_dev_rows(x, a0, end, p1, p2)
            continue
        shift = x[a0]
        a = a0
        while a + 4 <= end:
            x0, x1, x2, x3 = x[a], x[a + 1], x[a + 2], x[a + 3]
            for c in range(C):
                sh = np.float64(shift[c])
                d0 = np.float64(x0[c]) - sh
                d1 = np.float64(x1[c]) - sh
                d2 = np.float64(x2[c]) - sh
                d3 = np.float64(x3[c]) - sh
                p1[c] += (d0 + d1) + (d2 + d3)
                p2[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
            a += 4
        while a < end:
            row = x[a]
            for c in range(C):
                d = np.float64(row[c]) - np.float64(shift[c])
                p1[c] += d
                p2[c] += d * d
            a += 1
        for c in range(C):
            mean_d = p1[c] / n
            p2[c] = max(p2[c] - p1[c] * mean_d, 0.0)
            p1[c] = np.float64(shift[c]) + mean_d


@jit()
def _sum_rows(x, a0, end, acc):
    C = x.shape[1]
    a = a0
    while a + 4 <= end:
        x0, x1, x2, x3 = x[a], x[a + 1], x[a + 2], x[a + 3]
        for c in range(C):
            acc[c] += (np.float64(x0[c]) + np.float64(x1[c])) + (np.float64(x2[c]) + np.float64(x3[c]))
        a += 4
    while a < end:
        row = x[a]
        for c in range(C):
            acc[c] += np.float64(row[c])
        a += 1


@jit()
def _sq_dev_rows(x, a0, end, mu, acc):
    C = x.shape[1]
    a = a0
    while a + 4 <= end:
        x0, x1, x2, x3 = x[a], x[a + 1], x[a + 2], x[a + 3]
        for c in range(C):
            m = mu[c]
            d0 = np.float64(x0[c]) - m
            d1 = np.float64(x1[c]) - m
            d2 = np.float64(x2[c]) - m
            d3 = np.float64(x3[c]) - m
            acc[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        a += 4
    while a < end:
        row = x[a]
        for c in range(C):
            d = np.float64(row[c]) - mu[c]
            acc[c] += d * d
        a += 1


@jit(fastmath=_REDUCE)
def _stats3(x, starts, b0, b1, means, m2s):
    """As ``_stats2`` for x (A, C, B): each channel's block is its rows' contiguous runs of B."""
    C, B = x.shape[1], x.shape[2]
    for b in range(b0, b1):
        p1, p2 = means[b], m2s[b]
        a0, end = starts[b], starts[b + 1]
        n = np.float64((end - a0) * B)
        for c in range(C):
            t1 = 0.0
            for a in range(a0, end):
                run = x[a, c]
                for j in range(B):
                    t1 += np.float64(run[j])
            mu = t1 / n
            t2 = 0.0
            for a in range(a0, end):
                run = x[a, c]
                for j in range(B):
                    d = np.float64(run[j]) - mu
                    t2 += d * d
            p1[c] = mu
            p2[c] = t2


@jit()
def _affine2(x, shift, scale, offset, out, r0, r1):
    C = x.shape[1]
    for a in range(r0, r1):
        xr, orow = x[a], out[a]
        for c in range(C):
            orow[c] = (xr[c] - shift[c]) * scale[c] + offset[c]


@jit()
def _affine3(x, shift, scale, offset, out, r0, r1):
    C, B = x.shape[1], x.shape[2]
    for a in range(r0, r1):
        for c in range(C):
            xr, orow = x[a, c], out[a, c]
            m, s, o = shift[c], scale[c], offset[c]
            for j in range(B):
                orow[j] = (xr[j] - m) * s + o


@jit()
def _gsums2(g, x, mean, starts, b0, b1, sg, sgt, st):
    """Block sums of g, g (x - mean) and (x - mean), float64; x - mean rounded in x's dtype as the reference.

    Two rows at a time, as ``_stats2`` takes four.
    """
    C = x.shape[1]
    for b in range(b0, b1):
        q0, q1, q2 = sg[b], sgt[b], st[b]
        for c in range(C):
            q0[c] = 0.0
            q1[c] = 0.0
            q2[c] = 0.0
        a, end = starts[b], starts[b + 1]
        while a + 2 <= end:
            g0, g1, x0, x1 = g[a], g[a + 1], x[a], x[a + 1]
            for c in range(C):
                m = mean[c]
                t0 = np.float64(x0[c] - m)
                t1 = np.float64(x1[c] - m)
                u0 = np.float64(g0[c])
                u1 = np.float64(g1[c])
                q0[c] += u0 + u1
                q1[c] += u0 * t0 + u1 * t1
                q2[c] += t0 + t1
            a += 2
        while a < end:
            gr, xr = g[a], x[a]
            for c in range(C):
                t = np.float64(xr[c] - mean[c])
                gv = np.float64(gr[c])
                q0[c] += gv
                q1[c] += gv * t
                q2[c] += t
            a += 1


@jit(fastmath=_REDUCE)
def _gsums3(g, x, mean, starts, b0, b1, sg, sgt, st):
    C, B = x.shape[1], x.shape[2]
    for b in range(b0, b1):
        q0, q1, q2 = sg[b], sgt[b], st[b]
        for c in range(C):
            q0[c] = 0.0
            q1[c] = 0.0
            q2[c] = 0.0
        for a in range(starts[b], starts[b + 1]):
            for c in range(C):
                gr, xr, m = g[a, c], x[a, c], mean[c]
                t0 = 0.0
                t1 = 0.0
                t2 = 0.0
                for j in range(B):
                    t = xr[j] - m
                    gv = np.float64(gr[j])
                    t0 += gv
                    t1 += gv * np.float64(t)
                    t2 += np.float64(t)
                q0[c] += t0
                q1[c] += t1
                q2[c] += t2


@jit()
def _dx2(g, x, mean, k, a, c, dx, r0, r1):
    C = x.shape[1]
    for i in range(r0, r1):
        gr, xr, dr = g[i], x[i], dx[i]
        for j in range(C):
            dr[j] = g_k_plus(gr[j], k[j], xr[j], mean[j], a[j], c[j])


@jit()
def g_k_plus(g, k, x, m, a, c):
    """``g k + (x - m) a + c`` in the reference's order: t = (x - m) * a; d = g * k; d += t; d += c."""
    t = (x - m) * a
    d = g * k
    d = d + t
    return d + c


@jit()
def _dx3(g, x, mean, k, a, c, dx, r0, r1):
    C, B = x.shape[1], x.shape[2]
    for i in range(r0, r1):
        for ch in range(C):
            gr, xr, dr = g[i, ch], x[i, ch], dx[i, ch]
            kc, mc, ac, cc = k[ch], mean[ch], a[ch], c[ch]
            for j in range(B):
                dr[j] = g_k_plus(gr[j], kc, xr[j], mc, ac, cc)


@jit()
def _merge(parts, out):
    """out[i, c] = sum over blocks b, in block order, of parts[i, b, c]."""
    for i in range(parts.shape[0]):
        for c in range(parts.shape[2]):
            out[i, c] = 0.0
        for b in range(parts.shape[1]):
            row, acc = parts[i, b], out[i]
            for c in range(parts.shape[2]):
                acc[c] += row[c]


@jit()
def _merge_moments(means, m2s, starts, per_row, mom):
    """Blocks' (mean, M2) merged in block order (Chan et al.): mom[0] mean, mom[1] M2, float64.

    M2 = sum_b M2_b + n_b (mean_b - mean)^2: exact in exact arithmetic, and
    every term is a sum of squares of deviations, so nothing cancels.
    """
    nb, C = means.shape
    m = np.float64((starts[nb] - starts[0]) * per_row)
    for c in range(C):
        mom[0, c] = 0.0
        mom[1, c] = 0.0
    for b in range(nb):
        w = np.float64((starts[b + 1] - starts[b]) * per_row) / m
        for c in range(C):
            mom[0, c] += w * means[b, c]
    for b in range(nb):
        n_b = np.float64((starts[b + 1] - starts[b]) * per_row)
        for c in range(C):
            d = means[b, c] - mom[0, c]
            mom[1, c] += m2s[b, c] + n_b * d * d


# ----------------------------------------------------------------------------- blocking

_starts_cache: dict = {}


def _starts(x: np.ndarray) -> np.ndarray:
    """Row offsets of the blocks (one more than blocks): fixed by the shape alone."""
    key = (x.shape, x.itemsize)
    starts = _starts_cache.get(key)
    if starts is None:
        rows = len(x)
        row_bytes = max(1, x[0].nbytes) if rows else 1
        step = max(1, BLOCK_BYTES // row_bytes)
        starts = np.append(np.arange(0, rows, step, dtype=np.int64), np.int64(rows))
        starts.setflags(write=False)
        if len(_starts_cache) > 256:   # a bounded memo: shapes of a run are few
            _starts_cache.clear()
        _starts_cache[key] = starts
    return starts


def _threads_for(x: np.ndarray, nblocks: int) -> int:
    n = kernel_threads()   # read (and checked) on every call, as the reference's kernels do
    return 1 if nblocks < 2 or x.nbytes < SERIAL_BYTES else min(n, nblocks)


def _reduce(kernel, arrays, x, *tail, nparts):
    """Run a block-sum kernel over all blocks, on runs of blocks per thread; partials added in block order."""
    starts = _starts(x)
    nb = len(starts) - 1
    parts = np.empty((nparts, nb, x.shape[1]))
    _map_runs(lambda b0, b1: kernel(*arrays, *tail, starts, b0, b1, *parts), nb, _threads_for(x, nb))
    sums = np.empty((nparts, x.shape[1]))
    _merge(parts, sums)
    return list(sums)


def _elementwise(kernel, x, args, out):
    starts = _starts(x)
    nb = len(starts) - 1
    _map_runs(lambda b0, b1: kernel(*args, out, starts[b0], starts[b1]), nb, _threads_for(x, nb))
    return out


def _vec(v, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(v).reshape(-1), dtype=dtype)


# ----------------------------------------------------------------------------- the four functions

def _block_moments(x: np.ndarray) -> np.ndarray:
    """(2, C) float64: the mean and M2 of each channel, from the blocks' two-pass moments."""
    starts = _starts(x)
    nb = len(starts) - 1
    parts = np.empty((2, nb, x.shape[1]))
    kernel = _stats2 if x.ndim == 2 else _stats3
    _map_runs(lambda b0, b1: kernel(x, starts, b0, b1, parts[0], parts[1]), nb, _threads_for(x, nb))
    mom = np.empty((2, x.shape[1]))
    _merge_moments(parts[0], parts[1], starts, x.shape[2] if x.ndim == 3 else 1, mom)
    return mom


def moments(x: np.ndarray):
    """Per-channel mean and biased variance of x (A, C) or (A, C, B), in x's dtype."""
    m = x.shape[0] * (x.shape[2] if x.ndim == 3 else 1)
    # NaN/inf input makes these non-finite; the caller checks and raises NonFiniteError.
    with np.errstate(over="ignore", invalid="ignore"):
        mom = _block_moments(x)
        return mom[0].astype(x.dtype), (mom[1] / m).astype(x.dtype)


def affine_pass(x: np.ndarray, shift, scale, offset) -> np.ndarray:
    """out = (x - shift) * scale + offset per channel, in x's dtype."""
    args = (x,) + tuple(_vec(v, x.dtype) for v in (shift, scale, offset))
    return _elementwise(_affine2 if x.ndim == 2 else _affine3, x, args, np.empty_like(x))


def grad_sums(dout: np.ndarray, x: np.ndarray, mean):
    """Per-channel sum(dout), sum(dout (x - mean)), sum(x - mean), in x's dtype."""
    mean = _vec(mean, x.dtype)
    sums = _reduce(_gsums2 if x.ndim == 2 else _gsums3, (dout, x), x, mean, nparts=3)
    return tuple(s.astype(x.dtype) for s in sums)


def backward_pass(dout: np.ndarray, x: np.ndarray, mean, k, a, c) -> np.ndarray:
    """dx = k dout + a (x - mean) + c per channel, in x's dtype."""
    vecs = tuple(_vec(v, x.dtype) for v in (mean, k, a, c))
    return _elementwise(_dx2 if x.ndim == 2 else _dx3, x, (dout, x) + vecs, np.empty_like(x))
