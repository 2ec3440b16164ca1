"""The shared normalization core: normalize / normalize_backward / project_out.

Oracles: the closed form written inline, float64 central differences against a
random upstream gradient, and the non-finite guard.
"""
import numpy as np
import pytest

from normlab.nn._checks import NonFiniteError
from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.nn.norm.core import NormCache, normalize, normalize_backward, project_out, reduced_size

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
