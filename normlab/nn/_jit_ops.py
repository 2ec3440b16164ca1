"""Numba kernels for the elementwise work around the BLAS calls of a training step.

The fast path of ``normlab.optim``'s update rules (SGD, momentum, Nesterov,
RMSProp, Adam), of ``losses.softmax_loss``, ``basic.relu_forward`` and
``relu_backward``, the Solver's gradient check (``all_finite``) and the nets'
L2 penalty (``sum_squares``). Each NumPy reference is several array passes,
each with a temporary; its kernel here is one pass. The references stay the
readable definition; their modules dispatch here when ``backend.fast()`` and
the arrays are float32 or float64. The update kernels take 1-D views, so one
compiled variant per dtype serves weights of any shape.

Agreement with the references, bit for bit:

- Every kernel evaluates the reference's operations in its order and dtype:
  a Python-float hyperparameter meets a float32 array as a float32 scalar
  (NumPy's weak-scalar rule), cast here once (``dt(lr)``, or an array of
  w's dtype holding them all); compiled without fastmath, so no FMA
  contraction or reassociation.
- Sums replicate NumPy's pairwise summation (``_pairwise``: blocks of up to
  128 in 8 accumulators, halves beyond), so ``sum_squares`` and the softmax
  row sums are NumPy's to the last bit. ``exp`` and ``log`` are left to NumPy
  (its SIMD versions differ from libm's in the last bit): ``softmax_loss`` is
  two kernels around ``np.exp`` and one ``np.log``.

Floating-point errors: a compiled kernel sets no NumPy error flags, so every
kernel also reports whether any value it formed was NaN or inf (overflow,
0/0, inf - inf, or non-finite input). The wrappers then return None and the
caller runs its NumPy reference on the same inputs: the same result, with
NumPy's warnings or ``FloatingPointError`` as ``np.errstate`` says (the
Solver's divergence detection relies on that; a clean update also proves its
gradient finite, which spares the Solver a pass, see ``optim.fused_update``).
Underflow sets no such flag, so under ``np.errstate(under=...)`` other than
'ignore' the wrappers that compute decline too. Every wrapper returns None when the fast path does not apply (another
dtype or layout, the backend off, a compile error: then ``backend.disable``),
never raising where the reference would not.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .backend import jit

__all__ = ["supports", "sgd", "momentum", "nesterov", "rmsprop", "adam", "softmax_loss", "relu_forward",
           "relu_backward", "all_finite", "sum_squares", "warm"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def supports(*arrays) -> bool:
    """float32 or float64 ndarrays, all of one dtype."""
    dt = arrays[0].dtype
    return dt in _FLOATS and all(a.dtype == dt for a in arrays)


def _underflow_ignored() -> bool:
    """No kernel reports underflow: under any other ``np.errstate(under=...)`` NumPy computes."""
    return np.geterr()["under"] == "ignore"


def _ready(w) -> bool:
    """The fast path may run for ``w``: backend on, f32/f64, C order, underflow ignored, at least
    1-D (NumPy's arithmetic on 0-d arrays returns scalars)."""
    return (backend.fast() and isinstance(w, np.ndarray) and w.dtype in _FLOATS and w.ndim > 0
            and w.flags.c_contiguous and _underflow_ignored())


def _flat(a: np.ndarray) -> np.ndarray:
    """1-D view of ``a`` in C order (a copy only when ``a`` is not C-contiguous)."""
    return (a if a.flags.c_contiguous else np.ascontiguousarray(a)).reshape(-1)


# ----------------------------------------------------------------------------- update rules
# One pass over 1-D views of C-ordered arrays (one compiled variant per dtype, whatever the
# weights' ndim); each returns True when a value it formed is not finite.

@jit()
def _sgd(w, dw, lr, out):
    bad = False
    for i in range(w.size):
        o = w[i] - lr * dw[i]                       # w - learning_rate * dw
        out[i] = o
        bad |= not np.isfinite(o)
    return bad


@jit()
def _momentum(w, dw, v, mu, lr, out, v_out):
    bad = False
    for i in range(w.size):
        vn = mu * v[i] - lr * dw[i]                 # v = momentum * v - learning_rate * dw
        o = w[i] + vn                               # w + v
        v_out[i] = vn
        out[i] = o
        bad |= not (np.isfinite(vn) and np.isfinite(o))
    return bad


@jit()
def _nesterov(w, dw, v, mu, lr, out, v_out):
    bad = False
    for i in range(w.size):
        vn = mu * v[i] - lr * dw[i]                 # v_new = momentum * v - learning_rate * dw
        o = (w[i] + vn) + mu * (vn - v[i])          # w + v_new + momentum * (v_new - v)
        v_out[i] = vn
        out[i] = o
        bad |= not (np.isfinite(vn) and np.isfinite(o))
    return bad


@jit()
def _rmsprop(w, dw, cache, hp, out, cache_out):
    rho, one_minus_rho, lr, eps = hp[0], hp[1], hp[2], hp[3]
    bad = False
    for i in range(w.size):
        g = dw[i]
        c = rho * cache[i] + one_minus_rho * (g * g)   # decay_rate * cache + (1 - decay_rate) * (dw * dw)
        o = w[i] - lr * g / (np.sqrt(c) + eps)         # w - learning_rate * dw / (sqrt(cache) + epsilon)
        cache_out[i] = c
        out[i] = o
        bad |= not (np.isfinite(c) and np.isfinite(o))
    return bad


@jit()
def _adam(w, dw, m, v, hp, out, m_out, v_out):
    b1, one_minus_b1, b2, one_minus_b2, corr1, lr, corr2, eps = hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6], hp[7]
    bad = False
    for i in range(w.size):
        g = dw[i]
        mn = b1 * m[i] + one_minus_b1 * g           # m = beta1 * m; m += (1 - beta1) * dw
        vn = b2 * v[i] + (g * g) * one_minus_b2     # dw2 = dw * dw; dw2 *= 1 - beta2; v = beta2 * v; v += dw2
        step = (mn / corr1) * lr                    # m_hat = m / (1 - beta1**t); step = m_hat * learning_rate
        v_hat = vn / corr2                          # v_hat = v / (1 - beta2**t)
        o = w[i] - step / (np.sqrt(v_hat) + eps)    # w - step / (sqrt(v_hat) + epsilon)
        m_out[i] = mn
        v_out[i] = vn
        out[i] = o
        # v_hat alone can overflow and still leave o finite (o = w - step / inf)
        bad |= not (np.isfinite(mn) and np.isfinite(v_hat) and np.isfinite(o))
    return bad


