"""The nets' L2 penalty and the first layer's backward: the loss at ``reg`` is the loss at 0 plus
``0.5 * reg * sum(W**2)`` over the weights, to the last bit, the grads ``reg * W`` more, and reg = 0
costs nothing beyond the unregularized loss (no pass over the weights, no dx of the input)."""
import numpy as np
import pytest

from normlab.models import FullyConnectedNet, ThreeLayerConvNet
from normlab.nets.residual import ResidualMLP
from normlab.nn import backend


def _nets(dtype, reg):
    return {
        "fc": (FullyConnectedNet([7, 5], input_dim=12, num_classes=4, normalization="batchnorm", reg=reg,
                                 weight_scale=0.3, dtype=dtype, rng_seed=1), (6, 12)),
        "fc-dropout-nobias": (FullyConnectedNet([6], input_dim=12, num_classes=4, normalization="layernorm",
                                                dropout_keep_ratio=0.7, seed=3, bias_before_norm=False, reg=reg,
                                                weight_scale=0.3, dtype=dtype, rng_seed=1), (6, 12)),
        "cnn": (ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=5, num_classes=4,
                                  weight_scale=0.3, reg=reg, dtype=dtype, normalization="batchnorm", rng_seed=1),
                (6, 2, 6, 6)),
        "residual": (ResidualMLP(12, 4, depth=2, width=5, variant="plain", dtype=dtype, rng_seed=1, reg=reg), (6, 12)),
    }


@pytest.mark.parametrize("backend_name", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["fc", "fc-dropout-nobias", "cnn", "residual"])
def test_l2_adds_exactly_the_penalty(kind, dtype, backend_name):
    reg = 0.37
    rng = np.random.default_rng(5)
    with backend.using(backend_name):
        plain, shape = _nets(dtype, 0.0)[kind]
        regular, _ = _nets(dtype, reg)[kind]
        X, y = rng.standard_normal(shape), rng.integers(4, size=shape[0])
        loss0, grads0 = plain.loss(X, y)
        loss, grads = regular.loss(X, y)
    expected = loss0
    weights = [k for k in plain.params if k.startswith("W")]
    for k in weights:   # the order and the float64 sums of the code before the change
        expected += 0.5 * reg * float(np.sum(plain.params[k].astype(np.float64) ** 2))
    assert loss == expected
    assert grads.keys() == grads0.keys() == plain.params.keys()
    for k, g in grads.items():
        want = grads0[k] + reg * plain.params[k] if k in weights else grads0[k]
        assert g.dtype == want.dtype and np.array_equal(g, want), k


@pytest.mark.parametrize("kind", ["fc", "fc-dropout-nobias", "cnn", "residual"])
def test_reg_zero_never_reads_the_weights_squared(kind, monkeypatch):
    """reg = 0 skips the penalty: a poisoned sum_squares is never called, the result is the plain loss."""
    import normlab.nets.common as common

    def poisoned(w):
        raise AssertionError("sum_squares called at reg = 0")
    monkeypatch.setattr(common, "sum_squares", poisoned)
    net, shape = _nets(np.float64, 0.0)[kind]
    rng = np.random.default_rng(2)
    loss, grads = net.loss(rng.standard_normal(shape), rng.integers(4, size=shape[0]))
    assert np.isfinite(loss) and grads.keys() == net.params.keys()


def test_non_finite_weight_at_reg_zero_still_fails_in_the_forward_pass():
    net = FullyConnectedNet([5], input_dim=4, num_classes=3, dtype=np.float64, rng_seed=0)
    net.params["W2"][1, 2] = np.nan
    X, y = np.ones((3, 4)), np.array([0, 1, 2])
    with pytest.raises(ValueError, match="NaN or inf"):
        net.loss(X, y)


def test_first_layer_gradients_without_input_dx():
    """The first affine layer's dW, db are what affine_backward gives (only its unused dx is skipped)."""
    from normlab.nn.basic import affine_backward, affine_forward, affine_param_backward
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 2, 3)), rng.standard_normal((6, 4)), rng.standard_normal(4)
    _, cache = affine_forward(x, w, b)
    dout = rng.standard_normal((5, 4))
    _, dw, db = affine_backward(dout, cache)
    dw2, db2 = affine_param_backward(dout, cache)
    assert np.array_equal(dw, dw2) and np.array_equal(db, db2)
