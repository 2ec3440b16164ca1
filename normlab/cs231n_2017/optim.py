"""``cs231n.optim`` as in 2017: normlab's rules, ``adam`` starting at ``t = 1``."""
from ..cs231n.optim import rmsprop, sgd, sgd_momentum
from ..faces.optim import adam_t_starts_at

adam = adam_t_starts_at(1)

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam"]
