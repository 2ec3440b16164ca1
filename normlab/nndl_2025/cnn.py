"""``nndl.cnn`` as in the 2025 template: ``normlab.nndl.cnn`` with 2025's ``dropout_forward``."""
from ..nndl.cnn import *  # noqa: F401,F403
from ..nndl.cnn import __all__  # noqa: F401
from .layers import dropout_forward  # noqa: F401
