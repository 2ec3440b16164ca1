"""Layer, group and instance norm: per-sample closed forms inline, central
differences with a random upstream gradient at the course's sizes, the
equivalences GN(G=1) == LN over (C, H, W) and GN(G=C) == instance norm,
dtype and boundary errors."""
import re

import numpy as np
import pytest

from normlab.nn._checks import NonFiniteError
from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.layers import (instancenorm_backward, instancenorm_forward, layernorm_backward, layernorm_forward,
                            spatial_groupnorm_backward, spatial_groupnorm_forward)

EPS = 1e-5


@pytest.fixture
def rng():
    return np.random.default_rng(4242)


def ln_reference(x, gamma, beta, eps=EPS):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gn_reference(x, gamma, beta, G, eps=EPS):
    n, c, h, w = x.shape
    out = np.empty_like(x)
    for i in range(n):
        for k in range(G):
            sl = slice(k * c // G, (k + 1) * c // G)
            grp = x[i, sl]                                  # (C/G, H, W)
            out[i, sl] = (grp - grp.mean()) / np.sqrt(grp.var() + eps)
    return out * gamma.reshape(1, c, 1, 1) + beta.reshape(1, c, 1, 1)


def in_reference(x, gamma, beta, eps=EPS):
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    c = x.shape[1]
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(1, c, 1, 1) + beta.reshape(1, c, 1, 1)


def fd_errors(forward, backward, x, gamma, beta, dout):
    """rel errors of (dx, dgamma, dbeta) against central differences."""
    dx_num = eval_numerical_gradient_array(lambda v: forward(v, gamma, beta), x, dout)
    dg_num = eval_numerical_gradient_array(lambda v: forward(x, v, beta), gamma, dout)
    db_num = eval_numerical_gradient_array(lambda v: forward(x, gamma, v), beta, dout)
    _, cache = forward(x, gamma, beta, keep_cache=True)
    dx, dgamma, dbeta = backward(dout, cache)
    assert dgamma.shape == gamma.shape and dbeta.shape == beta.shape
    return rel_error(dx, dx_num), rel_error(dgamma, dg_num), rel_error(dbeta, db_num)


def ln(x, gamma, beta, keep_cache=False):
    res = layernorm_forward(x, gamma, beta, {})
    return res if keep_cache else res[0]


def gn(G):
    def f(x, gamma, beta, keep_cache=False):
        res = spatial_groupnorm_forward(x, gamma, beta, G, {})
        return res if keep_cache else res[0]
    return f


def inorm(x, gamma, beta, keep_cache=False):
    res = instancenorm_forward(x, gamma, beta, {})
    return res if keep_cache else res[0]


# ---------------------------------------------------------------- layer norm

def test_layernorm_equals_closed_form_per_row(rng):
    x = 5 * rng.standard_normal((4, 7)) + 12 * rng.standard_normal((4, 1))
    gamma, beta = rng.standard_normal((2, 7))
    out, _ = layernorm_forward(x, gamma, beta, {})
    np.testing.assert_allclose(out, ln_reference(x, gamma, beta), rtol=1e-12, atol=1e-12)
    plain, _ = layernorm_forward(x, np.ones(7), np.zeros(7), {})
    np.testing.assert_allclose(plain.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(plain.std(axis=1), 1.0, atol=1e-5)


def test_layernorm_same_in_train_and_test_and_per_sample(rng):
    x = rng.standard_normal((5, 6))
    gamma, beta = rng.standard_normal((2, 6))
    train, _ = layernorm_forward(x, gamma, beta, {"mode": "train"})
    test, _ = layernorm_forward(x, gamma, beta, {"mode": "test"})
    np.testing.assert_array_equal(train, test)
    single, _ = layernorm_forward(x[2:3], gamma, beta, {})   # one sample is fine: stats are per row
    np.testing.assert_allclose(single, train[2:3], rtol=1e-14, atol=1e-14)


def test_layernorm_backward_matches_finite_differences(rng):
    x = 5 * rng.standard_normal((4, 5)) + 12
    gamma, beta = rng.standard_normal((2, 5))
    errs = fd_errors(ln, layernorm_backward, x, gamma, beta, rng.standard_normal((4, 5)))
    assert max(errs) < 1e-7, errs


# ---------------------------------------------------------------- group norm

def test_groupnorm_equals_closed_form_per_sample_and_group(rng):
    x = 5 * rng.standard_normal((2, 6, 4, 5)) + 12
    gamma, beta = rng.standard_normal((2, 1, 6, 1, 1))
    out, _ = spatial_groupnorm_forward(x, gamma, beta, 2, {})
    np.testing.assert_allclose(out, gn_reference(x, gamma, beta, 2), rtol=1e-12, atol=1e-12)
    plain, _ = spatial_groupnorm_forward(x, np.ones(6), np.zeros(6), 3, {})
    grouped = plain.reshape(2, 3, 2 * 4 * 5)                 # (N, G, C/G*H*W)
    np.testing.assert_allclose(grouped.mean(axis=2), 0.0, atol=1e-12)
    np.testing.assert_allclose(grouped.std(axis=2), 1.0, atol=1e-5)


@pytest.mark.parametrize("param_shape", [(1, 6, 1, 1), (6,)])
def test_groupnorm_backward_matches_finite_differences(rng, param_shape):
    x = 5 * rng.standard_normal((2, 6, 4, 5)) + 12
    gamma, beta = rng.standard_normal((2,) + param_shape)
    errs = fd_errors(gn(2), spatial_groupnorm_backward, x, gamma, beta, rng.standard_normal((2, 6, 4, 5)))
    assert max(errs) < 1e-6, errs


def test_groupnorm_g1_equals_layernorm_over_chw(rng):
    n, c, h, w = 3, 4, 2, 5
    x = 2 * rng.standard_normal((n, c, h, w)) + 1
    gamma, beta = rng.standard_normal((2, c))
    dout = rng.standard_normal((n, c, h, w))
    g4, b4 = gamma.reshape(1, c, 1, 1), beta.reshape(1, c, 1, 1)
    out_gn, cache_gn = spatial_groupnorm_forward(x, gamma, beta, 1, {})
    ln_hat, cache_ln = layernorm_forward(x.reshape(n, -1), np.ones(c * h * w), np.zeros(c * h * w), {})
    np.testing.assert_allclose(out_gn, ln_hat.reshape(x.shape) * g4 + b4, rtol=1e-12, atol=1e-12)
    dx_gn, dg_gn, db_gn = spatial_groupnorm_backward(dout, cache_gn)
    dx_ln, _, _ = layernorm_backward((dout * g4).reshape(n, -1), cache_ln)
    np.testing.assert_allclose(dx_gn, dx_ln.reshape(x.shape), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dg_gn, (dout * ln_hat.reshape(x.shape)).sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(db_gn, dout.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_groupnorm_gc_equals_instance_norm(rng):
    x = 3 * rng.standard_normal((2, 4, 3, 5)) - 2
    gamma, beta = rng.standard_normal((2, 4))
    dout = rng.standard_normal(x.shape)
    out_gn, cache_gn = spatial_groupnorm_forward(x, gamma, beta, 4, {})
    out_in, cache_in = instancenorm_forward(x, gamma, beta, {})
    np.testing.assert_allclose(out_gn, in_reference(x, gamma, beta), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out_in, out_gn)
    for a, b in zip(spatial_groupnorm_backward(dout, cache_gn), instancenorm_backward(dout, cache_in)):
        np.testing.assert_array_equal(a, b)


def test_instancenorm_backward_matches_finite_differences(rng):
    x = 5 * rng.standard_normal((2, 3, 4, 5)) + 12
    gamma, beta = rng.standard_normal((2, 3))
    errs = fd_errors(inorm, instancenorm_backward, x, gamma, beta, rng.standard_normal(x.shape))
    assert max(errs) < 1e-6, errs


def test_groupnorm_accepts_numpy_integer_groups(rng):
    x = rng.standard_normal((2, 6, 2, 2))
    a, _ = spatial_groupnorm_forward(x, np.ones(6), np.zeros(6), np.int64(3), {})
    b, _ = spatial_groupnorm_forward(x, np.ones(6), np.zeros(6), 3, {})
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------ dtype

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["ln", "gn", "in"])
def test_dtype_is_preserved(rng, dtype, kind):
    if kind == "ln":
        x, c = rng.standard_normal((4, 6)).astype(dtype), 6
        out, cache = layernorm_forward(x, np.ones(c, dtype), np.zeros(c, dtype), {})
        grads = layernorm_backward(rng.standard_normal(x.shape).astype(dtype), cache)
    else:
        x, c = rng.standard_normal((2, 6, 3, 3)).astype(dtype), 6
        gamma, beta = np.ones((1, c, 1, 1), dtype), np.zeros((1, c, 1, 1), dtype)
        dout = rng.standard_normal(x.shape).astype(dtype)
        if kind == "gn":
            out, cache = spatial_groupnorm_forward(x, gamma, beta, 3, {})
            grads = spatial_groupnorm_backward(dout, cache)
        else:
            out, cache = instancenorm_forward(x, gamma, beta, {})
            grads = instancenorm_backward(dout, cache)
    assert out.dtype == dtype
    assert [g.dtype for g in grads] == [dtype] * 3


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_layernorm_wrong_rank(rng, shape):
    with pytest.raises(ValueError, match=r"expected 2-D .*got shape"):
        layernorm_forward(rng.standard_normal(shape), np.ones(3), np.zeros(3), {})


@pytest.mark.parametrize("shape", [(8, 6), (2, 6, 4)])
def test_groupnorm_wrong_rank(rng, shape):
    with pytest.raises(ValueError, match=r"expected 4-D .*got shape \(" + ", ".join(map(str, shape))):
        spatial_groupnorm_forward(rng.standard_normal(shape), np.ones(6), np.zeros(6), 2, {})


def test_instancenorm_wrong_rank(rng):
    with pytest.raises(ValueError, match=r"expected 4-D .*got shape \(8, 6\)"):
        instancenorm_forward(rng.standard_normal((8, 6)), np.ones(6), np.zeros(6), {})


@pytest.mark.parametrize("which", ["gamma", "beta"])
def test_layernorm_param_wrong_length(rng, which):
    p = {"gamma": np.ones(5), "beta": np.zeros(5), which: np.ones(4)}
    with pytest.raises(ValueError, match=which + r" must have 5 entries.*got shape \(4,\)"):
        layernorm_forward(rng.standard_normal((3, 5)), p["gamma"], p["beta"], {})


@pytest.mark.parametrize("which", ["gamma", "beta"])
def test_groupnorm_param_wrong_length(rng, which):
    p = {"gamma": np.ones((1, 6, 1, 1)), "beta": np.zeros((1, 6, 1, 1)), which: np.ones((1, 4, 1, 1))}
    with pytest.raises(ValueError, match=which + r" must have 6 entries.*got shape \(1, 4, 1, 1\)"):
        spatial_groupnorm_forward(rng.standard_normal((2, 6, 2, 2)), p["gamma"], p["beta"], 2, {})


@pytest.mark.parametrize("G", [4, 5, 7])
def test_groupnorm_c_not_divisible_by_g(rng, G):
    with pytest.raises(ValueError, match=f"C=6 is not divisible by G={G}"):
        spatial_groupnorm_forward(rng.standard_normal((2, 6, 2, 2)), np.ones(6), np.zeros(6), G, {})


@pytest.mark.parametrize("G", [2.0, "2", True, 0, -2, None])
def test_groupnorm_g_must_be_positive_integer(rng, G):
    with pytest.raises(ValueError, match="G must be a positive integer.*got " + re.escape(repr(G))):
        spatial_groupnorm_forward(rng.standard_normal((2, 6, 2, 2)), np.ones(6), np.zeros(6), G, {})


@pytest.mark.parametrize("call", ["ln", "gn"])
def test_unknown_param_key(rng, call):
    if call == "ln":
        with pytest.raises(ValueError, match="ln_param keys.*'epsilon'"):
            layernorm_forward(rng.standard_normal((3, 5)), np.ones(5), np.zeros(5), {"epsilon": 1e-5})
    else:
        with pytest.raises(ValueError, match="gn_param keys.*'groups'"):
            spatial_groupnorm_forward(rng.standard_normal((2, 6, 2, 2)), np.ones(6), np.zeros(6), 2, {"groups": 2})


@pytest.mark.parametrize("eps", [0.0, -1.0])
def test_eps_not_positive(rng, eps):
    with pytest.raises(ValueError, match=r"\['eps'\] must be positive, got " + str(eps)):
        layernorm_forward(rng.standard_normal((3, 5)), np.ones(5), np.zeros(5), {"eps": eps})
    with pytest.raises(ValueError, match=r"\['eps'\] must be positive, got " + str(eps)):
        spatial_groupnorm_forward(rng.standard_normal((2, 6, 2, 2)), np.ones(6), np.zeros(6), 2, {"eps": eps})


@pytest.mark.parametrize("dtype", [np.complex128, np.str_])
def test_non_real_dtype_x_is_refused(rng, dtype):
    with pytest.raises(TypeError, match=f"floating-point.*{np.dtype(dtype).name}"):
        layernorm_forward(np.ones((3, 5), dtype=dtype), np.ones(5), np.zeros(5), {})
    with pytest.raises(TypeError, match=f"floating-point.*{np.dtype(dtype).name}"):
        spatial_groupnorm_forward(np.ones((2, 6, 2, 2), dtype=dtype), np.ones(6), np.zeros(6), 2, {})


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("kind", ["ln", "gn"])
def test_non_finite_input(rng, bad, kind):
    x = rng.standard_normal((2, 6, 2, 2))
    x[1, 3, 0, 1] = bad
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        if kind == "ln":
            layernorm_forward(x.reshape(2, -1), np.ones(24), np.zeros(24), {})
        else:
            spatial_groupnorm_forward(x, np.ones(6), np.zeros(6), 2, {})
