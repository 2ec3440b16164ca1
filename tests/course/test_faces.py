"""The course faces as adapters: every module a course imports exists with its
names, semantics are translated at the edge (drop vs keep probability, state
keys, the Solver's schedule), and nothing computes twice."""
import importlib

import numpy as np
import pytest

from normlab import optim as core_optim
from normlab.faces.dropout import drop_dropout_forward
from normlab.faces.optim import with_state_names
from normlab.nets.fc import FullyConnectedNet

MODULES = {
    "normlab.cs231n": {
        "layers": ["affine_forward", "batchnorm_backward_alt", "layernorm_forward", "dropout_forward",
                   "spatial_groupnorm_forward", "conv_forward_naive", "max_pool_backward_naive", "softmax_loss"],
        "layer_utils": ["affine_relu_forward", "conv_relu_pool_backward", "conv_bn_relu_forward"],
        "fast_layers": ["conv_forward_fast", "conv_backward_strides", "max_pool_forward_reshape"],
        "classifiers.fc_net": ["FullyConnectedNet", "affine_forward", "dropout_forward", "affine_relu_forward"],
        "classifiers.cnn": ["ThreeLayerConvNet", "conv_forward_fast", "conv_relu_pool_forward"],
        "optim": ["sgd", "sgd_momentum", "rmsprop", "adam"],
        "solver": ["Solver"],
        "gradient_check": ["eval_numerical_gradient", "eval_numerical_gradient_array", "grad_check_sparse"],
        "data_utils": ["get_CIFAR10_data", "load_CIFAR10"],
    },
    "normlab.nndl": {
        "layers": ["affine_forward", "relu_backward", "batchnorm_forward", "batchnorm_backward", "dropout_forward",
                   "dropout_backward", "svm_loss", "softmax_loss"],
        "conv_layers": ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
                        "spatial_batchnorm_forward", "spatial_batchnorm_backward", "affine_forward"],
        "layer_utils": ["affine_relu_forward", "affine_relu_backward", "affine_batchnorm_relu_forward"],
        "conv_layer_utils": ["conv_relu_forward", "conv_relu_pool_backward", "conv_forward_fast"],
        "fc_net": ["FullyConnectedNet", "TwoLayerNet", "affine_relu_forward"],
        "cnn": ["ThreeLayerConvNet", "conv_forward_naive", "conv_relu_pool_forward", "max_pool_forward_fast"],
        "optim": ["sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam"],
        "solver": ["Solver"],
        "gradient_check": ["eval_numerical_gradient", "eval_numerical_gradient_array"],
        "data_utils": ["get_CIFAR10_data"],
        "fast_layers": ["conv_forward_fast", "conv_backward_fast", "max_pool_forward_fast"],
        "layer_tests": ["affine_forward_test", "fc_net_test"],
    },
}
MODULES["normlab.cs231n_2019"] = {**MODULES["normlab.cs231n"],
                                  "classifiers.fc_net": ["FullyConnectedNet", "TwoLayerNet", "affine_forward"]}
MODULES["normlab.cs231n_2017"] = MODULES["normlab.cs231n_2019"]
MODULES["normlab.nndl_2025"] = MODULES["normlab.nndl"]


@pytest.mark.parametrize("package, module", [(p, m) for p, mods in MODULES.items() for m in mods])
def test_every_course_module_exports_the_course_names(package, module):
    mod = importlib.import_module(f"{package}.{module}")
    missing = [n for n in MODULES[package][module] if not hasattr(mod, n)]
    assert not missing, missing
    star = {}
    exec(f"from {package}.{module} import *", star)      # the notebooks' own import
    assert not [n for n in MODULES[package][module] if n not in star]


def test_faces_reuse_the_core_functions():
    """One implementation: the faces' layers are normlab's objects, not copies."""
    import normlab.layers as L
    from normlab.cs231n import layers as cs
    from normlab.nndl import conv_layers as nn_conv
    from normlab.nndl import layers as nn
    for name in ("affine_forward", "batchnorm_forward", "batchnorm_backward_alt", "softmax_loss"):
        assert getattr(cs, name) is getattr(L, name)
    assert nn.batchnorm_backward is L.batchnorm_backward and nn_conv.conv_forward_naive is L.conv_forward_naive
    assert nn.dropout_backward is L.dropout_backward and nn.dropout_forward is not L.dropout_forward


# ------------------------------------------------------------------ dropout

