"""``cs231n.gradient_check`` as in 2018-2020: the same as ``normlab.cs231n.gradient_check``."""
from ..cs231n.gradient_check import *  # noqa: F401,F403
from ..cs231n.gradient_check import __all__  # noqa: F401
