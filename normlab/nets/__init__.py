"""The networks of the courses: the fully connected net and the three-layer convolutional net,
the normalization table they share, their architecture description and the model protocol."""
from .architecture import Architecture, Conv, Dropout
from .cnn import ThreeLayerConvNet
from .fc import FullyConnectedNet
from .norms import NormConfig
from .protocol import Model

__all__ = ["Model", "Architecture", "Conv", "Dropout", "NormConfig", "FullyConnectedNet",
           "ThreeLayerConvNet"]
