"""``cs231n.data_utils``: CIFAR-10 loaders (``normlab.data``), read with a safe unpickler.

``get_CIFAR10_data`` looks for ``cifar-10-batches-py`` where normlab looks
(``data_dir=``, ``$NORMLAB_DATA``, ``~/.cache/normlab``, ...); the course's
default of a folder beside the notebook is one ``data_dir=`` away.
"""
from ..data import get_CIFAR10_data, load_CIFAR10, load_CIFAR_batch

__all__ = ["get_CIFAR10_data", "load_CIFAR10", "load_CIFAR_batch"]
