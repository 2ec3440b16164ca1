"""``cs231n.classifiers.cnn`` as in 2018-2020: ``ThreeLayerConvNet`` (the template's loss
order, ``normlab.faces.nets.TEMPLATE_LOSS``), plus the layers, sandwich and fast layers."""
from ...cs231n.classifiers.cnn import *  # noqa: F401,F403
from ...cs231n.classifiers.cnn import __all__  # noqa: F401
from ...faces.nets import TEMPLATE_LOSS, CourseConvNet
from ..layer_utils import *  # noqa: F401,F403


class ThreeLayerConvNet(CourseConvNet):
    __doc__ = CourseConvNet.__doc__
    loss_layer = TEMPLATE_LOSS
