"""The experiment recipes by name, grouped in suites.

- ``course``: the assignment's experiments in the course's order (SPEC section 4),
  then the engine cross-check.
- ``papers``: landmark normalization results beside the papers' own numbers
  (``normlab.experiments.papers``).
- ``pitfalls``: what users of batch norm get wrong most, measured
  (``normlab.experiments.pitfalls``).
- ``all``: every suite, in that order.

A recipe names its suite in ``SUITE`` (``"course"`` when it says nothing);
``normlab.lab.plan.suite_names`` lists a suite's recipes.
"""
from __future__ import annotations

from types import ModuleType

from . import (batch_size, bn_backward_speed, bn_forward, bn_vs_baseline, engines, gradcheck, spatial_bn,
               train_eval_mode, weight_scale)
from .papers import PAPERS
from .pitfalls import PITFALLS

__all__ = ["RECIPES", "get"]

RECIPES: dict[str, ModuleType] = {m.NAME: m for m in (
    bn_forward, gradcheck, bn_backward_speed, bn_vs_baseline, weight_scale, batch_size, train_eval_mode, spatial_bn,
    engines, *PAPERS, *PITFALLS)}

def get(name: str) -> ModuleType:
    """The recipe module called ``name`` (e.g. "weight-scale"); ValueError listing the names otherwise."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(RECIPES)}") from None
