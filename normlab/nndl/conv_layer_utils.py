"""``nndl.conv_layer_utils``: ``conv_relu_forward``/``_backward`` and
``conv_relu_pool_forward``/``_backward`` (normlab's, fast conv and pool), plus
``nndl.layers`` and the fast layers the course's module imports with ``*``."""
from ..layer_utils import conv_relu_backward, conv_relu_forward, conv_relu_pool_backward, conv_relu_pool_forward
from .fast_layers import *  # noqa: F401,F403
from .fast_layers import __all__ as _fast
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers

__all__ = ["conv_relu_forward", "conv_relu_backward", "conv_relu_pool_forward", "conv_relu_pool_backward",
           *_layers, *_fast]
