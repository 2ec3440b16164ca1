"""``cs231n.optim``: ``sgd``, ``sgd_momentum``, ``rmsprop``, ``adam``, ``update(w, dw, config)
-> (next_w, config)``, state under ``velocity``, ``cache``, ``m``/``v``/``t`` (``normlab.optim``)."""
from ..optim import adam, rmsprop, sgd, sgd_momentum

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam"]
