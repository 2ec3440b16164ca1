"""The UCLA ECE C147/C247 "nndl" notebook cells (HW4 batch norm, dropout,
optimization; HW5 CNN layers, CNN batch norm, CNN), through ``normlab.nndl``.

The nndl notebooks do not seed np.random; where a stored output is
deterministic anyway (fixed inputs, or the cell after the dropout backward
check, whose ``seed=123`` reseeds the global generator) the test asserts the
course's printed number; elsewhere it seeds and asserts the bound the cell
states. The numbers are facts about the course; the code is ours.
"""
import numpy as np
import pytest

from normlab.nndl.cnn import ThreeLayerConvNet
from normlab.nndl.conv_layer_utils import conv_relu_pool_backward, conv_relu_pool_forward
from normlab.nndl.conv_layers import *  # noqa: F401,F403
from normlab.nndl.fc_net import *  # noqa: F401,F403
from normlab.nndl.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from normlab.nndl.optim import adam, rmsprop, sgd_momentum, sgd_nesterov_momentum

import _course_cells as nums

N_, D_, H1_, H2_, C_ = 2, 15, 20, 30, 10


def _net_errors(model, X, y, h=1e-5):
    loss, grads = model.loss(X, y)
    errors = {}
    for name in sorted(grads):
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=h)
        errors[name] = rel_error(num, grads[name])
    return loss, errors


# ------------------------------------------------------------------ HW4 Dropout.ipynb

def test_dropout_forward_cell_drops_with_probability_p():
    """p is the DROP probability: about p of the units are zeroed and the train-time
    mean equals the input mean (inverted dropout). The stored numbers (0.298436,
    0.599168, 0.750176) come from an unseeded generator; the mask rule is exact."""
    np.random.seed(231)
    x = np.random.randn(500, 500) + 10
    for p in (0.3, 0.6, 0.75):
        state = np.random.get_state()
        out, _ = dropout_forward(x, {"mode": "train", "p": p})
        out_test, _ = dropout_forward(x, {"mode": "test", "p": p})
        np.random.set_state(state)
        mask = (np.random.rand(*x.shape) < (1 - p)) / (1 - p)      # the mask nndl's stored outputs need
        np.testing.assert_array_equal(out, x * mask)
        assert (out == 0).mean() == pytest.approx(p, abs=0.005)
        assert out.mean() == pytest.approx(x.mean(), abs=0.05)
        np.testing.assert_array_equal(out_test, x)


def test_dropout_backward_then_net_check_cells():
    """The backward cell reseeds the global generator (dropout_param's seed 123); the
    next cell's X, y and weights continue from there, so its stored losses and
    relative errors are the course's exactly."""
    x = np.random.randn(10, 10) + 10
    dout = np.random.randn(*x.shape)
    dropout_param = {"mode": "train", "p": 0.8, "seed": 123}
    _, cache = dropout_forward(x, dropout_param)
    dx = dropout_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda xx: dropout_forward(xx, dropout_param)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-10              # the course prints 1.8929e-11
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    expected = {0: "2.3051948273987857", 0.25: "2.29898614757146", 0.5: "2.302437587710995"}
    for dropout, loss_repr in expected.items():
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=5e-2, dtype=np.float64,
                                  dropout=dropout, seed=123)
        loss, errors = _net_errors(model, X, y)
        assert repr(loss) == loss_repr
        if dropout == 0:       # the stored relative errors, to the printed digits
            printed = {"W1": 2.5272575344376073e-07, "W2": 1.5034484929313676e-05, "W3": 2.753446833630168e-07,
                       "b1": 2.936957476400148e-06, "b2": 5.051339805546953e-08, "b3": 1.1740467838205477e-10}
            assert errors == pytest.approx(printed, rel=1e-9)
        else:                  # "Our W1 gradient relative error is on the order of 1e-6"
            assert max(errors.values()) < 1e-5, errors


def test_fc_net_keywords():
    model = FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, dropout=0.25, use_batchnorm=True)
    assert model.use_dropout and model.dropout_param["p"] == 0.25 and model.use_batchnorm
    assert {"gamma1", "beta1", "gamma2", "beta2"} <= set(model.params)
    assert not FullyConnectedNet([H1_], input_dim=D_, dropout=0).use_dropout
    with pytest.raises(ValueError, match=r"probability of DROPPING.*\[0, 1\).*got 1"):
        FullyConnectedNet([H1_], input_dim=D_, dropout=1)
    two = TwoLayerNet(input_dim=D_, hidden_dims=H1_, num_classes=C_)
    assert sorted(two.params) == ["W1", "W2", "b1", "b2"] and two.params["W1"].dtype == np.float64


