"""``gradient_check`` as in the 2025 nndl template: ``normlab.nndl.gradient_check``."""
from ..nndl.gradient_check import *  # noqa: F401,F403
from ..nndl.gradient_check import __all__  # noqa: F401
