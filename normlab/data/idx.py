"""Reader for the IDX files of MNIST and Fashion-MNIST, gzipped or raw.

Format (big-endian, http://yann.lecun.com/exdb/mnist/)::

    bytes 0-3   magic: 0x00 0x00 <type 0x08 = unsigned byte> <number of dimensions>
                2051 (0x00000803) for images, 2049 (0x00000801) for labels
    then        one 4-byte size per dimension: (N, rows, cols) or (N,)
    then        prod(sizes) unsigned bytes, row-major

Everything is validated: the magic number, the header length, the payload
length against the sizes (shorter = truncated, longer = not what the header
says), the label range and that images and labels pair up.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "decompress", "read_payload", "parse_idx",
           "read_idx_images", "read_idx_labels", "read_idx_pair"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"


def _fix(hint: str) -> str:
    return f"; {hint}" if hint else ""


def decompress(raw: bytes, path, hint: str = "") -> bytes:
    """``raw`` itself, or its gunzipped content when it starts with the gzip magic
    bytes; a truncated or corrupt gzip raises :class:`DataError` naming ``path``."""
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip ({exc}){_fix(hint)}") from None


def read_payload(path, hint: str = "") -> bytes:
    """The bytes of ``path``, decompressed when it is gzip (detected by its
    magic bytes, not its name). A truncated or corrupt gzip raises
    :class:`DataError` naming the file; ``hint`` (what to do) ends the message."""
    path = Path(os.fspath(path))
    return decompress(path.read_bytes(), path, hint)


def parse_idx(payload: bytes, path, magic: int, hint: str = "") -> np.ndarray:
    """The uint8 array of an uncompressed IDX ``payload`` whose magic number must
    be ``magic``; shape from the header. ``path`` is only used in messages."""
    kind = {IMAGES_MAGIC: "images (idx3-ubyte)", LABELS_MAGIC: "labels (idx1-ubyte)"}.get(magic, "IDX")
    if len(payload) < 4:
        raise DataError(f"{path}: {len(payload)} bytes, too short for an IDX header{_fix(hint)}")
    found = int.from_bytes(payload[:4], "big")
    if found != magic:
        raise DataError(f"{path}: magic number {found} (0x{found:08x}), expected {magic} "
                        f"(0x{magic:08x}): not an IDX {kind} file{_fix(hint)}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise DataError(f"{path}: header truncated ({len(payload)} of {header} bytes){_fix(hint)}")
    dims = struct.unpack(f">{ndim}I", payload[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(payload) - header
    if actual < expected:
        raise DataError(f"{path}: payload is {actual} bytes but the header's shape {dims} needs "
                        f"{expected}: the file is truncated{_fix(hint)}")
    if actual > expected:
        raise DataError(f"{path}: payload is {actual} bytes, {actual - expected} more than the header's "
                        f"shape {dims} needs: the header does not describe this file{_fix(hint)}")
    return np.frombuffer(payload, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def read_idx_images(path, hint: str = "") -> np.ndarray:
    """Images of an idx3-ubyte file (gz or raw): uint8 array (N, rows, cols)."""
    images = parse_idx(read_payload(path, hint), path, IMAGES_MAGIC, hint)
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(f"{path}: images of size {images.shape[1]}x{images.shape[2]}{_fix(hint)}")
    return images


def read_idx_labels(path, num_classes: int = 10, hint: str = "") -> np.ndarray:
    """Labels of an idx1-ubyte file (gz or raw): uint8 array (N,), each in
    ``0 .. num_classes-1`` (else :class:`DataError` naming the first offender)."""
    labels = parse_idx(read_payload(path, hint), path, LABELS_MAGIC, hint)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: label {int(labels[i])} at index {i} is outside 0..{num_classes - 1} "
                        f"({bad.size} such labels){_fix(hint)}")
    return labels


def read_idx_pair(images_path, labels_path, num_classes: int = 10, hint: str = ""):
    """``(images (N, rows, cols) uint8, labels (N,) uint8)`` from an images file
    and its labels file; their counts must agree."""
    images = read_idx_images(images_path, hint)
    labels = read_idx_labels(labels_path, num_classes, hint)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                        f"{len(labels)} labels: they are not a pair{_fix(hint)}")
    return images, labels
