"""Batch norm and spatial batch norm: closed forms inline, the course's checks,
running statistics per formula (both conventions), central differences with a
random upstream gradient, the spatial == channels-last equivalence, dtype, and
large inputs on the blocked kernels (boundary errors: test_batchnorm_boundaries.py)."""
import numpy as np
import pytest

from normlab.nn.norm.batchnorm import (BatchNormConfig, RunningStats, batchnorm_backward_closed, batchnorm_backward_staged,
                                       batchnorm_eval, batchnorm_train)
from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.layers import (batchnorm_backward, batchnorm_backward_alt, batchnorm_forward, spatial_batchnorm_backward,
                            spatial_batchnorm_forward)

EPS = 1e-5


@pytest.fixture
def rng():
    return np.random.default_rng(2017)


def bn_reference(x, gamma, beta, eps=EPS):
    return (x - x.mean(0)) / np.sqrt(x.var(0) + eps) * gamma + beta


def to_rows(x):
    """(N, C, H, W) -> (N*H*W, C), channels last."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_rows(r, shape):
    n, c, h, w = shape
    return r.reshape(n, h, w, c).transpose(0, 3, 1, 2)


# ------------------------------------------------------------------ closed forms

def test_train_output_equals_closed_form(rng):
    x = 5 * rng.standard_normal((10, 4)) + 12
    gamma, beta = rng.standard_normal((2, 4))
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out, bn_reference(x, gamma, beta), rtol=1e-12, atol=1e-12)


def test_spatial_train_output_equals_closed_form(rng):
    x = 5 * rng.standard_normal((2, 3, 4, 5)) + 12
    gamma, beta = rng.standard_normal((2, 3))
    out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    want = (x - mean) / np.sqrt(var + EPS) * gamma.reshape(1, 3, 1, 1) + beta.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_course_train_stats_unit_gamma(rng):
    x = 50 + 3 * rng.standard_normal((200, 3))
    out, _ = batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-5)


def test_course_train_stats_given_gamma_beta(rng):
    x = 50 + 3 * rng.standard_normal((200, 3))
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([11.0, 12.0, 13.0])
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=1e-5)


def test_course_test_time_after_50_train_passes(rng):
    # The course check: a two-layer ReLU net feeds batch norm; after 50 training
    # passes the running statistics make test-mode outputs roughly normalized.
    n, d1, d2, d3 = 200, 50, 60, 3
    w1, w2 = rng.standard_normal((d1, d2)), rng.standard_normal((d2, d3))
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([11.0, 12.0, 13.0])
    bn_param = {"mode": "train"}
    for _ in range(50):
        a = np.maximum(0, rng.standard_normal((n, d1)) @ w1) @ w2
        batchnorm_forward(a, gamma, beta, bn_param)
    bn_param["mode"] = "test"
    a = np.maximum(0, rng.standard_normal((n, d1)) @ w1) @ w2
    out, _ = batchnorm_forward(a, gamma, beta, bn_param)
    # Loose: a fresh 200-sample batch differs from the running averages by sampling noise
    # (~0.15 std), and 50 passes at momentum 0.9 leave 0.9**50 ~ 0.5% of the zero start.
    assert np.all(np.abs(out.mean(axis=0) - beta) < 0.3 * gamma), out.mean(axis=0)
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=0.25)


def test_test_mode_output_uses_running_stats(rng):
    x = rng.standard_normal((6, 4))
    gamma, beta = rng.standard_normal((2, 4))
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "test", "running_mean": rm, "running_var": rv})
    np.testing.assert_allclose(out, (x - rm) / np.sqrt(rv + EPS) * gamma + beta, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ running statistics

def test_course_running_stats_follow_formula_exactly(rng):
    x1, x2 = 3 * rng.standard_normal((2, 8, 4)) + 2
    bn_param = {"mode": "train"}
    batchnorm_forward(x1, np.ones(4), np.zeros(4), bn_param)
    # initial zeros: running = 0.9 * 0 + 0.1 * batch, biased variance
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x1.mean(0), rtol=1e-14)
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * x1.var(0), rtol=1e-14)
    rm, rv = bn_param["running_mean"].copy(), bn_param["running_var"].copy()
    batchnorm_forward(x2, np.ones(4), np.zeros(4), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.9 * rm + 0.1 * x2.mean(0), rtol=1e-14)
    np.testing.assert_allclose(bn_param["running_var"], 0.9 * rv + 0.1 * x2.var(0), rtol=1e-14)


def test_torch_running_stats_follow_formula_exactly(rng):
    m = 8
    x1, x2 = 3 * rng.standard_normal((2, m, 4)) + 2
    bn_param = {"mode": "train", "convention": "torch"}
    batchnorm_forward(x1, np.ones(4), np.zeros(4), bn_param)
    # initial mean 0, var 1; momentum 0.1 weights the NEW batch; unbiased variance
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x1.mean(0), rtol=1e-14)
    np.testing.assert_allclose(bn_param["running_var"], 0.9 * 1.0 + 0.1 * x1.var(0, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(x1.var(0, ddof=1), x1.var(0) * m / (m - 1), rtol=1e-14)
    rm, rv = bn_param["running_mean"].copy(), bn_param["running_var"].copy()
    batchnorm_forward(x2, np.ones(4), np.zeros(4), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.9 * rm + 0.1 * x2.mean(0), rtol=1e-14)
    np.testing.assert_allclose(bn_param["running_var"], 0.9 * rv + 0.1 * x2.var(0, ddof=1), rtol=1e-14)


@pytest.mark.parametrize("convention, momentum, new_weight", [
    ("course", 0.5, 0.5), ("course", 0.75, 0.25), ("course", 0.0, 1.0), ("course", 1.0, 0.0),
    ("torch", 0.3, 0.3), ("torch", 0.0, 0.0), ("torch", 1.0, 1.0)])
def test_momentum_meaning_per_convention(rng, convention, momentum, new_weight):
    x = rng.standard_normal((5, 3))
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    bn_param = {"mode": "train", "convention": convention, "momentum": momentum,
                "running_mean": rm.copy(), "running_var": rv.copy()}
    batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    batch_var = x.var(0, ddof=1 if convention == "torch" else 0)
    np.testing.assert_allclose(bn_param["running_mean"], (1 - new_weight) * rm + new_weight * x.mean(0),
                               rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(bn_param["running_var"], (1 - new_weight) * rv + new_weight * batch_var,
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("spatial", [False, True])
def test_test_mode_leaves_running_stats_alone(rng, spatial):
    shape, c = ((2, 3, 4, 5), 3) if spatial else ((6, 3), 3)
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    bn_param = {"mode": "test", "running_mean": rm.copy(), "running_var": rv.copy()}
    for _ in range(3):
        forward(rng.standard_normal(shape), np.ones(c), np.zeros(c), bn_param)
    np.testing.assert_array_equal(bn_param["running_mean"], rm)
    np.testing.assert_array_equal(bn_param["running_var"], rv)


@pytest.mark.parametrize("convention, var0", [("course", 0.0), ("torch", 1.0)])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_bn_param_gets_running_stats_on_first_use(rng, convention, var0, mode):
    bn_param = {"mode": mode, "convention": convention}
    x = rng.standard_normal((4, 5))
    batchnorm_forward(x, np.ones(5), np.zeros(5), bn_param)
    assert bn_param["running_mean"].shape == bn_param["running_var"].shape == (5,)
    assert bn_param["running_mean"].dtype == bn_param["running_var"].dtype == np.float64
    if mode == "test":
        np.testing.assert_array_equal(bn_param["running_mean"], np.zeros(5))
        np.testing.assert_array_equal(bn_param["running_var"], np.full(5, var0))


def test_functional_core_returns_new_stats_without_mutating(rng):
    cfg = BatchNormConfig()
    stats = RunningStats(rng.standard_normal(3), rng.random(3) + 0.5)
    before = RunningStats(stats.mean.copy(), stats.var.copy())
    x = rng.standard_normal((6, 3))
    _, new, _ = batchnorm_train(x, np.ones(3), np.zeros(3), stats, cfg)
    np.testing.assert_array_equal(stats.mean, before.mean)
    np.testing.assert_array_equal(stats.var, before.var)
    np.testing.assert_allclose(new.mean, 0.9 * before.mean + 0.1 * x.mean(0), rtol=1e-14)
    out, _ = batchnorm_eval(x, np.ones(3), np.zeros(3), new, cfg)
    np.testing.assert_allclose(out, (x - new.mean) / np.sqrt(new.var + EPS), rtol=1e-12)


def test_config_defaults():
    assert BatchNormConfig().momentum == 0.9 and BatchNormConfig().eps == 1e-5
    assert BatchNormConfig(convention="torch").momentum == 0.1


# --------------------------------------------------------- finite differences

def bn_grad_errors(mode, backward, rng):
    n, d = 4, 5
    x = 5 * rng.standard_normal((n, d)) + 12
    gamma, beta = rng.standard_normal((2, d))
    dout = rng.standard_normal((n, d))
    base = {"mode": mode}
    if mode == "test":
        base.update(running_mean=rng.standard_normal(d) + 12, running_var=25 * rng.random(d) + 1)

    def fwd(x_, g_, b_):
        return batchnorm_forward(x_, g_, b_, dict(base))[0]

    dx_num = eval_numerical_gradient_array(lambda v: fwd(v, gamma, beta), x, dout)
    dg_num = eval_numerical_gradient_array(lambda v: fwd(x, v, beta), gamma, dout)
    db_num = eval_numerical_gradient_array(lambda v: fwd(x, gamma, v), beta, dout)
    _, cache = batchnorm_forward(x, gamma, beta, dict(base))
    dx, dgamma, dbeta = backward(dout, cache)
    return rel_error(dx, dx_num), rel_error(dgamma, dg_num), rel_error(dbeta, db_num)


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_alt], ids=["staged", "alt"])
def test_bn_backward_matches_finite_differences(rng, mode, backward):
    errs = bn_grad_errors(mode, backward, rng)
    assert max(errs) < 1e-7, errs


@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_bn_backward_matches_finite_differences(rng, mode):
    n, c, h, w = 2, 3, 4, 5
    x = 5 * rng.standard_normal((n, c, h, w)) + 12
    gamma, beta = rng.standard_normal((2, c))
    dout = rng.standard_normal((n, c, h, w))
    base = {"mode": mode}
    if mode == "test":
        base.update(running_mean=rng.standard_normal(c) + 12, running_var=25 * rng.random(c) + 1)

    def fwd(x_, g_, b_):
        return spatial_batchnorm_forward(x_, g_, b_, dict(base))[0]

    dx_num = eval_numerical_gradient_array(lambda v: fwd(v, gamma, beta), x, dout)
    dg_num = eval_numerical_gradient_array(lambda v: fwd(x, v, beta), gamma, dout)
    db_num = eval_numerical_gradient_array(lambda v: fwd(x, gamma, v), beta, dout)
    _, cache = spatial_batchnorm_forward(x, gamma, beta, dict(base))
    dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)
    assert rel_error(dx, dx_num) < 1e-6
    assert rel_error(dgamma, dg_num) < 1e-6
    assert rel_error(dbeta, db_num) < 1e-6


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("spatial", [False, True])
def test_staged_and_closed_form_backward_agree(rng, mode, spatial):
    shape = (2, 3, 4, 5) if spatial else (100, 50)
    c = shape[1]
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    x = 5 * rng.standard_normal(shape) + 12
    gamma, beta = rng.standard_normal((2, c))
    dout = rng.standard_normal(shape)
    bn_param = {"mode": mode, "running_mean": rng.standard_normal(c), "running_var": rng.random(c) + 0.5}
    _, cache = forward(x, gamma, beta, bn_param)
    staged = batchnorm_backward_staged(dout, cache)
    closed = batchnorm_backward_closed(dout, cache)
    for a, b in zip(staged, closed):
        assert a.shape == b.shape
        assert agree(a, b) < 1e-12


def agree(a, b):
    """max|a - b| / max|a|: normwise, because the elementwise rel_error blows up on the
    entries of dx that cancel to ~1e-4 of the rest (1 ulp apart, yet 'rel error' 1e-12+)."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


