"""The Numba kernels of ``normlab.nn._jit_ops`` against their NumPy references, bit for bit.

Every public function runs twice on the same inputs: on the Numba backend (the
default) and under ``backend.using("numpy")`` (the reference), and the results
must be identical in value, dtype and shape, at awkward shapes (one element,
odd sizes, 4-D), non-contiguous inputs, float32 and float64, large values, and
through the fallbacks (non-finite values, np.errstate, a compile error).
"""
import warnings

import numpy as np
import pytest

pytest.importorskip("numba")

from normlab import optim  # noqa: E402
from normlab.nets.common import add_l2, sum_squares  # noqa: E402
from normlab.nn import _jit_ops, backend  # noqa: E402
from normlab.nn.basic import ReluCache, relu_backward, relu_forward  # noqa: E402
from normlab.nn.losses import softmax_loss  # noqa: E402

DTYPES = [np.float32, np.float64]
SHAPES = [(1,), (7,), (3, 5), (31, 17), (2, 3, 4, 5), (257, 3)]
RULES = ["sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam"]
CONFIGS = {"sgd": {"learning_rate": 0.07}, "sgd_momentum": {"learning_rate": 0.05, "momentum": 0.8},
           "sgd_nesterov_momentum": {"learning_rate": 0.05, "momentum": 0.9},
           "rmsprop": {"learning_rate": 0.01, "decay_rate": 0.95}, "adam": {"learning_rate": 0.003}}


@pytest.fixture(autouse=True)
def numba_backend():
    if not backend.fast():
        pytest.skip("the Numba backend is off (NORMLAB_BACKEND=numpy or a kernel failed to compile)")


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def reference(fn, *args):
    with backend.using("numpy"):
        return fn(*args)


