"""One engine or both: a training recipe's runs on the NumPy engine, the torch engine, or both side by side.

A recipe's ``engine`` (its Config field) is one of :data:`CHOICES`:

- ``"numpy"`` / ``"torch"``: the runs on that engine;
- ``"both"``: the NumPy runs, then each again on the torch engine (the same net
  in ``torch.nn``, the same start copied from the NumPy initialisation, the
  same batches and schedule; see ``normlab.engines.pytorch``);
- ``"auto"``: ``"both"`` where PyTorch can be imported, else ``"numpy"``
  (:func:`resolve`). A Config holds "auto" itself, never the resolution, so
  the same command makes the same Config (and config.json) on every machine;
  the resolution decides which runs ``runs()`` returns and the section's
  configuration names it.

A recipe builds its runs once, for the NumPy engine, and :func:`expand` turns
them into the runs of its engine: a torch twin has ``engine="torch"`` and the
name ``torch/<name>`` (names are labels, unique within the recipe; they stay
as they were so stored runs keep their hashes). ``analyze`` undoes it with
:func:`split`, which selects by ``spec.engine``: ``{engine: Runs}``. Figures
and tables label the engines with :func:`tag` and :data:`LINESTYLE` (NumPy
solid, torch dashed, the same colour per net); :func:`engines_sentence` words
how far the engines' headline numbers are apart.
"""
from __future__ import annotations

import dataclasses

from ..lab.runs import Runs
from .summarize import Spread, config_dict, fmt

__all__ = ["CHOICES", "PREFIX", "LINESTYLE", "HATCH", "LONG", "resolve", "resolved", "check", "engines", "expand",
           "split", "section_config", "tag", "title_suffix", "engines_sentence"]

CHOICES = ("numpy", "torch", "both", "auto")
PREFIX = "torch/"                                   # run-name prefix of the torch twins under engine='both'
LINESTYLE = {"numpy": "-", "torch": "--"}
HATCH = {"numpy": None, "torch": "///"}
LONG = {"numpy": "NumPy engine", "torch": "torch engine"}


def check(engine) -> None:
    """ValueError unless ``engine`` is one of CHOICES."""
    if engine not in CHOICES:
        raise ValueError(f"engine must be one of {', '.join(CHOICES)}, got {engine!r}")


def resolve(engine: str) -> str:
    """``engine`` with "auto" decided on this machine: "both" when PyTorch can be imported, else "numpy"."""
    check(engine)
    if engine != "auto":
        return engine
    import importlib.util
    import sys
    if "torch" in sys.modules:
        return "numpy" if sys.modules["torch"] is None else "both"      # None: import blocked
    return "both" if importlib.util.find_spec("torch") is not None else "numpy"


def resolved(cfg):
    """``cfg`` with its engine resolved (the same Config when it is not "auto")."""
    return cfg if cfg.engine != "auto" else dataclasses.replace(cfg, engine=resolve(cfg.engine))


def engines(engine: str) -> list[str]:
    """The engines a recipe's ``engine`` trains on, in drawing order; the first is the primary engine."""
    engine = resolve(engine)
    return ["numpy", "torch"] if engine == "both" else [engine]


def expand(engine: str, specs: list) -> list:
    """The recipe's runs (built for any engine) on ``engine``: see the module docstring."""
    engine = resolve(engine)
    if engine != "both":
        return [dataclasses.replace(s, engine=engine) for s in specs]
    return ([dataclasses.replace(s, engine="numpy") for s in specs]
            + [dataclasses.replace(s, engine="torch", name=PREFIX + s.name) for s in specs])


def split(engine: str, runs: Runs) -> dict:
    """``{engine: Runs}`` for every engine of ``engine`` (in :func:`engines` order; one without runs is empty)."""
    if not isinstance(runs, Runs):
        raise TypeError(f"analyze takes the recipe's runs as a Runs of (spec, result) pairs "
                        f"(normlab.lab.runs.recipe_results), got a {type(runs).__name__}")
    return runs.by_engine(engines(engine))


def section_config(cfg) -> dict:
    """The Config for the report section, with "auto" shown with what it resolved to ("auto: both")."""
    d = config_dict(cfg)
    if d.get("engine") == "auto":
        d["engine"] = f"auto: {resolve('auto')}"
    return d


def tag(label: str, engine: str, cfg_engine: str) -> str:
    """A legend or table label naming the engine when both are shown: 'batchnorm [torch]'
    (``cfg_engine`` resolved, as every helper below)."""
    return f"{label} [{engine}]" if cfg_engine == "both" else label


def title_suffix(cfg_engine: str, bars: bool = False) -> str:
    """What a figure title ends with: nothing for the NumPy engine alone, else which engine(s) it shows
    and how they are drawn (lines: torch dashed; ``bars``: torch hatched)."""
    if cfg_engine == "both":
        return " \u2014 NumPy engine plain, torch engine hatched" if bars else \
            " \u2014 NumPy engine solid, torch engine dashed"
    return " \u2014 torch engine" if cfg_engine == "torch" else ""


def engines_sentence(pairs: list, digits: int = 3) -> str:
    """How far the torch engine's numbers are from the NumPy engine's.

    ``pairs``: ``(what, numpy Spread, torch Spread)``. Each measure is given on
    both engines; the largest difference is then set against the seed-to-seed
    spread of that measure (the engines start from the same weights and see
    the same batches, so they differ only by floating-point rounding, which
    training amplifies like a change of seed would)."""
    items, worst = [], None
    for what, a, b in pairs:
        if a.mean is None or b.mean is None:
            items.append(f"{what}: {'n/a' if b.mean is None else fmt(b.mean, digits)} "
                         f"(NumPy {'n/a' if a.mean is None else fmt(a.mean, digits)})")
            continue
        d = abs(b.mean - a.mean)
        items.append(f"{what}: {fmt(b.mean, digits)} (NumPy {fmt(a.mean, digits)})")
        if worst is None or d > worst[0]:
            worst = (d, what, a, b)
    if not items:
        return ""
    s = ("On the torch engine (the same nets in torch.nn, the same starts and batches): "
         + "; ".join(items) + ".")
    if worst is not None:
        d, what, a, b = worst
        s += f" The largest difference is {fmt(d, digits)} ({what})"
        spreads = [x.hi - x.lo for x in (a, b) if isinstance(x, Spread) and x.n > 1]
        if spreads:
            noise = max(spreads)
            s += (f", {'within' if d <= noise else 'larger than'} the seed-to-seed range of that measure "
                  f"({fmt(noise, digits)})")
        s += "."
    return s
