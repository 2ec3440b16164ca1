"""The normalization core: its x_hat form (normalize / normalize_backward /
project_out), its folded form and their fast path, and every layer as the core
at its axes.

Oracles: the closed form written inline, float64 central differences against a
random upstream gradient, the non-finite guard, the blocked kernels against the
plain NumPy reference (elementwise passes bitwise, reductions to rounding), and
each layer's outputs bitwise equal to the core's at the layer's axes.
"""
import numpy as np
import pytest

from normlab.nn import backend
from normlab.nn._checks import NonFiniteError
from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.layers import (batchnorm_backward_alt, batchnorm_forward, instancenorm_backward, instancenorm_forward,
                            layernorm_backward, layernorm_forward, spatial_batchnorm_backward,
                            spatial_batchnorm_forward, spatial_groupnorm_backward, spatial_groupnorm_forward)
from normlab.nn.norm.core import (NormCache, affine_normalize, affine_normalize_backward, centered_sums, fast_layout,
                                  moments, normalize, normalize_backward, project_out, reduced_size)

AXES_CASES = [
    ((6, 4), (0,)),              # batch norm
    ((6, 4), (1,)),              # layer norm
    ((3, 4, 2, 5), (0, 2, 3)),   # spatial batch norm
    ((2, 3, 2, 4, 3), (2, 3, 4)),  # group norm on the (N, G, C/G, H, W) view
]


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def manual_normalize(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps), mean, var


@pytest.mark.parametrize("shape, axes", AXES_CASES)
def test_normalize_equals_manual_computation(rng, shape, axes):
    x = 3.0 * rng.standard_normal(shape) + 7.0
    x_hat, mean, var, cache = normalize(x, axes, 1e-5)
    want_hat, want_mean, want_var = manual_normalize(x, axes, 1e-5)
    np.testing.assert_allclose(x_hat, want_hat, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-14)
    np.testing.assert_allclose(var, want_var, rtol=1e-12)
    assert mean.shape == var.shape == tuple(1 if a in axes else n for a, n in enumerate(shape))
    assert isinstance(cache, NormCache)
    assert cache.axes == axes
    np.testing.assert_allclose(cache.inv_std, 1.0 / np.sqrt(want_var + 1e-5), rtol=1e-12)


def test_normalize_uses_biased_variance(rng):
    x = rng.standard_normal((5, 3))
    _, _, var, _ = normalize(x, (0,), 1e-5)
    np.testing.assert_allclose(var.ravel(), x.var(axis=0, ddof=0), rtol=1e-12)


def test_normalize_does_not_modify_input(rng):
    x = rng.standard_normal((4, 3))
    before = x.copy()
    normalize(x, (0,), 1e-5)
    np.testing.assert_array_equal(x, before)


def test_normalize_float32_with_large_offset_stays_accurate(rng):
    # The two-pass variance must not cancel when |mean| >> std (E[x^2] - E[x]^2 would).
    x64 = 1e4 + rng.standard_normal((256, 3))
    x_hat, _, var, _ = normalize(x64.astype(np.float32), (0,), 1e-5)
    assert x_hat.dtype == np.float32
    np.testing.assert_allclose(var.ravel(), x64.astype(np.float32).astype(np.float64).var(axis=0), rtol=1e-3)
    np.testing.assert_allclose(x_hat.std(axis=0), 1.0, atol=1e-3)


@pytest.mark.parametrize("shape, axes", AXES_CASES)
def test_normalize_backward_matches_finite_differences(rng, shape, axes):
    x = 5.0 * rng.standard_normal(shape) + 12.0
    g = rng.standard_normal(shape)
    _, _, _, cache = normalize(x, axes, 1e-5)
    dx = normalize_backward(g, cache)
    dx_num = eval_numerical_gradient_array(lambda v: normalize(v, axes, 1e-5)[0], x, g)
    assert rel_error(dx, dx_num) < 1e-7


