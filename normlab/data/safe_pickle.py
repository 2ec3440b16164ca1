"""An unpickler that can rebuild only plain containers and plain numeric NumPy arrays.

CIFAR-10's python batches are pickles, and ``pickle.load`` runs whatever a
pickle names (``os.system``, ``builtins.eval``, ...). Dicts, lists, tuples,
strings, bytes and numbers are built by pickle opcodes without naming any
callable; everything else goes through :meth:`SafeUnpickler.find_class`, which
resolves only the names NumPy's own pickles use, each to a wrapper of ours:

* every dtype is plain numeric: kinds ``b i u f c`` (bool, int, uint, float,
  complex). Object, structured, string and datetime dtypes are refused,
  whichever call asks for them (``numpy.dtype``, ``numpy.ndarray``, a state).
* every array is a fresh, C- or Fortran-ordered copy of bytes the pickle
  itself holds: no array without a buffer (that would be uninitialised
  memory), no strides but the contiguous ones, no buffer shorter than its array.
* the bytes built in one load (arrays, scalars, ``_codecs.encode`` output) are
  at most twice the pickle's size + 4 KiB. An honest protocol-2 pickle passes
  each array's bytes once through ``_codecs.encode`` and once into the array,
  so nothing honest needs more; anything that would amplify is refused.
* the unpickler never holds a NumPy object. NumPy's own ``__setstate__``
  (what the BUILD opcode calls) would let a pickle give a dtype object fields,
  even object ones (mutating NumPy's ``uint8`` singleton with ``copy=False``),
  or refill an array over an object dtype. The wrappers hand the unpickler
  placeholders whose ``__setstate__`` is ours; they are replaced by the real
  arrays, scalars and dtypes when loading ends.

The unpickler is Python's pure-Python one, reading through a file wrapper
that refuses any length past the end of the file. The C unpickler resizes
(and zeroes) its memo table to the largest memo index a pickle names, so a
9-byte pickle can take gigabytes. It also reserves every declared length
before reading it.
"""
from __future__ import annotations

import _codecs
import io
import math
import os
import pickle
import reprlib
import struct

import numpy as np

from .errors import DataError

__all__ = ["SafeUnpickler", "safe_load", "safe_loads"]

_KINDS = "biufc"            # bool, signed and unsigned integers, floats, complex
_MAX_DEPTH = 100            # containers nested deeper are not a dataset
_SLACK = 4096               # bytes allowed beyond twice the pickle (tiny pickles of scalars)

_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 40


def _refuse(why: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(why)


# ------------------------------------------------------------------ validation

def _numeric_dtype(spec) -> np.dtype:
    """The plain numeric dtype ``spec`` names: a placeholder from ``numpy.dtype``
    or a type string such as ``'u1'`` or ``'<f4'``; anything else is refused."""
    if isinstance(spec, _Dtype):
        return spec.value
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str):
        raise _refuse(f"refusing dtype {_brief.repr(spec)}: only type names such as 'u1' or '<f4'")
    try:
        dt = np.dtype(spec)
    except (TypeError, ValueError, Warning):      # Warning: deprecated aliases under -W error
        raise _refuse(f"refusing dtype {_brief.repr(spec)}: not a NumPy type name") from None
    if dt.kind not in _KINDS or dt.fields is not None or dt.subdtype is not None:
        raise _refuse(f"refusing dtype {dt} (kind {dt.kind!r}): only plain numeric dtypes "
                      "(bool, int, uint, float, complex)")
    return dt


def _shape(shape) -> tuple:
    if type(shape) is int:
        shape = (shape,)
    if (not isinstance(shape, (tuple, list)) or len(shape) > 64
            or any(type(d) is not int or d < 0 for d in shape)):
        raise _refuse(f"refusing array shape {_brief.repr(shape)}: expected a tuple of at most "
                      "64 non-negative integers")
    return tuple(shape)


def _raw(buf):
    """The bytes of an array buffer as pickles carry it: bytes, bytearray
    (protocol 5) or latin-1 text (Python 2 pickles read with encoding='latin1')."""
    if isinstance(buf, (bytes, bytearray)):
        return buf
    if isinstance(buf, str):
        try:
            return buf.encode("latin1")
        except UnicodeEncodeError:
            raise _refuse("refusing an array buffer given as text beyond latin-1") from None
    raise _refuse(f"refusing array buffer {_brief.repr(buf)}: arrays are built only from bytes "
                  "the pickle holds")