# ------------------------------------------------------------------ HW4 Batch-Normalization.ipynb

def test_batchnorm_cells():
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    a = np.maximum(0, X.dot(W1)).dot(W2)
    out, _ = batchnorm_forward(a, np.asarray([1.0, 2.0, 3.0]), np.asarray([11.0, 12.0, 13.0]), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), [11., 12., 13.], atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), [0.99999999, 1.99999999, 2.99999999], atol=5e-9)
    x = 5 * np.random.randn(4, 5) + 12
    gamma, beta, dout = np.random.randn(5), np.random.randn(5), np.random.randn(4, 5)
    bn = lambda x, g, b: batchnorm_forward(x, g, b, {"mode": "train"})[0]
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    assert rel_error(eval_numerical_gradient_array(lambda v: bn(v, gamma, beta), x, dout), dx) < 1e-7
    assert rel_error(eval_numerical_gradient_array(lambda v: bn(x, v, beta), gamma, dout), dgamma) < 1e-7
    assert rel_error(eval_numerical_gradient_array(lambda v: bn(x, gamma, v), beta, dout), dbeta) < 1e-7


def test_batchnorm_net_cell():
    """"Our relative error for W1 is on the order of 1e-4"; the biases before batch norm
    read rounding only (their true gradient is 0)."""
    np.random.seed(231)
    X = np.random.randn(N_, D_)
    y = np.random.randint(C_, size=(N_,))
    for reg in (0, 3.14):
        model = FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, reg=reg, weight_scale=5e-2,
                                  dtype=np.float64, use_batchnorm=True)
        _, errors = _net_errors(model, X, y)
        assert max(v for k, v in errors.items() if k.startswith("W")) < 1.5e-4, errors
        assert max(v for k, v in errors.items() if not k.startswith("W")) < 1e-6, errors


# ------------------------------------------------------------------ HW4 Optimization.ipynb

@pytest.mark.parametrize("rule, expected_w, printed", [
    (sgd_momentum, nums.MOMENTUM_NEXT_W, nums.PRINTED["momentum"]),
    (sgd_nesterov_momentum, nums.NESTEROV_NEXT_W, nums.PRINTED["nesterov"]),
])
def test_momentum_cells(rule, expected_w, printed):
    config = {"learning_rate": 1e-3, "velocity": nums.STATE}
    next_w, _ = rule(nums.W, nums.DW, config=config)
    errors = rel_error(next_w, np.asarray(expected_w)), rel_error(np.asarray(nums.VELOCITY), config["velocity"])
    assert errors == pytest.approx(printed, rel=1e-6)


def test_rmsprop_cell_keeps_its_average_under_a():
    config = {"learning_rate": 1e-2, "a": nums.STATE}
    next_w, returned = rmsprop(nums.W, nums.DW, config=config)
    assert returned is config and "cache" not in config
    errors = rel_error(np.asarray(nums.RMSPROP_NEXT_W), next_w), rel_error(np.asarray(nums.RMSPROP_CACHE), config["a"])
    assert errors == pytest.approx(nums.PRINTED["rmsprop"], rel=1e-6)


def test_adam_cell_keeps_its_moments_under_v_and_a():
    config = {"learning_rate": 1e-2, "v": nums.STATE, "a": nums.SECOND_MOMENT, "t": 5}
    next_w, _ = adam(nums.W, nums.DW, config=config)
    errors = (rel_error(np.asarray(nums.ADAM_NEXT_W), next_w), rel_error(np.asarray(nums.ADAM_SECOND), config["a"]),
              rel_error(np.asarray(nums.ADAM_FIRST), config["v"]))
    # "you should see errors around 1e-7 or less"; the course prints these three
    assert errors == pytest.approx(nums.PRINTED["adam"], rel=1e-6)
    assert config["t"] == 6 and set(config) == {"learning_rate", "beta1", "beta2", "epsilon", "v", "a", "t"}


def _printed(capsys, fn):
    assert fn() is None                                  # as the course's: nothing for Jupyter to echo
    lines = [line.rsplit(": ", 1) for line in capsys.readouterr().out.splitlines()
             if ": " in line and not line.endswith(":")]
    return {name: float(value) for name, value in lines if not name.startswith(("Running", "Initial"))}


