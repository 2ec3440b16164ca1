"""``gradient_check`` of the nndl helper package (``cs231n.`` or ``utils.``): ``normlab.cs231n.gradient_check``."""
from ..cs231n.gradient_check import *  # noqa: F401,F403
from ..cs231n.gradient_check import __all__  # noqa: F401
