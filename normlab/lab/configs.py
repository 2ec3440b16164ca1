"""A recipe's ``Config`` (a frozen dataclass) to JSON, back, and from the command line.

- :func:`config_to_dict` / :func:`config_from_dict`: the form stored in a run
  directory's ``config.json`` (tuples as JSON lists, and back to tuples by the
  field's annotation, so a Config read back compares equal to the one written).
- :func:`coerce_overrides`: ``normlab run NAME --field VALUE`` strings to the
  field's type; :func:`metavar`: how ``--help`` shows that type.

Field types understood on the command line: ``int`` (``1e3`` accepted when it is
whole), ``float``, ``bool`` (true/false, yes/no, on/off, 1/0), ``str``,
``X | None`` (``none`` or ``null`` for None) and ``tuple[X, ...]`` / ``list[X]``
(comma-separated). The Config's own ``__post_init__`` validates the values.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
import typing

__all__ = ["config_to_dict", "config_from_dict", "coerce_overrides", "metavar"]

_UNIONS = (typing.Union, types.UnionType)        # Optional[X] and X | None
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _hints(cls) -> dict:
    """The resolved field annotations of ``cls`` ({} when one cannot be resolved)."""
    mod = sys.modules.get(cls.__module__)
    try:
        return typing.get_type_hints(cls, vars(mod) if mod else None)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to the defaults' types
        return {}


def _union_members(annotation) -> list | None:
    """The members other than None of a union annotation; None when it is no union."""
    if typing.get_origin(annotation) in _UNIONS:
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return None


def _tupleize(value, annotation) -> object:
    """JSON lists back to the tuples a frozen Config holds (recursively)."""
    members = _union_members(annotation)
    if members is not None:
        return None if value is None else _tupleize(value, members[0])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
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


def _coerce(text, annotation, default):
    """One command-line string to the field's type (see the module doc); a non-string
    is returned as it is. ValueError saying what was expected otherwise."""
    if not isinstance(text, str):
        return text
    if annotation is None:
        annotation = type(default) if default is not None else str
    members = _union_members(annotation)
    if members is not None:
        if text.strip().lower() in ("none", "null"):
            return None
        last = None
        for a in members:
            try:
                return _coerce(text, a, None)
            except ValueError as exc:
                last = exc
        raise last or ValueError(f"cannot read {text!r}")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
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
    members = _union_members(ann)
    if members:
        ann = members[0]
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
