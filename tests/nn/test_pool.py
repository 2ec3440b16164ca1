"""Max pooling: a hand-written 4x4 with known maxima, tie routing, central
differences against a random upstream gradient, fast == naive (tiling,
overlapping, non-tiling windows), PyTorch as an oracle, dtype, NaN and every
boundary error."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.nn.pool import (PoolCache, max_pool_backward_fast, max_pool_backward_naive, max_pool_forward_fast,
                          max_pool_forward_naive)

IMPLS = {
    "naive": (max_pool_forward_naive, max_pool_backward_naive),
    "fast": (max_pool_forward_fast, max_pool_backward_fast),
}


@pytest.fixture(params=sorted(IMPLS))
def impl(request):
    return IMPLS[request.param]


def pool_param(ph, pw, stride):
    return {"pool_height": ph, "pool_width": pw, "stride": stride}


# (shape, (PH, PW, stride)): tiling, overlapping, non-square, non-tiling (floor
# drops rows/columns), stride larger than the window, window = whole input.
CONFIGS = [
    ((2, 3, 8, 8), (2, 2, 2)),
    ((2, 2, 9, 9), (3, 3, 2)),
    ((2, 2, 7, 9), (2, 3, 1)),
    ((1, 3, 8, 8), (3, 3, 3)),
    ((2, 2, 9, 7), (2, 2, 2)),
    ((2, 2, 8, 10), (2, 2, 3)),
    ((3, 1, 5, 6), (5, 6, 1)),
    ((2, 2, 6, 8), (1, 1, 1)),
]


# ------------------------------------------------------------------ closed forms

X44 = np.array([[1.0, 2.0, 5.0, 0.0],
                [3.0, 4.0, 1.0, 1.0],
                [0.0, -1.0, 9.0, 8.0],
                [7.0, 0.0, 8.0, 9.0]])


def test_hand_written_4x4(impl):
    forward, backward = impl
    out, cache = forward(X44.reshape(1, 1, 4, 4), pool_param(2, 2, 2))
    np.testing.assert_array_equal(out, [[[[4.0, 5.0], [7.0, 9.0]]]])
    dx = backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]), cache)
    expected = np.zeros((4, 4))
    expected[1, 1], expected[0, 2], expected[3, 0] = 10.0, 20.0, 30.0
    expected[2, 2] = 40.0  # two 9s tie: the first in row-major order takes it all
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_hand_written_overlapping_windows_accumulate(impl):
    forward, backward = impl
    # 3x3 windows, stride 1, over X44: the 9 at (2, 2) wins all four windows
    out, cache = forward(X44.reshape(1, 1, 4, 4), pool_param(3, 3, 1))
    np.testing.assert_array_equal(out, [[[[9.0, 9.0], [9.0, 9.0]]]])
    dx = backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((4, 4))
    expected[2, 2] = 10.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_ties_route_to_first_max_of_each_window(impl, rng):
    forward, backward = impl
    x = np.full((2, 3, 6, 6), 0.5)
    out, cache = forward(x, pool_param(3, 3, 1))
    dout = rng.standard_normal(out.shape)
    dx = backward(dout, cache)
    # each window's top-left corner (i, j) is its first maximum
    expected = np.zeros_like(x)
    expected[:, :, :4, :4] = dout
    np.testing.assert_array_equal(dx, expected)


def test_nan_wins_its_window_and_takes_the_gradient(impl):
    forward, backward = impl
    x = X44.copy().reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    out, cache = forward(x, pool_param(2, 2, 2))
    assert np.isnan(out[0, 0, 0, 0]) and np.isfinite(out[0, 0, 1:, :]).all() and out[0, 0, 0, 1] == 5.0
    dx = backward(np.ones((1, 1, 2, 2)), cache)
    assert dx[0, 0, 1, 0] == 1.0 and dx[0, 0, :2, :2].sum() == 1.0


# ------------------------------------------------------------------ central differences

@pytest.mark.parametrize("shape, window", [((3, 2, 8, 8), (2, 2, 2)), ((2, 2, 7, 7), (3, 3, 2))])
def test_gradient_matches_central_differences(impl, rng, shape, window):
    forward, backward = impl
    x = rng.standard_normal(shape)  # continuous values: no near-ties within h
    pp = pool_param(*window)
    out, cache = forward(x, pp)
    dout = rng.standard_normal(out.shape)
    dx = backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda _: forward(x, pp)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


# ------------------------------------------------------------------ equivalences

@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("shape, window", CONFIGS)
def test_fast_equals_naive(rng, shape, window, ties):
    x = rng.integers(0, 3, shape).astype(float) if ties else rng.standard_normal(shape)
    pp = pool_param(*window)
    out_n, cache_n = max_pool_forward_naive(x, pp)
    out_f, cache_f = max_pool_forward_fast(x, pp)
    np.testing.assert_array_equal(out_f, out_n)
    dout = rng.standard_normal(out_n.shape)
    np.testing.assert_allclose(max_pool_backward_fast(dout, cache_f), max_pool_backward_naive(dout, cache_n),
                               rtol=1e-12, atol=1e-14)


def test_caches_are_interchangeable(rng):
    x = rng.integers(0, 3, (2, 3, 7, 7)).astype(float)
    pp = pool_param(3, 3, 2)
    out, cache_n = max_pool_forward_naive(x, pp)
    _, cache_f = max_pool_forward_fast(x, pp)
    assert isinstance(cache_n, PoolCache) and cache_n.argmax is None
    assert isinstance(cache_f, PoolCache) and cache_f.argmax.shape == out.shape
    dout = rng.standard_normal(out.shape)
    expected = max_pool_backward_naive(dout, cache_n)
    np.testing.assert_allclose(max_pool_backward_fast(dout, cache_n), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(max_pool_backward_naive(dout, cache_f), expected, rtol=1e-12, atol=1e-14)


def test_reshape_view_of_tiling_windows_equals_max_over_blocks(rng):
    x = rng.standard_normal((2, 3, 8, 6))
    out, _ = max_pool_forward_fast(x, pool_param(2, 2, 2))
    np.testing.assert_array_equal(out, x.reshape(2, 3, 4, 2, 3, 2).max(axis=(3, 5)))


# ------------------------------------------------------------------ PyTorch oracle

@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("shape, window", CONFIGS)
def test_matches_torch_max_pool2d(impl, rng, shape, window, ties):
    torch = pytest.importorskip("torch")
    forward, backward = impl
    ph, pw, stride = window
    x = rng.integers(0, 3, shape).astype(float) if ties else rng.standard_normal(shape)
    out, cache = forward(x, pool_param(ph, pw, stride))
    dout = rng.standard_normal(out.shape)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.max_pool2d(xt, (ph, pw), stride=stride)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(backward(dout, cache), xt.grad.numpy(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ dtype

@pytest.mark.parametrize("window", [(2, 2, 2), (3, 3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(impl, rng, dtype, window):
    forward, backward = impl
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    out, cache = forward(x, pool_param(*window))
    dx = backward(rng.standard_normal(out.shape), cache)  # float64 dout is cast
    assert out.dtype == dtype and dx.dtype == dtype


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("x, pp, exc, message", [
    (np.zeros((8, 3)), pool_param(2, 2, 2), ValueError, r"expected 4-D input x \(N, C, H, W\), got shape \(8, 3\)"),
    (np.zeros((2, 3, 4, 4)), {"pool_height": 2, "stride": 2}, ValueError,
     r"pool_param is missing 'pool_width'; got keys \['pool_height', 'stride'\]"),
    (np.zeros((2, 3, 4, 4)), pool_param(0, 2, 2), ValueError, r"pool_height must be a positive integer, got pool_height=0"),
    (np.zeros((2, 3, 4, 4)), pool_param(2, -1, 2), ValueError, r"got pool_width=-1"),
    (np.zeros((2, 3, 4, 4)), pool_param(2, 2, 0), ValueError, r"stride must be a positive integer, got stride=0"),
    (np.zeros((2, 3, 4, 4)), pool_param(2.5, 2, 2), TypeError, r"pool_param\['pool_height'\] must be an integer, got 2.5"),
    (np.zeros((2, 3, 4, 4)), pool_param(5, 2, 2), ValueError, r"pool window 5x2 is larger than the input 4x4"),
    (np.zeros((2, 3, 4, 3)), pool_param(2, 4, 1), ValueError, r"pool window 2x4 is larger than the input 4x3"),
    (np.zeros((2, 3, 4, 4)), [2, 2, 2], TypeError, r"pool_param must be a dict.*got list"),
    (np.zeros((2, 3, 4, 4), dtype=np.complex64), pool_param(2, 2, 2), TypeError,
     r"x must be a floating-point array, got dtype complex64"),
])
def test_bad_input_raises_naming_the_value(impl, x, pp, exc, message):
    forward, _ = impl
    with pytest.raises(exc, match=message):
        forward(x, pp)


def test_backward_rejects_wrong_dout_shape_and_foreign_cache(impl):
    forward, backward = impl
    out, cache = forward(np.zeros((2, 3, 4, 4)), pool_param(2, 2, 2))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 3, 2, 2\), got \(2, 3, 4, 4\)"):
        backward(np.zeros((2, 3, 4, 4)), cache)
    with pytest.raises(TypeError, match=r"expected the PoolCache .* got tuple"):
        backward(out, tuple(cache))


# ------------------------------------------------------------------ properties

@st.composite
def pool_problems(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = draw(st.integers(ph, 9)), draw(st.integers(pw, 9))
    return dict(
        shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W),
        pp=pool_param(ph, pw, draw(st.integers(1, 4))),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        ties=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=25, deadline=None)
@given(pool_problems())
def test_property_fast_equals_naive(problem):
    rng = np.random.default_rng(problem["seed"])
    shape, pp, dtype = problem["shape"], problem["pp"], problem["dtype"]
    x = (rng.integers(0, 3, shape) if problem["ties"] else rng.standard_normal(shape)).astype(dtype)
    out_n, cache_n = max_pool_forward_naive(x, pp)
    out_f, cache_f = max_pool_forward_fast(x, pp)
    assert out_f.dtype == out_n.dtype == dtype
    np.testing.assert_array_equal(out_f, out_n)
    dout = rng.standard_normal(out_n.shape).astype(dtype)
    dx_n, dx_f = max_pool_backward_naive(dout, cache_n), max_pool_backward_fast(dout, cache_f)
    assert dx_f.dtype == dx_n.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(dx_f, dx_n, rtol=tol, atol=tol)
