"""``cs231n.layers`` as in 2017: normlab's layers, with ``dropout_forward`` taking the
DROP probability (``normlab.faces.dropout``, CS231n 2017's mask)."""
from ..cs231n.layers import *  # noqa: F401,F403
from ..cs231n.layers import __all__  # noqa: F401
from ..faces.dropout import drop_dropout_forward as _drop_dropout_forward
from ..nn.losses import softmax_loss_log_probs as softmax_loss  # noqa: F401  (the template's order)


def dropout_forward(x, dropout_param):
    """Inverted dropout; ``dropout_param``: ``mode`` 'train' or 'test', ``p`` the probability
    of DROPPING a unit, optional ``seed`` (``np.random.seed(seed)`` before the draw).
    A unit is kept where ``np.random.rand(*x.shape) >= p``, scaled by ``1 / (1 - p)``.
    Returns ``(out, cache)``; ``dropout_backward(dout, cache)`` is normlab's."""
    return _drop_dropout_forward(x, dropout_param, "cs231n_2017")