def _contiguous_strides(shape, itemsize, order) -> tuple:
    dims = shape if order == "C" else shape[::-1]
    strides, step = [], itemsize
    for d in reversed(dims):
        strides.append(step)
        step *= d
    strides.reverse()
    return tuple(strides) if order == "C" else tuple(strides[::-1])


# ------------------------------------------------------------------ placeholders

class _Slot:
    """What the unpickler holds instead of a NumPy object built by an
    allow-listed call. BUILD reaches only this ``__setstate__``, never NumPy's.
    Unhashable, so never a dict key or set member; :func:`_resolve` swaps it for
    ``value`` after loading."""
    __slots__ = ("value",)
    __hash__ = None

    def __init__(self, value=None):
        self.value = value

    def __setstate__(self, state):
        raise _refuse(f"refusing to set the state of a finished {type(self.value).__name__}")


class _Dtype(_Slot):
    """``numpy.dtype(name)``: BUILD may give it a byte order, nothing else."""
    __slots__ = ()

    def __setstate__(self, state):
        # NumPy's state: (version, byteorder, subarray, names, fields, elsize, alignment,
        # flags[, metadata]); only the byte order means anything for a plain numeric dtype.
        if (not isinstance(state, tuple) or not 5 <= len(state) <= 9 or state[1] not in ("<", ">", "|", "=")
                or any(s is not None and type(s) not in (int, bool) for s in state[2:])):
            raise _refuse(f"refusing dtype state {_brief.repr(state)}: only a byte order")
        if state[1] in "<>" and self.value.itemsize > 1:
            self.value = self.value.newbyteorder(state[1])


