"""``cs231n.classifiers.fc_net`` as in 2017.

- ``TwoLayerNet(input_dim=3*32*32, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0)``
- ``FullyConnectedNet(hidden_dims, input_dim=3*32*32, num_classes=10, dropout=0,
  use_batchnorm=False, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None)``,
  ``dropout`` the DROP probability, masks as 2017's ``dropout_forward``.

Keyword adapters over normlab's ``FullyConnectedNet`` (``normlab.faces.nets``);
the layers and sandwich layers are exported too, as the course's module does.
"""
from ...faces.nets import TEMPLATE_LOSS, DropFullyConnectedNet, TwoLayerNet
from ..layer_utils import *  # noqa: F401,F403
from ..layer_utils import __all__ as _layers


class FullyConnectedNet(DropFullyConnectedNet):
    __doc__ = DropFullyConnectedNet.__doc__
    keep_rule = "cs231n_2017"
    loss_layer = TEMPLATE_LOSS


__all__ = ["TwoLayerNet", "FullyConnectedNet", *_layers]
