"""DeepLinearNet and linear_regression_task: the closed form, float64 gradient checks, PyTorch
autograd in float64, batch norm's invariances, the probes on the DLN, input validation."""
import json

import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient, rel_error
from normlab.lab.probes import internal_covariate_shift, landscape
from normlab.nets.linear import DeepLinearNet, linear_regression_task


@pytest.fixture
def task():
    X, Y, A = linear_regression_task(3, n=16, dim=5)
    return X, Y


def _product(model):
    P = np.eye(model.width)
    for i in range(1, model.depth + 1):
        P = P @ model.params[f"W{i}"]
    return P


# ------------------------------------------------------------------ the task and the net


def test_task_is_seeded_gaussian_regression():
    X, Y, A = linear_regression_task(7, n=50, dim=4)
    assert X.shape == Y.shape == (50, 4) and A.shape == (4, 4)
    assert X.dtype == Y.dtype == A.dtype == np.float64
    np.testing.assert_array_equal(Y, X @ A.T)
    again = linear_regression_task(7, n=50, dim=4)
    for a, b in zip((X, Y, A), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(A, linear_regression_task(8, n=50, dim=4)[2])
    # the paper's defaults: 1000 examples of dimension 10
    assert linear_regression_task(0)[0].shape == (1000, 10)


def test_defaults_are_the_papers_dln():
    m = DeepLinearNet(rng_seed=0)
    assert m.depth == 25 and m.width == 10 and m.normalization is None
    assert sorted(m.params) == sorted(f"W{i}" for i in range(1, 26))
    W = np.stack([m.params[f"W{i}"] for i in range(1, 26)])
    assert W.shape == (25, 10, 10) and W.dtype == np.float64
    assert m.weight_scale == 1 / np.sqrt(10)            # Glorot: sqrt(2 / (10 + 10))
    assert abs(W.std() - 1 / np.sqrt(10)) < 0.02         # 2500 draws


def test_batchnorm_params_after_every_layer_but_the_last():
    m = DeepLinearNet(depth=4, width=3, normalization="batchnorm", rng_seed=0)
    assert sorted(m.params) == sorted(["W1", "W2", "W3", "W4", "gamma1", "gamma2", "gamma3",
                                       "beta1", "beta2", "beta3"])
    np.testing.assert_array_equal(m.params["gamma2"], np.ones(3))
    np.testing.assert_array_equal(m.params["beta3"], np.zeros(3))
    assert len(m.bn_params) == 3


def test_same_seed_same_net():
    a, b = DeepLinearNet(depth=3, width=4, rng_seed=5), DeepLinearNet(depth=3, width=4, rng_seed=5)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_loss_and_predictions_closed_form(task):
    X, Y = task
    m = DeepLinearNet(depth=6, width=5, rng_seed=1)
    P = _product(m)
    np.testing.assert_allclose(m.loss(X), X @ P, rtol=1e-12, atol=1e-14)
    loss, grads = m.loss(X, Y)
    assert loss == pytest.approx(0.5 / len(X) * np.sum((X @ P - Y) ** 2), rel=1e-12)
    # depth 1: plain least squares, dL/dW = X^T (XW - Y) / N
    m1 = DeepLinearNet(depth=1, width=5, rng_seed=1)
    np.testing.assert_allclose(m1.loss(X, Y)[1]["W1"], X.T @ (X @ m1.params["W1"] - Y) / len(X), rtol=1e-12)


def test_float32(task):
    X, Y = task
    m = DeepLinearNet(depth=4, width=5, normalization="batchnorm", dtype=np.float32, rng_seed=0)
    loss, grads = m.loss(X, Y)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert m.loss(X).dtype == np.float32


# ------------------------------------------------------------------ gradients


def _structurally_zero(model):
    """beta_i feeding a linear layer followed by batch norm (i < L - 1): BN's centering removes any
    per-unit shift, so dL/dbeta_i is 0 (rounding only) and finite differences read noise."""
    if model.normalization != "batchnorm":
        return set()
    return {f"beta{i}" for i in range(1, model.depth - 1)}


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_check_depth_4(task, normalization, seed):
    # Measured (h = 1e-5, this data, seeds 0-2): rel_error <= 2e-8 on every other parameter.
    X, Y = task
    m = DeepLinearNet(depth=4, width=5, normalization=normalization, rng_seed=seed)
    if normalization:
        for i in range(1, 4):   # away from gamma = 1, beta = 0, so their gradients are generic
            m.params[f"gamma{i}"] = 1 + 0.3 * np.random.default_rng(i).standard_normal(5)
            m.params[f"beta{i}"] = 0.3 * np.random.default_rng(10 + i).standard_normal(5)
    loss, grads = m.loss(X, Y)
    assert set(grads) == set(m.params)
    zero = _structurally_zero(m)
    for name, p in m.params.items():
        num = eval_numerical_gradient(lambda _: m.loss(X, Y)[0], p, verbose=False)
        assert grads[name].shape == p.shape
        if name in zero:
            assert np.abs(grads[name]).max() < 1e-12 and np.abs(num).max() < 1e-9, name
            continue
        assert rel_error(grads[name], num) < 1e-6, (name, rel_error(grads[name], num))


def test_batchnorm_makes_each_weight_column_scale_invariant(task):
    # BN(a * c) = BN(a) for a per-unit c > 0 (up to eps, here 1e-13), so dL/dW_i is orthogonal
    # to each column of W_i for every layer followed by batch norm (i < L), and not for the last.
    X, Y = task
    m = DeepLinearNet(depth=5, width=5, normalization="batchnorm", rng_seed=2, norm_param={"eps": 1e-13})
    grads = m.loss(X, Y)[1]
    for i in range(1, 5):
        col = np.sum(m.params[f"W{i}"] * grads[f"W{i}"], axis=0)
        assert np.abs(col).max() < 1e-10 * np.abs(grads[f"W{i}"]).max(), i
    assert np.abs(np.sum(m.params["W5"] * grads["W5"], axis=0)).max() > 1e-3


def test_test_mode_uses_running_statistics(task):
    X, Y = task
    # momentum 0 ('course': weight of the old value): the running statistics become the batch's
    m = DeepLinearNet(depth=4, width=5, normalization="batchnorm", rng_seed=0, norm_param={"momentum": 0.0})
    train = m.scores(X, "train")
    np.testing.assert_allclose(m.loss(X), train, rtol=1e-6, atol=1e-8)   # eps sits in both
    fresh = DeepLinearNet(depth=4, width=5, normalization="batchnorm", rng_seed=0)
    assert set(m.state_arrays()) == {f"running_{s}{i}" for s in ("mean", "var") for i in (1, 2, 3)}
    fresh.load_state_arrays(m.state_arrays())
    np.testing.assert_array_equal(fresh.loss(X), m.loss(X))


# ------------------------------------------------------------------ PyTorch, float64


def _torch_dln(torch, model, X, Y):
    """The same net in torch autograd: matmuls and F.batch_norm(training=True)."""
    F = torch.nn.functional
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.params.items()}
    h = torch.tensor(X, dtype=torch.float64)
    stats = {}
    for i in range(1, model.depth + 1):
        h = h @ leaves[f"W{i}"]
        if model.normalization and i < model.depth:
            rm, rv = torch.zeros(model.width, dtype=torch.float64), torch.ones(model.width, dtype=torch.float64)
            h = F.batch_norm(h, rm, rv, weight=leaves[f"gamma{i}"], bias=leaves[f"beta{i}"],
                             training=True, momentum=0.1, eps=1e-5)
            stats[f"running_mean{i}"], stats[f"running_var{i}"] = rm, rv
    loss = 0.5 / len(X) * ((h - torch.tensor(Y, dtype=torch.float64)) ** 2).sum()
    names = list(leaves)
    grads = torch.autograd.grad(loss, [leaves[k] for k in names])
    return float(loss.detach()), {k: g.numpy() for k, g in zip(names, grads)}, {k: v.numpy() for k, v in stats.items()}


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
@pytest.mark.parametrize("depth", [4, 25])
def test_matches_torch_autograd(normalization, depth):
    torch = pytest.importorskip("torch")
    X, Y, _ = linear_regression_task(0, n=64, dim=10)
    m = DeepLinearNet(depth=depth, normalization=normalization, rng_seed=4, norm_param=(
        {"convention": "torch"} if normalization else None))
    loss, grads = m.loss(X, Y)
    t_loss, t_grads, t_stats = _torch_dln(torch, m, X, Y)
    assert abs(loss - t_loss) <= 1e-10 * abs(t_loss)
    scale = max(np.abs(g).max() for g in t_grads.values())
    for k in m.params:
        # relative to the parameter's largest entry, or to the net's for the structurally zero betas
        ref = np.abs(t_grads[k]).max() if k not in _structurally_zero(m) else scale
        assert np.abs(grads[k] - t_grads[k]).max() <= 1e-10 * ref, k
    state = m.state_arrays()
    assert set(state) == set(t_stats)
    for k, v in t_stats.items():
        np.testing.assert_allclose(state[k], v, rtol=1e-10, atol=1e-12, err_msg=k)


