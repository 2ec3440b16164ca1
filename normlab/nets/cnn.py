"""A three-layer convolutional net with optional spatial normalization.

    conv - [norm] - relu - 2x2 max pool - affine - [norm] - relu - affine - softmax

The conv keeps the spatial size (stride 1, pad (filter_size - 1) // 2). With
``normalization='batchnorm'`` the conv output gets spatial batch norm and the
hidden affine batch norm; with ``'groupnorm'`` the conv output gets group norm
(``num_groups`` groups) and the hidden affine layer norm, its 1-D counterpart
(group norm with one group). Parameters: W1, b1, W2, b2, W3, b3 and, when
normalized, gamma1, beta1 (num_filters,), gamma2, beta2 (hidden_dim,).
"""
from __future__ import annotations

import numpy as np

from ..nn._checks import as_float_array, finite_nonnegative, require_ndim
from ..nn.basic import affine_backward, affine_forward, relu_backward, relu_forward
from ..nn.norm.batchnorm import BatchNormConfig, batchnorm_after_bias, batchnorm_backward_alt, spatial_batchnorm_backward
from ..nn.conv import conv_backward_fast, conv_forward_fast
from .fc import (REG_MEANING, WEIGHT_SCALE_MEANING, RunningStatsState, check_normalization, gaussian,
                     init_rng)
