"""``nndl.cnn``: ``ThreeLayerConvNet(input_dim=(3, 32, 32), num_filters=32, filter_size=7,
hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32,
use_batchnorm=False)`` (``normlab.faces.nets``), plus everything the course's module
imports with ``*``."""
from ..faces.nets import BatchnormFlagConvNet as ThreeLayerConvNet
from .conv_layer_utils import *  # noqa: F401,F403
from .conv_layer_utils import __all__ as _conv_utils
from .conv_layers import *  # noqa: F401,F403
from .conv_layers import __all__ as _conv
from .layer_utils import *  # noqa: F401,F403
from .layer_utils import __all__ as _utils

__all__ = ["ThreeLayerConvNet", *dict.fromkeys([*_conv, *_utils, *_conv_utils])]
