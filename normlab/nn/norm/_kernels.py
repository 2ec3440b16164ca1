"""Cache-blocked, multi-threaded kernels: the core's fast path for batch norm's layout.

``core`` dispatches its folded form here when the statistics are per channel
of x (N, C, ...) (``core.fast_layout``); ``core`` also holds the plain NumPy
reference of every function below, and tests/nn/norm/test_core.py checks that
they agree (the elementwise passes bitwise, the reductions to rounding).

Batch norm is memory-bound: each elementwise NumPy expression streams the
whole array through memory once. These kernels walk the input in row blocks
small enough to stay in L2 (``BLOCK_BYTES``), so every intermediate of a block
is read from cache, and hand the blocks to a small thread pool (NumPy releases
the GIL inside ufuncs).

Layout: ``x`` is viewed as (A, C) or (A, C, B) and statistics are per channel
C, reduced over A and B (batch norm: (N, D); spatial: (N, C, H*W)). Blocks
split A. Block boundaries depend only on the shape, never on the thread count,
and per-block partial results are combined in block order, so results are
bit-identical whatever the number of threads or their timing.

Block moments are merged with Chan et al.'s pairwise formula,
``M2 = sum_k M2_k + n_k (mean_k - mean)^2``, each block's moments taken about
a shift inside the block: stable like two full passes, at the cost of one.

Every elementwise pass centres first, ``(x - mean) * scale``, never
``x * scale - mean * scale``: the folded form saves a pass but leaves the
rounding of ``x * scale`` (x far from its mean) in the result.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..._threads import kernel_threads

__all__ = ["moments", "affine_pass", "grad_sums", "backward_pass"]

BLOCK_BYTES = 1 << 20        # 1 MiB of input per block: measured best here with 2 threads
SERIAL_BYTES = 1 << 21       # below this, thread hand-off costs more than it saves

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _map(fn, blocks, nbytes):
    n = kernel_threads()
    if n == 1 or len(blocks) == 1 or nbytes < SERIAL_BYTES:
        return [fn(b) for b in blocks]
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="normlab")
        pool = _pool
    # Floating-point error handling is per thread: the workers follow the
    # caller's (e.g. the Solver's 'raise', which turns overflow into divergence).
    err = np.geterr()

    def run(block):
        with np.errstate(**err):
            return fn(block)

    return list(pool.map(run, blocks))   # map keeps block order: deterministic merging


def _map_runs(fn, nblocks: int, nthreads: int) -> None:
    """fn(b0, b1) on ``nthreads`` contiguous runs of blocks, on the pool (compiled kernels release the GIL).

    Each block's result has its own place, so how the runs are cut changes no result.
    One thread: fn(0, nblocks) on the caller's, no pool.
    """
    if nthreads == 1:
        fn(0, nblocks)
        return
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < nthreads:
            _pool = ThreadPoolExecutor(max_workers=nthreads, thread_name_prefix="normlab")
        pool = _pool
    cuts = [nblocks * i // nthreads for i in range(nthreads + 1)]
    futures = [pool.submit(fn, cuts[i], cuts[i + 1]) for i in range(1, nthreads)]
    fn(cuts[0], cuts[1])   # the caller's thread takes the first run
    for f in futures:
        f.result()


_local = threading.local()


def _scratch(like: np.ndarray) -> np.ndarray:
    """A per-thread temporary shaped like one block: reused, so no block allocates.

    Fresh temporaries of a few hundred KiB would each be an mmap/munmap with
    page faults (glibc serves them outside the heap), costing more than the math.
    """
    buf = getattr(_local, "buf", None)
    need = like.size * like.itemsize
    if buf is None or buf.nbytes < need:
        buf = _local.buf = np.empty(max(need, BLOCK_BYTES), dtype=np.uint8)
    return buf[:need].view(like.dtype).reshape(like.shape)


def _blocks(x: np.ndarray) -> list[slice]:
    row = max(1, x[0].nbytes) if len(x) else 1
    step = max(1, BLOCK_BYTES // row)
    return [slice(i, min(i + step, len(x))) for i in range(0, len(x), step)]


_ones_cache: dict = {}


def _ones(n: int, dtype) -> np.ndarray:
    key = (n, np.dtype(dtype))
    v = _ones_cache.get(key)
    if v is None:
        v = _ones_cache[key] = np.ones(n, dtype=dtype)
    return v


def _sum(a: np.ndarray) -> np.ndarray:
    """Per-channel sum of a block (n, C) or (n, C, B).

    A BLAS matrix-vector product with ones: 2-5x faster here than
    ``a.sum(axis=0)``, whose axis-0 loop adds row by row.
    """
    if a.ndim == 2:
        return _ones(a.shape[0], a.dtype) @ a
    n, c, b = a.shape
    return (a.reshape(n * c, b) @ _ones(b, a.dtype)).reshape(n, c).sum(axis=0)


def _sumprod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel sum of a * b over a block, without the product array."""
    return np.einsum("ij,ij->j", a, b) if a.ndim == 2 else np.einsum("ijk,ijk->j", a, b)


