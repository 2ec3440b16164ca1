"""The course's models: ``FullyConnectedNet`` and ``ThreeLayerConvNet``."""
from .nets.cnn import ThreeLayerConvNet
from .nets.fc import FullyConnectedNet

#: The normalizations ``FullyConnectedNet`` takes.
NORMALIZATIONS = FullyConnectedNet.normalizations

__all__ = ["FullyConnectedNet", "ThreeLayerConvNet", "NORMALIZATIONS"]
