"""``cs231n.layers``: normlab's layers under the course's names (``normlab.layers``)."""
from ..layers import *  # noqa: F401,F403
from ..layers import __all__  # noqa: F401