from ..nn.losses import softmax_loss
from ..nn.norm.group import layernorm_backward, layernorm_forward, spatial_groupnorm_backward, spatial_groupnorm_forward
from ..nn.pool import max_pool_backward_fast, max_pool_forward_fast

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
    - dtype: numpy datatype to use for computation.
    - normalization: None, 'batchnorm' or 'groupnorm'
    - num_groups: groups for 'groupnorm' (must divide num_filters)
    - rng_seed: (normlab) seeds the weight initialization (None: global RNG, as the course)
    - norm_param: batch-norm settings ('eps', 'momentum', 'convention')
    """

    #: Cast the input to ``dtype`` before the forward pass. The course's net does
    #: not: float64 images meet float32 weights and the arithmetic runs in
    #: float64 (the CS231n face keeps that, so its losses print the course's digits).
    cast_input = True
    #: The loss on the scores, ``(scores, y) -> (loss, dscores)`` (see FullyConnectedNet).
    loss_layer = staticmethod(softmax_loss)

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100, num_classes=10,
                 weight_scale=1e-3, reg=0.0, dtype=np.float32, normalization=None, num_groups=4, rng_seed=None,
                 norm_param=None):
        self.normalization = check_normalization(normalization, (None, "batchnorm", "groupnorm"))
        if len(input_dim) != 3:
            raise ValueError(f"input_dim must be (C, H, W), got {input_dim!r}")
        C, H, W = map(int, input_dim)
        if filter_size % 2 != 1:
            raise ValueError(f"filter_size must be odd so the conv keeps the spatial size, got {filter_size}")
        if H % 2 or W % 2:
            raise ValueError(f"input height and width must be even for the 2x2 pool, got {H}x{W}")
        if normalization == "groupnorm" and num_filters % num_groups:
            raise ValueError(f"num_filters={num_filters} is not divisible by num_groups={num_groups}")
        weight_scale = finite_nonnegative(weight_scale, "weight_scale", WEIGHT_SCALE_MEANING, allow_zero=False)
        self.reg = finite_nonnegative(reg, "reg", REG_MEANING)
        self.num_classes = int(num_classes)
        self.dtype = np.dtype(dtype)
        self.num_groups = int(num_groups)
        self.rng = init_rng(rng_seed)
        F = int(num_filters)
        self.params = {
            "W1": gaussian(self.rng, (F, C, filter_size, filter_size), weight_scale, self.dtype),
            "b1": np.zeros(F, dtype=self.dtype),
            "W2": gaussian(self.rng, (F * (H // 2) * (W // 2), hidden_dim), weight_scale, self.dtype),
            "b2": np.zeros(hidden_dim, dtype=self.dtype),
            "W3": gaussian(self.rng, (hidden_dim, num_classes), weight_scale, self.dtype),
            "b3": np.zeros(num_classes, dtype=self.dtype),
        }
        if self.normalization:
            for i, n in ((1, F), (2, hidden_dim)):
                self.params[f"gamma{i}"] = np.ones(n, dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(n, dtype=self.dtype)
        norm_param = dict(norm_param or {})
        if self.normalization == "batchnorm":
            BatchNormConfig(**norm_param)
            self.bn_params = [{"mode": "train", **norm_param} for _ in range(2)]
        else:
            self.bn_params = [{"eps": norm_param.get("eps", 1e-5)} for _ in range(2)] if self.normalization else []
        self._zero_bias = {1: np.zeros(F, dtype=self.dtype), 2: np.zeros(hidden_dim, dtype=self.dtype)}
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        self.input_dim = (C, H, W)

    def _linear_norm(self, i, linear, h, spatial):
        """Layer i's conv (spatial) or affine, then its normalization when there is one.

        Before batch norm the bias goes to the norm (``batchnorm_after_bias``):
        the centering cancels it, so it only reaches the running mean.
        """
        W, bias = self.params[f"W{i}"], self.params[f"b{i}"]
        if self.normalization != "batchnorm":
            h, lc = linear(h, W, bias)
            if not self.normalization:
                return h, lc, None
            g, b, p = self.params[f"gamma{i}"], self.params[f"beta{i}"], self.bn_params[i - 1]
            h, nc = spatial_groupnorm_forward(h, g, b, self.num_groups, p) if spatial else \
                layernorm_forward(h, g, b, p)
            return h, lc, nc
        h, lc = linear(h, W, self._zero_bias[i])
        h, nc = batchnorm_after_bias(h, bias, self.params[f"gamma{i}"], self.params[f"beta{i}"],
                                     self.bn_params[i - 1])
        return h, lc, nc

    def _norm_backward(self, dh, cache, spatial):
        if self.normalization == "batchnorm":
            return (spatial_batchnorm_backward if spatial else batchnorm_backward_alt)(dh, cache)
        return (spatial_groupnorm_backward if spatial else layernorm_backward)(dh, cache)

    def loss(self, X, y=None):
        """Scores (N, num_classes) when y is None; else (loss, grads)."""
        X = as_float_array(X, "X")
        if self.cast_input:
            X = X.astype(self.dtype, copy=False)
        require_ndim(X, 4, "input X", "(N, C, H, W)")
        if X.shape[1:] != self.input_dim:
            raise ValueError(f"input X has per-sample shape {X.shape[1:]}, the net expects {self.input_dim}")
        mode = "test" if y is None else "train"
        if self.normalization == "batchnorm":
            for p in self.bn_params:
                p["mode"] = mode
        P = self.params
        conv = lambda x, w, b: conv_forward_fast(x, w, b, self.conv_param)
        h, conv_c, n1 = self._linear_norm(1, conv, X, spatial=True)
        h, r1 = relu_forward(h)
        h, pool_c = max_pool_forward_fast(h, self.pool_param)
        h, fc2, n2 = self._linear_norm(2, affine_forward, h, spatial=False)
        h, r2 = relu_forward(h)
        scores, fc3 = affine_forward(h, P["W3"], P["b3"])
        if y is None:
            return scores

        loss, d = self.loss_layer(scores, y)
        grads = {}
        d, grads["W3"], grads["b3"] = affine_backward(d, fc3)
        d = relu_backward(d, r2)
        if self.normalization:
            d, grads["gamma2"], grads["beta2"] = self._norm_backward(d, n2, spatial=False)
        d, grads["W2"], grads["b2"] = affine_backward(d, fc2)
        d = max_pool_backward_fast(d, pool_c)
        d = relu_backward(d, r1)
        if self.normalization:
            d, grads["gamma1"], grads["beta1"] = self._norm_backward(d, n1, spatial=True)
        _, grads["W1"], grads["b1"] = conv_backward_fast(d, conv_c)
        for k in ("W1", "W2", "W3"):
            loss += 0.5 * self.reg * float(np.sum(P[k].astype(np.float64) ** 2))
            grads[k] += self.reg * P[k]
        return loss, grads
