"""ResidualMLP: the variants' initialization, float64 gradient checks of every parameter, the running
statistics, the protocol, and a torch autograd cross-check of loss and gradients."""
from __future__ import annotations

import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient, rel_error
from normlab.nets.residual import VARIANTS, ResidualMLP

D, C, N = 7, 4, 6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _perturbed(variant, rng, depth=3, width=5):
    """A float64 net whose zero-initialized parameters (SkipInit's alpha, Fixup's W2) are moved off zero,
    so that every gradient is generic (at alpha = 0 the branch's weights get no gradient at all)."""
    m = ResidualMLP(D, C, depth=depth, width=width, variant=variant, dtype=np.float64, rng_seed=1)
    for k in m.params:
        m.params[k] = m.params[k] + 0.3 * rng.standard_normal(m.params[k].shape)
    return m


def test_parameters_per_variant():
    names = {v: set(ResidualMLP(D, C, depth=2, width=5, variant=v, rng_seed=0).params) for v in VARIANTS}
    common = {"W0", "b0", "Wout", "bout", "W1_1", "W1_2", "W2_1", "W2_2"}
    assert names["plain"] == common | {f"b{i}_{j}" for i in (1, 2) for j in (1, 2)}
    assert names["skipinit"] == names["plain"] | {"alpha1", "alpha2"}
    assert names["batchnorm"] == common | {f"{p}{i}_{j}" for p in ("gamma", "beta") for i in (1, 2) for j in (1, 2)}
    assert names["fixup"] == common | {f"bias{i}_{j}" for i in (1, 2) for j in (1, 2, 3, 4)} | {"scale1", "scale2"}


def test_initialization_rules():
    depth, width = 16, 200
    plain = ResidualMLP(50, C, depth=depth, width=width, variant="plain", dtype=np.float64, rng_seed=0)
    assert np.std(plain.params["W1_1"]) == pytest.approx(np.sqrt(2 / width), rel=0.02)   # He
    assert np.std(plain.params["W0"]) == pytest.approx(np.sqrt(2 / 50), rel=0.05)
    skip = ResidualMLP(50, C, depth=depth, width=width, variant="skipinit", rng_seed=0)
    assert all(skip.params[f"alpha{i}"].tolist() == [0.0] for i in range(1, depth + 1))
    fix = ResidualMLP(50, C, depth=depth, width=width, variant="fixup", dtype=np.float64, rng_seed=0)
    assert np.std(fix.params["W1_1"]) == pytest.approx(np.sqrt(2 / width) * depth ** -0.5, rel=0.02)
    assert not fix.params["W1_2"].any() and not fix.params["Wout"].any()
    assert fix.params["scale1"].tolist() == [1.0] and fix.params["bias1_3"].tolist() == [0.0]
    fixed = ResidualMLP(50, C, depth=2, width=width, variant="plain", weight_scale=0.01, dtype=np.float64,
                        rng_seed=0)
    assert np.std(fixed.params["W1_1"]) == pytest.approx(0.01, rel=0.02)


def test_skipinit_and_fixup_start_as_the_identity(rng):
    X = rng.standard_normal((N, D))
    for v in ("skipinit", "fixup"):
        xs = ResidualMLP(D, C, depth=4, width=5, variant=v, dtype=np.float64, rng_seed=3).stream(X)
        assert len(xs) == 5 and all(np.array_equal(x, xs[0]) for x in xs)


def test_stream_variance_batchnorm_linear_plain_exponential(rng):
    X = rng.standard_normal((512, 20))
    var = lambda v: [x.var(axis=0).mean() for x in
                     ResidualMLP(20, C, depth=24, width=64, variant=v, dtype=np.float64, rng_seed=0).stream(X, "train")]
    bn, plain = var("batchnorm"), var("plain")
    assert bn[24] - bn[0] == pytest.approx(24, rel=0.2)                # each BN'd branch adds ~1
    assert np.log2(plain[24] / plain[12]) > 12                         # at least doubling per block


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradient_check_every_parameter(variant, rng):
    m = _perturbed(variant, rng)
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    m.reg = 0.05
    _, grads = m.loss(X, y)
    assert set(grads) == set(m.params)
    for k in m.params:
        num = eval_numerical_gradient(lambda _: m.loss(X, y)[0], m.params[k], verbose=False)
        assert grads[k].shape == m.params[k].shape
        assert rel_error(grads[k], num) < 1e-6, k


