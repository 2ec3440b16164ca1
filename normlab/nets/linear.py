"""The deep linear network (DLN) of Santurkar, Tsipras, Ilyas & Madry 2018, "How Does Batch
Normalization Help Optimization?" (arXiv 1805.11604), and its regression task.

What the paper says of it (Appendix A.1, item 2; used for Figure 3(b), Figure 10 and Figure 13):
a factorized way of solving linear regression, fitting ``A x`` from ``x``. It has k = 25 fully
connected layers, every ``W_i`` square of the size of A (10 x 10), and an l2 loss: the
objective is ``||W_k ... W_1 x - A x||_2^2`` over the W_i. The inputs x are Gaussian, A has
i.i.d. Gaussian entries, the data set has 1000 examples, trained by full-batch gradient
descent (batch = data set) for 10,000 steps at learning rate 1e-6 (Figure 3(b) also shows
1e-7), from Glorot initialization. Section 2.2 uses it to remove non-linearities and gradient
noise from the ICS measurement. The paper does not spell out where batch norm goes in the DLN;
here, as in its VGG, after every layer but the output.

Conventions here (rows are examples, so the paper's ``W_k ... W_1 x`` is ``x @ W_1 @ ... @ W_k``):

    h_0 = X                                   (N, D)
    a_i = h_{i-1} @ W_i                       (N, D), W_i (D, D), no bias, no non-linearity
    h_i = BN_i(a_i)  for i < L (batchnorm),   h_i = a_i otherwise
    f(X) = h_L
    loss = 0.5 / N * ||f(X) - Y||_F^2

The loss is the paper's sum of squares over the examples, divided by 2N: the 1/N makes the
learning rate independent of the data-set size and gives the mean squared error per example,
the 1/2 makes the gradient ``(f(X) - Y) / N`` with no factor 2. Gradient descent on the
paper's summed objective at learning rate ``eta_p`` is gradient descent on this one at
``eta = 2 N eta_p`` (2e-3 for the paper's N = 1000, eta_p = 1e-6) -- if the paper sums over the
examples; it does not say whether it sums or averages, so its learning rates do not transfer
exactly.

Batch norm is the project's (``batchnorm_forward`` / ``batchnorm_backward_alt``) with the
course's per-layer ``bn_param`` dicts in ``model.bn_params``; ``norm_param`` sets their eps,
momentum and convention (e.g. ``{'convention': 'torch'}`` for PyTorch's running statistics).
"""
from __future__ import annotations

import numpy as np

from ..nn._checks import as_float_array, require_ndim
from ..nn.norm.batchnorm import batchnorm_backward_alt, batchnorm_forward
from .common import check_dtype, check_sizes, check_weight_scale, gaussian, init_rng
from .norms import RunningStatsState, lookup

__all__ = ["DeepLinearNet", "linear_regression_task"]


def linear_regression_task(seed, n=1000, dim=10, dtype=np.float64):
    """The paper's synthetic regression data (Appendix A.1): ``x ~ N(0, I_dim)``, ``A`` with
    i.i.d. N(0, 1) entries, targets ``y = A x``.

    Inputs:
    - seed: seed of ``np.random.default_rng``; the same seed gives the same task.
    - n: number of examples (the paper's 1000, also its batch size).
    - dim: the size of x, y and A (the paper's 10).
    - dtype: float32 or float64 of the arrays.

    Returns (X, Y, A): X (n, dim), Y = X @ A.T (n, dim), A (dim, dim).
    """
    check_sizes([n, dim], f"n={n!r}, dim={dim!r}")
    dtype = check_dtype(dtype)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((dim, dim))
    X = rng.standard_normal((n, dim))
    return X.astype(dtype), (X @ A.T).astype(dtype), A.astype(dtype)


