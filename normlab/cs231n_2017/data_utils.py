"""``cs231n.data_utils`` as in 2017: the same as ``normlab.cs231n.data_utils``."""
from ..cs231n.data_utils import *  # noqa: F401,F403
from ..cs231n.data_utils import __all__  # noqa: F401
