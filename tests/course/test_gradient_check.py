"""The numerical gradient checker: semantics, exactness on quadratics, in-place contract."""
import numpy as np
import pytest

from normlab.gradient_check import (eval_numerical_gradient, eval_numerical_gradient_array, grad_check_sparse,
                                    rel_error)


@pytest.fixture
def rng():
    return np.random.default_rng(231)


@pytest.fixture
def quadratic(rng):
    """f(x) = 0.5 x.A.x + b.x over a (3, 4) array, gradient A x + b."""
    m = rng.standard_normal((12, 12))
    a = m + m.T
    b = rng.standard_normal(12)

    def f(x):
        v = x.reshape(-1)
        return 0.5 * v @ a @ v + b @ v

    def grad(x):
        return (a @ x.reshape(-1) + b).reshape(x.shape)

    return f, grad


# ------------------------------------------------------------------ rel_error

def test_rel_error_semantics():
    assert rel_error(np.ones(3), np.ones(3)) == 0.0
    assert rel_error(1.0, 1.1) == pytest.approx(0.1 / 2.1, rel=1e-12)
    assert rel_error(-1.0, 1.0) == 1.0                   # opposite signs: the maximum
    # elementwise, then the max over entries
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 3.0])) == pytest.approx(1 / 5, rel=1e-12)
    # denominators are floored at 1e-8: tiny values are compared absolutely
    assert rel_error(1e-10, 0.0) == pytest.approx(1e-2, rel=1e-12)
    assert rel_error(0.0, 0.0) == 0.0
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    assert isinstance(rel_error(np.ones(2), np.ones(2)), float)


def test_rel_error_is_symmetric(rng):
    a, b = rng.standard_normal((2, 5, 4))
    assert rel_error(a, b) == rel_error(b, a)


def test_rel_error_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        rel_error(np.ones(2), np.ones(3))


# ------------------------------------------------------------------ eval_numerical_gradient

def test_eval_numerical_gradient_exact_on_quadratic(rng, quadratic, capsys):
    f, grad = quadratic
    x = rng.standard_normal((3, 4))
    num = eval_numerical_gradient(f, x, verbose=False)
    assert num.shape == x.shape and num.dtype == np.float64
    # central differences are exact on quadratics up to rounding
    assert rel_error(num, grad(x)) < 1e-8
    assert capsys.readouterr().out == ""


def test_eval_numerical_gradient_verbose_prints_one_line_per_entry(rng, quadratic, capsys):
    f, _ = quadratic
    eval_numerical_gradient(f, rng.standard_normal((3, 4)), verbose=True)
    assert len(capsys.readouterr().out.strip().splitlines()) == 12


def test_eval_numerical_gradient_respects_h(rng):
    x = rng.standard_normal(5)
    # f = sum(x^3): central difference error is exactly h^2 per entry
    num = eval_numerical_gradient(lambda v: np.sum(v ** 3), x, verbose=False, h=1e-2)
    np.testing.assert_allclose(num, 3 * x ** 2 + 1e-4, rtol=1e-9, atol=1e-9)


def test_in_place_contract_reaches_closures_that_ignore_their_argument(rng):
    """Course code checks model.params[k] with a closure that ignores its argument."""
    params = {"W": rng.standard_normal((3, 2))}
    f = lambda _: float(np.sum(params["W"] ** 2))   # noqa: E731
    num = eval_numerical_gradient(f, params["W"], verbose=False)
    assert rel_error(num, 2 * params["W"]) < 1e-9


# ------------------------------------------------------------------ eval_numerical_gradient_array

def test_eval_numerical_gradient_array_is_vjp(rng):
    x = rng.standard_normal((4, 3))
    df = rng.standard_normal((4, 3))
    num = eval_numerical_gradient_array(lambda v: v ** 2, x, df)
    assert rel_error(num, 2 * x * df) < 1e-8


def test_eval_numerical_gradient_array_with_reshaping_f(rng):
    x = rng.standard_normal((2, 2, 3))
    w = rng.standard_normal((6, 4))
    df = rng.standard_normal((2, 4))
    num = eval_numerical_gradient_array(lambda v: v.reshape(2, -1) @ w, x, df)
    assert rel_error(num, (df @ w.T).reshape(2, 2, 3)) < 1e-9


def test_eval_numerical_gradient_array_handles_f_returning_x_itself(rng):
    """An identity layer (dropout in test mode) returns x itself, not a copy."""
    x = rng.standard_normal((3, 3))
    df = rng.standard_normal((3, 3))
    num = eval_numerical_gradient_array(lambda v: v, x, df)
    assert rel_error(num, df) < 1e-9


def test_eval_numerical_gradient_array_shape_mismatch_raises(rng):
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(4,\)"):
        eval_numerical_gradient_array(lambda v: v, np.ones((2, 2)), np.ones(4))


# ------------------------------------------------------------------ x restored bit-exactly

