"""Batch renormalization (Ioffe 2017): r_max = 1, d_max = 0 is batch norm bit for bit; unclipped,
train mode equals test mode (the closed form of Algorithm 1); the clips inline; the warm-up schedule
and step counter; float64 finite differences where r and d are clipped (locally constant); PyTorch
autograd on the same construction with r and d detached; the net that uses it; bad values refused."""
import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.models import FullyConnectedNet
from normlab.nn.norm.batchnorm import batchnorm_after_bias, batchnorm_backward_closed
from normlab.nn.norm.renorm import batchrenorm_backward, batchrenorm_forward, renorm_limits

EPS = 1e-5


@pytest.fixture
def rng():
    return np.random.default_rng(1702)


def _data(rng, n=8, d=5):
    x = 3 * rng.standard_normal((n, d)) + 2
    gamma, beta, bias = rng.standard_normal((3, d))
    stats = {"running_mean": rng.standard_normal(d), "running_var": rng.random(d) + 0.5}
    return x, gamma, beta, bias, stats, rng.standard_normal((n, d))


@pytest.mark.parametrize("convention", ["course", "torch"])
def test_defaults_are_batchnorm_exactly(rng, convention):
    x, gamma, beta, bias, stats, dout = _data(rng)
    p1, p2 = {"mode": "train", "convention": convention, **stats}, {"mode": "train", "convention": convention, **stats}
    o1, c1 = batchrenorm_forward(x, gamma, beta, p1, bias=bias)
    o2, c2 = batchnorm_after_bias(x, bias, gamma, beta, p2)
    assert np.max(np.abs(o1 - o2)) <= 1e-12
    for a, b in zip(batchrenorm_backward(dout, c1), batchnorm_backward_closed(dout, c2)):
        assert np.max(np.abs(a - b)) <= 1e-12
    for key in ("running_mean", "running_var"):
        assert np.max(np.abs(p1[key] - p2[key])) <= 1e-12
    assert p1["step"] == 1


def test_unclipped_train_mode_is_the_test_mode_output(rng):
    x, gamma, beta, bias, stats, _ = _data(rng)
    out, cache = batchrenorm_forward(x, gamma, beta, {"mode": "train", "r_max": 1e6, "d_max": 1e6, **stats}, bias=bias)
    want = gamma * (x + bias - stats["running_mean"]) / np.sqrt(stats["running_var"] + EPS) + beta
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-10)
    test_out, _ = batchrenorm_forward(x, gamma, beta, {"mode": "test", **stats}, bias=bias)
    np.testing.assert_allclose(test_out, want, rtol=1e-12, atol=1e-12)


def test_clips_and_algorithm_1_inline(rng):
    x, gamma, beta, _, stats, _ = _data(rng)
    p = {"mode": "train", "r_max": 1.5, "d_max": 0.3, **stats}
    out, cache = batchrenorm_forward(x, gamma, beta, p)
    mu_b, sig_b = x.mean(0), np.sqrt(x.var(0) + EPS)
    sig = np.sqrt(stats["running_var"] + EPS)
    r = np.clip(sig_b / sig, 1 / 1.5, 1.5)
    d = np.clip((mu_b - stats["running_mean"]) / sig, -0.3, 0.3)
    np.testing.assert_allclose(cache.r, r, rtol=1e-12)
    np.testing.assert_allclose(cache.d, d, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out, gamma * ((x - mu_b) / sig_b * r + d) + beta, rtol=1e-10, atol=1e-12)
    # running statistics as batch norm's ('course': 0.9 on the old value, biased variance)
    np.testing.assert_allclose(p["running_mean"], 0.9 * stats["running_mean"] + 0.1 * mu_b, rtol=1e-12)
    np.testing.assert_allclose(p["running_var"], 0.9 * stats["running_var"] + 0.1 * x.var(0), rtol=1e-12)


def test_warmup_schedule_and_step_counter(rng):
    assert renorm_limits(3.0, 5.0, None, 0) == (3.0, 5.0)
    w = (10, 50, 30)
    assert renorm_limits(3.0, 5.0, w, 0) == (1.0, 0.0) and renorm_limits(3.0, 5.0, w, 10) == (1.0, 0.0)
    assert renorm_limits(3.0, 5.0, w, 30) == pytest.approx((2.0, 5.0))
    assert renorm_limits(3.0, 5.0, w, 1000) == (3.0, 5.0)
    x, gamma, beta, _, stats, _ = _data(rng)
    p = {"mode": "train", "r_max": 3.0, "d_max": 5.0, "warmup": [2, 6, 4], **stats}
    for step in range(4):
        ref = {"mode": "train", **{k: p[k] for k in ("running_mean", "running_var")}}
        out, _ = batchrenorm_forward(x, gamma, beta, p)
        want, _ = batchnorm_after_bias(x, None, gamma, beta, ref)
        assert np.array_equal(out, want) == (step <= 2)     # limits 1, 0 up to step 2 (0-based)
    assert p["step"] == 4
    batchrenorm_forward(x, gamma, beta, {**p, "mode": "test"})
    assert p["step"] == 4


