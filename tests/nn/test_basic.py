"""Affine, ReLU, sigmoid and dropout: closed form, finite differences, PyTorch, properties."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normlab.nn.basic import (affine_backward, affine_forward, dropout_backward, dropout_forward, relu_backward,
                           relu_forward, sigmoid_backward, sigmoid_forward)
from normlab.gradient_check import eval_numerical_gradient_array, rel_error


@pytest.fixture
def rng():
    return np.random.default_rng(231)


# ------------------------------------------------------------------ affine

def test_affine_forward_matches_course_values():
    num_inputs, input_shape, output_dim = 2, (4, 5, 6), 3
    input_size = num_inputs * np.prod(input_shape)
    weight_size = output_dim * np.prod(input_shape)
    x = np.linspace(-0.1, 0.5, num=input_size).reshape(num_inputs, *input_shape)
    w = np.linspace(-0.2, 0.3, num=weight_size).reshape(np.prod(input_shape), output_dim)
    b = np.linspace(-0.3, 0.1, num=output_dim)
    out, _ = affine_forward(x, w, b)
    correct_out = np.array([[1.49834967, 1.70660132, 1.91485297],
                            [3.25553199, 3.5141327, 3.77273342]])
    assert rel_error(out, correct_out) < 1e-8


def test_affine_forward_closed_form(rng):
    x = rng.standard_normal((10, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    out, cache = affine_forward(x, w, b)
    expected = np.einsum("nij,ijm->nm", x, w.reshape(2, 3, 5)) + b
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert out.shape == (10, 5)


def test_affine_backward_closed_form(rng):
    x = rng.standard_normal((10, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((10, 5))
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    np.testing.assert_allclose(dx, (dout @ w.T).reshape(10, 2, 3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, x.reshape(10, 6).T @ dout, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dout.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_affine_backward_numerical(rng):
    x = rng.standard_normal((10, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((10, 5))
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: affine_forward(v, w, b)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda v: affine_forward(x, v, b)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda v: affine_forward(x, w, v)[0], b, dout)
    assert rel_error(dx, dx_num) < 1e-8
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-8


def test_affine_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((7, 3, 4))
    w = rng.standard_normal((12, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((7, 5))
    out, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    outt = F.linear(xt.reshape(7, -1), wt.T, bt)
    outt.backward(torch.tensor(dout))
    assert rel_error(out, outt.detach().numpy()) < 1e-10
    assert rel_error(dx, xt.grad.numpy()) < 1e-10
    assert rel_error(dw, wt.grad.numpy()) < 1e-10
    assert rel_error(db, bt.grad.numpy()) < 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_keeps_dtype(rng, dtype):
    x = rng.standard_normal((4, 3)).astype(dtype)
    w = rng.standard_normal((3, 2)).astype(dtype)
    b = np.zeros(2, dtype=dtype)
    out, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(np.ones((4, 2), dtype=dtype), cache)
    assert out.dtype == dx.dtype == dw.dtype == db.dtype == dtype


def test_affine_does_not_modify_inputs(rng):
    x = rng.standard_normal((4, 3))
    w = rng.standard_normal((3, 2))
    b = rng.standard_normal(2)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = affine_forward(x, w, b)
    affine_backward(rng.standard_normal(out.shape), cache)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("x_shape, w_shape, b_shape, match", [
    ((4, 3), (3,), (3,), r"2-D weights"),
    ((4, 2, 3), (5, 2), (2,), r"D=6"),
    ((4, 3), (3, 2), (3,), r"\(2,\)"),
])
def test_affine_bad_shapes_raise(x_shape, w_shape, b_shape, match):
    with pytest.raises(ValueError, match=match):
        affine_forward(np.ones(x_shape), np.ones(w_shape), np.ones(b_shape))


def test_affine_string_input_raises():
    with pytest.raises(TypeError):
        affine_forward(np.array([["a", "b"]]), np.ones((2, 1)), np.ones(1))


# ------------------------------------------------------------------ relu

def test_relu_forward_matches_course_values():
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    out, _ = relu_forward(x)
    correct_out = np.array([[0., 0., 0., 0.],
                            [0., 0., 0.04545455, 0.13636364],
                            [0.22727273, 0.31818182, 0.40909091, 0.5]])
    assert rel_error(out, correct_out) < 5e-8


def _away_from_zero(rng, shape, margin=1e-3):
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + margin, x - margin)   # no entry within h of the kink


def test_relu_closed_form_and_numerical(rng):
    x = _away_from_zero(rng, (10, 10))
    dout = rng.standard_normal(x.shape)
    out, cache = relu_forward(x)
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0.0))
    dx = relu_backward(dout, cache)
    np.testing.assert_array_equal(dx, dout * (x > 0))
    dx_num = eval_numerical_gradient_array(lambda v: relu_forward(v)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


def test_relu_subgradient_at_zero_is_zero():
    x = np.array([-1.0, 0.0, 1.0])
    _, cache = relu_forward(x)
    np.testing.assert_array_equal(relu_backward(np.ones(3), cache), [0.0, 0.0, 1.0])


def test_relu_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = _away_from_zero(rng, (6, 2, 3))
    dout = rng.standard_normal(x.shape)
    out, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    outt = torch.relu(xt)
    outt.backward(torch.tensor(dout))
    assert rel_error(out, outt.detach().numpy()) < 1e-10
    assert rel_error(dx, xt.grad.numpy()) < 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_keeps_dtype(rng, dtype):
    x = rng.standard_normal((3, 4)).astype(dtype)
    out, cache = relu_forward(x)
    assert out.dtype == relu_backward(np.ones_like(x), cache).dtype == dtype


# ------------------------------------------------------------------ dropout

@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_dropout_is_inverted_and_keeps_fraction_p(rng, p):
    x = rng.standard_normal((500, 500)) + 10
    out_train, _ = dropout_forward(x, {"mode": "train", "p": p, "seed": 123})
    out_test, _ = dropout_forward(x, {"mode": "test", "p": p, "seed": 123})
    # inverted dropout: the expectation of the train output is the input
    assert abs(out_train.mean() - x.mean()) < 0.1
    np.testing.assert_array_equal(out_test, x)
    assert abs(np.mean(out_train != 0) - p) < 0.005
    kept = out_train != 0
    np.testing.assert_allclose(out_train[kept], x[kept] / p, rtol=1e-15)


def test_dropout_test_mode_is_identity_forward_and_backward(rng):
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))
    out, cache = dropout_forward(x, {"mode": "test", "p": 0.3})
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(dropout_backward(dout, cache), dout)


def test_dropout_same_seed_same_mask_different_seed_different_mask(rng):
    x = rng.standard_normal((20, 30))
    a, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    b, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    c, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 8})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_mask_follows_documented_draw(rng):
    """With a seed, the course's draw: np.random.seed(seed), then np.random.rand(*x.shape) < p."""
    x = rng.standard_normal((6, 7))
    p = 0.6
    out, _ = dropout_forward(x, {"mode": "train", "p": p, "seed": 5})
    keep = np.random.RandomState(5).rand(*x.shape) < p
    np.testing.assert_array_equal(out, np.where(keep, x / p, 0.0))
    np.random.seed(17)
    expected = np.random.rand(*x.shape) < p
    np.random.seed(17)
    out, _ = dropout_forward(x, {"mode": "train", "p": p})   # no seed: the global generator, as the course
    np.testing.assert_array_equal(out != 0, expected)


