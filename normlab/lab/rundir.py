"""Who may write a run directory, and what a killed writer leaves behind.

One writer per run directory. :class:`RunDirLock` holds an exclusive OS
lock (``flock``) on ``OUT/.normlab.lock`` for the whole command
(``reproduce``, ``run``, ``reproduce --resume``, ``report``); a second
command on the same directory fails at once with :class:`RunDirBusy`, whose
one line names the holder's pid and command. The kernel drops the lock when
its holder dies, even by SIGKILL, so a stale lock file never blocks anyone:
the next command takes the lock and overwrites the pid.

Writes are atomic (a temporary file renamed into place, see
:func:`normlab._io.atomic_write`), so a writer killed mid-write leaves
the old file and a temporary ``.NAME.XXXXXXXX.tmp`` beside it.
:func:`remove_stale_temporaries` deletes those once the lock is held: no
other writer can own them then.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sys
import time
from pathlib import Path

__all__ = ["LOCK_FILE", "PROBE_PREFIX", "RunDirError", "RunDirBusy", "RunDirLock", "remove_stale_temporaries"]

LOCK_FILE = ".normlab.lock"
PROBE_PREFIX = ".normlab-write-test."     # normlab.reproduce's writability probe
# atomic_write's temporaries (mkstemp: prefix ".NAME.", 8 random characters, suffix ".tmp")
# and the writability probe of normlab.reproduce.
_STALE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|^\.normlab-write-test\.[A-Za-z0-9_]{8}$")


class RunDirError(ValueError):
    """The output directory cannot be used (not writable, not empty, not a run directory)."""


class RunDirBusy(RunDirError):
    """Another normlab process holds the run directory's lock."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {int(info['pid'])}, `{info.get('command', 'normlab')}` since {info.get('since', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunDirLock:
    """The exclusive lock of run directory ``out`` (which must exist), as a
    context manager. ``command`` is recorded for the error a second writer gets."""

    def __init__(self, out, command: str = "normlab"):
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> "RunDirLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise RunDirError(f"cannot create the lock file {self.path}: {exc.strerror}; "
                                  f"choose another --out") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirError(f"cannot lock {self.path}: {exc.strerror}") from None
                raise RunDirBusy(f"{self.out} is in use by another normlab ({_holder(self.path)}); "
                                 f"wait for it to finish or choose another --out") from None
            # The holder before us may have unlinked the file between our open and our
            # flock: then we hold a lock nobody else can see. Retry on the current file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = json.dumps({"pid": os.getpid(), "command": self.command,
                           "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)     # while still locked: nobody can take a lock on it meanwhile
        except OSError:
            pass
        os.close(self._fd)           # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_stale_temporaries(out) -> list[Path]:
    """Delete the temporaries of interrupted atomic writes anywhere under ``out``;
    returns what was removed. Call it only while holding :class:`RunDirLock`."""
    removed = []
    for root, _dirs, files in os.walk(out):
        for name in files:
            if _STALE.match(name):
                path = Path(root, name)
                try:
                    path.unlink()
                    removed.append(path)
                except OSError as exc:   # not ours to fight over; the next command retries
                    print(f"normlab: could not remove stale temporary {path}: {exc.strerror}", file=sys.stderr)
    return removed
