"""``optim`` as in the 2025 nndl template: ``normlab.nndl.optim``."""
from ..nndl.optim import *  # noqa: F401,F403
from ..nndl.optim import __all__  # noqa: F401