def test_layer_tests_module(capsys):
    from normlab.nndl import layer_tests
    np.random.seed(0)
    # The fixed-input checks: the course prints 9.769849468192957e-10 (its BLAS's last bits) and 4.999999798022158e-08
    assert _printed(capsys, layer_tests.affine_forward_test)["difference"] == pytest.approx(9.7698e-10, rel=1e-4)
    assert _printed(capsys, layer_tests.relu_forward_test)["difference"] == pytest.approx(4.999999798022158e-08,
                                                                                            rel=1e-9)
    assert max(_printed(capsys, layer_tests.affine_backward_test).values()) < 1e-9
    assert max(_printed(capsys, layer_tests.relu_backward_test).values()) < 1e-9
    assert max(_printed(capsys, layer_tests.affine_relu_test).values()) < 1e-8
    errors = _printed(capsys, layer_tests.fc_net_test)
    assert len(errors) == 6 and max(errors.values()) < 1e-5      # six parameters; the reg 3.14 lines overwrite


# ------------------------------------------------------------------ HW5 CNN-Layers / CNN-BatchNorm / CNN

def test_cnn_layer_cells():
    x = np.linspace(-0.1, 0.5, num=np.prod((2, 3, 4, 4))).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=np.prod((3, 3, 4, 4))).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    assert out[0, 0, 0, 0] == pytest.approx(-0.08759809, abs=1e-8)
    x = np.linspace(-0.3, 0.4, num=np.prod((2, 3, 4, 4))).reshape(2, 3, 4, 4)
    out, _ = max_pool_forward_naive(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
    assert out[0, 0, 0, 0] == pytest.approx(-0.26315789, abs=1e-8)
    np.random.seed(231)
    x, w, b = np.random.randn(2, 3, 16, 16), np.random.randn(3, 3, 3, 3), np.random.randn(3,)
    dout = np.random.randn(2, 3, 8, 8)
    cp, pp = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    _, cache = conv_relu_pool_forward(x, w, b, cp, pp)
    dx, dw, db = conv_relu_pool_backward(dout, cache)
    f = lambda x, w, b: conv_relu_pool_forward(x, w, b, cp, pp)[0]
    assert rel_error(eval_numerical_gradient_array(lambda v: f(v, w, b), x, dout), dx) < 1e-8
    assert rel_error(eval_numerical_gradient_array(lambda v: f(x, v, b), w, dout), dw) < 1e-8
    assert rel_error(eval_numerical_gradient_array(lambda v: f(x, w, v), b, dout), db) < 1e-8


def test_spatial_batchnorm_cell():
    np.random.seed(231)
    x = 4 * np.random.randn(2, 3, 4, 5) + 10
    out, _ = spatial_batchnorm_forward(x, np.asarray([3, 4, 5]), np.asarray([6, 7, 8]), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [6., 7., 8.], atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [3, 4, 5], rtol=1e-5)


def test_three_layer_convnet_cell():
    """"If your W1 max relative error and W2 max relative error are around or below 0.01,
    they should be acceptable." (With the default weight scale 1e-3 the other, tiny,
    gradients read central-difference rounding: no implementation keeps them below
    the cell's 1e-5 on every input; see the gradient check at a larger scale below.)"""
    np.random.seed(231)
    X = np.random.randn(2, 3, 16, 16)
    y = np.random.randint(10, size=2)
    model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=(3, 16, 16), hidden_dim=7, dtype=np.float64)
    _, errors = _net_errors(model, X, y, h=1e-6)
    assert errors["W1"] < 0.02 and errors["W2"] < 0.02, errors
    # Better conditioned (weights 0.2, and four inputs: with two, batch norm outputs
    # +-1 whatever W2 is, so its gradient is eps-small), every gradient checks to 1e-5.
    X = np.random.randn(4, 3, 16, 16)
    y = np.random.randint(10, size=4)
    for use_batchnorm in (False, True):
        model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=(3, 16, 16), hidden_dim=7,
                                  dtype=np.float64, weight_scale=0.2, use_batchnorm=use_batchnorm)
        _, errors = _net_errors(model, X, y, h=1e-5)
        assert max(errors.values()) < 1e-5, (use_batchnorm, errors)
