"""CS231n assignment 2 as taught in 2017 and in 2018-2020, through
``normlab.cs231n_2017`` and ``normlab.cs231n_2019``: the same course with other
keywords, each year's cells with each year's printed numbers."""
import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient, rel_error

import _course_cells as nums

N_, D_, H1_, H2_, C_ = 2, 15, 20, 30, 10


def _net_data():
    np.random.seed(231)
    return np.random.randn(N_, D_), np.random.randint(C_, size=(N_,))


def _losses(fc_net_cls, settings):
    X, y = _net_data()
    out = {}
    for value in settings:
        model = fc_net_cls([H1_, H2_], input_dim=D_, num_classes=C_, weight_scale=5e-2, dtype=np.float64,
                           dropout=value, seed=123)
        loss, grads = model.loss(X, y)
        out[value] = loss
        for name in ("W1", "b1"):      # the cell's gradient checks evaluate the loss many times
            num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False)
            assert rel_error(num, grads[name]) < 1e-5, (value, name)
    return out


# ------------------------------------------------------------------ 2018-2020

def test_2019_dropout_keyword_is_the_keep_probability():
    from normlab.cs231n_2019.classifiers.fc_net import FullyConnectedNet
    losses = _losses(FullyConnectedNet, [1, 0.75, 0.5])
    # 2018-2020's template gives softmax_loss; summed in its order, as its solved copies print
    assert [repr(losses[k]) for k in (1, 0.75, 0.5)] == ["2.3004790897684924", "2.302371489704412",
                                                          "2.3042759220785896"]
    model = FullyConnectedNet([H1_], input_dim=D_, normalization="layernorm", dropout=1)
    assert not model.use_dropout and "gamma1" in model.params
    with pytest.raises(TypeError):
        FullyConnectedNet([H1_], input_dim=D_, use_batchnorm=True)      # not this year's keyword
    with pytest.raises(ValueError, match=r"KEEPING a unit.*\(0, 1\].*got 0"):
        FullyConnectedNet([H1_], input_dim=D_, dropout=0)


@pytest.mark.parametrize("face", ["normlab.cs231n_2019", "normlab.cs231n_2017"])
def test_two_layer_net_cell(face):
    """The FullyConnectedNets notebook of 2017-2020: scores and losses of a TwoLayerNet
    with the course's linspace weights, then its gradient check."""
    import importlib
    TwoLayerNet = importlib.import_module(face + ".classifiers.fc_net").TwoLayerNet
    np.random.seed(231)
    N, D, H, C = 3, 5, 50, 7
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=N)
    std = 1e-3
    model = TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=std)
    for W, b in (("W1", "b1"), ("W2", "b2")):
        assert abs(model.params[W].std() - std) < std / 10 and np.all(model.params[b] == 0)
    model.params["W1"] = np.linspace(-0.7, 0.3, num=D * H).reshape(D, H)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=H)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=H * C).reshape(H, C)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=C)
    X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    correct_scores = np.asarray(
        [[11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
         [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135, 16.18839143],
         [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.2846319]])
    assert np.abs(model.loss(X) - correct_scores).sum() < 1e-6
    y = np.asarray([0, 5, 1])
    assert abs(model.loss(X, y)[0] - 3.4702243556) < 1e-10
    model.reg = 1.0
    assert abs(model.loss(X, y)[0] - 26.5948426952) < 1e-10
    for reg in (0.0, 0.7):
        model.reg = reg
        _, grads = model.loss(X, y)
        errors = {}
        for name in sorted(grads):
            num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False)
            errors[name] = rel_error(num, grads[name])
        assert max(errors.values()) < 1e-6, (reg, errors)                # "around e-7 or less"
        if reg == 0.7:
            # Solved copies print 3.12e-07 (and 8.18e-07) for W1 at this reg. The digits of a
            # finite-difference error this small follow the last-ulp rounding of exp/log, which
            # NumPy picks by the CPU's SIMD level: this code printed 3.12e-07 on the machine the
            # test was written on and 2.53e-07 on an AVX2-only AMD EPYC (NumPy's X86_V3 path), same
            # NumPy major version. The course's order of magnitude holds on both.
            assert 1e-7 <= errors["W1"] < 1e-6 and f"{errors['W1']:.2e}".endswith("e-07")


# ------------------------------------------------------------------ 2017

