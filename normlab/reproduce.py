"""``normlab reproduce``: every course experiment, one sweep, one run directory, one report.

Layout of a run directory ``OUT``::

    OUT/config.json                      resolved Config of every recipe, code version, dataset, jobs
    OUT/runs.sqlite                      the run store: every training run's spec and result
    OUT/runs/<experiment>/<name>.json    each run's spec, histories and metrics (one file per run)
    OUT/<experiment>/*.png, *.svg        figures drawn by the recipe's analyze()
    OUT/metrics.json                     every recipe's key numbers
    OUT/report.md, OUT/report.html       the report (HTML self-contained)

Order of work: resolve every recipe's configuration (nothing touched yet),
check the dataset is present and the output directory writable (an error
here leaves existing files as they were), write ``config.json``, run the
training runs of *all* recipes as one sweep (so every worker stays busy
across recipe boundaries; the sweep starts the longest runs first), then analyze each recipe and
write the report. Every file is written atomically. A killed sweep resumes
with ``resume=True``: finished runs are read back from the store, only the
rest are trained.

Bit-identical results need identical BLAS thread counts (the blocking of a
matrix product changes its rounding), so training runs with one BLAS thread
per process: :func:`pin_blas_threads` sets the variables, and ``normlab.cli``
calls it before NumPy is first imported; the sweep's workers pin theirs too.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
import sys
import tempfile
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ._threads import available_cpus, pin_blas_threads
from .lab.rundir import LOCK_FILE, PROBE_PREFIX, RunDirError, RunDirLock, remove_stale_temporaries

__all__ = ["reproduce", "rebuild", "plan", "Plan", "Outcome", "RunDirError",
           "config_to_dict", "config_from_dict", "coerce_overrides",
           "recipes", "recipe"]

CONFIG_FILE = "config.json"
STORE_FILE = "runs.sqlite"
METRICS_FILE = "metrics.json"
CONFIG_FORMAT = "normlab-run-dir"


# ---------------------------------------------------------------- recipes and configs

def recipes() -> dict:
    """``{name: module}`` of every recipe, in course order."""
    from .experiments.registry import RECIPES
    return RECIPES


def recipe(name: str):
    """The recipe module ``name``; ValueError listing the valid names otherwise."""
    table = recipes()
    if name not in table:
        raise ValueError(f"unknown experiment {name!r}; expected one of: {', '.join(table)}")
    return table[name]


def _hints(cls) -> dict:
    mod = sys.modules.get(cls.__module__)
    try:
        return typing.get_type_hints(cls, vars(mod) if mod else None)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to the defaults' types
        return {}


def _tupleize(value, annotation) -> object:
    """JSON lists back to the tuples a frozen Config holds (recursively)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None:
            return None
        for a in args:
            if a is not type(None):
                return _tupleize(value, a)
    if isinstance(value, list):
        if origin is tuple or annotation is tuple:
            inner = args[0] if args and (len(args) == 2 and args[1] is Ellipsis or len(args) == 1) else None
            return tuple(_tupleize(v, inner) for v in value)
        if origin is list:
            return value
        return tuple(_tupleize(v, None) for v in value)
    return value


def config_to_dict(cfg) -> dict:
    """A Config as JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(cls, d: dict):
    """Rebuild a Config from :func:`config_to_dict` output (validated by the Config itself)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__module__}.{cls.__name__} has no field(s) {', '.join(unknown)}")
    hints = _hints(cls)
    return cls(**{k: _tupleize(v, hints.get(k)) for k, v in d.items()})


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(text, annotation, default):
    """One command-line string to the field's type (``int``, ``float``, ``bool``, ``str``,
    ``X | None``, ``tuple[X, ...]`` as comma-separated values)."""
    if not isinstance(text, str):
        return text
    if annotation is None:
        annotation = type(default) if default is not None else str
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if text.strip().lower() in ("none", "null"):
            return None
        inner = [a for a in args if a is not type(None)]
        last = None
        for a in inner:
            try:
                return _coerce(text, a, None)
            except ValueError as exc:
                last = exc
        raise last or ValueError(f"cannot read {text!r}")
    if origin is tuple or annotation is tuple or origin is list:
        inner = args[0] if args else None
        items = [t for t in re.split(r"[,\s]+", text.strip().strip("()[]")) if t]
        vals = [_coerce(t, inner, None) for t in items]
        return vals if origin is list else tuple(vals)
    if annotation is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            f = float(text)          # accept 1e3
        except ValueError:
            f = None
        if f is not None and f.is_integer():
            return int(f)
        raise ValueError(f"expected an integer, got {text!r}")
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if annotation is str or annotation is typing.Any:
        return text
    raise ValueError(f"cannot set a field of type {annotation} from the command line")


