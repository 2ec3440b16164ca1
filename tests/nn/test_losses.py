"""softmax_loss and svm_loss: closed form, finite differences, PyTorch, stability, validation."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normlab.gradient_check import eval_numerical_gradient, rel_error
from normlab.nn.losses import softmax_loss, svm_loss


@pytest.fixture
def rng():
    return np.random.default_rng(231)


@pytest.fixture
def course_scores(rng):
    """The course's sanity setting: 50 samples, 10 classes, tiny random scores."""
    x = 0.001 * rng.standard_normal((50, 10))
    y = rng.integers(10, size=50)
    return x, y


def _softmax_ref(x, y):
    z = x - x.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def _svm_ref(x, y):
    n, c = x.shape
    loss, dx = 0.0, np.zeros_like(x)
    for i in range(n):
        for j in range(c):
            if j == y[i]:
                continue
            margin = x[i, j] - x[i, y[i]] + 1
            if margin > 0:
                loss += margin
                dx[i, j] += 1
                dx[i, y[i]] -= 1
    return loss / n, dx / n


# ------------------------------------------------------------------ course sanity values

def test_softmax_sanity_loss_is_log_num_classes(course_scores):
    x, y = course_scores
    loss, _ = softmax_loss(x, y)
    assert abs(loss - np.log(10)) < 0.01     # ~2.3


def test_svm_sanity_loss_is_num_classes_minus_one(course_scores):
    x, y = course_scores
    loss, _ = svm_loss(x, y)
    assert abs(loss - 9.0) < 0.01


# ------------------------------------------------------------------ closed form, numerical, torch

@pytest.mark.parametrize("loss_fn, ref", [(softmax_loss, _softmax_ref), (svm_loss, _svm_ref)])
def test_loss_matches_closed_form(rng, loss_fn, ref):
    x = rng.standard_normal((8, 5))
    y = rng.integers(5, size=8)
    loss, dx = loss_fn(x, y)
    ref_loss, ref_dx = ref(x, y)
    assert isinstance(loss, float)
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_loss_gradient_numerical(course_scores, loss_fn):
    x, y = course_scores
    _, dx = loss_fn(x, y)
    dx_num = eval_numerical_gradient(lambda v: loss_fn(v, y)[0], x, verbose=False)
    assert rel_error(dx, dx_num) < 1e-8


def test_softmax_matches_torch_cross_entropy(rng):
    torch = pytest.importorskip("torch")
    x = 3 * rng.standard_normal((12, 7))
    y = rng.integers(7, size=12)
    loss, dx = softmax_loss(x, y)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor(y))
    lt.backward()
    assert rel_error(loss, lt.item()) < 1e-10
    assert rel_error(dx, xt.grad.numpy()) < 1e-10


def test_svm_matches_torch_multi_margin_loss(rng):
    torch = pytest.importorskip("torch")
    n, c = 12, 7
    x = rng.standard_normal((n, c))
    y = rng.integers(c, size=n)
    loss, dx = svm_loss(x, y)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    # multi_margin_loss averages over the C classes as well; the course loss sums them
    lt = c * torch.nn.functional.multi_margin_loss(xt, torch.tensor(y), margin=1.0)
    lt.backward()
    assert rel_error(loss, lt.item()) < 1e-10
    assert rel_error(dx, xt.grad.numpy()) < 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_loss_dx_keeps_dtype_and_inputs(rng, loss_fn, dtype):
    x = rng.standard_normal((4, 3)).astype(dtype)
    y = np.array([0, 1, 2, 0])
    x0 = x.copy()
    loss, dx = loss_fn(x, y)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert isinstance(loss, float)
    np.testing.assert_array_equal(x, x0)


def test_softmax_loss_of_confident_correct_scores_is_near_zero():
    x = np.array([[100.0, 0.0, 0.0], [0.0, 0.0, 100.0]])
    loss, dx = softmax_loss(x, np.array([0, 2]))
    assert 0 <= loss < 1e-40
    np.testing.assert_allclose(dx, 0, atol=1e-40)


# ------------------------------------------------------------------ stability at huge finite logits