def test_gradients_match_finite_differences_where_r_and_d_are_clipped(rng):
    x, gamma, beta, bias, _, dout = _data(rng, n=6, d=4)
    # running statistics far from the batch's: r = 1 / r_max and d = +-d_max, constant near x
    stats = {"running_mean": np.full(4, -40.0), "running_var": np.full(4, 900.0)}
    base = {"mode": "train", "r_max": 2.0, "d_max": 0.5, **stats}
    fwd = lambda x_, g_, b_: batchrenorm_forward(x_, g_, b_, dict(base), bias=bias)[0]
    _, cache = batchrenorm_forward(x, gamma, beta, dict(base), bias=bias)
    assert np.allclose(cache.r, 0.5) and np.allclose(np.abs(cache.d), 0.5)
    dx, dgamma, dbeta = batchrenorm_backward(dout, cache)
    assert rel_error(dx, eval_numerical_gradient_array(lambda v: fwd(v, gamma, beta), x.copy(), dout)) < 1e-7
    assert rel_error(dgamma, eval_numerical_gradient_array(lambda v: fwd(x, v, beta), gamma.copy(), dout)) < 1e-7
    assert rel_error(dbeta, eval_numerical_gradient_array(lambda v: fwd(x, gamma, v), beta.copy(), dout)) < 1e-7


def test_matches_torch_autograd_with_r_and_d_detached(rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta, _, stats, dout = _data(rng)
    out, cache = batchrenorm_forward(x, gamma, beta, {"mode": "train", "r_max": 1.3, "d_max": 0.2, **stats})
    grads = batchrenorm_backward(dout, cache)
    tx, tg, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))
    mu, var = tx.mean(0), tx.var(0, unbiased=False)
    sig_b = torch.sqrt(var + EPS)
    sig = torch.sqrt(torch.tensor(stats["running_var"]) + EPS)
    r = (sig_b / sig).clamp(1 / 1.3, 1.3).detach()
    d = ((mu - torch.tensor(stats["running_mean"])) / sig).clamp(-0.2, 0.2).detach()
    t_out = tg * ((tx - mu) / sig_b * r + d) + tb
    t_out.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(grads, (tx, tg, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_net_trains_with_it_and_counts_its_steps(rng):
    X, y = rng.standard_normal((8, 6)), rng.integers(3, size=8)
    model = FullyConnectedNet([7, 7], input_dim=6, num_classes=3, normalization="batchrenorm", dtype=np.float64,
                              norm_param={"r_max": 3, "d_max": 5, "warmup": [1, 4, 3]}, rng_seed=0)
    for _ in range(3):
        loss, grads = model.loss(X, y)
    assert np.isfinite(loss) and set(grads) == set(model.params)
    assert [p["step"] for p in model.bn_params] == [3, 3]
    model.loss(X)
    assert [p["step"] for p in model.bn_params] == [3, 3]


@pytest.mark.parametrize("param, message", [
    ({"r_max": 0.5}, r"r_max must be a finite number >= 1, got 0.5"),
    ({"d_max": -1}, r"d_max must be a finite number >= 0, got -1"),
    ({"warmup": [5, 3, 8]}, r"warmup must be \(start, r_end, d_end\).*got \[5, 3, 8\]"),
    ({"step": -2}, r"step'\] must be an integer >= 0.*got -2"),
    ({"momentom": 0.9}, "unknown bn_param keys"),
])
def test_bad_values_are_refused(rng, param, message):
    x, gamma, beta, *_ = _data(rng)
    with pytest.raises(ValueError, match=message):
        batchrenorm_forward(x, gamma, beta, {"mode": "train", **param})


def test_the_net_refuses_bad_settings_at_construction():
    with pytest.raises(ValueError, match="r_max must be"):
        FullyConnectedNet([4], input_dim=3, normalization="batchrenorm", norm_param={"r_max": "big"})
    with pytest.raises(ValueError, match="unknown norm_param keys"):
        FullyConnectedNet([4], input_dim=3, normalization="batchrenorm", norm_param={"ghost_size": 2})
