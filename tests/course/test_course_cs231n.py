"""The CS231n assignment 2 (2021-22) notebook cells, through ``normlab.cs231n``.

Each test runs what a course cell runs, with the module names renamed to
``normlab.cs231n.*``, and asserts what the course's solved notebooks print:
the losses to their printed digits where the cell seeds np.random, and every
relative error within the bound the cell states. The numbers are facts about
the course (its stored outputs); the code is ours.
"""
import numpy as np
import pytest

from normlab.cs231n.classifiers.cnn import ThreeLayerConvNet
from normlab.cs231n.classifiers.fc_net import *  # noqa: F401,F403  (the notebooks' own import)
from normlab.cs231n.fast_layers import conv_backward_fast, conv_forward_fast, max_pool_backward_fast, \
    max_pool_forward_fast
from normlab.cs231n.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from normlab.cs231n.layer_utils import conv_relu_backward, conv_relu_forward, conv_relu_pool_backward, \
    conv_relu_pool_forward
from normlab.cs231n.optim import adam, rmsprop, sgd_momentum

import _course_cells as nums

N_, D_, H1_, H2_, C_ = 2, 15, 20, 30, 10


def _net_data(seed=231):
    np.random.seed(seed)
    X = np.random.randn(N_, D_)
    y = np.random.randint(C_, size=(N_,))
    return X, y


def _net_errors(model, X, y):
    loss, grads = model.loss(X, y)
    errors = {}
    for name in sorted(grads):
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=1e-5)
        errors[name] = rel_error(num, grads[name])
    return loss, errors


def _array_errors(forward, backward, inputs, dout, h=1e-5):
    """Relative errors of ``backward(dout, cache)`` against central differences, per input."""
    _, cache = forward(*inputs)
    analytic = backward(dout, cache)
    errors = []
    for i, x in enumerate(inputs):
        def f(v, i=i):
            args = list(inputs)
            args[i] = v
            return forward(*args)[0]
        errors.append(rel_error(eval_numerical_gradient_array(f, x, dout, h=h), analytic[i]))
    return errors


# ------------------------------------------------------------------ FullyConnectedNets.ipynb

def test_fc_net_initial_loss_and_gradients():
    X, y = _net_data()
    expected = {0: "2.300479089768492", 3.14: "7.052114776533016"}
    for reg in (0, 3.14):
        model = FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, reg=reg, weight_scale=5e-2,
                                  dtype=np.float64)
        loss, errors = _net_errors(model, X, y)
        assert repr(loss) == expected[reg]
        # "Most of the errors should be on the order of e-7 or smaller. It is fine
        # however to see an error for W2 on the order of e-5 for the check when reg = 0.0"
        for name, err in errors.items():
            assert err < (1e-4 if (reg == 0 and name == "W2") else 1e-6), (reg, name, err)
        if reg == 0:
            assert f"{errors['W2']:.2e}" == "2.21e-05"     # the course prints 2.21204793107852e-05


@pytest.mark.parametrize("rule, key, lr, printed, expected_w, expected_state", [
    (sgd_momentum, "velocity", 1e-3, nums.PRINTED["momentum"], nums.MOMENTUM_NEXT_W, nums.VELOCITY),
    (rmsprop, "cache", 1e-2, nums.PRINTED["rmsprop"], nums.RMSPROP_NEXT_W, nums.RMSPROP_CACHE),
])
def test_momentum_and_rmsprop_cells(rule, key, lr, printed, expected_w, expected_state):
    config = {"learning_rate": lr, key: nums.STATE}
    next_w, _ = rule(nums.W, nums.DW, config=config)
    # The cells: "around e-8" (momentum), "around e-7 or less" (rmsprop); the errors
    # are those of the course's 8-digit expected arrays, so they equal its printout.
    errors = rel_error(next_w, np.asarray(expected_w)), rel_error(np.asarray(expected_state), config[key])
    assert errors == pytest.approx(printed, rel=1e-6)


def test_adam_cell():
    config = {"learning_rate": 1e-2, "m": nums.STATE, "v": nums.SECOND_MOMENT, "t": 5}
    next_w, _ = adam(nums.W, nums.DW, config=config)
    # "you should see errors around e-7 or less"; the course prints these three
    errors = (rel_error(np.asarray(nums.ADAM_NEXT_W), next_w), rel_error(np.asarray(nums.ADAM_SECOND), config["v"]),
              rel_error(np.asarray(nums.ADAM_FIRST), config["m"]))
    assert errors == pytest.approx(nums.PRINTED["adam"], rel=1e-6)
    assert config["t"] == 6


