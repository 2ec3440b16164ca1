"""The model protocol: what the Solver, the lab and the engines use of a model.

Both NumPy nets (``FullyConnectedNet``, ``ThreeLayerConvNet``) and the torch
engine's ``TorchModel`` implement all of it; ``isinstance(model, Model)``
checks that every member is present (``runtime_checkable`` checks presence,
not signatures; tests/nets/test_protocol.py checks those).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .architecture import Architecture

__all__ = ["Model"]


@runtime_checkable
class Model(Protocol):
    """A classifier trained by the Solver.

    - params: name -> array, the learnable parameters (what the optimizer updates,
      in place of the dict's values).
    - num_classes: C, the number of scores; labels lie in 0..C-1.
    - reg: the L2 strength, ``0.5 * reg * sum(W**2)`` over the weights in the loss.
    - dtype: float32 or float64, of the parameters and the arithmetic.
    - rng: the ``np.random.Generator`` the dropout masks are drawn from (None: no
      generator of its own); the Solver checkpoints its state.
    """

    params: dict[str, np.ndarray]
    num_classes: int
    reg: float
    dtype: np.dtype
    rng: np.random.Generator | None

    def loss(self, X, y=None):
        """Scores (N, C) in test mode when ``y`` is None; else ``(loss, grads)`` in train mode,
        ``grads`` keyed and shaped like ``params``."""

    def scores(self, X, mode="test"):
        """Scores (N, C) with every normalization and dropout layer in ``mode`` ('train' or 'test').
        Train mode updates the running statistics as a training step does; save them with
        ``state_arrays()`` to undo that."""

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the non-learnable state: ``running_mean{i}``, ``running_var{i}`` per batch-norm layer."""

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        """Replace that state with copies of ``state``'s arrays (layers absent from it restart)."""

    def architecture(self) -> Architecture:
        """The net's layers and settings (``normlab.nets.architecture``)."""