def test_dropout_uses_rng_key_and_advances_it(rng):
    x = rng.standard_normal((10, 10))
    gen = np.random.default_rng(11)
    a, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "rng": gen})
    b, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "rng": gen})
    assert not np.array_equal(a, b)   # the generator advanced between calls
    expected = np.random.default_rng(11).random(x.shape) < 0.5
    np.testing.assert_array_equal(a != 0, expected)
    # rng takes precedence over seed
    c, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "rng": np.random.default_rng(11), "seed": 99})
    np.testing.assert_array_equal(a, c)


def test_dropout_with_rng_leaves_global_rng_untouched(rng):
    x = rng.standard_normal((10, 10))
    before = np.random.get_state()
    dropout_forward(x, {"mode": "train", "p": 0.5, "rng": np.random.default_rng(3)})
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_dropout_seed_reseeds_the_global_generator_as_the_course_does(rng):
    """The course's template calls np.random.seed(seed) in dropout_forward; the next
    draws of a notebook cell (e.g. the next model's weights) continue from there."""
    x = rng.standard_normal((10, 10))
    np.random.seed(0)
    dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 3})
    after = np.random.rand(4)
    np.random.seed(3)
    np.random.rand(10, 10)
    np.testing.assert_array_equal(after, np.random.rand(4))
    np.random.seed(0)
    dropout_forward(x, {"mode": "test", "p": 0.5, "seed": 3})   # test mode draws nothing
    np.testing.assert_array_equal(np.random.rand(4), np.random.RandomState(0).rand(4))


