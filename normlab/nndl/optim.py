"""``nndl.optim``: ``sgd``, ``sgd_momentum``, ``sgd_nesterov_momentum``, ``rmsprop`` and
``adam`` (normlab's equations), ``update(w, dw, config) -> (next_w, config)``, with the
state under nndl's names: ``velocity``; RMSProp's ``a``; Adam's ``v`` (first moment),
``a`` (second moment) and ``t`` (incremented before use)."""
from .. import optim as _core
from ..faces.optim import with_state_names

sgd = _core.sgd
sgd_momentum = _core.sgd_momentum
sgd_nesterov_momentum = _core.sgd_nesterov_momentum
rmsprop = with_state_names(_core.rmsprop, {"a": "cache"})
adam = with_state_names(_core.adam, {"v": "m", "a": "v"})

__all__ = ["sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam"]