# ------------------------------------------------------------------ Dropout.ipynb

def test_dropout_forward_cell():
    nums.dropout_forward_cell(dropout_forward, {0.25: (10.014059116977283, 0.749784),
                                                0.4: (9.977917658761159, 0.600796),
                                                0.7: (9.987811912159426, 0.30074)})


def test_dropout_backward_cell():
    # "around e-10 or less"; the course prints 5.44560814873387e-11
    assert nums.dropout_backward_cell(dropout_forward, dropout_backward, 0.2) < 1e-10


def test_fc_net_with_dropout_cell():
    """The issue's item 1: seed=123 fixes the mask for every loss evaluation, the
    weights come from the global RNG, and the course's initial losses come out."""
    X, y = _net_data()
    expected = {1: "2.300479089768492", 0.75: "2.302371489704412", 0.5: "2.30427592207859"}
    for keep, loss_repr in expected.items():
        model = FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, weight_scale=5e-2, dtype=np.float64,
                                  dropout_keep_ratio=keep, seed=123)
        loss, errors = _net_errors(model, X, y)
        assert repr(loss) == loss_repr
        # "Relative errors should be around e-6 or less; Note that it's fine if for
        # dropout_keep_ratio=1 you have W2 error be on the order of e-5."
        for name, err in errors.items():
            assert err < (1e-4 if (keep == 1 and name == "W2") else 1e-5), (keep, name, err)


# ------------------------------------------------------------------ BatchNormalization.ipynb

def _bn_data(N=200):
    np.random.seed(231)
    N, D1, D2, D3 = N, 50, 60, 3
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    return X, W1, W2, np.maximum(0, X.dot(W1)).dot(W2)


def test_batchnorm_train_forward_cell():
    _, _, _, a = _bn_data()
    np.testing.assert_allclose(a.mean(axis=0), [-2.3814598, -13.18038246, 1.91780462], atol=1e-8)
    np.testing.assert_allclose(a.std(axis=0), [27.18502186, 34.21455511, 37.68611762], atol=1e-8)
    out, _ = batchnorm_forward(a, np.ones(3), np.zeros(3), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-15)
    np.testing.assert_allclose(out.std(axis=0), [0.99999999, 1., 1.], atol=5e-9)
    out, _ = batchnorm_forward(a, np.asarray([1.0, 2.0, 3.0]), np.asarray([11.0, 12.0, 13.0]), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), [11., 12., 13.], atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), [0.99999999, 1.99999999, 2.99999999], atol=5e-9)


def test_batchnorm_test_time_cell():
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(D3), np.zeros(D3)
    for _ in range(50):
        X = np.random.randn(N, D1)
        batchnorm_forward(np.maximum(0, X.dot(W1)).dot(W2), gamma, beta, bn_param)
    bn_param["mode"] = "test"
    X = np.random.randn(N, D1)
    out, _ = batchnorm_forward(np.maximum(0, X.dot(W1)).dot(W2), gamma, beta, bn_param)
    np.testing.assert_allclose(out.mean(axis=0), [-0.03927354, -0.04349152, -0.10452688], atol=5e-9)
    np.testing.assert_allclose(out.std(axis=0), [1.01531428, 1.01238373, 0.97819988], atol=5e-9)


@pytest.mark.parametrize("backward", ["batchnorm_backward", "batchnorm_backward_alt"])
def test_batchnorm_backward_cell(backward):
    np.random.seed(231)
    N, D = 4, 5
    x = 5 * np.random.randn(N, D) + 12
    gamma, beta = np.random.randn(D), np.random.randn(D)
    dout = np.random.randn(N, D)
    errors = _array_errors(lambda x, g, b: batchnorm_forward(x, g, b, {"mode": "train"}), globals()[backward],
                           [x, gamma, beta], dout)
    assert max(errors) < 1e-8                        # "between 1e-13 and 1e-8"


