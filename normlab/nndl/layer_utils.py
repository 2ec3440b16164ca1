"""``nndl.layer_utils``: ``affine_relu_forward``/``_backward`` (normlab's), and
``affine_batchnorm_relu_forward(x, w, b, gamma, beta, bn_param)``/``_backward``, the
sandwich the course suggests writing; plus ``nndl.layers``."""
from ..layer_utils import affine_bn_relu_backward, affine_bn_relu_forward, affine_relu_backward, affine_relu_forward
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers

affine_batchnorm_relu_forward = affine_bn_relu_forward
affine_batchnorm_relu_backward = affine_bn_relu_backward

__all__ = ["affine_relu_forward", "affine_relu_backward",
           "affine_batchnorm_relu_forward", "affine_batchnorm_relu_backward", *_layers]
