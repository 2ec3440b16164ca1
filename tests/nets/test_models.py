"""FullyConnectedNet and ThreeLayerConvNet: net-level gradient checks, course sanity checks,
dtype, seeding, state round trip and input validation."""
import dataclasses

import numpy as np
import pytest

from normlab.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from normlab.models import FullyConnectedNet, ThreeLayerConvNet

# The course's gradient-check sizes.
N, D, H1, H2, C = 2, 15, 20, 30, 10


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def _numeric_grads(model, X, y, reset=lambda: None):
    def f(_):
        reset()
        return model.loss(X, y)[0]
    return {name: eval_numerical_gradient(f, p, verbose=False) for name, p in model.params.items()}


def _biases_before_batchnorm(model):
    """b_i feeding a batch norm: BN removes any per-feature shift, so the gradient is exactly 0."""
    if model.normalization != "batchnorm":
        return set()
    if isinstance(model, ThreeLayerConvNet):
        return {"b1", "b2"}
    return {f"b{i}" for i in range(1, model.num_layers)}


def _assert_net_gradients(model, grads, numeric, rel_tol, normwise_tol=1e-6):
    """rel_error per parameter (the course's measure) plus a norm-wise error that small
    entries cannot inflate; biases before batch norm are checked to be ~0 absolutely."""
    assert set(grads) == set(model.params) == set(numeric)
    zero = _biases_before_batchnorm(model)
    for name in model.params:
        a, n = grads[name], numeric[name]
        assert a.shape == model.params[name].shape
        if name in zero:
            assert np.abs(a).max() < 1e-12 and np.abs(n).max() < 1e-9, name
            continue
        assert rel_error(a, n) < rel_tol, (name, rel_error(a, n))
        assert np.abs(a - n).max() <= normwise_tol * np.abs(n).max(), name


def _course_data(seed=0, n=N):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, D)), r.integers(C, size=n)


# ------------------------------------------------------------------ FullyConnectedNet gradients

# Measured on this data (seed 0, h=1e-5), biases before BN excluded, max over parameters:
#   normalization  reg   rel_error  norm-wise
#   None           0     1.4e-6     4.2e-9
#   None           3.14  1.6e-7     4.2e-9
#   batchnorm      0     1.2e-4     1.8e-6
#   batchnorm      3.14  3.1e-5     1.6e-6
#   layernorm      0     1.5e-7     6.4e-10
#   layernorm      3.14  8.2e-8     7.7e-10
# Batch norm over N=2 samples is badly conditioned: x_hat = +-d / sqrt(d^2 + eps), d the
# half-difference of the two samples, is strongly curved where |d| ~ sqrt(eps) (one hidden unit
# here has |d| = 1.8e-3). The central difference then carries truncation error (it drops ~100x
# at h=1e-6: the analytic gradient is right), and on entries of size ~1e-7 that is a rel_error
# of ~1e-4; the bounds leave ~5x headroom over the measured values.
@pytest.mark.parametrize("normalization, rel_tol, normwise_tol",
                         [(None, 1e-5, 1e-7), ("batchnorm", 1e-3, 1e-5), ("layernorm", 1e-6, 1e-8)])
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_fc_net_gradient_check(normalization, rel_tol, normwise_tol, reg):
    X, y = _course_data()
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg, weight_scale=5e-2,
                              dtype=np.float64, normalization=normalization, rng_seed=0)
    loss, grads = model.loss(X, y)
    assert np.isfinite(loss)
    _assert_net_gradients(model, grads, _numeric_grads(model, X, y), rel_tol, normwise_tol)


def _reset_dropout_rng(model):
    """Make every call draw the same dropout masks: restore each model-owned generator."""
    gens = {id(g): g for g in (getattr(model, "rng", None), model.dropout_param.get("rng")) if g is not None}
    states = {k: g.bit_generator.state for k, g in gens.items()}

    def reset():
        for k, g in gens.items():
            g.bit_generator.state = states[k]
    return reset


@pytest.mark.parametrize("normalization", [None])
def test_fc_net_gradient_check_with_dropout(normalization):
    X, y = _course_data(n=4)
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=0.5, weight_scale=5e-2,
                              dtype=np.float64, dropout_keep_ratio=0.5, normalization=normalization, rng_seed=0)
    reset = _reset_dropout_rng(model)
    # without the reset the masks change from call to call ...
    first, second = model.loss(X, y)[0], model.loss(X, y)[0]
    assert first != second
    # ... with it, every evaluation (analytic and numeric) sees the same masks
    reset()
    loss, grads = model.loss(X, y)
    reset()
    assert model.loss(X, y)[0] == loss
    _assert_net_gradients(model, grads, _numeric_grads(model, X, y, reset), rel_tol=1e-5)