def metavar(cls, name: str) -> str:
    """How a Config field is written on the command line: N, X, TEXT, BOOL, A,B,..."""
    ann = _hints(cls).get(name)
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        ann = args[0]
    if typing.get_origin(ann) in (tuple, list) or ann in (tuple, list):
        return "A,B,..."
    return {int: "N", float: "X", bool: "BOOL", str: "TEXT"}.get(ann, "VALUE")


def coerce_overrides(cls, overrides: dict) -> dict:
    """``{"num_epochs": "3"}`` -> ``{"num_epochs": 3}`` using the Config's field types.
    Keys may use dashes. ValueError names unknown keys (and the valid ones) or a bad value."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    out = {}
    for key, text in overrides.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ValueError(f"unknown option {key!r}; valid: {', '.join(fields)}")
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        try:
            out[name] = _coerce(text, hints.get(name), default)
        except ValueError as exc:
            raise ValueError(f"--{name.replace('_', '-')}: {exc}") from None
    return out


@dataclass
class Plan:
    """One recipe resolved: its module, its Config, the training runs it needs."""
    name: str
    module: object
    config: object
    specs: list


def plan(names=None, quick=False, overrides=None, engine=None) -> list:
    """Resolve recipes ``names`` (default: all, in course order): course defaults,
    reduced by ``quick``, then ``engine`` ('numpy', 'torch' or 'both') for every
    recipe that trains nets, then ``overrides[name]`` (field -> value or string)."""
    table = recipes()
    names = list(table) if not names else list(dict.fromkeys(names))
    for n in names:
        recipe(n)
    overrides = overrides or {}
    for n in overrides:
        if n not in names:
            raise ValueError(f"overrides for {n!r}, which is not among the experiments run ({', '.join(names)})")
    plans = []
    for n in names:
        mod = table[n]
        cfg = mod.Config()
        if quick:
            cfg = mod.quick(cfg)
        if engine is not None and "engine" in {f.name for f in dataclasses.fields(cfg)}:
            cfg = dataclasses.replace(cfg, engine=engine)
        if overrides.get(n):
            cfg = dataclasses.replace(cfg, **coerce_overrides(mod.Config, overrides[n]))
        plans.append(Plan(n, mod, cfg, list(mod.runs(cfg))))
    return plans


def _plans_from_config(run_dir: Path, stored: dict) -> list:
    """The plans a run directory's ``config.json`` describes; RunDirError naming the
    file, the experiment and the repair for anything that is not a valid config."""
    table = recipes()
    path = run_dir / CONFIG_FILE
    repair = (f"restore it from a backup or start a new run directory "
              f"(`normlab reproduce --out NEW`); the runs already in {run_dir / STORE_FILE} are kept there")
    experiments = stored.get("experiments")
    if not isinstance(experiments, dict) or not experiments:
        found = ("has no 'experiments'" if experiments is None else "names no experiment" if experiments == {}
                 else f"has 'experiments' as a {type(experiments).__name__}")
        raise RunDirError(f"{path} {found}, expected an object naming each experiment; {repair}")
    plans = []
    for n, entry in experiments.items():
        if n not in table:
            raise RunDirError(f"{path} names experiment {n!r}, which this normlab "
                              f"does not have (known: {', '.join(table)})")
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise RunDirError(f"{path}: experiment {n!r} has no 'config' object; {repair}")
        mod = table[n]
        try:
            cfg = config_from_dict(mod.Config, entry["config"])
            specs = list(mod.runs(cfg))
        except (ValueError, TypeError) as exc:
            raise RunDirError(f"{path}: the config of experiment {n!r} is not valid ({exc}); {repair}") from None
        plans.append(Plan(n, mod, cfg, specs))
    return plans


# ---------------------------------------------------------------- the run directory

def _writable(out: Path) -> None:
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


def _load_config(run_dir: Path) -> dict:
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


def _write_json(path: Path, obj) -> None:
    from ._io import write_json_atomic       # strict JSON (NaN -> null), temp file + rename
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, obj)


_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,@-]")


def history_path(out: Path, spec) -> Path:
    """``OUT/runs/<experiment>/<name>.json``; each '/'-separated part of the name a folder,
    anything outside ``[A-Za-z0-9._=+,@-]`` replaced by '_' (no part may be '..')."""
    parts = [_UNSAFE.sub("_", p) or "_" for p in spec.name.split("/")]
    parts = ["_" + p if p in (".", "..") else p for p in parts]
    return out.joinpath("runs", _UNSAFE.sub("_", spec.experiment), *parts[:-1], parts[-1] + ".json")


def _check_datasets(plans: list) -> list:
    """Locate every dataset the runs need and check each run's sizes fit it
    (DatasetNotFoundError / ValueError, one line each, before anything is written)."""
    from .data.locate import locate
    from .data.sizes import check_run_sizes
    names = sorted({s.dataset for p in plans for s in p.specs})
    for n in names:
        found = locate(n)  # DatasetNotFoundError: one line, with the command that fixes it
        check_run_sizes(found, [s for p in plans for s in p.specs if s.dataset == n])
    return names


def _empty(out: Path) -> bool:
    """No directory, or one holding nothing but a lock file and other commands' write probes."""
    return not out.is_dir() or all(p.name == LOCK_FILE or p.name.startswith(PROBE_PREFIX) for p in out.iterdir())


