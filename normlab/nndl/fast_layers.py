"""``fast_layers`` of the nndl helper package (``cs231n.`` or ``utils.``): ``normlab.cs231n.fast_layers``."""
from ..cs231n.fast_layers import *  # noqa: F401,F403
from ..cs231n.fast_layers import __all__  # noqa: F401
