"""What the nets share: at construction the seeded generator, the weight draw, the checks of
sizes, dtype, reg and weight scale; in the loss, the L2 penalty."""
from __future__ import annotations

import numpy as np

from ..nn import _jit_ops
from ..nn._checks import finite_nonnegative

__all__ = ["init_rng", "gaussian", "check_sizes", "check_dtype", "check_reg", "check_weight_scale",
           "sum_squares", "add_l2"]

REG_MEANING = "the L2 strength; 0 turns regularization off"
WEIGHT_SCALE_MEANING = "the standard deviation of the initial weights, e.g. 1e-2"


def init_rng(rng_seed):
    """A seeded Generator, or None to draw from the global RNG as the course does."""
    if rng_seed is None:
        return None
    if isinstance(rng_seed, bool) or not isinstance(rng_seed, (int, np.integer)) or rng_seed < 0:
        raise ValueError(f"rng_seed must be an integer >= 0 or None, got {rng_seed!r}")
    return np.random.default_rng(int(rng_seed))


def gaussian(rng, shape, scale, dtype):
    """``scale * N(0, 1)`` of ``shape`` in ``dtype``, from ``rng`` or (None) the global ``np.random``."""
    draw = rng.standard_normal(shape) if rng is not None else np.random.randn(*shape)
    return (scale * draw).astype(dtype)


def check_sizes(sizes, context: str) -> None:
    """Every layer size a positive integer; ValueError naming the bad one and ``context``."""
    for h in sizes:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise ValueError(f"layer sizes must be positive integers, got {h!r} ({context})")


def check_dtype(dtype) -> np.dtype:
    """np.float32 or np.float64 as a ``np.dtype``; TypeError otherwise."""
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return np.dtype(dtype)


def check_reg(reg) -> float:
    return finite_nonnegative(reg, "reg", REG_MEANING)


def check_weight_scale(weight_scale) -> float:
    return finite_nonnegative(weight_scale, "weight_scale", WEIGHT_SCALE_MEANING, allow_zero=False)


def sum_squares(w: np.ndarray) -> float:
    """``sum(w**2)`` accumulated in float64, as a Python float; the same value on both backends
    (the Numba kernel replicates NumPy's pairwise sum without the float64 copy and the squares)."""
    fast = _jit_ops.sum_squares(w)
    if fast is not None:
        return fast
    return float(np.sum(np.square(w, dtype=np.float64)))


def add_l2(loss: float, grads: dict, params: dict, names, reg: float) -> float:
    """``loss + 0.5 * reg * sum(W**2)`` over the weights ``names``, adding ``reg * W`` to their grads
    in place; returns the new loss.

    ``reg == 0`` returns ``loss`` and leaves the grads untouched: what adding ``0.5 * 0 * sum(W**2)``
    and ``0 * W`` gives for finite weights (a -0.0 gradient entry could turn +0.0, equal in value),
    without their passes over every weight. Non-finite weights never reach this point: they make
    the forward pass's scores non-finite, and the loss layer raises there.
    """
    if reg == 0:
        return loss
    for k in names:
        W = params[k]
        loss += 0.5 * reg * sum_squares(W)
        grads[k] += reg * W
    return loss
