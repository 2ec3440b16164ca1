"""The Solver's options and data, checked once at the boundary.

Every function raises ``ValueError`` (``TypeError`` for a value of the wrong
kind) naming the option or data key, the value received and the fix.
"""
from __future__ import annotations

import math

import numpy as np

from .. import optim
from ..nn._checks import require_class_indices, require_finite_data

__all__ = ["OPTIONS", "known_options", "int_option", "model_classes", "checked_data",
           "update_rule", "lr_decay", "flag", "accuracy_labels", "require_predictable"]

#: The Solver's options and their defaults (the course's, plus normlab's seed and restore_best).
OPTIONS = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "checkpoint_name": None,
    "print_every": 10,
    "verbose": True,
    "seed": 0,
    "restore_best": True,
}


def known_options(kwargs: dict) -> dict:
    """``OPTIONS`` updated with ``kwargs``; an unknown name raises, listing the allowed ones."""
    unknown = sorted(set(kwargs) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown Solver option(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(OPTIONS)}")
    return {**OPTIONS, **kwargs}


def int_option(value, name: str, minimum: int, allow_none: bool = False):
    """``value`` as an int >= ``minimum`` (or None when ``allow_none``); bools are refused."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}"
                         + (" or None" if allow_none else "") + f", got {value!r}")
    return int(value)


def lr_decay(value) -> float:
    """A finite number > 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(value) and value > 0):
        raise ValueError(f"lr_decay must be a finite number > 0, got {value!r}")
    return float(value)


def flag(value, name: str) -> bool:
    """``value`` if it is True or False (truthy stand-ins like 1 or "no" are refused)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def update_rule(rule, optim_config) -> tuple[str | None, object, dict]:
    """``(name, function, config)`` for ``update_rule=rule, optim_config=optim_config``.

    ``rule`` is a name in ``optim.UPDATE_RULES`` or a callable; a callable that
    is one of those rules gets its name (and its config checked), any other has
    the name None. ``config`` is a copy of ``optim_config`` (``{}`` for None).
    """
    config = dict(optim_config or {})
    if isinstance(rule, str):
        optim.check_config(rule, config)
        return rule, optim.UPDATE_RULES[rule][0], config
    if callable(rule):
        names = [n for n, (f, _) in optim.UPDATE_RULES.items() if f is rule]
        if names:
            optim.check_config(names[0], config)
        return (names[0] if names else None), rule, config
    raise ValueError(f"update_rule must be a name in {list(optim.UPDATE_RULES)} or a callable, got {rule!r}")


def model_classes(model) -> tuple[int | None, str]:
    """(number of classes, where it comes from) of ``model``; (None, "") when unknown.

    ``model.num_classes`` when it is a positive int; else, for weights named as
    in the course (W1, ..., WL), the columns of the 2-D last one.
    """
    c = getattr(model, "num_classes", None)
    if isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0:
        return int(c), f"the model has {c} classes"
    numbered = [int(k[1:]) for k in model.params if k[:1] == "W" and k[1:].isdigit()]
    if numbered:
        name = f"W{max(numbered)}"
        W = model.params[name]
        if getattr(W, "ndim", 0) == 2:
            return int(W.shape[1]), f"the model's output weight {name} has {W.shape[1]} columns"
    return None, ""


def checked_data(model, data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_val, y_val)`` from ``data``, checked against ``model``.

    ``model`` must have a dict ``params``. X arrays: real numbers, all finite,
    one row per sample, the same per-sample shape in both splits. y arrays:
    1-D integer class indices (below the model's number of classes when known,
    see :func:`model_classes`), one per row of X. Shapes and labels are checked
    first, then one finiteness pass over each X.
    """
    if not isinstance(getattr(model, "params", None), dict):
        raise TypeError(f"model must have a dict attribute 'params', got {type(model).__name__}")
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
    if missing:
        raise ValueError(f"data is missing {', '.join(missing)}; expected X_train, y_train, X_val, y_val")
    num_classes, source = model_classes(model)
    for split in ("train", "val"):
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        for key, a in ((f"X_{split}", X), (f"y_{split}", y)):
            if not isinstance(a, np.ndarray) or a.ndim == 0:
                got = "a 0-d array" if isinstance(a, np.ndarray) else type(a).__name__
                raise TypeError(f"data[{key!r}] must be a NumPy array with one row per sample, got {got}; "
                                f"convert with np.asarray")
        if len(X) == 0 or len(X) != len(y):
            raise ValueError(f"X_{split} has {len(X)} rows and y_{split} {len(y)} labels; they must be "
                             f"non-empty and equal (one label per row)")
        require_class_indices(y, f"y_{split}", num_classes, source)
    X_train, X_val = data["X_train"], data["X_val"]
    if X_val.shape[1:] != X_train.shape[1:]:
        raise ValueError(f"X_val has per-sample shape {X_val.shape[1:]}, X_train "
                         f"{X_train.shape[1:]}; both splits must be preprocessed alike")
    require_finite_data(X_train, "X_train")
    require_finite_data(X_val, "X_val")
    return X_train, data["y_train"], X_val, data["y_val"]


def accuracy_labels(X, y) -> np.ndarray:
    """``y`` checked as class indices (1-D, integer, >= 0), one per row of a non-empty ``X``."""
    y = require_class_indices(y, "y")
    if len(X) == 0 or len(y) != len(X):
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
    return y


def require_predictable(labels: np.ndarray, num_classes: int) -> None:
    """Raise ``ValueError`` (naming the first) unless every label is below the model's ``num_classes`` scores."""
    if labels.max() >= num_classes:
        require_class_indices(labels, "y", num_classes, f"the model scores {num_classes} classes")
