"""``cs231n.classifiers.cnn`` as in 2018-2020: the same as ``normlab.cs231n.classifiers.cnn``."""
from ...cs231n.classifiers.cnn import *  # noqa: F401,F403
from ...cs231n.classifiers.cnn import __all__  # noqa: F401
