"""The public API of SPEC section 1: every name exists where the spec says, with the course
signature (parameter names, order and defaults). Extra normlab parameters may follow the
course's, but only with defaults, so notebook calls keep working."""
import importlib
import inspect

import numpy as np
import pytest

REQUIRED = object()   # marks a parameter without a default

FWD_BWD = {"dout": REQUIRED, "cache": REQUIRED}

LAYERS = {
    "affine_forward": {"x": REQUIRED, "w": REQUIRED, "b": REQUIRED},
    "affine_backward": FWD_BWD,
    "relu_forward": {"x": REQUIRED},
    "relu_backward": FWD_BWD,
    "softmax_loss": {"x": REQUIRED, "y": REQUIRED},
    "svm_loss": {"x": REQUIRED, "y": REQUIRED},
    "dropout_forward": {"x": REQUIRED, "dropout_param": REQUIRED},
    "dropout_backward": FWD_BWD,
    "batchnorm_forward": {"x": REQUIRED, "gamma": REQUIRED, "beta": REQUIRED, "bn_param": REQUIRED},
    "batchnorm_backward": FWD_BWD,
    "batchnorm_backward_alt": FWD_BWD,
    "layernorm_forward": {"x": REQUIRED, "gamma": REQUIRED, "beta": REQUIRED, "ln_param": REQUIRED},
    "layernorm_backward": FWD_BWD,
    "spatial_batchnorm_forward": {"x": REQUIRED, "gamma": REQUIRED, "beta": REQUIRED, "bn_param": REQUIRED},
    "spatial_batchnorm_backward": FWD_BWD,
    "spatial_groupnorm_forward": {"x": REQUIRED, "gamma": REQUIRED, "beta": REQUIRED, "G": REQUIRED,
                                  "gn_param": REQUIRED},
    "spatial_groupnorm_backward": FWD_BWD,
    "conv_forward_naive": {"x": REQUIRED, "w": REQUIRED, "b": REQUIRED, "conv_param": REQUIRED},
    "conv_backward_naive": FWD_BWD,
    "max_pool_forward_naive": {"x": REQUIRED, "pool_param": REQUIRED},
    "max_pool_backward_naive": FWD_BWD,
    "conv_forward_fast": {"x": REQUIRED, "w": REQUIRED, "b": REQUIRED, "conv_param": REQUIRED},
    "conv_backward_fast": FWD_BWD,
    "max_pool_forward_fast": {"x": REQUIRED, "pool_param": REQUIRED},
    "max_pool_backward_fast": FWD_BWD,
}

_XWB = {"x": REQUIRED, "w": REQUIRED, "b": REQUIRED}
_GB = {"gamma": REQUIRED, "beta": REQUIRED}
LAYER_UTILS = {
    "affine_relu_forward": _XWB,
    "affine_bn_relu_forward": {**_XWB, **_GB, "bn_param": REQUIRED},
    "affine_ln_relu_forward": {**_XWB, **_GB, "ln_param": REQUIRED},
    "conv_relu_forward": {**_XWB, "conv_param": REQUIRED},
    "conv_relu_pool_forward": {**_XWB, "conv_param": REQUIRED, "pool_param": REQUIRED},
    "conv_bn_relu_forward": {**_XWB, **_GB, "conv_param": REQUIRED, "bn_param": REQUIRED},
    "conv_bn_relu_pool_forward": {**_XWB, **_GB, "conv_param": REQUIRED, "bn_param": REQUIRED,
                                  "pool_param": REQUIRED},
}
LAYER_UTILS.update({name.replace("_forward", "_backward"): FWD_BWD for name in list(LAYER_UTILS)})

GRADIENT_CHECK = {
    "eval_numerical_gradient": {"f": REQUIRED, "x": REQUIRED, "verbose": True, "h": 1e-5},
    "eval_numerical_gradient_array": {"f": REQUIRED, "x": REQUIRED, "df": REQUIRED, "h": 1e-5},
    "grad_check_sparse": {"f": REQUIRED, "x": REQUIRED, "analytic_grad": REQUIRED, "num_checks": 10, "h": 1e-5},
    "rel_error": {"x": REQUIRED, "y": REQUIRED},
}

OPTIM = {name: {"w": REQUIRED, "dw": REQUIRED, "config": None}
         for name in ("sgd", "sgd_momentum", "rmsprop", "adam")}

MODELS = {
    "FullyConnectedNet": {"hidden_dims": REQUIRED, "input_dim": 3 * 32 * 32, "num_classes": 10,
                          "dropout_keep_ratio": 1, "normalization": None, "reg": 0.0, "weight_scale": 1e-2,
                          "dtype": np.float32, "seed": None},
    "ThreeLayerConvNet": {"input_dim": (3, 32, 32), "num_filters": 32, "filter_size": 7, "hidden_dim": 100,
                          "num_classes": 10, "weight_scale": 1e-3, "reg": 0.0, "dtype": np.float32,
                          "normalization": None},
}

DATA = {
    "get_CIFAR10_data": {"num_training": 49000, "num_validation": 1000, "num_test": 1000, "subtract_mean": True,
                         "data_dir": None, "download": False},
    "load_fashion_mnist": {"data_dir": None, "download": False},
    "load_mnist": {"data_dir": None, "download": False},
}

SOLVER_OPTIONS = {"update_rule": "sgd", "optim_config": {}, "lr_decay": 1.0, "batch_size": 100, "num_epochs": 10,
                  "num_train_samples": 1000, "num_val_samples": None, "checkpoint_name": None, "print_every": 10,
                  "verbose": True}


