"""``cs231n.layers`` as in 2018-2020: the same as ``normlab.cs231n.layers``."""
from ..cs231n.layers import *  # noqa: F401,F403
from ..cs231n.layers import __all__  # noqa: F401
