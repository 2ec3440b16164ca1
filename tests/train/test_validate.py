"""The Solver's option checks (``normlab.train._validate``): each refuses with the
message the Solver has always given, naming the option, the value and the fix."""
import numpy as np
import pytest

from normlab import optim
from normlab.train import _validate as v


def test_known_options_fills_defaults_and_names_the_unknown():
    assert v.known_options({"batch_size": 5}) == {**v.OPTIONS, "batch_size": 5}
    with pytest.raises(ValueError, match=r"^unknown Solver option\(s\) 'lr', 'momentum'; allowed: update_rule, "):
        v.known_options({"momentum": 0.9, "lr": 1.0})


@pytest.mark.parametrize("value, allow_none, match", [
    (0, False, r"^batch_size must be an integer >= 1, got 0$"),
    (True, False, r"^batch_size must be an integer >= 1, got True$"),
    (2.0, True, r"^batch_size must be an integer >= 1 or None, got 2\.0$"),
])
def test_int_option_refuses(value, allow_none, match):
    with pytest.raises(ValueError, match=match):
        v.int_option(value, "batch_size", 1, allow_none)


def test_int_option_accepts():
    assert v.int_option(np.int64(3), "n", 1) == 3 and type(v.int_option(np.int64(3), "n", 1)) is int
    assert v.int_option(None, "n", 1, allow_none=True) is None


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "0.9"])
def test_lr_decay_refuses(value):
    with pytest.raises(ValueError, match=r"^lr_decay must be a finite number > 0, got "):
        v.lr_decay(value)


def test_flag_refuses_truthy_stand_ins():
    assert v.flag(False, "restore_best") is False
    with pytest.raises(ValueError, match=r"^restore_best must be True or False, got 1$"):
        v.flag(1, "restore_best")


def test_update_rule_names_optim_functions_and_copies_the_config():
    config = {"learning_rate": 1e-3}
    name, fn, got = v.update_rule(optim.adam, config)
    assert (name, fn, got) == ("adam", optim.adam, config) and got is not config
    assert v.update_rule("sgd", None) == ("sgd", optim.sgd, {})

    def mine(w, dw, config):
        return w, config
    assert v.update_rule(mine, None) == (None, mine, {})
    with pytest.raises(ValueError, match=r"^update_rule must be a name in \['sgd'.* or a callable, got 3$"):
        v.update_rule(3, None)


class _Model:
    def __init__(self, **params):
        self.params = params


def test_model_classes_from_num_classes_or_the_last_weight():
    m = _Model(W1=np.zeros((4, 6)), W2=np.zeros((6, 5)), b2=np.zeros(5))
    assert v.model_classes(m) == (5, "the model's output weight W2 has 5 columns")
    m.num_classes = 7
    assert v.model_classes(m) == (7, "the model has 7 classes")
    assert v.model_classes(_Model(W=np.zeros((4, 6)))) == (None, "")


def test_checked_data_returns_the_four_arrays_and_refuses_a_bad_model():
    rng = np.random.default_rng(0)
    data = {"X_train": rng.standard_normal((4, 3)), "y_train": np.array([0, 1, 0, 1]),
            "X_val": rng.standard_normal((2, 3)), "y_val": np.array([1, 1]), "extra": None}
    got = v.checked_data(_Model(W1=np.zeros((3, 2))), data)
    assert all(a is data[k] for a, k in zip(got, ("X_train", "y_train", "X_val", "y_val")))
    with pytest.raises(TypeError, match=r"^model must have a dict attribute 'params', got object$"):
        v.checked_data(object(), data)
    with pytest.raises(ValueError, match=r"^data is missing X_val, y_val; expected"):
        v.checked_data(_Model(), {"X_train": data["X_train"], "y_train": data["y_train"]})
    with pytest.raises(ValueError, match=r"^X_val has per-sample shape \(2,\), X_train \(3,\)"):
        v.checked_data(_Model(), {**data, "X_val": np.zeros((2, 2))})


def test_accuracy_labels_and_predictable():
    with pytest.raises(ValueError, match=r"^X and y must be non-empty and of equal length, got 3 and 2$"):
        v.accuracy_labels(np.zeros((3, 2)), np.array([0, 1]))
    labels = v.accuracy_labels(np.zeros((2, 2)), [0, 3])
    v.require_predictable(labels, num_classes=4)
    with pytest.raises(ValueError, match=r"^y\[1\] = 3 is outside 0\.\.2 \(the model scores 3 classes\)"):
        v.require_predictable(labels, num_classes=3)
