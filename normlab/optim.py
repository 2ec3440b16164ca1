"""First-order update rules: SGD, SGD with momentum (plain and Nesterov), RMSProp and Adam.

Two layers, one set of equations:

* The core keeps hyperparameters and state apart. Hyperparameters are frozen
  dataclasses validated on creation (``AdamConfig(learning_rate=1e-3)``); state
  is an explicit record (``AdamState(m, v, t)``). ``*_step(w, dw, hp, state)``
  is a pure function returning ``(next_w, next_state)``; nothing is mutated.
* The course API ``update(w, dw, config=None) -> (next_w, config)`` is a thin
  adapter: it reads hyperparameters and state from the dict, fills in the
  defaults, calls the core, and stores the new state arrays back in the same
  dict (which it also returns), exactly as the CS231n notebooks expect.

Conventions for every rule:

* ``w`` and ``dw`` have the same shape; ``next_w`` and every state array have
  ``w``'s dtype (float32 in, float32 out). ``dw`` and given state arrays are
  cast to that dtype first.
* An unknown config key raises ``ValueError`` naming it and the allowed keys.

Fast path: with the Numba backend (``normlab.nn.backend``) and float32 or
float64 weights, each step runs as one fused kernel
(``normlab.nn._jit_ops``): the expressions below, in their order and dtype, in
one pass instead of several with temporaries, so the results agree bit for
bit. When a value it forms is not finite, the NumPy expressions below run
instead, and warn or raise as ``np.errstate`` says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, NamedTuple

import numpy as np

from .nn import _jit_ops

__all__ = [
    "sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam",
    "SGDConfig", "MomentumConfig", "RMSPropConfig", "AdamConfig",
    "MomentumState", "RMSPropState", "AdamState",
    "sgd_step", "momentum_step", "nesterov_step", "rmsprop_step", "adam_step",
    "UPDATE_RULES", "allowed_config_keys", "check_config", "fused_update",
]


# ---------------------------------------------------------------- hyperparameters

def _require(cond: bool, name: str, value, expected: str) -> None:
    if not cond:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _check_lr(lr) -> None:
    _require(_is_real(lr) and math.isfinite(lr) and lr >= 0, "learning_rate", lr,
             "a finite number >= 0")


def _check_unit(x, name: str) -> None:
    _require(_is_real(x) and 0 <= x < 1, name, x, "a number in [0, 1)")


def _check_eps(x) -> None:
    _require(_is_real(x) and math.isfinite(x) and x > 0, "epsilon", x, "a finite number > 0")


@dataclass(frozen=True)
class SGDConfig:
    """Vanilla SGD: ``w <- w - learning_rate * dw``."""
    learning_rate: float = 1e-2

    def __post_init__(self):
        _check_lr(self.learning_rate)


@dataclass(frozen=True)
class MomentumConfig:
    """SGD with momentum (course convention, velocity includes the step size)."""
    learning_rate: float = 1e-2
    momentum: float = 0.9  # weight of the old velocity; 0 gives plain SGD

    def __post_init__(self):
        _check_lr(self.learning_rate)
        _check_unit(self.momentum, "momentum")


@dataclass(frozen=True)
class RMSPropConfig:
    """RMSProp: per-coordinate step scaled by a moving average of dw**2."""
    learning_rate: float = 1e-2
    decay_rate: float = 0.99  # weight of the old cache
    epsilon: float = 1e-8     # added to sqrt(cache), keeps the step finite

    def __post_init__(self):
        _check_lr(self.learning_rate)
        _check_unit(self.decay_rate, "decay_rate")
        _check_eps(self.epsilon)


@dataclass(frozen=True)
class AdamConfig:
    """Adam with bias correction (Kingma & Ba, 2015)."""
    learning_rate: float = 1e-3
    beta1: float = 0.9      # decay of the first-moment average
    beta2: float = 0.999    # decay of the second-moment average
    epsilon: float = 1e-8   # added to sqrt(v_hat)

    def __post_init__(self):
        _check_lr(self.learning_rate)
        _check_unit(self.beta1, "beta1")
        _check_unit(self.beta2, "beta2")
        _check_eps(self.epsilon)


# ---------------------------------------------------------------- state records

class MomentumState(NamedTuple):
    velocity: np.ndarray  # same shape and dtype as w


class RMSPropState(NamedTuple):
    cache: np.ndarray     # moving average of dw**2


class AdamState(NamedTuple):
    m: np.ndarray         # moving average of dw
    v: np.ndarray         # moving average of dw**2
    t: int                # number of steps taken so far


def _prepare(w, dw) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``w``/``dw`` and return them with ``dw`` cast to ``w``'s dtype."""
    if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
        raise TypeError(f"w must be a floating-point ndarray, got {type(w).__name__}"
                        + (f" of dtype {w.dtype}" if isinstance(w, np.ndarray) else ""))
    dw = np.asarray(dw)
    if dw.shape != w.shape:
        raise ValueError(f"dw must have the shape of w {w.shape}, got {dw.shape}")
    return w, dw.astype(w.dtype, copy=False)


