"""Reader for the IDX files of MNIST and Fashion-MNIST, gzipped or raw.

Format (big-endian, http://yann.lecun.com/exdb/mnist/)::

    bytes 0-3   magic: 0x00 0x00 <type 0x08 = unsigned byte> <number of dimensions>
                2051 (0x00000803) for images, 2049 (0x00000801) for labels
    then        one 4-byte size per dimension: (N, rows, cols) or (N,)
    then        prod(sizes) unsigned bytes, row-major

Everything is validated: the magic number, the header length, the payload
length against the sizes (shorter = truncated, longer = not what the header
says), the label range and that images and labels pair up.

A gzip is inflated only as far as the IDX header it starts with says the
content goes (plus a few bytes, so the message can say how many more there
are). A small file that would inflate to gigabytes stops there, having
used no more memory than its header's honest size. A header declaring far
more than its file could plausibly inflate to is believed only once the
stream has been inflated, without keeping it, to exactly that size: a
truncated or padded stream then costs a few hundred KB, whatever its header
declares (see :func:`decompress`). Sizes are Python integers, so no header
overflows them.
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "decompress", "read_payload", "parse_idx", "read_idx_header",
           "read_idx_images", "read_idx_labels", "read_idx_pair"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_IN = 1 << 13      # compressed bytes given to zlib at a time: small, since each gzip member's end copies the rest
_OUT = 1 << 16     # most bytes asked of one zlib call (it returns a new bytes object of up to this many)
_HEAD = 4 + 4 * 255  # the longest IDX header
_MARGIN = 64       # bytes inflated past the header's size, so the message can count a small excess
# A header declaring more than this many bytes, and more than _RATIO times the compressed file, is
# believed only once the stream has been inflated without keeping it and proved that long; then it is
# inflated again into a buffer of the declared size. Real IDX gzips compress less than 5:1, a crafted
# stream of zeros 1032:1, deflate's most: so a file that is not what its header says is never held in
# memory past max(_TRUST, _RATIO * its compressed size) bytes, however much its header declares.
_TRUST = 1 << 20
_RATIO = 16


def _fix(hint: str) -> str:
    return f"; {hint}" if hint else ""


def _kind(magic) -> str:
    return {IMAGES_MAGIC: "images (idx3-ubyte)", LABELS_MAGIC: "labels (idx1-ubyte)"}.get(magic, "ubyte")


def _header(head, path, magic, hint, final: bool = True):
    """``(dims, header_size)`` of the IDX content starting with ``head``.

    ``magic`` is the one required (``None``: any unsigned-byte IDX file).
    Returns ``None`` while ``head`` is too short for the whole header, unless
    ``final`` (``head`` is all there is), which then raises :class:`DataError`,
    as does a wrong magic number as soon as 4 bytes are there."""
    if len(head) < 4:
        if not final:
            return None
        raise DataError(f"{path}: {len(head)} bytes, too short for an IDX header{_fix(hint)}")
    found = int.from_bytes(head[:4], "big")
    if (found != magic) if magic is not None else (found >> 8 != _UBYTE):
        expected = f"expected {magic} (0x{magic:08x})" if magic is not None else "expected 0x000008nn"
        raise DataError(f"{path}: magic number {found} (0x{found:08x}), {expected}: not an IDX "
                        f"{_kind(magic)} file{_fix(hint)}")
    size = 4 + 4 * (found & 0xFF)
    if len(head) < size:
        if not final:
            return None
        raise DataError(f"{path}: header truncated ({len(head)} of {size} bytes){_fix(hint)}")
    return struct.unpack(f">{found & 0xFF}I", head[4:size]), size


def _wrong_length(path, dims, actual: int, expected: int, hint) -> DataError:
    """The error for a payload of ``actual`` bytes where the header's shape ``dims`` needs ``expected``."""
    if actual < expected:
        return DataError(f"{path}: payload is {actual} bytes but the header's shape {dims} needs "
                         f"{expected}: the file is truncated{_fix(hint)}")
    return DataError(f"{path}: payload is {actual} bytes, {actual - expected} more than the header's "
                     f"shape {dims} needs: the header does not describe this file{_fix(hint)}")


class _Gunzip:
    """The gunzipped content of the compressed ``pieces`` (bytes-like, in order, each
    small), read with :meth:`read` a bounded number of bytes at a time; each member
    of a multi-member gzip in turn, zero bytes between or after members being
    padding, as for :mod:`gzip`. A truncated or corrupt stream raises
    :class:`DataError` where it is reached."""

    def __init__(self, pieces, path, hint):
        self._pieces, self._path, self._hint = iter(pieces), path, hint
        self._data = b""         # compressed bytes not yet given to zlib (at most one piece)
        self._d = None           # the current member's decompressor; None between members
        self._held = False       # the last call filled its limit, so zlib may hold output back

    def read(self, n: int) -> bytes:
        """At most ``n`` (> 0) more bytes of the content; ``b""`` once it is all read."""
        try:
            while True:
                if self._d is None:
                    if not self._data:
                        self._data = next(self._pieces, b"")
                        if not self._data:
                            return b""
                    if self._data[0] == 0:                          # padding
                        self._data = bytes(self._data).lstrip(b"\x00")
                        continue
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif not self._data and not self._held:
                    self._data = next(self._pieces, b"")
                    if not self._data:
                        raise DataError(f"{self._path}: truncated or corrupt gzip (it ends inside its "
                                        f"compressed data){_fix(self._hint)}")
                out = self._d.decompress(self._data, n)
                self._held = len(out) == n
                if self._d.eof:
                    self._data, self._d = self._d.unused_data, None
                else:
                    self._data = self._d.unconsumed_tail
                if out:
                    return out
        except zlib.error as exc:
            raise DataError(f"{self._path}: truncated or corrupt gzip ({exc}){_fix(self._hint)}") from None