# ------------------------------------------------------------------ probes on the DLN


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_probes_run_on_the_dln(normalization):
    X, Y, _ = linear_regression_task(1, n=100, dim=10)
    m = DeepLinearNet(depth=25, normalization=normalization, rng_seed=0)
    m.loss(X, Y)                         # running statistics exist, so restoring them is tested
    before = {k: v.copy() for k, v in m.params.items()}
    state = m.state_arrays()
    ics = internal_covariate_shift(m, X, Y, 1e-3, range(1, 26))
    assert ics["layers"] == list(range(1, 26))
    assert ics["l2"][0] == 0.0 and ics["cos"][0] == 1.0
    assert all(v is not None and v >= 0 for v in ics["l2"])
    assert all(-1 - 1e-12 <= c <= 1 + 1e-12 for c in ics["cos"])
    land = landscape(m, X, Y, 1e-3, multipliers=(0.01, 1, 30))
    assert len(land["losses"]) == 3 and land["loss_range"] >= 0
    json.dumps([ics, land], allow_nan=False)
    for k, v in before.items():
        np.testing.assert_array_equal(m.params[k], v)
    after = m.state_arrays()
    assert set(after) == set(state)
    for k in state:
        np.testing.assert_array_equal(after[k], state[k])


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("kwargs, match", [
    ({"normalization": "layernorm"}, "unknown normalization"),
    ({"depth": 0}, "positive integers"),
    ({"width": 2.5}, "positive integers"),
    ({"weight_scale": -1.0}, "weight_scale"),
    ({"normalization": "batchnorm", "norm_param": {"groups": 2}}, "unknown norm_param"),
])
def test_constructor_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepLinearNet(**kwargs)


def test_rejects_bad_inputs(task):
    X, Y = task
    m = DeepLinearNet(depth=2, width=5, rng_seed=0)
    with pytest.raises(ValueError, match=r"expects \(N, 5\)"):
        m.loss(X[:, :4], Y)
    with pytest.raises(ValueError, match="2-D"):
        m.loss(X[0], Y)
    with pytest.raises(ValueError, match="targets Y have shape"):
        m.loss(X, Y[:, :3])
    with pytest.raises(ValueError, match="unknown mode"):
        m.scores(X, "eval")
    with pytest.raises(TypeError, match="dtype"):
        DeepLinearNet(dtype=np.int32)