def _state_array(a, w: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != w.shape:
        raise ValueError(f"optimizer state {name!r} must have the shape of w {w.shape}, got {a.shape}")
    return a.astype(w.dtype, copy=False)


# ---------------------------------------------------------------- core (pure)

def sgd_step(w, dw, hp: SGDConfig = SGDConfig(), state=None, *, reference=True):
    """``next_w = w - learning_rate * dw``. Stateless; returns ``(next_w, None)``.

    ``reference=False`` (every rule takes it): None instead of the NumPy
    evaluation when the fused kernel did not run or met a non-finite value.
    """
    w, dw = _prepare(w, dw)
    fast = _jit_ops.sgd(w, dw, hp.learning_rate)
    if fast is not None:
        return fast, None
    if not reference:
        return None
    return w - hp.learning_rate * dw, None


def momentum_step(w, dw, hp: MomentumConfig = MomentumConfig(), state: MomentumState | None = None, *,
                  reference=True):
    """SGD with momentum, course form::

        v      = momentum * v - learning_rate * dw
        next_w = w + v

    ``state=None`` starts from ``v = 0``. Returns ``(next_w, MomentumState)``.
    """
    w, dw = _prepare(w, dw)
    v = None if state is None else _state_array(state.velocity, w, "velocity")
    fast = _jit_ops.momentum(w, dw, v, hp.momentum, hp.learning_rate)
    if fast is not None:
        return fast[0], MomentumState(fast[1])
    if not reference:
        return None
    if v is None:
        v = np.zeros_like(w)
    v = hp.momentum * v - hp.learning_rate * dw
    return w + v, MomentumState(v)


def nesterov_step(w, dw, hp: MomentumConfig = MomentumConfig(), state: MomentumState | None = None, *,
                  reference=True):
    """SGD with Nesterov momentum, in the look-ahead-free form (UCLA nndl's)::

        v_new  = momentum * v - learning_rate * dw
        next_w = w + v_new + momentum * (v_new - v)

    ``dw`` is the gradient at ``w``; the extra ``momentum * (v_new - v)``
    takes the step the velocity is about to take (Sutskever et al. 2013's
    Nesterov momentum rewritten in the variable ``w + momentum * v``).
    ``state=None`` starts from ``v = 0``. Returns ``(next_w, MomentumState)``.
    """
    w, dw = _prepare(w, dw)
    v = None if state is None else _state_array(state.velocity, w, "velocity")
    fast = _jit_ops.nesterov(w, dw, v, hp.momentum, hp.learning_rate)
    if fast is not None:
        return fast[0], MomentumState(fast[1])
    if not reference:
        return None
    if v is None:
        v = np.zeros_like(w)
    v_new = hp.momentum * v - hp.learning_rate * dw
    return w + v_new + hp.momentum * (v_new - v), MomentumState(v_new)


def rmsprop_step(w, dw, hp: RMSPropConfig = RMSPropConfig(), state: RMSPropState | None = None, *,
                 reference=True):
    """RMSProp::

        cache  = decay_rate * cache + (1 - decay_rate) * dw**2
        next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)

    ``state=None`` starts from ``cache = 0``. Returns ``(next_w, RMSPropState)``.
    """
    w, dw = _prepare(w, dw)
    cache = None if state is None else _state_array(state.cache, w, "cache")
    fast = _jit_ops.rmsprop(w, dw, cache, hp.decay_rate, hp.learning_rate, hp.epsilon)
    if fast is not None:
        return fast[0], RMSPropState(fast[1])
    if not reference:
        return None
    if cache is None:
        cache = np.zeros_like(w)
    cache = hp.decay_rate * cache + (1 - hp.decay_rate) * (dw * dw)
    return w - hp.learning_rate * dw / (np.sqrt(cache) + hp.epsilon), RMSPropState(cache)


def adam_step(w, dw, hp: AdamConfig = AdamConfig(), state: AdamState | None = None, *, reference=True):
    """Adam; ``t`` is incremented *before* the bias correction (first step t=1)::

        t      = t + 1
        m      = beta1 * m + (1 - beta1) * dw
        v      = beta2 * v + (1 - beta2) * dw**2
        m_hat  = m / (1 - beta1**t)
        v_hat  = v / (1 - beta2**t)
        next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    ``state=None`` starts from ``m = v = 0, t = 0``. Returns ``(next_w, AdamState)``.
    """
    w, dw = _prepare(w, dw)
    if state is None:
        m, v, t = None, None, 0
    else:
        m, v = _state_array(state.m, w, "m"), _state_array(state.v, w, "v")
        t = state.t
        _require(isinstance(t, (int, np.integer)) and not isinstance(t, bool) and t >= 0,
                 "t", t, "an integer >= 0")
        t = int(t)
    t += 1
    fast = _jit_ops.adam(w, dw, m, v, t, hp.beta1, hp.beta2, hp.learning_rate, hp.epsilon)
    if fast is not None:
        return fast[0], AdamState(fast[1], fast[2], t)
    if not reference:
        return None
    if m is None:
        m, v = np.zeros_like(w), np.zeros_like(w)
    # The course's expressions, evaluated in the same order (so bit-identical)
    # but in place on fresh temporaries: half the allocations.
    m = hp.beta1 * m
    m += (1 - hp.beta1) * dw
    dw2 = dw * dw
    dw2 *= 1 - hp.beta2
    v = hp.beta2 * v
    v += dw2
    # Python-float corrections: a weak scalar, so float32 arrays stay float32.
    step = m / (1 - hp.beta1 ** t)                 # m_hat
    step *= hp.learning_rate
    denom = np.divide(v, 1 - hp.beta2 ** t, out=dw2)  # v_hat
    np.sqrt(denom, out=denom)
    denom += hp.epsilon
    step /= denom
    return w - step, AdamState(m, v, t)


# ---------------------------------------------------------------- course adapter

@dataclass(frozen=True)
class UpdateRule:
    """How a config dict maps onto one core step: hyperparameter class, state
    record (``None`` when stateless) and the pure step function."""
    name: str
    hyper: type
    state: type | None
    step: Callable

    def __post_init__(self):
        # Computed once: the adapter runs for every parameter at every step.
        hyper_keys = tuple(f.name for f in fields(self.hyper))
        state_keys = self.state._fields if self.state is not None else ()
        object.__setattr__(self, "hyper_keys", hyper_keys)
        object.__setattr__(self, "state_keys", state_keys)
        object.__setattr__(self, "allowed_keys", hyper_keys + state_keys)
        object.__setattr__(self, "_allowed_set", frozenset(hyper_keys + state_keys))
        object.__setattr__(self, "_hyper_set", frozenset(hyper_keys))
        object.__setattr__(self, "_state_set", frozenset(state_keys))
        object.__setattr__(self, "_hyper_memo", {})

    def hyperparameters(self, config: dict):
        """The validated hyperparameter record for a config dict (memoised by value)."""
        # The type is part of the key: True == 1 must not reuse the record of 1.
        given = tuple([(k, type(config[k]), config[k]) for k in self.hyper_keys if k in config])
        try:
            return self._hyper_memo[given]
        except KeyError:
            hp = self.hyper(**{k: v for k, _, v in given})
            if len(self._hyper_memo) < 256:
                self._hyper_memo[given] = hp
            return hp
        except TypeError:   # an unhashable value: validate it afresh every time
            return self.hyper(**{k: v for k, _, v in given})


def _check_keys(rule: UpdateRule, config: dict) -> None:
    if config.keys() <= rule._allowed_set:   # the common case, without building sets
        return
    unknown = sorted(set(config) - set(rule.allowed_keys), key=str)
    if unknown:
        raise ValueError(f"unknown {rule.name} option(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(rule.allowed_keys)}")


def _parse(rule: UpdateRule, config: dict | None):
    """``(config, hyperparameters, state record or None)`` of a config dict, checked."""
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    _check_keys(rule, config)
    hp = rule.hyperparameters(config)
    state = None
    if rule.state is not None and not config.keys().isdisjoint(rule._state_set):
        if not config.keys() >= rule._state_set:
            missing = [k for k in rule.state_keys if k not in config]
            if not (rule.state is AdamState and missing == ["t"]):
                raise ValueError(f"{rule.name} state is incomplete: missing {', '.join(missing)} "
                                 f"(give all of {', '.join(rule.state_keys)} or none)")
        state = rule.state._make([config.get(k, 0) for k in rule.state_keys])
    return config, hp, state


def _store(rule: UpdateRule, config: dict, hp, next_w, new_state):
    """``(next_w, config)`` with config's defaults filled in and the new state stored."""
    if not config.keys() >= rule._hyper_set:
        for k in rule.hyper_keys:      # fill in defaults, as the course's setdefault
            config.setdefault(k, getattr(hp, k))
    if new_state is not None:
        config.update(zip(rule.state_keys, new_state))
    return next_w, config


def _apply(rule: UpdateRule, w, dw, config: dict | None):
    config, hp, state = _parse(rule, config)
    return _store(rule, config, hp, *rule.step(w, dw, hp, state))


_SGD = UpdateRule("sgd", SGDConfig, None, sgd_step)
_MOMENTUM = UpdateRule("sgd_momentum", MomentumConfig, MomentumState, momentum_step)
_NESTEROV = UpdateRule("sgd_nesterov_momentum", MomentumConfig, MomentumState, nesterov_step)
_RMSPROP = UpdateRule("rmsprop", RMSPropConfig, RMSPropState, rmsprop_step)
_ADAM = UpdateRule("adam", AdamConfig, AdamState, adam_step)


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``next_w = w - learning_rate * dw``.

    Inputs:
    - w: ndarray of any shape, the weights.
    - dw: ndarray of the same shape, the gradient of the loss w.r.t. w.
    - config: dict with ``learning_rate`` (default 1e-2), or None.

    Returns ``(next_w, config)``; config has its defaults filled in.
    """
    return _apply(_SGD, w, dw, config)


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: ``v = momentum * v - learning_rate * dw; next_w = w + v``.

    config: ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (ndarray
    like w; zeros when absent). Returns ``(next_w, config)`` with the new
    velocity stored in config.
    """
    return _apply(_MOMENTUM, w, dw, config)


def sgd_nesterov_momentum(w, dw, config=None):
    """SGD with Nesterov momentum: ``v' = momentum * v - learning_rate * dw;
    next_w = w + v' + momentum * (v' - v)``.

    config: ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (ndarray
    like w; zeros when absent). Returns ``(next_w, config)`` with the new
    velocity stored in config.
    """
    return _apply(_NESTEROV, w, dw, config)


def rmsprop(w, dw, config=None):
    """RMSProp: ``cache = d * cache + (1 - d) * dw**2;
    next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: ``learning_rate`` (1e-2), ``decay_rate`` d (0.99), ``epsilon`` (1e-8),
    ``cache`` (ndarray like w; zeros when absent). Returns ``(next_w, config)``.
    """
    return _apply(_RMSPROP, w, dw, config)


def adam(w, dw, config=None):
    """Adam with bias correction; ``t`` is incremented before it is used::

        t += 1; m = b1*m + (1-b1)*dw; v = b2*v + (1-b2)*dw**2
        next_w = w - learning_rate * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + epsilon)

    config: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999),
    ``epsilon`` (1e-8), ``m``, ``v`` (ndarrays like w; zeros when absent),
    ``t`` (int, 0 when absent). Returns ``(next_w, config)``.
    """
    return _apply(_ADAM, w, dw, config)


#: Course name -> (adapter function, rule description), as the Solver looks them up.
UPDATE_RULES: dict[str, tuple[Callable, UpdateRule]] = {
    "sgd": (sgd, _SGD),
    "sgd_momentum": (sgd_momentum, _MOMENTUM),
    "sgd_nesterov_momentum": (sgd_nesterov_momentum, _NESTEROV),
    "rmsprop": (rmsprop, _RMSPROP),
    "adam": (adam, _ADAM),
}


def _rule(name: str) -> UpdateRule:
    try:
        return UPDATE_RULES[name][1]
    except (KeyError, TypeError):
        raise ValueError(f"unknown update rule {name!r}; expected one of "
                         f"{', '.join(map(repr, UPDATE_RULES))}") from None


def fused_update(name: str, w, dw, config: dict):
    """Rule ``name``'s update on its fused kernel alone: ``(next_w, config)``, what
    ``UPDATE_RULES[name][0](w, dw, config)`` returns, or None when the kernel did not
    run (NumPy backend, another dtype or layout) or met a NaN or inf; ``config`` is then
    untouched. The Solver's fast path: a clean run proves ``dw`` finite (a NaN or inf in
    dw reaches a value the kernel checks), so the gradient needs no pass of its own.
    Bad options and state raise as the rule does.
    """
    rule = _rule(name)
    config, hp, state = _parse(rule, config)
    result = rule.step(w, dw, hp, state, reference=False)
    return None if result is None else _store(rule, config, hp, *result)


def allowed_config_keys(name: str) -> tuple[str, ...]:
    """Hyperparameter and state keys the config dict of rule ``name`` may hold."""
    return _rule(name).allowed_keys


def check_config(name: str, config: dict) -> None:
    """Validate a config dict for rule ``name`` without stepping: unknown keys
    and bad hyperparameter values raise ``ValueError``."""
    rule = _rule(name)
    _check_keys(rule, config)
    rule.hyper(**{k: config[k] for k in rule.hyper_keys if k in config})
