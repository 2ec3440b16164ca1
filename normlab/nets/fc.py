"""A fully connected net of any depth, with optional batch/layer norm and dropout.

Architecture, for L layers (L - 1 hidden):

    {affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax

Parameters live in ``model.params`` (W1, b1, gamma1, beta1, ..., WL, bL); the
output layer is never normalized. Running statistics of batch norm live in
``model.bn_params`` (the course's per-layer dicts) and are exposed as plain
arrays by ``state_arrays()`` / ``load_state_arrays()`` so a Solver can snapshot
them with the best weights.
"""
from __future__ import annotations

import numpy as np

from ..nn._checks import as_float_array, finite_nonnegative
from ..nn.basic import affine_backward, affine_forward, dropout_backward, dropout_forward, relu_backward, relu_forward
from ..nn.norm.batchnorm import BatchNormConfig, batchnorm_after_bias, batchnorm_backward_alt
from ..nn.losses import softmax_loss
from ..nn.norm.group import layernorm_backward, layernorm_forward

__all__ = ["FullyConnectedNet", "NORMALIZATIONS"]

NORMALIZATIONS = (None, "batchnorm", "layernorm")
REG_MEANING = "the L2 strength; 0 turns regularization off"
WEIGHT_SCALE_MEANING = "the standard deviation of the initial weights, e.g. 1e-2"


def check_normalization(name, allowed=NORMALIZATIONS):
    if name not in allowed:
        raise ValueError(f"unknown normalization {name!r}; expected one of "
                         f"{', '.join(repr(a) for a in allowed)}")
    return name


def init_rng(rng_seed):
    """A seeded Generator, or None to draw from the global RNG as the course does."""
    if rng_seed is None:
        return None
    if isinstance(rng_seed, bool) or not isinstance(rng_seed, (int, np.integer)) or rng_seed < 0:
        raise ValueError(f"rng_seed must be an integer >= 0 or None, got {rng_seed!r}")
    return np.random.default_rng(int(rng_seed))


def gaussian(rng, shape, scale, dtype):
    draw = rng.standard_normal(shape) if rng is not None else np.random.randn(*shape)
    return (scale * draw).astype(dtype)


