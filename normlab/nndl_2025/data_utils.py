"""``data_utils`` as in the 2025 nndl template: ``normlab.nndl.data_utils``."""
from ..nndl.data_utils import *  # noqa: F401,F403
from ..nndl.data_utils import __all__  # noqa: F401
