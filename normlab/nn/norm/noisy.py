"""Noisy batch norm (Santurkar, Tsipras, Ilyas & Madry 2018, "How Does Batch
Normalization Help Optimization?", section 2.1): batch norm whose output is
shifted and scaled by noise that changes at every training step, so that the
distribution of every layer's input keeps moving ("distributional
instability") while batch norm's benefit to optimization stays.

On x (N, D), with a = batch norm of x (exactly ``batchnorm_after_bias``:
running statistics, conventions and all):

    train mode:  out = s * a + m        a fresh (s, m) at every forward pass, per layer
    test mode:   out = a                no noise

The noise of one layer at one step, per unit j = 1..D:

    mu ~ U(-0.5, 0.5),  sigma ~ U(1, 1.25)              one pair for the layer
    m_j ~ U(mu - 0.1, mu + 0.1),  s_j ~ N(sigma, 0.1^2) 0.1 the standard deviation of s_j

Backward: ``da = s * dout``, then batch norm's closed-form backward.

Per unit or per sample. The paper's text perturbs "each activation for each
sample in the batch using i.i.d. noise"; normlab's default, ``noise_per='unit'``,
draws one (s_j, m_j) per unit and applies it to every sample of the batch (a
per-unit affine map, the shift of distribution a later layer sees).
``noise_per='sample'`` draws s, m of shape (N, D) from the same per-layer mu,
sigma: one per sample and unit, the paper's wording.

Draws come from ``bn_param['rng']`` (a ``np.random.Generator``; a net passes
its own ``model.rng``, so the same ``rng_seed`` gives the same noise), or, when
that is None or absent, from the global ``np.random`` (the course's mode). One
draw takes, in order: mu, sigma, then m (all of it), then s.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, require_ndim
from .batchnorm import BatchNormCache, batchnorm_after_bias, batchnorm_backward_closed

__all__ = ["NOISE_PER", "NoiseDraw", "NoisyBatchNormCache", "draw_noise", "check_noise_per",
           "noisy_batchnorm_forward", "noisy_batchnorm_backward"]

#: ``noise_per='unit'``: one (s_j, m_j) per unit; ``'sample'``: one per sample and unit.
NOISE_PER = ("unit", "sample")
MEAN_RANGE = 0.5            # mu ~ U(-MEAN_RANGE, MEAN_RANGE)
SIGMA_RANGE = (1.0, 1.25)   # sigma ~ U(*SIGMA_RANGE)
SPREAD = 0.1                # m_j ~ U(mu - SPREAD, mu + SPREAD), s_j ~ N(sigma, SPREAD^2)
_NOISE_KEYS = ("rng", "noise_per")


class NoiseDraw(NamedTuple):
    """One layer's noise at one step: ``out = scale * a + shift``."""
    mu: float              # the layer's mean of the shifts
    sigma: float           # the layer's mean of the scales
    shift: np.ndarray      # m: (D,) per unit, or (N, D) per sample and unit
    scale: np.ndarray      # s: m's shape


class NoisyBatchNormCache(NamedTuple):
    bn: BatchNormCache          # batch norm's cache
    noise: NoiseDraw | None     # the draw applied in train mode; None in test mode


def check_noise_per(noise_per) -> str:
    """``noise_per`` if it is one of NOISE_PER; else ValueError naming it."""
    if noise_per not in NOISE_PER:
        raise ValueError(f"unknown noise_per {noise_per!r}; expected 'unit' (one draw per unit, applied to "
                         f"the whole batch) or 'sample' (one per sample and unit)")
    return noise_per


def draw_noise(shape: tuple[int, ...], rng: np.random.Generator | None = None, dtype=np.float64) -> NoiseDraw:
    """A fresh ``NoiseDraw`` with shift and scale of ``shape`` ((D,) or (N, D)) in ``dtype``.

    rng: the generator to draw from; None: the global ``np.random``.
    """
    src = np.random if rng is None else rng
    mu = float(src.uniform(-MEAN_RANGE, MEAN_RANGE))
    sigma = float(src.uniform(*SIGMA_RANGE))
    shift = src.uniform(mu - SPREAD, mu + SPREAD, size=shape).astype(dtype)
    scale = src.normal(sigma, SPREAD, size=shape).astype(dtype)
    return NoiseDraw(mu, sigma, shift, scale)


def _checked(noise: NoiseDraw, x: np.ndarray) -> NoiseDraw:
    """A given draw, its arrays checked against x (N, D) and cast to x's dtype."""
    shift, scale = (np.asarray(a, dtype=x.dtype) for a in (noise.shift, noise.scale))
    for name, a in (("shift", shift), ("scale", scale)):
        if a.shape not in (x.shape[1:], x.shape):
            raise ValueError(f"noise.{name} has shape {a.shape}; for input x of shape {x.shape} it must be "
                             f"({x.shape[1]},) per unit or {x.shape} per sample and unit")
    return NoiseDraw(float(noise.mu), float(noise.sigma), shift, scale)


def noisy_batchnorm_forward(x, gamma, beta, bn_param, noise: NoiseDraw | None = None, bias=None):
    """Noisy batch norm: ``out = s * batchnorm(x) + m`` in train mode, ``batchnorm(x)`` in test mode.

    Inputs:
    - x: Data of shape (N, D)
    - gamma, beta: Scale and shift of batch norm, of shape (D,)
    - bn_param: batch norm's dict (``batchnorm_forward``: mode, eps, momentum,
      convention, batch_variance, running_mean, running_var; the running
      statistics are stored back into it) plus
      - rng: the np.random.Generator to draw the noise from; None or absent: np.random
      - noise_per: 'unit' (default) or 'sample', see the module docstring
    - noise: (train mode) a ``NoiseDraw`` to apply instead of drawing one (gradient checks)
    - bias: None, or the (D,) bias of the affine layer before (``batchnorm_after_bias``)

    Returns a tuple of:
    - out: of shape (N, D), x's dtype
    - cache: NoisyBatchNormCache(bn cache, the draw applied or None)
    """
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict like {{'mode': 'train'}}, got {type(bn_param).__name__}")
    x = as_float_array(x, "x")
    require_ndim(x, 2, "input x", "(N, D)")
    per = check_noise_per(bn_param.get("noise_per", "unit"))
    rng = bn_param.get("rng")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"bn_param['rng'] must be a np.random.Generator or None (np.random), "
                        f"got {type(rng).__name__}; pass np.random.default_rng(seed)")
    draw = None if noise is None else _checked(noise, x)
    # batch norm checks its own keys: it gets its dict, and its running statistics come back
    bn = {k: v for k, v in bn_param.items() if k not in _NOISE_KEYS}
    a, bn_cache = batchnorm_after_bias(x, bias, gamma, beta, bn)
    bn_param["running_mean"], bn_param["running_var"] = bn["running_mean"], bn["running_var"]
    if bn_param["mode"] == "test":
        return a, NoisyBatchNormCache(bn_cache, None)
    if draw is None:     # drawn once batch norm has accepted the input: a refused call draws nothing
        draw = draw_noise(x.shape if per == "sample" else x.shape[1:], rng, x.dtype)
    out = a * draw.scale
    out += draw.shift
    return out, NoisyBatchNormCache(bn_cache, draw)


def noisy_batchnorm_backward(dout, cache: NoisyBatchNormCache):
    """Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,): batch norm's backward of ``s * dout``."""
    da = dout if cache.noise is None else dout * cache.noise.scale
    return batchnorm_backward_closed(da, cache.bn)