def test_2017_dropout_forward_drops_with_probability_p():
    from normlab.cs231n_2017.layers import dropout_forward
    nums.dropout_forward_cell(dropout_forward, {0.3: (9.985265770517648, 0.300876),
                                                0.6: (10.035153558044966, 0.598632),
                                                0.75: (10.021625749126567, 0.749504)})


def test_2017_dropout_backward_and_net_cells():
    from normlab.cs231n_2017.classifiers.fc_net import FullyConnectedNet, dropout_backward, dropout_forward
    # the course prints 1.8929e-11
    assert nums.dropout_backward_cell(dropout_forward, dropout_backward, 0.8) < 1e-10
    losses = _losses(FullyConnectedNet, [0, 0.25, 0.5])
    # 2017's NumPy printed 12 significant digits
    assert [f"{losses[k]:.12g}" for k in (0, 0.25, 0.5)] == ["2.30047908977", "2.30486921512", "2.31013690872"]


def test_2017_batchnorm_keyword_and_adam_start():
    from normlab.cs231n_2017.classifiers.fc_net import FullyConnectedNet
    from normlab.cs231n_2017.optim import adam
    from normlab.optim import adam as adam_2018
    X, y = _net_data()
    losses = [FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, reg=reg, weight_scale=5e-2,
                                dtype=np.float64, use_batchnorm=True).loss(X, y)[0] for reg in (0, 3.14)]
    assert [f"{v:.12g}" for v in losses] == ["2.26119551013", "6.99653322011"]
    w, dw = np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0.5, -0.5, 6).reshape(2, 3)
    config = {"learning_rate": 1e-2}
    next_w, config = adam(w, dw, config)
    assert config["t"] == 2                                 # starts at 1, incremented before use
    ref, _ = adam_2018(w, dw, {"learning_rate": 1e-2, "m": np.zeros_like(w), "v": np.zeros_like(w), "t": 1})
    np.testing.assert_array_equal(next_w, ref)
    with pytest.raises(ValueError, match=r"probability of DROPPING"):
        dropout_forward_2017 = __import__("normlab.cs231n_2017.layers", fromlist=["x"]).dropout_forward
        dropout_forward_2017(w, {"mode": "train", "p": 1.0})


@pytest.mark.parametrize("face", ["normlab.cs231n_2019", "normlab.cs231n_2017"])
def test_loss_layer_cell_prints_the_templates_digits(face):
    """2017-2020's FullyConnectedNets notebook checks the losses the template gives."""
    import importlib
    layers = importlib.import_module(face + ".layers")
    np.random.seed(231)
    num_classes, num_inputs = 10, 50
    x = 0.001 * np.random.randn(num_inputs, num_classes)
    y = np.random.randint(num_classes, size=num_inputs)
    for name, loss_repr, printed_dx_error, bound in (("svm_loss", "8.999602749096233", 1.4021566006651672e-09, 1e-9),
                                                     ("softmax_loss", "2.302545844500738", 9.384673161989355e-09, 1e-8)):
        fn = getattr(layers, name)
        loss, dx = fn(x, y)
        dx_num = eval_numerical_gradient(lambda x: fn(x, y)[0], x, verbose=False)
        assert repr(loss) == loss_repr
        # "dx error should be around 1e-9" (svm), "1e-8" (softmax): the course's own
        # values, which sit just above those round numbers
        assert rel_error(dx_num, dx) == pytest.approx(printed_dx_error, rel=1e-6)
        assert rel_error(dx_num, dx) < 10 * bound


def test_nndl_2025_keeps_with_probability_p():
    """The 2025-26 UCLA template: dropout= is the keep probability; after the dropout
    backward cell's seed, the 2026 notebook prints these losses."""
    from normlab.nndl_2025.fc_net import FullyConnectedNet
    from normlab.nndl_2025.layers import dropout_forward
    np.random.seed(0)
    dropout_forward(np.random.randn(10, 10) + 10, {"mode": "train", "p": 0.8, "seed": 123})
    X = np.random.randn(N_, D_)
    y = np.random.randint(C_, size=(N_,))
    losses = [FullyConnectedNet([H1_, H2_], input_dim=D_, num_classes=C_, weight_scale=5e-2, dtype=np.float64,
                                dropout=keep, seed=123).loss(X, y)[0] for keep in (0.5, 0.75, 1.0)]
    assert [repr(v) for v in losses] == ["2.309771209610118", "2.306133548427975", "2.3053332250963194"]