def test_batchnorm_backward_alt_cell_gives_the_same_gradients():
    np.random.seed(231)
    N, D = 100, 500
    x = 5 * np.random.randn(N, D) + 12
    gamma, beta = np.random.randn(D), np.random.randn(D)
    dout = np.random.randn(N, D)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    staged, alt = batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)
    assert rel_error(staged[0], alt[0]) < 1e-11                  # the course prints ~1e-12
    assert rel_error(staged[1], alt[1]) == 0.0 and rel_error(staged[2], alt[2]) == 0.0   # and 0.0, 0.0


def test_batchnorm_net_gradient_check_cell():
    X, y = _net_data()
    expected = {0: "2.2611955101340957", 3.14: "6.996533220108303"}
    for reg in (0, 3.14):
        model = FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, reg=reg, weight_scale=5e-2,
                                  dtype=np.float64, normalization="batchnorm")
        loss, errors = _net_errors(model, X, y)
        assert repr(loss) == expected[reg]
        # "You should expect losses between 1e-4~1e-10 for W, losses between 1e-08~1e-10
        # for b, and losses between 1e-08~1e-09 for beta and gammas."
        for name, err in errors.items():
            bound = 1.5e-4 if name.startswith("W") else 1e-7 if name.startswith("b") and name[1].isdigit() else 1e-8
            assert err < bound, (reg, name, err)
        if reg == 0:
            assert f"{errors['W1']:.2e}" == "1.10e-04"      # the course's own printout: the N=2 batch's curvature


@pytest.mark.slow
def test_batchnorm_net_bias_gradients_over_50_seeds():
    """The issue's item 3: the biases before batch norm (true gradient 0) stay below
    1e-5 on every seed of the course's check, not only on seed 231."""
    worst = {}
    for seed in range(50):
        X, y = _net_data(seed)
        for reg in (0, 3.14):
            model = FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, reg=reg, weight_scale=5e-2,
                                      dtype=np.float64, normalization="batchnorm")
            _, grads = model.loss(X, y)
            for name in ("b1", "b2"):
                num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False,
                                              h=1e-5)
                worst[(seed, reg, name)] = rel_error(num, grads[name])
    bad = {k: v for k, v in worst.items() if v >= 1e-5}
    assert not bad, bad


def test_layernorm_cells():
    np.random.seed(231)
    N, D1, D2, D3 = 4, 50, 60, 3
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    a = np.maximum(0, X.dot(W1)).dot(W2)
    np.testing.assert_allclose(a.mean(axis=1), [-59.06673243, -47.60782686, -43.31137368, -26.40991744], atol=1e-8)
    out, _ = layernorm_forward(a, np.ones(D3), np.zeros(D3), {"mode": "train"})
    np.testing.assert_allclose(out.std(axis=1), [0.99999995, 0.99999999, 1., 0.99999969], atol=5e-9)
    out, _ = layernorm_forward(a, np.asarray([3, 3, 3]), np.asarray([5, 5, 5]), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=1), [5., 5., 5., 5.], atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), [2.99999985, 2.99999998, 2.99999999, 2.99999907], atol=5e-9)
    np.random.seed(231)
    N, D = 4, 5
    x = 5 * np.random.randn(N, D) + 12
    gamma, beta = np.random.randn(D), np.random.randn(D)
    dout = np.random.randn(N, D)
    errors = _array_errors(lambda x, g, b: layernorm_forward(x, g, b, {}), layernorm_backward, [x, gamma, beta], dout)
    assert max(errors) < 1e-8                        # "between 1e-12 and 1e-8"


# ------------------------------------------------------------------ ConvolutionalNetworks.ipynb

# The conv_forward_naive cell (linspace inputs against the course's output, which
# prints 2.2121476417505994e-08) is tests/nn/test_conv.py::test_course_known_output.


def test_conv_image_filter_cell_takes_an_integer_bias():
    """The issue's item 2: b = np.array([0, 128]) (the course's image-filter cell)."""
    rng = np.random.default_rng(0)
    x = np.zeros((2, 3, 20, 20))
    x[0] = rng.uniform(0, 255, (3, 20, 20))
    x[1] = rng.uniform(0, 255, (3, 20, 20))
    w = np.zeros((2, 3, 3, 3))
    w[0, 0, :, :] = [[0, 0, 0], [0, 0.3, 0], [0, 0, 0]]
    w[0, 1, :, :] = [[0, 0, 0], [0, 0.6, 0], [0, 0, 0]]
    w[0, 2, :, :] = [[0, 0, 0], [0, 0.1, 0], [0, 0, 0]]
    w[1, 2, :, :] = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
    b = np.array([0, 128])
    out, _ = conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    np.testing.assert_allclose(out[:, 0], 0.3 * x[:, 0] + 0.6 * x[:, 1] + 0.1 * x[:, 2], rtol=1e-12)
    assert out[:, 1, 1:-1, 1:-1].mean() == pytest.approx(128, abs=20)


