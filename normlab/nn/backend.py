"""Which code computes the kernels: the NumPy reference, or compiled Numba kernels.

The NumPy code is the readable reference of every equation; ``pip install
'normlab[fast]'`` adds Numba, and then the normalization layers (batch norm,
spatial batch norm, layer, group and instance norm, forward and backward),
the optimizer updates and the softmax loss run on fused kernels with the same
signatures, caches and dtypes (``normlab.nn.norm._jit``, ``normlab.nn._jit_ops``).

Choosing:

- ``NORMLAB_BACKEND=numpy`` (environment) or ``set_backend("numpy")`` turns the
  fast path off; ``"numba"`` asks for it (the default: used when installed).
- ``using("numpy")`` switches for a ``with`` block (tests compare the two).
- ``active()`` says which is in use.

Fallback: when Numba is missing (and was not asked for by name) or a kernel
cannot compile, normlab says so once per process (``FastBackendNotice``) and
computes with NumPy.

Compiled code is cached on disk (Numba's ``cache=True``) in the user cache
directory, ``$XDG_CACHE_HOME/normlab/numba`` (``~/.cache/normlab/numba``),
unless ``NUMBA_CACHE_DIR`` says otherwise: the first use compiles, later
processes load. ``python -m normlab.nn.warm`` compiles every kernel
(``make setup`` runs it). No kernel uses Numba's parallel mode, so Numba never
loads an OpenMP or TBB runtime beside torch's; large inputs are split into
blocks fixed by the shape and run on normlab's own thread pool (its count:
``normlab._threads.kernel_threads``), merged in block order, so the number of
threads never changes a result.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
import warnings
from contextlib import contextmanager

from .._paths import user_cache

__all__ = ["BACKEND_VAR", "BACKENDS", "MALLOC_VAR", "FastBackendNotice", "active", "fast", "set_backend", "using",
           "jit", "compiled", "available", "disable", "CompileErrors", "cache_dir"]

BACKEND_VAR = "NORMLAB_BACKEND"
BACKENDS = ("numba", "numpy")
MALLOC_VAR = "NORMLAB_MALLOC"
# glibc's mallopt: keep freed blocks up to this size in the heap rather than unmapping them.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20      # glibc's own ceiling for its adaptive threshold (64-bit)
TRIM_THRESHOLD = 256 << 20


def _tune_malloc() -> bool:
    """Let glibc reuse freed layer-sized blocks instead of returning them to the OS each step.

    Every training step frees and reallocates the same arrays (a layer's
    output, its gradient). glibc's adaptive policy returns blocks of several
    MiB to the OS and maps them again on the next step; each 4 KiB page of a
    fresh array is then a page fault on first touch. Measured here, batch
    norm forward + backward at (4096, 1024) float32: 8800 faults and 10.4 ms
    per call, against 0 faults and 3.9 ms with blocks up to ``MMAP_THRESHOLD``
    kept in the heap and up to ``TRIM_THRESHOLD`` of free heap retained. The
    cost: after a peak, up to TRIM_THRESHOLD of freed memory stays mapped for
    reuse instead of going back to the OS. ``NORMLAB_MALLOC=system`` leaves
    glibc's defaults. Not glibc (macOS, musl): nothing to do.
    """
    if os.environ.get(MALLOC_VAR, "").strip().lower() == "system" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # pragma: no cover - static or unusual libc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


MALLOC_TUNED = _tune_malloc()


class FastBackendNotice(UserWarning):
    """The Numba backend is unavailable or failed to compile; NumPy computes instead."""


def cache_dir() -> str:
    """Where compiled kernels are cached unless NUMBA_CACHE_DIR says otherwise: the user cache's numba/."""
    return str(user_cache() / "numba")


def _requested() -> str:
    name = os.environ.get(BACKEND_VAR, "").strip().lower() or "numba"
    if name not in BACKENDS:
        raise ValueError(f"{BACKEND_VAR}={os.environ[BACKEND_VAR]!r} is not a backend; "
                         f"expected one of {', '.join(BACKENDS)}")
    return name


