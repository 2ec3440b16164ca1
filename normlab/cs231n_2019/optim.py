"""``cs231n.optim`` as in 2018-2020: the same as ``normlab.cs231n.optim``."""
from ..cs231n.optim import *  # noqa: F401,F403
from ..cs231n.optim import __all__  # noqa: F401
