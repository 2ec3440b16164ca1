"""Sandwich layers: common chains of layers as one forward and one backward.

Each ``*_forward`` returns ``(out, cache)`` where cache is a NamedTuple of the
parts' caches; each ``*_backward(dout, cache)`` returns the gradients of the
forward's array arguments in order.
"""
from __future__ import annotations

from typing import NamedTuple, Any

import numpy as np

from .nn.basic import affine_backward, affine_forward, relu_backward, relu_forward
from .nn.norm.batchnorm import batchnorm_after_bias, batchnorm_backward_alt, spatial_batchnorm_backward
from .nn.conv import conv_backward_fast, conv_forward_fast
from .nn.norm.group import layernorm_backward, layernorm_forward
from .nn.pool import max_pool_backward_fast, max_pool_forward_fast

__all__ = [
    "affine_relu_forward", "affine_relu_backward",
    "affine_bn_relu_forward", "affine_bn_relu_backward",
    "affine_ln_relu_forward", "affine_ln_relu_backward",
    "conv_relu_forward", "conv_relu_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
    "conv_bn_relu_forward", "conv_bn_relu_backward",
    "conv_bn_relu_pool_forward", "conv_bn_relu_pool_backward",
]


class SandwichCache(NamedTuple):
    first: Any           # affine or conv cache
    norm: Any = None     # batch/layer norm cache, when present
    relu: Any = None
    pool: Any = None


def affine_relu_forward(x, w, b):
    """affine -> ReLU. x (N, d_1..d_k), w (D, M), b (M,); out (N, M)."""
    a, fc = affine_forward(x, w, b)
    out, rc = relu_forward(a)
    return out, SandwichCache(fc, relu=rc)


def affine_relu_backward(dout, cache):
    """Returns (dx, dw, db)."""
    return affine_backward(relu_backward(dout, cache.relu), cache.first)


def _no_bias(w) -> np.ndarray:
    """Zeros for the linear layer before a batch norm, which takes its bias instead
    (``batchnorm_after_bias``: the centering cancels it exactly)."""
    return np.zeros(w.shape[0 if w.ndim == 4 else 1], dtype=np.result_type(w, np.float32))


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """affine -> batch norm -> ReLU; bn_param as for batchnorm_forward."""
    a, fc = affine_forward(x, w, _no_bias(w))
    n, nc = batchnorm_after_bias(a, b, gamma, beta, bn_param)
    out, rc = relu_forward(n)
    return out, SandwichCache(fc, nc, rc)


def affine_bn_relu_backward(dout, cache):
    """Returns (dx, dw, db, dgamma, dbeta)."""
    dn, dgamma, dbeta = batchnorm_backward_alt(relu_backward(dout, cache.relu), cache.norm)
    dx, dw, db = affine_backward(dn, cache.first)
    return dx, dw, db, dgamma, dbeta


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """affine -> layer norm -> ReLU."""
    a, fc = affine_forward(x, w, b)
    n, nc = layernorm_forward(a, gamma, beta, ln_param)
    out, rc = relu_forward(n)
    return out, SandwichCache(fc, nc, rc)


def affine_ln_relu_backward(dout, cache):
    """Returns (dx, dw, db, dgamma, dbeta)."""
    dn, dgamma, dbeta = layernorm_backward(relu_backward(dout, cache.relu), cache.norm)
    dx, dw, db = affine_backward(dn, cache.first)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x, w, b, conv_param):
    """conv -> ReLU. x (N, C, H, W), w (F, C, HH, WW), b (F,)."""
    a, cc = conv_forward_fast(x, w, b, conv_param)
    out, rc = relu_forward(a)
    return out, SandwichCache(cc, relu=rc)


def conv_relu_backward(dout, cache):
    """Returns (dx, dw, db)."""
    return conv_backward_fast(relu_backward(dout, cache.relu), cache.first)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """conv -> ReLU -> max pool."""
    a, cc = conv_forward_fast(x, w, b, conv_param)
    r, rc = relu_forward(a)
    out, pc = max_pool_forward_fast(r, pool_param)
    return out, SandwichCache(cc, relu=rc, pool=pc)


def conv_relu_pool_backward(dout, cache):
    """Returns (dx, dw, db)."""
    dr = max_pool_backward_fast(dout, cache.pool)
    return conv_backward_fast(relu_backward(dr, cache.relu), cache.first)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """conv -> spatial batch norm -> ReLU."""
    a, cc = conv_forward_fast(x, w, _no_bias(w), conv_param)
    n, nc = batchnorm_after_bias(a, b, gamma, beta, bn_param)
    out, rc = relu_forward(n)
    return out, SandwichCache(cc, nc, rc)


def conv_bn_relu_backward(dout, cache):
    """Returns (dx, dw, db, dgamma, dbeta)."""
    dn, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dout, cache.relu), cache.norm)
    dx, dw, db = conv_backward_fast(dn, cache.first)
    return dx, dw, db, dgamma, dbeta


def conv_bn_relu_pool_forward(x, w, b, gamma, beta, conv_param, bn_param, pool_param):
    """conv -> spatial batch norm -> ReLU -> max pool."""
    a, cc = conv_forward_fast(x, w, _no_bias(w), conv_param)
    n, nc = batchnorm_after_bias(a, b, gamma, beta, bn_param)
    r, rc = relu_forward(n)
    out, pc = max_pool_forward_fast(r, pool_param)
    return out, SandwichCache(cc, nc, rc, pc)


def conv_bn_relu_pool_backward(dout, cache):
    """Returns (dx, dw, db, dgamma, dbeta)."""
    dr = max_pool_backward_fast(dout, cache.pool)
    dn, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dr, cache.relu), cache.norm)
    dx, dw, db = conv_backward_fast(dn, cache.first)
    return dx, dw, db, dgamma, dbeta