@pytest.mark.parametrize("shape, axes", AXES_CASES)
def test_normalize_backward_equals_closed_form(rng, shape, axes):
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    x_hat, _, _, cache = normalize(x, axes, 1e-5)
    m = reduced_size(shape, axes)
    want = cache.inv_std * (g - g.sum(axis=axes, keepdims=True) / m
                            - x_hat * (g * x_hat).sum(axis=axes, keepdims=True) / m)
    np.testing.assert_allclose(normalize_backward(g, cache), want, rtol=1e-10, atol=1e-12)


def test_project_out_formula(rng):
    g, x_hat = rng.standard_normal((2, 5, 3))
    scale = rng.random((1, 3)) + 0.5
    mean_g, mean_gx = rng.standard_normal((2, 1, 3))
    g_before = g.copy()
    got = project_out(g, x_hat, scale, mean_g, mean_gx)
    np.testing.assert_allclose(got, scale * (g - mean_g - x_hat * mean_gx), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(g, g_before)


@pytest.mark.parametrize("shape, axes, m", [((4, 5), (0,), 4), ((2, 3, 4, 5), (0, 2, 3), 40),
                                            ((2, 3, 4, 5), (1,), 3), ((7,), (), 1)])
def test_reduced_size(shape, axes, m):
    assert reduced_size(shape, axes) == m


def test_non_finite_error_is_a_value_error():
    assert issubclass(NonFiniteError, ValueError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_normalize_rejects_non_finite_input(rng, bad):
    x = rng.standard_normal((4, 3))
    x[2, 1] = bad
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        normalize(x, (0,), 1e-5, where="probe")


# ------------------------------------------------------- fast path == reference

# Batch norm's layout, x (N, C, ...) reduced over every axis but 1: one block and
# several (above _kernels.BLOCK_BYTES, a ragged last one, threaded), one channel,
# odd sizes, a 3-D input, size-1 spatial axes.
FAST_CASES = [
    ((6, 4), (0,)), ((7, 1), (0,)), ((3001, 64), (0,)), ((2, 5), (0,)),
    ((5, 3, 7, 3), (0, 2, 3)), ((33, 4, 31, 32), (0, 2, 3)), ((9, 2, 1, 1), (0, 2, 3)), ((4, 1, 3), (0, 2)),
]
LAYOUTS = ["contiguous", "fortran", "strided"]


def fast_input(rng, shape, dtype, layout, offset=12.0):
    """5 N(0, 1) + offset + a per-channel ramp, in the given memory layout."""
    ramp = np.arange(shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2))
    if layout == "fortran":
        x = np.asfortranarray(5 * rng.standard_normal(shape) + offset + ramp)
    elif layout == "strided":   # every other row of a twice-as-long array: a non-contiguous view
        x = (5 * rng.standard_normal((2 * shape[0],) + shape[1:]) + offset + ramp)[::2]
    else:
        x = 5 * rng.standard_normal(shape) + offset + ramp
    return x.astype(dtype, copy=False)


def tolerance(dtype, m):
    """Rounding of a sum of m terms: a few ulps times sqrt(m) (pairwise and blocked sums)."""
    return 8 * np.sqrt(m) * np.finfo(dtype).eps


def exact_moments(x, axes):
    """The reference's two-pass statistics in float64, of x's values."""
    return moments(x.astype(np.float64), axes, fast=False)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axes", FAST_CASES)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_fast_moments_equal_reference(rng, shape, axes, dtype, layout, offset):
    x = fast_input(rng, shape, dtype, layout, offset)
    assert fast_layout(x.shape, axes)
    fast_mean, fast_var = moments(x, axes, fast=True)
    ref_mean, ref_var = moments(x, axes, fast=False)
    assert fast_mean.shape == fast_var.shape == ref_mean.shape == (1, shape[1]) + (1,) * (len(shape) - 2)
    assert fast_mean.dtype == fast_var.dtype == dtype
    mean, var = exact_moments(x, axes)
    t = tolerance(dtype, reduced_size(shape, axes))
    mean_err = t * np.max(np.abs(x))
    for got_mean, got_var in ((fast_mean, fast_var), (ref_mean, ref_var)):
        assert np.all(np.abs(got_mean - mean) <= mean_err)
        # a mean off by delta shifts the mean of squared deviations by delta^2
        assert np.all(np.abs(got_var - var) <= t * var + mean_err ** 2)
    if dtype == np.float64:
        np.testing.assert_allclose(fast_var, ref_var, rtol=1e-12)
        np.testing.assert_allclose(fast_mean, ref_mean, rtol=1e-12, atol=1e-12 * np.max(np.abs(x)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axes", FAST_CASES)
def test_fast_passes_are_bitwise_the_reference(rng, shape, axes, dtype, layout):
    # Same operations in the same order, only blocked: the results must be the same bits.
    x = fast_input(rng, shape, dtype, layout)
    dout = fast_input(rng, shape, dtype, layout, offset=0.0)
    mean, var = moments(x, axes)
    inv_std = 1.0 / np.sqrt(var + np.asarray(1e-5, dtype=dtype))
    gamma, beta = (rng.standard_normal(mean.shape).astype(dtype) for _ in range(2))
    fast = affine_normalize(x, axes, mean, inv_std, gamma, beta, fast=True)
    ref = affine_normalize(x, axes, mean, inv_std, gamma, beta, fast=False)
    assert fast.dtype == ref.dtype == dtype
    np.testing.assert_array_equal(fast, ref)
    # test mode: constant statistics, so dx = gamma * inv_std * dout, a pure pass
    fast = affine_normalize_backward(dout, x, axes, mean, inv_std, gamma, batch_stats=False, fast=True)
    ref = affine_normalize_backward(dout, x, axes, mean, inv_std, gamma, batch_stats=False, fast=False)
    np.testing.assert_array_equal(fast[0], ref[0])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axes", FAST_CASES)
def test_fast_sums_and_backward_equal_reference(rng, shape, axes, dtype, layout):
    x = fast_input(rng, shape, dtype, layout)
    dout = fast_input(rng, shape, dtype, layout, offset=0.0)
    m = reduced_size(shape, axes)
    t = tolerance(dtype, m)
    mean, var = moments(x, axes)
    centered = np.abs(x.astype(np.float64) - mean)
    bounds = [np.sum(np.abs(dout), axis=axes, keepdims=True, dtype=np.float64),
              np.sum(np.abs(dout) * centered, axis=axes, keepdims=True), np.sum(centered, axis=axes, keepdims=True)]
    exact = centered_sums(dout.astype(np.float64), x.astype(np.float64), axes, mean.astype(np.float64), fast=False)
    for fast in (True, False):
        got = centered_sums(dout, x, axes, mean, fast=fast)
        for s, e, bound in zip(got, exact, bounds):
            assert s.shape == mean.shape and s.dtype == dtype
            assert np.all(np.abs(s - e) <= t * bound)

    inv_std = 1.0 / np.sqrt(var + np.asarray(1e-5, dtype=dtype))
    gamma = rng.standard_normal(mean.shape).astype(dtype)
    fast = affine_normalize_backward(dout, x, axes, mean, inv_std, gamma, fast=True)
    ref = affine_normalize_backward(dout, x, axes, mean, inv_std, gamma, fast=False)
    tol = 1e-12 if dtype == np.float64 else t
    # dx cancels to ~0 in places (all of it at N = 2): its error is measured against the
    # size of the terms that cancel, |gamma inv_std dout| per channel, as well as the result's.
    terms = np.max(np.abs(dout * (gamma * inv_std)).astype(np.float64), axis=axes, keepdims=True)
    # The Numba kernels take dgamma about the exact batch mean, the reference about the mean
    # rounded to x's dtype: they differ by sum(x - mean) / m * sum(dout) * inv_std, and dx by
    # that times gamma inv_std (x - mean) / m (see _jit_layer._finish_backward).
    shift = np.zeros_like(gamma, dtype=np.float64)
    if backend.fast() and dtype in (np.float32, np.float64):
        xd = x.astype(np.float64)
        shift = np.abs(np.sum(xd - mean, axis=axes, keepdims=True) / m
                       * np.sum(dout, axis=axes, keepdims=True, dtype=np.float64) * inv_std)
    moved = (np.max(np.abs(gamma * inv_std * shift / m * (x.astype(np.float64) - mean)), axis=axes, keepdims=True),
             shift, np.zeros_like(shift))
    for a, b, scale, move in zip(fast, ref, (np.maximum(terms, np.max(np.abs(b))) for b in ref), moved):
        assert a.shape == b.shape and a.dtype == b.dtype == dtype
        assert np.all(np.abs(a - b) <= tol * scale + 2 * move)


@pytest.mark.parametrize("shape, axes, fast", [
    ((6, 4), (0,), True), ((2, 3, 4, 5), (0, 2, 3), True), ((4, 2, 3), (0, 2), True), ((4, 2, 3, 5, 6), (0, 2, 3, 4), True),
    ((6, 4), (1,), False), ((2, 3, 4, 5), (0, 2), False), ((2, 3, 4, 5), (2, 3), False),
    ((2, 3, 2, 4, 3), (2, 3, 4), False), ((7,), (0,), False), ((2, 3, 4, 5), (2, 0, 3), False)])
def test_fast_layout(shape, axes, fast):
    assert fast_layout(shape, axes) is fast


def test_forcing_the_kernels_on_another_layout_raises(rng):
    with pytest.raises(ValueError, match=r"every axis but 1.*axes \(1,\) for shape \(6, 4\)"):
        moments(rng.standard_normal((6, 4)), (1,), fast=True)


def test_folded_form_at_other_axes_is_the_reference(rng):
    # Not the kernels' layout: the same functions run the NumPy reference, and the
    # folded form still equals gamma * x_hat + beta of the x_hat form.
    x = 3 * rng.standard_normal((5, 6)) + 2
    dout = rng.standard_normal(x.shape)
    gamma, beta = rng.standard_normal((2, 5, 1))
    x_hat, mean, var, cache = normalize(x, (1,), 1e-5)
    np.testing.assert_array_equal(moments(x, (1,))[1], var)
    out = affine_normalize(x, (1,), mean, cache.inv_std, gamma, beta)
    np.testing.assert_allclose(out, gamma * x_hat + beta, rtol=1e-13, atol=1e-13)
    dx, dgamma, dbeta = affine_normalize_backward(dout, x, (1,), mean, cache.inv_std, gamma)
    np.testing.assert_allclose(dx, normalize_backward(dout * gamma, cache), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dgamma, np.sum(dout * x_hat, axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(dbeta, dout.sum(axis=1, keepdims=True), rtol=1e-13)


# ---------------------------------------------------- every layer is the core

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("shape", [(7, 3), (3001, 64), (2, 3, 4, 5), (33, 4, 31, 32)])
def test_batchnorm_is_the_folded_core_at_its_axes(rng, shape, mode, dtype):
    spatial = len(shape) == 4
    axes = (0, 2, 3) if spatial else (0,)
    forward, backward = ((spatial_batchnorm_forward, spatial_batchnorm_backward) if spatial
                         else (batchnorm_forward, batchnorm_backward_alt))
    keep = (1, shape[1]) + (1,) * (len(shape) - 2)
    x = fast_input(rng, shape, dtype, "contiguous")
    dout = fast_input(rng, shape, dtype, "contiguous", offset=0.0)
    gamma, beta = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    rm, rv = rng.standard_normal(shape[1]).astype(dtype), (rng.random(shape[1]) + 0.5).astype(dtype)
    out, cache = forward(x, gamma, beta, {"mode": mode, "running_mean": rm, "running_var": rv})
    if mode == "train":
        mean, var = moments(x, axes)
    else:
        mean, var = rm.reshape(keep), rv.reshape(keep)
    inv_std = 1.0 / np.sqrt(var + np.asarray(1e-5, dtype=dtype))
    g, b = gamma.reshape(keep), beta.reshape(keep)
    np.testing.assert_array_equal(out, affine_normalize(x, axes, mean, inv_std, g, b))
    got = backward(dout, cache)
    want = affine_normalize_backward(dout, x, axes, mean, inv_std, g, batch_stats=mode == "train")
    for a, w in zip(got, want):
        np.testing.assert_array_equal(a, w.reshape(a.shape))
    if mode == "train" and dtype == np.float64:
        # and the same computation as the x_hat form, to rounding
        x_hat, _, _, norm = normalize(x, axes, 1e-5)
        np.testing.assert_allclose(out, g * x_hat + b, rtol=1e-12, atol=1e-12)
        dx = normalize_backward(dout * g, norm)
        assert np.max(np.abs(got[0] - dx)) <= 1e-12 * np.max(np.abs(dx))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layernorm_is_the_core_over_features(rng, dtype):
    # bit for bit against the core: the NumPy reference (test_group_jit.py checks the Numba path)
    with backend.using("numpy"):
        x = fast_input(rng, (6, 10), dtype, "contiguous")
        dout = rng.standard_normal(x.shape).astype(dtype)
        gamma, beta = (rng.standard_normal(10).astype(dtype) for _ in range(2))
        out, cache = layernorm_forward(x, gamma, beta, {})
        x_hat, _, _, norm = normalize(x, (1,), 1e-5)
        np.testing.assert_array_equal(out, x_hat * gamma + beta)
        dx, dgamma, dbeta = layernorm_backward(dout, cache)
        np.testing.assert_array_equal(dx, normalize_backward(dout * gamma, norm))
        np.testing.assert_array_equal(dgamma, np.sum(dout * x_hat, axis=0))
        np.testing.assert_array_equal(dbeta, dout.sum(axis=0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("G", [1, 2, 6, "instance"])
def test_group_and_instance_norm_are_the_core_over_groups(rng, G, dtype):
    # bit for bit against the core: the NumPy reference (test_group_jit.py checks the Numba path)
    with backend.using("numpy"):
        n, c, h, w = 3, 6, 4, 5
        x = fast_input(rng, (n, c, h, w), dtype, "contiguous")
        dout = rng.standard_normal(x.shape).astype(dtype)
        gamma, beta = (rng.standard_normal(c).astype(dtype) for _ in range(2))
        if G == "instance":
            G = c
            out, cache = instancenorm_forward(x, gamma, beta, {})
            dx, dgamma, dbeta = instancenorm_backward(dout, cache)
        else:
            out, cache = spatial_groupnorm_forward(x, gamma, beta, G, {})
            dx, dgamma, dbeta = spatial_groupnorm_backward(dout, cache)
        g = gamma.reshape(1, c, 1, 1)
        x_hat, _, _, norm = normalize(x.reshape(n, G, c // G, h, w), (2, 3, 4), 1e-5)   # (N, G, C/G, H, W)
        x_hat = x_hat.reshape(x.shape)
        np.testing.assert_array_equal(out, x_hat * g + beta.reshape(1, c, 1, 1))
        want_dx = normalize_backward((dout * g).reshape(n, G, c // G, h, w), norm).reshape(x.shape)
        np.testing.assert_array_equal(dx, want_dx)
        np.testing.assert_array_equal(dgamma, np.sum(dout * x_hat, axis=(0, 2, 3)))
        np.testing.assert_array_equal(dbeta, dout.sum(axis=(0, 2, 3)))
