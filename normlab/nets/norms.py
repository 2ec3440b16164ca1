"""The normalizations a net can put after a linear layer: one table, read by both nets and the torch engine.

Each entry says what the normalization is: the forward/backward pair of the
layers it places (after an affine layer on (N, D) features, and after a conv
on (N, C, H, W) maps), which axes they reduce, whether it keeps running
statistics, whether the bias before it is folded into it, and the course's
per-layer param dict it is driven by.

===============  ==========================  ===============================  =======  ==============
name             after an affine (N, D)      after a conv (N, C, H, W)        running  param dict
===============  ==========================  ===============================  =======  ==============
batchnorm        batch norm over N           spatial batch norm over N, H, W  yes      ``bn_param``
noisy-batchnorm  batch norm, then noise      (none: fc nets only)             yes      ``bn_param``
layernorm        layer norm over D           (none: fc nets only)             no       ``ln_param``
groupnorm        layer norm over D           group norm over (C/G, H, W)      no       ``gn_param``
batchrenorm      batch renorm over N         (none: fc nets only)             yes      ``bn_param``
ghost-batchnorm  batch norm per ghost batch  (none: fc nets only)             yes      ``bn_param``
===============  ==========================  ===============================  =======  ==============

The conv net's 'groupnorm' puts layer norm after its hidden affine layer:
the 1-D counterpart of group norm (group norm with one group).
'noisy-batchnorm' is batch norm followed, in train mode, by a random affine
map drawn afresh at every step (``normlab.nn.norm.noisy``, Santurkar et al.
2018); its layers draw from the net's generator, which the net puts into their
dicts as ``'rng'`` before every forward pass.

Running statistics live in the course's per-layer dicts (``model.bn_params``,
``{'mode', 'eps', 'momentum', 'convention', 'running_mean', 'running_var'}``,
updated in place by the forward pass); ``RunningStatsState`` exposes them as
plain arrays (``running_mean{i}``, ``running_var{i}``, i the 1-based layer).
Only a normalization with running statistics behaves differently in test mode,
so only its dicts carry ``'mode'``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..nn.norm.batchnorm import (BatchNormConfig, batchnorm_after_bias, batchnorm_backward_alt,
                                 spatial_batchnorm_backward)
from ..nn.norm.group import layernorm_backward, layernorm_forward, spatial_groupnorm_backward, spatial_groupnorm_forward
from ..nn.norm.ghost import check_ghost_size, ghost_batchnorm_backward, ghost_batchnorm_forward
from ..nn.norm.noisy import check_noise_per, noisy_batchnorm_backward, noisy_batchnorm_forward
from ..nn.norm.renorm import batchrenorm_backward, batchrenorm_forward, check_renorm_param

__all__ = ["NormLayer", "Normalization", "NormConfig", "NORMALIZATIONS", "lookup", "RunningStatsState"]


@dataclass(frozen=True)
class NormConfig:
    """The settings of a net's normalization layers (the same for every layer of the net).

    - eps: added to the variance before the square root.
    - momentum, convention: batch norm's running averages, as ``BatchNormConfig``
      (momentum resolved: 0.9 on the OLD value for 'course', 0.1 on the NEW batch
      for 'torch'); None for the norms without running statistics.
    - groups: group norm's number of groups G (dividing the channels); else None.
    - batch_variance: batch norm's 'biased' or 'unbiased' variance to normalize
      with in train mode, as ``BatchNormConfig``; None for the other norms.
    - noise_per: noisy batch norm's 'unit' or 'sample' (``normlab.nn.norm.noisy``); else None.
    """
    eps: float = 1e-5
    momentum: float | None = None
    convention: str | None = None
    groups: int | None = None
    batch_variance: str | None = None
    noise_per: str | None = None

    def batchnorm(self) -> BatchNormConfig:
        """The ``BatchNormConfig`` of a batch-norm layer with these settings."""
        return BatchNormConfig(eps=self.eps, momentum=self.momentum, convention=self.convention,
                               batch_variance=self.batch_variance or "biased")


@dataclass(frozen=True)
class NormLayer:
    """One normalization layer as a net calls it.

    ``forward(x, bias, gamma, beta, param, groups) -> (out, cache)``: ``x`` is the
    linear layer's output, ``bias`` its bias when the normalization folds it
    (else ignored), ``param`` the course's per-layer dict, ``groups`` the net's
    group count. ``backward(dout, cache) -> (dx, dgamma, dbeta)``. ``axes``: the
    axes of ``x`` the statistics reduce ((2, 3, 4) for group norm: of the grouped
    view (N, G, C/G, H, W)).
    """
    kind: str
    forward: Callable
    backward: Callable
    axes: tuple[int, ...]


@dataclass(frozen=True)
class Normalization:
    """A normalization of the table (see the module docstring).

    - flat: its layer after an affine layer, x (N, D).
    - spatial: its layer after a conv, x (N, C, H, W); None when it has none.
    - running_stats: keeps running mean/variance (train and test mode differ).
    - folds_bias: the linear layer runs without its bias and the norm gets it
      (``batchnorm_after_bias``): batch norm's centering cancels the bias in train
      mode, so it reaches only the running mean.
    - grouped: the spatial layer splits the channels into ``groups`` groups.
    - param_keys: the ``norm_param`` keys it reads.
    - noisy: its layers draw noise in train mode from ``param['rng']`` (the net's generator).
    """
    name: str
    flat: NormLayer
    spatial: NormLayer | None
    running_stats: bool
    folds_bias: bool
    grouped: bool
    param_keys: tuple[str, ...]
    noisy: bool = False
    validate: Callable | None = None    # checks its own norm_param keys (ValueError), at construction

    def config(self, norm_param: dict, groups: int | None = None) -> NormConfig:
        """The settings from a net's ``norm_param`` (validated: only ``param_keys``, and batch norm's
        values by ``BatchNormConfig``)."""
        unknown = sorted(set(norm_param) - set(self.param_keys))
        if unknown:
            raise ValueError(f"unknown norm_param keys {unknown} for {self.name}; allowed: {list(self.param_keys)}")
        if self.running_stats:
            if self.validate is not None:
                self.validate(norm_param)
            bn = BatchNormConfig(**{k: v for k, v in norm_param.items() if k in _BN_CONFIG_KEYS})
            noise_per = check_noise_per(norm_param.get("noise_per", "unit")) if self.noisy else None
            return NormConfig(bn.eps, bn.momentum, bn.convention, batch_variance=bn.batch_variance,
                              noise_per=noise_per)
        return NormConfig(eps=norm_param.get("eps", 1e-5), groups=groups if self.grouped else None)

    def layer_param(self, norm_param: dict) -> dict:
        """A fresh per-layer param dict of the course: ``bn_param`` starts in train mode with the
        given settings (its running statistics are created on first use), ``ln_param`` /
        ``gn_param`` hold eps."""
        if self.running_stats:
            return {"mode": "train", **norm_param}
        return {"eps": norm_param.get("eps", 1e-5)}


def _batchnorm(x, bias, gamma, beta, param, groups):
    return batchnorm_after_bias(x, bias, gamma, beta, param)


def _noisy_batchnorm(x, bias, gamma, beta, param, groups):
    return noisy_batchnorm_forward(x, gamma, beta, param, bias=bias)


def _layernorm(x, bias, gamma, beta, param, groups):
    return layernorm_forward(x, gamma, beta, param)


def _groupnorm(x, bias, gamma, beta, param, groups):
    return spatial_groupnorm_forward(x, gamma, beta, groups, param)


def _batchrenorm(x, bias, gamma, beta, param, groups):
    return batchrenorm_forward(x, gamma, beta, param, bias=bias)


def _ghost_batchnorm(x, bias, gamma, beta, param, groups):
    return ghost_batchnorm_forward(x, gamma, beta, param, bias=bias)


def _check_ghost(norm_param):
    check_ghost_size(norm_param.get("ghost_size"))


_BN_CONFIG_KEYS = ("eps", "momentum", "convention", "batch_variance")
_LAYERNORM = NormLayer("layernorm", _layernorm, layernorm_backward, (1,))

NORMALIZATIONS: dict[str, Normalization] = {
    "batchnorm": Normalization(
        "batchnorm", flat=NormLayer("batchnorm", _batchnorm, batchnorm_backward_alt, (0,)),
        spatial=NormLayer("spatial_batchnorm", _batchnorm, spatial_batchnorm_backward, (0, 2, 3)),
        running_stats=True, folds_bias=True, grouped=False,
        param_keys=("eps", "momentum", "convention", "batch_variance")),
    "noisy-batchnorm": Normalization(
        "noisy-batchnorm", flat=NormLayer("noisy_batchnorm", _noisy_batchnorm, noisy_batchnorm_backward, (0,)),
        spatial=None, running_stats=True, folds_bias=True, grouped=False,
        param_keys=("eps", "momentum", "convention", "batch_variance", "noise_per"), noisy=True),
    "layernorm": Normalization(
        "layernorm", flat=_LAYERNORM, spatial=None,
        running_stats=False, folds_bias=False, grouped=False, param_keys=("eps",)),
    "batchrenorm": Normalization(
        "batchrenorm", flat=NormLayer("batchrenorm", _batchrenorm, batchrenorm_backward, (0,)),
        spatial=None, running_stats=True, folds_bias=True, grouped=False,
        param_keys=(*_BN_CONFIG_KEYS, "r_max", "d_max", "warmup"), validate=check_renorm_param),
    "ghost-batchnorm": Normalization(
        "ghost-batchnorm", flat=NormLayer("ghost_batchnorm", _ghost_batchnorm, ghost_batchnorm_backward, (0,)),
        spatial=None, running_stats=True, folds_bias=True, grouped=False,
        param_keys=(*_BN_CONFIG_KEYS, "ghost_size"), validate=_check_ghost),
    "groupnorm": Normalization(
        "groupnorm", flat=_LAYERNORM,
        spatial=NormLayer("groupnorm", _groupnorm, spatial_groupnorm_backward, (2, 3, 4)),
        running_stats=False, folds_bias=False, grouped=True, param_keys=("eps",)),
}


def lookup(name, allowed: tuple) -> Normalization | None:
    """The table entry of ``name`` (None for None) if ``name`` is among ``allowed``; else ValueError."""
    if name not in allowed:
        raise ValueError(f"unknown normalization {name!r}; expected one of "
                         f"{', '.join(repr(a) for a in allowed)}")
    return None if name is None else NORMALIZATIONS[name]


class RunningStatsState:
    """Mixin for nets whose ``bn_params`` dicts hold batch-norm running statistics."""

    bn_params: list[dict]

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the running statistics: running_mean{i}, running_var{i} (1-based layers)."""
        return {f"{key}{i}": np.array(p[key], copy=True) for i, p in enumerate(self.bn_params, start=1)
                for key in ("running_mean", "running_var") if key in p}

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        """Replace the running statistics; layers absent from ``state`` lose theirs."""
        for i, p in enumerate(self.bn_params, start=1):
            for key in ("running_mean", "running_var"):
                if f"{key}{i}" in state:
                    p[key] = np.array(state[f"{key}{i}"], copy=True)
                else:
                    p.pop(key, None)