def _refuse_not_empty(out: Path) -> None:
    if not _empty(out):
        raise RunDirError(f"{out} already exists and is not empty; pass --resume {out} to finish "
                          f"that run, or choose a new --out")


# ---------------------------------------------------------------- running

@dataclass
class Outcome:
    """What :func:`reproduce` / :func:`rebuild` did."""
    out_dir: Path
    sections: list
    metrics: dict
    total_runs: int
    executed: int
    failed: list = field(default_factory=list)      # (experiment, name, status, reason)
    problems: list = field(default_factory=list)    # one line each, also in the report
    report: tuple = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _open_store(out: Path, create: bool = True):
    from .lab.store import RunStore
    return RunStore(out / STORE_FILE, create=create)


def reproduce(out_dir, names=None, quick=False, jobs=None, resume=False, scheduler=None,
              overrides=None, progress=None, engine=None, yes=False, command="normlab reproduce") -> Outcome:
    """Run the recipes ``names`` (default: all) into the run directory ``out_dir``.

    ``jobs``: worker processes (default: the CPUs available); ``scheduler``: a
    Dask scheduler address instead of local workers; ``overrides``:
    ``{experiment: {field: value}}``; ``engine``: 'numpy', 'torch' or 'both'
    for every recipe that trains nets (default: each recipe's own);
    ``progress``: a callable ``(event, **info)`` (see
    :func:`_progress_adapter`) or None; ``yes``: run even when the estimated
    memory or time of the sweep exceeds the bounds of :mod:`normlab.lab.budget`.
    With ``resume=True`` the directory must hold an earlier run's
    ``config.json``; its configurations are reused (``names``, ``quick``,
    ``overrides`` and ``engine`` must then be left out) and only unfinished
    runs are trained: missing, failed, killed and damaged rows (a row lost from
    the store is restored from its history file instead).

    Everything is validated before the first byte is written: the recipes and
    options, the dataset and each run's sizes against it, the estimated memory
    and time, the scheduler's reachability, that the directory is writable and
    (without ``resume``) empty. The directory is then locked for the whole call
    (:class:`~normlab.lab.rundir.RunDirLock`); a second writer gets RunDirBusy. A
    new directory that fails before any run is stored is removed again, so a
    retry can use it.

    Raises RunDirError (a non-empty ``out_dir`` without ``resume``, an
    unwritable or busy one), ValueError (unknown experiment or option, sizes
    the data cannot give, a sweep over the budget), DatasetNotFoundError and
    RuntimeError (scheduler unreachable) before anything is written or trained.
    """
    t0 = time.perf_counter()
    out = Path(os.path.expanduser(os.fspath(out_dir)))
    jobs = available_cpus() if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    say = progress or (lambda event, **info: None)
    if resume:
        if names or quick or overrides or engine:
            raise ValueError("--resume reuses the run directory's own configuration; "
                             "leave out experiment names, --quick, --engine and options")
        stored = _load_config(out)
        plans = _plans_from_config(out, stored)
    else:
        plans = plan(names, quick, overrides, engine)
        _refuse_not_empty(out)
        stored = None
    datasets = _check_datasets(plans)
    estimate = _check_budget(plans, jobs, scheduler, yes)
    if scheduler is not None:
        from .lab.sweep import check_scheduler
        check_scheduler(scheduler)
    created = not out.exists()
    _writable(out)
    lock = RunDirLock(out, command)
    try:
        lock.acquire()
    except BaseException:
        if created:
            _remove_dir_if_empty(out)
        raise
    fresh_ok = False
    try:
        if resume:   # read again under the lock: another writer may have changed it meanwhile
            stored = _load_config(out)
            plans = _plans_from_config(out, stored)
            quick = bool(stored.get("quick"))
        else:
            _refuse_not_empty(out)       # a twin may have written between the check and the lock
        fresh_ok = not resume
        for tmp in remove_stale_temporaries(out):
            say("stale", path=tmp)
        outcome = _reproduce_locked(out, plans, stored, datasets, quick, jobs, scheduler, say, estimate, t0)
        fresh_ok = False
        return outcome
    except BaseException:
        if fresh_ok and not _has_results(out):
            _clear(out)                  # nothing trained: leave the directory as it was found
        raise
    finally:
        lock.release()
        if created and fresh_ok:
            _remove_dir_if_empty(out)


