"""``cs231n.solver`` as in 2018-2020: the same as ``normlab.cs231n.solver``."""
from ..cs231n.solver import *  # noqa: F401,F403
from ..cs231n.solver import __all__  # noqa: F401
