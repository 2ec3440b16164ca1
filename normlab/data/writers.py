"""Writing data in the official formats: IDX (MNIST-style, raw or gzipped)
and CIFAR-10's binary records. For users converting their own images, and for
tests that build small datasets. Files are written atomically.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .idx import IMAGES_MAGIC, LABELS_MAGIC

__all__ = ["idx_bytes", "write_idx", "write_cifar_bin_batch"]


def idx_bytes(array) -> bytes:
    """The IDX encoding of a uint8 array: (N, rows, cols) images or (N,) labels."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    magic = {3: IMAGES_MAGIC, 1: LABELS_MAGIC}.get(a.ndim)
    if magic is None:
        raise ValueError(f"expected (N, rows, cols) images or (N,) labels, got shape {a.shape}")
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + a.tobytes()


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX to ``path``; gzipped when ``compress`` (default:
    when ``path`` ends with ``.gz``). Returns the path."""
    path = Path(os.fspath(path))
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write(path, lambda f: f.write(data))
    return path


def write_cifar_bin_batch(path, images, labels) -> Path:
    """Write a CIFAR-10 binary batch: ``images`` uint8 (N, 3, 32, 32), ``labels`` (N,) in 0..9."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(labels)
    if images.shape[1:] != (3, 32, 32) or labels.shape != (len(images),):
        raise ValueError(f"expected images (N, 3, 32, 32) and labels (N,), got {images.shape} and {labels.shape}")
    records = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1)
    atomic_write(Path(os.fspath(path)), lambda f: f.write(records.tobytes()))
    return Path(os.fspath(path))