def _reproduce_locked(out, plans, stored, datasets, quick, jobs, scheduler, say, estimate, t0) -> Outcome:
    config = {
        "format": CONFIG_FORMAT, "format_version": 1,
        "code_version": _code_version(), "created": (stored or {}).get("created") or _now(),
        "datasets": datasets, "quick": bool(quick), "jobs": jobs, "scheduler": scheduler,
        "experiments": {p.name: {"title": p.module.TITLE, "config": config_to_dict(p.config),
                                 "runs": len(p.specs)} for p in plans},
    }
    if stored is not None:
        invocations = stored.get("invocations")
        config["invocations"] = (invocations if isinstance(invocations, list) else []) + \
            [{"resumed": _now(), "jobs": jobs}]
    _write_json(out / CONFIG_FILE, config)

    specs = {}
    for p in plans:
        for s in p.specs:
            specs.setdefault(s.spec_hash, s)
    analyses = _Analyses(out, plans, jobs)
    try:
        analyses.start_early()
        results, damaged, todo = _sweep(out, specs, jobs, scheduler, say, estimate, restore=stored is not None)
        outcome = _finish(out, plans, results, config, progress=say, analyses=analyses, damaged=damaged,
                          extra_meta={"executed": todo, "wall_time": _seconds(time.perf_counter() - t0)})
    except BaseException:
        analyses.close(abort=True)
        raise
    outcome.executed = todo
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _check_budget(plans, jobs, scheduler, yes):
    """The sweep's estimated cost (:mod:`normlab.lab.budget`); ValueError past its bounds unless ``yes``."""
    from .lab.budget import check, estimate
    est = estimate([s for p in plans for s in p.specs], jobs=1 if scheduler else jobs)
    if not yes:
        check(est, local=scheduler is None)
    return est


def _has_results(out: Path) -> bool:
    path = out / STORE_FILE
    if not path.is_file():
        return False
    try:
        with _open_store(out, create=False) as store:
            return len(store) > 0
    except ValueError:
        return True      # cannot tell: keep everything


def _clear(out: Path) -> None:
    """Remove what this call wrote into ``out`` (which was empty when it was locked)."""
    import shutil
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


def _remove_dir_if_empty(out: Path) -> None:
    try:
        out.rmdir()
    except OSError:
        pass


def _sweep(out: Path, specs: dict, jobs: int, scheduler, say, estimate=None, restore=False):
    """Train what the store lacks; return ({spec_hash: RunResult}, {spec_hash: DamagedRow}, runs trained now).
    ``restore``: first put back, from the run histories, finished runs the store has no row of."""
    from .lab.store import DONE_STATUSES
    with _open_store(out) as store:
        restored = _restore_from_histories(out, store, specs) if restore else []
        results, damaged = store.load(specs)
        todo = sum(1 for h in specs if h not in results or results[h].status not in DONE_STATUSES)
        say("sweep", total=len(specs), todo=todo, jobs=jobs, scheduler=scheduler, estimate=estimate,
            damaged=[d.run for d in damaged.values()], restored=restored)
        if todo:
            from .lab.sweep import run_sweep
            run_sweep(list(specs.values()), store, jobs=jobs, scheduler=scheduler,
                      progress=lambda d, t, spec, res: say("run", done=d, total=t, spec=spec, result=res))
            results, damaged = store.load(specs)
        return results, damaged, todo


