"""``nndl.conv_layers``: naive convolution and max pooling, spatial batch norm (normlab's),
and, as the course's module imports them with ``*``, ``nndl.layers``."""
from ..nn.norm.batchnorm import spatial_batchnorm_backward, spatial_batchnorm_forward
from ..nn.conv import conv_backward_naive, conv_forward_naive
from ..nn.pool import max_pool_backward_naive, max_pool_forward_naive
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers

__all__ = ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive",
           "spatial_batchnorm_forward", "spatial_batchnorm_backward", *_layers]
