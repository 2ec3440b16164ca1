"""``cs231n.fast_layers`` as in 2017: the same as ``normlab.cs231n.fast_layers``."""
from ..cs231n.fast_layers import *  # noqa: F401,F403
from ..cs231n.fast_layers import __all__  # noqa: F401