def test_fc_net_dropout_with_seed_param_repeats_masks():
    """The course way: dropout_param['seed'] gives the same mask on every call."""
    X, y = _course_data(n=4)
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=5e-2,
                              dtype=np.float64, dropout_keep_ratio=0.5, rng_seed=0)
    model.dropout_param.pop("rng", None)
    model.dropout_param["seed"] = 123
    loss, grads = model.loss(X, y)
    assert model.loss(X, y)[0] == loss
    _assert_net_gradients(model, grads, _numeric_grads(model, X, y), rel_tol=1e-5)


def test_fc_net_dropout_draws_from_current_model_rng(rng):
    """Reseeding by assigning model.rng must reach the dropout masks (not a stale generator)."""
    X = rng.standard_normal((4, D))
    y = rng.integers(C, size=4)
    model = FullyConnectedNet([H1], input_dim=D, dropout_keep_ratio=0.5, rng_seed=0, dtype=np.float64)
    model.rng = np.random.default_rng(7)
    first = model.loss(X, y)[0]
    model.rng = np.random.default_rng(7)
    assert model.loss(X, y)[0] == first


def test_fc_net_dropout_is_off_at_test_time(rng):
    model = FullyConnectedNet([20], input_dim=D, dropout_keep_ratio=0.3, rng_seed=0, dtype=np.float64)
    X = rng.standard_normal((5, D))
    np.testing.assert_array_equal(model.loss(X), model.loss(X))
    ref = FullyConnectedNet([20], input_dim=D, rng_seed=0, dtype=np.float64)
    np.testing.assert_array_equal(model.loss(X), ref.loss(X))


# ------------------------------------------------------------------ course sanity checks

@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_initial_loss_is_log_num_classes(rng, normalization):
    X = rng.standard_normal((100, 30))
    y = rng.integers(10, size=100)
    model = FullyConnectedNet([50, 40], input_dim=30, num_classes=10, weight_scale=1e-2,
                              normalization=normalization, rng_seed=0)
    loss, _ = model.loss(X, y)
    assert abs(loss - np.log(10)) < 0.02


