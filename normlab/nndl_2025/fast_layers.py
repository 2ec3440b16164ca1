"""``fast_layers`` as in the 2025 nndl template: ``normlab.nndl.fast_layers``."""
from ..nndl.fast_layers import *  # noqa: F401,F403
from ..nndl.fast_layers import __all__  # noqa: F401