@pytest.mark.parametrize("dtype, big", [(np.float32, 3e38), (np.float64, 1e300)])
@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_loss_stable_for_huge_finite_logits(rng, loss_fn, dtype, big):
    x = (big * rng.choice([-1.0, 1.0], size=(6, 5))).astype(dtype)
    x[0] = np.array([big, -big, 0, big, -big], dtype=dtype)
    y = rng.integers(5, size=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dx = loss_fn(x, y)
    assert np.isfinite(loss) and loss >= 0
    assert dx.dtype == dtype and np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx.sum(axis=1), 0, atol=1e-6)


def test_softmax_huge_logits_closed_form():
    big = 3e38
    x = np.array([[big, -big, 0.0], [big, -big, 0.0]], dtype=np.float32)
    y = np.array([0, 1])
    loss, dx = softmax_loss(x, y)
    # row 0 is certain and correct (loss 0), row 1 puts all mass on class 0 (loss 2 * big)
    assert loss == pytest.approx(big, rel=1e-6)
    np.testing.assert_array_equal(dx, np.array([[0, 0, 0], [0.5, -0.5, 0]], dtype=np.float32))


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_loss_no_warning_when_sum_of_losses_exceeds_float_range(loss_fn):
    # each per-sample loss is ~1e308 (representable), their sum is not
    x = np.array([[1e308, 0.0], [1e308, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dx = loss_fn(x, np.array([1, 1]))
    assert loss == pytest.approx(1e308, rel=1e-12)
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_loss_beyond_float64_spread_is_inf_without_warning(loss_fn):
    # the true loss (~2e308) is not representable: inf, but no warning and a finite gradient
    x = np.array([[1e308, -1e308, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dx = loss_fn(x, np.array([1]))
    assert loss == np.inf
    assert np.all(np.isfinite(dx))


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
@pytest.mark.parametrize("y, exc, match", [
    (np.array([0, 10, 1]), ValueError, r"label 10 .*10 classes"),
    (np.array([0, -1, 1]), ValueError, r"label -1 "),
    (np.array([[0], [1], [2]]), ValueError, r"\(3,\).*\(3, 1\)"),
    (np.array([0, 1]), ValueError, r"\(3,\).*\(2,\)"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"float64"),
    (np.array([True, False, True]), TypeError, r"bool"),
])
def test_bad_labels_raise_naming_the_value(loss_fn, y, exc, match):
    x = np.zeros((3, 10))
    with pytest.raises(exc, match=match):
        loss_fn(x, y)


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise(loss_fn, bad):
    x = np.zeros((3, 4))
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        loss_fn(x, np.array([0, 1, 2]))


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_scores_must_be_2d_and_nonempty(loss_fn):
    with pytest.raises(ValueError, match=r"\(N, C\).*\(4,\)"):
        loss_fn(np.zeros(4), np.array([0]))
    with pytest.raises(ValueError, match="N = 0"):
        loss_fn(np.zeros((0, 4)), np.zeros(0, dtype=int))


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_labels_as_python_list_accepted(loss_fn):
    x = np.zeros((2, 3))
    assert loss_fn(x, [0, 2])[0] == loss_fn(x, np.array([0, 2]))[0]


# ------------------------------------------------------------------ properties

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(2, 7), dtype=st.sampled_from([np.float32, np.float64]),
       scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]), seed=st.integers(0, 2**32 - 1))
def test_loss_properties(n, c, dtype, scale, seed):
    r = np.random.default_rng(seed)
    x = (scale * r.standard_normal((n, c))).astype(dtype)
    y = r.integers(c, size=n)
    loss, dx = softmax_loss(x, y)
    assert loss >= 0 and np.isfinite(loss)
    assert dx.dtype == dtype and dx.shape == (n, c)
    atol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(dx.sum(axis=1), 0, atol=atol)
    # the gradient is (softmax - onehot) / N: correct-class entries <= 0, others >= 0
    rows = np.arange(n)
    assert np.all(dx[rows, y] <= 0)
    others = np.ones_like(dx, dtype=bool)
    others[rows, y] = False
    assert np.all(dx[others] >= 0)

    loss, dx = svm_loss(x, y)
    assert loss >= 0 and np.isfinite(loss)
    assert dx.dtype == dtype and dx.shape == (n, c)
    np.testing.assert_allclose(dx.sum(axis=1), 0, atol=atol)
