"""Which recipes run, with which Config, needing which training runs: a list of :class:`Plan`.

A new run resolves its plans with :func:`plan` (course defaults, then
``--quick``, ``--engine`` and the per-recipe options); a resumed run or a
rebuilt report reads them back from the run directory's ``config.json`` with
:func:`plans_from_config`. Resolving touches no file: every mistake (an
unknown recipe or option, a value the Config rejects) is raised before a
byte is written.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .configs import coerce_overrides, config_from_dict
from .rundir import CONFIG_FILE, STORE_FILE, RunDirError

__all__ = ["Plan", "plan", "plans_from_config", "recipes", "recipe", "suite_names", "SUITES"]

#: The suites (``normlab reproduce --suite``): the course's experiments, the papers, the
#: everyday pitfalls, all of them.
SUITES = ("course", "papers", "pitfalls", "all")


def recipes() -> dict:
    """``{name: module}`` of every recipe, in course order."""
    from ..experiments.registry import RECIPES      # at call time: tests swap the registry
    return RECIPES


def recipe(name: str):
    """The recipe module ``name``; ValueError listing the valid names otherwise."""
    table = recipes()
    if name not in table:
        raise ValueError(f"unknown experiment {name!r}; expected one of: {', '.join(table)}")
    return table[name]


@dataclass
class Plan:
    """One recipe resolved: its module, its Config, the training runs it needs."""
    name: str
    module: object
    config: object
    specs: list


def suite_names(suite: str = "course") -> list:
    """The names of suite ``suite``'s recipes, in registry order: 'course' (the recipes whose
    ``SUITE`` is "course", or that name none), 'papers', or 'all'; ValueError otherwise."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    return [n for n, m in recipes().items() if suite == "all" or getattr(m, "SUITE", "course") == suite]


def plan(names=None, quick=False, overrides=None, engine=None, suite="course") -> list:
    """Resolve recipes ``names`` (default: those of ``suite``, in order): their defaults,
    reduced by ``quick``, then ``engine`` ('numpy', 'torch' or 'both') for every
    recipe that trains nets, then ``overrides[name]`` (field -> value or string)."""
    table = recipes()
    names = suite_names(suite) if not names else list(dict.fromkeys(names))
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


def plans_from_config(run_dir: Path, stored: dict) -> list:
    """The plans a run directory's ``config.json`` (``stored``) describes; RunDirError
    naming the file, the experiment and the repair for anything that is not a valid config."""
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
