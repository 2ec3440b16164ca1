"""The one thread policy: how many threads BLAS, OpenMP and normlab's own kernels use.

Results must not depend on thread timing, and two processes sharing two cores
must not each start two BLAS threads. So:

- ``pin_blas_threads()`` sets every BLAS/OpenMP variable (``THREAD_VARS``) to 1
  before NumPy is first imported (the CLI's first act); children inherit it.
- ``blas_threads(n)`` limits the BLAS of a running process (threadpoolctl, else
  OpenBLAS's own ``set_num_threads``): the serial sweep runs under it.
- ``WORKER_ENV`` is the environment of every sweep worker process: one BLAS
  thread and one kernel thread each (``worker_environ()`` applies it while
  workers start).
- ``kernel_threads()``: the threads of the blocked normalization kernels
  (``normlab.nn.norm._kernels``): ``NORMLAB_NUM_THREADS``, else every CPU this
  process may use. Their blocks are merged in a fixed order, so the count
  changes speed, never a result.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading
import warnings
from contextlib import contextmanager
from functools import lru_cache

__all__ = ["THREAD_VARS", "KERNEL_THREADS_VAR", "WORKER_ENV", "pin_blas_threads", "available_cpus",
           "kernel_threads", "blas_threads", "worker_environ", "BlasThreadsWarning"]

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
KERNEL_THREADS_VAR = "NORMLAB_NUM_THREADS"
# Set before a worker imports numpy: one thread of everything per worker process.
WORKER_ENV = {var: "1" for var in THREAD_VARS + (KERNEL_THREADS_VAR,)}


def pin_blas_threads() -> bool:
    """Set every BLAS/OpenMP thread variable to 1; True when it can still take
    effect in this process (NumPy not imported yet). Child processes inherit it."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    return "numpy" not in sys.modules


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_parsed: dict[str, int] = {}


def kernel_threads() -> int:
    """Threads for the normalization kernels: NORMLAB_NUM_THREADS, else ``available_cpus()``.

    Read on every kernel call (a test or a worker may set it at any time); a
    value once parsed is remembered, since this runs several times per layer call.
    """
    env = os.environ.get(KERNEL_THREADS_VAR)
    if not env:
        return available_cpus()
    n = _parsed.get(env)
    if n is None:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{KERNEL_THREADS_VAR} must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"{KERNEL_THREADS_VAR} must be a positive integer, got {env!r}")
        _parsed[env] = n
    return n


class BlasThreadsWarning(UserWarning):
    """The BLAS thread count could not be pinned: results may differ in the last bits."""


# -- BLAS threads ------------------------------------------------------------------------------
_OPENBLAS_SYMBOLS = [(f"{p}set_num_threads{s}", f"{p}get_num_threads{s}")
                     for p in ("scipy_openblas_", "openblas_") for s in ("64_", "")]


@lru_cache(maxsize=None)
def _openblas_controls():
    """(set, get) of the OpenBLAS numpy loaded, or None (another BLAS, or not found)."""
    import numpy as np
    paths = []
    try:
        with open("/proc/self/maps") as maps:   # the libraries actually loaded (Linux)
            paths = sorted({line.split(maxsplit=5)[5].strip() for line in maps
                            if "openblas" in line.lower() and len(line.split(maxsplit=5)) == 6})
    except OSError:
        pass
    if not paths:   # macOS and others: the copy bundled in the numpy wheel
        root = os.path.dirname(np.__file__)
        paths = sorted(glob.glob(os.path.join(root, "..", "numpy.libs", "*openblas*"))
                       + glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                return setter, getter
    return None


def _env_pinned() -> bool:
    return all(os.environ.get(k) == "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))


@contextmanager
def blas_threads(n: int = 1, *, restore: bool = True):
    """Run the body with the BLAS of this process limited to ``n`` threads.

    Uses threadpoolctl when installed, else OpenBLAS's ``set_num_threads``.
    Warns ``BlasThreadsWarning`` when neither applies and the environment was
    not pinned before start-up. ``restore=False`` leaves the limit in place
    (Dask workers, where threads of one process would race to restore it).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        limiter = threadpool_limits(limits=n, user_api="blas")
        try:
            yield
        finally:
            if restore:
                limiter.restore_original_limits()
        return
    controls = _openblas_controls()
    if controls is None:
        if not _env_pinned():
            warnings.warn("could not limit the BLAS to one thread in this process (no threadpoolctl, not "
                          "OpenBLAS): serial results may differ in the last bits from parallel ones. Set "
                          "OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1 before starting Python",
                          BlasThreadsWarning, stacklevel=3)
        yield
        return
    setter, getter = controls
    before = getter()
    setter(n)
    try:
        yield
    finally:
        if restore:
            setter(before)


_environ_lock = threading.Lock()


@contextmanager
def worker_environ():
    """os.environ with WORKER_ENV while workers are started ('spawn' copies it)."""
    with _environ_lock:
        saved = {k: os.environ.get(k) for k in WORKER_ENV}
        os.environ.update(WORKER_ENV)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
