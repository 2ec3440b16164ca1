"""``normlab reproduce``: every course experiment, one sweep, one run directory, one report.

The story of a run, each step in its own module:

1. **Plan** (:mod:`normlab.lab.plan`, :mod:`normlab.lab.configs`): resolve every
   recipe's Config and the training runs it needs; nothing is touched yet.
2. **Check** (:mod:`normlab.lab.rundir`, :mod:`normlab.lab.budget`): the dataset
   is present and each run's sizes fit it, the sweep's estimated memory and time
   are within bounds, the scheduler answers, the output directory is writable
   and (for a new run) empty. An error here leaves existing files as they were.
3. **Lock and record**: the directory is locked for the whole call
   (:class:`~normlab.lab.rundir.RunDirLock`) and ``config.json`` written.
4. **Sweep** (:mod:`normlab.lab.sweep`): the runs the store lacks, of *all*
   recipes as one sweep (so every worker stays busy across recipe boundaries;
   the longest runs start first), each stored the moment it ends
   (:mod:`normlab.lab.store`). A killed sweep resumes with ``resume=True``:
   finished runs are read back from the store, only the rest are trained.
5. **Analyses** (:mod:`normlab.lab.analyses`): each recipe's figures and
   numbers, from its runs' results (those without training runs overlap the sweep).
6. **Report** (:mod:`normlab.lab.report`): per-run histories, ``metrics.json``,
   ``report.md`` and ``report.html``, every file written atomically.

The run directory's layout is described in :mod:`normlab.lab.rundir`.
:func:`rebuild` (``normlab report``) does steps 5 and 6 again from the store.

Bit-identical results need identical BLAS thread counts (the blocking of a
matrix product changes its rounding), so training runs with one BLAS thread
per process: :func:`~normlab._threads.pin_blas_threads` sets the variables, and
``normlab.cli`` calls it before NumPy is first imported; the sweep's workers pin theirs too.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._threads import available_cpus
from .lab.analyses import Analyses
from .lab.configs import coerce_overrides, config_from_dict, config_to_dict
from .lab.plan import Plan, plan, plans_from_config, recipe, recipes
from .lab.rundir import (CONFIG_FILE, CONFIG_FORMAT, METRICS_FILE, STORE_FILE, RunDirError, RunDirLock,
                         check_writable, clear, has_results, history_path, load_config, open_store,
                         refuse_not_empty, remove_dir_if_empty, remove_stale_temporaries, restore_from_histories,
                         write_json)

__all__ = ["reproduce", "rebuild", "plan", "Plan", "Outcome", "RunDirError",
           "config_to_dict", "config_from_dict", "coerce_overrides",
           "recipes", "recipe"]


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


def reproduce(out_dir, names=None, quick=False, jobs=None, resume=False, scheduler=None,
              overrides=None, progress=None, engine=None, yes=False, command="normlab reproduce",
              suite="course") -> Outcome:
    """Run the recipes ``names`` (default: those of ``suite``: 'course', 'papers' or 'all')
    into the run directory ``out_dir``.

    ``jobs``: worker processes (default: the CPUs available); ``scheduler``: a
    Dask scheduler address instead of local workers; ``overrides``:
    ``{experiment: {field: value}}``; ``engine``: 'numpy', 'torch' or 'both'
    for every recipe that trains nets (default: each recipe's own); ``yes``:
    run even when the estimated memory or time of the sweep exceeds the bounds
    of :mod:`normlab.lab.budget`. With ``resume=True`` the directory must hold
    an earlier run's ``config.json``; its configurations are reused (``names``,
    ``quick``, ``overrides`` and ``engine`` must then be left out) and only
    unfinished runs are trained: missing, failed, killed and damaged rows (a
    row lost from the store is restored from its history file instead).

    ``progress``: None or a callable ``progress(event, **info)``, called with
    ``"stale"`` (path: a killed writer's temporary, removed), ``"sweep"``
    (total, todo, jobs, scheduler, estimate, damaged, restored: once, before
    training), ``"run"`` (done, total, spec, result: after each trained run),
    ``"analyzed"`` (index, total, name, seconds) and ``"report"`` (path).

    Everything is validated before the first byte is written: the recipes and
    options, the dataset and each run's sizes against it, the estimated memory
    and time, the scheduler's reachability, that the directory is writable and
    (without ``resume``) empty. The directory is then locked for the whole call;
    a second writer gets RunDirBusy. A new directory that fails before any run
    is stored is removed again, so a retry can use it.

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
        stored = load_config(out)
        plans = plans_from_config(out, stored)
    else:
        plans = plan(names, quick, overrides, engine, suite=suite)
        refuse_not_empty(out)
        stored = None
    datasets = _check_datasets(plans)
    estimate = _check_budget(plans, jobs, scheduler, yes)
    if scheduler is not None:
        from .lab.sweep import check_scheduler
        check_scheduler(scheduler)
    created = not out.exists()
    check_writable(out)
    lock = RunDirLock(out, command)
    try:
        lock.acquire()
    except BaseException:
        if created:
            remove_dir_if_empty(out)
        raise
    fresh_ok = False
    try:
        if resume:   # read again under the lock: another writer may have changed it meanwhile
            stored = load_config(out)
            plans = plans_from_config(out, stored)
            quick = bool(stored.get("quick"))
        else:
            refuse_not_empty(out)        # a twin may have written between the check and the lock
        fresh_ok = not resume
        for tmp in remove_stale_temporaries(out):
            say("stale", path=tmp)
        outcome = _reproduce_locked(out, plans, stored, datasets, quick, jobs, scheduler, say, estimate, t0)
        fresh_ok = False
        return outcome
    except BaseException:
        if fresh_ok and not has_results(out):
            clear(out)                   # nothing trained: leave the directory as it was found
        raise
    finally:
        lock.release()
        if created and fresh_ok:
            remove_dir_if_empty(out)


def _reproduce_locked(out, plans, stored, datasets, quick, jobs, scheduler, say, estimate, t0) -> Outcome:
    """Steps 3 to 6 of the module doc, under the lock."""
    config = _run_config(plans, stored, datasets, quick, jobs, scheduler)
    write_json(out / CONFIG_FILE, config)
    specs = {}          # one run per hash: recipes that share a run train it once
    for p in plans:
        for s in p.specs:
            specs.setdefault(s.spec_hash, s)
    analyses = Analyses(out, plans, jobs)
    try:
        analyses.start_early()
        results, damaged, executed = _sweep(out, specs, jobs, scheduler, say, estimate, restore=stored is not None)
        outcome = _finish(out, plans, results, config, progress=say, analyses=analyses, damaged=damaged,
                          executed=executed,
                          extra_meta={"executed": executed, "wall_time": _seconds(time.perf_counter() - t0)})
    except BaseException:
        analyses.close(abort=True)
        raise
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _run_config(plans, stored, datasets, quick, jobs, scheduler) -> dict:
    """``config.json``: every recipe's resolved Config, the code version, the datasets
    and this invocation (a resumed run keeps its creation time and adds an invocation)."""
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
    return config


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


def _check_budget(plans, jobs, scheduler, yes):
    """The sweep's estimated cost (:mod:`normlab.lab.budget`); ValueError past its bounds unless ``yes``."""
    from .lab.budget import check, estimate
    est = estimate([s for p in plans for s in p.specs], jobs=1 if scheduler else jobs)
    if not yes:
        check(est, local=scheduler is None)
    return est


def _sweep(out: Path, specs: dict, jobs: int, scheduler, say, estimate=None, restore=False):
    """Train the runs of ``specs`` ({spec_hash: RunSpec}) the store has no finished or
    diverged result of; return ({spec_hash: RunResult}, {spec_hash: DamagedRow}, runs trained now).
    ``restore``: first put back, from the run histories, finished runs the store has no row of.

    The store is read once: what is done is counted here, only the rest goes to
    :func:`~normlab.lab.sweep.run_sweep`, and its results complete those read."""
    from .lab.store import DONE_STATUSES
    with open_store(out) as store:
        restored = restore_from_histories(out, store, specs) if restore else []
        results, damaged = store.load(specs)
        todo = [s for h, s in specs.items() if h not in results or results[h].status not in DONE_STATUSES]
        done = len(specs) - len(todo)
        say("sweep", total=len(specs), todo=len(todo), jobs=jobs, scheduler=scheduler, estimate=estimate,
            damaged=[d.run for d in damaged.values()], restored=restored)
        if todo:
            from .lab.sweep import run_sweep
            results.update(run_sweep(todo, store, jobs=jobs, scheduler=scheduler,
                                     progress=lambda d, t, spec, res: say("run", done=done + d, total=len(specs),
                                                                          spec=spec, result=res)))
            damaged = {}     # a damaged row is never done: it was retrained and overwritten
        return results, damaged, len(todo)


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
    plans_from_config(out, load_config(out))      # refuse a foreign or broken directory before locking it
    check_writable(out)
    say = progress or (lambda event, **info: None)
    with RunDirLock(out, "normlab report"):
        stored = load_config(out)
        plans = plans_from_config(out, stored)
        specs = {s.spec_hash: s for p in plans for s in p.specs}
        with_history = [s for s in specs.values() if history_path(out, s).is_file()]
        try:
            with open_store(out, create=False) as store:
                results, damaged = store.load(specs)
                rows = store.hashes()
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
        analyses = Analyses(out, plans, available_cpus() if jobs is None else int(jobs))
        try:
            outcome = _finish(out, plans, results, stored, progress=say, analyses=analyses, damaged=damaged,
                              extra_meta={"executed": "0 (report rebuilt from the run store)"})
        except BaseException:
            analyses.close(abort=True)
            raise
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _finish(out: Path, plans: list, results: dict, config: dict, progress, analyses,
            extra_meta=None, damaged=None, executed: int = 0) -> Outcome:
    """Per-run histories, each recipe's analysis, metrics.json and the report."""
    from .lab.report import write_report

    failed, total, missing = [], 0, 0
    for p in plans:
        for s in p.specs:
            total += 1
            r = results.get(s.spec_hash)
            if r is None:
                missing += 1
                continue
            write_json(history_path(out, s), {"spec": s.to_dict(), "result": r.to_dict()})
            if r.status == "failed":
                failed.append((p.name, s.name, r.status, (r.error or "").strip().splitlines()[0:1]))
    problems = [f"{row}; until then the report leaves the run out" for row in (damaged or {}).values()]
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
    write_json(out / METRICS_FILE, metrics)
    meta = {"code_version": config.get("code_version"), "dataset": ", ".join(config.get("datasets") or []) or "\u2014",
            "created": config.get("created"), "jobs": config.get("jobs"), "quick": bool(config.get("quick")),
            "runs": total, "problems": problems, **(extra_meta or {})}
    meta["title"] = _title(plans) + (" (quick, reduced sizes)" if config.get("quick") else "")
    report = write_report(out, sections, meta)
    progress("report", path=report[1])
    return Outcome(out_dir=out, sections=sections, metrics=metrics, total_runs=total, executed=executed,
                   failed=failed, problems=problems, report=report)


def _title(plans) -> str:
    """The report's title, from the suites its recipes come from."""
    suites = list(dict.fromkeys(getattr(p.module, "SUITE", "course") for p in plans))
    what = {"course": "the course experiments", "papers": "landmark normalization papers",
            "pitfalls": "the everyday pitfalls of batch norm"}
    names = [what.get(s, s) for s in suites]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"normlab: {joined}, reproduced"


def _code_version() -> str:
    from .lab.runs import code_version
    return code_version()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _seconds(s: float) -> str:
    from .lab.progress import format_seconds
    return format_seconds(s) + " (training and analysis)"