def test_conv_backward_and_pool_cells():
    np.random.seed(231)
    x = np.random.randn(4, 3, 5, 5)
    w = np.random.randn(2, 3, 3, 3)
    b = np.random.randn(2,)
    dout = np.random.randn(4, 2, 5, 5)
    cp = {"stride": 1, "pad": 1}
    errors = _array_errors(lambda x, w, b: conv_forward_naive(x, w, b, cp), conv_backward_naive, [x, w, b], dout)
    # "around e-8 or less"; the course prints exactly these
    assert errors == pytest.approx([1.159803161159293e-08, 2.2471264748452487e-10, 3.37264006649648e-11], rel=1e-6)
    x = np.linspace(-0.3, 0.4, num=np.prod((2, 3, 4, 4))).reshape(2, 3, 4, 4)
    pp = {"pool_width": 2, "pool_height": 2, "stride": 2}
    out, _ = max_pool_forward_naive(x, pp)
    correct_out = np.array([[[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
                             [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
                             [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
                            [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
                             [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
                             [[0.32631579, 0.34105263], [0.38526316, 0.4]]]])
    assert rel_error(out, correct_out) == pytest.approx(4.1666665157267834e-08, rel=1e-9)
    np.random.seed(231)
    x = np.random.randn(3, 2, 8, 8)
    dout = np.random.randn(3, 2, 4, 4)
    errors = _array_errors(lambda x: max_pool_forward_naive(x, pp), lambda d, c: (max_pool_backward_naive(d, c),),
                           [x], dout)
    assert errors[0] < 1e-11                         # "on the order of e-12"


def test_fast_layers_cell():
    np.random.seed(231)
    x = np.random.randn(100, 3, 31, 31)
    w = np.random.randn(25, 3, 3, 3)
    b = np.random.randn(25,)
    dout = np.random.randn(100, 25, 16, 16)
    cp = {"stride": 2, "pad": 1}
    out_naive, cache_naive = conv_forward_naive(x, w, b, cp)
    out_fast, cache_fast = conv_forward_fast(x, w, b, cp)
    assert rel_error(out_naive, out_fast) < 1e-9     # "around e-9 or less"
    for a, f in zip(conv_backward_naive(dout, cache_naive), conv_backward_fast(dout, cache_fast)):
        assert rel_error(a, f) < 1e-9
    np.random.seed(231)
    x = np.random.randn(100, 3, 32, 32)
    dout = np.random.randn(100, 3, 16, 16)
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out_naive, cache_naive = max_pool_forward_naive(x, pp)
    out_fast, cache_fast = max_pool_forward_fast(x, pp)
    assert rel_error(out_naive, out_fast) == 0.0
    assert rel_error(max_pool_backward_naive(dout, cache_naive), max_pool_backward_fast(dout, cache_fast)) == 0.0


def test_sandwich_layer_cells_and_three_layer_convnet_sanity_loss():
    np.random.seed(231)
    x = np.random.randn(2, 3, 16, 16)
    w = np.random.randn(3, 3, 3, 3)
    b = np.random.randn(3,)
    dout = np.random.randn(2, 3, 8, 8)
    cp, pp = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    errors = _array_errors(lambda x, w, b: conv_relu_pool_forward(x, w, b, cp, pp), conv_relu_pool_backward,
                           [x, w, b], dout)
    assert max(errors) < 1e-8
    np.random.seed(231)
    x = np.random.randn(2, 3, 8, 8)
    w = np.random.randn(3, 3, 3, 3)
    b = np.random.randn(3,)
    dout = np.random.randn(2, 3, 8, 8)
    errors = _array_errors(lambda x, w, b: conv_relu_forward(x, w, b, cp), conv_relu_backward, [x, w, b], dout)
    assert max(errors) < 1e-8                        # "around e-8 or less"
    # The sanity-check cell does not seed: it continues from the conv_relu cell's draws.
    model = ThreeLayerConvNet()
    N = 50
    X = np.random.randn(N, 3, 32, 32)
    y = np.random.randint(10, size=N)
    loss, _ = model.loss(X, y)
    assert repr(loss) == "2.302586071243987"
    model.reg = 0.5
    loss, _ = model.loss(X, y)
    assert loss == pytest.approx(2.508255638232932, abs=5e-8)   # float32 sums: ~1e-8 between implementations


def test_three_layer_convnet_gradient_check_cell():
    num_inputs, input_dim, num_classes = 2, (3, 16, 16), 10
    np.random.seed(231)
    X = np.random.randn(num_inputs, *input_dim)
    y = np.random.randint(num_classes, size=num_inputs)
    model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=input_dim, hidden_dim=7, dtype=np.float64)
    loss, grads = model.loss(X, y)
    errors = {}
    for name in sorted(model.params):
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=1e-6)
        errors[name] = rel_error(num, grads[name])
    # "correct implementations may have relative errors up to the order of e-2"; the
    # course prints W2 1.822723e-02 (a ReLU kink), and the others at most 2.5e-03
    assert f"{errors['W2']:e}" == "1.822723e-02"
    assert max(v for k, v in errors.items() if k != "W2") < 5e-3


def test_spatial_batchnorm_cells_take_integer_gamma_beta():
    np.random.seed(231)
    N, C, H, W = 2, 3, 4, 5
    x = 4 * np.random.randn(N, C, H, W) + 10
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), [9.33463814, 8.90909116, 9.11056338], atol=1e-8)
    out, _ = spatial_batchnorm_forward(x, np.ones(C), np.zeros(C), {"mode": "train"})
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [0.99999962, 0.99999951, 0.9999996], atol=5e-9)
    gamma, beta = np.asarray([3, 4, 5]), np.asarray([6, 7, 8])       # integer arrays, as in the course
    out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [6., 7., 8.], atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [2.99999885, 3.99999804, 4.99999798], atol=5e-9)
    np.random.seed(231)
    N, C, H, W = 10, 4, 11, 12
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(C), np.zeros(C)
    for _ in range(50):
        spatial_batchnorm_forward(2.3 * np.random.randn(N, C, H, W) + 13, gamma, beta, bn_param)
    bn_param["mode"] = "test"
    out, _ = spatial_batchnorm_forward(2.3 * np.random.randn(N, C, H, W) + 13, gamma, beta, bn_param)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [-0.08034406, 0.07562881, 0.05716371, 0.04378383],
                               atol=5e-9)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [0.96718744, 1.0299714, 1.02887624, 1.00585577], atol=5e-9)
    np.random.seed(231)
    N, C, H, W = 2, 3, 4, 5
    x = 5 * np.random.randn(N, C, H, W) + 12
    gamma, beta = np.random.randn(C), np.random.randn(C)
    dout = np.random.randn(N, C, H, W)
    errors = _array_errors(lambda x, g, b: spatial_batchnorm_forward(x, g, b, {"mode": "train"}),
                           spatial_batchnorm_backward, [x, gamma, beta], dout)
    assert max(errors) < 1e-6                        # "between 1e-12~1e-06"


def test_spatial_groupnorm_cells():
    np.random.seed(231)
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = 4 * np.random.randn(N, C, H, W) + 10
    out, _ = spatial_groupnorm_forward(x, np.ones((1, C, 1, 1)), np.zeros((1, C, 1, 1)), G, {"mode": "train"})
    out_g = out.reshape((N * G, -1))
    np.testing.assert_allclose(out_g.std(axis=1), [0.99999963, 0.99999948, 0.99999973, 0.99999968], atol=5e-9)
    np.random.seed(231)
    x = 5 * np.random.randn(N, C, H, W) + 12
    gamma, beta = np.random.randn(1, C, 1, 1), np.random.randn(1, C, 1, 1)
    dout = np.random.randn(N, C, H, W)
    errors = _array_errors(lambda x, g, b: spatial_groupnorm_forward(x, g, b, G, {}), spatial_groupnorm_backward,
                           [x, gamma, beta], dout)
    assert max(errors) < 1e-7                        # "between 1e-12~1e-07"