class _PendingArray(_Slot):
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``: an array
    whose content is the state the next BUILD gives (once)."""
    __slots__ = ("builder",)

    def __init__(self, builder):
        super().__init__()
        self.builder = builder

    def __setstate__(self, state):
        if self.value is not None:
            raise _refuse("refusing to set an array's state twice")
        self.value = self.builder.array_from_state(state)


# ------------------------------------------------------------------ the allow-listed calls

class _Builder:
    """The allow-listed callables of one load, spending one byte budget."""

    def __init__(self, limit: int):
        self.limit, self.spent = limit, 0
        self.ndarray_global = self.ndarray       # one bound method, so _reconstruct can test identity

    def _spend(self, n: int) -> None:
        self.spent += n
        if self.spent > self.limit:
            raise _refuse(f"refusing to build more than {self.limit} bytes of arrays and buffers "
                          "(twice the pickle's size): a pickle this size cannot hold them")

    def _array(self, buf, dtype, shape, order="C", offset=0, exact=True) -> np.ndarray:
        """A copy of the ``shape`` array of ``dtype`` stored at ``offset`` of ``buf``
        (all of ``buf`` when ``exact``)."""
        raw, dt, shape = _raw(buf), _numeric_dtype(dtype), _shape(shape)
        if order not in ("C", "F"):
            raise _refuse(f"refusing array order {_brief.repr(order)}: 'C' or 'F'")
        if type(offset) is not int or offset < 0:
            raise _refuse(f"refusing buffer offset {_brief.repr(offset)}")
        count = math.prod(shape)
        nbytes = count * dt.itemsize
        if offset + nbytes > len(raw) or (exact and offset + nbytes != len(raw)):
            raise _refuse(f"refusing a {shape} {dt} array: it needs {nbytes} bytes at offset {offset}, "
                          f"its buffer has {len(raw)}")
        self._spend(nbytes)
        try:
            flat = np.frombuffer(raw, dt, count=count, offset=offset)
            if dt.kind == "b":
                flat = flat.view(np.uint8) != 0    # a bool byte other than 0 or 1 is not a bool
            return flat.reshape(shape, order=order).copy(order="K")
        except ValueError as exc:                # e.g. an empty shape whose other sizes overflow
            raise _refuse(f"refusing a {shape} {dt} array: {exc}") from None

    def ndarray(self, shape, dtype="f8", buffer=None, offset=0, strides=None, order=None):
        """``numpy.ndarray(shape, dtype, buffer, offset, strides, order)`` over bytes only."""
        if buffer is None:
            raise _refuse("refusing numpy.ndarray without a buffer: its content would be "
                          "uninitialised memory")
        order = "C" if order is None else order
        if strides is not None:
            dt, dims = _numeric_dtype(dtype), _shape(shape)
            expected = _contiguous_strides(dims, dt.itemsize, order if order in ("C", "F") else "C")
            if not isinstance(strides, (tuple, list)) or tuple(strides) != expected:
                raise _refuse(f"refusing strides {_brief.repr(strides)}: only the contiguous {expected}")
        return _Slot(self._array(buffer, dtype, shape, order, offset, exact=False))

    def reconstruct(self, subtype, shape=None, typecode=None):
        """``_reconstruct(ndarray, (0,), b'b')``: protocol 0-4 arrays; the content comes by BUILD."""
        if subtype is not self.ndarray_global:
            raise _refuse(f"refusing _reconstruct of {_brief.repr(subtype)}: only numpy.ndarray")
        return _PendingArray(self)

    def array_from_state(self, state) -> np.ndarray:
        """The array of ``ndarray.__setstate__``'s ``(version, shape, dtype, is_fortran, rawdata)``."""
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4 or type(state[2]) not in (bool, int):
            raise _refuse(f"refusing array state {_brief.repr(state)}: expected "
                          "(version, shape, dtype, is_fortran, bytes)")
        shape, dtype, fortran, raw = state
        return self._array(raw, dtype, shape, "F" if fortran else "C")

    def frombuffer(self, buf, dtype, shape, order="C"):
        """``numpy._core.numeric._frombuffer``: protocol-5 arrays."""
        return _Slot(self._array(buf, dtype, shape, order))

    def scalar(self, dtype, obj=None):
        """``numpy._core.multiarray.scalar(dtype, bytes)``: a NumPy scalar."""
        dt, raw = _numeric_dtype(dtype), _raw(obj)
        if len(raw) != dt.itemsize:
            raise _refuse(f"refusing a {dt} scalar of {len(raw)} bytes (it has {dt.itemsize})")
        self._spend(dt.itemsize)
        return _Slot(np.frombuffer(raw, dt, count=1)[0])

    def dtype(self, obj, align=False, copy=False):
        """``numpy.dtype(name, align, copy)``; align and copy mean nothing for numeric dtypes."""
        return _Dtype(_numeric_dtype(obj))

    def encode(self, text, encoding="utf-8", errors="strict"):
        """``_codecs.encode(text, 'latin1')``: NumPy's protocol-2 pickles store buffers as
        latin-1 text; one output byte per character, counted against the budget."""
        if encoding not in ("latin1", "latin-1") or errors != "strict":
            raise _refuse(f"refusing _codecs.encode with encoding {_brief.repr(encoding)}")
        if not isinstance(text, str):
            raise _refuse(f"refusing _codecs.encode of {type(text).__name__}")
        self._spend(len(text))
        return _codecs.encode(text, "latin1")

    @staticmethod
    def empty_bytes(*args):
        """``bytes()``: how protocols 0-2 pickle ``b''`` (an empty array's buffer)."""
        if args:
            raise _refuse("refusing bytes() with arguments")
        return b""

    def table(self) -> dict:
        """``(module, name) -> callable`` of every name NumPy (1.x and 2.x) pickles use."""
        allowed = {("numpy", "ndarray"): self.ndarray_global, ("numpy", "dtype"): self.dtype,
                   ("_codecs", "encode"): self.encode, ("builtins", "bytes"): self.empty_bytes,
                   ("__builtin__", "bytes"): self.empty_bytes}
        for core in ("numpy.core", "numpy._core"):
            allowed[(f"{core}.multiarray", "_reconstruct")] = self.reconstruct
            allowed[(f"{core}.multiarray", "scalar")] = self.scalar
            allowed[(f"{core}.numeric", "_frombuffer")] = self.frombuffer
        return allowed