@pytest.mark.parametrize("rule, keep", [("nndl", lambda u, p: u < 1 - p), ("cs231n_2017", lambda u, p: u >= p)])
def test_drop_probability_masks(rule, keep):
    x = np.random.default_rng(0).standard_normal((40, 50))
    p = 0.3
    np.random.seed(5)
    u = np.random.rand(*x.shape)
    out, cache = drop_dropout_forward(x, {"mode": "train", "p": p, "seed": 5}, rule)
    mask = keep(u, p) / (1 - p)
    np.testing.assert_array_equal(out, x * mask)
    again, _ = drop_dropout_forward(x, {"mode": "train", "p": p, "seed": 5}, rule)
    np.testing.assert_array_equal(out, again)                     # a seed fixes the mask
    dout = np.random.default_rng(1).standard_normal(x.shape)
    from normlab.layers import dropout_backward
    np.testing.assert_array_equal(dropout_backward(dout, cache), dout * mask)
    out, cache = drop_dropout_forward(x, {"mode": "train", "p": 0.0}, rule)
    np.testing.assert_array_equal(out, x)                         # p = 0 drops nothing


@pytest.mark.parametrize("param, exc, match", [
    ({"mode": "train", "p": 1.0}, ValueError, r"DROPPING a unit.*\[0, 1\), got 1.0"),
    ({"mode": "train", "p": -0.1}, ValueError, r"got -0.1"),
    ({"mode": "train"}, ValueError, r"got None"),
    ({"mode": "eval", "p": 0.5}, ValueError, r"unknown mode 'eval'"),
    ({"mode": "train", "p": 0.5, "rng": None}, ValueError, r"unknown dropout_param keys \['rng'\]"),
    ([0.5], TypeError, r"dropout_param must be a dict"),
])
def test_drop_probability_dropout_rejects_bad_params(param, exc, match):
    with pytest.raises(exc, match=match):
        drop_dropout_forward(np.ones((2, 3)), param, "nndl")


def test_drop_probability_nets_hold_the_course_p_and_refuse_the_torch_engine():
    pytest.importorskip("torch")
    from normlab.nndl.fc_net import FullyConnectedNet as Nndl
    from normlab.engines.pytorch import TorchModel
    model = Nndl([6], input_dim=4, dropout=0.4)
    assert model.dropout_param["p"] == 0.4
    with pytest.raises(ValueError, match="course's own masks"):
        TorchModel(model)
    TorchModel(Nndl([6], input_dim=4))                            # no dropout: nothing to disagree on


# ------------------------------------------------------------------ optimizers

def test_renamed_state_updates_the_callers_dict_under_the_course_names():
    rmsprop = with_state_names(core_optim.rmsprop, {"a": "cache"})
    w, dw = np.linspace(-1, 1, 6), np.linspace(1, -1, 6)
    config = {"learning_rate": 1e-2}
    w1, returned = rmsprop(w, dw, config)
    assert returned is config and set(config) == {"learning_rate", "decay_rate", "epsilon", "a"}
    ref, ref_config = core_optim.rmsprop(w, dw, {"learning_rate": 1e-2})
    np.testing.assert_array_equal(w1, ref)
    np.testing.assert_array_equal(config["a"], ref_config["cache"])
    with pytest.raises(ValueError, match=r"'cache'.*kept under 'a'"):
        rmsprop(w, dw, {"cache": np.zeros(6)})
    with pytest.raises(ValueError, match=r"unknown rmsprop option\(s\) 'momentum'"):
        rmsprop(w, dw, {"momentum": 0.9})


