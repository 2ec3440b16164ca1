"""``cs231n.layer_utils`` as in 2018-2020: ``normlab.cs231n.layer_utils`` with 2018-2020's layers."""
from ..cs231n.layer_utils import *  # noqa: F401,F403
from ..cs231n.layer_utils import __all__  # noqa: F401
from .layers import softmax_loss  # noqa: F401
