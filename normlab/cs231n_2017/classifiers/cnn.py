"""``cs231n.classifiers.cnn`` as in 2017: ``ThreeLayerConvNet`` and the layers, with 2017's dropout."""
from ...cs231n.classifiers.cnn import *  # noqa: F401,F403
from ...cs231n.classifiers.cnn import __all__  # noqa: F401
from ..layers import dropout_forward  # noqa: F401
