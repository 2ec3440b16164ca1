"""The experiment recipes by name, in the course's order (SPEC section 4), then the engine cross-check."""
from __future__ import annotations

from types import ModuleType

from . import (batch_size, bn_backward_speed, bn_forward, bn_vs_baseline, engines, gradcheck, spatial_bn,
               train_eval_mode, weight_scale)

__all__ = ["RECIPES", "get"]

RECIPES: dict[str, ModuleType] = {m.NAME: m for m in (
    bn_forward, gradcheck, bn_backward_speed, bn_vs_baseline, weight_scale, batch_size, train_eval_mode, spatial_bn,
    engines)}


def get(name: str) -> ModuleType:
    """The recipe module called ``name`` (e.g. "weight-scale"); ValueError listing the names otherwise."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(RECIPES)}") from None
