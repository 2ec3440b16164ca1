"""What both nets share at construction: the seeded generator, the weight draw, the checks of
sizes, dtype, reg and weight scale."""
from __future__ import annotations

import numpy as np

from ..nn._checks import finite_nonnegative

__all__ = ["init_rng", "gaussian", "check_sizes", "check_dtype", "check_reg", "check_weight_scale"]

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
