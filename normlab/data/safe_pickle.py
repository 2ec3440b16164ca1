"""An unpickler that can rebuild only plain containers and NumPy arrays.

CIFAR-10's python batches are pickles, and ``pickle.load`` runs whatever a
pickle names (``os.system``, ``builtins.eval``, ...). Dicts, lists, tuples,
strings, bytes and numbers are built by pickle opcodes without naming any
callable; everything else goes through :meth:`SafeUnpickler.find_class`, which
resolves only the names NumPy uses to pickle arrays and refuses the rest
before anything is called. Object arrays are refused too (they would need
arbitrary objects).
"""
from __future__ import annotations

import _codecs
import io
import pickle

import numpy as np

from .errors import DataError

__all__ = ["SafeUnpickler", "safe_load", "safe_loads"]

try:                                   # NumPy >= 2
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:                    # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric


def _dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError(f"refusing object dtype {dt}")
    return dt


def _latin1_encode(text, encoding="latin1", errors="strict"):
    # NumPy's protocol-2 pickles store raw buffers as latin-1 text; nothing else is needed.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return _codecs.encode(text, encoding, errors)


def _frombuffer(buf, dtype, shape, order):
    return _numeric._frombuffer(buf, _dtype(dtype), shape, order)


_ALLOWED = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = _multiarray.scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = _dtype
_ALLOWED[("_codecs", "encode")] = _latin1_encode


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` knows only NumPy's array
    reconstruction helpers; any other global raises ``UnpicklingError``."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only plain "
                                         "containers and NumPy arrays are allowed") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent ids")


def safe_load(file, path="<pickle>", encoding: str = "latin1"):
    """Unpickle from the binary ``file`` with :class:`SafeUnpickler`; any
    refusal or corruption raises :class:`DataError` naming ``path``.
    ``encoding='latin1'`` reads Python 2 pickles (CIFAR-10's) as the course does."""
    try:
        return SafeUnpickler(file, encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError) as exc:
        raise DataError(f"{path}: not a safe pickle of plain containers and arrays ({exc})") from None


def safe_loads(data: bytes, path="<pickle>", encoding: str = "latin1"):
    """:func:`safe_load` on bytes."""
    return safe_load(io.BytesIO(data), path, encoding)
