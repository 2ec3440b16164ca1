"""The courses' model classes as keyword adapters over normlab's nets.

Each class takes its course's signature, translates it to
:class:`~normlab.models.FullyConnectedNet` / :class:`~normlab.models.ThreeLayerConvNet`
and computes nothing itself. Weights come from the global ``np.random`` in the
course's order (W1, W2, ... of the layers in turn), so ``np.random.seed`` before a
course cell gives the course's weights.
"""
from __future__ import annotations

import numpy as np

from ..nets.cnn import ThreeLayerConvNet
from ..nets.fc import FullyConnectedNet
from ..nn.losses import softmax_loss_log_probs
from .dropout import drop_dropout_forward, probability

#: The loss of the CS231n templates that give students ``softmax_loss`` (2017-2020):
#: the same function, summed in their order (``softmax_loss_log_probs``). UCLA's
#: template gives the older probabilities form, normlab's ``softmax_loss``.
TEMPLATE_LOSS = staticmethod(softmax_loss_log_probs)

__all__ = ["TEMPLATE_LOSS", "KeepFullyConnectedNet", "DropFullyConnectedNet", "TwoLayerNet", "NndlTwoLayerNet",
           "CourseConvNet", "BatchnormFlagConvNet"]


class KeepFullyConnectedNet(FullyConnectedNet):
    """CS231n 2018-2020: ``FullyConnectedNet(hidden_dims, input_dim=3*32*32, num_classes=10,
    dropout=1, normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None)``.

    ``dropout`` is the KEEP probability (1: no dropout), ``normalization`` None,
    'batchnorm' or 'layernorm'; ``seed`` fixes the dropout masks.
    """
    loss_layer = TEMPLATE_LOSS

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout=1, normalization=None,
                 reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None):
        super().__init__(hidden_dims, input_dim=input_dim, num_classes=num_classes,
                         dropout_keep_ratio=probability(dropout, "dropout", "keep"),
                         normalization=normalization, reg=reg, weight_scale=weight_scale, dtype=dtype, seed=seed)


class DropFullyConnectedNet(FullyConnectedNet):
    """CS231n 2017 and UCLA nndl: ``FullyConnectedNet(hidden_dims, input_dim=3*32*32,
    num_classes=10, dropout=0, use_batchnorm=False, reg=0.0, weight_scale=1e-2,
    dtype=np.float32, seed=None)``.

    ``dropout`` is the DROP probability (0: no dropout), ``use_batchnorm`` adds
    batch norm before every hidden ReLU. ``dropout_param['p']`` holds the drop
    probability too, as in the course; the mask follows ``keep_rule`` (a key
    of ``normlab.faces.dropout.KEEP_RULES``), set by each face.
    """
    keep_rule: str = ""

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout=0, use_batchnorm=False,
                 reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None):
        p = probability(dropout, "dropout", "drop")
        super().__init__(hidden_dims, input_dim=input_dim, num_classes=num_classes, dropout_keep_ratio=1 - p,
                         normalization="batchnorm" if use_batchnorm else None, reg=reg,
                         weight_scale=weight_scale, dtype=dtype, seed=seed)
        self.use_batchnorm = bool(use_batchnorm)
        if self.use_dropout:
            self.dropout_param["p"] = p

    def dropout_layer(self, x, dropout_param):
        return drop_dropout_forward(x, dropout_param, self.keep_rule)

    @property
    def dropout_masks(self) -> str:
        """The course's mask rule (``Architecture.dropout.masks``): the key of ``KEEP_RULES``."""
        return self.keep_rule


class TwoLayerNet(FullyConnectedNet):
    """CS231n 2017-2020: ``TwoLayerNet(input_dim=3*32*32, hidden_dim=100, num_classes=10,
    weight_scale=1e-3, reg=0.0)``: affine - relu - affine - softmax, parameters
    W1 (D, H), b1, W2 (H, C), b2, in float64 as the course's (it has no dtype).
    """
    loss_layer = TEMPLATE_LOSS

    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0):
        super().__init__([hidden_dim], input_dim=input_dim, num_classes=num_classes, reg=reg,
                         weight_scale=weight_scale, dtype=np.float64)


class NndlTwoLayerNet(DropFullyConnectedNet):
    """UCLA nndl (2022+): ``TwoLayerNet(input_dim=3*32*32, hidden_dims=100, num_classes=10,
    dropout=0, weight_scale=1e-3, reg=0.0)``; ``hidden_dims`` is one integer and
    ``dropout`` (drop probability) applies after the hidden ReLU. float64.
    """
    keep_rule = "nndl"

    def __init__(self, input_dim=3 * 32 * 32, hidden_dims=100, num_classes=10, dropout=0, weight_scale=1e-3,
                 reg=0.0):
        super().__init__([hidden_dims], input_dim=input_dim, num_classes=num_classes, dropout=dropout,
                         reg=reg, weight_scale=weight_scale, dtype=np.float64)


class CourseConvNet(ThreeLayerConvNet):
    """CS231n: ``ThreeLayerConvNet(input_dim=(3, 32, 32), num_filters=32, filter_size=7,
    hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32)``.

    normlab's net, computing in the input's dtype as the course's does (float64
    images with float32 weights run in float64), so a seeded course cell prints
    the course's loss to the last digit.
    """
    cast_input = False


class BatchnormFlagConvNet(CourseConvNet):
    """UCLA nndl: ``ThreeLayerConvNet(input_dim=(3, 32, 32), num_filters=32, filter_size=7,
    hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32,
    use_batchnorm=False)``; with batch norm, spatial batch norm after the conv
    and batch norm after the hidden affine layer (gamma1/beta1, gamma2/beta2).
    Computes in the input's dtype, as the course's net.
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100, num_classes=10,
                 weight_scale=1e-3, reg=0.0, dtype=np.float32, use_batchnorm=False):
        super().__init__(input_dim=input_dim, num_filters=num_filters, filter_size=filter_size,
                         hidden_dim=hidden_dim, num_classes=num_classes, weight_scale=weight_scale, reg=reg,
                         dtype=dtype, normalization="batchnorm" if use_batchnorm else None)
        self.use_batchnorm = bool(use_batchnorm)
