"""Loaders for Fashion-MNIST and MNIST (IDX format, gz or raw).

Both return the course's data dict: ``X_train`` (num_training, 1, 28, 28),
``X_val`` (num_validation, 1, 28, 28) (the training file's images after the
training ones), ``X_test`` (num_test, 1, 28, 28); pixels scaled to [0, 1],
the training mean image subtracted; labels int64 in 0..9. Defaults:
59,000 / 1,000 / 10,000.
"""
from __future__ import annotations

import os

import numpy as np

from .idx import read_idx_pair
from .locate import find, fix_hint, locate
from .registry import get
from .split import split_and_preprocess

__all__ = ["load_fashion_mnist", "load_mnist", "load_idx_dataset", "read_idx_dataset"]


def _found(name, data_dir, download, progress=True):
    ds = get(name)
    found = find(ds, data_dir)
    if found is None and download:
        from .download import fetch
        fetch(ds, data_dir=data_dir, progress=progress)
    return found or locate(ds, data_dir)


_decoded: dict = {}   # file identities -> decoded arrays (read-only); a sweep loads many subset sizes


def _identity(paths) -> tuple:
    return tuple((str(p), st.st_size, st.st_mtime_ns) for p in paths for st in [os.stat(p)])


def read_idx_dataset(found):
    """``(X_train (60000, 1, 28, 28) uint8, y_train (60000,) uint8, X_test, y_test)``
    of a located IDX dataset (shapes as the files say), validated.

    Decoded once per process and file version (path, size, mtime): decoding
    the gzip files costs more than splitting them, and experiments load
    several subset sizes. The arrays are read-only; the loaders copy.
    """
    ds = found.dataset
    key = _identity(found.path(f) for f in (*ds.train_files, *ds.test_files))
    if key not in _decoded:
        arrays = _decode(found)
        for a in arrays:
            a.setflags(write=False)
        if len(_decoded) >= 2:
            _decoded.pop(next(iter(_decoded)))
        _decoded[key] = arrays
    return _decoded[key]


def _decode(found):
    ds, hint = found.dataset, fix_hint(found)
    train_images, train_labels = ds.train_files
    test_images, test_labels = ds.test_files
    k = len(ds.classes)
    Xtr, ytr = read_idx_pair(found.path(train_images), found.path(train_labels), k, hint)
    Xte, yte = read_idx_pair(found.path(test_images), found.path(test_labels), k, hint)
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise ValueError(f"{found.path(train_images)} holds {Xtr.shape[1]}x{Xtr.shape[2]} images but "
                         f"{found.path(test_images)} {Xte.shape[1]}x{Xte.shape[2]}; {hint}")
    return Xtr[:, None], ytr, Xte[:, None], yte


def load_idx_dataset(name, data_dir=None, download=False, num_training=59000, num_validation=1000,
                     num_test=10000, subtract_mean=True, flatten=False, dtype=np.float32) -> dict:
    """:func:`load_fashion_mnist` for any IDX dataset of the registry."""
    found = _found(name, data_dir, download)
    Xtr, ytr, Xte, yte = read_idx_dataset(found)
    return split_and_preprocess(Xtr, ytr, Xte, yte, num_training=num_training,
                                num_validation=num_validation, num_test=num_test,
                                subtract_mean=subtract_mean, scale=True, dtype=dtype,
                                flatten=flatten, source=str(found.folder))


def load_fashion_mnist(data_dir=None, download=False, num_training=59000, num_validation=1000,
                       num_test=10000, subtract_mean=True, flatten=False, dtype=np.float32) -> dict:
    """Fashion-MNIST as the course's data dict.

    Inputs:
    - data_dir: the folder holding the four IDX files, or its parent; when
      given it is the only place searched. Default: ``$NORMLAB_DATA/fashion-mnist``,
      ``~/.cache/normlab/fashion-mnist``, ``/usr/share/datasets/fashion-mnist``.
    - download: when no copy is found, download the official files (MD5-verified)
      into ``data_dir`` or the cache.
    - num_training, num_validation: taken in order from the 60,000 training images.
    - num_test: the first ``num_test`` of the 10,000 test images.
    - subtract_mean: subtract the mean training image (after scaling to [0, 1]).
    - flatten: images as (N, 784) instead of (N, 1, 28, 28).
    - dtype: floating dtype of the images (float32 by default).

    Returns a dict with ``X_train`` (num_training, 1, 28, 28), ``y_train``
    (num_training,) int64, ``X_val``, ``y_val``, ``X_test``, ``y_test``.

    Raises DatasetNotFoundError (a FileNotFoundError) naming the folders searched
    and the command that fetches the data; DataError (a ValueError) naming a
    corrupt file; ValueError for sizes that do not fit.
    """
    return load_idx_dataset("fashion-mnist", data_dir, download, num_training, num_validation,
                            num_test, subtract_mean, flatten, dtype)


def load_mnist(data_dir=None, download=False, num_training=59000, num_validation=1000,
               num_test=10000, subtract_mean=True, flatten=False, dtype=np.float32) -> dict:
    """MNIST as the course's data dict; arguments, shapes and errors as
    :func:`load_fashion_mnist` (folders ``mnist`` instead of ``fashion-mnist``)."""
    return load_idx_dataset("mnist", data_dir, download, num_training, num_validation,
                            num_test, subtract_mean, flatten, dtype)
