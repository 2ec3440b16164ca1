"""Batch norm at its boundary: every malformed argument raises a ValueError/TypeError
that names the value received, NaN/inf input raises NonFiniteError before the
running statistics move, and integer/bool data is cast to float."""
import numpy as np
import pytest

from normlab.nn._checks import NonFiniteError
from normlab.layers import batchnorm_forward, spatial_batchnorm_backward, spatial_batchnorm_forward


@pytest.fixture
def rng():
    return np.random.default_rng(2017)

# ------------------------------------------------------------------ bad input

def ok_args(rng, d=5):
    return rng.standard_normal((4, d)), np.ones(d), np.zeros(d)


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4), (2, 3, 4, 5)])
def test_bn_wrong_rank(rng, shape):
    with pytest.raises(ValueError, match=r"expected 2-D .*got shape " + re_shape(shape)):
        batchnorm_forward(rng.standard_normal(shape), np.ones(3), np.zeros(3), {"mode": "train"})


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4)])
def test_spatial_bn_wrong_rank(rng, shape):
    with pytest.raises(ValueError, match=r"expected 4-D .*got shape " + re_shape(shape)):
        spatial_batchnorm_forward(rng.standard_normal(shape), np.ones(3), np.zeros(3), {"mode": "train"})


def re_shape(shape):
    return r"\(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + r"\)"


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("which", ["gamma", "beta"])
def test_param_wrong_length(rng, mode, which):
    x, gamma, beta = ok_args(rng)
    kwargs = {"gamma": gamma, "beta": beta, which: np.ones(4)}
    with pytest.raises(ValueError, match=which + r" must have 5 entries.*got shape \(4,\)"):
        batchnorm_forward(x, kwargs["gamma"], kwargs["beta"], {"mode": mode})


def test_spatial_param_wrong_length(rng):
    with pytest.raises(ValueError, match=r"gamma must have 3 entries.*got shape \(1, 4, 1, 1\)"):
        spatial_batchnorm_forward(rng.standard_normal((2, 3, 4, 4)), np.ones((1, 4, 1, 1)), np.zeros(3),
                                  {"mode": "train"})


def test_bn_train_one_sample(rng):
    x, gamma, beta = ok_args(rng)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 5\)"):
        batchnorm_forward(x[:1], gamma, beta, {"mode": "train"})


def test_spatial_bn_train_one_value_per_channel(rng):
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3, 1, 1\)"):
        spatial_batchnorm_forward(rng.standard_normal((1, 3, 1, 1)), np.ones(3), np.zeros(3), {"mode": "train"})


def test_one_sample_is_fine_in_test_mode_and_spatially(rng):
    x, gamma, beta = ok_args(rng)
    out, _ = batchnorm_forward(x[:1], gamma, beta, {"mode": "test"})
    assert out.shape == (1, 5)
    out, _ = spatial_batchnorm_forward(rng.standard_normal((1, 3, 2, 1)), np.ones(3), np.zeros(3),
                                       {"mode": "train"})
    assert out.shape == (1, 3, 2, 1)


@pytest.mark.parametrize("mode", ["tarin", "eval", None])
def test_unknown_mode(rng, mode):
    with pytest.raises(ValueError, match=f"unknown mode {mode!r}"):
        batchnorm_forward(*ok_args(rng), {"mode": mode})


def test_missing_mode(rng):
    with pytest.raises(ValueError, match="'mode'"):
        batchnorm_forward(*ok_args(rng), {})


def test_bn_param_not_a_dict(rng):
    with pytest.raises(TypeError, match="bn_param must be a dict.*list"):
        batchnorm_forward(*ok_args(rng), ["train"])


def test_unknown_bn_param_key(rng):
    with pytest.raises(ValueError, match="momentun"):
        batchnorm_forward(*ok_args(rng), {"mode": "train", "momentun": 0.9})


def test_unknown_convention(rng):
    with pytest.raises(ValueError, match="'keras'"):
        batchnorm_forward(*ok_args(rng), {"mode": "train", "convention": "keras"})


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan")])
def test_momentum_out_of_range(rng, momentum):
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\], got " + str(momentum)):
        batchnorm_forward(*ok_args(rng), {"mode": "train", "momentum": momentum})


