"""``solver`` as in the 2025 nndl template: ``normlab.nndl.solver``."""
from ..nndl.solver import *  # noqa: F401,F403
from ..nndl.solver import __all__  # noqa: F401