def test_nesterov_is_the_look_ahead_step():
    """Sutskever et al.'s Nesterov step, evaluated at the look-ahead point, equals the
    rewritten update in the variable w + momentum * v."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    A = A @ A.T + np.eye(5)
    grad = lambda x: A @ x
    mu, lr = 0.9, 1e-2
    theta, v = rng.standard_normal(5), np.zeros(5)      # the classical form, gradient at theta + mu v
    w, config = theta.copy(), {"learning_rate": lr, "momentum": mu}
    for _ in range(20):
        v = mu * v - lr * grad(theta + mu * v)
        theta = theta + v
        w, config = core_optim.sgd_nesterov_momentum(w, grad(w), config)
        np.testing.assert_allclose(w, theta + mu * v, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ the course's Solver schedule

class Recorder:
    """A softmax regression that records every batch it is trained on."""

    def __init__(self, D=4, C=3):
        self.params = {"W": np.zeros((D, C)), "b": np.zeros(C)}
        self.batches = []

    def loss(self, X, y=None):
        from normlab.nn.losses import softmax_loss
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        self.batches.append(X.copy())
        loss, d = softmax_loss(scores, y)
        return loss, {"W": X.T @ d, "b": d.sum(axis=0)}


def _data(n=40, D=4, C=3):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, D))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1)
    return {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}


@pytest.mark.parametrize("face", ["normlab.cs231n", "normlab.cs231n_2017", "normlab.nndl"])
def test_course_solver_draws_batches_and_checks_accuracy_as_the_course(face, capsys):
    Solver = importlib.import_module(face + ".solver").Solver
    data = _data()
    model = Recorder()
    np.random.seed(231)
    solver = Solver(model, data, update_rule="sgd", optim_config={"learning_rate": 0.5}, batch_size=8,
                    num_epochs=2, num_train_samples=10, print_every=3, verbose=True)
    solver.train()
    # the course's draws, replayed: one batch per iteration, then the accuracy
    # checks' subsamples after iteration 1 and at each epoch's end
    np.random.seed(231)
    expected = []
    for t in range(2 * 5):
        expected.append(np.random.choice(40, 8))
        if t in (0, 4, 9):
            np.random.choice(40, 10)                  # train-accuracy subsample; val (20) is not subsampled
    assert len(model.batches) == 10
    for got, idx in zip(model.batches, expected):
        np.testing.assert_array_equal(got, data["X_train"][idx])
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 3
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"(Iteration 1 / 10) loss: {solver.loss_history[0]:f}",
                       f"(Epoch 0 / 2) train acc: {solver.train_acc_history[0]:f}; val_acc: {solver.val_acc_history[0]:f}"]
    assert sum(line.startswith("(Iteration") for line in out) == 4      # t = 0, 3, 6, 9


def test_course_solver_resolves_rules_in_its_own_optim_and_resumes(tmp_path):
    from normlab.nndl.solver import Solver
    data = _data()
    with pytest.raises(ValueError, match=r'Invalid update_rule "nesterov"'):
        Solver(Recorder(), data, update_rule="nesterov")
    kwargs = dict(update_rule="rmsprop", optim_config={"learning_rate": 1e-2}, batch_size=8, num_epochs=3,
                  verbose=False)
    np.random.seed(0)
    full = Solver(Recorder(), data, **kwargs)
    full.train()
    assert "a" in full.optim_configs["W"] and "cache" not in full.optim_configs["W"]
    np.random.seed(0)
    first = Solver(Recorder(), data, **{**kwargs, "num_epochs": 1}, checkpoint_name=str(tmp_path / "ck"))
    first.train()
    np.random.seed(99)                                # resuming restores the global generator's state
    resumed = Solver.from_checkpoint(Recorder(), data, tmp_path / "ck_epoch_1", num_epochs=3,
                                     update_rule="rmsprop")
    resumed.train()
    assert resumed.loss_history == full.loss_history
    assert resumed.val_acc_history == full.val_acc_history


def test_course_solver_restores_the_best_parameters_only():
    """As the course: the best weights come back, the batch-norm running statistics
    stay those of the last iteration."""
    from normlab.cs231n.classifiers.fc_net import FullyConnectedNet as Net
    from normlab.cs231n.solver import Solver
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = rng.integers(3, size=60)
    data = {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}
    np.random.seed(0)
    model = Net([8], input_dim=5, num_classes=3, normalization="batchnorm")
    loads = []
    model.load_state_arrays = loads.append
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-2}, batch_size=10,
                    num_epochs=4, verbose=False)
    solver.train()
    assert solver.best_params and solver.best_state
    for k, v in solver.best_params.items():
        np.testing.assert_array_equal(model.params[k], v)
    assert loads == []                       # the running statistics were never swapped back


# ------------------------------------------------------------------ seed vs rng_seed

def test_seed_is_the_courses_and_rng_seed_is_normlabs():
    X = np.random.default_rng(0).standard_normal((4, 6))
    y = np.array([0, 1, 2, 1])
    np.random.seed(7)
    a = FullyConnectedNet([5], input_dim=6, num_classes=3, dropout_keep_ratio=0.5, seed=123, dtype=np.float64)
    np.random.seed(7)
    np.testing.assert_array_equal(a.params["W1"], 1e-2 * np.random.randn(6, 5))   # the global RNG's weights
    assert a.loss(X, y)[0] == a.loss(X, y)[0]                     # the mask is fixed
    b = FullyConnectedNet([5], input_dim=6, num_classes=3, dropout_keep_ratio=0.5, rng_seed=3)
    c = FullyConnectedNet([5], input_dim=6, num_classes=3, dropout_keep_ratio=0.5, rng_seed=3)
    np.testing.assert_array_equal(b.params["W1"], c.params["W1"])
    assert b.loss(X, y)[0] != b.loss(X, y)[0]                     # masks advance with the generator
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match=r"rng_seed must be an integer >= 0"):
            FullyConnectedNet([5], input_dim=6, rng_seed=bad)


def test_run_specs_keep_their_hashes():
    """Stored runs stay valid: a spec hashes as before the seed keyword moved
    (build_model now maps the spec's seed to rng_seed, not into the spec)."""
    from normlab.experiments import bn_vs_baseline
    cfg = bn_vs_baseline.Config(engine="numpy")
    first = {s.name: s.spec_hash for s in bn_vs_baseline.runs(cfg)}
    assert first["baseline/seed=0"] == "c741320c8afd9f419359e52f68feaa493729cd5c45c29cf0ef235eac8aa7dc59"
    assert first["baseline/seed=1"] == "d8b4452c272b4d16a619f889e7873ebed745574e5ea98b2c8fb14343a238b097"
