"""The course's split and preprocessing, shared by every loader.

Given all training and test images as uint8 ``(N, C, H, W)``:

* ``X_train`` = the first ``num_training`` training images, ``X_val`` the next
  ``num_validation`` (so validation never overlaps training), ``X_test`` the
  first ``num_test`` test images. No shuffling: the result is deterministic.
* optionally scaled by 1/255 (MNIST-format sets; CIFAR keeps the course's 0..255),
* the mean image of ``X_train`` subtracted from all three when ``subtract_mean``,
* cast to ``dtype`` (images channels-first ``(N, C, H, W)``, or ``(N, C*H*W)``
  with ``flatten``); labels int64.
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_sizes", "split_and_preprocess"]


def check_sizes(num_training, num_validation, num_test, n_train_avail, n_test_avail, source) -> None:
    """Raise ``ValueError`` naming the numbers when the requested split does not fit."""
    for name, v in (("num_training", num_training), ("num_validation", num_validation), ("num_test", num_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if num_training == 0:
        raise ValueError("num_training must be at least 1 (the mean image is taken over it)")
    if num_training + num_validation > n_train_avail:
        raise ValueError(f"num_training + num_validation = {num_training} + {num_validation} exceeds the "
                         f"{n_train_avail} training images in {source}")
    if num_test > n_test_avail:
        raise ValueError(f"num_test = {num_test} exceeds the {n_test_avail} test images in {source}")


def _as_float(x_uint8, scale, dtype):
    x = x_uint8.astype(dtype)
    if scale:
        x /= dtype.type(255)
    return x


def split_and_preprocess(X_train_all, y_train_all, X_test_all, y_test_all, *, num_training,
                         num_validation, num_test, subtract_mean=True, scale=False,
                         dtype=np.float32, flatten=False, source="") -> dict:
    """The course's data dict ``X_train, y_train, X_val, y_val, X_test, y_test``
    from uint8 ``(N, C, H, W)`` arrays (see the module docstring)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    check_sizes(num_training, num_validation, num_test, len(X_train_all), len(X_test_all), source)
    parts = {
        "train": (X_train_all[:num_training], y_train_all[:num_training]),
        "val": (X_train_all[num_training:num_training + num_validation],
                y_train_all[num_training:num_training + num_validation]),
        "test": (X_test_all[:num_test], y_test_all[:num_test]),
    }
    out = {}
    for key, (x, y) in parts.items():
        out[f"X_{key}"] = _as_float(x, scale, dtype)
        out[f"y_{key}"] = np.asarray(y, dtype=np.int64).copy()
    if subtract_mean:
        # accumulated in float64 so the mean does not depend on float32 rounding order
        mean = out["X_train"].mean(axis=0, dtype=np.float64).astype(dtype)
        for key in ("train", "val", "test"):
            out[f"X_{key}"] -= mean
    if flatten:
        for key in ("train", "val", "test"):
            out[f"X_{key}"] = out[f"X_{key}"].reshape(len(out[f"X_{key}"]), -1)
    return {k: out[k] for k in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")}