def test_fc_net_reg_adds_half_reg_sum_w_squared(rng):
    X = rng.standard_normal((6, D))
    y = rng.integers(C, size=6)
    plain = FullyConnectedNet([H1, H2], input_dim=D, weight_scale=5e-2, dtype=np.float64,
                              normalization="batchnorm", rng_seed=3)
    reg = FullyConnectedNet([H1, H2], input_dim=D, weight_scale=5e-2, dtype=np.float64,
                            normalization="batchnorm", rng_seed=3, reg=3.14)
    loss0, grads0 = plain.loss(X, y)
    loss1, grads1 = reg.loss(X, y)
    weights = [reg.params[f"W{i}"] for i in range(1, 4)]
    assert loss1 - loss0 == pytest.approx(0.5 * 3.14 * sum(np.sum(w ** 2) for w in weights), rel=1e-12)
    for name in plain.params:
        extra = 3.14 * reg.params[name] if name.startswith("W") else 0.0   # no decay on b, gamma, beta
        np.testing.assert_allclose(grads1[name], grads0[name] + extra, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_fc_net_overfits_50_examples(normalization):
    """Three-layer net, 50 samples, batch 25, plain SGD written here: 100% train accuracy."""
    r = np.random.default_rng(0)
    X = r.standard_normal((50, 3 * 8 * 8)).astype(np.float32)
    y = r.integers(10, size=50)
    model = FullyConnectedNet([100, 100], input_dim=X.shape[1], num_classes=10, weight_scale=1e-1,
                              normalization=normalization, rng_seed=1)
    order_rng = np.random.default_rng(2)
    accuracies = []
    for _ in range(20):
        order = order_rng.permutation(50)
        for start in range(0, 50, 25):
            idx = order[start:start + 25]
            loss, grads = model.loss(X[idx], y[idx])
            for name in model.params:
                model.params[name] -= 0.1 * grads[name]
        accuracies.append(np.mean(np.argmax(model.loss(X), axis=1) == y))
    assert accuracies[-1] == 1.0
    assert loss < 0.5


# ------------------------------------------------------------------ construction, dtype, seeding

def test_fc_net_legacy_use_batchnorm_keyword():
    model = FullyConnectedNet([H1, H2], input_dim=D, use_batchnorm=True, rng_seed=0)
    ref = FullyConnectedNet([H1, H2], input_dim=D, normalization="batchnorm", rng_seed=0)
    assert model.normalization == "batchnorm"
    assert set(model.params) == set(ref.params)
    for name in ref.params:
        np.testing.assert_array_equal(model.params[name], ref.params[name])
    with pytest.raises(ValueError, match="layernorm"):
        FullyConnectedNet([H1], input_dim=D, use_batchnorm=True, normalization="layernorm")
    assert FullyConnectedNet([H1], input_dim=D, use_batchnorm=False).normalization is None


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_output_layer_never_normalized(normalization):
    model = FullyConnectedNet([H1, H2, 7], input_dim=D, normalization=normalization, rng_seed=0)
    expected = {f"{p}{i}" for i in range(1, 5) for p in ("W", "b")}
    if normalization:
        expected |= {f"{p}{i}" for i in range(1, 4) for p in ("gamma", "beta")}
    assert set(model.params) == expected
    assert "gamma4" not in model.params and "beta4" not in model.params
    assert model.params["W1"].shape == (D, H1) and model.params["W4"].shape == (7, 10)
    if normalization:
        np.testing.assert_array_equal(model.params["gamma2"], np.ones(H2))
        np.testing.assert_array_equal(model.params["beta3"], np.zeros(7))


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_default_dtype_is_float32(rng, normalization):
    model = FullyConnectedNet([H1, H2], input_dim=D, normalization=normalization, dropout_keep_ratio=0.5, rng_seed=0)
    assert all(p.dtype == np.float32 for p in model.params.values())
    X = rng.standard_normal((4, D))     # float64 input is cast to the model's dtype
    y = rng.integers(C, size=4)
    scores = model.loss(X)
    assert scores.dtype == np.float32 and scores.shape == (4, C)
    loss, grads = model.loss(X, y)
    assert isinstance(loss, float)
    assert all(grads[k].dtype == np.float32 for k in grads)


def test_fc_net_float64_option(rng):
    model = FullyConnectedNet([H1], input_dim=D, normalization="batchnorm", dtype=np.float64, rng_seed=0)
    X = rng.standard_normal((4, D)).astype(np.float32)
    assert model.loss(X).dtype == np.float64
    _, grads = model.loss(X, rng.integers(C, size=4))
    assert all(p.dtype == np.float64 for p in model.params.values())
    assert all(g.dtype == np.float64 for g in grads.values())


def test_fc_net_flattens_image_input(rng):
    model = FullyConnectedNet([H1], input_dim=3 * 4 * 5, rng_seed=0)
    assert model.loss(rng.standard_normal((6, 3, 4, 5))).shape == (6, 10)


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_same_seed_same_params_and_loss(rng, normalization):
    X = rng.standard_normal((8, D))
    y = rng.integers(C, size=8)
    kw = dict(input_dim=D, normalization=normalization, dropout_keep_ratio=0.6, rng_seed=42)
    a, b = FullyConnectedNet([H1, H2], **kw), FullyConnectedNet([H1, H2], **kw)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    for _ in range(2):      # dropout masks advance identically too
        (la, ga), (lb, gb) = a.loss(X, y), b.loss(X, y)
        assert la == lb
        for name in ga:
            np.testing.assert_array_equal(ga[name], gb[name])
    other = FullyConnectedNet([H1, H2], **{**kw, "rng_seed": 43})
    assert not np.array_equal(a.params["W1"], other.params["W1"])


def test_fc_net_seed_leaves_global_rng_untouched(rng):
    before = np.random.get_state()
    model = FullyConnectedNet([H1], input_dim=D, dropout_keep_ratio=0.5, rng_seed=5)
    model.loss(rng.standard_normal((3, D)), rng.integers(C, size=3))
    after = np.random.get_state()
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_fc_net_state_arrays_round_trip(rng):
    model = FullyConnectedNet([H1, H2], input_dim=D, normalization="batchnorm", dtype=np.float64, rng_seed=0)
    assert model.state_arrays() == {}           # created on first use
    X1, X2 = rng.standard_normal((2, 16, D))
    y = rng.integers(C, size=16)
    model.loss(X1, y)
    state = model.state_arrays()
    assert set(state) == {"running_mean1", "running_var1", "running_mean2", "running_var2"}
    assert state["running_mean1"].shape == (H1,) and state["running_var2"].shape == (H2,)
    scores = model.loss(X2)
    # the snapshot is a copy: training further changes the model, not the snapshot
    snapshot = {k: v.copy() for k, v in state.items()}
    model.loss(X2, y)
    for k in state:
        np.testing.assert_array_equal(state[k], snapshot[k])
    assert not np.array_equal(model.loss(X2), scores)
    model.load_state_arrays(state)
    np.testing.assert_array_equal(model.loss(X2), scores)
    # and into a fresh model with the same weights
    fresh = FullyConnectedNet([H1, H2], input_dim=D, normalization="batchnorm", dtype=np.float64, rng_seed=0)
    fresh.load_state_arrays(state)
    np.testing.assert_array_equal(fresh.loss(X2), scores)
    state["running_mean1"][:] = 7.0             # loading copied the arrays
    np.testing.assert_array_equal(fresh.loss(X2), scores)


def test_fc_net_state_arrays_empty_without_batchnorm(rng):
    for normalization in (None, "layernorm"):
        model = FullyConnectedNet([H1], input_dim=D, normalization=normalization, rng_seed=0)
        model.loss(rng.standard_normal((4, D)), rng.integers(C, size=4))
        assert model.state_arrays() == {}


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(normalization="groupnorm"), ValueError, "'groupnorm'"),
    (dict(normalization="BatchNorm"), ValueError, "'BatchNorm'"),
    (dict(hidden_dims=[20, 0]), ValueError, r"positive.*got 0"),
    (dict(hidden_dims=[20, 2.5]), ValueError, r"2\.5"),
    (dict(dropout_keep_ratio=0), ValueError, r"\(0, 1\].*got 0"),
    (dict(dropout_keep_ratio=1.5), ValueError, r"1\.5"),
    (dict(dtype=np.int32), TypeError, "int32"),
    (dict(weight_scale=np.nan), ValueError, r"weight_scale must be a finite number > 0 .*got nan"),
    (dict(weight_scale=np.inf), ValueError, r"weight_scale .*got inf"),
    (dict(weight_scale=0), ValueError, r"weight_scale must be a finite number > 0 .*got 0"),
    (dict(weight_scale="kaiming"), ValueError, r"weight_scale .*got 'kaiming'"),
    (dict(reg=np.nan), ValueError, r"reg must be a finite number >= 0 \(.*0 turns regularization off\), got nan"),
    (dict(reg=-1), ValueError, r"reg must be a finite number >= 0 .*got -1"),
    (dict(reg=np.inf), ValueError, r"reg .*got inf"),
])
def test_fc_net_bad_construction_raises(kwargs, exc, match):
    args = {"hidden_dims": [H1], "input_dim": D, **kwargs}
    with pytest.raises(exc, match=match):
        FullyConnectedNet(**args)


