"""Update rules under other courses' names for their state.

The equations are normlab's (``normlab.optim``); a face only renames the keys
its course keeps in the config dict, and fills in its course's defaults:

* UCLA nndl keeps RMSProp's moving average of dw**2 under ``'a'`` (normlab and
  CS231n: ``'cache'``), and Adam's first moment under ``'v'`` and second
  moment under ``'a'`` (normlab and CS231n: ``'m'`` and ``'v'``);
* CS231n 2017's Adam starts its step count at ``t = 1`` (2018 on: 0); ``t``
  is incremented before use in both, so 2017's first step uses t = 2.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import optim as core

__all__ = ["with_state_names", "adam_t_starts_at"]


def with_state_names(rule, names: dict[str, str]):
    """``rule`` with its config keys renamed: ``names`` maps the face's key to normlab's.

    The returned function updates and returns the caller's own dict, as the
    course's rules do, with the state under the face's names.
    """
    to_face = {v: k for k, v in names.items()}

    @functools.wraps(rule)
    def update(w, dw, config=None):
        if config is None:
            config = {}
        elif not isinstance(config, dict):
            raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
        clash = [k for k in config if k in to_face and k not in names]
        if clash:
            raise ValueError(f"unknown {rule.__name__} option(s) {', '.join(map(repr, clash))} in this course: "
                             f"its state is kept under {', '.join(repr(k) for k in names)}")
        inner = {names.get(k, k): v for k, v in config.items()}
        next_w, inner = rule(w, dw, inner)
        config.clear()
        config.update({to_face.get(k, k): v for k, v in inner.items()})
        return next_w, config

    return update


def adam_t_starts_at(t0: int):
    """normlab's ``adam`` whose step count starts at ``t0`` when the config holds no state."""

    @functools.wraps(core.adam)
    def adam(w, dw, config=None):
        if config is None:
            config = {}
        if not any(k in config for k in ("m", "v", "t")):
            w_arr = np.asarray(w)
            config.update(m=np.zeros_like(w_arr), v=np.zeros_like(w_arr), t=t0)
        return core.adam(w, dw, config)

    return adam
