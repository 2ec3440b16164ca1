"""``cs231n.layer_utils`` as in 2018-2020: the same as ``normlab.cs231n.layer_utils``."""
from ..cs231n.layer_utils import *  # noqa: F401,F403
from ..cs231n.layer_utils import __all__  # noqa: F401
