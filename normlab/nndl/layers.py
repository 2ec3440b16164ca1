"""``nndl.layers``: affine, ReLU, batch norm, dropout and the losses (normlab's), with
``dropout_forward`` taking the DROP probability (``normlab.faces.dropout``, nndl's mask)."""
from ..nn.basic import affine_backward, affine_forward, dropout_backward, relu_backward, relu_forward
from ..nn.norm.batchnorm import batchnorm_backward, batchnorm_backward_alt, batchnorm_forward
from ..faces.dropout import drop_dropout_forward as _drop_dropout_forward
from ..nn.losses import softmax_loss, svm_loss


def dropout_forward(x, dropout_param):
    """Inverted dropout; ``dropout_param``: ``mode`` 'train' or 'test', ``p`` the probability
    of DROPPING a unit, optional ``seed`` (``np.random.seed(seed)`` before the draw).
    A unit is kept where ``np.random.rand(*x.shape) < 1 - p``, scaled by ``1 / (1 - p)``.
    Returns ``(out, cache)``; ``dropout_backward(dout, cache)`` is normlab's."""
    return _drop_dropout_forward(x, dropout_param, "nndl")


__all__ = ["affine_forward", "affine_backward", "relu_forward", "relu_backward",
           "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
           "dropout_forward", "dropout_backward", "svm_loss", "softmax_loss"]