@pytest.mark.parametrize("face, net", [("normlab.cs231n.classifiers.fc_net", "FullyConnectedNet"),
                                       ("normlab.cs231n_2017.classifiers.fc_net", "FullyConnectedNet"),
                                       ("normlab.nndl.fc_net", "TwoLayerNet"),
                                       ("normlab.nndl_2025.fc_net", "FullyConnectedNet"),
                                       ("normlab.cs231n.classifiers.cnn", "ThreeLayerConvNet"),
                                       ("normlab.nndl.cnn", "ThreeLayerConvNet")])
def test_course_nets_refuse_bad_reg_and_weight_scale(face, net):
    import importlib
    cls = getattr(importlib.import_module(face), net)
    kw = {"hidden_dims": [H1]} if net == "FullyConnectedNet" else {}
    with pytest.raises(ValueError, match=r"reg must be a finite number >= 0 .*got -1"):
        cls(**kw, reg=-1)
    with pytest.raises(ValueError, match=r"weight_scale must be a finite number > 0 .*got nan"):
        cls(**kw, weight_scale=float("nan"))


def test_nets_tell_their_number_of_classes():
    assert FullyConnectedNet([H1], input_dim=D, num_classes=7, rng_seed=0).num_classes == 7
    assert ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7, num_classes=5,
                             rng_seed=0).num_classes == 5
    assert FullyConnectedNet([H1], input_dim=D, reg=np.float32(0.5), weight_scale=np.array(1e-2)).reg == 0.5


def test_fc_net_bad_labels_and_input_raise(rng):
    model = FullyConnectedNet([H1], input_dim=D, rng_seed=0)
    X = rng.standard_normal((3, D))
    with pytest.raises(ValueError, match="label 10"):
        model.loss(X, np.array([0, 10, 2]))
    with pytest.raises(ValueError, match="label -1"):
        model.loss(X, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match=r"D=14"):
        model.loss(rng.standard_normal((3, D - 1)))