def sgd(w, dw, learning_rate):
    """``w - learning_rate * dw`` (``optim.sgd_step``), or None."""
    if not _ready(w):
        return None
    out = np.empty_like(w)
    bad = backend.compiled(_sgd, w.reshape(-1), _flat(dw), w.dtype.type(learning_rate), out.reshape(-1))
    return None if bad is None or bad else out


def _velocity_rule(kernel, w, dw, v, mu, lr):
    if not _ready(w):
        return None
    dt = w.dtype.type
    out, v_new = np.empty_like(w), np.empty_like(w)
    v = np.zeros(w.size, dtype=w.dtype) if v is None else _flat(v)
    bad = backend.compiled(kernel, w.reshape(-1), _flat(dw), v, dt(mu), dt(lr), out.reshape(-1), v_new.reshape(-1))
    return None if bad is None or bad else (out, v_new)


def momentum(w, dw, velocity, momentum_, learning_rate):
    """``(next_w, next_velocity)`` of ``optim.momentum_step`` (velocity None: zeros), or None."""
    return _velocity_rule(_momentum, w, dw, velocity, momentum_, learning_rate)


def nesterov(w, dw, velocity, momentum_, learning_rate):
    """``(next_w, next_velocity)`` of ``optim.nesterov_step`` (velocity None: zeros), or None."""
    return _velocity_rule(_nesterov, w, dw, velocity, momentum_, learning_rate)


def rmsprop(w, dw, cache, decay_rate, learning_rate, epsilon):
    """``(next_w, next_cache)`` of ``optim.rmsprop_step`` (cache None: zeros), or None."""
    if not _ready(w):
        return None
    out, c_new = np.empty_like(w), np.empty_like(w)
    hp = np.array([decay_rate, 1 - decay_rate, learning_rate, epsilon], dtype=w.dtype)
    cache = np.zeros(w.size, dtype=w.dtype) if cache is None else _flat(cache)
    bad = backend.compiled(_rmsprop, w.reshape(-1), _flat(dw), cache, hp, out.reshape(-1), c_new.reshape(-1))
    return None if bad is None or bad else (out, c_new)


