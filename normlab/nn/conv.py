"""Convolution layer: a loop reference and a vectorised im2col version.

Both compute the cross-correlation used by every deep-learning framework,

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xp[n, c, i*s + p, j*s + q]

where ``xp`` is ``x`` zero-padded by ``pad`` on both sides of H and W and
``s`` is the stride. The naive functions are loops written to be read; the
fast ones give the same numbers with one BLAS matmul per direction. Both
return and accept the same :class:`ConvCache`, so a cache from either
forward can be fed to either backward.
"""
from __future__ import annotations

import operator
from typing import NamedTuple, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from normlab.nn._checks import as_float_array, require_ndim

__all__ = [
    "ConvCache",
    "conv_forward_naive",
    "conv_backward_naive",
    "conv_forward_fast",
    "conv_backward_fast",
]


class ConvCache(NamedTuple):
    """What the conv backward passes need.

    ``x`` is the unpadded input (N, C, H, W). ``cols`` is the im2col matrix
    (N, C*HH*WW, H'*W') built by the fast forward, or None after the naive
    forward (the fast backward then rebuilds it from ``x``).
    """

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    stride: int
    pad: int
    cols: Optional[np.ndarray] = None


def _int_params(params, keys, dict_name: str, example: str) -> list[int]:
    """Read integer hyperparameters ``keys`` from a course-style dict (also used by pool.py)."""
    if not isinstance(params, dict):
        raise TypeError(f"{dict_name} must be a dict with keys {', '.join(map(repr, keys))}, "
                        f"got {type(params).__name__}; pass e.g. {example}")
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{dict_name} is missing {', '.join(map(repr, missing))}; got keys "
                         f"{sorted(map(str, params))}; pass e.g. {example}")
    values = []
    for k in keys:
        v = params[k]
        # bool is an int subclass, but stride=True is surely a mistake.
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{dict_name}[{k!r}] must be an integer, got {v!r}")
        # A float with an integer value is accepted: the course's own nets compute
        # pad = (filter_size - 1) / 2, a float under Python 3.
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        try:
            values.append(operator.index(v))
        except TypeError:
            raise TypeError(f"{dict_name}[{k!r}] must be an integer, got {v!r} "
                            f"of type {type(v).__name__}") from None
    return values


def _conv_setup(x, w, b, conv_param):
    """Validate the forward arguments; return (x, w, b, stride, pad, H_out, W_out)."""
    x = as_float_array(x, "x")
    w = as_float_array(w, "w")
    b = as_float_array(b, "b")
    require_ndim(x, 4, "input x", "(N, C, H, W)")
    require_ndim(w, 4, "filters w", "(F, C, HH, WW)")
    N, C, H, W = x.shape
    F, Cw, HH, WW = w.shape
    if Cw != C:
        raise ValueError(f"channel mismatch: x has C={C} channels (shape {x.shape}) but w has "
                         f"C={Cw} (shape {w.shape}); w must be (F, {C}, HH, WW)")
    if b.shape != (F,):
        raise ValueError(f"expected bias b of shape ({F},) (one per filter), got shape {b.shape}")
    stride, pad = _int_params(conv_param, ("stride", "pad"), "conv_param", "{'stride': 1, 'pad': 1}")
    if stride <= 0:
        raise ValueError(f"stride must be a positive integer, got stride={stride}")
    if pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got pad={pad}")
    Hp, Wp = H + 2 * pad, W + 2 * pad
    if HH > Hp or WW > Wp:
        raise ValueError(f"filter {HH}x{WW} is larger than the padded input {Hp}x{Wp} "
                         f"(x shape {x.shape}, pad={pad}); use a smaller filter or more padding")
    for dim, size, k in (("H", Hp, HH), ("W", Wp, WW)):
        if (size - k) % stride:
            raise ValueError(f"{dim} + 2*pad - filter = {size} - {k} = {size - k} is not divisible "
                             f"by stride={stride}, so the filter does not tile the input; "
                             f"change pad, stride or the input size")
    H_out = 1 + (Hp - HH) // stride
    W_out = 1 + (Wp - WW) // stride
    return x, w, b, stride, pad, H_out, W_out