# ------------------------------------------------------------------ ThreeLayerConvNet

# Measured (N=4): max rel_error None 1.2e-7, batchnorm 3.4e-6, groupnorm 4.4e-7 (norm-wise <= 7.8e-8).
# N=4, not 2: the hidden batch norm over two samples is ill-conditioned (see above).
@pytest.mark.parametrize("normalization", [None, "batchnorm", "groupnorm"])
def test_conv_net_gradient_check(normalization):
    r = np.random.default_rng(0)
    X = r.standard_normal((4, 3, 8, 8))
    y = r.integers(10, size=4)
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7, reg=0.5,
                              weight_scale=5e-2, dtype=np.float64, normalization=normalization, num_groups=2, rng_seed=0)
    loss, grads = model.loss(X, y)
    assert np.isfinite(loss)
    _assert_net_gradients(model, grads, _numeric_grads(model, X, y), rel_tol=1e-5)


@pytest.mark.parametrize("normalization", [None, "batchnorm", "groupnorm"])
def test_conv_net_scores_shape_dtype_and_params(rng, normalization):
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7,
                              normalization=normalization, num_groups=2, rng_seed=0)
    assert all(p.dtype == np.float32 for p in model.params.values())
    expected = {"W1": (4, 3, 3, 3), "b1": (4,), "W2": (4 * 4 * 4, 7), "b2": (7,), "W3": (7, 10), "b3": (10,)}
    if normalization:
        expected.update(gamma1=(4,), beta1=(4,), gamma2=(7,), beta2=(7,))
    assert {k: v.shape for k, v in model.params.items()} == expected
    scores = model.loss(rng.standard_normal((5, 3, 8, 8)))
    assert scores.shape == (5, 10) and scores.dtype == np.float32


def test_conv_net_initial_loss_is_log_num_classes(rng):
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7, rng_seed=0)
    loss, _ = model.loss(rng.standard_normal((20, 3, 8, 8)), rng.integers(10, size=20))
    assert abs(loss - np.log(10)) < 0.01


def test_conv_net_same_seed_same_params():
    a = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7, rng_seed=9)
    b = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7, rng_seed=9)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_conv_net_bad_input_shape_raises(rng):
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7, rng_seed=0)
    with pytest.raises(ValueError, match=r"\(3, 6, 6\).*\(3, 8, 8\)"):
        model.loss(rng.standard_normal((2, 3, 6, 6)))
    with pytest.raises(ValueError, match=r"4-D.*\(2, 192\)"):
        model.loss(rng.standard_normal((2, 192)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(normalization="layernorm"), "'layernorm'"),
    (dict(input_dim=(8, 8)), r"\(C, H, W\)"),
    (dict(filter_size=4), "odd"),
    (dict(normalization="groupnorm", num_filters=6, num_groups=4), "divisible"),
    (dict(weight_scale=np.nan), r"weight_scale must be a finite number > 0 .*got nan"),
    (dict(weight_scale=-1e-3), r"weight_scale .*got -0\.001"),
    (dict(reg=np.nan), r"reg must be a finite number >= 0 .*got nan"),
    (dict(reg=-1), r"reg must be a finite number >= 0 .*got -1"),
])
def test_conv_net_bad_construction_raises(kwargs, match):
    args = {"input_dim": (3, 8, 8), "num_filters": 4, "filter_size": 3, "hidden_dim": 7, **kwargs}
    with pytest.raises(ValueError, match=match):
        ThreeLayerConvNet(**args)


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_float32_is_float32_throughout_training(monkeypatch, rng, normalization):
    """No float64 leaks into a float32 net: every array a layer returns (outputs, caches, gradients),
    every parameter, gradient and Adam state is float32 after training steps. (The crosscheck's
    float32 drift of the layer-norm net once looked like the NumPy side computing in float64.)"""
    from normlab import optim
    from normlab.nets import fc as fc_net
    from normlab.nets import norms

    leaks = []

    def audit(where, obj):
        if isinstance(obj, (np.ndarray, np.generic)):
            if obj.dtype.kind in "fc" and obj.dtype != np.float32:
                leaks.append((where, obj.dtype))
        elif isinstance(obj, dict):
            for k, v in obj.items():
                audit(f"{where}[{k!r}]", v)
        elif isinstance(obj, (tuple, list)):
            for i, v in enumerate(obj):
                audit(f"{where}[{i}]", v)

    layers = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "dropout_forward",
              "dropout_backward", "batchnorm_after_bias", "batchnorm_backward_alt", "layernorm_forward",
              "layernorm_backward"]
    calls = dict.fromkeys(layers, 0)

    def recorded(name, fn):
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            calls[name] += 1
            audit(name, out)
            return out
        return wrapper

    for name in layers[:6]:
        monkeypatch.setattr(fc_net, name, recorded(name, getattr(fc_net, name)))
    if normalization:       # the norm layers as the net calls them: its entry of the normalization table
        entry = norms.NORMALIZATIONS[normalization]
        fwd, bwd = {"batchnorm": layers[6:8], "layernorm": layers[8:]}[normalization]
        assert entry.flat.backward is getattr(norms, bwd)
        flat = dataclasses.replace(entry.flat, forward=recorded(fwd, entry.flat.forward),
                                   backward=recorded(bwd, entry.flat.backward))
        monkeypatch.setitem(norms.NORMALIZATIONS, normalization, dataclasses.replace(entry, flat=flat))
    model = FullyConnectedNet([H1, H2], input_dim=D, normalization=normalization, dropout_keep_ratio=0.8,
                              reg=0.1, rng_seed=0)
    X = rng.standard_normal((8, D))       # float64 data, cast by the model
    y = rng.integers(C, size=8)
    configs = {k: {"learning_rate": 1e-3} for k in model.params}
    for _ in range(3):
        loss, grads = model.loss(X, y)
        audit("grads", grads)
        for k in model.params:
            model.params[k], configs[k] = optim.adam(model.params[k], grads[k], configs[k])
    audit("params", model.params)
    audit("adam state", configs)
    audit("bn_params", model.bn_params)
    audit("scores", model.scores(X, "train"))
    assert isinstance(loss, float)
    assert calls["layernorm_backward" if normalization == "layernorm" else "affine_backward"] >= 3
    if normalization:
        assert calls["batchnorm_after_bias" if normalization == "batchnorm" else "layernorm_forward"] > 0
    assert {k for k in ("m", "v") for c in configs.values() if k in c} == {"m", "v"}
    assert not leaks, leaks


