"""Noisy batch norm (Santurkar et al. 2018): train mode is batch norm then ``s * a + m`` exactly,
test mode plain batch norm; the draws follow their distributions, come from the given generator
(same seed, same noise; fresh at every step); float64 finite differences with a fixed draw; PyTorch
autograd on the same construction; and the net that uses it."""
import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from normlab.layers import batchnorm_backward_alt, batchnorm_forward
from normlab.models import FullyConnectedNet, ThreeLayerConvNet
from normlab.nn.norm.batchnorm import batchnorm_after_bias
from normlab.nn.norm.noisy import (MEAN_RANGE, SIGMA_RANGE, SPREAD, NoiseDraw, draw_noise, noisy_batchnorm_backward,
                                   noisy_batchnorm_forward)


@pytest.fixture
def rng():
    return np.random.default_rng(1805)


def _data(rng, n=6, d=5):
    x = 3 * rng.standard_normal((n, d)) + 2
    gamma, beta = rng.standard_normal((2, d))
    return x, gamma, beta, rng.standard_normal((n, d))


# ------------------------------------------------------------------ train and test mode

@pytest.mark.parametrize("noise_per", ["unit", "sample"])
def test_train_output_is_s_times_batchnorm_plus_m_exactly(rng, noise_per):
    x, gamma, beta, _ = _data(rng)
    bias = rng.standard_normal(5)
    param = {"mode": "train", "rng": np.random.default_rng(3), "noise_per": noise_per}
    out, cache = noisy_batchnorm_forward(x, gamma, beta, param, bias=bias)
    plain = {"mode": "train"}
    a, _ = batchnorm_after_bias(x, bias, gamma, beta, plain)
    s, m = cache.noise.scale, cache.noise.shift
    assert s.shape == m.shape == ((5,) if noise_per == "unit" else (6, 5))
    assert np.array_equal(out, a * s + m)
    # per unit, the batch mean of the output is beta_j s_j + m_j (batch norm's output has mean beta)
    if noise_per == "unit":
        np.testing.assert_allclose(out.mean(0), beta * s + m, rtol=1e-12, atol=1e-12)
    # the running statistics are batch norm's, noise or not
    for key in ("running_mean", "running_var"):
        assert np.array_equal(param[key], plain[key])
    assert set(param) == {"mode", "rng", "noise_per", "running_mean", "running_var"}


def test_test_mode_is_batchnorm_without_noise(rng):
    x, gamma, beta, dout = _data(rng)
    stats = {"running_mean": rng.standard_normal(5), "running_var": rng.random(5) + 0.5}
    gen = np.random.default_rng(0)
    before = gen.bit_generator.state
    out, cache = noisy_batchnorm_forward(x, gamma, beta, {"mode": "test", "rng": gen, **stats})
    want, want_cache = batchnorm_forward(x, gamma, beta, {"mode": "test", **stats})
    assert np.array_equal(out, want) and cache.noise is None
    assert gen.bit_generator.state == before                 # test mode draws nothing
    for a, b in zip(noisy_batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, want_cache)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept(rng, dtype):
    x, gamma, beta, dout = (a.astype(dtype) for a in _data(rng))
    out, cache = noisy_batchnorm_forward(x, gamma, beta, {"mode": "train", "rng": np.random.default_rng(1)})
    grads = noisy_batchnorm_backward(dout, cache)
    assert out.dtype == cache.noise.scale.dtype == cache.noise.shift.dtype == dtype
    assert all(g.dtype == dtype for g in grads)


# ------------------------------------------------------------------ the draws

def test_draws_follow_their_distributions():
    gen = np.random.default_rng(11)
    draws = [draw_noise((4000,), gen) for _ in range(400)]
    mus, sigmas = np.array([d.mu for d in draws]), np.array([d.sigma for d in draws])
    assert -MEAN_RANGE <= mus.min() < -0.45 and 0.45 < mus.max() <= MEAN_RANGE
    assert SIGMA_RANGE[0] <= sigmas.min() < 1.01 and 1.24 < sigmas.max() <= SIGMA_RANGE[1]
    assert abs(mus.mean()) < 0.05 and abs(sigmas.mean() - 1.125) < 0.01       # U means, ~4 standard errors
    for d in draws:
        assert np.all(np.abs(d.shift - d.mu) <= SPREAD)                     # m_j ~ U(mu - 0.1, mu + 0.1)
    z = np.concatenate([d.scale - d.sigma for d in draws])                   # s_j - sigma ~ N(0, 0.1^2)
    assert abs(z.mean()) < 1e-3 and abs(z.std() - SPREAD) < 1e-3
    assert abs(np.mean(np.abs(z) < SPREAD) - 0.6827) < 0.005
    u = np.concatenate([(d.shift - d.mu) / SPREAD for d in draws])          # uniform on [-1, 1]
    assert abs(u.mean()) < 2e-3 and abs(u.var() - 1 / 3) < 2e-3


