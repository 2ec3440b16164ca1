"""``nndl.fc_net`` as in the 2025 template.

- ``TwoLayerNet(input_dim=3*32*32, hidden_dims=100, num_classes=10, dropout=1,
  weight_scale=1e-3, reg=0.0)`` (float64);
- ``FullyConnectedNet(hidden_dims, input_dim=3*32*32, num_classes=10, dropout=1,
  use_batchnorm=False, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None)``,
  ``dropout`` the KEEP probability (1: no dropout).

Keyword adapters over normlab's ``FullyConnectedNet``; the layers and sandwich
layers are exported too.
"""
import numpy as np

from ..nets.fc import FullyConnectedNet as _Core
from .layer_utils import *  # noqa: F401,F403
from .layer_utils import __all__ as _layers


class FullyConnectedNet(_Core):
    """``FullyConnectedNet(hidden_dims, input_dim=3*32*32, num_classes=10, dropout=1,
    use_batchnorm=False, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None)``."""

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout=1, use_batchnorm=False,
                 reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None):
        super().__init__(hidden_dims, input_dim=input_dim, num_classes=num_classes, dropout_keep_ratio=dropout,
                         normalization="batchnorm" if use_batchnorm else None, reg=reg,
                         weight_scale=weight_scale, dtype=dtype, seed=seed)
        self.use_batchnorm = bool(use_batchnorm)


class TwoLayerNet(FullyConnectedNet):
    """``TwoLayerNet(input_dim=3*32*32, hidden_dims=100, num_classes=10, dropout=1,
    weight_scale=1e-3, reg=0.0)``: affine - relu - [dropout] - affine - softmax, float64."""

    def __init__(self, input_dim=3 * 32 * 32, hidden_dims=100, num_classes=10, dropout=1, weight_scale=1e-3,
                 reg=0.0):
        super().__init__([hidden_dims], input_dim=input_dim, num_classes=num_classes, dropout=dropout, reg=reg,
                         weight_scale=weight_scale, dtype=np.float64)


__all__ = ["TwoLayerNet", "FullyConnectedNet", *_layers]
