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
readers never see half a row. A store has one writer (the sweep's parent
process; :mod:`normlab.lab.rundir` locks the run directory); readers may be many.

Nothing read back is trusted: a row whose JSON does not parse, or does not
describe a valid ``RunResult``, is *damaged*. :meth:`RunStore.get` raises
:class:`DamagedRow` for it (the message names the file, the run and the
repair); :meth:`RunStore.load` and :meth:`RunStore.done_hashes` set it aside,
so a resumed sweep retrains it and overwrites the row. A failed write (disk
full, read-only file) raises :class:`StoreError` naming the file; the
transaction is rolled back, so the rows already stored are kept.

The run directory's JSON files (metrics, resolved configs, histories) are
written by ``normlab._io.write_json_atomic``, with the same guarantee: a reader
sees the old file or the new one, never a partial one.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from .._io import to_json
from .runs import STATUSES, RunResult, RunSpec

__all__ = ["RunStore", "StoreError", "DamagedRow", "SCHEMA_VERSION",
           "DONE_STATUSES"]

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


class StoreError(ValueError):
    """The run store cannot be opened, read or written; the message names the file."""


class DamagedRow(StoreError):
    """A stored row does not hold a valid result; the message names the run and the repair."""

    def __init__(self, message: str, spec_hash: str, run: str):
        super().__init__(message)
        self.spec_hash, self.run = spec_hash, run