def _restore_from_histories(out: Path, store, specs: dict) -> list:
    """Put back into ``store`` the finished (or diverged) runs that have a valid history
    file but no row (a store emptied or replaced); returns their names."""
    from .lab.runs import RunResult, RunSpec
    from .lab.store import DONE_STATUSES
    present = {h for (h,) in store._read("SELECT spec_hash FROM runs")}
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


def rebuild(run_dir, progress=None, jobs=None) -> Outcome:
    """Re-analyze a run directory from ``config.json`` and ``runs.sqlite``; no training.
    Runs missing from the store (an interrupted sweep) and damaged rows are reported
    as problems. Refused, leaving every file as it was, when the directory is being
    written (RunDirBusy) or when runs have a history file but no row in the store
    (an emptied or replaced store: ``--resume`` restores them)."""
    t0 = time.perf_counter()
    out = Path(os.path.expanduser(os.fspath(run_dir)))
    if not out.is_dir():
        raise RunDirError(f"{out} is not a directory")
    _plans_from_config(out, _load_config(out))      # refuse a foreign or broken directory before locking it
    _writable(out)
    say = progress or (lambda event, **info: None)
    with RunDirLock(out, "normlab report"):
        stored = _load_config(out)
        plans = _plans_from_config(out, stored)
        specs = {s.spec_hash: s for p in plans for s in p.specs}
        with_history = [s for s in specs.values() if history_path(out, s).is_file()]
        try:
            with _open_store(out, create=False) as store:
                results, damaged = store.load(specs)
                rows = {h for (h,) in store._read("SELECT spec_hash FROM runs")}
        except ValueError as exc:
            if not with_history and not (out / STORE_FILE).exists():
                raise RunDirError(f"{out} has no run store ({STORE_FILE}): nothing was trained into it; "
                                  f"`normlab reproduce --resume {out}` trains its runs") from None
            if not with_history:
                raise
            raise RunDirError(f"{exc}; {out / 'runs'} holds {len(with_history)} run histories, so the report "
                              f"was left as it was: `normlab reproduce --resume {out}` rebuilds the store "
                              f"from them") from None
        lost = [s for s in with_history if s.spec_hash not in rows]
        if lost:
            raise RunDirError(f"{len(lost)} runs (e.g. {lost[0].experiment}/{lost[0].name}) have a history in "
                              f"{out / 'runs'} but no row in {out / STORE_FILE} (an emptied or replaced "
                              f"store); the report was left as it was: `normlab reproduce --resume {out}` "
                              f"restores them")
        for tmp in remove_stale_temporaries(out):
            say("stale", path=tmp)
        analyses = _Analyses(out, plans, available_cpus() if jobs is None else int(jobs))
        try:
            outcome = _finish(out, plans, results, stored, progress=say, analyses=analyses, damaged=damaged,
                              extra_meta={"executed": "0 (report rebuilt from the run store)"})
        except BaseException:
            analyses.close(abort=True)
            raise
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _code_version() -> str:
    from .lab.runs import code_version
    return code_version()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _pin_child(parent_pid: int) -> None:
    """Initializer of analysis processes: runs before they import NumPy. They die with
    the parent (SIGKILL included: nothing is written into the run directory after it)
    and leave Ctrl-C to it."""
    import signal
    from .lab.sweep import die_with_parent
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_blas_threads()


def _analyze_one(module_name: str, cfg, by_name: dict, fig_dir: Path):
    """One recipe's analyze(), timed (in this process or an analysis process)."""
    import importlib
    t0 = time.perf_counter()
    fig_dir.mkdir(parents=True, exist_ok=True)
    section = importlib.import_module(module_name).analyze(cfg, by_name, fig_dir)
    return section, time.perf_counter() - t0