# ------------------------------------------------------------------ activation: ReLU (default) or sigmoid

def _smooth_numeric_grads(model, X, y):
    """The loss's gradient by the five-point stencil at h = 1e-3: sigmoid nets have no kinks, and
    central differences at h = 1e-5 leave ~1e-5 of rounding on their smallest entries."""
    f = lambda _: np.array(model.loss(X, y)[0])
    return {name: eval_numerical_gradient_array(f, p, np.array(1.0), h=1e-3, order=4)
            for name, p in model.params.items()}


# Measured (rng_seed 0, data seeds 0-5, N=6, weight scale 0.5), max rel_error over the parameters
# (biases before batch norm excluded): no norm 2e-8 (reg 0) and 2e-8 (0.5); batchnorm 5e-8 and 9e-8.
@pytest.mark.parametrize("normalization", [None, "batchnorm"])
@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_sigmoid_net_gradient_check(normalization, reg):
    X, y = _course_data(n=6)
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg, weight_scale=0.5, dtype=np.float64,
                              normalization=normalization, activation="sigmoid", rng_seed=0)
    assert model.architecture().activation == "sigmoid"
    loss, grads = model.loss(X, y)
    assert np.isfinite(loss)
    _assert_net_gradients(model, grads, _smooth_numeric_grads(model, X, y), rel_tol=1e-6, normwise_tol=1e-8)


def test_relu_is_the_default_and_unchanged(rng):
    X, y = rng.standard_normal((5, D)), rng.integers(C, size=5)
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=0.3, dtype=np.float64, rng_seed=0)
    explicit = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=0.3, dtype=np.float64,
                                 rng_seed=0, activation="relu")
    assert model.activation == "relu" and model.architecture().activation == "relu"
    P = model.params
    h = np.maximum(X @ P["W1"] + P["b1"], 0)
    h = np.maximum(h @ P["W2"] + P["b2"], 0)
    assert np.array_equal(model.loss(X), h @ P["W3"] + P["b3"])
    (a, ga), (b, gb) = model.loss(X, y), explicit.loss(X, y)
    assert a == b and all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_sigmoid_net_forward_closed_form_and_dtype(rng):
    X = rng.standard_normal((5, D))
    for dtype in (np.float32, np.float64):
        model = FullyConnectedNet([H1], input_dim=D, num_classes=C, weight_scale=0.3, dtype=dtype,
                                  activation="sigmoid", rng_seed=0)
        P = {k: v.astype(np.float64) for k, v in model.params.items()}
        want = 1 / (1 + np.exp(-(X @ P["W1"] + P["b1"]))) @ P["W2"] + P["b2"]
        scores = model.loss(X)
        assert scores.dtype == dtype
        np.testing.assert_allclose(scores, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match=r"unknown activation 'tanh'; expected one of 'relu', 'sigmoid'"):
        FullyConnectedNet([H1], input_dim=D, activation="tanh")
    from normlab.nets.architecture import Architecture
    arch = FullyConnectedNet([H1], input_dim=D).architecture()
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        dataclasses.replace(arch, activation="gelu")
    with pytest.raises(ValueError, match="the conv net's activations are ReLU"):
        dataclasses.replace(ThreeLayerConvNet(input_dim=(1, 4, 4), filter_size=3).architecture(), activation="sigmoid")
    assert Architecture.__dataclass_fields__["activation"].default == "relu"


