"""The course's flat layer API: every ``*_forward`` returns ``(out, cache)``,
every ``*_backward(dout, cache)`` returns the gradients. Implementations live
in one module per concern; this module only re-exports them."""
from .nn.basic import (affine_backward, affine_forward, dropout_backward, dropout_forward, relu_backward,
                    relu_forward, sigmoid_backward, sigmoid_forward)
from .nn.norm.batchnorm import (batchnorm_backward, batchnorm_backward_alt, batchnorm_forward, spatial_batchnorm_backward,
                        spatial_batchnorm_forward)
from .nn.conv import conv_backward_fast, conv_backward_naive, conv_forward_fast, conv_forward_naive
from .nn.losses import softmax_loss, svm_loss
from .nn.norm.group import (instancenorm_backward, instancenorm_forward, layernorm_backward, layernorm_forward,
                    spatial_groupnorm_backward, spatial_groupnorm_forward)
from .nn.pool import max_pool_backward_fast, max_pool_backward_naive, max_pool_forward_fast, max_pool_forward_naive

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
    "softmax_loss", "svm_loss", "dropout_forward", "dropout_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "instancenorm_forward", "instancenorm_backward",
    "conv_forward_naive", "conv_backward_naive", "conv_forward_fast", "conv_backward_fast",
    "max_pool_forward_naive", "max_pool_backward_naive", "max_pool_forward_fast", "max_pool_backward_fast",
]