class _Analyses:
    """Every recipe's analyze(), in course order in the report.

    With ``jobs > 1`` they run in ``jobs`` spawned processes (BLAS pinned):
    recipes without training runs (gradient checks, timings, the forward-pass
    statistics) are started *before* the sweep, so they overlap the training
    instead of adding to the time after it; the others start as soon as the
    sweep has returned their results. With ``jobs == 1`` everything runs here,
    one after another, after the sweep.
    """

    def __init__(self, out: Path, plans: list, jobs: int):
        self.out, self.plans, self.futures = out, plans, {}
        self.pool = None
        if jobs > 1 and len(plans) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            self.pool = ProcessPoolExecutor(max_workers=min(jobs, len(plans)), mp_context=mp.get_context("spawn"),
                                            initializer=_pin_child, initargs=(os.getpid(),))

    def start_early(self) -> None:
        """Submit the analyses that need no training run."""
        if self.pool is not None:
            for p in self.plans:
                if not p.specs:
                    from .lab.runs import recipe_results
                    self._submit(p, recipe_results([], {}))

    def _submit(self, p, by_name):
        self.futures[p.name] = self.pool.submit(_analyze_one, p.module.__name__, p.config, by_name, self.out / p.name)

    def collect(self, results: dict, problems: list, progress) -> list:
        from .lab.runs import Section
        from .lab.runs import recipe_results
        by_plan = {p.name: recipe_results(p.specs, results) for p in self.plans}
        if self.pool is not None:
            for p in self.plans:
                if p.name not in self.futures:
                    self._submit(p, by_plan[p.name])
        sections = []
        try:
            for i, p in enumerate(self.plans, 1):
                try:
                    if self.pool is not None:
                        section, secs = self.futures[p.name].result()
                    else:
                        section, secs = _analyze_one(p.module.__name__, p.config, by_plan[p.name], self.out / p.name)
                except Exception as exc:  # noqa: BLE001 - one recipe's analysis must not lose the others'
                    reason = str(exc).splitlines()[0] if str(exc) else ""
                    problems.append(f"analysis of {p.name} failed: {type(exc).__name__}: {reason}")
                    section, secs = Section(
                        name=p.name, title=p.module.TITLE, question=p.module.QUESTION,
                        answer=f"Not available: the analysis failed ({type(exc).__name__}: {reason}).",
                        config=config_to_dict(p.config), metrics={}), 0.0
                if not section.config:
                    section.config = config_to_dict(p.config)
                sections.append(section)
                progress("analyzed", index=i, total=len(self.plans), name=p.name, seconds=secs)
        finally:
            self.close()
        return sections

    def close(self, abort: bool = False) -> None:
        """Shut the analysis processes down; ``abort`` (an interrupted sweep) stops
        running analyses too instead of waiting for them."""
        if self.pool is None:
            return
        if abort:
            for proc in list(getattr(self.pool, "_processes", {}).values()):   # no public API for this
                proc.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None


def _seconds(s: float) -> str:
    from .lab.progress import format_seconds
    return format_seconds(s) + " (training and analysis)"


def _finish(out: Path, plans: list, results: dict, config: dict, progress, analyses: "_Analyses",
            extra_meta=None, damaged=None) -> Outcome:
    """Per-run histories, each recipe's analysis, metrics.json and the report."""
    from .lab.report import write_report

    problems, failed = [], []
    for row in (damaged or {}).values():
        problems.append(f"{row}; until then the report leaves the run out")
    total = sum(len(p.specs) for p in plans)
    for p in plans:
        for s in p.specs:
            r = results.get(s.spec_hash)
            if r is None:
                continue
            _write_json(history_path(out, s), {"spec": s.to_dict(), "result": r.to_dict()})
            if r.status == "failed":
                failed.append((p.name, s.name, r.status, (r.error or "").strip().splitlines()[0:1]))
    missing = total - sum(1 for p in plans for s in p.specs if s.spec_hash in results)
    if missing:
        problems.append(f"{missing} of {total} training runs have no result; "
                        f"`normlab reproduce --resume {out}` trains them")
    for exp, name, _, reason in failed:
        problems.append(f"run {exp}/{name} failed: {reason[0] if reason else 'no reason recorded'}")

    sections = analyses.collect(results, problems, progress)

    metrics = {"code_version": config.get("code_version"), "datasets": config.get("datasets"),
               "quick": config.get("quick"), "runs": total, "missing_runs": missing,
               "failed_runs": [f"{e}/{n}" for e, n, _, _ in failed],
               "experiments": {s.name: s.metrics for s in sections}}
    _write_json(out / METRICS_FILE, metrics)
    meta = {"code_version": config.get("code_version"), "dataset": ", ".join(config.get("datasets") or []) or "\u2014",
            "created": config.get("created"), "jobs": config.get("jobs"), "quick": bool(config.get("quick")),
            "runs": total, "problems": problems, **(extra_meta or {})}
    if config.get("quick"):
        meta["title"] = "normlab: the course experiments, reproduced (quick, reduced sizes)"
    report = write_report(out, sections, meta)
    progress("report", path=report[1])
    return Outcome(out_dir=out, sections=sections, metrics=metrics, total_runs=total, executed=0,
                   failed=failed, problems=problems, report=report)