def assert_identical(a, b):
    """Same type, dtype, shape and bits; recursive over tuples, lists and dicts."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_identical(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()     # the bits: -0.0 is not 0.0, NaN equals its own bits
    else:
        assert type(a) is type(b) and np.asarray(a).tobytes() == np.asarray(b).tobytes(), (a, b)


def strided(a):
    """A non-contiguous array equal to ``a``: every other column of a wider array."""
    wide = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


# ----------------------------------------------------------------------------- update rules

@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_update_rules_agree_bitwise_over_steps(name, dtype, shape, rng):
    rule = optim.UPDATE_RULES[name][0]
    w_fast = w_ref = rng.standard_normal(shape).astype(dtype)
    c_fast, c_ref = dict(CONFIGS[name]), dict(CONFIGS[name])
    for _ in range(4):
        dw = rng.standard_normal(shape).astype(dtype)
        w_fast, c_fast = rule(w_fast, dw, c_fast)
        w_ref, c_ref = reference(rule, w_ref, dw, c_ref)
        assert_identical(w_fast, w_ref)
        assert_identical(c_fast, c_ref)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_kernel_runs_and_keeps_dtype(name, dtype, rng):
    w = rng.standard_normal((5, 3)).astype(dtype)
    result = optim.fused_update(name, w, w * 0.5, dict(CONFIGS[name]))
    assert result is not None, "the fused kernel did not run"
    next_w, config = result
    assert next_w.dtype == dtype and next_w.shape == w.shape and next_w.flags.c_contiguous
    assert all(v.dtype == dtype for v in config.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_mixed_inputs(name, dtype, rng):
    rule = optim.UPDATE_RULES[name][0]
    w = rng.standard_normal((6, 9)).astype(dtype)
    _, state = rule(w, rng.standard_normal(w.shape).astype(dtype), dict(CONFIGS[name]))
    state = {k: (strided(v) if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    for dw in (strided(rng.standard_normal(w.shape)).astype(dtype, copy=False),   # strided grad
               np.asfortranarray(rng.standard_normal(w.shape).astype(dtype)),     # F-ordered grad
               rng.standard_normal(w.shape)):                                     # float64 grad, cast to w's
        assert_identical(rule(w, dw, dict(state)), reference(rule, w, dw, dict(state)))
    # a non-contiguous w itself: the reference computes, on both backends
    wt = np.asfortranarray(w)
    assert_identical(rule(wt, w, dict(state)), reference(rule, wt, w, dict(state)))


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_values_agree(name, dtype, rng):
    rule = optim.UPDATE_RULES[name][0]
    big = 1e18 if dtype == np.float32 else 1e150     # dw**2 close to, but below, the dtype's max
    w = (rng.standard_normal(64) * big).astype(dtype)
    dw = (rng.standard_normal(64) * big).astype(dtype)
    assert_identical(rule(w, dw, dict(CONFIGS[name])), reference(rule, w, dw, dict(CONFIGS[name])))


@pytest.mark.parametrize("name", RULES)
def test_overflow_falls_back_to_numpy_errors(name):
    """A value the kernel forms overflows: NumPy computes, warns or raises as np.errstate says."""
    rule = optim.UPDATE_RULES[name][0]
    w = np.full(3, 3e38, dtype=np.float32)
    dw = np.full(3, -3e38, dtype=np.float32)
    config = {**CONFIGS[name], "learning_rate": 0.9}
    assert optim.fused_update(name, w, dw, dict(config)) is None
    for be in ("numba", "numpy"):
        with backend.using(be), np.errstate(over="raise", invalid="raise"), pytest.raises(FloatingPointError):
            rule(w, dw, dict(config))
    with warnings.catch_warnings(record=True) as fast_warnings:
        warnings.simplefilter("always")
        fast = rule(w, dw, dict(config))
    with warnings.catch_warnings(record=True) as ref_warnings:
        warnings.simplefilter("always")
        ref = reference(rule, w, dw, dict(config))
    assert_identical(fast, ref)
    assert [str(w.message) for w in fast_warnings] == [str(w.message) for w in ref_warnings]
    assert ref_warnings   # overflow warned


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradient_is_reported_not_computed(name, bad, rng):
    w = rng.standard_normal((4, 4)).astype(np.float32)
    dw = w.copy()
    dw[2, 3] = bad
    config = dict(CONFIGS[name])
    assert optim.fused_update(name, w, dw, config) is None
    assert config == CONFIGS[name]        # untouched
    for lr in (0.0, 0.1):                 # 0 * inf is NaN: still caught
        assert optim.fused_update(name, w, dw, {**config, "learning_rate": lr}) is None


def test_underflow_errstate_declines_the_kernel():
    w = np.full(4, 1e-30, dtype=np.float32)
    dw = np.full(4, 1e-30, dtype=np.float32)
    assert _jit_ops.sgd(w, dw, 1e-10) is not None
    with np.errstate(under="raise"):
        assert _jit_ops.sgd(w, dw, 1e-10) is None
        for be in ("numba", "numpy"):
            with backend.using(be), pytest.raises(FloatingPointError):
                optim.sgd(w, dw, {"learning_rate": 1e-10})


def test_underflow_errstate_declines_every_computing_kernel(rng):
    x = rng.standard_normal((4, 3))
    with np.errstate(under="warn"):
        assert _jit_ops.softmax_loss(x, np.array([0, 1, 2, 0])) is None
        assert _jit_ops.sum_squares(x) is None
        assert _jit_ops.adam(x, x, None, None, 1, 0.9, 0.999, 1e-3, 1e-8) is None
        assert _jit_ops.relu_forward(x) is not None and _jit_ops.all_finite(x) is True   # no arithmetic


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "rmsprop"])
def test_zero_dimensional_weights_stay_numpy_scalars(name):
    rule = optim.UPDATE_RULES[name][0]
    w = np.asarray(1.5, dtype=np.float32)
    assert_identical(rule(w, w, {}), reference(rule, w, w, {}))


def test_adam_state_from_config_agrees(rng):
    w = rng.standard_normal(10).astype(np.float32)
    config = {"m": rng.standard_normal(10), "v": rng.random(10), "t": 7, "beta1": 0.5}  # float64 state, cast
    assert_identical(optim.adam(w, w, dict(config)), reference(optim.adam, w, w, dict(config)))


def test_compile_error_falls_back_and_disables(monkeypatch, rng):
    from numba.core.errors import NumbaError

    def broken(*args):
        raise NumbaError("cannot compile")
    monkeypatch.setitem(backend._state, "failed", None)   # restored afterwards: the backend comes back on
    monkeypatch.setitem(backend._state, "noticed", True)  # no FastBackendNotice
    monkeypatch.setattr(_jit_ops, "_sgd", broken)
    w = rng.standard_normal(5).astype(np.float32)
    assert_identical(optim.sgd(w, w, {}), reference(optim.sgd, w, w, {}))
    assert not backend.fast()


# ----------------------------------------------------------------------------- softmax loss

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (64, 10), (5, 300), (3, 129), (2, 1000), (17, 8)])
def test_softmax_loss_agrees_bitwise(dtype, shape, rng):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    y = rng.integers(shape[1], size=shape[0])
    assert _jit_ops.softmax_loss(x, y) is not None
    assert_identical(softmax_loss(x, y), reference(softmax_loss, x, y))


@pytest.mark.parametrize("labels", [np.int32, np.uint8, np.int64, np.uint64])
def test_softmax_loss_label_dtypes_and_strided_scores(labels, rng):
    x = strided(rng.standard_normal((9, 6)).astype(np.float32))
    y = rng.integers(6, size=9).astype(labels)
    assert_identical(softmax_loss(x, y), reference(softmax_loss, x, y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_loss_large_scores_take_the_reference_branch(dtype, rng):
    x = (rng.standard_normal((8, 5)) * (1e4 if dtype == np.float32 else 1e300)).astype(dtype)
    y = np.argmin(x, axis=1)   # a probability underflows: the log-sum-exp branch
    assert _jit_ops.softmax_loss(x, y) is None
    assert_identical(softmax_loss(x, y), reference(softmax_loss, x, y))


@pytest.mark.parametrize("x, y, error", [
    (np.array([[0.0, np.nan]]), np.array([0]), ValueError),
    (np.array([[0.0, np.inf]]), np.array([1]), ValueError),
    (np.zeros((2, 3)), np.array([0, 3]), ValueError),
    (np.zeros((2, 3)), np.array([-1, 0]), ValueError),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError),
    (np.zeros((2, 3)), np.array([0, 1, 2]), ValueError),
    (np.zeros((0, 3)), np.zeros(0, dtype=int), ValueError),
    (np.zeros((2, 3), dtype=np.float32), np.array([0, 2**63], dtype=np.uint64), ValueError),
])
def test_softmax_loss_errors_are_the_references(x, y, error):
    with pytest.raises(error) as fast:
        softmax_loss(x, y)
    with pytest.raises(error) as ref:
        reference(softmax_loss, x, y)
    assert str(fast.value) == str(ref.value)


# ----------------------------------------------------------------------------- ReLU

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 5), (64, 512), (2, 3, 4, 5)])
def test_relu_forward_agrees_bitwise(dtype, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0] = -0.0
    if x.size > 4:
        x.flat[1:5] = [np.nan, -np.nan, np.inf, -np.inf]
    assert _jit_ops.relu_forward(x) is not None
    fast, ref = relu_forward(x), reference(relu_forward, x)
    assert_identical(fast[0], ref[0])
    assert fast[1].x is x and ref[1].x is x


def test_relu_forward_other_layouts(rng):
    for x in (strided(rng.standard_normal((5, 4))), rng.standard_normal((5, 4)).astype(np.float16),
              np.asarray(-0.0), [[-1, 2]]):
        assert_identical(relu_forward(x)[0], reference(relu_forward, x)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 5), (64, 512), (2, 3, 4, 5)])
def test_relu_backward_agrees_bitwise(dtype, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    x.flat[0], dout.flat[-1] = np.nan, -0.0     # NaN input gives 0; a -0.0 gradient passes or is zeroed
    if x.size > 2:
        x.flat[1], dout.flat[1] = 0.0, np.inf    # x = 0 is not > 0
    cache = ReluCache(x)
    assert _jit_ops.relu_backward(dout, x) is not None
    assert_identical(relu_backward(dout, cache), reference(relu_backward, dout, cache))


def test_relu_backward_other_layouts_and_dtypes(rng):
    x = rng.standard_normal((5, 4))
    for dout, xs in ((strided(rng.standard_normal((5, 4))), x), (rng.standard_normal((5, 4)), strided(x)),
                     (rng.standard_normal((5, 4)).astype(np.float32), x)):
        cache = ReluCache(xs)
        assert_identical(relu_backward(dout, cache), reference(relu_backward, dout, cache))


# ----------------------------------------------------------------------------- sums and checks

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 255, 1000, 4097, 100_003])
def test_sum_squares_is_numpys_pairwise_sum(dtype, n, rng):
    w = (rng.standard_normal(n) * 3).astype(dtype)
    expected = float(np.sum(w.astype(np.float64) ** 2))
    assert _jit_ops.sum_squares(w) == expected
    assert sum_squares(w) == expected and reference(sum_squares, w) == expected
    assert sum_squares(w.reshape(1, n)) == expected


def test_sum_squares_non_contiguous_and_overflow():
    w = np.arange(12.0).reshape(3, 4).T
    assert sum_squares(w) == float(np.sum(w.astype(np.float64) ** 2))
    huge = np.array([1e200, 1e200])
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):   # as NumPy's, not a silent inf
        sum_squares(huge)


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite(dtype, rng):
    a = rng.standard_normal((13, 7)).astype(dtype)
    assert _jit_ops.all_finite(a) is True and _jit_ops.all_finite(strided(a)) is True
    for bad in (np.nan, np.inf, -np.inf):
        for where in (0, 50, a.size - 1):
            b = a.copy()
            b.flat[where] = bad
            assert _jit_ops.all_finite(b) is False
    assert _jit_ops.all_finite(np.arange(3)) is None      # integers: the caller's reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reg", [0.0, 0.37])
def test_add_l2_is_the_old_penalty(dtype, reg, rng):
    params = {"W1": rng.standard_normal((30, 20)).astype(dtype), "W2": rng.standard_normal((20, 3)).astype(dtype)}
    grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
    loss, expected = 1.25, {k: g.copy() for k, g in grads.items()}
    old = loss
    for k in ("W1", "W2"):   # the nets' code before add_l2
        old += 0.5 * reg * float(np.sum(params[k].astype(np.float64) ** 2))
        expected[k] += reg * params[k]
    for be in ("numba", "numpy"):
        g = {k: v.copy() for k, v in grads.items()}
        with backend.using(be):
            assert add_l2(loss, g, params, ["W1", "W2"], reg) == old
        for k in g:
            assert_identical(g[k], expected[k])
