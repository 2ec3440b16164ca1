"""A fully connected net of any depth, with optional normalization, ReLU or sigmoid, and dropout.

Architecture, for L layers (L - 1 hidden):

    {affine - [norm] - activation - [dropout]} x (L - 1) - affine - softmax

norm: batch, noisy batch or layer norm; activation: ReLU (default) or sigmoid.
``norm_position='after'`` puts the norm after the activation; ``dropout_position``
moves dropout directly before each norm or keeps it only in the last hidden layer.

Parameters live in ``model.params`` (W1, b1, gamma1, beta1, ..., WL, bL); the
output layer is never normalized. Running statistics of batch norm live in
``model.bn_params`` (the course's per-layer dicts) and are exposed as plain
arrays by ``state_arrays()`` / ``load_state_arrays()`` so a Solver can snapshot
them with the best weights. The normalization layers come from the table of
``normlab.nets.norms``.
"""
from __future__ import annotations

import numpy as np

from ..nn._checks import as_float_array
from ..nn.basic import (affine_backward, affine_forward, affine_param_backward, dropout_backward, dropout_forward,
                        relu_backward, relu_forward, sigmoid_backward, sigmoid_forward)
from ..nn.losses import softmax_loss
from .architecture import ACTIVATIONS, Architecture, Dropout, check_positions
from .common import add_l2, check_dtype, check_reg, check_sizes, check_weight_scale, gaussian, init_rng
from .norms import RunningStatsState, lookup

__all__ = ["FullyConnectedNet"]