def _same_default(actual, expected):
    if expected is np.float32:
        return np.dtype(actual) == np.float32
    return type(actual) is type(expected) and actual == expected or (
        isinstance(expected, (int, float)) and not isinstance(expected, bool)
        and isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual == expected)


def assert_course_signature(func, expected, skip_self=False):
    """The course's parameters come first, in order, positional-or-keyword, with the course's
    defaults; any further parameter has a default (or is *args/**kwargs)."""
    params = list(inspect.signature(func).parameters.values())
    if skip_self:
        params = params[1:]
    names = [p.name for p in params]
    assert names[:len(expected)] == list(expected), f"{func.__qualname__}{inspect.signature(func)}"
    for p, (name, default) in zip(params, expected.items()):
        assert p.kind is p.POSITIONAL_OR_KEYWORD, f"{func.__qualname__}: {name} is {p.kind}"
        if default is REQUIRED:
            assert p.default is p.empty, f"{func.__qualname__}: {name} should have no default"
        else:
            assert p.default is not p.empty and _same_default(p.default, default), \
                f"{func.__qualname__}: {name}={p.default!r}, course default {default!r}"
    for p in params[len(expected):]:
        assert p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD), \
            f"{func.__qualname__}: extra parameter {p.name} needs a default"


def _cases(module, table):
    return [pytest.param(module, name, sig, id=f"{module}.{name}") for name, sig in table.items()]


@pytest.mark.parametrize("module, name, expected",
                         _cases("normlab.layers", LAYERS) + _cases("normlab.layer_utils", LAYER_UTILS)
                         + _cases("normlab.gradient_check", GRADIENT_CHECK) + _cases("normlab.optim", OPTIM))
def test_function_exists_with_course_signature(module, name, expected):
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{module}.{name} is missing"
    assert callable(getattr(mod, name))
    assert_course_signature(getattr(mod, name), expected)


@pytest.mark.parametrize("module, table", [("normlab.layers", LAYERS), ("normlab.layer_utils", LAYER_UTILS),
                                           ("normlab.gradient_check", GRADIENT_CHECK), ("normlab.optim", OPTIM),
                                           ("normlab.models", MODELS)])
def test_public_names_are_exported(module, table):
    mod = importlib.import_module(module)
    assert set(table) <= set(mod.__all__)
    namespace = {}
    exec(f"from {module} import *", namespace)   # noqa: S102 - the star import users write
    assert set(table) <= set(namespace)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_class_signature(name):
    models = importlib.import_module("normlab.models")
    cls = getattr(models, name)
    assert_course_signature(cls.__init__, MODELS[name], skip_self=True)
    assert_course_signature(cls.loss, {"X": REQUIRED, "y": None}, skip_self=True)


def test_model_legacy_keyword_exists():
    from normlab.models import FullyConnectedNet
    assert "use_batchnorm" in inspect.signature(FullyConnectedNet).parameters


def test_optim_standard_defaults():
    from normlab import optim
    w, dw = np.ones(3), np.ones(3)
    _, c = optim.sgd(w, dw)
    assert c["learning_rate"] == 1e-2
    _, c = optim.sgd_momentum(w, dw)
    assert c["learning_rate"] == 1e-2 and c["momentum"] == 0.9
    _, c = optim.rmsprop(w, dw)
    assert c["learning_rate"] == 1e-2 and c["decay_rate"] == 0.99 and c["epsilon"] == 1e-8
    _, c = optim.adam(w, dw)
    assert (c["learning_rate"], c["beta1"], c["beta2"], c["epsilon"]) == (1e-3, 0.9, 0.999, 1e-8)
    assert c["t"] == 1     # incremented before use


class _TinyModel:
    def __init__(self):
        self.params = {"W": np.zeros((2, 3))}

    def loss(self, X, y=None):
        scores = X @ self.params["W"]
        if y is None:
            return scores
        return 0.0, {"W": np.zeros_like(self.params["W"])}


def _tiny_data():
    X = np.ones((4, 2))
    y = np.zeros(4, dtype=int)
    return {"X_train": X, "y_train": y, "X_val": X, "y_val": y}


def test_solver_signature_and_defaults():
    from normlab import optim
    from normlab.solver import Solver
    sig = inspect.signature(Solver)
    params = list(sig.parameters.values())
    assert [p.name for p in params[:2]] == ["model", "data"]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        # explicit keywords: compare them with the course's
        assert_course_signature(Solver.__init__, {"model": REQUIRED, "data": REQUIRED, **SOLVER_OPTIONS},
                                skip_self=True)
    # either way (the course's own Solver takes **kwargs), the defaults are the course's
    solver = Solver(_TinyModel(), _tiny_data())
    for option, default in SOLVER_OPTIONS.items():
        if option == "update_rule":
            assert solver.update_rule in ("sgd", optim.sgd)
        else:
            assert getattr(solver, option) == default, option
    with pytest.raises(ValueError, match="batch_sise"):
        Solver(_TinyModel(), _tiny_data(), batch_sise=10)


def test_solver_public_members():
    from normlab.solver import Solver
    assert_course_signature(Solver.check_accuracy, {"X": REQUIRED, "y": REQUIRED, "num_samples": None,
                                                    "batch_size": 100}, skip_self=True)
    assert callable(Solver.train)
    solver = Solver(_TinyModel(), _tiny_data(), verbose=False)
    for attr in ("loss_history", "train_acc_history", "val_acc_history", "best_val_acc", "best_params"):
        assert hasattr(solver, attr), attr


@pytest.mark.parametrize("name", list(DATA))
def test_data_loader_signature(name):
    data = pytest.importorskip("normlab.data")
    assert hasattr(data, name), f"normlab.data.{name} is missing"
    assert_course_signature(getattr(data, name), DATA[name])
