"""A three-layer convolutional net with optional spatial normalization.

    conv - [norm] - relu - 2x2 max pool - affine - [norm] - relu - affine - softmax

The conv keeps the spatial size (stride 1, pad (filter_size - 1) // 2). With
``normalization='batchnorm'`` the conv output gets spatial batch norm and the
hidden affine batch norm; with ``'groupnorm'`` the conv output gets group norm
(``num_groups`` groups) and the hidden affine layer norm, its 1-D counterpart
(group norm with one group); the layers come from the table of
``normlab.nets.norms``. Parameters: W1, b1, W2, b2, W3, b3 and, when
normalized, gamma1, beta1 (num_filters,), gamma2, beta2 (hidden_dim,).
"""
from __future__ import annotations

import numpy as np

from ..nn._checks import as_float_array, require_ndim
from ..nn.basic import affine_backward, affine_forward, relu_backward, relu_forward
from ..nn.conv import conv_backward_fast, conv_forward_fast
from ..nn.losses import softmax_loss
from ..nn.pool import max_pool_backward_fast, max_pool_forward_fast
from .architecture import Architecture, Conv
from .common import add_l2, check_dtype, check_reg, check_sizes, check_weight_scale, gaussian, init_rng
from .norms import RunningStatsState, lookup

__all__ = ["ThreeLayerConvNet"]


