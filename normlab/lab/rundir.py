"""The run directory on disk: its files, who may write it, what a killed writer leaves behind.

Layout (written by :mod:`normlab.reproduce`)::

    OUT/config.json                      CONFIG_FILE: resolved configs, code version, datasets, jobs
    OUT/runs.sqlite                      STORE_FILE: the run store (:mod:`normlab.lab.store`)
    OUT/runs/<experiment>/<name>.json    each run's spec and result (:func:`history_path`)
    OUT/<experiment>/*.png, *.svg        figures drawn by the recipe's analyze()
    OUT/metrics.json                     METRICS_FILE: every recipe's key numbers
    OUT/report.md, OUT/report.html       the report (:mod:`normlab.lab.report`)

Checks made before a command writes anything: :func:`check_writable` (a file
can be created in it), :func:`refuse_not_empty` (a new run needs an empty
directory), :func:`load_config` (``--resume`` and ``report`` need a run
directory's ``config.json``). :func:`clear` and :func:`remove_dir_if_empty`
undo what a failed new run wrote. A store that lost rows is refilled from
the run histories by :func:`restore_from_histories`.

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
import shutil
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["CONFIG_FILE", "STORE_FILE", "METRICS_FILE", "CONFIG_FORMAT", "LOCK_FILE", "PROBE_PREFIX",
           "RunDirError", "RunDirBusy", "RunDirLock", "remove_stale_temporaries",
           "check_writable", "is_empty", "refuse_not_empty", "load_config", "write_json", "history_path",
           "open_store", "has_results", "clear", "remove_dir_if_empty", "restore_from_histories"]

CONFIG_FILE = "config.json"
STORE_FILE = "runs.sqlite"
METRICS_FILE = "metrics.json"
CONFIG_FORMAT = "normlab-run-dir"         # config.json's "format": what marks a run directory
LOCK_FILE = ".normlab.lock"
PROBE_PREFIX = ".normlab-write-test."     # check_writable's probe
# atomic_write's temporaries (mkstemp: prefix ".NAME.", 8 random characters, suffix ".tmp")
# and the writability probe of check_writable.
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


# ---------------------------------------------------------------- checks before the first byte

def check_writable(out: Path) -> None:
    """Create ``out`` if needed and prove a file can be created in it; RunDirError otherwise.
    Nothing that already exists is modified."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=PROBE_PREFIX)
        os.close(fd)
        try:
            os.unlink(probe)
        except FileNotFoundError:
            pass      # the directory's lock holder cleared it as a stale temporary
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunDirError(f"cannot write to {out}: {reason}"
                          f"{f' ({exc.filename})' if exc.filename and str(exc.filename) != str(out) else ''}; "
                          f"choose another --out") from None


def is_empty(out: Path) -> bool:
    """No directory, or one holding nothing but a lock file and other commands' write probes."""
    return not out.is_dir() or all(p.name == LOCK_FILE or p.name.startswith(PROBE_PREFIX) for p in out.iterdir())


def refuse_not_empty(out: Path) -> None:
    """RunDirError unless ``out`` :func:`is_empty` (a new run never mixes into an old one)."""
    if not is_empty(out):
        raise RunDirError(f"{out} already exists and is not empty; pass --resume {out} to finish "
                          f"that run, or choose a new --out")


def load_config(run_dir: Path) -> dict:
    """``run_dir``'s ``config.json``, checked to be a run directory's; RunDirError naming
    the file and the repair otherwise (its experiments are checked by
    :func:`normlab.lab.plan.plans_from_config`)."""
    path = run_dir / CONFIG_FILE
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} is not a normlab run directory (no {CONFIG_FILE})") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise RunDirError(f"cannot read {path}: {exc}; restore it from a backup or start a new run "
                          f"directory (`normlab reproduce --out NEW`)") from None
    if not isinstance(stored, dict) or stored.get("format") != CONFIG_FORMAT:
        raise RunDirError(f"{path} is not a normlab run configuration")
    return stored


# ---------------------------------------------------------------- files in it

def write_json(path: Path, obj) -> None:
    """Strict JSON (NaN -> null) into ``path``, atomically (temporary file + rename)."""
    from .._io import write_json_atomic
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, obj)


_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,@-]")


def history_path(out: Path, spec) -> Path:
    """``OUT/runs/<experiment>/<name>.json``; each '/'-separated part of the name a folder,
    anything outside ``[A-Za-z0-9._=+,@-]`` replaced by '_' (no part may be '..')."""
    parts = [_UNSAFE.sub("_", p) or "_" for p in spec.name.split("/")]
    parts = ["_" + p if p in (".", "..") else p for p in parts]
    return out.joinpath("runs", _UNSAFE.sub("_", spec.experiment), *parts[:-1], parts[-1] + ".json")


def open_store(out: Path, create: bool = True):
    """The run store ``OUT/runs.sqlite`` (a :class:`~normlab.lab.store.RunStore`)."""
    from .store import RunStore
    return RunStore(out / STORE_FILE, create=create)


def has_results(out: Path) -> bool:
    """Whether ``out`` holds a run store with any row (True when that cannot be told)."""
    if not (out / STORE_FILE).is_file():
        return False
    try:
        with open_store(out, create=False) as store:
            return len(store) > 0
    except ValueError:
        return True      # cannot tell: keep everything


def clear(out: Path) -> None:
    """Remove what this call wrote into ``out`` (which was empty when it was locked)."""
    for p in out.iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except OSError:
                pass


def remove_dir_if_empty(out: Path) -> None:
    try:
        out.rmdir()
    except OSError:
        pass


def restore_from_histories(out: Path, store, specs: dict) -> list:
    """Put back into ``store`` the finished (or diverged) runs of ``specs``
    ({spec_hash: RunSpec}) that have a valid history file but no row (a store
    emptied or replaced); returns their names, ``experiment/name``."""
    from .runs import RunResult, RunSpec
    from .store import DONE_STATUSES
    present = store.hashes()
    restored = []
    for h, spec in specs.items():
        path = history_path(out, spec)
        if h in present or not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text())
            if RunSpec.from_dict(doc["spec"]).spec_hash != h:
                continue
            result = RunResult.from_dict(doc["result"])
        except (OSError, ValueError, TypeError, KeyError, RecursionError):
            continue     # not a usable history: the run is trained again
        if result.spec_hash == h and result.status in DONE_STATUSES:
            store.put(spec, result)
            restored.append(f"{spec.experiment}/{spec.name}")
    return restored
