"""Classification losses: softmax cross-entropy and multiclass SVM (hinge).

Both take scores x of shape (N, C) and integer labels y of shape (N,) with
0 <= y[i] < C, and return ``(loss, dx)``: the mean loss over the batch as a
Python float and its gradient with x's shape and dtype. They compute in
float64 so that any finite float32 logits, however large, give a finite loss
and gradient without overflow warnings.

``softmax_loss`` has a fast path on the Numba backend (``normlab.nn._jit_ops``):
the same operations in the same order (NumPy's own ``exp`` and ``log``, its
pairwise sums replicated), so the same loss and dx to the last bit, in a few
calls instead of a score of small ones.
"""
from __future__ import annotations

import numpy as np

from . import _jit_ops
from ._checks import as_float_array, require_ndim

__all__ = ["softmax_loss", "softmax_loss_log_probs", "svm_loss", "check_labels"]


def check_labels(y, n: int, c: int) -> np.ndarray:
    """Validate labels for N samples of C classes; return them as an int array."""
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.integer)):
        raise TypeError(f"labels y must be integers, got dtype {y.dtype}; use y.astype(int)")
    if y.shape != (n,):
        raise ValueError(f"labels y must have shape ({n},) to match the scores, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= c):
        bad = y[(y < 0) | (y >= c)][0]
        raise ValueError(f"label {bad} is out of range for {c} classes; labels must lie in [0, {c - 1}]")
    return y


def _scores(x, y):
    x = as_float_array(x, "x")
    require_ndim(x, 2, "scores x", "(N, C)")
    n, c = x.shape
    if n == 0:
        raise ValueError("scores x hold no samples (N = 0); a loss needs at least one")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores x contain NaN or inf; the loss is undefined")
    return x, check_labels(y, n, c), n


def softmax_loss(x, y):
    """Softmax cross-entropy: ``loss = -mean_i log softmax(x_i)[y_i]``.

    dx = (softmax(x) - onehot(y)) / N. Shifting by the row maximum keeps exp
    in range; float64 keeps the shift itself from overflowing. Where a
    probability would underflow, the loss is taken as logsumexp(x_i) - x_i[y_i].
    Returns (loss, dx).
    """
    fast = _jit_ops.softmax_loss(x, y)
    if fast is not None:
        return fast
    x, y, n = _scores(x, y)
    z = x.astype(np.float64)
    # Only a spread beyond float64 range (> 1.8e308) overflows here; the true
    # loss is then unrepresentable anyway and comes out as inf, without warning.
    with np.errstate(over="ignore", under="ignore"):
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    probs_y = e[rows, y] / s[:, 0]
    if np.all(probs_y >= np.finfo(np.float64).tiny):
        # The course's expression, -sum(log(probs[y])) / N, in its order of
        # operations: a seeded course cell prints the course's loss to the last digit.
        loss = -float(np.sum(np.log(probs_y))) / n
    else:
        # A probability underflowed (a loss above ~700): log-sum-exp keeps it
        # finite. Divide first: the sum of N such losses may overflow, their mean not.
        loss = float(np.sum((np.log(s[:, 0]) - z[rows, y]) / n))
    dx = e / s
    dx[rows, y] -= 1.0
    dx /= n
    return loss, dx.astype(x.dtype, copy=False)


def softmax_loss_log_probs(x, y):
    """The same softmax cross-entropy as ``softmax_loss``, evaluated in the order of
    the code CS231n's 2017-2020 templates (and UCLA nndl's) give students::

        log_probs = (x - max x) - log(sum exp(x - max x))
        loss = -sum_i log_probs[i, y_i] / N,   dx = (exp(log_probs) - onehot(y)) / N

    The result differs from ``softmax_loss`` only in the last bits; the course
    faces of those years use it so their cells print the template's digits.
    Stable at any logit size (no probability is formed before the log).
    Returns (loss, dx).
    """
    x, y, n = _scores(x, y)
    z = x.astype(np.float64)
    with np.errstate(over="ignore", under="ignore"):
        z -= z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        probs = np.exp(log_probs)
    rows = np.arange(n)
    with np.errstate(over="ignore"):
        loss = -float(np.sum(log_probs[rows, y])) / n
    if not np.isfinite(loss):   # the sum overflowed, the mean need not
        loss = -float(np.sum(log_probs[rows, y] / n))
    probs[rows, y] -= 1.0
    probs /= n
    return loss, probs.astype(x.dtype, copy=False)


def svm_loss(x, y):
    """Multiclass SVM: ``loss = mean_i sum_{j != y_i} max(0, x_ij - x_i[y_i] + 1)``.

    Returns (loss, dx).
    """
    x, y, n = _scores(x, y)
    z = x.astype(np.float64)
    rows = np.arange(n)
    # As in softmax_loss: only a spread beyond float64 range overflows, and the
    # loss is then inf (the true value is unrepresentable), without a warning.
    with np.errstate(over="ignore"):
        margins = np.maximum(0.0, z - z[rows, y][:, None] + 1.0)
        margins[rows, y] = 0.0
        loss = float(np.sum(margins / n))   # divide first: the sum of N losses may overflow, their mean not
    dx = (margins > 0).astype(np.float64)
    dx[rows, y] -= dx.sum(axis=1)
    dx /= n
    return loss, dx.astype(x.dtype, copy=False)
