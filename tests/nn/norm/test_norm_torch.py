"""PyTorch as an independent oracle, in float64: forward, autograd backward with
a random upstream gradient, and the 'torch' running-statistics convention."""
import numpy as np
import pytest

from normlab.layers import (batchnorm_backward, batchnorm_backward_alt, batchnorm_forward, layernorm_backward,
                            layernorm_forward, spatial_batchnorm_backward, spatial_batchnorm_forward,
                            spatial_groupnorm_backward, spatial_groupnorm_forward)

torch = pytest.importorskip("torch")
F = torch.nn.functional

EPS = 1e-5
TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture
def rng():
    return np.random.default_rng(1502)


def t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def torch_grads(fn, x, gamma, beta, dout):
    """out and (dx, dgamma, dbeta) of ``fn`` via autograd with upstream ``dout``."""
    tx, tg, tb = t(x, True), t(gamma, True), t(beta, True)
    out = fn(tx, tg, tb)
    out.backward(t(dout))
    return out.detach().numpy(), (tx.grad.numpy(), tg.grad.numpy(), tb.grad.numpy())


def assert_all_close(ours, theirs):
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_alt], ids=["staged", "alt"])
def test_batchnorm_train_matches_torch(rng, backward):
    x = 5 * rng.standard_normal((16, 7)) + 12
    gamma, beta = rng.standard_normal((2, 7))
    dout = rng.standard_normal(x.shape)
    want_out, want_grads = torch_grads(
        lambda a, g, b: F.batch_norm(a, None, None, g, b, training=True, eps=EPS), x, gamma, beta, dout)
    out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out, want_out, **TOL)
    assert_all_close(backward(dout, cache), want_grads)


def test_batchnorm_eval_backward_matches_torch(rng):
    x = rng.standard_normal((6, 4))
    gamma, beta = rng.standard_normal((2, 4))
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    dout = rng.standard_normal(x.shape)
    want_out, want_grads = torch_grads(
        lambda a, g, b: F.batch_norm(a, t(rm), t(rv), g, b, training=False, eps=EPS), x, gamma, beta, dout)
    out, cache = batchnorm_forward(x, gamma, beta, {"mode": "test", "running_mean": rm, "running_var": rv})
    np.testing.assert_allclose(out, want_out, **TOL)
    assert_all_close(batchnorm_backward(dout, cache), want_grads)
    assert_all_close(batchnorm_backward_alt(dout, cache), want_grads)


def test_layernorm_matches_torch(rng):
    x = 5 * rng.standard_normal((6, 9)) + 12
    gamma, beta = rng.standard_normal((2, 9))
    dout = rng.standard_normal(x.shape)
    want_out, want_grads = torch_grads(lambda a, g, b: F.layer_norm(a, (9,), g, b, eps=EPS), x, gamma, beta, dout)
    out, cache = layernorm_forward(x, gamma, beta, {})
    np.testing.assert_allclose(out, want_out, **TOL)
    assert_all_close(layernorm_backward(dout, cache), want_grads)


@pytest.mark.parametrize("G", [1, 2, 3, 6])
def test_groupnorm_matches_torch(rng, G):
    x = 5 * rng.standard_normal((2, 6, 4, 5)) + 12
    gamma, beta = rng.standard_normal((2, 6))
    dout = rng.standard_normal(x.shape)
    want_out, want_grads = torch_grads(lambda a, g, b: F.group_norm(a, G, g, b, eps=EPS), x, gamma, beta, dout)
    out, cache = spatial_groupnorm_forward(x, gamma, beta, G, {})
    np.testing.assert_allclose(out, want_out, **TOL)
    assert_all_close(spatial_groupnorm_backward(dout, cache), want_grads)


@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (33, 4, 31, 32)], ids=["small", "multi-block"])
def test_spatial_batchnorm_matches_batchnorm2d(rng, shape):
    x = 5 * rng.standard_normal(shape) + 12
    gamma, beta = rng.standard_normal((2, 4))
    dout = rng.standard_normal(x.shape)
    bn = torch.nn.BatchNorm2d(4, eps=EPS, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(t(gamma))
        bn.bias.copy_(t(beta))
    tx = t(x, True)
    want_out = bn(tx)
    want_out.backward(t(dout))
    out, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out, want_out.detach().numpy(), **TOL)
    assert_all_close(spatial_batchnorm_backward(dout, cache),
                     (tx.grad.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy()))


@pytest.mark.parametrize("spatial", [False, True], ids=["BatchNorm1d", "BatchNorm2d"])
@pytest.mark.parametrize("momentum", [None, 0.3])
def test_torch_convention_running_stats_match_torch(rng, spatial, momentum):
    c = 4
    shape = (3, c, 2, 5) if spatial else (7, c)
    module = (torch.nn.BatchNorm2d if spatial else torch.nn.BatchNorm1d)(
        c, eps=EPS, momentum=0.1 if momentum is None else momentum, dtype=torch.float64)
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    gamma, beta = rng.standard_normal((2, c))
    with torch.no_grad():
        module.weight.copy_(t(gamma))
        module.bias.copy_(t(beta))
    bn_param = {"mode": "train", "convention": "torch"}
    if momentum is not None:
        bn_param["momentum"] = momentum
    module.train()
    for _ in range(5):
        x = 3 * rng.standard_normal(shape) + 2
        out, _ = forward(x, gamma, beta, bn_param)
        with torch.no_grad():
            want = module(t(x))
        np.testing.assert_allclose(out, want.numpy(), **TOL)
    np.testing.assert_allclose(bn_param["running_mean"], module.running_mean.numpy(), **TOL)
    np.testing.assert_allclose(bn_param["running_var"], module.running_var.numpy(), **TOL)
    bn_param["mode"] = "test"
    module.eval()
    x = 3 * rng.standard_normal(shape) + 2
    out, _ = forward(x, gamma, beta, bn_param)
    with torch.no_grad():
        want = module(t(x))
    np.testing.assert_allclose(out, want.numpy(), **TOL)


def test_torch_rejects_what_we_reject(rng):
    # Same "more than 1 value per channel" rule as PyTorch.
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(t(rng.standard_normal((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batchnorm_forward(rng.standard_normal((1, 3)), np.ones(3), np.zeros(3), {"mode": "train"})
