"""CIFAR-10 in both official formats, and the course's ``get_CIFAR10_data``.

Python version (``cifar-10-batches-py``): files ``data_batch_1`` .. ``data_batch_5``
and ``test_batch``, each a (Python 2) pickle of a dict with ``data``, a uint8
array (10000, 3072) of rows R(1024) G(1024) B(1024) in row-major 32x32 planes,
and ``labels``, a list of 10000 ints in 0..9. Read with
:mod:`~normlab.data.safe_pickle` only.

Binary version (``cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``_5.bin``
and ``test_batch.bin``, each 10000 fixed-size records of 1 label byte followed
by the same 3072 pixel bytes.

Batches of any size load (users bring their own CIFAR-format data); the
record layout, dtype and label range are validated.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DataError
from .locate import find, fix_hint, locate
from .registry import get
from .safe_pickle import safe_load
from .split import split_and_preprocess

__all__ = ["read_cifar_py_batch", "read_cifar_bin_batch", "read_cifar10", "load_CIFAR_batch",
           "load_CIFAR10", "get_CIFAR10_data"]

_PIXELS = 3 * 32 * 32
_RECORD = 1 + _PIXELS


def _labels_ok(labels, path, hint, num_classes=10):
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: label {int(labels[i])} at index {i} is outside 0..{num_classes - 1}; {hint}")


def _labels_array(labels, path, hint) -> np.ndarray:
    """The labels of a batch as int64: a flat list of ints, or a 1-D integer array."""
    # np.asarray is not asked to guess: a pickle can nest one list in another many
    # times over (memo references), which it would expand exponentially.
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
        desc = f"a {labels.dtype} array of shape {labels.shape}"
    else:
        ok = isinstance(labels, (list, tuple)) and all(type(v) is int for v in labels)
        desc = f"a {type(labels).__name__}" + (" holding non-integers" if isinstance(labels, (list, tuple)) else "")
    if not ok:
        raise DataError(f"{path}: 'labels' must be a list of integers, got {desc}; {hint}")
    try:
        return np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{path}: 'labels' holds integers beyond 64 bits; {hint}") from None


def read_cifar_py_batch(path, hint: str = "replace the file") -> tuple[np.ndarray, np.ndarray]:
    """``(X (N, 3, 32, 32) uint8, y (N,) int64)`` from a python-version batch."""
    path = Path(os.fspath(path))
    with open(path, "rb") as f:
        batch = safe_load(f, path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR batch is a dict, this pickle holds a {type(batch).__name__}; {hint}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        keys = sorted(repr(k)[:40] for k in batch)
        shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} keys)" if len(keys) > 8 else "")
        raise DataError(f"{path}: a CIFAR-10 batch has keys 'data' and 'labels', this one [{shown}]; {hint}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is a {desc}, expected a uint8 array (N, 3072) "
                        f"(3 channel planes of 32x32); {hint}")
    labels = _labels_array(batch["labels"], path, hint)
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels; {hint}")
    _labels_ok(labels, path, hint)
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_bin_batch(path, hint: str = "replace the file") -> tuple[np.ndarray, np.ndarray]:
    """``(X (N, 3, 32, 32) uint8, y (N,) int64)`` from a binary-version batch."""
    path = Path(os.fspath(path))
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {_RECORD}-byte records "
                        f"(1 label + 3072 pixels); the file is truncated or not a CIFAR-10 binary batch; {hint}")
    records = raw.reshape(-1, _RECORD)
    labels = records[:, 0].astype(np.int64)
    _labels_ok(labels, path, hint)
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def read_cifar10(found):
    """``(X_train, y_train, X_test, y_test)``, uint8 (N, 3, 32, 32) and int64,
    from a located CIFAR-10 folder (either format)."""
    ds, hint = found.dataset, fix_hint(found)
    if found.layout.format == "cifar-py":
        reader, suffix = read_cifar_py_batch, ""
    else:
        reader, suffix = read_cifar_bin_batch, ".bin"
    train = [reader(found.path(n + suffix), hint) for n in ds.train_files]
    Xte, yte = reader(found.path(ds.test_files[0] + suffix), hint)
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), Xte, yte)


def _found(data_dir, download, progress=True):
    ds = get("cifar-10")
    found = find(ds, data_dir)
    if found is None and download:
        from .download import fetch
        fetch(ds, data_dir=data_dir, progress=progress)
    return found or locate(ds, data_dir)


def load_CIFAR_batch(filename):
    """Course-compatible: ``(X (N, 32, 32, 3) float64, Y (N,) int64)`` of one python batch."""
    X, Y = read_cifar_py_batch(filename)
    return X.transpose(0, 2, 3, 1).astype(np.float64), Y


def load_CIFAR10(ROOT):
    """Course-compatible: ``(Xtr, Ytr, Xte, Yte)`` with images (N, 32, 32, 3)
    float64 (channels last, 0..255) from the folder ``ROOT`` (or its parent)."""
    Xtr, Ytr, Xte, Yte = read_cifar10(locate("cifar-10", ROOT))
    return (Xtr.transpose(0, 2, 3, 1).astype(np.float64), Ytr,
            Xte.transpose(0, 2, 3, 1).astype(np.float64), Yte)


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000, subtract_mean=True,
                     data_dir=None, download=False, *, flatten=False, dtype=np.float32) -> dict:
    """CIFAR-10 as the course prepares it.

    Inputs:
    - num_training, num_validation: taken in order from the 50,000 training images
      (49,000 / 1,000 by default), num_test: the first of the 10,000 test images.
    - subtract_mean: subtract the mean training image (pixels stay in 0..255, as in the course).
    - data_dir: ``cifar-10-batches-py`` (or ``-bin``) itself or a parent; when given,
      the only place searched. Default: ``$NORMLAB_DATA``, ``~/.cache/normlab``,
      ``/usr/share/datasets``, each under ``cifar-10/``.
    - download: download the official python archive (MD5-verified) when nothing is found.
    - flatten: images (N, 3072) instead of (N, 3, 32, 32); dtype: float32 by default.

    Returns a dict with ``X_train`` (num_training, 3, 32, 32), ``y_train`` (num_training,)
    int64, ``X_val``, ``y_val``, ``X_test``, ``y_test``; channels first.

    Raises DatasetNotFoundError naming the folders searched and the fetch command;
    DataError naming a corrupt or unsafe file; ValueError for sizes that do not fit.
    """
    found = _found(data_dir, download)
    Xtr, ytr, Xte, yte = read_cifar10(found)
    return split_and_preprocess(Xtr, ytr, Xte, yte, num_training=num_training,
                                num_validation=num_validation, num_test=num_test,
                                subtract_mean=subtract_mean, scale=False, dtype=dtype,
                                flatten=flatten, source=str(found.folder))