def _pieces(raw: bytes):
    view = memoryview(raw)
    return (view[i:i + _IN] for i in range(0, len(raw), _IN))


def decompress(raw: bytes, path, hint: str = "", magic: int | None = None):
    """``raw`` itself, or its gunzipped content when it starts with the gzip magic bytes.

    The content must be IDX (``magic``, or any unsigned-byte IDX file when
    ``None``); inflation stops with :class:`DataError` naming ``path`` as soon
    as the output passes what its header's shape needs by more than a few
    bytes, or at a wrong magic number. A header declaring more than
    ``max(_TRUST, _RATIO * len(raw))`` bytes is checked first by inflating
    without keeping the output: a payload of another length then raises the
    error :func:`parse_idx` would. Memory used: at most the header's size, and
    never more than ``max(_TRUST, _RATIO * len(raw))`` (plus a few hundred KB)
    for a file whose content is not what its header says. A truncated or
    corrupt gzip raises :class:`DataError` too."""
    if raw[:2] != _GZIP_MAGIC:
        return raw
    stream = _Gunzip(_pieces(raw), path, hint)
    out = bytearray()
    while (header := _header(out, path, magic, hint, final=False)) is None:
        piece = stream.read(_OUT)       # as much as the stream holds, up to _OUT: a small member in one call
        if not piece:
            return out                  # shorter than its header: parse_idx says so
        out += piece
    dims, size = header
    needed = math.prod(dims)
    total = size + needed
    limit = total + _MARGIN

    def check(count):
        if count > limit:
            raise DataError(f"{path}: inflates to more than {limit} bytes, though its header's shape {dims} "
                            f"needs {needed} after the {size}-byte header: the header does not describe "
                            f"this file (refusing to inflate the rest){_fix(hint)}")

    if total > max(_TRUST, _RATIO * len(raw)):
        # count what it inflates to, keeping nothing; only a payload of the declared length is kept
        count = len(out)
        while count <= limit and (piece := stream.read(min(_OUT, limit + 1 - count))):
            count += len(piece)
        check(count)
        if count != total:
            raise _wrong_length(path, dims, count - size, needed, hint)
        stream, head = _Gunzip(_pieces(raw), path, hint), b""
    else:
        head = out
    out = bytearray(total)              # filled in place: no growth, no copies; trimmed if shorter
    out[:len(head)] = head
    count, head = len(head), None
    while count <= limit and (piece := stream.read(min(_OUT, limit + 1 - count))):
        out[count:count + len(piece)] = piece
        count += len(piece)
    check(count)
    del out[count:]
    return out


def read_payload(path, hint: str = "", magic: int | None = None):
    """The bytes of ``path``, inflated (see :func:`decompress`) when it is gzip
    (detected by its magic bytes, not its name). A truncated or corrupt gzip
    raises :class:`DataError` naming the file; ``hint`` (what to do) ends the message."""
    path = Path(os.fspath(path))
    return decompress(path.read_bytes(), path, hint, magic)


def read_idx_header(path, magic: int, hint: str = "") -> tuple[int, ...]:
    """The shape an IDX file's header declares, reading (and inflating) only its first bytes."""
    path = Path(os.fspath(path))
    with open(path, "rb") as f:
        is_gzip = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not is_gzip:
            return _header(f.read(_HEAD), path, magic, hint)[0]
        stream, head = _Gunzip(iter(lambda: f.read(_IN), b""), path, hint), bytearray()
        while piece := stream.read(_HEAD):
            head += piece
            header = _header(head, path, magic, hint, final=False)
            if header is not None:
                return header[0]
    return _header(head, path, magic, hint)[0]


def parse_idx(payload, path, magic: int, hint: str = "") -> np.ndarray:
    """The uint8 array of an uncompressed IDX ``payload`` (bytes-like) whose magic
    number must be ``magic``; shape from the header. ``path`` is only used in messages."""
    dims, header = _header(payload, path, magic, hint)
    expected = math.prod(dims)
    actual = len(payload) - header
    if actual != expected:
        raise _wrong_length(path, dims, actual, expected, hint)
    try:
        return np.frombuffer(payload, dtype=np.uint8, count=expected, offset=header).reshape(dims)
    except ValueError as exc:        # an empty shape whose other sizes overflow NumPy's
        raise DataError(f"{path}: the header's shape {dims} is not an array shape ({exc}){_fix(hint)}") from None


def read_idx_images(path, hint: str = "") -> np.ndarray:
    """Images of an idx3-ubyte file (gz or raw): uint8 array (N, rows, cols)."""
    images = parse_idx(read_payload(path, hint, IMAGES_MAGIC), path, IMAGES_MAGIC, hint)
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(f"{path}: images of size {images.shape[1]}x{images.shape[2]}{_fix(hint)}")
    return images


def read_idx_labels(path, num_classes: int = 10, hint: str = "") -> np.ndarray:
    """Labels of an idx1-ubyte file (gz or raw): uint8 array (N,), each in
    ``0 .. num_classes-1`` (else :class:`DataError` naming the first offender)."""
    labels = parse_idx(read_payload(path, hint, LABELS_MAGIC), path, LABELS_MAGIC, hint)
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
