"""Every recipe's ``analyze()``: in this process, or overlapping the sweep in analysis processes.

A recipe's analysis reads only its own runs' results (built by
:func:`normlab.lab.runs.recipe_results`), draws its figures into
``OUT/<experiment>/`` and returns its :class:`~normlab.lab.runs.Section` of
the report. An analysis that raises costs only its own section: the report
says it is not available and the error becomes one of the report's problems.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .._threads import pin_blas_threads
from .configs import config_to_dict

__all__ = ["Analyses"]


def _pin_child(parent_pid: int) -> None:
    """Initializer of analysis processes: runs before they import NumPy. They die with
    the parent (SIGKILL included: nothing is written into the run directory after it)
    and leave Ctrl-C to it."""
    import signal
    pin_blas_threads()                      # first: importing normlab.lab.sweep imports NumPy
    from .sweep import die_with_parent
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _analyze_one(module_name: str, cfg, by_name: dict, fig_dir: Path):
    """One recipe's analyze(), timed (in this process or an analysis process)."""
    import importlib
    t0 = time.perf_counter()
    fig_dir.mkdir(parents=True, exist_ok=True)
    section = importlib.import_module(module_name).analyze(cfg, by_name, fig_dir)
    return section, time.perf_counter() - t0


class Analyses:
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
                    from .runs import recipe_results
                    self._submit(p, recipe_results([], {}))

    def _submit(self, p, by_name):
        self.futures[p.name] = self.pool.submit(_analyze_one, p.module.__name__, p.config, by_name, self.out / p.name)

    def collect(self, results: dict, problems: list, progress) -> list:
        from .runs import Section, recipe_results
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
                if section.paper is not None:
                    section.paper["analysis_seconds"] = round(secs, 1)
                    section.paper["suite"] = getattr(p.module, "SUITE", "course")
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