def test_running_statistics_and_state_arrays(rng):
    m = ResidualMLP(D, C, depth=2, width=5, variant="batchnorm", dtype=np.float64, rng_seed=0)
    X = rng.standard_normal((N, D))
    assert m.state_arrays() == {}
    m.scores(X, "train")
    state = m.state_arrays()
    assert sorted(state) == sorted(f"{k}{j}" for k in ("running_mean", "running_var") for j in range(1, 5))
    h = np.maximum(X @ m.params["W0"] + m.params["b0"], 0) @ m.params["W1_1"]
    assert np.allclose(state["running_mean1"], 0.1 * h.mean(axis=0))
    assert np.allclose(state["running_var1"], 0.9 + 0.1 * h.var(axis=0))
    before = m.loss(X)
    m.stream(X, "train")                                   # probing leaves the statistics alone
    assert np.array_equal(m.loss(X), before)
    m.load_state_arrays({})
    assert m.state_arrays() == {}


def test_validation():
    with pytest.raises(ValueError, match="'groupnorm'"):
        ResidualMLP(D, C, variant="groupnorm")
    with pytest.raises(ValueError, match="depth=0"):
        ResidualMLP(D, C, depth=0)
    with pytest.raises(ValueError, match="weight_scale"):
        ResidualMLP(D, C, weight_scale=-1.0)
    with pytest.raises(ValueError, match="'eval'"):
        ResidualMLP(D, C, depth=1, width=3, rng_seed=0).scores(np.zeros((2, D)), "eval")


def test_protocol_and_float32(rng):
    from normlab.nets.protocol import Model
    m = ResidualMLP(D, C, depth=2, width=5, variant="fixup", rng_seed=0)
    assert isinstance(m, Model)
    loss, grads = m.loss(rng.standard_normal((N, D)), rng.integers(C, size=N))
    assert all(g.dtype == np.float32 for g in grads.values()) and np.isfinite(loss)


def _torch_loss(torch, m, X, y):
    """The same net in torch autograd, from m.params (float64); BN in train mode."""
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in m.params.items()}
    bn = lambda h, g, b: g * (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5) + b
    x = torch.relu(torch.tensor(X) @ P["W0"] + P["b0"])
    for i in range(1, m.depth + 1):
        if m.variant == "fixup":
            h = torch.relu((x + P[f"bias{i}_1"]) @ P[f"W{i}_1"] + P[f"bias{i}_2"])
            x = x + ((h + P[f"bias{i}_3"]) @ P[f"W{i}_2"]) * P[f"scale{i}"] + P[f"bias{i}_4"]
        elif m.variant == "batchnorm":
            h = torch.relu(bn(x @ P[f"W{i}_1"], P[f"gamma{i}_1"], P[f"beta{i}_1"]))
            x = x + bn(h @ P[f"W{i}_2"], P[f"gamma{i}_2"], P[f"beta{i}_2"])
        else:
            f = torch.relu(x @ P[f"W{i}_1"] + P[f"b{i}_1"]) @ P[f"W{i}_2"] + P[f"b{i}_2"]
            x = x + (f * P[f"alpha{i}"] if m.variant == "skipinit" else f)
    loss = torch.nn.functional.cross_entropy(x @ P["Wout"] + P["bout"], torch.tensor(y))
    loss.backward()
    return float(loss.detach()), {k: p.grad.numpy() for k, p in P.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torch_autograd(variant, rng):
    torch = pytest.importorskip("torch")
    m = _perturbed(variant, rng, depth=4, width=6)
    X, y = rng.standard_normal((8, D)), rng.integers(C, size=8)
    loss, grads = m.loss(X, y)
    t_loss, t_grads = _torch_loss(torch, m, X, y)
    assert loss == pytest.approx(t_loss, rel=1e-10)
    for k in m.params:
        assert np.allclose(grads[k], t_grads[k], rtol=1e-8, atol=1e-10), k