def test_dropout_backward_uses_the_mask(rng):
    x = rng.standard_normal((10, 10))
    dout = rng.standard_normal((10, 10))
    p = 0.4
    out, cache = dropout_forward(x, {"mode": "train", "p": p, "seed": 0})
    dx = dropout_backward(dout, cache)
    np.testing.assert_allclose(dx, np.where(out != 0, dout / p, 0.0), rtol=1e-15)


def test_dropout_backward_numerical(rng):
    x = rng.standard_normal((10, 10)) + 10
    dout = rng.standard_normal(x.shape)
    param = {"mode": "train", "p": 0.2, "seed": 123}
    _, cache = dropout_forward(x, param)
    dx = dropout_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: dropout_forward(v, param)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_dropout_keeps_dtype(rng, dtype, mode):
    x = rng.standard_normal((5, 6)).astype(dtype)
    out, cache = dropout_forward(x, {"mode": mode, "p": 0.3, "seed": 1})
    dx = dropout_backward(np.ones_like(x), cache)
    assert out.dtype == dx.dtype == dtype


def test_dropout_keep_all_is_identity(rng):
    x = rng.standard_normal((5, 6))
    out, _ = dropout_forward(x, {"mode": "train", "p": 1.0, "seed": 1})
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("param, exc, match", [
    ({"mode": "train", "p": 0.0}, ValueError, r"\(0, 1\]"),
    ({"mode": "train", "p": 1.5}, ValueError, r"1\.5"),
    ({"mode": "train"}, ValueError, r"None"),
    ({"mode": "eval", "p": 0.5}, ValueError, r"'eval'"),
    ({"mode": "train", "p": 0.5, "sed": 1}, ValueError, r"sed"),
])
def test_dropout_bad_params_raise(param, exc, match):
    with pytest.raises(exc, match=match):
        dropout_forward(np.ones((2, 2)), param)


def test_dropout_param_must_be_dict():
    with pytest.raises(TypeError, match="dict"):
        dropout_forward(np.ones((2, 2)), [("mode", "train")])


# ------------------------------------------------------------------ properties

_dtypes = st.sampled_from([np.float32, np.float64])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), feat=st.lists(st.integers(1, 4), min_size=1, max_size=3), m=st.integers(1, 5),
       dtype=_dtypes, seed=st.integers(0, 2**32 - 1))
def test_affine_properties(n, feat, m, dtype, seed):
    r = np.random.default_rng(seed)
    d = int(np.prod(feat))
    x = r.standard_normal((n, *feat)).astype(dtype)
    w = r.standard_normal((d, m)).astype(dtype)
    b = r.standard_normal(m).astype(dtype)
    dout = r.standard_normal((n, m)).astype(dtype)
    out, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    assert out.shape == (n, m) and out.dtype == dtype
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert dx.dtype == dw.dtype == db.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-12
    ref = x.astype(np.float64).reshape(n, d) @ w.astype(np.float64) + b
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * (1 + np.abs(ref).max()))


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), dtype=_dtypes, seed=st.integers(0, 2**32 - 1))
def test_relu_properties(shape, dtype, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape).astype(dtype)
    dout = r.standard_normal(shape).astype(dtype)
    out, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    assert out.dtype == dx.dtype == dtype and out.shape == dx.shape == x.shape
    assert np.all(out >= 0)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    np.testing.assert_array_equal(dx, np.where(x > 0, dout, 0))


