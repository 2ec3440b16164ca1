"""``nndl.layer_tests`` as in the 2025 template: ``normlab.nndl.layer_tests``."""
from ..nndl.layer_tests import *  # noqa: F401,F403
from ..nndl.layer_tests import __all__  # noqa: F401
