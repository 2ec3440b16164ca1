"""The course's models: ``FullyConnectedNet`` and ``ThreeLayerConvNet``."""
from .cnn import ThreeLayerConvNet
from .fc_net import NORMALIZATIONS, FullyConnectedNet

__all__ = ["FullyConnectedNet", "ThreeLayerConvNet", "NORMALIZATIONS"]
