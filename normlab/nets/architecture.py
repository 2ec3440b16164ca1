"""What a net is, as data: ``model.architecture()`` returns an ``Architecture``.

Enough to build the same net elsewhere (the torch engine builds its
``torch.nn`` modules from it, nothing else) and to tell two nets apart. The
weights are not part of it: they are ``model.params``; the running statistics
are ``model.state_arrays()``.

Parameter names, for a net of L linear layers (``fc``: L - 1 hidden affine
layers and the output layer; ``cnn``: conv, hidden affine, output affine):
``W{i}``, ``b{i}`` of the i-th linear layer (``b{i}`` absent where ``biases``
says False) and, when normalized, ``gamma{i}``, ``beta{i}`` of the norm after
it (i < L: the output layer is never normalized).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .norms import NormConfig

__all__ = ["Architecture", "Dropout", "Conv", "ACTIVATIONS", "NORM_POSITIONS", "DROPOUT_POSITIONS",
           "check_positions"]

KINDS = ("fc", "cnn")
#: The hidden layers' nonlinearities: ReLU ``max(0, x)``, sigmoid ``1 / (1 + e^-x)``.
ACTIVATIONS = ("relu", "sigmoid")
#: Where an fc net's norm sits: before its activation (affine - norm - act) or after it (affine - act - norm).
NORM_POSITIONS = ("before", "after")
#: Where an fc net's dropout sits: at the end of every hidden layer, directly before every hidden
#: layer's norm, or only at the end of the last hidden layer (after every norm).
DROPOUT_POSITIONS = ("after_activation", "before_norm", "last_layer")


def check_positions(norm_position, dropout_position, normalization) -> None:
    """ValueError unless ``norm_position`` and ``dropout_position`` are known and fit ``normalization``."""
    if norm_position not in NORM_POSITIONS:
        raise ValueError(f"unknown norm_position {norm_position!r}; expected one of "
                         f"{', '.join(map(repr, NORM_POSITIONS))}")
    if dropout_position not in DROPOUT_POSITIONS:
        raise ValueError(f"unknown dropout_position {dropout_position!r}; expected one of "
                         f"{', '.join(map(repr, DROPOUT_POSITIONS))}")
    if dropout_position == "before_norm" and normalization is None:
        raise ValueError("dropout_position='before_norm' puts dropout before each norm, but normalization=None; "
                         "pass a normalization or another dropout_position")


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout after every hidden ReLU of an fc net.

    - keep: the probability p of keeping a unit (kept units are scaled by 1 / p).
    - masks: how the mask is made from uniforms u in [0, 1): 'normlab' keeps
      where u < keep (``dropout_forward``); a course face names its rule in
      ``normlab.faces.dropout.KEEP_RULES``.
    - source: where u comes from. 'seed': the course's ``seed`` (``np.random.seed(seed)``
      before every draw: the same mask on every call); 'rng': the model's own
      ``model.rng`` (a new mask every call, reproducible from ``rng_seed``);
      'global': the global ``np.random``.
    - seed: the course's seed when ``source == 'seed'``, else None.
    """
    keep: float
    masks: str = "normlab"
    source: str = "rng"
    seed: Any = None


@dataclass(frozen=True)
class Conv:
    """The conv net's first layer: ``num_filters`` filters of ``filter_size`` x ``filter_size``,
    stride 1 and zero padding ``(filter_size - 1) // 2`` (the spatial size is kept), then ReLU and a
    ``pool`` x ``pool`` max pool of stride ``pool``."""
    num_filters: int
    filter_size: int
    stride: int = 1
    pad: int = 0
    pool: int = 2


@dataclass(frozen=True)
class Architecture:
    """A net's layers and settings.

    - kind: 'fc' (``{affine - [norm] - activation - [dropout]} x (L - 1) - affine``) or
      'cnn' (``conv - [norm] - relu - pool - affine - [norm] - relu - affine``).
    - input_dim: the shape of one sample: fc (D,), cnn (C, H, W).
    - hidden_dims: the hidden affine layers' sizes (cnn: one).
    - num_classes: the output layer's size.
    - dtype: float32 or float64, of the parameters and the arithmetic.
    - normalization: a key of ``normlab.nets.norms.NORMALIZATIONS``, or None.
    - norm: its settings (eps; batch norm's momentum and convention; group
      norm's groups); None without normalization.
    - biases: per linear layer 1..L, whether it has its bias ``b{i}``.
    - dropout: fc only, None without dropout.
    - conv: cnn only.
    - activation: the hidden layers' nonlinearity, one of ``ACTIVATIONS``:
      'relu' (default) or 'sigmoid' (fc only; the conv net's is ReLU).
    - norm_position: fc only, one of ``NORM_POSITIONS``: the norm 'before' (default) or
      'after' the activation.
    - dropout_position: fc only, one of ``DROPOUT_POSITIONS`` (default 'after_activation').
    """
    kind: str
    input_dim: tuple[int, ...]
    hidden_dims: tuple[int, ...]
    num_classes: int
    dtype: np.dtype
    normalization: str | None = None
    norm: NormConfig | None = None
    biases: tuple[bool, ...] = ()
    dropout: Dropout | None = None
    conv: Conv | None = None
    activation: str = "relu"
    norm_position: str = "before"
    dropout_position: str = "after_activation"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown architecture kind {self.kind!r}; expected one of {KINDS}")
        if (self.normalization is None) != (self.norm is None):
            raise ValueError(f"normalization={self.normalization!r} needs its settings (norm) and only then, "
                             f"got norm={self.norm!r}")
        if len(self.biases) != self.num_layers:
            raise ValueError(f"biases must say for each of the {self.num_layers} linear layers whether it has "
                             f"a bias, got {self.biases!r}")
        if (self.kind == "cnn") != (self.conv is not None):
            raise ValueError(f"a {self.kind} net {'needs' if self.kind == 'cnn' else 'has no'} conv settings")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of "
                             f"{', '.join(map(repr, ACTIVATIONS))}")
        if self.kind == "cnn" and self.activation != "relu":
            raise ValueError(f"the conv net's activations are ReLU, got activation={self.activation!r}")
        check_positions(self.norm_position, self.dropout_position, self.normalization)
        if self.kind == "cnn" and (self.norm_position, self.dropout_position) != ("before", "after_activation"):
            raise ValueError(f"the conv net's norms sit before its ReLUs and it has no dropout, got "
                             f"norm_position={self.norm_position!r}, dropout_position={self.dropout_position!r}")

    @property
    def num_layers(self) -> int:
        """L, the number of linear (affine or conv) layers."""
        return len(self.hidden_dims) + (2 if self.kind == "cnn" else 1)
