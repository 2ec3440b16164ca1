"""Affine, ReLU, sigmoid and inverted dropout layers.

ReLU forward and backward have a fast path on the Numba backend (``normlab.nn._jit_ops``):
one pass, no mask array, the same values and dtype to the last bit.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _jit_ops
from ._checks import as_float_array, require_min_ndim, require_mode

__all__ = ["AffineCache", "ReluCache", "SigmoidCache", "DropoutCache",
           "affine_forward", "affine_backward", "affine_param_backward", "relu_forward", "relu_backward",
           "sigmoid_forward", "sigmoid_backward",
           "dropout_forward", "dropout_backward", "dropout_uniforms", "inverted_dropout", "dropout_args"]


class AffineCache(NamedTuple):
    x: np.ndarray    # (N, d_1, ..., d_k) as given
    w: np.ndarray    # (D, M)


class ReluCache(NamedTuple):
    x: np.ndarray


class SigmoidCache(NamedTuple):
    out: np.ndarray          # sigma(x)
    complement: np.ndarray   # 1 - sigma(x), evaluated as sigma(-x)


class DropoutCache(NamedTuple):
    mask: np.ndarray | None   # keep-mask already divided by p; None in test mode
    mode: str


def affine_forward(x, w, b):
    """Affine (fully connected) layer: ``out = x.reshape(N, D) @ w + b``.

    Inputs:
    - x: A numpy array containing input data, of shape (N, d_1, ..., d_k)
    - w: A numpy array of weights, of shape (D, M), D = d_1 * ... * d_k
    - b: A numpy array of biases, of shape (M,)

    Returns a tuple of:
    - out: output, of shape (N, M)
    - cache: AffineCache(x, w)
    """
    x = as_float_array(x, "x")
    w = as_float_array(w, "w")
    require_min_ndim(x, 1, "x", "(N, d_1, ..., d_k)")
    if w.ndim != 2:
        raise ValueError(f"expected 2-D weights w (D, M), got shape {w.shape}")
    n = x.shape[0]
    d = math.prod(x.shape[1:])
    if d != w.shape[0]:
        raise ValueError(f"x of shape {x.shape} flattens to D={d} features but w has shape {w.shape}; "
                         f"w must be (D, M) = ({d}, M)")
    if np.shape(b) != (w.shape[1],):
        raise ValueError(f"b must have shape ({w.shape[1]},) to match w {w.shape}, got {np.shape(b)}")
    out = x.reshape(n, d) @ w
    out += b
    return out, AffineCache(x, w)


def affine_backward(dout, cache):
    """Backward pass for an affine layer.

    Inputs: dout of shape (N, M); cache AffineCache(x, w).
    Returns (dx, dw, db) of shapes (N, d_1, ..., d_k), (D, M), (M,).
    """
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    return (dx, *affine_param_backward(dout, cache))


def affine_param_backward(dout, cache):
    """``affine_backward`` without dx: ``(dw, db)``, for a layer whose input needs no gradient
    (a net's first layer: its dx, the largest matrix product of the backward, is never used)."""
    x, w = cache
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dw, db


def relu_forward(x):
    """ReLU: ``out = max(0, x)``; returns (out, ReluCache(x)), out of x's shape."""
    x = as_float_array(x, "x")
    fast = _jit_ops.relu_forward(x)
    return np.maximum(x, 0) if fast is None else fast, ReluCache(x)


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0 (the subgradient at 0 is taken as 0)."""
    fast = _jit_ops.relu_backward(dout, cache.x)
    if fast is not None:
        return fast
    return np.where(cache.x > 0, dout, np.zeros((), dtype=dout.dtype))


def sigmoid_forward(x):
    """Logistic sigmoid, elementwise: ``sigma(x) = 1 / (1 + e^-x)``.

    Evaluated through ``z = e^-|x|`` in (0, 1] only: ``sigma(x) = 1 / (1 + z)``
    for x >= 0 and ``z / (1 + z)`` for x < 0, so no exponential overflows at
    any |x| (``e^-x`` itself overflows float32 below x = -89). out has x's
    shape and float dtype.

    Returns ``(out, SigmoidCache(out, 1 - out))``, the complement formed as
    ``sigma(-x)``: near sigma = 1 the subtraction would cancel.
    """
    x = as_float_array(x, "x")
    z = np.exp(-np.abs(x))
    r = 1 / (1 + z)          # sigma(|x|)
    zr = z * r               # sigma(-|x|) = 1 - sigma(|x|), without the cancellation
    positive = x >= 0
    out = np.where(positive, r, zr)
    return out, SigmoidCache(out, np.where(positive, zr, r))


def sigmoid_backward(dout, cache):
    """``dx = dout * sigma (1 - sigma)``: dsigma/dx = sigma(x) sigma(-x), both from the cache."""
    return dout * (cache.out * cache.complement)


_DROPOUT_KEYS = {"mode", "p", "seed", "rng"}


def dropout_uniforms(shape, dropout_param) -> np.ndarray:
    """The uniform draws in [0, 1) that decide dropout's mask, from the source
    ``dropout_param`` names (see ``dropout_forward``)."""
    rng = dropout_param.get("rng")
    if rng is not None:
        return rng.random(shape)
    seed = dropout_param.get("seed")
    if seed is not None:
        # The course's template seeds the global legacy generator and draws
        # np.random.rand: the same Mersenne Twister stream, so the same mask,
        # and the course's side effect on the global state (the next model's
        # weights in a notebook cell depend on it).
        np.random.seed(seed)
    return np.random.random_sample(shape)


def dropout_args(x, dropout_param, allowed_keys):
    """Validate dropout's arguments: ``(x as a float array, mode, dropout_param.get('p'))``."""
    if not isinstance(dropout_param, dict):
        raise TypeError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    unknown = set(dropout_param) - set(allowed_keys)
    if unknown:
        raise ValueError(f"unknown dropout_param keys {sorted(unknown)}; allowed: {sorted(allowed_keys)}")
    return as_float_array(x, "x"), require_mode(dropout_param.get("mode")), dropout_param.get("p")


def dropout_forward(x, dropout_param):
    """Inverted dropout: in train mode keep each unit with probability p and scale by 1/p.

    Inputs:
    - x: Input data, of any shape
    - dropout_param: A dictionary with the following keys:
      - p: Dropout parameter. We keep each neuron output with probability p.
      - mode: 'test' or 'train'. In test mode dropout is the identity.
      - seed: Seed for the random number generator. As in the course, the
        global NumPy generator is seeded with it before the mask is drawn, so
        every call with the same seed draws the same mask (gradient checks).
      - rng: (normlab) a np.random.Generator to draw from instead; takes
        precedence over seed and leaves the global generator untouched.
      Without seed or rng the global np.random state is used, as in the course.

    The mask keeps a unit where ``u < p``, ``u`` uniform in [0, 1).

    Returns a tuple of:
    - out: Array of the same shape and dtype as x.
    - cache: DropoutCache(mask, mode).
    """
    x, mode, p = dropout_args(x, dropout_param, _DROPOUT_KEYS)
    if p is None or not 0.0 < float(p) <= 1.0:
        raise ValueError(f"dropout_param['p'] is the keep probability and must lie in (0, 1], got {p!r}")
    if mode == "test":
        return x, DropoutCache(None, mode)
    return inverted_dropout(x, dropout_uniforms(x.shape, dropout_param) < p, p)


def inverted_dropout(x, keep, keep_prob):
    """Train-mode inverted dropout with a given mask: ``out = x * keep / keep_prob``.

    keep: bool array of x's shape, True where a unit is kept. The course faces
    whose ``p`` is a drop probability build ``keep`` their course's way and
    share this arithmetic. Returns ``(out, DropoutCache)``.
    """
    mask = keep.astype(x.dtype)
    mask /= np.asarray(keep_prob, dtype=x.dtype)
    return x * mask, DropoutCache(mask, "train")


def dropout_backward(dout, cache):
    """dx = dout * mask in train mode (mask holds 0 or 1/p), dout in test mode."""
    if cache.mode == "test":
        return dout
    return dout * cache.mask
