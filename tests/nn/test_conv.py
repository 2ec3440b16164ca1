"""Convolution: closed forms inline (by hand, the course's known output, an
einsum over explicitly gathered windows), central differences against a
random upstream gradient, fast == naive, PyTorch as an oracle, dtype, and
every boundary error."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from normlab.nn.conv import ConvCache, conv_backward_fast, conv_backward_naive, conv_forward_fast, conv_forward_naive
from normlab.gradient_check import eval_numerical_gradient_array, rel_error

IMPLS = {
    "naive": (conv_forward_naive, conv_backward_naive),
    "fast": (conv_forward_fast, conv_backward_fast),
}


@pytest.fixture(params=sorted(IMPLS))
def impl(request):
    return IMPLS[request.param]


def conv_reference(x, w, b, stride, pad):
    """out[n,f,i,j] = b[f] + sum w[f,c,p,q] xp[n,c,i*s+p,j*s+q], windows gathered by fancy indexing."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    F, _, HH, WW = w.shape
    H_out = 1 + (xp.shape[2] - HH) // stride
    W_out = 1 + (xp.shape[3] - WW) // stride
    rows = (np.arange(H_out) * stride)[:, None] + np.arange(HH)  # (H', HH)
    cols = (np.arange(W_out) * stride)[:, None] + np.arange(WW)  # (W', WW)
    windows = xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (N, C, H', W', HH, WW)
    return np.einsum("ncijpq,fcpq->nfij", windows, w) + b[:, None, None]


def random_problem(rng, N, C, H, W, F, HH, WW, dtype=np.float64):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, HH, WW)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b


# (N, C, H, W, F, HH, WW, stride, pad): square and not, stride 1/2/3, pad 0/1/2.
CONFIGS = [
    (2, 3, 5, 5, 4, 3, 3, 1, 1),
    (2, 3, 7, 7, 2, 3, 3, 2, 0),
    (3, 2, 6, 8, 3, 2, 4, 2, 0),
    (2, 3, 5, 9, 2, 3, 1, 1, 2),
    (1, 4, 8, 6, 5, 4, 2, 2, 1),
    (2, 1, 7, 10, 3, 1, 1, 3, 0),
    (2, 2, 4, 4, 3, 5, 5, 3, 2),
]


# ------------------------------------------------------------------ closed forms

def test_tiny_conv_by_hand(impl):
    forward, _ = impl
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # top-left minus bottom-right
    out, _ = forward(x, w, np.array([0.5]), {"stride": 1, "pad": 0})
    # every 2x2 window of 0..8 row-major: x[i,j] - x[i+1,j+1] = -4
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), -3.5))


def test_padding_is_zeros_by_hand(impl):
    forward, _ = impl
    x = np.ones((1, 1, 2, 2))
    w = np.ones((1, 1, 3, 3))
    out, _ = forward(x, w, np.zeros(1), {"stride": 1, "pad": 1})
    # each 3x3 window of the zero-padded 4x4 covers all four ones
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 4.0))


