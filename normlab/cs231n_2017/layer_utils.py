"""``cs231n.layer_utils`` as in 2017: ``normlab.cs231n.layer_utils`` with 2017's ``dropout_forward``."""
from ..cs231n.layer_utils import *  # noqa: F401,F403
from ..cs231n.layer_utils import __all__  # noqa: F401
from .layers import dropout_forward, softmax_loss  # noqa: F401