class RunningStatsState:
    """Mixin for models whose ``bn_params`` dicts hold batch-norm running statistics."""

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the running statistics: running_mean{i}, running_var{i} (1-based layers)."""
        return {f"{key}{i}": np.array(p[key], copy=True) for i, p in enumerate(self.bn_params, start=1)
                for key in ("running_mean", "running_var") if key in p}

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        """Replace the running statistics; layers absent from ``state`` lose theirs."""
        for i, p in enumerate(self.bn_params, start=1):
            for key in ("running_mean", "running_var"):
                if f"{key}{i}" in state:
                    p[key] = np.array(state[f"{key}{i}"], copy=True)
                else:
                    p.pop(key, None)


class FullyConnectedNet(RunningStatsState):
    """Multi-layer fully connected net with softmax loss.

    Inputs:
    - hidden_dims: A list of integers giving the size of each hidden layer.
    - input_dim: An integer giving the size of the input.
    - num_classes: An integer giving the number of classes to classify.
    - dropout_keep_ratio: Scalar in (0, 1], the probability of keeping a unit;
      1 means no dropout.
    - normalization: None, 'batchnorm' or 'layernorm'.
    - reg: Scalar giving L2 regularization strength (0.5 * reg * sum(W**2) on weights only);
      finite, >= 0.
    - weight_scale: Standard deviation of the normal weight initialization; finite, > 0.
    - dtype: float32 (fast, default) or float64 (for gradient checks).
    - seed: the course's meaning: passed to the dropout layers, so every forward
      pass draws the same mask (gradient checks of dropout nets). The weights
      still come from the global np.random, as in the course.
    - rng_seed: (normlab) weights and dropout masks from np.random.default_rng(rng_seed)
      instead of the global RNG: the same rng_seed gives the same model and,
      call after call, the same sequence of masks (reproducible training).
      ``seed``, when also given, still fixes the masks.
    - use_batchnorm: legacy keyword of the older course: True means normalization='batchnorm'.
    - norm_param: optional dict of batch-norm settings for every norm layer
      ('eps', 'momentum', 'convention'), e.g. {'convention': 'torch'}.
    - bias_before_norm: with normalization, False drops the hidden layers'
      biases b1..b(L-1): the norm's beta makes them redundant (the PyTorch
      notebook's nn.Linear(..., bias=False) before BatchNorm1d).
    """

    #: The dropout layer, ``(x, dropout_param) -> (out, cache)``; a course face
    #: whose dropout_param['p'] is a drop probability substitutes its own.
    dropout_layer = staticmethod(dropout_forward)
    #: The loss on the scores, ``(scores, y) -> (loss, dscores)``; the older course
    #: faces substitute their template's evaluation order.
    loss_layer = staticmethod(softmax_loss)

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                 normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None,
                 use_batchnorm=None, norm_param=None, bias_before_norm=True, rng_seed=None):
        if use_batchnorm:
            if normalization not in (None, "batchnorm"):
                raise ValueError(f"use_batchnorm=True contradicts normalization={normalization!r}; "
                                 f"pass only normalization")
            normalization = "batchnorm"
        self.normalization = check_normalization(normalization)
        hidden_dims = list(hidden_dims)
        for h in [input_dim, num_classes, *hidden_dims]:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
                raise ValueError(f"layer sizes must be positive integers, got {h!r} "
                                 f"(input_dim={input_dim!r}, hidden_dims={hidden_dims!r}, "
                                 f"num_classes={num_classes!r})")
        if not 0.0 < float(dropout_keep_ratio) <= 1.0:
            raise ValueError(f"dropout_keep_ratio is a keep probability in (0, 1], got {dropout_keep_ratio!r}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        weight_scale = finite_nonnegative(weight_scale, "weight_scale", WEIGHT_SCALE_MEANING, allow_zero=False)
        self.use_dropout = float(dropout_keep_ratio) != 1.0
        self.reg = finite_nonnegative(reg, "reg", REG_MEANING)
        self.num_classes = int(num_classes)
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = np.dtype(dtype)
        self.rng = init_rng(rng_seed)

        dims = [int(input_dim), *map(int, hidden_dims), int(num_classes)]
        self.params = {}
        self._zero_bias = {}
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
            self.params[f"W{i}"] = gaussian(self.rng, (d_in, d_out), weight_scale, self.dtype)
            hidden = i < self.num_layers
            if not (hidden and self.normalization and not bias_before_norm):
                self.params[f"b{i}"] = np.zeros(d_out, dtype=self.dtype)
            if hidden and (self.normalization == "batchnorm" or f"b{i}" not in self.params):
                # A constant, not a parameter: the optimizer never sees it. Before
                # batch norm the bias goes to the norm instead (batchnorm_after_bias).
                self._zero_bias[i] = np.zeros(d_out, dtype=self.dtype)
            if self.normalization and hidden:
                self.params[f"gamma{i}"] = np.ones(d_out, dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(d_out, dtype=self.dtype)

        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": float(dropout_keep_ratio)}
            if seed is not None:
                self.dropout_param["seed"] = seed
            elif self.rng is not None:
                self.dropout_param["rng"] = self.rng
        norm_param = dict(norm_param or {})
        if self.normalization == "batchnorm":
            BatchNormConfig(**norm_param)  # validate once, here, not at the first forward
            self.bn_params = [{"mode": "train", **norm_param} for _ in range(self.num_layers - 1)]
        elif self.normalization == "layernorm":
            self.bn_params = [{"eps": norm_param.get("eps", 1e-5)} for _ in range(self.num_layers - 1)]
        else:
            self.bn_params = []

    # --- forward and backward ---------------------------------------------------------
    def scores(self, X, mode="test"):
        """Class scores (N, C) with every batch-norm and dropout layer in ``mode``.

        ``mode='train'`` normalizes with the batch's own statistics (and, as in
        training, updates the running statistics; save them with
        ``state_arrays()`` to undo that) and applies dropout.
        """
        return self._forward(X, mode)[0]

    def loss(self, X, y=None):
        """Scores (N, C) when y is None (test mode); else (loss, grads) in train mode."""
        mode = "test" if y is None else "train"
        scores, caches, out_cache = self._forward(X, mode)
        if y is None:
            return scores
        return self._backward(scores, y, caches, out_cache)

    def _forward(self, X, mode):
        X = as_float_array(X, "X").astype(self.dtype, copy=False)
        if mode not in ("train", "test"):
            raise ValueError(f"unknown mode {mode!r}; expected 'train' or 'test'")
        if self.use_dropout:
            self.dropout_param["mode"] = mode
            if "rng" in self.dropout_param:
                self.dropout_param["rng"] = self.rng   # model.rng may have been replaced (reseeded)
        if self.normalization == "batchnorm":
            for p in self.bn_params:
                p["mode"] = mode

        caches = []
        h = X
        for i in range(1, self.num_layers):
            b = self.params.get(f"b{i}")
            nc = None
            if self.normalization == "batchnorm":
                h, fc = affine_forward(h, self.params[f"W{i}"], self._zero_bias[i])
                h, nc = batchnorm_after_bias(h, b, self.params[f"gamma{i}"], self.params[f"beta{i}"],
                                             self.bn_params[i - 1])
            else:
                h, fc = affine_forward(h, self.params[f"W{i}"], b if b is not None else self._zero_bias[i])
                if self.normalization == "layernorm":
                    h, nc = layernorm_forward(h, self.params[f"gamma{i}"], self.params[f"beta{i}"],
                                              self.bn_params[i - 1])
            h, rc = relu_forward(h)
            dc = None
            if self.use_dropout:
                h, dc = self.dropout_layer(h, self.dropout_param)
            caches.append((fc, nc, rc, dc))
        L = self.num_layers
        scores, out_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        return scores, caches, out_cache

    def _backward(self, scores, y, caches, out_cache):
        L = self.num_layers
        loss, dscores = self.loss_layer(scores, y)
        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, out_cache)
        for i in range(L - 1, 0, -1):
            fc, nc, rc, dc = caches[i - 1]
            if dc is not None:
                dh = dropout_backward(dh, dc)
            dh = relu_backward(dh, rc)
            if self.normalization == "batchnorm":
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward_alt(dh, nc)
            elif self.normalization == "layernorm":
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = layernorm_backward(dh, nc)
            dh, grads[f"W{i}"], db = affine_backward(dh, fc)
            if f"b{i}" in self.params:
                grads[f"b{i}"] = db
        for i in range(1, L + 1):
            W = self.params[f"W{i}"]
            loss += 0.5 * self.reg * float(np.sum(W.astype(np.float64) ** 2))
            grads[f"W{i}"] += self.reg * W
        return loss, grads