def test_same_generator_state_same_noise_and_fresh_noise_every_step(rng):
    x, gamma, beta, _ = _data(rng)

    def run(seed, steps=3):
        param = {"mode": "train", "rng": np.random.default_rng(seed)}
        return [noisy_batchnorm_forward(x, gamma, beta, param)[0] for _ in range(steps)]

    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])     # a new draw per step


def test_draw_order_is_documented():
    """mu, sigma, then every m, then every s, from the generator as given."""
    d = draw_noise((3,), np.random.default_rng(4))
    g = np.random.default_rng(4)
    mu, sigma = g.uniform(-0.5, 0.5), g.uniform(1.0, 1.25)
    m, s = g.uniform(mu - 0.1, mu + 0.1, 3), g.normal(sigma, 0.1, 3)
    assert (d.mu, d.sigma) == (mu, sigma) and np.array_equal(d.shift, m) and np.array_equal(d.scale, s)


def test_without_rng_the_global_generator_is_used(rng):
    x, gamma, beta, _ = _data(rng)
    np.random.seed(5)
    a, _ = noisy_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.random.seed(5)
    b, _ = noisy_batchnorm_forward(x, gamma, beta, {"mode": "train", "rng": None})
    np.random.seed(5)
    d = draw_noise((5,))
    assert np.array_equal(a, b)
    bn, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert np.array_equal(a, bn * d.scale + d.shift)


def test_a_refused_input_draws_nothing():
    gen = np.random.default_rng(0)
    before = gen.bit_generator.state
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        noisy_batchnorm_forward(np.ones((1, 3)), np.ones(3), np.zeros(3), {"mode": "train", "rng": gen})
    assert gen.bit_generator.state == before


# ------------------------------------------------------------------ gradients

