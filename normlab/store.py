"""The run store: every training run of a run directory in one SQLite file.

``RunStore(path)`` keeps one row per run, keyed by ``RunSpec.spec_hash``::

    runs(spec_hash TEXT PRIMARY KEY, experiment, name, seed, status,
         spec_json, result_json, started_at, finished_at, seconds, code_version)

``status`` is 'running' (started, no result yet), or a ``RunResult`` status:
'finished', 'diverged' or 'failed'. ``spec_json`` and ``result_json`` are
strict JSON (``RunSpec.to_dict()`` / ``RunResult.to_dict()``, non-finite
floats stored as null), so the report can be rebuilt and runs compared without
retraining, and without unpickling anything. Times are Unix seconds (UTC).

Every write is one transaction in WAL mode with ``synchronous=FULL``: a
process killed in the middle of a write leaves the previous state, and
readers (``normlab report`` while a sweep runs) never see half a row.
A store is meant to have one writer (the sweep's parent process); readers may
be many.

``write_json_atomic(path, obj)`` writes the run directory's JSON files (metrics,
resolved configs, histories) with the same guarantee: a reader sees the old
file or the new one, never a partial one.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write
from .experiments.base import STATUSES, RunResult, RunSpec

__all__ = ["RunStore", "write_json_atomic", "to_json", "SCHEMA_VERSION", "DONE_STATUSES"]

SCHEMA_VERSION = 1
# What resume skips: a diverged run is a result (the course's weight-scale
# curve needs them); 'failed' and 'running' (killed mid-run) are redone.
DONE_STATUSES = ("finished", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    spec_hash    TEXT PRIMARY KEY,
    experiment   TEXT NOT NULL,
    name         TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'diverged', 'failed')),
    spec_json    TEXT NOT NULL,
    result_json  TEXT,
    started_at   REAL,
    finished_at  REAL,
    seconds      REAL,
    code_version TEXT
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment, name);
"""


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


class RunStore:
    """Every training run of a run directory, in a SQLite file (see the module doc).

    ``RunStore(path)`` creates the file and schema if missing (and the parent
    directory). Use it as a context manager or call ``close()``. Not shared
    between threads or processes: open one per process.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per write.
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                self.close()
                raise ValueError(f"{self.path} is a run store of schema version {version}; this normlab "
                                 f"reads version {SCHEMA_VERSION}. Use a new run directory or a matching normlab")
            if version == 0:  # new file: create the schema (readers of an existing store never write)
                with self._transaction():
                    for stmt in filter(str.strip, _SCHEMA.split(";")):
                        self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ValueError(f"cannot open run store {self.path}: {exc}. Is it a normlab run store "
                             f"(runs.sqlite)? Move it aside or choose another run directory") from exc

    # -- plumbing ---------------------------------------------------------------
    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError(f"run store {self.path} is closed; open a new RunStore")
        return self._db

    def _transaction(self):
        return _Transaction(self._conn)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if getattr(self, "_db", None) is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- writes -------------------------------------------------------------------
    def mark_started(self, spec: RunSpec) -> None:
        """Record that ``spec`` is being (re)executed now: status 'running', no result."""
        now = time.time()
        with self._transaction():
            self._conn.execute(
                """INSERT INTO runs (spec_hash, experiment, name, seed, status, spec_json, started_at)
                   VALUES (?, ?, ?, ?, 'running', ?, ?)
                   ON CONFLICT (spec_hash) DO UPDATE SET
                     status='running', result_json=NULL, started_at=excluded.started_at,
                     finished_at=NULL, seconds=NULL""",
                (spec.spec_hash, spec.experiment, spec.name, spec.seed, to_json(spec.to_dict()), now))

    def put(self, spec: RunSpec, result: RunResult) -> None:
        """Store ``result`` as the outcome of ``spec`` (insert or replace), atomically.

        Raises ``ValueError`` if the result belongs to another spec or has an
        unknown status."""
        if result.spec_hash != spec.spec_hash:
            raise ValueError(f"result of run {result.name!r} (hash {result.spec_hash[:12]}) does not belong "
                             f"to spec {spec.name!r} (hash {spec.spec_hash[:12]})")
        if result.status not in STATUSES:
            raise ValueError(f"unknown run status {result.status!r}; expected one of {', '.join(STATUSES)}")
        now = time.time()
        with self._transaction():
            self._conn.execute(
                """INSERT INTO runs (spec_hash, experiment, name, seed, status, spec_json, result_json,
                                     started_at, finished_at, seconds, code_version)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (spec_hash) DO UPDATE SET
                     status=excluded.status, spec_json=excluded.spec_json,
                     result_json=excluded.result_json,
                     started_at=COALESCE(runs.started_at, excluded.started_at),
                     finished_at=excluded.finished_at, seconds=excluded.seconds,
                     code_version=excluded.code_version""",
                (spec.spec_hash, spec.experiment, spec.name, spec.seed, result.status,
                 to_json(spec.to_dict()), to_json(result.to_dict()), now - float(result.seconds or 0.0),
                 now, float(result.seconds or 0.0), result.code_version))

    # -- reads ------------------------------------------------------------------------
    def get(self, spec_hash: str) -> RunResult | None:
        """The stored result of the run ``spec_hash``; None if absent or still running."""
        row = self._conn.execute("SELECT result_json FROM runs WHERE spec_hash=?", (spec_hash,)).fetchone()
        return RunResult.from_dict(json.loads(row[0])) if row and row[0] is not None else None

    def results(self, experiment: str | None = None) -> list[tuple[RunSpec, RunResult]]:
        """``(spec, result)`` of every run with a result (any status but 'running'),
        of one experiment or of all, ordered by experiment then name."""
        sql = "SELECT spec_json, result_json FROM runs WHERE result_json IS NOT NULL"
        args: tuple = ()
        if experiment is not None:
            sql, args = sql + " AND experiment=?", (experiment,)
        rows = self._conn.execute(sql + " ORDER BY experiment, name", args).fetchall()
        return [(RunSpec.from_dict(json.loads(s)), RunResult.from_dict(json.loads(r))) for s, r in rows]

    def done_hashes(self) -> set[str]:
        """Hashes of the runs a resumed sweep skips (status finished or diverged)."""
        marks = ",".join("?" * len(DONE_STATUSES))
        return {h for (h,) in self._conn.execute(f"SELECT spec_hash FROM runs WHERE status IN ({marks})",
                                               DONE_STATUSES)}

    def summary(self) -> dict:
        """Number of runs per status: {'finished', 'diverged', 'failed', 'running'} (zeros included)."""
        counts = dict.fromkeys((*STATUSES, "running"), 0)
        counts.update(self._conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        return counts

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one write, all or nothing."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
