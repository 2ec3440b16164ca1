"""Batch norm normalizing with the unbiased batch variance (``batch_variance='unbiased'``,
Ba, Kiros & Hinton 2016's baseline at batch 4): the closed form inline, an equivalence
with the biased layer, float64 finite differences of all three backward passes against a
random upstream gradient, PyTorch autograd, the running statistics untouched by the
setting, and the net-level switch ``norm_param={'batch_variance': 'unbiased'}``."""
import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.layers import (batchnorm_backward, batchnorm_backward_alt, batchnorm_forward, spatial_batchnorm_backward,
                            spatial_batchnorm_forward)
from normlab.models import FullyConnectedNet, ThreeLayerConvNet
from normlab.nn.norm.batchnorm import BatchNormConfig, batchnorm_train

EPS = 1e-5
UNBIASED = {"mode": "train", "batch_variance": "unbiased"}
BACKWARDS = {"staged": batchnorm_backward, "alt": batchnorm_backward_alt}


@pytest.fixture
def rng():
    return np.random.default_rng(2016)


def unbiased_reference(x, gamma, beta, axes=(0,), eps=EPS):
    """gamma (x - mean) / sqrt(sum((x - mean)^2) / (m - 1) + eps) + beta, per channel."""
    shape = [1] * x.ndim
    shape[1] = -1
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=1)
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


def _data(rng, shape):
    x = 5 * rng.standard_normal(shape) + 12
    gamma, beta = rng.standard_normal((2, shape[1]))
    return x, gamma, beta, rng.standard_normal(shape)


# ------------------------------------------------------------------ forward

@pytest.mark.parametrize("n", [2, 4, 16])
def test_unbiased_output_equals_closed_form(rng, n):
    x, gamma, beta, _ = _data(rng, (n, 5))
    out, cache = batchnorm_forward(x, gamma, beta, dict(UNBIASED))
    np.testing.assert_allclose(out, unbiased_reference(x, gamma, beta), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache.var.ravel(), x.var(0, ddof=1), rtol=1e-12)    # what it normalized with
    # the unbiased variance is larger, so each column's spread is sqrt((m - 1) / m) of the biased layer's
    ones = np.ones(5)
    out1, _ = batchnorm_forward(x, ones, 0 * ones, dict(UNBIASED))
    np.testing.assert_allclose(out1.var(0), (n - 1) / n * x.var(0) / (x.var(0) + EPS * (n - 1) / n), rtol=1e-10)


