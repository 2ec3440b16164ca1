"""A deep residual MLP with batch norm, SkipInit, Fixup or nothing on its branches.

Architecture (``depth`` blocks of ``width`` units)::

    x_0 = relu(X W0 + b0)                          stem
    x_i = x_{i-1} + alpha_i * f_i(x_{i-1})           block i = 1..depth
    scores = x_depth Wout + bout                     softmax loss

The residual stream ``x_i`` is never normalized nor passed through a ReLU, so
the skip path is exactly the identity. The branch ``f_i`` per variant:

- 'plain':     ``f = affine - relu - affine``, alpha = 1 fixed.
- 'batchnorm': ``f = affine - BN - relu - affine - BN``, alpha = 1 fixed: the
  original ResNet branch (He et al. 2016, conv - BN - ReLU - conv - BN) on an
  identity stream. The affine layers before a BN have no bias (BN's beta
  makes it redundant). The BN at the end of the branch gives ``f`` unit
  variance whatever the stream's scale: De & Smith's (2020, section 3)
  argument that the stream's variance then grows by about 1 per block.
- 'skipinit':  the plain branch, times a learnable scalar ``alpha_i``
  initialized to 0 (De & Smith 2020, arXiv:2002.10444, section 4).
- 'fixup':     Zhang, Dauphin & Ma (2019, arXiv:1901.09321), their code's
  block without the ReLU after the addition (our stream has none)::

      f = (relu((x + a1) W1 + a2) + a3) W2 * s + a4

  with scalar biases a1..a4 (init 0) and a scalar multiplier s (init 1); the
  affine layers have no bias of their own. W2 (the branch's last layer) is
  zero-initialized, W1 is He-initialized and scaled by ``depth ** (-1/(2m-2))``
  with m = 2 layers per branch, i.e. ``depth ** -0.5``; the output layer
  (Wout, bout) is zero-initialized, as Fixup's rule 1 says for the classifier.

Weights are He-initialized (``N(0, 2 / fan_in)``) unless ``weight_scale`` fixes
their standard deviation; biases start at 0, BN's gamma at 1 and beta at 0.

Parameter names: ``W0, b0`` (stem), ``Wout, bout`` (output); block i: ``W{i}_1,
W{i}_2`` and per variant ``b{i}_1, b{i}_2`` (plain, skipinit), ``gamma{i}_1,
beta{i}_1, gamma{i}_2, beta{i}_2`` (batchnorm), ``alpha{i}`` (skipinit),
``bias{i}_1..bias{i}_4, scale{i}`` (fixup). Scalars have shape (1,). The L2
penalty ``0.5 * reg * sum(W**2)`` covers the ``W`` arrays only. The batch-norm
layers' running statistics are ``state_arrays()``' ``running_mean{j}`` /
``running_var{j}``, j = 2i - 1 and 2i for block i.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..nn._checks import as_float_array
from ..nn.basic import affine_backward, affine_forward, affine_param_backward, relu_backward, relu_forward
from ..nn.losses import softmax_loss
from ..nn.norm.core import normalize, normalize_backward
from .common import add_l2, check_dtype, check_reg, check_sizes, check_weight_scale, init_rng
from .norms import RunningStatsState

__all__ = ["ResidualMLP", "VARIANTS"]

VARIANTS = ("plain", "batchnorm", "skipinit", "fixup")
BN_EPS = 1e-5          # the course's batch-norm eps
BN_MOMENTUM = 0.9      # the course's: running = 0.9 * running + 0.1 * batch


class BNCache(NamedTuple):
    x_hat_cache: object   # normlab.nn.norm.core.NormCache
    x_hat: np.ndarray
    gamma: np.ndarray


class BlockCache(NamedTuple):
    """What a block's backward needs: the affine, BN (None without) and ReLU caches and the
    branch's output ``f`` before its multiplier (alpha or Fixup's scale)."""
    fc1: object
    bn1: object
    relu: object
    fc2: object
    bn2: object
    f: np.ndarray


class ResidualMLP(RunningStatsState):
    """Residual MLP with softmax loss (see the module docstring for the block).

    Inputs:
    - input_dim, num_classes: sizes of a sample and of the scores.
    - depth: the number of residual blocks (>= 1); width: the stream's size.
    - variant: one of VARIANTS.
    - weight_scale: None for He init, else the standard deviation of every initial
      weight (Fixup's zero and rescaled layers keep their rule).
    - dtype: float32 (default) or float64 (gradient checks); rng_seed: the weights'
      generator (None: the global np.random); reg: the L2 strength on the weights.
    """

    def __init__(self, input_dim, num_classes, depth=32, width=64, variant="plain", weight_scale=None,
                 dtype=np.float32, rng_seed=None, reg=0.0):
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(map(repr, VARIANTS))}")
        check_sizes([input_dim, num_classes, depth, width],
                    f"input_dim={input_dim!r}, num_classes={num_classes!r}, depth={depth!r}, width={width!r}")
        self.variant, self.depth, self.width = variant, int(depth), int(width)
        self.input_dim, self.num_classes = int(input_dim), int(num_classes)
        self.dtype = check_dtype(dtype)
        self.weight_scale = None if weight_scale is None else check_weight_scale(weight_scale)
        self.reg = check_reg(reg)
        self.rng = init_rng(rng_seed)
        D, W = self.input_dim, self.width
        p = {"W0": self._weight(D, W), "b0": self._zeros(W)}
        for i in range(1, self.depth + 1):
            p[f"W{i}_1"], p[f"W{i}_2"] = self._weight(W, W), self._weight(W, W)
            if variant in ("plain", "skipinit"):
                p[f"b{i}_1"], p[f"b{i}_2"] = self._zeros(W), self._zeros(W)
            if variant == "batchnorm":
                for j in (1, 2):
                    p[f"gamma{i}_{j}"], p[f"beta{i}_{j}"] = np.ones(W, self.dtype), self._zeros(W)
            if variant == "skipinit":
                p[f"alpha{i}"] = self._zeros(1)
            if variant == "fixup":
                p[f"W{i}_1"] *= self.dtype.type(self.depth ** -0.5)      # depth^(-1/(2m-2)), m = 2
                p[f"W{i}_2"] = self._zeros((W, W))
                for j in (1, 2, 3, 4):
                    p[f"bias{i}_{j}"] = self._zeros(1)
                p[f"scale{i}"] = np.ones(1, self.dtype)
        p["Wout"] = self._zeros((W, self.num_classes)) if variant == "fixup" else self._weight(W, self.num_classes)
        p["bout"] = self._zeros(self.num_classes)
        self.params = p
        self.bn_params = [{} for _ in range(2 * self.depth)] if variant == "batchnorm" else []

    def _zeros(self, shape):
        return np.zeros(shape, dtype=self.dtype)

    def _weight(self, fan_in, fan_out):
        std = np.sqrt(2.0 / fan_in) if self.weight_scale is None else self.weight_scale
        draw = self.rng.standard_normal((fan_in, fan_out)) if self.rng is not None else np.random.randn(fan_in,
                                                                                                        fan_out)
        return (std * draw).astype(self.dtype)

    def architecture(self):
        """Not expressible as a ``normlab.nets.architecture.Architecture`` (its kinds are 'fc' and 'cnn'):
        the torch engine cannot build this net."""
        raise NotImplementedError("ResidualMLP has no Architecture: train it with the NumPy engine")

    # --- forward and backward ---------------------------------------------------------
    def scores(self, X, mode="test"):
        """Class scores (N, C), batch norm in ``mode`` (train mode updates the running statistics)."""
        return self._forward(X, mode)[0]

    def stream(self, X, mode="test") -> list[np.ndarray]:
        """The residual stream x_0 (after the stem), x_1, ..., x_depth: depth + 1 arrays (N, width).
        The running statistics are as before afterwards."""
        saved, taps = self.state_arrays(), []
        try:
            self._forward(X, mode, taps)
        finally:
            self.load_state_arrays(saved)
        return taps

    def loss(self, X, y=None):
        """Scores (N, C) when y is None (test mode); else (loss, grads) in train mode."""
        scores, caches = self._forward(X, "test" if y is None else "train")
        if y is None:
            return scores
        return self._backward(scores, y, caches)

    def _forward(self, X, mode, taps=None):
        X = as_float_array(X, "X").astype(self.dtype, copy=False)
        if mode not in ("train", "test"):
            raise ValueError(f"unknown mode {mode!r}; expected 'train' or 'test'")
        p, v = self.params, self.variant
        h, stem_fc = affine_forward(X.reshape(len(X), -1), p["W0"], p["b0"])
        x, stem_relu = relu_forward(h)
        caches = [(stem_fc, stem_relu)]
        zero = self._zeros(self.width)
        for i in range(1, self.depth + 1):
            if taps is not None:
                taps.append(x)
            bn1 = bn2 = None
            if v == "fixup":
                h, fc1 = affine_forward(x + p[f"bias{i}_1"], p[f"W{i}_1"], zero)
                h, rc = relu_forward(h + p[f"bias{i}_2"])
                f, fc2 = affine_forward(h + p[f"bias{i}_3"], p[f"W{i}_2"], zero)
                x = x + f * p[f"scale{i}"] + p[f"bias{i}_4"]
            elif v == "batchnorm":
                h, fc1 = affine_forward(x, p[f"W{i}_1"], zero)
                h, bn1 = self._bn(h, p[f"gamma{i}_1"], p[f"beta{i}_1"], self.bn_params[2 * i - 2], mode)
                h, rc = relu_forward(h)
                h, fc2 = affine_forward(h, p[f"W{i}_2"], zero)
                f, bn2 = self._bn(h, p[f"gamma{i}_2"], p[f"beta{i}_2"], self.bn_params[2 * i - 1], mode)
                x = x + f
            else:
                h, fc1 = affine_forward(x, p[f"W{i}_1"], p[f"b{i}_1"])
                h, rc = relu_forward(h)
                f, fc2 = affine_forward(h, p[f"W{i}_2"], p[f"b{i}_2"])
                x = x + (f * p[f"alpha{i}"] if v == "skipinit" else f)
            caches.append(BlockCache(fc1, bn1, rc, fc2, bn2, f))
        if taps is not None:
            taps.append(x)
        scores, out_fc = affine_forward(x, p["Wout"], p["bout"])
        caches.append(out_fc)
        return scores, caches

    def _bn(self, x, gamma, beta, state: dict, mode):
        """Batch norm of x (N, D) on the one normalization core (``normlab.nn.norm.core``): train mode
        normalizes with the batch's mean and biased variance and moves ``state``'s running_mean /
        running_var (created as 0 and 1) by the course's momentum; test mode uses those."""
        if mode == "train":
            x_hat, mean, var, cache = normalize(x, (0,), BN_EPS, where="ResidualMLP batch norm")
            m = self.dtype.type(BN_MOMENTUM)
            state["running_mean"] = m * state.get("running_mean", self._zeros(x.shape[1])) + (1 - m) * mean[0]
            state["running_var"] = m * state.get("running_var", np.ones(x.shape[1], self.dtype)) + (1 - m) * var[0]
        else:
            mean = state.get("running_mean", self._zeros(x.shape[1]))
            var = state.get("running_var", np.ones(x.shape[1], self.dtype))
            x_hat, cache = (x - mean) / np.sqrt(var + self.dtype.type(BN_EPS)), None
        return gamma * x_hat + beta, BNCache(cache, x_hat, gamma)

    @staticmethod
    def _bn_backward(dout, c: BNCache):
        """(dx, dgamma, dbeta) of ``_bn`` in train mode."""
        return normalize_backward(dout * c.gamma, c.x_hat_cache), np.sum(dout * c.x_hat, axis=0), dout.sum(axis=0)

    def _backward(self, scores, y, caches):
        p, v = self.params, self.variant
        loss, dscores = softmax_loss(scores, y)
        g = {}
        dx, g["Wout"], g["bout"] = affine_backward(dscores, caches[-1])
        for i in range(self.depth, 0, -1):
            c = caches[i]
            df = dx                                         # (N, width), the branch's upstream gradient
            if v == "fixup":
                g[f"bias{i}_4"] = dx.sum().reshape(1)
                g[f"scale{i}"] = np.sum(dx * c.f).reshape(1)
                df = dx * p[f"scale{i}"]
            elif v == "skipinit":
                g[f"alpha{i}"] = np.sum(dx * c.f).reshape(1)
                df = dx * p[f"alpha{i}"]
            if v == "batchnorm":
                df, g[f"gamma{i}_2"], g[f"beta{i}_2"] = self._bn_backward(df, c.bn2)
            dr, g[f"W{i}_2"], db2 = affine_backward(df, c.fc2)       # dr: at the ReLU's output
            dh = relu_backward(dr, c.relu)
            if v == "batchnorm":
                dh, g[f"gamma{i}_1"], g[f"beta{i}_1"] = self._bn_backward(dh, c.bn1)
            dxb, g[f"W{i}_1"], db1 = affine_backward(dh, c.fc1)
            if v in ("plain", "skipinit"):
                g[f"b{i}_1"], g[f"b{i}_2"] = db1, db2
            if v == "fixup":
                g[f"bias{i}_3"] = dr.sum().reshape(1)
                g[f"bias{i}_2"] = dh.sum().reshape(1)
                g[f"bias{i}_1"] = dxb.sum().reshape(1)
            dx = dx + dxb
        stem_fc, stem_relu = caches[0]
        dh = relu_backward(dx, stem_relu)
        g["W0"], g["b0"] = affine_param_backward(dh, stem_fc)   # X needs no gradient
        return add_l2(loss, g, p, [k for k in p if k.startswith("W")], self.reg), g
