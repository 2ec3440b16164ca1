"""One engine or both: a training recipe's runs on the NumPy engine, the torch engine, or both side by side.

A recipe builds its runs once, for the NumPy engine, and :func:`expand` turns
them into the runs of ``cfg.engine``:

- ``"numpy"`` / ``"torch"``: the same runs on that engine, names unchanged;
- ``"both"``: the NumPy runs, then each again on the torch engine under the
  name ``torch/<name>`` (the same net in ``torch.nn``, the same start copied
  from the NumPy initialisation, the same batches and schedule; see
  ``normlab.engines.pytorch``).

``analyze`` undoes it with :func:`split` (``{engine: {name: result}}``, the
prefix removed, so each engine's results look like a one-engine run) and
labels the engines in figures and tables with :func:`tag` and
:data:`LINESTYLE` (NumPy solid, torch dashed, the same colour per net).
:func:`engines_sentence` words how far the engines' headline numbers are apart.
"""
from __future__ import annotations

import dataclasses

from ..lab.runs import ENGINE_CHOICES as CHOICES
from .summarize import Spread, fmt

__all__ = ["CHOICES", "PREFIX", "LINESTYLE", "HATCH", "LONG", "default_engine", "variants", "expand", "split", "tag",
           "title_suffix", "engines_sentence"]

PREFIX = "torch/"                                   # run-name prefix of the torch runs under engine='both'
LINESTYLE = {"numpy": "-", "torch": "--"}
HATCH = {"numpy": None, "torch": "///"}
LONG = {"numpy": "NumPy engine", "torch": "torch engine"}


def default_engine() -> str:
    """'both' when PyTorch is installed, else 'numpy': the default of a recipe that shows the torch engine
    beside the NumPy engine whenever it can (torch is an optional extra)."""
    import importlib.util
    import sys
    if "torch" in sys.modules:
        return "numpy" if sys.modules["torch"] is None else "both"      # None: import blocked
    return "both" if importlib.util.find_spec("torch") is not None else "numpy"


def variants(engine: str) -> list[tuple[str, str]]:
    """``(engine, run-name prefix)`` pairs in drawing order; the first is the primary engine."""
    if engine not in CHOICES:
        raise ValueError(f"engine must be one of {', '.join(CHOICES)}, got {engine!r}")
    return [("numpy", ""), ("torch", PREFIX)] if engine == "both" else [(engine, "")]


def expand(engine: str, specs: list) -> list:
    """The recipe's runs (built for any engine) on ``engine``: see the module docstring."""
    return [dataclasses.replace(s, engine=e, name=prefix + s.name) for e, prefix in variants(engine) for s in specs]


def split(engine: str, results: dict) -> dict:
    """``{engine: {name: RunResult}}`` with the engine's prefix removed, in :func:`variants` order."""
    out = {}
    for e, prefix in variants(engine):
        if prefix:
            out[e] = {n[len(prefix):]: r for n, r in results.items() if n.startswith(prefix)}
        else:
            others = [p for _, p in variants(engine) if p]
            out[e] = {n: r for n, r in results.items() if not any(n.startswith(p) for p in others)}
    return out


def tag(label: str, engine: str, cfg_engine: str) -> str:
    """A legend or table label naming the engine when both are shown: 'batchnorm [torch]'."""
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
