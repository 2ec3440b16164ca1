"""``cs231n.fast_layers``: the vectorised convolution and pooling, no compiled extension.

The course's module offers several implementations (im2col with a Cython
helper, strides, reshape); here every name is normlab's one fast
implementation (``im2col`` + BLAS for convolution, strided views for pooling),
which gives the same numbers as the naive loops. A cache from any of the
forward names goes to any of the matching backward names.
"""
from ..nn.conv import conv_backward_fast, conv_forward_fast
from ..nn.pool import max_pool_backward_fast, max_pool_forward_fast

conv_forward_im2col = conv_forward_strides = conv_forward_fast
conv_backward_im2col = conv_backward_strides = conv_backward_fast
max_pool_forward_reshape = max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_reshape = max_pool_backward_im2col = max_pool_backward_fast

__all__ = ["conv_forward_fast", "conv_backward_fast", "max_pool_forward_fast", "max_pool_backward_fast",
           "conv_forward_im2col", "conv_backward_im2col", "conv_forward_strides", "conv_backward_strides",
           "max_pool_forward_reshape", "max_pool_backward_reshape",
           "max_pool_forward_im2col", "max_pool_backward_im2col"]