@pytest.mark.parametrize("noise_per", ["unit", "sample"])
def test_backward_matches_finite_differences_with_a_fixed_draw(rng, noise_per):
    x, gamma, beta, dout = _data(rng, n=5, d=4)
    draw = draw_noise(x.shape if noise_per == "sample" else x.shape[1:], np.random.default_rng(2))

    def fwd(x_, g_, b_):
        return noisy_batchnorm_forward(x_, g_, b_, {"mode": "train"}, noise=draw)[0]

    _, cache = noisy_batchnorm_forward(x, gamma, beta, {"mode": "train"}, noise=draw)
    grads = noisy_batchnorm_backward(dout, cache)
    # smooth: the five-point stencil (x of spread 3)
    num = [eval_numerical_gradient_array(f, v.copy(), dout, h=1e-3, order=4) for f, v in (
        (lambda v: fwd(v, gamma, beta), x), (lambda v: fwd(x, v, beta), gamma), (lambda v: fwd(x, gamma, v), beta))]
    for name, a, n in zip(("dx", "dgamma", "dbeta"), grads, num):
        assert rel_error(a, n) < 1e-8, (name, rel_error(a, n))
    # d/da = s * dout into batch norm's backward
    _, bn_cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for a, b in zip(grads, batchnorm_backward_alt(dout * draw.scale, bn_cache)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("noise_per", ["unit", "sample"])
def test_matches_torch_batch_norm_then_the_same_noise(rng, noise_per):
    torch = pytest.importorskip("torch")
    x, gamma, beta, dout = _data(rng, n=8, d=6)
    param = {"mode": "train", "rng": np.random.default_rng(9), "noise_per": noise_per}
    out, cache = noisy_batchnorm_forward(x, gamma, beta, param)
    grads = noisy_batchnorm_backward(dout, cache)
    tx, tg, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))
    a = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5)
    t_out = a * torch.tensor(cache.noise.scale) + torch.tensor(cache.noise.shift)
    t_out.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(grads, (tx, tg, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ errors

def test_bad_settings_are_refused(rng):
    x, gamma, beta, _ = _data(rng)
    with pytest.raises(ValueError, match=r"unknown noise_per 'layer'; expected 'unit'.*'sample'"):
        noisy_batchnorm_forward(x, gamma, beta, {"mode": "train", "noise_per": "layer"})
    with pytest.raises(TypeError, match=r"bn_param\['rng'\] must be a np.random.Generator"):
        noisy_batchnorm_forward(x, gamma, beta, {"mode": "train", "rng": 3})
    bad = NoiseDraw(0.0, 1.0, np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match=r"noise.shift has shape \(4,\).*\(5,\) per unit"):
        noisy_batchnorm_forward(x, gamma, beta, {"mode": "train"}, noise=bad)
    with pytest.raises(ValueError, match="unknown bn_param keys"):
        noisy_batchnorm_forward(x, gamma, beta, {"mode": "train", "momentom": 0.9})
    with pytest.raises(ValueError, match=r"expected 2-D input x \(N, D\)"):
        noisy_batchnorm_forward(np.ones((2, 3, 1, 1)), np.ones(3), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match="unknown noise_per 'layer'"):
        FullyConnectedNet([4], input_dim=3, normalization="noisy-batchnorm", norm_param={"noise_per": "layer"})
    with pytest.raises(ValueError, match="unknown norm_param keys"):
        FullyConnectedNet([4], input_dim=3, normalization="batchnorm", norm_param={"noise_per": "unit"})
    with pytest.raises(ValueError, match="unknown normalization 'noisy-batchnorm'"):
        ThreeLayerConvNet(normalization="noisy-batchnorm")


# ------------------------------------------------------------------ in a net

N, D, C = 6, 5, 3


def _net(**kw):
    return FullyConnectedNet([7, 6], input_dim=D, num_classes=C, dtype=np.float64, weight_scale=0.5,
                             **{"normalization": "noisy-batchnorm", "rng_seed": 0, **kw})


def test_net_is_batchnorm_at_test_time_and_noisy_in_training(rng):
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    noisy, plain = _net(), _net(normalization="batchnorm")
    assert all(np.array_equal(noisy.params[k], plain.params[k]) for k in plain.params)
    assert noisy.loss(X, y)[0] != plain.loss(X, y)[0]
    # the first layer's running statistics are batch norm's: its noise comes after them (the second
    # layer's see the first layer's noise in their input)
    for k in ("running_mean1", "running_var1"):
        assert np.array_equal(noisy.state_arrays()[k], plain.state_arrays()[k])
    plain.load_state_arrays(noisy.state_arrays())
    assert np.array_equal(noisy.loss(X), plain.loss(X))       # test mode: batch norm, no noise
    first, second = noisy.loss(X, y)[0], noisy.loss(X, y)[0]
    assert first != second                                     # fresh noise at every step
    a, b = _net(), _net()
    assert [a.loss(X, y)[0] for _ in range(3)] == [b.loss(X, y)[0] for _ in range(3)]   # same rng_seed
    assert noisy.bn_params[0]["rng"] is noisy.rng


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_net_gradient_check_with_the_generator_reset(rng, reg):
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    model = _net(reg=reg, activation="sigmoid")
    state = model.rng.bit_generator.state

    def f(_):
        model.rng.bit_generator.state = state        # every evaluation sees the same draws
        return model.loss(X, y)[0]

    f(None)
    model.rng.bit_generator.state = state
    loss, grads = model.loss(X, y)
    for name, p in model.params.items():
        num = eval_numerical_gradient(f, p, verbose=False)
        if name in ("b1", "b2"):                     # before batch norm: exactly 0
            assert np.abs(grads[name]).max() < 1e-12 and np.abs(num).max() < 1e-8
            continue
        assert rel_error(grads[name], num) < 1e-6, (name, rel_error(grads[name], num))


def test_net_in_global_rng_mode_draws_from_np_random(rng):
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    np.random.seed(1)
    model = _net(rng_seed=None)
    np.random.seed(2)
    first = model.loss(X, y)[0]
    np.random.seed(2)
    assert model.loss(X, y)[0] == first
    assert model.bn_params[0]["rng"] is None


def test_torch_engine_refuses_noisy_batchnorm():
    pytest.importorskip("torch")
    from normlab.engines.pytorch import TorchModel
    with pytest.raises(ValueError, match="noisy-batchnorm runs on the numpy engine only"):
        TorchModel(_net())
