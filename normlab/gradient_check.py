"""Numerical gradients by central differences, with the course's names.

All checkers evaluate ``(f(x + h e_i) - f(x - h e_i)) / 2h`` one coordinate
at a time. They perturb ``x`` *in place* and restore every entry exactly
afterwards: course code passes a model's parameter array (``model.params[k]``)
and a closure that ignores its argument, so only in-place perturbation reaches
the model. Use float64 inputs; float32 differences carry ~1e-3 noise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "grad_check_sparse",
    "rel_error",
]


def rel_error(x, y) -> float:
    """max |x - y| / max(1e-8, |x| + |y|), elementwise, as the course defines it."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error needs equal shapes, got {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def _check_array(x) -> np.ndarray:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"gradient checks perturb x in place, so x must be a floating NumPy array; "
            f"got {type(x).__name__}{'' if not isinstance(x, np.ndarray) else ' of dtype ' + str(x.dtype)}"
        )
    return x


def _central_difference(f, x: np.ndarray, ix, h: float) -> float:
    """(f(x + h e_ix) - f(x - h e_ix)) / 2h, restoring x[ix] exactly."""
    old = x[ix].copy()
    x[ix] = old + h
    fxph = float(f(x))
    x[ix] = old - h
    fxmh = float(f(x))
    x[ix] = old
    return (fxph - fxmh) / (2 * h)


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                            verbose: bool = True, h: float = 1e-5) -> np.ndarray:
    """Gradient of a scalar function ``f`` at ``x`` (same shape as x, float64)."""
    x = _check_array(x)
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        grad[ix] = _central_difference(f, x, ix, h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                                  df: np.ndarray, h: float = 1e-5, order: int = 2) -> np.ndarray:
    """Gradient of ``sum(f(x) * df)`` at ``x``: the vector-Jacobian product with ``df``.

    ``order=2`` (the course's): central differences, error ~h^2 plus rounding
    ~eps |f| / h. ``order=4``: the five-point stencil
    ``(8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h``, error ~h^4, which
    allows a larger h and so less rounding: on smooth functions it resolves
    gradient entries far below what order 2 can.

    Use a random ``df``: an all-ones upstream gradient makes batch norm's dx
    vanish identically and hides every error.
    """
    x = _check_array(x)
    if order not in (2, 4):
        raise ValueError(f"order must be 2 (central differences) or 4 (five-point stencil), got {order!r}")
    df = np.asarray(df)
    steps = ((1.0, 1.0),) if order == 2 else ((1.0, 8.0 / 6.0), (2.0, -1.0 / 6.0))
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix].copy()
        total = 0.0
        for k, weight in steps:
            x[ix] = old + k * h
            pos = np.array(f(x), dtype=np.float64, copy=True)
            x[ix] = old - k * h
            neg = np.array(f(x), dtype=np.float64, copy=True)
            x[ix] = old
            if pos.shape != df.shape:
                raise ValueError(f"f(x) has shape {pos.shape} but df has shape {df.shape}; they must match")
            total += weight * np.sum((pos - neg) * df)
        grad[ix] = total / (2 * h)
        it.iternext()
    return grad


def grad_check_sparse(f: Callable[[np.ndarray], float], x: np.ndarray, analytic_grad: np.ndarray,
                      num_checks: int = 10, h: float = 1e-5, seed: int | None = None,
                      verbose: bool = True) -> list[float]:
    """Compare ``analytic_grad`` with central differences at ``num_checks`` random entries.

    Prints one line per entry as the course does, and returns the relative
    errors so a test can assert on them.
    """
    x = _check_array(x)
    analytic_grad = np.asarray(analytic_grad)
    if analytic_grad.shape != x.shape:
        raise ValueError(f"analytic_grad has shape {analytic_grad.shape}, expected x's shape {x.shape}")
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(num_checks):
        ix = tuple(int(rng.integers(m)) for m in x.shape)
        numeric = _central_difference(f, x, ix, h)
        analytic = float(analytic_grad[ix])
        err = abs(numeric - analytic) / max(1e-12, abs(numeric) + abs(analytic))
        errors.append(err)
        if verbose:
            print(f"numerical: {numeric:f} analytic: {analytic:f}, relative error: {err:e}")
    return errors