def adam(w, dw, m, v, t, beta1, beta2, learning_rate, epsilon):
    """``(next_w, m, v)`` of ``optim.adam_step`` at step ``t`` (already incremented; m, v None: zeros), or None."""
    if not _ready(w):
        return None
    out, m_new, v_new = np.empty_like(w), np.empty_like(w), np.empty_like(w)
    m = np.zeros(w.size, dtype=w.dtype) if m is None else _flat(m)
    v = np.zeros(w.size, dtype=w.dtype) if v is None else _flat(v)
    hp = np.array([beta1, 1 - beta1, beta2, 1 - beta2, 1 - beta1 ** t, learning_rate, 1 - beta2 ** t, epsilon],
                  dtype=w.dtype)
    bad = backend.compiled(_adam, w.reshape(-1), _flat(dw), m, v, hp, out.reshape(-1), m_new.reshape(-1),
                           v_new.reshape(-1))
    return None if bad is None or bad else (out, m_new, v_new)


# ----------------------------------------------------------------------------- sums

@jit()
def _block(a, lo, n, square):
    """NumPy's pairwise_sum on a block of n <= 128: 8 accumulators, then the rest in turn."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            x = np.float64(a[i])
            res += x * x if square else x
        return res
    r = np.empty(8)
    for j in range(8):
        x = np.float64(a[lo + j])
        r[j] = x * x if square else x
    i = 8
    while i < n - n % 8:
        for j in range(8):
            x = np.float64(a[lo + i + j])
            r[j] += x * x if square else x
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        x = np.float64(a[lo + i])
        res += x * x if square else x
        i += 1
    return res


@jit()
def _pairwise(a, lo, n, square):
    """NumPy's pairwise sum of a[lo:lo+n] in float64 (of the squares when ``square``), in its order:
    blocks of <= 128, larger runs halved (the first half a multiple of 8) and the halves' sums added.
    The recursion is unrolled onto a stack: Numba's on-disk cache cannot reload recursive functions."""
    if n <= 128:
        return _block(a, lo, n, square)
    los = np.empty(128, dtype=np.int64)     # frames: (start, length, stage); depth ~ log2(n / 128)
    ns = np.empty(128, dtype=np.int64)
    stage = np.zeros(128, dtype=np.int64)
    vals = np.empty(128)
    los[0], ns[0], stage[0] = lo, n, 0
    sp, vp = 0, 0
    while sp >= 0:
        l, m = los[sp], ns[sp]
        if m <= 128:
            vals[vp] = _block(a, l, m, square)
            vp += 1
            sp -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[sp] == 0:
            stage[sp] = 1
            sp += 1
            los[sp], ns[sp], stage[sp] = l, half, 0
        elif stage[sp] == 1:
            stage[sp] = 2
            sp += 1
            los[sp], ns[sp], stage[sp] = l + half, m - half, 0
        else:
            vals[vp - 2] = vals[vp - 2] + vals[vp - 1]
            vp -= 1
            sp -= 1
    return vals[0]


@jit()
def _sum_squares(a):
    return _pairwise(a, 0, a.size, True)


def sum_squares(w):
    """``float(np.sum(w.astype(np.float64) ** 2))`` to the last bit, without the temporaries; or None."""
    if not (backend.fast() and isinstance(w, np.ndarray) and w.dtype in _FLOATS and w.flags.c_contiguous
            and _underflow_ignored()):
        return None
    s = backend.compiled(_sum_squares, w.reshape(-1))
    # Only a sum beyond float64's range (or non-finite w) is not finite: NumPy's then says so its way.
    return None if s is None or not np.isfinite(s) else float(s)


@jit()
def _all_finite(a):
    bad = False
    for i in range(a.size):
        bad |= not np.isfinite(a[i])
    return not bad


def all_finite(a):
    """``bool(np.all(np.isfinite(a)))`` for a float32/float64 array, in one pass without a mask; or None."""
    if not (backend.fast() and isinstance(a, np.ndarray) and a.dtype in _FLOATS):
        return None
    return backend.compiled(_all_finite, _flat(a))


# ----------------------------------------------------------------------------- ReLU

@jit()
def _relu(x, out):
    for i in range(x.size):
        v = x[i]
        if v > 0 or v != v:     # np.maximum(x, 0): NaN passes (with its sign), -0.0 becomes +0.0
            out[i] = v
        else:
            out[i] = 0
    return False


def relu_forward(x):
    """``np.maximum(x, 0)`` (``basic.relu_forward``), or None."""
    if not (backend.fast() and isinstance(x, np.ndarray) and x.dtype in _FLOATS and x.ndim > 0
            and x.flags.c_contiguous):
        return None
    out = np.empty_like(x)
    return None if backend.compiled(_relu, x.reshape(-1), out.reshape(-1)) is None else out