# ------------------------------------------------------------------ sigmoid

def test_sigmoid_forward_closed_form(rng):
    x = 4 * rng.standard_normal((5, 3, 2))
    out, cache = sigmoid_forward(x)
    np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-x)), rtol=1e-15, atol=0)
    np.testing.assert_allclose(cache.complement, 1.0 - out, rtol=1e-14, atol=1e-16)
    assert sigmoid_forward(np.zeros(3))[0].tolist() == [0.5, 0.5, 0.5]
    dout = rng.standard_normal(x.shape)
    s = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(sigmoid_backward(dout, cache), dout * s * (1 - s), rtol=1e-13, atol=1e-16)


def test_sigmoid_backward_numerical(rng):
    x = 3 * rng.standard_normal((6, 7))
    dout = rng.standard_normal(x.shape)       # random: an all-ones dout would test only the sum
    _, cache = sigmoid_forward(x)
    # smooth: the five-point stencil at h = 1e-2 (as `normlab gradcheck`); central differences at
    # h = 1e-5 leave ~1e-8 of rounding on the tail entries (|dx| ~ 1e-4), worst 2e-10 here over 30 seeds
    dx_num = eval_numerical_gradient_array(lambda v: sigmoid_forward(v)[0], x.copy(), dout, h=1e-2, order=4)
    assert rel_error(sigmoid_backward(dout, cache), dx_num) < 1e-8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_extreme_inputs_finite_without_warnings(dtype):
    """e^-x overflows below x = -89 (float32) or -710 (float64); the layer never forms it."""
    x = np.array([-1e4, -1e3, -100.0, -30.0, 0.0, 30.0, 100.0, 1e3, 1e4], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # raise, not only warn (underflow to 0 is right)
        out, cache = sigmoid_forward(x)
        dx = sigmoid_backward(np.ones_like(x), cache)
    assert out.dtype == dx.dtype == dtype
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    assert out[0] == 0 and out[-1] == 1 and dx[0] == 0 and dx[-1] == 0
    assert np.all((out >= 0) & (out <= 1)) and np.all(np.diff(out) >= 0)
    # far in the tails the tiny values are still right, not rounded to 0 by 1 - sigma
    if dtype == np.float64:
        np.testing.assert_allclose(out[2], np.exp(-100.0), rtol=1e-14)
        np.testing.assert_allclose(dx[[2, 6]], np.exp(-100.0), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_dtype(rng, dtype):
    x = rng.standard_normal((4, 3)).astype(dtype)
    out, cache = sigmoid_forward(x)
    dx = sigmoid_backward(rng.standard_normal(x.shape).astype(dtype), cache)
    assert out.dtype == dx.dtype == cache.out.dtype == cache.complement.dtype == dtype
    assert out.shape == dx.shape == x.shape


def test_sigmoid_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = np.concatenate([5 * rng.standard_normal(40), [-800.0, -40.0, 0.0, 40.0, 800.0]])
    dout = rng.standard_normal(x.shape)
    out, cache = sigmoid_forward(x)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    outt = torch.sigmoid(xt)
    outt.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, outt.detach().numpy(), rtol=1e-15, atol=0)
    # torch's backward forms 1 - y, which loses relative precision as y -> 1 (ours: sigma(-x)), so the
    # tails agree to an absolute 1e-16, not relatively
    np.testing.assert_allclose(sigmoid_backward(dout, cache), xt.grad.numpy(), rtol=1e-12, atol=1e-16)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(sigmoid_forward(x32)[0], torch.sigmoid(torch.from_numpy(x32)).numpy(),
                               rtol=2e-7, atol=0)


def test_sigmoid_flat_api_and_bad_input():
    from normlab import layers
    assert layers.sigmoid_forward is sigmoid_forward and layers.sigmoid_backward is sigmoid_backward
    with pytest.raises(TypeError, match="floating-point"):
        sigmoid_forward(np.array(["a"]))