def _bc(v, x):
    """Per-channel vector (C,) shaped to broadcast against a block of x."""
    return v if x.ndim == 2 else v[:, None]


def moments(x: np.ndarray):
    """Per-channel mean and biased variance of x (A, C) or (A, C, B), in x's dtype.

    Each block is shifted by its own first entry per channel before summing,
    so float32 sums carry the data's spread, not its offset (x ~ 1e4 + N(0, 1)
    keeps a mean accurate to float32 rounding of the spread). The block's M2
    is then sum(d^2) - n * mean(d)^2 with d of the order of the spread, and
    block results are merged in float64.
    """
    per = x.shape[2] if x.ndim == 3 else 1

    def block(s):
        xb = x[s]
        n = (s.stop - s.start) * per
        shift = xb[0] if xb.ndim == 2 else xb[0, :, :1]
        # NaN/inf input makes these non-finite; the caller checks the result and
        # raises, so the warnings (errors under the Solver) would only hide that.
        with np.errstate(over="ignore", invalid="ignore"):
            d = np.subtract(xb, shift, out=_scratch(xb))
            mean_d = _sum(d).astype(np.float64) / n
            m2 = _sumprod(d, d).astype(np.float64) - n * mean_d ** 2
            return n, shift.reshape(-1) + mean_d, np.maximum(m2, 0.0)

    blocks = _blocks(x)
    if len(blocks) == 1:   # small inputs (every layer of a small net): nothing to merge
        n, mean, m2 = block(blocks[0])
        with np.errstate(over="ignore", invalid="ignore"):
            return mean.astype(x.dtype), (m2 / n).astype(x.dtype)
    parts = _map(block, blocks, x.nbytes)
    counts = np.array([p[0] for p in parts], dtype=np.float64)[:, None]
    means = np.stack([p[1] for p in parts])
    m2s = np.stack([p[2] for p in parts])
    total = counts.sum()
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (counts * means).sum(axis=0) / total
        m2 = m2s.sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)
        return mean.astype(x.dtype), (m2 / total).astype(x.dtype)


def affine_pass(x: np.ndarray, shift: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """out = (x - shift) * scale + offset, per channel, in one blocked pass.

    Centred first, in that order, as the course, cuDNN and flax do. Folding the
    shift into the offset (``x * scale + (offset - shift * scale)``, one pass
    fewer) leaves the rounding of ``x * scale`` in the output, so a change of
    the offset that the centring cancels exactly (a bias before batch norm,
    whose true gradient is 0) still moves the output by rounding: finite
    differences of such a bias then read ~1e-3 relative error instead of ~1e-8.
    """
    out = np.empty_like(x)
    mb, sc, ob = (_bc(np.asarray(v).astype(x.dtype, copy=False), x) for v in (shift, scale, offset))

    def block(s):
        o = out[s]
        np.subtract(x[s], mb, out=o)
        o *= sc
        o += ob

    _map(block, _blocks(x), x.nbytes)
    return out


def grad_sums(dout: np.ndarray, x: np.ndarray, mean: np.ndarray):
    """Per-channel sum(dout), sum(dout * (x - mean)) and sum(x - mean) in one blocked pass.

    The last is 0 in exact arithmetic; its rounding residual lets the backward
    pass make dx sum to 0 per channel as exactly as it can be evaluated.
    """
    mb = _bc(mean, x)

    def block(s):
        g = dout[s]
        t = np.subtract(x[s], mb, out=_scratch(g))
        return _sum(g), _sumprod(g, t), _sum(t)

    blocks = _blocks(x)
    if len(blocks) == 1:
        return block(blocks[0])
    parts = _map(block, blocks, x.nbytes)
    return tuple(np.sum([p[i] for p in parts], axis=0, dtype=np.float64).astype(x.dtype) for i in range(3))


def backward_pass(dout: np.ndarray, x: np.ndarray, mean: np.ndarray, k: np.ndarray, a: np.ndarray,
                  c: np.ndarray) -> np.ndarray:
    """dx = k * dout + a * (x - mean) + c, per channel, in one blocked pass.

    Centred first, as in ``affine_pass``: folded into ``a * x + c'`` the
    rounding of ``a * x`` (x far from its mean) would swamp the per-channel
    sum of dx, which is exactly 0 in train mode and is the gradient of a bias
    before the norm.
    """
    dx = np.empty_like(x)
    kb, mb, ab, cb = (_bc(np.asarray(v).astype(x.dtype, copy=False), x) for v in (k, mean, a, c))

    def block(s):
        d = dx[s]
        t = np.subtract(x[s], mb, out=_scratch(d))
        t *= ab
        np.multiply(dout[s], kb, out=d)
        d += t
        d += cb

    _map(block, _blocks(x), x.nbytes)
    return dx