def _check_dout(dout, cache: ConvCache) -> np.ndarray:
    if not isinstance(cache, ConvCache):
        raise TypeError(f"expected the ConvCache returned by a conv forward, got {type(cache).__name__}")
    dout = as_float_array(dout, "dout")
    N, _, H, W = cache.x.shape
    F, _, HH, WW = cache.w.shape
    expected = (N, F, 1 + (H + 2 * cache.pad - HH) // cache.stride,
                1 + (W + 2 * cache.pad - WW) // cache.stride)
    if dout.shape != expected:
        raise ValueError(f"dout must have the forward output's shape {expected}, got {dout.shape}")
    return dout.astype(cache.x.dtype, copy=False)


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _grads_in_input_dtypes(cache: ConvCache, dx, dw, db):
    # Each gradient takes the dtype of the array it belongs to (w or b may be
    # float64 while x is float32; the arithmetic itself ran in x's dtype).
    return dx, dw.astype(cache.w.dtype, copy=False), db.astype(cache.b.dtype, copy=False)


def conv_forward_naive(x, w, b, conv_param):
    """Convolution forward pass, as explicit loops (the readable reference).

    out[n, f, i, j] = b[f] + sum_{c,p,q} w[f, c, p, q] * xp[n, c, i*s + p, j*s + q],
    with xp = x zero-padded by `pad` on both sides of H and W.

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - w: Filter weights of shape (F, C, HH, WW)
    - b: Biases, of shape (F,)
    - conv_param: dict with keys
      - 'stride': positive int, step between receptive fields along H and W.
      - 'pad': non-negative int, zeros added on each side of H and W.

    Returns a tuple of:
    - out: Output data of shape (N, F, H', W'), dtype of x, where
      H' = 1 + (H + 2 * pad - HH) // stride and W' = 1 + (W + 2 * pad - WW) // stride
    - cache: ConvCache(x, w, b, stride, pad, cols=None)

    Raises ValueError/TypeError on wrong ranks, channel or bias mismatch,
    missing or invalid stride/pad, a filter larger than the padded input, or
    (as the course requires) (H + 2*pad - HH) not divisible by the stride.
    """
    x, w, b, stride, pad, H_out, W_out = _conv_setup(x, w, b, conv_param)
    w_, b_ = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    N = x.shape[0]
    F, _, HH, WW = w_.shape
    xp = _pad(x, pad)
    out = np.empty((N, F, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w_[f]) + b_[f]
    return out, ConvCache(x, w, b, stride, pad)


def conv_backward_naive(dout, cache):
    """Convolution backward pass, as explicit loops.

    Every output element out[n, f, i, j] was a dot product of w[f] with one
    window of xp plus b[f], so its upstream gradient flows to
    db[f] (times 1), dw[f] (times the window) and the window of dxp (times w[f]).

    Inputs:
    - dout: Upstream derivatives, of shape (N, F, H', W')
    - cache: ConvCache from conv_forward_naive or conv_forward_fast

    Returns a tuple of:
    - dx: Gradient with respect to x, shape (N, C, H, W)
    - dw: Gradient with respect to w, shape (F, C, HH, WW)
    - db: Gradient with respect to b, shape (F,)
    """
    dout = _check_dout(dout, cache)
    x, stride, pad = cache.x, cache.stride, cache.pad
    # The arithmetic runs in x's dtype, as in the forward pass.
    w = cache.w.astype(x.dtype, copy=False)
    N, F, H_out, W_out = dout.shape
    _, _, HH, WW = w.shape
    xp = _pad(x, pad)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros(F, dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    g = dout[n, f, i, j]
                    db[f] += g
                    dw[f] += g * xp[n, :, hs:hs + HH, ws:ws + WW]
                    dxp[n, :, hs:hs + HH, ws:ws + WW] += g * w[f]
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]].copy()
    return _grads_in_input_dtypes(cache, dx, dw, db)


def _im2col(x: np.ndarray, HH: int, WW: int, stride: int, pad: int) -> np.ndarray:
    """Receptive fields as columns: (N, C*HH*WW, H'*W'), C-contiguous."""
    xp = _pad(x, pad)
    N, C = x.shape[:2]
    # (N, C, H'', W'', HH, WW) view; no copy until the reshape below.
    windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
    H_out, W_out = windows.shape[2:4]
    # (N, C, HH, WW, H', W'): the innermost axis walks along a row of x, so the
    # single copy below reads memory almost sequentially.
    cols = np.ascontiguousarray(windows.transpose(0, 1, 4, 5, 2, 3))
    return cols.reshape(N, C * HH * WW, H_out * W_out)


def conv_forward_fast(x, w, b, conv_param):
    """Convolution forward pass via im2col and one batched BLAS matmul.

    Same equation, arguments, output and errors as :func:`conv_forward_naive`.
    The receptive fields are copied once into cols of shape (N, C*HH*WW, H'*W');
    then out[n] = w.reshape(F, C*HH*WW) @ cols[n] + b lands directly in the
    (N, F, H', W') layout, so no transpose of the output is needed.

    Returns a tuple of:
    - out: Output data of shape (N, F, H', W'), dtype of x
    - cache: ConvCache(x, w, b, stride, pad, cols); cols costs HH*WW/stride**2
      times the memory of x.
    """
    x, w, b, stride, pad, H_out, W_out = _conv_setup(x, w, b, conv_param)
    w_, b_ = w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False)
    N = x.shape[0]
    F, _, HH, WW = w_.shape
    cols = _im2col(x, HH, WW, stride, pad)
    out = np.matmul(w_.reshape(F, -1), cols)  # (N, F, H'*W')
    out += b_[:, None]
    return out.reshape(N, F, H_out, W_out), ConvCache(x, w, b, stride, pad, cols)


