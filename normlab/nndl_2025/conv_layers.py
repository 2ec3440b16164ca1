"""``nndl.conv_layers`` as in the 2025 template: ``normlab.nndl.conv_layers`` with 2025's ``dropout_forward``."""
from ..nndl.conv_layers import *  # noqa: F401,F403
from ..nndl.conv_layers import __all__  # noqa: F401
from .layers import dropout_forward  # noqa: F401