class RunStore:
    """Every training run of a run directory, in a SQLite file (see the module doc).

    ``RunStore(path)`` creates the file and schema if missing (and the parent
    directory). Use it as a context manager or call ``close()``. Not shared
    between threads or processes: open one per process.
    """

    def __init__(self, path, create: bool = True):
        self.path = Path(path)
        self._db = None
        if not create:
            try:
                size = self.path.stat().st_size
            except OSError as exc:
                raise StoreError(f"cannot open run store {self.path}: {exc.strerror}") from None
            if size == 0:
                raise StoreError(f"run store {self.path} is empty (0 bytes): it holds no runs")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per write.
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                self.close()
                raise StoreError(f"{self.path} is a run store of schema version {version}; this normlab "
                                 f"reads version {SCHEMA_VERSION}. Use a new run directory or a matching normlab")
            if version == 0 and not create:
                self.close()
                raise StoreError(f"{self.path} has no run table: it is not a normlab run store, or an "
                                 f"empty one")
            if version == 0:  # new file: create the schema (readers of an existing store never write)
                with self._transaction():
                    for stmt in filter(str.strip, _SCHEMA.split(";")):
                        self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"cannot open run store {self.path}: {exc}. Is it a normlab run store "
                             f"(runs.sqlite)? Move it aside; `normlab reproduce --resume` then rebuilds "
                             f"it from the run histories") from exc

    # -- plumbing ---------------------------------------------------------------
    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError(f"run store {self.path} is closed; open a new RunStore")
        return self._db

    def _transaction(self):
        return _Transaction(self._conn, self.path)

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
    def _result(self, spec_hash, experiment, name, result_json) -> RunResult:
        """The row's result, validated; DamagedRow naming the run otherwise."""
        try:
            result = RunResult.from_dict(json.loads(result_json))
            if result.spec_hash != spec_hash:
                raise ValueError(f"it holds the result of run hash {result.spec_hash[:12]}")
        except (ValueError, TypeError, RecursionError) as exc:
            run = f"{experiment}/{name}"
            raise DamagedRow(f"run store {self.path}: the row of run {run} is damaged ({_first_line(exc)}); "
                             f"`normlab reproduce --resume {self.path.parent}` retrains it", spec_hash, run) from None
        return result

    def get(self, spec_hash: str) -> RunResult | None:
        """The stored result of the run ``spec_hash``; None if absent or still running.
        Raises :class:`DamagedRow` when the row does not hold a valid result."""
        row = self._read("SELECT experiment, name, result_json FROM runs WHERE spec_hash=?", (spec_hash,))
        if not row or row[0][2] is None:
            return None
        return self._result(spec_hash, *row[0])

    def load(self, hashes=None) -> tuple[dict, dict]:
        """``({spec_hash: RunResult}, {spec_hash: DamagedRow})`` of every row with a
        result (of ``hashes`` only, when given); damaged rows never raise here."""
        rows = self._read("SELECT spec_hash, experiment, name, result_json FROM runs "
                          "WHERE result_json IS NOT NULL")
        wanted = None if hashes is None else set(hashes)
        results, damaged = {}, {}
        for h, experiment, name, text in rows:
            if wanted is not None and h not in wanted:
                continue
            try:
                results[h] = self._result(h, experiment, name, text)
            except DamagedRow as exc:
                damaged[h] = exc
        return results, damaged

    def results(self, experiment: str | None = None) -> list[tuple[RunSpec, RunResult]]:
        """``(spec, result)`` of every run with a result (any status but 'running'),
        of one experiment or of all, ordered by experiment then name. Raises
        :class:`DamagedRow` at the first damaged row."""
        sql = "SELECT spec_hash, experiment, name, spec_json, result_json FROM runs WHERE result_json IS NOT NULL"
        args: tuple = ()
        if experiment is not None:
            sql, args = sql + " AND experiment=?", (experiment,)
        out = []
        for h, exp, name, spec_text, result_text in self._read(sql + " ORDER BY experiment, name", args):
            result = self._result(h, exp, name, result_text)
            try:
                spec = RunSpec.from_dict(json.loads(spec_text))
            except (ValueError, TypeError, RecursionError) as exc:
                raise DamagedRow(f"run store {self.path}: the spec of run {exp}/{name} is damaged "
                                 f"({_first_line(exc)}); `normlab reproduce --resume {self.path.parent}` retrains it",
                                 h, f"{exp}/{name}") from None
            out.append((spec, result))
        return out

    def done_hashes(self) -> set[str]:
        """Hashes of the runs a resumed sweep skips: status finished or diverged, with
        a valid result (a damaged row is retrained)."""
        marks = ",".join("?" * len(DONE_STATUSES))
        rows = self._read(f"SELECT spec_hash, experiment, name, result_json FROM runs WHERE status IN ({marks})",
                          DONE_STATUSES)
        done = set()
        for h, experiment, name, text in rows:
            if text is None:
                continue
            try:
                if self._result(h, experiment, name, text).status in DONE_STATUSES:
                    done.add(h)
            except DamagedRow:
                pass
        return done

    def hashes(self) -> set[str]:
        """Hashes of every row, whatever its status ('running' and damaged rows included)."""
        return {h for (h,) in self._read("SELECT spec_hash FROM runs")}

    def _read(self, sql, args=()) -> list:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read run store {self.path}: {exc}; the file is damaged. Move it "
                             f"aside; `normlab reproduce --resume` then rebuilds it from the run histories") from None

    def summary(self) -> dict:
        """Number of runs per status: {'finished', 'diverged', 'failed', 'running'} (zeros included)."""
        counts = dict.fromkeys((*STATUSES, "running"), 0)
        counts.update(self._read("SELECT status, COUNT(*) FROM runs GROUP BY status"))
        return counts

    def __len__(self) -> int:
        return self._read("SELECT COUNT(*) FROM runs")[0][0]


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one write, all or nothing.
    An SQLite error (disk full, read-only file) becomes :class:`StoreError`."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self._db, self._path = db, path

    def __enter__(self):
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _write_failure(self._path, exc) from None

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._rollback()           # SQLite may have rolled back already (SQLITE_FULL does)
            if issubclass(exc_type, sqlite3.Error):
                raise _write_failure(self._path, exc) from None
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc2:
            self._rollback()
            raise _write_failure(self._path, exc2) from None

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def _write_failure(path: Path, exc: sqlite3.Error) -> StoreError:
    """A failed write, in one line: the file, SQLite's reason and what to do (the
    transaction was rolled back, so every row stored before it is intact)."""
    reason = _first_line(exc)
    fix = ("free some disk space" if "full" in reason.lower() else
           "make it writable" if "readonly" in reason.lower().replace("-", "") else "check the file")
    return StoreError(f"cannot write run store {path}: {reason}; the runs stored before are kept: {fix}, "
                      f"then `normlab reproduce --resume {path.parent}` continues")
