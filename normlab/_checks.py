"""Boundary validation shared by the layers: one clear message per mistake.

Every check raises ``ValueError``/``TypeError`` stating the value received and
what was expected. ``NonFiniteError`` marks NaN/inf in data so the Solver can
tell a diverging run from a programming error.
"""
from __future__ import annotations

import numpy as np


class NonFiniteError(ValueError):
    """Input or statistics contain NaN or inf (training diverged, or bad data)."""


def as_float_array(x, name: str) -> np.ndarray:
    """Return ``x`` as a floating ndarray (no copy when it already is one).

    Integer and bool data (arrays, lists, scalars) become float64, as the
    course's code casts them (``np.asarray([3, 4, 5])`` as gamma, ``np.array([0,
    128])`` as a conv bias); callers cast on to the input's dtype. Complex,
    string and object data are refused.
    """
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating):
        return arr
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        return arr.astype(np.float64)
    what = f"dtype {arr.dtype}" if isinstance(x, np.ndarray) else f"{type(x).__name__} of dtype {arr.dtype}"
    raise TypeError(f"{name} must be a floating-point array, got {what} (integer and bool data are "
                    f"cast to float; complex, string and object data are not); "
                    f"convert with np.asarray({name}, dtype=np.float64)")


def require_ndim(x: np.ndarray, ndim: int, name: str, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"expected {ndim}-D {name} {layout}, got shape {x.shape}")


def require_min_ndim(x: np.ndarray, ndim: int, name: str, layout: str) -> None:
    if x.ndim < ndim:
        raise ValueError(f"expected {name} with at least {ndim} dimensions {layout}, got shape {x.shape}")


def param_vector(p, size: int, name: str, dtype) -> np.ndarray:
    """Accept a per-feature parameter of shape (size,) or any shape with `size`
    entries and singleton other axes (e.g. (1, C, 1, 1)); return it as (size,)."""
    arr = as_float_array(p, name)
    if arr.size != size or (arr.ndim > 1 and sorted(arr.shape)[:-1] != [1] * (arr.ndim - 1)):
        raise ValueError(f"{name} must have {size} entries (shape ({size},) or broadcastable "
                         f"like (1, {size}, 1, 1)), got shape {arr.shape}")
    return arr.reshape(size).astype(dtype, copy=False)


def require_finite_stats(*arrays: np.ndarray, where: str) -> None:
    """Raise NonFiniteError when any statistic is NaN/inf.

    Checking the (small) statistics instead of the input costs nothing and
    catches every NaN/inf in the input, since one poisons its column's mean.
    """
    for a in arrays:
        if not np.all(np.isfinite(a)):
            raise NonFiniteError(f"{where}: input contains NaN or inf (or overflows float "
                                 f"range); refusing to normalise and update running statistics")


def require_mode(mode, allowed=("train", "test")) -> str:
    if mode not in allowed:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(map(repr, allowed))}")
    return mode
