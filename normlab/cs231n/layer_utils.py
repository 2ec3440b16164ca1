"""``cs231n.layer_utils``: the sandwich layers (``normlab.layer_utils``), and the
layers themselves, which the course's module imports with ``from .layers import *``."""
from ..layer_utils import *  # noqa: F401,F403
from ..layer_utils import __all__ as _sandwiches
from ..layers import *  # noqa: F401,F403
from ..layers import __all__ as _layers

__all__ = [*_layers, *_sandwiches]
