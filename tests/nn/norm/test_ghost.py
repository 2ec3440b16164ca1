"""Ghost batch norm (Hoffer et al. 2017): ghost_size = N is batch norm exactly; each ghost batch is
batch norm of its rows (closed form inline); the running statistics from the ghost batches' means;
float64 finite differences; PyTorch autograd on the chunked construction; the net; bad sizes refused."""
import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.models import FullyConnectedNet
from normlab.nn.norm.batchnorm import batchnorm_after_bias, batchnorm_backward_closed
from normlab.nn.norm.ghost import ghost_batchnorm_backward, ghost_batchnorm_forward

EPS = 1e-5


@pytest.fixture
def rng():
    return np.random.default_rng(1705)


def _data(rng, n=8, d=5):
    x = 3 * rng.standard_normal((n, d)) + 2
    gamma, beta, bias = rng.standard_normal((3, d))
    return x, gamma, beta, bias, rng.standard_normal((n, d))


@pytest.mark.parametrize("convention", ["course", "torch"])
def test_ghost_size_n_is_batchnorm_exactly(rng, convention):
    x, gamma, beta, bias, dout = _data(rng)
    p1, p2 = {"mode": "train", "ghost_size": 8, "convention": convention}, {"mode": "train", "convention": convention}
    o1, c1 = ghost_batchnorm_forward(x, gamma, beta, p1, bias=bias)
    o2, c2 = batchnorm_after_bias(x, bias, gamma, beta, p2)
    assert np.array_equal(o1, o2)
    for a, b in zip(ghost_batchnorm_backward(dout, c1), batchnorm_backward_closed(dout, c2)):
        assert np.array_equal(a, b)
    for key in ("running_mean", "running_var"):
        assert np.array_equal(p1[key], p2[key])


def test_each_ghost_batch_is_normalized_alone_and_feeds_the_running_stats(rng):
    x, gamma, beta, bias, _ = _data(rng, n=12)
    p = {"mode": "train", "ghost_size": 4, "convention": "torch"}
    out, _ = ghost_batchnorm_forward(x, gamma, beta, p, bias=bias)
    chunks = x.reshape(3, 4, 5)
    want = gamma * (chunks - chunks.mean(1, keepdims=True)) / np.sqrt(chunks.var(1, keepdims=True) + EPS) + beta
    np.testing.assert_allclose(out, want.reshape(12, 5), rtol=1e-10, atol=1e-12)
    # 'torch': 0.1 on the new value; mean of the ghost means (+ bias), mean of the unbiased ghost variances
    np.testing.assert_allclose(p["running_mean"], 0.1 * (chunks.mean(1).mean(0) + bias), rtol=1e-12)
    np.testing.assert_allclose(p["running_var"], 0.9 + 0.1 * chunks.var(1, ddof=1).mean(0), rtol=1e-12)
    test_out, _ = ghost_batchnorm_forward(x, gamma, beta, {**p, "mode": "test"}, bias=bias)
    want_test, _ = batchnorm_after_bias(x, bias, gamma, beta, {"mode": "test", "convention": "torch",
                                                              "running_mean": p["running_mean"],
                                                              "running_var": p["running_var"]})
    assert np.array_equal(test_out, want_test)


def test_gradients_match_finite_differences(rng):
    x, gamma, beta, bias, dout = _data(rng, n=9, d=4)
    fwd = lambda x_, g_, b_: ghost_batchnorm_forward(x_, g_, b_, {"mode": "train", "ghost_size": 3}, bias=bias)[0]
    _, cache = ghost_batchnorm_forward(x, gamma, beta, {"mode": "train", "ghost_size": 3}, bias=bias)
    dx, dgamma, dbeta = ghost_batchnorm_backward(dout, cache)
    assert rel_error(dx, eval_numerical_gradient_array(lambda v: fwd(v, gamma, beta), x.copy(), dout)) < 1e-7
    assert rel_error(dgamma, eval_numerical_gradient_array(lambda v: fwd(x, v, beta), gamma.copy(), dout)) < 1e-7
    assert rel_error(dbeta, eval_numerical_gradient_array(lambda v: fwd(x, gamma, v), beta.copy(), dout)) < 1e-7


def test_matches_torch_batch_norm_per_chunk(rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta, _, dout = _data(rng, n=12)
    out, cache = ghost_batchnorm_forward(x, gamma, beta, {"mode": "train", "ghost_size": 4})
    grads = ghost_batchnorm_backward(dout, cache)
    tx, tg, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))
    t_out = torch.cat([torch.nn.functional.batch_norm(c, None, None, tg, tb, training=True, eps=EPS)
                       for c in tx.split(4)])
    t_out.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(grads, (tx, tg, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_net_trains_with_it(rng):
    X, y = rng.standard_normal((8, 6)), rng.integers(3, size=8)
    model = FullyConnectedNet([7, 7], input_dim=6, num_classes=3, normalization="ghost-batchnorm",
                              norm_param={"ghost_size": 4}, dtype=np.float64, rng_seed=0)
    loss, grads = model.loss(X, y)
    assert np.isfinite(loss) and set(grads) == set(model.params)
    assert model.loss(X).shape == (8, 3)


def test_bad_ghost_sizes_are_refused(rng):
    x, gamma, beta, *_ = _data(rng)
    with pytest.raises(ValueError, match=r"ghost_size=3 does not divide the batch of N=8"):
        ghost_batchnorm_forward(x, gamma, beta, {"mode": "train", "ghost_size": 3})
    with pytest.raises(ValueError, match=r"ghost_size must be an integer >= 2.*got 1"):
        ghost_batchnorm_forward(x, gamma, beta, {"mode": "train", "ghost_size": 1})
    with pytest.raises(ValueError, match="needs 'ghost_size'"):
        ghost_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    with pytest.raises(ValueError, match=r"ghost_size must be an integer >= 2.*got None"):
        FullyConnectedNet([4], input_dim=3, normalization="ghost-batchnorm")