def test_spatial_unbiased_output_equals_closed_form(rng):
    x, gamma, beta, _ = _data(rng, (2, 3, 4, 5))
    out, _ = spatial_batchnorm_forward(x, gamma, beta, dict(UNBIASED))
    np.testing.assert_allclose(out, unbiased_reference(x, gamma, beta, axes=(0, 2, 3)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["train", "test"])
def test_biased_is_the_default_bit_for_bit(rng, mode):
    x, gamma, beta, dout = _data(rng, (6, 4))
    base = {"mode": mode, "running_mean": rng.standard_normal(4), "running_var": rng.random(4) + 0.5}
    outs = []
    for extra in ({}, {"batch_variance": "biased"}):
        out, cache = batchnorm_forward(x, gamma, beta, {**base, **extra})
        outs.append((out, *batchnorm_backward(dout, cache), *batchnorm_backward_alt(dout, cache)))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


def test_unbiased_equals_biased_with_rescaled_gamma_and_eps(rng):
    """(x - mu) / sqrt(c var + eps) = c^-1/2 (x - mu) / sqrt(var + eps / c), c = m / (m - 1): the
    unbiased layer is the biased one with gamma / sqrt(c) and eps / c, gradients included."""
    n = 4
    c = n / (n - 1)
    x, gamma, beta, dout = _data(rng, (n, 6))
    out_u, cache_u = batchnorm_forward(x, gamma, beta, dict(UNBIASED))
    out_b, cache_b = batchnorm_forward(x, gamma / np.sqrt(c), beta, {"mode": "train", "eps": EPS / c})
    np.testing.assert_allclose(out_u, out_b, rtol=1e-12, atol=1e-12)
    for backward in BACKWARDS.values():
        dx_u, dg_u, db_u = backward(dout, cache_u)
        dx_b, dg_b, db_b = backward(dout, cache_b)
        np.testing.assert_allclose(dx_u, dx_b, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(dg_u, dg_b / np.sqrt(c), rtol=1e-12)
        np.testing.assert_allclose(db_u, db_b, rtol=1e-12)


# ------------------------------------------------------------------ finite differences

def _numerical(fwd, x, gamma, beta, dout):
    # smooth: the five-point stencil. At h = 1e-3 (x of spread 5) its truncation stays below 1e-9 on
    # 20 seeds at m = 3 and 4; at 1e-2 it reaches 1e-7 on the tiny dx entries of a three-sample batch.
    num = lambda f, v: eval_numerical_gradient_array(f, v, dout, h=1e-3, order=4)
    return (num(lambda v: fwd(v, gamma, beta), x.copy()), num(lambda v: fwd(x, v, beta), gamma.copy()),
            num(lambda v: fwd(x, gamma, v), beta.copy()))


@pytest.mark.parametrize("n", [3, 4, 10])
@pytest.mark.parametrize("backward", list(BACKWARDS.values()), ids=list(BACKWARDS))
def test_unbiased_backward_matches_finite_differences(rng, backward, n):
    x, gamma, beta, dout = _data(rng, (n, 5))
    fwd = lambda x_, g_, b_: batchnorm_forward(x_, g_, b_, dict(UNBIASED))[0]
    _, cache = batchnorm_forward(x, gamma, beta, dict(UNBIASED))
    for name, a, b in zip(("dx", "dgamma", "dbeta"), backward(dout, cache), _numerical(fwd, x, gamma, beta, dout)):
        assert rel_error(a, b) < 1e-8, (name, rel_error(a, b))


def test_spatial_unbiased_backward_matches_finite_differences(rng):
    x, gamma, beta, dout = _data(rng, (2, 3, 2, 2))       # m = 8 per channel
    fwd = lambda x_, g_, b_: spatial_batchnorm_forward(x_, g_, b_, dict(UNBIASED))[0]
    _, cache = spatial_batchnorm_forward(x, gamma, beta, dict(UNBIASED))
    grads = spatial_batchnorm_backward(dout, cache)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), grads, _numerical(fwd, x, gamma, beta, dout)):
        assert rel_error(a, b) < 1e-8, (name, rel_error(a, b))


@pytest.mark.parametrize("spatial", [False, True])
def test_unbiased_staged_and_closed_backward_agree(rng, spatial):
    x, gamma, beta, dout = _data(rng, (4, 3, 2, 3) if spatial else (4, 7))
    fwd = spatial_batchnorm_forward if spatial else batchnorm_forward
    _, cache = fwd(x, gamma, beta, dict(UNBIASED))
    for a, b in zip(batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert np.abs(batchnorm_backward_alt(dout, cache)[0].sum(axis=(0, 2, 3) if spatial else 0)).max() < 1e-12


# ------------------------------------------------------------------ PyTorch

@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("backward", ["staged", "alt"])
def test_unbiased_matches_torch_autograd(rng, spatial, backward):
    torch = pytest.importorskip("torch")
    shape, axes = ((3, 4, 2, 2), (0, 2, 3)) if spatial else ((4, 6), (0,))
    x, gamma, beta, dout = _data(rng, shape)
    if spatial and backward == "staged":
        fwd, bwd = spatial_batchnorm_forward, batchnorm_backward
    else:
        fwd, bwd = (spatial_batchnorm_forward, spatial_batchnorm_backward) if spatial else \
            (batchnorm_forward, BACKWARDS[backward])
    out, cache = fwd(x, gamma, beta, dict(UNBIASED))
    grads = bwd(dout, cache)

    view = (1, -1) + (1,) * (len(shape) - 2)
    tx, tg, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))
    mean = tx.mean(dim=axes, keepdim=True)
    var = tx.var(dim=axes, keepdim=True, unbiased=True)
    t_out = (tx - mean) / torch.sqrt(var + EPS) * tg.reshape(view) + tb.reshape(view)
    t_out.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-10)
    for a, t in zip(grads, (tx, tg, tb)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-10, atol=1e-10)

    # torch's own batch norm (biased) on the rescaled gamma and eps gives the same output
    c = x.size / x.shape[1] / (x.size / x.shape[1] - 1)
    want = torch.nn.functional.batch_norm(torch.tensor(x), None, None, torch.tensor(gamma / np.sqrt(c)),
                                          torch.tensor(beta), training=True, eps=EPS / c)
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ running statistics, errors