@jit()
def _relu_mask(dout, x, out):
    for i in range(dout.size):
        if x[i] > 0:            # False for NaN: 0, as np.where
            out[i] = dout[i]
        else:
            out[i] = 0
    return False


def relu_backward(dout, x):
    """``np.where(x > 0, dout, 0)`` in dout's dtype (``basic.relu_backward``), or None."""
    if not (backend.fast() and isinstance(dout, np.ndarray) and isinstance(x, np.ndarray)
            and dout.shape == x.shape and supports(dout, x) and dout.flags.c_contiguous and x.flags.c_contiguous):
        return None
    out = np.empty_like(dout)
    return None if backend.compiled(_relu_mask, dout.reshape(-1), x.reshape(-1), out.reshape(-1)) is None else out


# ----------------------------------------------------------------------------- softmax loss

@jit()
def _softmax_shift(x, y, z):
    """z = x - max per row, in float64; 0, or 1 for non-finite x, 2 for a label outside 0..C-1."""
    n, c = x.shape
    for i in range(n):
        row = x[i]
        for j in range(c):
            if not np.isfinite(row[j]):
                return 1
        if y[i] < 0 or y[i] >= c:
            return 2
        mx = np.float64(row[0])
        for j in range(1, c):
            mx = max(mx, np.float64(row[j]))
        zr = z[i]
        for j in range(c):
            zr[j] = np.float64(row[j]) - mx
    return 0


@jit()
def _softmax_grad(e, y, probs_y, dx):
    """From e = exp(z): probs_y = e[i, y_i] / sum_j e[i, j] and dx = (e / s - onehot(y)) / N in dx's dtype.
    False when a probability is below float64's tiny (the caller then takes the log-sum-exp branch)."""
    n, c = e.shape
    tiny = np.finfo(np.float64).tiny
    ok = True
    for i in range(n):
        s = _pairwise(e[i], 0, c, False)
        p = e[i, y[i]] / s
        probs_y[i] = p
        ok &= p >= tiny
        for j in range(c):
            d = e[i, j] / s
            if j == y[i]:
                d -= 1.0
            dx[i, j] = d / n
    return ok


def softmax_loss(x, y):
    """``(loss, dx)`` of ``losses.softmax_loss``, bit for bit, for clean input; None otherwise
    (not an (N, C) float32/float64 array with N >= 1 and integer labels of shape (N,), a NaN or inf
    score, a label out of range, an underflowing probability): the reference then computes or raises."""
    if not (backend.fast() and isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype in _FLOATS and len(x)
            and isinstance(y, np.ndarray) and y.dtype.kind in "iu" and y.shape == (len(x),)
            and _underflow_ignored()):
        return None
    n, c = x.shape
    yi = y.astype(np.intp, copy=False)   # a uint64 label >= 2**63 wraps negative: out of range, reference
    x = np.ascontiguousarray(x)
    z = np.empty((n, c))
    status = backend.compiled(_softmax_shift, x, yi, z)
    if status is None or status != 0:
        return None
    np.exp(z, out=z)     # underflow ignored (checked above), as the reference's errstate has it
    probs_y = np.empty(n)
    dx = np.empty((n, c), dtype=x.dtype)
    ok = backend.compiled(_softmax_grad, z, yi, probs_y, dx)
    if not ok:
        return None
    return -float(np.sum(np.log(probs_y, out=probs_y))) / n, dx


# ----------------------------------------------------------------------------- warm-up

def warm() -> list[str]:
    """Compile (or load from the cache) every kernel here for float32 and float64; returns their names."""
    if not backend.fast():
        return []
    names = []
    for dt in _FLOATS:
        w = np.ones((3, 2), dtype=dt)
        with np.errstate(all="ignore"):
            sgd(w, w, 0.1)
            momentum(w, w, None, 0.9, 0.1)
            nesterov(w, w, None, 0.9, 0.1)
            rmsprop(w, w, None, 0.9, 0.1, 1e-8)
            adam(w, w, None, None, 1, 0.9, 0.999, 0.1, 1e-8)
            sum_squares(w)
            all_finite(w)
            relu_forward(w)
            relu_backward(w, w)
            softmax_loss(w, np.zeros(3, dtype=np.int64))
        names += [f"{k}[{dt.name}]" for k in ("sgd", "momentum", "nesterov", "rmsprop", "adam", "sum_squares",
                                             "all_finite", "relu_forward", "relu_backward",
                                             "softmax_loss")]
    return names
