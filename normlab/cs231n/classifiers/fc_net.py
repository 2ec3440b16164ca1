"""``cs231n.classifiers.fc_net``: ``FullyConnectedNet(hidden_dims, input_dim=3*32*32,
num_classes=10, dropout_keep_ratio=1, normalization=None, reg=0.0, weight_scale=1e-2,
dtype=np.float32, seed=None)``, normlab's own (``normlab.models``).

As the course's module, it also exports the layers and sandwich layers: the
notebooks call ``affine_forward`` and friends after ``from ...fc_net import *``.
"""
from ...nets.fc import FullyConnectedNet
from ..layer_utils import *  # noqa: F401,F403
from ..layer_utils import __all__ as _layers

__all__ = ["FullyConnectedNet", *_layers]
