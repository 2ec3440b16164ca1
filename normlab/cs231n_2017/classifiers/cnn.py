"""``cs231n.classifiers.cnn`` as in 2017: ``ThreeLayerConvNet`` (the template's loss order)
and the layers, with 2017's dropout."""
from ...cs231n_2019.classifiers.cnn import *  # noqa: F401,F403
from ...cs231n_2019.classifiers.cnn import ThreeLayerConvNet, __all__  # noqa: F401
from ..layer_utils import *  # noqa: F401,F403