class DeepLinearNet(RunningStatsState):
    """The deep linear network ``f(x) = W_L ... W_1 x`` with optional batch norm (see the module
    docstring for the equations, the loss and the paper's setting).

    Inputs:
    - depth: L, the number of weight matrices (the paper's 25); >= 1.
    - width: D, the size of the input, of every layer and of the output (the paper's 10).
    - normalization: None, or 'batchnorm' after every layer but the last (gamma{i}, beta{i},
      running statistics, i = 1..L-1).
    - weight_scale: standard deviation of the N(0, s^2) weights; None: Glorot's
      ``sqrt(2 / (fan_in + fan_out)) = 1 / sqrt(D)``, the variance of the Glorot
      initialization the paper uses (drawn Gaussian here; the paper does not say normal or
      uniform, and both have this variance).
    - dtype: float64 (default: gradient checks, the probes) or float32.
    - rng_seed: weights from ``np.random.default_rng(rng_seed)``; None: from the global
      ``np.random``, as the course nets do.
    - norm_param: batch norm's 'eps', 'momentum', 'convention' for every layer.

    Parameters: ``params['W{i}']`` (D, D) for i = 1..L; with batch norm ``gamma{i}`` (ones)
    and ``beta{i}`` (zeros), (D,), for i = 1..L-1. There are no biases.
    """

    normalizations = (None, "batchnorm")

    def __init__(self, depth=25, width=10, normalization=None, weight_scale=None, dtype=np.float64,
                 rng_seed=None, norm_param=None):
        check_sizes([depth, width], f"depth={depth!r}, width={width!r}")
        self._norm = norm = lookup(normalization, self.normalizations)
        self.normalization = normalization
        self.depth = self.num_layers = int(depth)
        self.width = int(width)
        self.dtype = check_dtype(dtype)
        self.reg = 0.0
        self.rng = init_rng(rng_seed)
        scale = 1.0 / np.sqrt(self.width) if weight_scale is None else check_weight_scale(weight_scale)
        self.weight_scale = float(scale)
        self.params = {}
        for i in range(1, self.depth + 1):
            self.params[f"W{i}"] = gaussian(self.rng, (self.width, self.width), scale, self.dtype)
            if norm and i < self.depth:
                self.params[f"gamma{i}"] = np.ones(self.width, dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(self.width, dtype=self.dtype)
        norm_param = dict(norm_param or {})
        if norm:
            norm.config(norm_param)   # validated once, here
        self.bn_params = [norm.layer_param(norm_param) for _ in range(self.depth - 1)] if norm else []

    # --- forward and backward ---------------------------------------------------------
    def scores(self, X, mode="test"):
        """The predictions f(X), (N, D), with every batch norm in ``mode`` ('train' normalizes with
        the batch's statistics and updates the running ones, as a training step does)."""
        return self._forward(X, mode)[0]

    def loss(self, X, Y=None):
        """Predictions (N, D) when Y is None (test mode); else ``(loss, grads)`` in train mode.

        Inputs: X (N, D); Y (N, D), the targets. ``loss = 0.5 / N * ||f(X) - Y||_F^2`` (a float);
        ``grads`` keyed and shaped like ``params``.
        """
        mode = "test" if Y is None else "train"
        out, caches = self._forward(X, mode)
        if Y is None:
            return out
        Y = as_float_array(Y, "Y")
        if Y.shape != out.shape:
            raise ValueError(f"targets Y have shape {Y.shape}, the predictions {out.shape}; "
                             f"pass one target row of {self.width} values per input row")
        n = out.shape[0]
        diff = out - Y.astype(self.dtype, copy=False)                   # (N, D)
        loss = 0.5 * float(np.sum(np.square(diff, dtype=np.float64))) / n
        dh = diff / n                                                   # d loss / d f(X)
        grads = {}
        for i in range(self.depth, 0, -1):
            h_prev, bn_cache = caches[i - 1]
            if bn_cache is not None:                                    # h_i = BN_i(a_i)
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward_alt(dh, bn_cache)
            grads[f"W{i}"] = h_prev.T @ dh                              # a_i = h_{i-1} @ W_i
            if i > 1:
                dh = dh @ self.params[f"W{i}"].T
        return loss, grads

    def _forward(self, X, mode):
        """(f(X), caches): caches[i-1] = (h_{i-1}, batch-norm cache of layer i or None)."""
        X = as_float_array(X, "X")
        require_ndim(X, 2, "input X", f"(N, {self.width})")
        if X.shape[1] != self.width:
            raise ValueError(f"input X has shape {X.shape}, the net expects (N, {self.width})")
        if mode not in ("train", "test"):
            raise ValueError(f"unknown mode {mode!r}; expected 'train' or 'test'")
        for p in self.bn_params:
            p["mode"] = mode
        h = X.astype(self.dtype, copy=False)
        caches = []
        for i in range(1, self.depth + 1):
            a = h @ self.params[f"W{i}"]
            bn_cache = None
            if self._norm and i < self.depth:
                a, bn_cache = batchnorm_forward(a, self.params[f"gamma{i}"], self.params[f"beta{i}"],
                                                self.bn_params[i - 1])
            caches.append((h, bn_cache))
            h = a
        return h, caches