@pytest.mark.parametrize("seed", range(20))
def test_staged_and_closed_form_agree_at_course_speed_size(seed):
    rng = np.random.default_rng(seed)
    x = 5 * rng.standard_normal((100, 500)) + 12
    gamma, beta = rng.standard_normal((2, 500))
    dout = rng.standard_normal(x.shape)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for a, b in zip(batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)):
        assert agree(a, b) < 1e-12


def test_all_ones_upstream_gives_zero_dx(rng):
    # Why the gradient checks use a random dout: with ones, dx vanishes identically.
    x = rng.standard_normal((6, 4))
    _, cache = batchnorm_forward(x, rng.standard_normal(4), np.zeros(4), {"mode": "train"})
    dx, _, _ = batchnorm_backward_alt(np.ones((6, 4)), cache)
    np.testing.assert_allclose(dx, 0.0, atol=1e-12)


def test_dgamma_dbeta_take_gammas_shape(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    gamma, beta = rng.standard_normal((2, 1, 3, 1, 1))
    out, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    _, dgamma, dbeta = spatial_batchnorm_backward(rng.standard_normal(out.shape), cache)
    assert dgamma.shape == dbeta.shape == (1, 3, 1, 1)


# ------------------------------------------------- spatial == channels-last BN

@pytest.mark.parametrize("convention", ["course", "torch"])
def test_spatial_bn_equals_bn_on_channels_last_reshape(rng, convention):
    shape = (3, 4, 2, 5)
    c = shape[1]
    gamma, beta = rng.standard_normal((2, c))
    p_spatial = {"mode": "train", "convention": convention}
    p_flat = {"mode": "train", "convention": convention}
    for _ in range(3):
        x = 4 * rng.standard_normal(shape) - 3
        dout = rng.standard_normal(shape)
        out_s, cache_s = spatial_batchnorm_forward(x, gamma, beta, p_spatial)
        out_f, cache_f = batchnorm_forward(to_rows(x), gamma, beta, p_flat)
        np.testing.assert_allclose(out_s, from_rows(out_f, shape), rtol=1e-12, atol=1e-12)
        dx_s, dg_s, db_s = spatial_batchnorm_backward(dout, cache_s)
        dx_f, dg_f, db_f = batchnorm_backward(to_rows(dout), cache_f)
        np.testing.assert_allclose(dx_s, from_rows(dx_f, shape), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dg_s, dg_f, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db_s, db_f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p_spatial["running_mean"], p_flat["running_mean"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(p_spatial["running_var"], p_flat["running_var"], rtol=1e-12)
    p_spatial["mode"] = p_flat["mode"] = "test"
    x = rng.standard_normal(shape)
    out_s, _ = spatial_batchnorm_forward(x, gamma, beta, p_spatial)
    out_f, _ = batchnorm_forward(to_rows(x), gamma, beta, p_flat)
    np.testing.assert_allclose(out_s, from_rows(out_f, shape), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------ dtype

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("convention", ["course", "torch"])
def test_dtype_is_preserved(rng, dtype, spatial, convention):
    shape = (2, 3, 4, 5) if spatial else (6, 3)
    forward, backward = ((spatial_batchnorm_forward, spatial_batchnorm_backward) if spatial
                         else (batchnorm_forward, batchnorm_backward))
    x = rng.standard_normal(shape).astype(dtype)
    gamma, beta = rng.standard_normal((2, 3)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    bn_param = {"mode": "train", "convention": convention}
    out, cache = forward(x, gamma, beta, bn_param)
    assert out.dtype == dtype
    assert bn_param["running_mean"].dtype == bn_param["running_var"].dtype == dtype
    for grads in (backward(dout, cache), batchnorm_backward_alt(dout, cache)):
        assert [g.dtype for g in grads] == [dtype] * 3
    bn_param["mode"] = "test"
    out, cache = forward(x, gamma, beta, bn_param)
    assert out.dtype == dtype
    assert [g.dtype for g in backward(dout, cache)] == [dtype] * 3
    assert bn_param["running_mean"].dtype == bn_param["running_var"].dtype == dtype


def test_float32_matches_float64_reference(rng):
    x = 5 * rng.standard_normal((32, 6)) + 12
    gamma, beta = rng.standard_normal((2, 6))
    out32, _ = batchnorm_forward(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32),
                                 {"mode": "train"})
    np.testing.assert_allclose(out32, bn_reference(x, gamma, beta), rtol=1e-4, atol=1e-4)


# ------------------------------------- large inputs: blocked kernels, threads

# Shapes above _kernels.BLOCK_BYTES (several blocks, a ragged last one) and above
# SERIAL_BYTES (handed to the thread pool); the tiny course shapes take one block.
LARGE = [(3001, 64), (33, 4, 31, 32)]


@pytest.mark.parametrize("shape", LARGE, ids=["bn", "spatial"])
def test_multi_block_forward_backward_and_stats(rng, shape):
    spatial = len(shape) == 4
    c = shape[1]
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    x = 5 * rng.standard_normal(shape) + 12 + np.arange(c).reshape((1, c) + (1,) * (len(shape) - 2))
    gamma, beta = rng.standard_normal((2, c))
    dout = rng.standard_normal(shape)
    bn_param = {"mode": "train", "convention": "torch"}
    out, cache = forward(x, gamma, beta, bn_param)
    rows = to_rows(x) if spatial else x
    want = bn_reference(rows, gamma, beta)
    np.testing.assert_allclose(out, from_rows(want, shape) if spatial else want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * rows.mean(0), rtol=1e-13)
    np.testing.assert_allclose(bn_param["running_var"], 0.9 + 0.1 * rows.var(0, ddof=1), rtol=1e-13)
    staged = batchnorm_backward_staged(dout, cache)
    closed = batchnorm_backward_closed(dout, cache)
    for a, b in zip(staged, closed):
        assert agree(a, b) < 1e-12
    np.testing.assert_allclose(closed[2], dout.sum(axis=cache.axes), rtol=1e-12)


def test_multi_block_float32_large_offset(rng):
    x64 = 1e4 + rng.standard_normal((9000, 16))
    x = x64.astype(np.float32)
    out, _ = batchnorm_forward(x, np.ones(16, np.float32), np.zeros(16, np.float32), {"mode": "train"})
    assert out.dtype == np.float32
    # float32 sums of ~1e4-sized values leave the mean off by ~1e-2 (in std units); what
    # must not happen is the variance cancelling (E[x^2] - E[x]^2 would give garbage here).
    np.testing.assert_allclose(out, bn_reference(x.astype(np.float64), 1.0, 0.0), atol=5e-2)
    np.testing.assert_allclose(out.astype(np.float64).std(axis=0), 1.0, rtol=2e-3)


@pytest.mark.parametrize("shape", LARGE, ids=["bn", "spatial"])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_results_bit_identical_whatever_the_thread_count(rng, monkeypatch, shape, mode):
    spatial = len(shape) == 4
    c = shape[1]
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    x = 3 * rng.standard_normal(shape) + 1
    gamma, beta = rng.standard_normal((2, c))
    dout = rng.standard_normal(shape)
    results = []
    for threads in ("1", "3", "8"):
        monkeypatch.setenv("NORMLAB_NUM_THREADS", threads)
        bn_param = {"mode": mode, "running_mean": np.full(c, 0.5), "running_var": np.full(c, 2.0)}
        out, cache = forward(x, gamma, beta, bn_param)
        results.append([out, bn_param["running_mean"], bn_param["running_var"],
                        *batchnorm_backward_alt(dout, cache)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spatial", [False, True])
def test_non_contiguous_input_and_upstream(rng, spatial):
    shape = (2, 3, 4, 5) if spatial else (6, 3)
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    x = 2 * rng.standard_normal(shape[::-1]).T + 1          # Fortran-ordered view
    dout = rng.standard_normal(shape[::-1]).T
    gamma, beta = rng.standard_normal((2, 3))
    out_nc, cache_nc = forward(x, gamma, beta, {"mode": "train"})
    out_c, cache_c = forward(np.ascontiguousarray(x), gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out_nc, out_c, rtol=1e-14, atol=1e-14)
    for backward in (batchnorm_backward, batchnorm_backward_alt):
        for a, b in zip(backward(dout, cache_nc), backward(np.ascontiguousarray(dout), cache_c)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_backward_does_not_modify_its_inputs(rng):
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 4))
    _, cache = batchnorm_forward(x, rng.standard_normal(4), np.zeros(4), {"mode": "train"})
    x_before, dout_before = x.copy(), dout.copy()
    batchnorm_backward(dout, cache)
    batchnorm_backward_alt(dout, cache)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
