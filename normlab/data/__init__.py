"""Real data, loaded safely: Fashion-MNIST, MNIST and CIFAR-10.

The loaders return the course's data dict ``X_train, y_train, X_val, y_val,
X_test, y_test`` (images channels-first float32, mean-subtracted by default):

* :func:`load_fashion_mnist`, :func:`load_mnist`: (N, 1, 28, 28), scaled to
  [0, 1], 59,000 / 1,000 / 10,000;
* :func:`get_CIFAR10_data`: (N, 3, 32, 32), 0..255, 49,000 / 1,000 / 1,000.

Data is looked for in ``data_dir``, else ``$NORMLAB_DATA``, ``~/.cache/normlab``
and ``/usr/share/datasets`` (see :mod:`normlab.data.locate`); with
``download=True`` a missing dataset is downloaded and MD5-verified
(:mod:`normlab.data.download`). Files are validated on every load (IDX headers
and lengths, label ranges); CIFAR pickles are read with an allow-list
unpickler (:mod:`normlab.data.safe_pickle`) that cannot run code.
"""
from .cifar import get_CIFAR10_data, load_CIFAR10, load_CIFAR_batch
from .download import fetch
from .errors import DataError, DatasetNotFoundError, DownloadError
from .info import dataset_info, format_info
from .mnist import load_fashion_mnist, load_mnist

__all__ = ["load_fashion_mnist", "load_mnist", "get_CIFAR10_data", "load_CIFAR10", "load_CIFAR_batch",
           "fetch", "dataset_info", "format_info",
           "DataError", "DatasetNotFoundError", "DownloadError"]