def conv_backward_fast(dout, cache):
    """Convolution backward pass via matmuls and a strided col2im.

    With W2 = w.reshape(F, K), K = C*HH*WW, and G[n] = dout[n].reshape(F, H'*W'):
        db = sum_{n,i,j} dout[n, :, i, j]
        dw = sum_n G[n] @ cols[n].T                    (F, K)
        dcols[n] = W2.T @ G[n]                         (K, H'*W')
    and dx scatters dcols back onto the input: for each of the HH*WW kernel
    offsets (p, q), the strided slice xp[:, :, p::s, q::s] receives its
    (N, C, H', W') block of dcols. Overlapping windows add up; looping over
    offsets (vectorised over everything else) does that without np.add.at.

    Inputs:
    - dout: Upstream derivatives, of shape (N, F, H', W')
    - cache: ConvCache from conv_forward_fast (or conv_forward_naive)

    Returns a tuple of:
    - dx: Gradient with respect to x, shape (N, C, H, W)
    - dw: Gradient with respect to w, shape (F, C, HH, WW)
    - db: Gradient with respect to b, shape (F,)
    """
    dout = _check_dout(dout, cache)
    x, stride, pad = cache.x, cache.stride, cache.pad
    # The arithmetic runs in x's dtype, as in the forward pass.
    w = cache.w.astype(x.dtype, copy=False)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    cols = cache.cols if cache.cols is not None else _im2col(x, HH, WW, stride, pad)

    g = dout.reshape(N, F, H_out * W_out)
    db = g.sum(axis=(0, 2))
    # One (F, N*H'*W') @ (N*H'*W', K) product would need both operands
    # transposed into fresh copies; N small products summed are cheaper.
    dw = np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dcols = np.matmul(w.reshape(F, -1).T, g).reshape(N, C, HH, WW, H_out, W_out)

    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    h_span = stride * (H_out - 1) + 1
    w_span = stride * (W_out - 1) + 1
    for p in range(HH):
        for q in range(WW):
            dxp[:, :, p:p + h_span:stride, q:q + w_span:stride] += dcols[:, :, p, q]
    dx = dxp if pad == 0 else dxp[:, :, pad:pad + H, pad:pad + W].copy()
    return _grads_in_input_dtypes(cache, dx, dw, db)
