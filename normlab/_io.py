"""Every file normlab writes goes through here: atomically, or not at all.

``atomic_write(path, write)`` calls ``write(f)`` on a temporary file in the same
directory (named ``.NAME.XXXXXXXX.tmp``; ``normlab.lab.rundir`` sweeps stale
ones), flushes and fsyncs it and ``os.replace``-s it onto ``path``, then fsyncs
the directory. A reader therefore sees the previous file or the new one, never
half a file, even if the process is killed mid-write. An OSError (disk full,
no permission, read-only file system) comes back as one line naming ``path``
and the repair, with the same ``errno``.

On top of it: ``write_text_atomic`` (UTF-8 text) and ``write_json_atomic``
(strict JSON: NaN and +-inf become null, numpy scalars and arrays become
numbers and lists, anything else refused before the file is touched).
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["atomic_write", "write_text_atomic", "write_json_atomic", "to_json"]


def atomic_write(path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, fsync it and
    rename it onto ``path``. On any error the temporary file is removed and
    ``path`` is untouched; an OSError (disk full, no permission) is raised again
    as one naming ``path``, with the same ``errno``."""
    path = Path(os.fspath(path))
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        # mkstemp creates 0600; give the file the mode open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, _WriteError):
            raise _write_error(path, exc) from None
        raise
    _fsync_dir(directory)


class _WriteError(OSError):
    """An OSError whose message names the file being written (and keeps its errno)."""

    def __init__(self, message: str, errno_: int | None, filename: str):
        super().__init__(errno_, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _write_error(path: Path, exc: OSError) -> OSError:
    hint = {errno.ENOSPC: "free some disk space and run the command again",
            errno.EDQUOT: "free some of your disk quota and run the command again",
            errno.EACCES: "make the directory writable or choose another one",
            errno.EROFS: "the file system is read-only: choose another directory"}.get(exc.errno)
    return _WriteError(f"cannot write {path}: {exc.strerror or exc}" + (f"; {hint}" if hint else ""),
                       exc.errno, os.fspath(path))


def _umask() -> int:
    try:   # Linux reports it without changing it (os.umask would, briefly, for every thread)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file renamed into place."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def _plain(obj, where="$"):
    """``obj`` as plain JSON types: numpy scalars/arrays unwrapped, tuples as
    lists, NaN and +-inf as None (the convention of ``RunResult`` histories)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON keys must be strings; got {k!r} ({type(k).__name__}) at {where}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return _plain(obj.item(), where)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} at {where} as JSON; convert it to numbers, "
                    f"strings, lists or dicts first")


def to_json(obj, **dumps_kwargs) -> str:
    """Strict JSON text of ``obj`` (see ``write_json_atomic`` for the conversions)."""
    return json.dumps(_plain(obj), allow_nan=False, **dumps_kwargs)


def write_json_atomic(path, obj, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically and return the path.

    The text goes to a temporary file in the same directory, is fsynced and
    ``os.replace``-d onto ``path``: a reader sees the previous file or the new
    one, never a partial file, even if the process is killed mid-write.
    NaN and +-inf become null (invalid JSON is never written); numpy scalars
    and arrays become numbers and lists; anything else not JSON-able raises
    ``TypeError`` naming where it is, before the file is touched.
    """
    path = Path(path)
    data = (to_json(obj, indent=indent, sort_keys=False) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))
    return path
