"""Max pooling: a loop reference and a vectorised version.

    out[n, c, i, j] = max_{0 <= p < PH, 0 <= q < PW} x[n, c, i*s + p, j*s + q]

with H' = 1 + (H - PH) // s and W' = 1 + (W - PW) // s (rows and columns
that no full window reaches are dropped, as in PyTorch's default floor mode).

The gradient of a max goes to the element that won. When a window holds
several equal maxima, all of it goes to the first one in row-major order
(np.argmax's choice, and PyTorch's), never split or duplicated, so the naive
and fast versions agree exactly and match ``torch.nn.functional.max_pool2d``.
A NaN in a window wins it (the first NaN, as np.argmax picks), so NaN
propagates as in PyTorch; with several NaNs in one window PyTorch routes the
gradient to the last of them instead.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from normlab.nn._checks import as_float_array, require_ndim
from normlab.nn.conv import _int_params

__all__ = [
    "PoolCache",
    "max_pool_forward_naive",
    "max_pool_backward_naive",
    "max_pool_forward_fast",
    "max_pool_backward_fast",
]


class PoolCache(NamedTuple):
    """What the max-pool backward passes need.

    ``argmax`` (N, C, H', W') holds, per window, the row-major position
    p * PW + q of its winner; the fast forward fills it, the naive forward
    leaves it None (the backwards then find the winners again from ``x``).
    """

    x: np.ndarray
    pool_height: int
    pool_width: int
    stride: int
    argmax: Optional[np.ndarray] = None


def _pool_setup(x, pool_param):
    """Validate the forward arguments; return (x, PH, PW, stride, H_out, W_out)."""
    x = as_float_array(x, "x")
    require_ndim(x, 4, "input x", "(N, C, H, W)")
    ph, pw, stride = _int_params(pool_param, ("pool_height", "pool_width", "stride"), "pool_param",
                                 "{'pool_height': 2, 'pool_width': 2, 'stride': 2}")
    for name, v in (("pool_height", ph), ("pool_width", pw), ("stride", stride)):
        if v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {name}={v}")
    H, W = x.shape[2:]
    if ph > H or pw > W:
        raise ValueError(f"pool window {ph}x{pw} is larger than the input {H}x{W} "
                         f"(x shape {x.shape}); use a smaller pool_height/pool_width")
    return x, ph, pw, stride, 1 + (H - ph) // stride, 1 + (W - pw) // stride


def _check_dout(dout, cache: PoolCache) -> np.ndarray:
    if not isinstance(cache, PoolCache):
        raise TypeError(f"expected the PoolCache returned by a max-pool forward, got {type(cache).__name__}")
    dout = as_float_array(dout, "dout")
    N, C, H, W = cache.x.shape
    expected = (N, C, 1 + (H - cache.pool_height) // cache.stride,
                1 + (W - cache.pool_width) // cache.stride)
    if dout.shape != expected:
        raise ValueError(f"dout must have the forward output's shape {expected}, got {dout.shape}")
    return dout.astype(cache.x.dtype, copy=False)


def max_pool_forward_naive(x, pool_param):
    """Max-pooling forward pass, as explicit loops (the readable reference).

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - pool_param: dict with keys
      - 'pool_height': positive int, height of each pooling window
      - 'pool_width': positive int, width of each pooling window
      - 'stride': positive int, distance between adjacent windows

    Returns a tuple of:
    - out: Output data, of shape (N, C, H', W'), dtype of x, where
      H' = 1 + (H - pool_height) // stride and W' = 1 + (W - pool_width) // stride
    - cache: PoolCache(x, pool_height, pool_width, stride, argmax=None)

    Raises ValueError/TypeError on a non 4-D x, missing or non-positive
    pool_param entries, or a window larger than the input.
    """
    x, ph, pw, stride, H_out, W_out = _pool_setup(x, pool_param)
    N, C = x.shape[:2]
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    # argmax rather than max: a NaN must win, as it does in backward.
                    out[n, c, i, j] = window.flat[np.argmax(window)]
    return out, PoolCache(x, ph, pw, stride)


def max_pool_backward_naive(dout, cache):
    """Max-pooling backward pass, as explicit loops.

    Each window passes its upstream gradient to its first maximum (row-major);
    overlapping windows that share a winner add up.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H', W')
    - cache: PoolCache from max_pool_forward_naive or max_pool_forward_fast

    Returns:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    """
    dout = _check_dout(dout, cache)
    x, ph, pw, stride = cache.x, cache.pool_height, cache.pool_width, cache.stride
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    p, q = divmod(int(np.argmax(x[n, c, hs:hs + ph, ws:ws + pw])), pw)
                    dx[n, c, hs + p, ws + q] += dout[n, c, i, j]
    return dx


def _offset_views(x: np.ndarray, ph: int, pw: int, stride: int, H_out: int, W_out: int):
    """Yield (k, view) for each position k = p * PW + q inside a window (row-major).

    view[n, c, i, j] = x[n, c, i*s + p, j*s + q]: element (p, q) of every
    window at once, as a strided (N, C, H', W') view (no copy). When windows
    tile x this is exactly the view the reshape (N, C, H', PH, W', PW) gives.
    """
    h_span = stride * (H_out - 1) + 1
    w_span = stride * (W_out - 1) + 1
    for k in range(ph * pw):
        p, q = divmod(k, pw)
        yield k, x[:, :, p:p + h_span:stride, q:q + w_span:stride]


def _argmax_forward(x: np.ndarray, ph: int, pw: int, stride: int, H_out: int, W_out: int):
    """Max of each window and the row-major position of its first maximum.

    Loops over the PH*PW positions inside a window, vectorised over all
    windows. Materialising the windows as (..., PH*PW) and calling argmax
    is the obvious alternative but measured ~5x slower: NumPy copies and
    reduces such short inner axes badly.
    """
    out = None
    for _, v in _offset_views(x, ph, pw, stride, H_out, W_out):
        if out is None:
            out = v.copy()
        else:
            np.maximum(out, v, out=out)  # propagates NaN, as PyTorch does
    # NaN compares unequal to itself, so a NaN window's winner is its first NaN.
    has_nan = bool(np.isnan(out).any())
    # The winner's index fits a byte for every usual window; a small dtype
    # keeps the cache and the backward's index arithmetic cheap.
    arg = np.zeros(out.shape, dtype=np.min_scalar_type(ph * pw - 1))
    found = np.zeros(out.shape, dtype=bool)
    for k, v in _offset_views(x, ph, pw, stride, H_out, W_out):
        hit = v == out
        if has_nan:
            hit |= np.isnan(v)
        hit &= ~found  # only the first maximum of a window wins
        found |= hit
        # Arithmetic rather than np.where: with a random mask, where and
        # masked copies are branchy and several times slower.
        arg += hit * arg.dtype.type(k)
    return out, arg


def max_pool_forward_fast(x, pool_param):
    """Max-pooling forward pass, vectorised.

    Same equation, arguments, output and errors as :func:`max_pool_forward_naive`.
    Each of the PH*PW positions (p, q) inside a window is one strided
    (N, C, H', W') view of x; a running np.maximum over those views gives
    out, and a second pass records each window's first maximum for backward.

    Returns a tuple of:
    - out: Output data, of shape (N, C, H', W'), dtype of x
    - cache: PoolCache(x, pool_height, pool_width, stride, argmax)
    """
    x, ph, pw, stride, H_out, W_out = _pool_setup(x, pool_param)
    out, argmax = _argmax_forward(x, ph, pw, stride, H_out, W_out)
    return out, PoolCache(x, ph, pw, stride, argmax)


def max_pool_backward_fast(dout, cache):
    """Max-pooling backward pass, vectorised.

    dx[n, c, i*s + p, j*s + q] += dout[n, c, i, j] where (p, q) is the
    window's first maximum. The winners' flat positions in x are computed
    at once; when windows do not overlap (stride >= pool size, in particular
    when they tile x) each position receives at most one gradient and is
    assigned directly, otherwise np.bincount sums the contributions of
    overlapping windows (in float64, then cast back to x's dtype).

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H', W')
    - cache: PoolCache from max_pool_forward_fast (or max_pool_forward_naive)

    Returns:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    """
    dout = _check_dout(dout, cache)
    x, ph, pw, stride = cache.x, cache.pool_height, cache.pool_width, cache.stride
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape
    argmax = cache.argmax
    if argmax is None:
        argmax = _argmax_forward(x, ph, pw, stride, H_out, W_out)[1]
    # Flat index in x of window (n, c, i, j)'s top-left corner, plus the
    # winner's offset p * W + q inside the window.
    corner = (np.arange(N * C).reshape(-1, 1, 1) * (H * W)
              + (np.arange(H_out) * (stride * W)).reshape(-1, 1)
              + np.arange(W_out) * stride)  # (N*C, H', W')
    offset = np.array([(k // pw) * W + k % pw for k in range(ph * pw)], dtype=np.intp)
    idx = (np.take(offset, argmax.reshape(N * C, H_out, W_out)) + corner).ravel()
    if stride >= ph and stride >= pw:
        dx = np.zeros(x.size, dtype=x.dtype)
        dx[idx] = dout.ravel()
    else:
        dx = np.bincount(idx, weights=dout.ravel(), minlength=x.size).astype(x.dtype, copy=False)
    return dx.reshape(x.shape)
