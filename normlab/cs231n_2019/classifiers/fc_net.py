"""``cs231n.classifiers.fc_net`` as in 2018-2020.

- ``TwoLayerNet(input_dim=3*32*32, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0)``
- ``FullyConnectedNet(hidden_dims, input_dim=3*32*32, num_classes=10, dropout=1,
  normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None)``,
  ``dropout`` the KEEP probability.

Both are keyword adapters over normlab's ``FullyConnectedNet`` (``normlab.faces.nets``).
The layers and sandwich layers are exported too, as the course's module does.
"""
from ...faces.nets import KeepFullyConnectedNet as FullyConnectedNet
from ...faces.nets import TwoLayerNet
from ..layer_utils import *  # noqa: F401,F403
from ..layer_utils import __all__ as _layers

__all__ = ["TwoLayerNet", "FullyConnectedNet", *_layers]
