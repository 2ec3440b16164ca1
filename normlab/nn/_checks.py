"""Boundary validation shared by the layers: one clear message per mistake.

Every check raises ``ValueError``/``TypeError`` stating the value received and
what was expected. ``NonFiniteError`` marks NaN/inf in data so the Solver can
tell a diverging run from a programming error.
"""
from __future__ import annotations

import math

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
    kind = arr.dtype.kind   # 'f' floating, 'i'/'u' integer, 'b' bool (cheaper than np.issubdtype per call)
    if kind == "f":
        return arr
    if kind in "iub":
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
        if not np.isfinite(a).all():
            raise NonFiniteError(f"{where}: input contains NaN or inf (or overflows float "
                                 f"range); refusing to normalise and update running statistics")


def require_mode(mode, allowed=("train", "test")) -> str:
    if mode not in allowed:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(map(repr, allowed))}")
    return mode


def finite_nonnegative(value, name: str, meaning: str = "", *, allow_zero: bool = True) -> float:
    """``value`` as a float: a finite real number >= 0 (> 0 unless ``allow_zero``).

    ``meaning`` (e.g. "0 turns L2 regularization off") goes into the message.
    Raises ValueError naming ``name`` and the value received.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    ok = (not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
          and math.isfinite(value) and (value > 0 or (allow_zero and value == 0)))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}" + (f" ({meaning})" if meaning else "")
                         + f", got {value!r}")
    return float(value)


def _all_finite(x: np.ndarray) -> bool:
    # NaN and inf survive a sum, which is faster than isfinite and needs no
    # temporary the size of x; only a non-finite sum (bad data, or finite data
    # whose sum overflows the dtype) costs the element-wise pass.
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(x.sum()):
            return True
    return bool(np.isfinite(x).all())


def require_finite_data(x, name: str) -> None:
    """Raise unless ``x`` is an ndarray (N, ...) of real numbers, all finite.

    TypeError for anything but an ndarray of bool, integer or floating dtype;
    ValueError naming the first NaN/inf entry (``X_val[3, 1] = nan``).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array (N, ...), got {type(x).__name__}; "
                        f"convert with np.asarray({name}, dtype=np.float32)")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}; "
                        f"convert with {name}.astype(np.float32)")
    require_min_ndim(x, 1, name, "(N, ...)")
    if x.dtype.kind == "f" and not _all_finite(x):
        where = np.unravel_index(int(np.argmin(np.isfinite(x))), x.shape)
        raise ValueError(f"{name}[{', '.join(map(str, where))}] = {x[where]} is not finite; "
                         f"remove or impute the NaN/inf entries before training")


def require_class_indices(y, name: str, num_classes: int | None = None, source: str = "") -> np.ndarray:
    """Check ``y`` holds class indices: 1-D, integer dtype, in ``0..num_classes-1``
    (only ``>= 0`` when ``num_classes`` is None). Returns ``y`` as an ndarray.

    ``source`` says where ``num_classes`` came from ("the model has 10
    classes"). Float labels raise ValueError (naming the first that is not a
    whole number, else asking for an integer dtype); other non-integer dtypes
    TypeError; out-of-range or misshapen labels ValueError, naming the first
    offending entry.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (N,) of class indices, got shape {y.shape}")
    if y.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] = {y[bad[0]]} is not a class index; labels must be "
                             f"integers 0..C-1 in an integer array")
        raise ValueError(f"{name} holds whole numbers in dtype {y.dtype}; labels must be an integer "
                         f"array: pass {name}.astype(np.int64)")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class indices, got dtype {y.dtype}; "
                        f"pass {name}.astype(np.int64)")
    if y.size == 0:
        return y
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
        i = int(np.argmax((y < 0) | (y >= num_classes) if num_classes is not None else y < 0))
        if num_classes is None:
            raise ValueError(f"{name}[{i}] = {y[i]} is negative; labels must be class indices 0..C-1")
        raise ValueError(f"{name}[{i}] = {y[i]} is outside 0..{num_classes - 1}"
                         + (f" ({source})" if source else "") + "; labels must be class indices")
    return y