# ------------------------------------------------------------------ activation_inputs

@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_activation_inputs_equal_a_manual_forward_and_change_nothing(rng, activation):
    """Train mode: batch norm with the batch's statistics, dropout with the masks model.rng would draw
    next; afterwards running statistics and generator are as before, so training continues exactly
    as without the probe."""
    X, y = rng.standard_normal((8, D)), rng.integers(C, size=8)
    kw = dict(input_dim=D, num_classes=C, weight_scale=0.3, dtype=np.float64, normalization="batchnorm",
              dropout_keep_ratio=0.8, activation=activation, rng_seed=3)
    model, twin = FullyConnectedNet([H1, H2], **kw), FullyConnectedNet([H1, H2], **kw)
    model.loss(X, y)
    twin.loss(X, y)                                 # both with running statistics, both one step in
    state, gen = model.state_arrays(), model.rng.bit_generator.state
    taps = model.activation_inputs(X)

    replay = np.random.default_rng()
    replay.bit_generator.state = gen
    act = (lambda a: np.maximum(a, 0)) if activation == "relu" else (lambda a: 1 / (1 + np.exp(-a)))
    P, h = model.params, X
    assert [t.shape for t in taps] == [(8, H1), (8, H2)]
    for i, tap in enumerate(taps, start=1):
        z = h @ P[f"W{i}"] + P[f"b{i}"]
        want = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5) * P[f"gamma{i}"] + P[f"beta{i}"]
        np.testing.assert_allclose(tap, want, rtol=1e-10, atol=1e-12)
        h = act(tap) * (replay.random(tap.shape) < 0.8) / 0.8
    after = model.state_arrays()
    assert set(after) == set(state) and all(np.array_equal(after[k], state[k]) for k in state)
    assert model.rng.bit_generator.state == gen
    (a, ga), (b, gb) = model.loss(X, y), twin.loss(X, y)
    assert a == b and all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_activation_inputs_in_test_mode_and_on_an_untrained_net(rng):
    X = rng.standard_normal((4, D))
    model = FullyConnectedNet([H1], input_dim=D, num_classes=C, weight_scale=0.3, dtype=np.float64,
                              normalization="batchnorm", rng_seed=0)
    assert model.state_arrays() == {}
    model.activation_inputs(X)
    assert model.state_arrays() == {}                # the probe's running statistics are dropped again
    model.loss(X, rng.integers(C, size=4))
    rm, rv = model.bn_params[0]["running_mean"], model.bn_params[0]["running_var"]
    (tap,) = model.activation_inputs(X, mode="test")
    z = X @ model.params["W1"] + model.params["b1"]
    np.testing.assert_allclose(tap, (z - rm) / np.sqrt(rv + 1e-5) * model.params["gamma1"] + model.params["beta1"],
                               rtol=1e-10, atol=1e-12)
    plain = FullyConnectedNet([H1], input_dim=D, num_classes=C, dtype=np.float64, rng_seed=0)
    (tap,) = plain.activation_inputs(X)
    np.testing.assert_array_equal(tap, X @ plain.params["W1"] + plain.params["b1"])
    with pytest.raises(ValueError, match="unknown mode 'eval'"):
        plain.activation_inputs(X, mode="eval")


def test_activation_inputs_restore_the_global_generator_without_rng_seed(rng):
    X = rng.standard_normal((4, D))
    np.random.seed(0)
    model = FullyConnectedNet([H1], input_dim=D, num_classes=C, dropout_keep_ratio=0.5, dtype=np.float64)
    before = np.random.get_state()[1].copy()
    model.activation_inputs(X)
    assert np.array_equal(np.random.get_state()[1], before)


