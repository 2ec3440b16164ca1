"""``nndl.layer_utils`` as in the 2025 template: ``normlab.nndl.layer_utils`` with 2025's ``dropout_forward``."""
from ..nndl.layer_utils import *  # noqa: F401,F403
from ..nndl.layer_utils import __all__  # noqa: F401
from .layers import dropout_forward  # noqa: F401