class ThreeLayerConvNet(RunningStatsState):
    """Inputs:
    - input_dim: Tuple (C, H, W) giving size of input data
    - num_filters: Number of filters to use in the convolutional layer
    - filter_size: Width/height of filters to use in the convolutional layer (odd)
    - hidden_dim: Number of units to use in the fully-connected hidden layer
    - num_classes: Number of scores to produce from the final affine layer.
    - weight_scale: Scalar giving standard deviation for random initialization of weights
      (finite, > 0).
    - reg: Scalar giving L2 regularization strength (finite, >= 0).
    - dtype: np.float32 or np.float64, of the parameters (and, see ``cast_input``, the arithmetic).
    - normalization: None, 'batchnorm' or 'groupnorm'
    - num_groups: groups for 'groupnorm' (must divide num_filters)
    - rng_seed: (normlab) seeds the weight initialization (None: global RNG, as the course)
    - norm_param: settings of the norm layers: batch norm 'eps', 'momentum', 'convention';
      group/layer norm 'eps'
    """

    #: The normalizations this net takes: those of the table with a layer after a conv.
    normalizations = (None, "batchnorm", "groupnorm")
    #: Cast the input to ``dtype`` before the forward pass. The course's net does
    #: not: float64 images meet float32 weights and the arithmetic runs in
    #: float64 (the CS231n face keeps that, so its losses print the course's digits).
    cast_input = True
    #: The loss on the scores, ``(scores, y) -> (loss, dscores)`` (see FullyConnectedNet).
    loss_layer = staticmethod(softmax_loss)
    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100, num_classes=10,
                 weight_scale=1e-3, reg=0.0, dtype=np.float32, normalization=None, num_groups=4, rng_seed=None,
                 norm_param=None):
        self._norm = norm = lookup(normalization, self.normalizations)
        self.normalization = normalization
        if len(input_dim) != 3:
            raise ValueError(f"input_dim must be (C, H, W), got {input_dim!r}")
        C, H, W = map(int, input_dim)
        check_sizes([C, H, W, num_filters, filter_size, hidden_dim, num_classes],
                    f"input_dim={input_dim!r}, num_filters={num_filters!r}, filter_size={filter_size!r}, "
                    f"hidden_dim={hidden_dim!r}, num_classes={num_classes!r}")
        if filter_size % 2 != 1:
            raise ValueError(f"filter_size must be odd so the conv keeps the spatial size, got {filter_size}")
        if H % 2 or W % 2:
            raise ValueError(f"input height and width must be even for the 2x2 pool, got {H}x{W}")
        if norm and norm.grouped and num_filters % num_groups:
            raise ValueError(f"num_filters={num_filters} is not divisible by num_groups={num_groups}")
        weight_scale = check_weight_scale(weight_scale)
        self.reg = check_reg(reg)
        self.num_classes = int(num_classes)
        self.dtype = check_dtype(dtype)
        self.num_groups = int(num_groups)
        # The weights' generator; the net draws nothing after construction (no dropout), but the
        # Solver checkpoints model.rng as it is.
        self.rng = rng = init_rng(rng_seed)
        F = int(num_filters)
        self.params = {
            "W1": gaussian(rng, (F, C, filter_size, filter_size), weight_scale, self.dtype),
            "b1": np.zeros(F, dtype=self.dtype),
            "W2": gaussian(rng, (F * (H // 2) * (W // 2), hidden_dim), weight_scale, self.dtype),
            "b2": np.zeros(hidden_dim, dtype=self.dtype),
            "W3": gaussian(rng, (hidden_dim, num_classes), weight_scale, self.dtype),
            "b3": np.zeros(num_classes, dtype=self.dtype),
        }
        if norm:
            for i, n in ((1, F), (2, hidden_dim)):
                self.params[f"gamma{i}"] = np.ones(n, dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(n, dtype=self.dtype)
        norm_param = dict(norm_param or {})
        self._norm_config = norm.config(norm_param, self.num_groups) if norm else None   # validated once, here
        self.bn_params = [norm.layer_param(norm_param) for _ in range(2)] if norm else []
        self._zero_bias = {1: np.zeros(F, dtype=self.dtype), 2: np.zeros(hidden_dim, dtype=self.dtype)}
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        self.input_dim = (C, H, W)

    def architecture(self) -> Architecture:
        """The layers and settings (``normlab.nets.architecture``)."""
        F, _, k, _ = self.params["W1"].shape
        return Architecture(
            kind="cnn", input_dim=self.input_dim, hidden_dims=(self.params["W2"].shape[1],),
            num_classes=self.num_classes, dtype=self.dtype, normalization=self.normalization,
            norm=self._norm_config, biases=(True, True, True),
            conv=Conv(F, k, self.conv_param["stride"], self.conv_param["pad"], self.pool_param["stride"]))

    def _linear_norm(self, i, linear, h, spatial):
        """Layer i's conv (spatial) or affine, then its normalization when there is one.

        A folding norm (batch norm) gets the bias instead of the linear layer
        (``batchnorm_after_bias``): the centering cancels it, so it only reaches the running mean.
        """
        norm = self._norm
        W, bias = self.params[f"W{i}"], self.params[f"b{i}"]
        h, lc = linear(h, W, self._zero_bias[i] if norm and norm.folds_bias else bias)
        if not norm:
            return h, lc, None
        layer = norm.spatial if spatial else norm.flat
        h, nc = layer.forward(h, bias, self.params[f"gamma{i}"], self.params[f"beta{i}"], self.bn_params[i - 1],
                              self.num_groups)
        return h, lc, nc

    def scores(self, X, mode="test"):
        """Class scores (N, num_classes) with every normalization layer in ``mode``.

        ``mode='train'`` normalizes with the batch's own statistics and, as in
        training, updates the running statistics (save them with
        ``state_arrays()`` to undo that); parameters are never changed.
        """
        return self._forward(X, mode)[0]

    def loss(self, X, y=None):
        """Scores (N, num_classes) when y is None (test mode); else (loss, grads) in train mode."""
        scores, caches = self._forward(X, "test" if y is None else "train")
        if y is None:
            return scores
        return self._backward(scores, y, caches)

    def _forward(self, X, mode):
        X = as_float_array(X, "X")
        if self.cast_input:
            X = X.astype(self.dtype, copy=False)
        require_ndim(X, 4, "input X", "(N, C, H, W)")
        if X.shape[1:] != self.input_dim:
            raise ValueError(f"input X has per-sample shape {X.shape[1:]}, the net expects {self.input_dim}")
        if mode not in ("train", "test"):
            raise ValueError(f"unknown mode {mode!r}; expected 'train' or 'test'")
        if self._norm and self._norm.running_stats:
            for p in self.bn_params:
                p["mode"] = mode
        conv = lambda x, w, b: conv_forward_fast(x, w, b, self.conv_param)
        h, conv_c, n1 = self._linear_norm(1, conv, X, spatial=True)
        h, r1 = relu_forward(h)
        h, pool_c = max_pool_forward_fast(h, self.pool_param)
        h, fc2, n2 = self._linear_norm(2, affine_forward, h, spatial=False)
        h, r2 = relu_forward(h)
        scores, fc3 = affine_forward(h, self.params["W3"], self.params["b3"])
        return scores, (conv_c, n1, r1, pool_c, fc2, n2, r2, fc3)

    def _backward(self, scores, y, caches):
        conv_c, n1, r1, pool_c, fc2, n2, r2, fc3 = caches
        norm, P = self._norm, self.params
        loss, d = self.loss_layer(scores, y)
        grads = {}
        d, grads["W3"], grads["b3"] = affine_backward(d, fc3)
        d = relu_backward(d, r2)
        if norm:
            d, grads["gamma2"], grads["beta2"] = norm.flat.backward(d, n2)
        d, grads["W2"], grads["b2"] = affine_backward(d, fc2)
        d = max_pool_backward_fast(d, pool_c)
        d = relu_backward(d, r1)
        if norm:
            d, grads["gamma1"], grads["beta1"] = norm.spatial.backward(d, n1)
        _, grads["W1"], grads["b1"] = conv_backward_fast(d, conv_c)
        return add_l2(loss, grads, P, ("W1", "W2", "W3"), self.reg), grads
