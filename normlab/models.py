"""The course's models: ``FullyConnectedNet`` and ``ThreeLayerConvNet``."""
from .nets.cnn import ThreeLayerConvNet
from .nets.fc import NORMALIZATIONS, FullyConnectedNet

__all__ = ["FullyConnectedNet", "ThreeLayerConvNet", "NORMALIZATIONS"]