def test_course_known_output(impl):
    forward, _ = impl
    x = np.linspace(-0.1, 0.5, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = forward(x, w, b, {"stride": 2, "pad": 1})
    correct_out = np.array([[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
                             [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
                             [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
                            [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
                             [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
                             [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
    # the notebook's numbers carry 8 digits; its cell prints exactly this difference
    assert rel_error(out, correct_out) == pytest.approx(2.2121476417505994e-08, rel=1e-9)
    np.testing.assert_allclose(out, conv_reference(x, w, b, 2, 1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_equals_einsum_reference(impl, rng, cfg):
    forward, _ = impl
    N, C, H, W, F, HH, WW, stride, pad = cfg
    x, w, b = random_problem(rng, N, C, H, W, F, HH, WW)
    out, _ = forward(x, w, b, {"stride": stride, "pad": pad})
    np.testing.assert_allclose(out, conv_reference(x, w, b, stride, pad), rtol=1e-12, atol=1e-12)


def test_db_is_sum_of_upstream_and_bias_shifts_output(impl, rng):
    forward, backward = impl
    x, w, b = random_problem(rng, 2, 3, 5, 5, 4, 3, 3)
    out, cache = forward(x, w, b, {"stride": 1, "pad": 1})
    out0, _ = forward(x, w, np.zeros(4), {"stride": 1, "pad": 1})
    np.testing.assert_allclose(out - out0, np.broadcast_to(b[:, None, None], out.shape), atol=1e-12)
    dout = rng.standard_normal(out.shape)
    _, _, db = backward(dout, cache)
    np.testing.assert_allclose(db, dout.sum(axis=(0, 2, 3)), rtol=1e-12)


# ------------------------------------------------------------------ central differences

@pytest.mark.parametrize("conv_param", [{"stride": 1, "pad": 1}, {"stride": 2, "pad": 0}])
def test_gradients_match_central_differences(impl, rng, conv_param):
    forward, backward = impl
    x, w, b = random_problem(rng, 4, 3, 5, 5, 2, 3, 3)
    out, cache = forward(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)  # random: all-ones would hide mistakes
    dx, dw, db = backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda _: forward(x, w, b, conv_param)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda _: forward(x, w, b, conv_param)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda _: forward(x, w, b, conv_param)[0], b, dout)
    assert rel_error(dx, dx_num) < 1e-8
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-8


# ------------------------------------------------------------------ equivalences

@pytest.mark.parametrize("cfg", CONFIGS)
def test_fast_equals_naive(rng, cfg):
    N, C, H, W, F, HH, WW, stride, pad = cfg
    x, w, b = random_problem(rng, N, C, H, W, F, HH, WW)
    cp = {"stride": stride, "pad": pad}
    out_n, cache_n = conv_forward_naive(x, w, b, cp)
    out_f, cache_f = conv_forward_fast(x, w, b, cp)
    np.testing.assert_allclose(out_f, out_n, rtol=1e-12, atol=1e-13)
    dout = rng.standard_normal(out_n.shape)
    for g_f, g_n in zip(conv_backward_fast(dout, cache_f), conv_backward_naive(dout, cache_n)):
        np.testing.assert_allclose(g_f, g_n, rtol=1e-12, atol=1e-13)


def test_caches_are_interchangeable(rng):
    x, w, b = random_problem(rng, 2, 3, 6, 6, 4, 3, 3)
    cp = {"stride": 1, "pad": 1}
    out, cache_n = conv_forward_naive(x, w, b, cp)
    _, cache_f = conv_forward_fast(x, w, b, cp)
    assert isinstance(cache_n, ConvCache) and cache_n.cols is None
    assert isinstance(cache_f, ConvCache) and cache_f.cols.shape == (2, 3 * 3 * 3, 6 * 6)
    dout = rng.standard_normal(out.shape)
    expected = conv_backward_naive(dout, cache_n)
    for got in (conv_backward_fast(dout, cache_n), conv_backward_naive(dout, cache_f)):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13)


def test_forward_does_not_modify_inputs(rng):
    x, w, b = random_problem(rng, 2, 3, 5, 5, 2, 3, 3)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    conv_backward_fast(rng.standard_normal(out.shape), cache)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


# ------------------------------------------------------------------ PyTorch oracle

@pytest.mark.parametrize("cfg", CONFIGS)
def test_matches_torch_conv2d(impl, rng, cfg):
    torch = pytest.importorskip("torch")
    forward, backward = impl
    N, C, H, W, F, HH, WW, stride, pad = cfg
    x, w, b = random_problem(rng, N, C, H, W, F, HH, WW)
    out, cache = forward(x, w, b, {"stride": stride, "pad": pad})
    dout = rng.standard_normal(out.shape)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out_t = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-10)
    for g, t in zip(backward(dout, cache), (xt, wt, bt)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ dtype

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(impl, rng, dtype):
    forward, backward = impl
    x, w, b = random_problem(rng, 2, 3, 5, 5, 2, 3, 3, dtype=dtype)
    out, cache = forward(x, w, b, {"stride": 1, "pad": 1})
    grads = backward(rng.standard_normal(out.shape), cache)  # float64 dout is cast
    assert out.dtype == dtype
    assert [g.dtype for g in grads] == [dtype] * 3


def test_float32_close_to_float64(impl, rng):
    forward, backward = impl
    x, w, b = random_problem(rng, 2, 3, 6, 6, 4, 3, 3)
    cp = {"stride": 1, "pad": 1}
    out64, cache64 = forward(x, w, b, cp)
    out32, cache32 = forward(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), cp)
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)
    dout = rng.standard_normal(out64.shape)
    for g32, g64 in zip(backward(dout, cache32), backward(dout, cache64)):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


def test_mixed_dtypes_compute_in_x_dtype_and_grads_follow_their_parameter(rng):
    x, w, b = random_problem(rng, 2, 3, 5, 5, 2, 3, 3)
    out, cache = conv_forward_fast(x.astype(np.float32), w, b, {"stride": 1, "pad": 1})
    dx, dw, db = conv_backward_fast(rng.standard_normal(out.shape), cache)
    assert (out.dtype, dx.dtype, dw.dtype, db.dtype) == (np.float32, np.float32, np.float64, np.float64)


def test_integer_arrays_and_nested_lists_are_promoted(impl):
    forward, _ = impl
    cp = {"stride": 1, "pad": 0}
    out, _ = forward(np.ones((1, 1, 3, 3), dtype=np.int64), np.ones((1, 1, 3, 3)), np.zeros(1), cp)
    assert out.dtype == np.float64 and out.item() == 9.0
    out, _ = forward([[[[1, 1], [1, 1]]]], [[[[1, 2], [3, 4]]]], [0], cp)
    assert out.dtype == np.float64 and out.item() == 10.0


def test_integer_bias_of_the_course_image_filter_cell(impl, rng):
    """The course's filter cell: float64 images, b = np.array([0, 128])."""
    forward, _ = impl
    x = rng.uniform(0, 255, (2, 3, 6, 6))
    w = np.zeros((2, 3, 3, 3))
    w[0, :, 1, 1] = [0.3, 0.6, 0.1]
    b = np.array([0, 128])
    out, _ = forward(x, w, b, {"stride": 1, "pad": 1})
    ref, _ = forward(x, w, b.astype(np.float64), {"stride": 1, "pad": 1})
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out[:, 1], 128.0)
    out32, _ = forward(x.astype(np.float32), w.astype(np.float32), b, {"stride": 1, "pad": 1})
    assert out32.dtype == np.float32


def test_integral_float_pad_is_accepted(impl, rng):
    """The course's nets compute pad = (filter_size - 1) / 2, a float under Python 3."""
    forward, _ = impl
    x, w, b = random_problem(rng, 2, 3, 5, 5, 2, 3, 3)
    a, _ = forward(x, w, b, {"stride": 1, "pad": (3 - 1) / 2})
    ref, _ = forward(x, w, b, {"stride": 1, "pad": 1})
    np.testing.assert_array_equal(a, ref)


# ------------------------------------------------------------------ bad input

GOOD = dict(x=np.zeros((2, 3, 5, 5)), w=np.zeros((4, 3, 3, 3)), b=np.zeros(4), conv_param={"stride": 1, "pad": 1})


def call(forward, **changes):
    args = {**GOOD, **changes}
    return forward(args["x"], args["w"], args["b"], args["conv_param"])


@pytest.mark.parametrize("changes, exc, message", [
    (dict(x=np.zeros((8, 3))), ValueError, r"expected 4-D input x \(N, C, H, W\), got shape \(8, 3\)"),
    (dict(w=np.zeros((4, 3, 3))), ValueError, r"expected 4-D filters w \(F, C, HH, WW\), got shape \(4, 3, 3\)"),
    (dict(w=np.zeros((4, 2, 3, 3))), ValueError, r"x has C=3 .* w has C=2"),
    (dict(b=np.zeros(3)), ValueError, r"bias b of shape \(4,\).*got shape \(3,\)"),
    (dict(b=np.zeros((1, 4))), ValueError, r"got shape \(1, 4\)"),
    (dict(conv_param={"stride": 0, "pad": 1}), ValueError, r"stride must be a positive integer, got stride=0"),
    (dict(conv_param={"stride": -2, "pad": 1}), ValueError, r"got stride=-2"),
    (dict(conv_param={"stride": 1, "pad": -1}), ValueError, r"pad must be a non-negative integer, got pad=-1"),
    (dict(conv_param={"stride": 1.5, "pad": 1}), TypeError, r"conv_param\['stride'\] must be an integer, got 1.5"),
    (dict(conv_param={"stride": True, "pad": 1}), TypeError, r"must be an integer, got True"),
    (dict(conv_param={"pad": 1}), ValueError, r"conv_param is missing 'stride'; got keys \['pad'\]"),
    (dict(conv_param={}), ValueError, r"missing 'stride', 'pad'"),
    (dict(conv_param=(1, 1)), TypeError, r"conv_param must be a dict.*got tuple"),
    (dict(w=np.zeros((4, 3, 8, 3)), conv_param={"stride": 1, "pad": 1}), ValueError,
     r"filter 8x3 is larger than the padded input 7x7"),
    (dict(conv_param={"stride": 3, "pad": 0}), ValueError,
     r"H \+ 2\*pad - filter = 5 - 3 = 2 is not divisible by stride=3"),
    (dict(conv_param={"stride": 3, "pad": 1}), ValueError, r"= 7 - 3 = 4 is not divisible by stride=3"),
    (dict(x=np.zeros((2, 3, 5, 5), dtype=complex)), TypeError, r"x must be a floating-point array, got dtype complex128"),
    (dict(b=np.array(["0", "1", "2", "3"])), TypeError, r"b must be a floating-point array, got dtype <U1"),
    (dict(conv_param={"stride": 1, "pad": 0.5}), TypeError, r"conv_param\['pad'\] must be an integer, got 0.5"),
])
def test_bad_input_raises_naming_the_value(impl, changes, exc, message):
    forward, _ = impl
    with pytest.raises(exc, match=message):
        call(forward, **changes)


def test_non_tiling_width_is_reported(impl):
    forward, _ = impl
    with pytest.raises(ValueError, match=r"W \+ 2\*pad - filter = 8 - 3 = 5 is not divisible by stride=2"):
        forward(np.zeros((1, 1, 7, 8)), np.zeros((1, 1, 3, 3)), np.zeros(1), {"stride": 2, "pad": 0})


def test_backward_rejects_wrong_dout_shape_and_foreign_cache(impl, rng):
    forward, backward = impl
    out, cache = call(forward)
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 4, 5, 5\), got \(2, 4, 5\)"):
        backward(np.zeros((2, 4, 5)), cache)
    with pytest.raises(TypeError, match=r"expected the ConvCache .* got tuple"):
        backward(out, tuple(cache))


# ------------------------------------------------------------------ properties

@st.composite
def conv_problems(draw):
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 2))
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H_out, W_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # Choose the output size first so that (almost) every drawn problem tiles.
    H = _fit((H_out - 1) * stride + HH - 2 * pad, HH, pad, stride)
    W = _fit((W_out - 1) * stride + WW - 2 * pad, WW, pad, stride)
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W, F, HH, WW, stride, pad, dtype, seed)


def _fit(size, k, pad, stride):
    """Smallest valid input size >= max(size, 1) for filter k, pad and stride."""
    size = max(size, 1)
    while size + 2 * pad < k or (size + 2 * pad - k) % stride:
        size += 1
    return size


@settings(max_examples=25, deadline=None)
@given(conv_problems())
def test_property_fast_equals_naive(problem):
    N, C, H, W, F, HH, WW, stride, pad, dtype, seed = problem
    rng = np.random.default_rng(seed)
    x, w, b = random_problem(rng, N, C, H, W, F, HH, WW, dtype=dtype)
    cp = {"stride": stride, "pad": pad}
    out_n, cache_n = conv_forward_naive(x, w, b, cp)
    out_f, cache_f = conv_forward_fast(x, w, b, cp)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    assert out_f.dtype == out_n.dtype == dtype
    np.testing.assert_allclose(out_f, out_n, **tol)
    dout = rng.standard_normal(out_n.shape).astype(dtype)
    for g_f, g_n in zip(conv_backward_fast(dout, cache_f), conv_backward_naive(dout, cache_n)):
        assert g_f.dtype == g_n.dtype == dtype
        np.testing.assert_allclose(g_f, g_n, **tol)