# --- norm_position and dropout_position (issue 14) ---------------------------------------

@pytest.mark.parametrize("kw", [
    {"normalization": "batchnorm", "norm_position": "after"},
    {"normalization": "layernorm", "norm_position": "after"},
    {"normalization": "batchnorm", "dropout_keep_ratio": 0.6, "dropout_position": "before_norm"},
    {"normalization": "batchnorm", "dropout_keep_ratio": 0.6, "dropout_position": "last_layer"},
    {"normalization": "batchnorm", "dropout_keep_ratio": 0.6, "norm_position": "after",
     "dropout_position": "before_norm"},
], ids=["bn-after", "ln-after", "bn-drop-before-norm", "bn-drop-last", "bn-after-drop-before-norm"])
def test_fc_net_positions_gradient_check(kw):
    X, y = _course_data(n=6)
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=0.1, weight_scale=5e-2,
                              dtype=np.float64, rng_seed=0, **kw)
    for name in [k for k in model.params if k.startswith("beta")]:
        # off ReLU's kink: a unit whose inputs dropout zeroed all would output exactly beta = 0
        model.params[name] += 0.1 * np.random.default_rng(3).standard_normal(model.params[name].shape)
    reset = _reset_dropout_rng(model) if model.use_dropout else (lambda: None)
    reset()
    loss, grads = model.loss(X, y)
    numeric = _numeric_grads(model, X, y, reset)
    for name in model.params:
        a, n = grads[name], numeric[name]
        assert np.abs(a - n).max() <= 1e-6 * np.abs(n).max() + 1e-10, (name, np.abs(a - n).max())


def test_fc_net_norm_after_activation_is_the_layers_in_that_order(rng):
    from normlab.nn.basic import affine_forward, relu_forward
    from normlab.nn.norm.batchnorm import batchnorm_forward
    X = rng.standard_normal((8, 5))
    model = FullyConnectedNet([4], input_dim=5, num_classes=3, dtype=np.float64, normalization="batchnorm",
                              norm_position="after", weight_scale=0.5, rng_seed=1)
    model.params["b1"] += rng.standard_normal(4)     # a bias the ReLU must see
    p = model.params
    h = relu_forward(affine_forward(X, p["W1"], p["b1"])[0])[0]
    h = batchnorm_forward(h, p["gamma1"], p["beta1"], {"mode": "train"})[0]
    np.testing.assert_allclose(model.scores(X, "train"), h @ p["W2"] + p["b2"], rtol=1e-12)
    assert model.architecture().norm_position == "after"
    np.testing.assert_allclose(model.norm_inputs(X)[0], relu_forward(X @ p["W1"] + p["b1"])[0], rtol=1e-12)


def test_fc_net_dropout_positions_decide_which_norms_see_dropped_units(rng):
    X = rng.standard_normal((64, 5))
    kw = dict(input_dim=5, num_classes=3, dtype=np.float64, normalization="batchnorm", dropout_keep_ratio=0.5,
              weight_scale=0.5, rng_seed=2)
    last = FullyConnectedNet([6, 6], dropout_position="last_layer", **kw)
    every = FullyConnectedNet([6, 6], **kw)
    # the second norm sees dropped units only with dropout after every activation
    assert not np.any(last.norm_inputs(X, "train")[1] == 0)
    every.params["W2"] = np.abs(every.params["W2"])
    h = every.norm_inputs(X, "train")[1]
    assert 0 < np.mean(h) and np.var(h, axis=0).mean() > 0
    before = FullyConnectedNet([6, 6], dropout_position="before_norm", **kw)
    tr, te = before.norm_inputs(X, "train"), before.norm_inputs(X, "test")
    assert np.mean(tr[0] == 0) > 0.3 and not np.any(te[0] == 0)
    assert [FullyConnectedNet([6, 6], dropout_position=d, **kw)._layer_ops(1) for d in
            ("after_activation", "before_norm", "last_layer")] == [["norm", "act", "drop"],
                                                                   ["drop", "norm", "act"], ["norm", "act"]]


@pytest.mark.parametrize("kwargs, match", [
    ({"norm_position": "middle"}, "norm_position 'middle'"),
    ({"dropout_position": "first"}, "dropout_position 'first'"),
    ({"dropout_position": "before_norm", "dropout_keep_ratio": 0.5}, "normalization=None"),
])
def test_fc_net_bad_positions_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FullyConnectedNet([4], input_dim=3, num_classes=2, **kwargs)
