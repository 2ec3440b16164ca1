"""``cs231n.classifiers.cnn``: ``ThreeLayerConvNet(input_dim=(3, 32, 32), num_filters=32,
filter_size=7, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0,
dtype=np.float32)`` (normlab's, which also takes ``normalization``; computing in the
input's dtype as the course's does, ``normlab.faces.nets.CourseConvNet``), plus the
layers, sandwich and fast layers the course's module imports with ``*``."""
from ...faces.nets import CourseConvNet as ThreeLayerConvNet
from ..fast_layers import *  # noqa: F401,F403
from ..fast_layers import __all__ as _fast
from ..layer_utils import *  # noqa: F401,F403
from ..layer_utils import __all__ as _layers

__all__ = ["ThreeLayerConvNet", *_layers, *_fast]
