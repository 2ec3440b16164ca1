"""``nndl.fc_net``.

- ``TwoLayerNet(input_dim=3*32*32, hidden_dims=100, num_classes=10, dropout=0,
  weight_scale=1e-3, reg=0.0)`` (in the 2022+ template; float64);
- ``FullyConnectedNet(hidden_dims, input_dim=3*32*32, num_classes=10, dropout=0,
  use_batchnorm=False, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None)``,
  ``dropout`` the DROP probability, ``seed`` fixes the dropout masks.

Keyword adapters over normlab's ``FullyConnectedNet`` (``normlab.faces.nets``);
the layers and ``affine_relu_*`` are exported too, as the course's module does.
"""
from ..faces.nets import DropFullyConnectedNet, NndlTwoLayerNet as TwoLayerNet
from .layer_utils import *  # noqa: F401,F403
from .layer_utils import __all__ as _layers


class FullyConnectedNet(DropFullyConnectedNet):
    __doc__ = DropFullyConnectedNet.__doc__
    keep_rule = "nndl"


__all__ = ["TwoLayerNet", "FullyConnectedNet", *_layers]