class FullyConnectedNet(RunningStatsState):
    """Multi-layer fully connected net with softmax loss.

    Inputs:
    - hidden_dims: A list of integers giving the size of each hidden layer.
    - input_dim: An integer giving the size of the input.
    - num_classes: An integer giving the number of classes to classify.
    - dropout_keep_ratio: Scalar in (0, 1], the probability of keeping a unit;
      1 means no dropout.
    - normalization: None, 'batchnorm', 'noisy-batchnorm' (batch norm, then in
      train mode a random per-unit affine map drawn afresh at every step from
      ``rng``: ``normlab.nn.norm.noisy``) or 'layernorm'.
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
    - norm_param: optional dict of settings for every norm layer: batch norm
      'eps', 'momentum', 'convention' (e.g. {'convention': 'torch'}) and
      'batch_variance' ('biased', default, or 'unbiased': normalize with
      var * m / (m - 1)); noisy batch norm those and 'noise_per' ('unit',
      default, or 'sample'); layer norm 'eps'.
    - bias_before_norm: with normalization, False drops the hidden layers'
      biases b1..b(L-1): the norm's beta makes them redundant (the PyTorch
      notebook's nn.Linear(..., bias=False) before BatchNorm1d).
    - activation: the hidden layers' nonlinearity, 'relu' (default) or 'sigmoid'.
    - norm_position: 'before' (default: affine - norm - activation, Ioffe & Szegedy's
      placement) or 'after' (affine - activation - norm).
    - dropout_position: where dropout sits in a hidden layer: 'after_activation'
      (default: at the end of every hidden layer, so each later layer's norm sees
      dropped units), 'before_norm' (directly before every hidden layer's norm:
      affine - dropout - norm; needs a normalization) or 'last_layer' (only at the
      end of the last hidden layer, after every norm: no norm sees dropped units).
    """

    #: The normalizations this net takes (keys of ``normlab.nets.norms.NORMALIZATIONS``).
    normalizations = (None, "batchnorm", "noisy-batchnorm", "layernorm", "batchrenorm", "ghost-batchnorm")
    #: The dropout layer, ``(x, dropout_param) -> (out, cache)``; a course face
    #: whose dropout_param['p'] is a drop probability substitutes its own.
    dropout_layer = staticmethod(dropout_forward)
    #: The mask rule of ``dropout_layer``, as ``Architecture.dropout.masks`` reports it.
    dropout_masks = "normlab"
    #: The loss on the scores, ``(scores, y) -> (loss, dscores)``; the older course
    #: faces substitute their template's evaluation order.
    loss_layer = staticmethod(softmax_loss)

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                 normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None,
                 use_batchnorm=None, norm_param=None, bias_before_norm=True, rng_seed=None, activation="relu",
                 norm_position="before", dropout_position="after_activation"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of "
                             f"{', '.join(map(repr, ACTIVATIONS))}")
        self.activation = activation
        check_positions(norm_position, dropout_position, normalization or ("batchnorm" if use_batchnorm else None))
        self.norm_position, self.dropout_position = norm_position, dropout_position
        if use_batchnorm:
            if normalization not in (None, "batchnorm"):
                raise ValueError(f"use_batchnorm=True contradicts normalization={normalization!r}; "
                                 f"pass only normalization")
            normalization = "batchnorm"
        self._norm = norm = lookup(normalization, self.normalizations)
        self.normalization = normalization
        hidden_dims = list(hidden_dims)
        check_sizes([input_dim, num_classes, *hidden_dims], f"input_dim={input_dim!r}, "
                    f"hidden_dims={hidden_dims!r}, num_classes={num_classes!r}")
        if not 0.0 < float(dropout_keep_ratio) <= 1.0:
            raise ValueError(f"dropout_keep_ratio is a keep probability in (0, 1], got {dropout_keep_ratio!r}")
        self.dtype = check_dtype(dtype)
        weight_scale = check_weight_scale(weight_scale)
        self._keep = float(dropout_keep_ratio)     # dropout_param['p'] is a course face's to redefine
        self.use_dropout = self._keep != 1.0
        self.reg = check_reg(reg)
        self.num_classes = int(num_classes)
        self.num_layers = 1 + len(hidden_dims)
        self.rng = init_rng(rng_seed)

        dims = [int(input_dim), *map(int, hidden_dims), int(num_classes)]
        self.params = {}
        self._zero_bias = {}
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
            self.params[f"W{i}"] = gaussian(self.rng, (d_in, d_out), weight_scale, self.dtype)
            hidden = i < self.num_layers
            if not (hidden and norm and not bias_before_norm):
                self.params[f"b{i}"] = np.zeros(d_out, dtype=self.dtype)
            if hidden and ((norm and norm.folds_bias) or f"b{i}" not in self.params):
                # A constant, not a parameter: the optimizer never sees it. A folding
                # norm gets the bias itself (batchnorm_after_bias).
                self._zero_bias[i] = np.zeros(d_out, dtype=self.dtype)
            if norm and hidden:
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
        self._norm_config = norm.config(norm_param) if norm else None    # validated once, here
        self.bn_params = [norm.layer_param(norm_param) for _ in range(self.num_layers - 1)] if norm else []
        self._dims = tuple(dims)

    def architecture(self) -> Architecture:
        """The layers and settings (``normlab.nets.architecture``); the dropout source as of now."""
        dropout = None
        if self.use_dropout:
            seed = self.dropout_param.get("seed")
            source = "seed" if seed is not None else ("rng" if self.rng is not None else "global")
            dropout = Dropout(keep=self._keep, masks=self.dropout_masks, source=source, seed=seed)
        return Architecture(
            kind="fc", input_dim=self._dims[:1], hidden_dims=self._dims[1:-1], num_classes=self.num_classes,
            dtype=self.dtype, normalization=self.normalization, norm=self._norm_config,
            biases=tuple(f"b{i}" in self.params for i in range(1, self.num_layers + 1)), dropout=dropout,
            activation=self.activation, norm_position=self.norm_position, dropout_position=self.dropout_position)

    # --- forward and backward ---------------------------------------------------------
    def scores(self, X, mode="test"):
        """Class scores (N, C) with every batch-norm and dropout layer in ``mode``.

        ``mode='train'`` normalizes with the batch's own statistics (and, as in
        training, updates the running statistics; save them with
        ``state_arrays()`` to undo that) and applies dropout.
        """
        return self._forward(X, mode)[0]

    def activation_inputs(self, X, mode="train") -> list[np.ndarray]:
        """What each hidden layer's activation receives: its normalization's output (noise
        included for 'noisy-batchnorm' in train mode; the affine output without normalization),
        one (N, D_i) array per hidden layer i = 1..L-1.

        The forward pass of ``scores(X, mode)``, tapped. Afterwards the running statistics,
        ``model.rng`` and the global ``np.random`` are as before, so probing a net during
        training changes neither it nor the rest of its run.
        """
        return self._tapped(X, mode, "act")

    def norm_inputs(self, X, mode="train") -> list[np.ndarray]:
        """What each hidden layer's norm receives (dropout's output under 'before_norm', the
        activation's under norm_position='after'), one (N, D_i) array per hidden layer; as
        ``activation_inputs``, the model and the generators are left as before."""
        if not self._norm:
            raise ValueError("norm_inputs needs a normalized net, this one has normalization=None")
        return self._tapped(X, mode, "norm")

    def _tapped(self, X, mode, op) -> list[np.ndarray]:
        state, global_state = self.state_arrays(), np.random.get_state()
        gen = self.rng.bit_generator.state if self.rng is not None else None
        taps = []
        try:
            self._forward(X, mode, taps, op)
        finally:
            self.load_state_arrays(state)
            np.random.set_state(global_state)
            if gen is not None:
                self.rng.bit_generator.state = gen
        return taps

    def loss(self, X, y=None):
        """Scores (N, C) when y is None (test mode); else (loss, grads) in train mode."""
        mode = "test" if y is None else "train"
        scores, caches, out_cache = self._forward(X, mode)
        if y is None:
            return scores
        return self._backward(scores, y, caches, out_cache)

    def _layer_ops(self, i):
        """Hidden layer i's operations after its affine, in order: some of 'norm', 'act', 'drop'."""
        ops = ["norm", "act"] if self.norm_position == "before" else ["act", "norm"]
        if not self._norm:
            ops.remove("norm")
        if self.use_dropout:
            if self.dropout_position == "before_norm":
                ops.insert(ops.index("norm"), "drop")
            elif self.dropout_position == "after_activation" or i == self.num_layers - 1:
                ops.append("drop")
        return ops

    def _forward(self, X, mode, taps=None, tap_op="act"):
        """Scores, the hidden layers' caches and the output layer's; ``taps``, a list, receives
        each hidden layer's input to its ``tap_op`` ('act' or 'norm')."""
        X = as_float_array(X, "X").astype(self.dtype, copy=False)
        if mode not in ("train", "test"):
            raise ValueError(f"unknown mode {mode!r}; expected 'train' or 'test'")
        if self.use_dropout:
            self.dropout_param["mode"] = mode
            if "rng" in self.dropout_param:
                self.dropout_param["rng"] = self.rng   # model.rng may have been replaced (reseeded)
        norm = self._norm
        if norm and norm.running_stats:
            for p in self.bn_params:
                p["mode"] = mode
                if norm.noisy:
                    p["rng"] = self.rng    # the noise's source, as dropout's: model.rng as of now

        # Only a norm right after the affine can take its bias (the activation or dropout between must see it).
        folds = (norm is not None and norm.folds_bias and self.norm_position == "before"
                 and not (self.use_dropout and self.dropout_position == "before_norm"))
        caches = []
        h = X
        for i in range(1, self.num_layers):
            b = self.params.get(f"b{i}")
            h, fc = affine_forward(h, self.params[f"W{i}"], self._zero_bias[i] if folds or b is None else b)
            nc = rc = dc = None
            for op in self._layer_ops(i):
                if taps is not None and op == tap_op:
                    taps.append(h)
                if op == "norm":
                    h, nc = norm.flat.forward(h, b if folds else None, self.params[f"gamma{i}"],
                                              self.params[f"beta{i}"], self.bn_params[i - 1], None)
                elif op == "act":
                    h, rc = (relu_forward if self.activation == "relu" else sigmoid_forward)(h)
                else:
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
            for op in reversed(self._layer_ops(i)):
                if op == "drop":
                    dh = dropout_backward(dh, dc)
                elif op == "act":
                    dh = (relu_backward if self.activation == "relu" else sigmoid_backward)(dh, rc)
                else:
                    dh, grads[f"gamma{i}"], grads[f"beta{i}"] = self._norm.flat.backward(dh, nc)
            if i > 1:
                dh, grads[f"W{i}"], db = affine_backward(dh, fc)
            else:   # the input X needs no gradient: skip its dx, the largest product of the backward
                grads["W1"], db = affine_param_backward(dh, fc)
            if f"b{i}" in self.params:
                grads[f"b{i}"] = db
        loss = add_l2(loss, grads, self.params, [f"W{i}" for i in range(1, L + 1)], self.reg)
        return loss, grads
