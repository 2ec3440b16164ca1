"""``data_utils`` of the nndl helper package (``cs231n.`` or ``utils.``): ``normlab.cs231n.data_utils``."""
from ..cs231n.data_utils import *  # noqa: F401,F403
from ..cs231n.data_utils import __all__  # noqa: F401