@pytest.mark.parametrize("convention", ["course", "torch"])
def test_running_statistics_keep_their_convention(rng, convention):
    """The setting changes what train mode normalizes with, not the running averages."""
    x, gamma, beta, _ = _data(rng, (5, 3))
    params = [{"mode": "train", "convention": convention, **extra} for extra in ({}, {"batch_variance": "unbiased"})]
    for p in params:
        for _ in range(3):
            batchnorm_forward(x, gamma, beta, p)
    assert np.array_equal(params[0]["running_mean"], params[1]["running_mean"])
    assert np.array_equal(params[0]["running_var"], params[1]["running_var"])
    cfg = BatchNormConfig(convention=convention, batch_variance="unbiased")
    _, stats, _ = batchnorm_train(x, gamma, beta, None, cfg)
    w = cfg.new_weight
    start = 0.0 if convention == "course" else 1.0
    batch_var = x.var(0, ddof=1 if convention == "torch" else 0)
    np.testing.assert_allclose(stats.var, (1 - w) * start + w * batch_var, rtol=1e-12)


def test_unbiased_test_mode_uses_the_running_statistics(rng):
    x, gamma, beta, _ = _data(rng, (4, 3))
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    base = {"mode": "test", "running_mean": rm, "running_var": rv}
    a, _ = batchnorm_forward(x, gamma, beta, dict(base))
    b, _ = batchnorm_forward(x, gamma, beta, {**base, "batch_variance": "unbiased"})
    assert np.array_equal(a, b)


def test_one_value_per_channel_is_refused():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batchnorm_forward(np.ones((1, 3)), np.ones(3), np.zeros(3), dict(UNBIASED))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        spatial_batchnorm_forward(np.ones((1, 2, 1, 1)), np.ones(2), np.zeros(2), dict(UNBIASED))


def test_unknown_batch_variance_is_refused():
    with pytest.raises(ValueError, match=r"unknown batch_variance 'bessel'; expected 'biased'.*'unbiased'"):
        BatchNormConfig(batch_variance="bessel")
    with pytest.raises(ValueError, match="unknown batch_variance 'bessel'"):
        batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), {"mode": "train", "batch_variance": "bessel"})
    with pytest.raises(ValueError, match="unknown batch_variance 'bessel'"):
        FullyConnectedNet([4], input_dim=3, normalization="batchnorm", norm_param={"batch_variance": "bessel"})


# ------------------------------------------------------------------ nets

def test_net_switch_reaches_every_batchnorm_layer(rng):
    """FullyConnectedNet(normalization='batchnorm', norm_param={'batch_variance': 'unbiased'}): each hidden
    affine output is normalized with the unbiased variance (batch of 4, as Ba et al.)."""
    model = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, normalization="batchnorm", dtype=np.float64,
                              norm_param={"batch_variance": "unbiased"}, weight_scale=0.5, rng_seed=0)
    assert model.architecture().norm.batch_variance == "unbiased"
    X = rng.standard_normal((4, 4))
    h = X
    for i, a in enumerate(model.activation_inputs(X), start=1):
        z = h @ model.params[f"W{i}"] + model.params[f"b{i}"]
        np.testing.assert_allclose(a, unbiased_reference(z, model.params[f"gamma{i}"], model.params[f"beta{i}"]),
                                   rtol=1e-10, atol=1e-12)
        h = np.maximum(a, 0)
    default = FullyConnectedNet([6], input_dim=4, normalization="batchnorm").architecture().norm
    assert default.batch_variance == "biased"


def test_conv_net_switch_reaches_spatial_batchnorm(rng):
    kw = dict(input_dim=(2, 4, 4), num_filters=3, filter_size=3, hidden_dim=5, num_classes=3, dtype=np.float64,
              normalization="batchnorm", weight_scale=0.3, rng_seed=1)
    X, y = rng.standard_normal((3, 2, 4, 4)), np.array([0, 1, 2])
    biased = ThreeLayerConvNet(**kw)
    unbiased = ThreeLayerConvNet(**kw, norm_param={"batch_variance": "unbiased"})
    assert biased.loss(X, y)[0] != unbiased.loss(X, y)[0]
    _, cache = spatial_batchnorm_forward(rng.standard_normal((3, 3, 4, 4)), np.ones(3), np.zeros(3), dict(UNBIASED))
    assert cache.ddof == 1