def _resolve(obj, seen: dict, depth: int = 0):
    """``obj`` with every placeholder replaced by the object it stands for
    (lists and dicts in place); refuses arrays whose state never came and
    nesting deeper than ``_MAX_DEPTH``."""
    if isinstance(obj, _Slot):
        if obj.value is None:
            raise _refuse("refusing numpy _reconstruct without its state: the array would be uninitialised")
        return obj.value
    kind = type(obj)
    if kind not in (list, dict, tuple, set, frozenset):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    if depth >= _MAX_DEPTH:
        raise _refuse(f"refusing containers nested more than {_MAX_DEPTH} deep")
    if kind is list:
        seen[id(obj)] = obj
        for i, item in enumerate(obj):
            obj[i] = _resolve(item, seen, depth + 1)
    elif kind is dict:
        seen[id(obj)] = obj
        for key, value in obj.items():
            _resolve(key, seen, depth + 1)        # keys are hashable: never placeholders, but may nest
            obj[key] = _resolve(value, seen, depth + 1)
    elif kind is tuple:
        items = tuple(_resolve(item, seen, depth + 1) for item in obj)
        seen[id(obj)] = obj if all(a is b for a, b in zip(items, obj)) else items
    else:
        seen[id(obj)] = obj
        for item in obj:
            _resolve(item, seen, depth + 1)
    return seen[id(obj)]


# ------------------------------------------------------------------ reading

def _remaining(file) -> int:
    """The bytes from ``file``'s position to its end."""
    try:
        here = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(here)
    except (AttributeError, OSError, ValueError):
        raise _refuse("needs a seekable file (its size bounds what the pickle may build)") from None
    return max(end - here, 0)


class _Capped:
    """``file`` that refuses to read past its end before reading anything, so
    a declared length (BINBYTES8, FRAME, ...) costs no more than the bytes present."""

    def __init__(self, file, left: int):
        self._file, self.left = file, left

    def read(self, n: int) -> bytes:
        if n > self.left:
            raise _refuse(f"pickle data was truncated (it needs {n} more bytes, the file has {self.left})")
        data = self._file.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._file.readline(self.left)
        self.left -= len(line)
        return line


class SafeUnpickler(pickle._Unpickler):
    """Python's unpickler whose ``find_class`` knows only NumPy's array and
    scalar helpers (wrapped, see the module docstring); any other global raises
    ``UnpicklingError``. ``file`` must be seekable: ``max_bytes`` (default:
    twice the bytes left in it + 4 KiB) bounds all arrays and buffers built."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, *, encoding: str = "latin1", max_bytes: int | None = None):
        left = _remaining(file)
        super().__init__(_Capped(file, left), encoding=encoding)
        self._builder = _Builder(2 * left + _SLACK if max_bytes is None else max_bytes)
        self._allowed = self._builder.table()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise _refuse(f"refusing to load global {module!s:.80}.{name!s:.80}: only plain "
                          "containers and NumPy arrays are allowed") from None

    def persistent_load(self, pid):
        raise _refuse("refusing persistent ids")

    def load(self):
        return _resolve(super().load(), {})

    def _load_bytearray8(self):
        # read before allocating: the stock loader zeroes a bytearray of the declared length first
        (n,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(n)))

    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8


_FAILURES = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
             KeyError, MemoryError, OverflowError, RecursionError, struct.error, Warning)


def safe_load(file, path="<pickle>", encoding: str = "latin1", max_bytes: int | None = None):
    """Unpickle from the seekable binary ``file`` with :class:`SafeUnpickler`;
    any refusal or corruption raises :class:`DataError` naming ``path``.
    ``encoding='latin1'`` reads Python 2 pickles (CIFAR-10's) as the course does."""
    try:
        return SafeUnpickler(file, encoding=encoding, max_bytes=max_bytes).load()
    except _FAILURES as exc:
        why = str(exc)[:300] or ("it ends before its STOP opcode" if isinstance(exc, EOFError)
                                 else type(exc).__name__)
        raise DataError(f"{path}: not a safe pickle of plain containers and arrays ({why})") from None


def safe_loads(data: bytes, path="<pickle>", encoding: str = "latin1", max_bytes: int | None = None):
    """:func:`safe_load` on bytes."""
    return safe_load(io.BytesIO(data), path, encoding, max_bytes)