def _checkers(quadratic, rng):
    f, grad = quadratic
    df = rng.standard_normal((3, 4))
    return [
        lambda x: eval_numerical_gradient(f, x, verbose=False),
        lambda x: eval_numerical_gradient_array(lambda v: np.sin(v), x, df),
        lambda x: grad_check_sparse(f, x, grad(x), num_checks=20, seed=0, verbose=False),
    ]


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_x_restored_bit_exactly(rng, quadratic, which, dtype):
    # values with full mantissas: x + h - h would not round back to x
    x = (rng.standard_normal((3, 4)) * np.pi).astype(dtype)
    before = x.copy()
    _checkers(quadratic, rng)[which](x)
    assert x.dtype == dtype
    np.testing.assert_array_equal(x.view(np.uint8), before.view(np.uint8))


@pytest.mark.parametrize("which", [0, 1, 2])
def test_x_restored_on_non_contiguous_views(rng, quadratic, which):
    base = rng.standard_normal((6, 8))
    x = base[::2, ::2]          # (3, 4) view: perturbations must land in base and be undone
    before = base.copy()
    _checkers(quadratic, rng)[which](x)
    np.testing.assert_array_equal(base, before)


# ------------------------------------------------------------------ grad_check_sparse

def test_grad_check_sparse_returns_errors(rng, quadratic, capsys):
    f, grad = quadratic
    x = rng.standard_normal((3, 4))
    errors = grad_check_sparse(f, x, grad(x), num_checks=7, seed=1, verbose=False)
    assert isinstance(errors, list) and len(errors) == 7
    assert all(isinstance(e, float) for e in errors)
    assert max(errors) < 1e-8
    assert capsys.readouterr().out == ""


def test_grad_check_sparse_detects_wrong_gradient(rng, quadratic):
    f, grad = quadratic
    x = rng.standard_normal((3, 4))
    errors = grad_check_sparse(f, x, 2 * grad(x), num_checks=5, seed=1, verbose=False)
    # |g - 2g| / (|g| + |2g|) = 1/3
    np.testing.assert_allclose(errors, 1 / 3, rtol=1e-6)


def test_grad_check_sparse_seeded_and_verbose(rng, quadratic, capsys):
    f, grad = quadratic
    x = rng.standard_normal((3, 4))
    wrong = grad(x) + rng.standard_normal((3, 4))
    a = grad_check_sparse(f, x, wrong, num_checks=6, seed=3, verbose=True)
    b = grad_check_sparse(f, x, wrong, num_checks=6, seed=3, verbose=False)
    assert a == b
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and all("relative error" in line for line in lines)


def test_grad_check_sparse_course_positional_signature(rng, quadratic):
    f, grad = quadratic
    x = rng.standard_normal((3, 4))
    errors = grad_check_sparse(f, x, grad(x), 4, 1e-5, verbose=False)
    assert len(errors) == 4


def test_grad_check_sparse_shape_mismatch_raises(rng, quadratic):
    f, _ = quadratic
    with pytest.raises(ValueError, match=r"\(12,\).*\(3, 4\)"):
        grad_check_sparse(f, rng.standard_normal((3, 4)), np.zeros(12), verbose=False)


# ------------------------------------------------------------------ type errors

@pytest.mark.parametrize("bad", [np.arange(4), np.arange(4).astype(np.int32), [1.0, 2.0], np.array([True])])
def test_non_float_arrays_raise_type_error(bad):
    f = lambda v: float(np.sum(v))   # noqa: E731
    with pytest.raises(TypeError, match="floating"):
        eval_numerical_gradient(f, bad, verbose=False)
    with pytest.raises(TypeError, match="floating"):
        eval_numerical_gradient_array(lambda v: v, bad, np.ones(np.shape(bad)))
    with pytest.raises(TypeError, match="floating"):
        grad_check_sparse(f, bad, np.zeros(np.shape(bad)), verbose=False)


def test_int_array_error_names_dtype():
    with pytest.raises(TypeError, match="int64"):
        eval_numerical_gradient(lambda v: 0.0, np.arange(3, dtype=np.int64), verbose=False)


def test_five_point_stencil_is_exact_for_quartics_where_central_differences_are_not():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4))
    df = rng.standard_normal((3, 4))
    exact = 4 * x ** 3 * df
    four = eval_numerical_gradient_array(lambda a: a ** 4, x, df, h=1e-2, order=4)
    two = eval_numerical_gradient_array(lambda a: a ** 4, x, df, h=1e-2, order=2)
    assert rel_error(four, exact) < 1e-10
    assert rel_error(two, exact) > 1e-6      # h^2 truncation: the stencil is what removes it


def test_order_must_be_2_or_4():
    with pytest.raises(ValueError, match="order must be 2 .* got 3"):
        eval_numerical_gradient_array(lambda a: a, np.ones(2), np.ones(2), order=3)