def _import_numba():
    # The user cache, not a __pycache__ beside normlab's sources, unless NUMBA_CACHE_DIR says
    # where. Numba reads the variable at its import and looks at config.CACHE_DIR when a
    # cached function is defined, so both are set: an earlier `import numba` (a test's
    # importorskip, the user's own) keeps its config otherwise. Children inherit the variable.
    preset = bool(os.environ.get("NUMBA_CACHE_DIR"))
    if not preset:
        os.environ["NUMBA_CACHE_DIR"] = cache_dir()
    try:
        import numba
    except Exception as exc:   # ImportError, or a numba that does not load with this NumPy
        return None, exc
    if not preset:
        numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
    return numba, None


def _lock_cache_writes() -> bool:
    """Make Numba's on-disk cache safe for processes compiling the same function at once.

    Numba numbers a function's compiled versions in an index file that each
    process reads, extends and rewrites; two processes compiling different
    signatures at the same time (pytest-xdist workers, sweep workers) can
    both take number 1, and the index then names the other's machine code
    for a signature ("can't unbox array", or worse). Here a save holds an
    exclusive lock on ``<index>.lock`` while it re-reads the index, writes the
    data file and then the index, so an index never names a file that is not
    written yet. Loads need no lock: a name, once given to a signature, keeps
    it. Patches ``numba.core.caching.IndexDataCacheFile.save`` (POSIX only).
    """
    try:
        import fcntl
        from numba.core.caching import IndexDataCacheFile
    except ImportError:   # pragma: no cover - Windows, or a Numba without this class
        return False
    if getattr(IndexDataCacheFile, "_normlab_locked", False):
        return True

    def save(self, key, data):
        os.makedirs(self._cache_path, exist_ok=True)
        with open(self._index_path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            overloads = self._load_index()
            name = overloads.get(key)
            if name is None:
                taken, number = set(overloads.values()), 1
                while self._data_name(number) in taken:
                    number += 1
                name = overloads[key] = self._data_name(number)
            self._save_data(name, data)
            self._save_index(overloads)

    IndexDataCacheFile.save = save
    IndexDataCacheFile._normlab_locked = True
    return True


_numba, _import_error = _import_numba()
CACHE_LOCKED = _numba is not None and _lock_cache_writes()
_state = {"backend": _requested(), "noticed": False, "failed": None}

# What a kernel raises when it cannot be compiled for the arguments it was given.
if _numba is not None:
    from numba.core.errors import NumbaError as _NumbaError
    CompileErrors: tuple[type[BaseException], ...] = (_NumbaError,)
else:
    CompileErrors = ()


def available() -> bool:
    """True when Numba imported and no kernel has failed to compile."""
    return _numba is not None and _state["failed"] is None


def _notice(message: str) -> None:
    if not _state["noticed"]:
        _state["noticed"] = True
        warnings.warn(message, FastBackendNotice, stacklevel=3)


def _missing() -> None:
    _notice(f"normlab: Numba is not installed ({_import_error}); the NumPy reference computes. "
            f"Install the fast kernels with: pip install 'normlab[fast]' (or set {BACKEND_VAR}=numpy)")


def active() -> str:
    """``'numba'`` when the fast kernels compute, else ``'numpy'``."""
    return "numba" if fast() else "numpy"


def fast() -> bool:
    """Is the Numba backend in use? Asked on every kernel call; says once when Numba is missing."""
    if _state["backend"] != "numba":
        return False
    if _numba is None:
        _missing()
        return False
    return _state["failed"] is None


def set_backend(name: str) -> str:
    """Use ``'numba'`` or ``'numpy'`` from now on; returns the previous choice."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    previous, _state["backend"] = _state["backend"], name
    return previous


@contextmanager
def using(name: str):
    """``with using('numpy'):`` computes the body on that backend."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def disable(exc: BaseException) -> None:
    """A kernel failed to compile: NumPy from now on, said once."""
    _state["failed"] = exc
    _notice(f"normlab: a Numba kernel failed to compile ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            f"the NumPy reference computes from now on")


def compiled(kernel, *args):
    """``kernel(*args)``, or None when it cannot be compiled for them (the backend is then off).

    Every fast path calls its kernels through this, and computes with NumPy on None.
    """
    try:
        return kernel(*args)
    except CompileErrors as exc:
        disable(exc)
        return None


def jit(fastmath=False):
    """``numba.njit`` with normlab's options (on-disk cache, no GIL), or the plain function without Numba."""
    def wrap(fn):
        if _numba is None:
            return fn
        return _numba.njit(cache=True, nogil=True, fastmath=fastmath, error_model="numpy")(fn)
    return wrap