@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan")])
def test_eps_not_positive(rng, eps):
    with pytest.raises(ValueError, match="eps must be positive, got " + str(eps)):
        batchnorm_forward(*ok_args(rng), {"mode": "train", "eps": eps})


def test_running_stats_wrong_shape(rng):
    with pytest.raises(ValueError, match=r"running_mean.*shape \(4,\).*\(5,\)"):
        batchnorm_forward(*ok_args(rng), {"mode": "train", "running_mean": np.zeros(4)})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("spatial", [False, True])
def test_non_finite_input_in_train_mode(rng, bad, spatial):
    shape = (2, 3, 4, 5) if spatial else (6, 3)
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    bn_param = {"mode": "train", "running_mean": rm.copy(), "running_var": rv.copy()}
    x = rng.standard_normal(shape)
    x.flat[7] = bad
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_array_equal(bn_param["running_mean"], rm)
    np.testing.assert_array_equal(bn_param["running_var"], rv)


@pytest.mark.parametrize("shape", [(6, 3), (3001, 64)], ids=["one-block", "multi-block"])
def test_inf_and_minus_inf_in_one_channel(rng, shape):
    x = rng.standard_normal(shape)
    x[0, 1], x[-1, 1] = np.inf, -np.inf
    bn_param = {"mode": "train"}
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        batchnorm_forward(x, np.ones(shape[1]), np.zeros(shape[1]), bn_param)
    assert "running_mean" not in bn_param and "running_var" not in bn_param


def test_float32_overflowing_statistics(rng):
    x = (3e38 * (1 + 0.01 * rng.standard_normal((8, 3)))).astype(np.float32)   # finite, sum overflows
    with pytest.raises(NonFiniteError, match="overflows"):
        batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), {"mode": "train"})


@pytest.mark.parametrize("dtype", [np.complex128, np.str_, object])
def test_non_real_dtype_x_is_refused(rng, dtype):
    x = (3 * rng.standard_normal((4, 5))).astype(dtype)
    with pytest.raises(TypeError, match=f"floating-point.*{np.dtype(dtype).name}"):
        batchnorm_forward(x, np.ones(5), np.zeros(5), {"mode": "train"})
    with pytest.raises(TypeError, match="gamma must be a floating-point array, got dtype complex128"):
        batchnorm_forward(np.ones((4, 5)), np.ones(5, dtype=complex), np.zeros(5), {"mode": "train"})


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_])
def test_integer_and_bool_x_are_cast_to_float64(rng, dtype):
    x = (3 * rng.standard_normal((4, 5))).astype(dtype)
    out, _ = batchnorm_forward(x, np.ones(5), np.zeros(5), {"mode": "train"})
    ref, _ = batchnorm_forward(x.astype(np.float64), np.ones(5), np.zeros(5), {"mode": "train"})
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_gamma_beta_are_cast_to_the_input_dtype(rng, dtype):
    """The course's spatial batch-norm check passes np.asarray([3, 4, 5]) and [6, 7, 8]."""
    x = (4 * rng.standard_normal((2, 3, 4, 5)) + 10).astype(dtype)
    gamma, beta = np.asarray([3, 4, 5]), np.asarray([6, 7, 8])
    out, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    ref, _ = spatial_batchnorm_forward(x, gamma.astype(dtype), beta.astype(dtype), {"mode": "train"})
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [6, 7, 8], atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [3, 4, 5], rtol=1e-4)
    dx, dgamma, dbeta = spatial_batchnorm_backward(np.ones_like(x), cache)
    assert dx.dtype == dtype and dgamma.shape == (3,)
    out, _ = batchnorm_forward(x.reshape(8, 15)[:, :3], np.array([True, False, True]), np.asarray([0, 1, 2]),
                               {"mode": "train"})
    np.testing.assert_allclose(out[:, 1], 1.0)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_thread_count_names_the_value(rng, monkeypatch, value):
    monkeypatch.setenv("NORMLAB_NUM_THREADS", value)
    with pytest.raises(ValueError, match=f"NORMLAB_NUM_THREADS.*'{value}'"):
        batchnorm_forward(*ok_args(rng), {"mode": "train"})
