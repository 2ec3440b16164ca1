"""Solver: the data are checked once, at construction (issue 11, item 10).

Labels must be integer class indices below the model's number of classes, the
inputs finite, and X and y of one length; each mistake raises naming the key,
the first bad entry and the fix. Before, a y_val of 10 with 10 classes, -1 or
10.5 and a NaN in X_val were accepted and the validation accuracy was quietly
0.0.
"""
import importlib

import numpy as np
import pytest

from normlab.models import FullyConnectedNet, ThreeLayerConvNet
from normlab.solver import Solver

D, C = 8, 10
QUIET = {"verbose": False, "num_epochs": 1, "batch_size": 10}


def _net():
    return FullyConnectedNet([6], input_dim=D, num_classes=C, rng_seed=0)


def _data(n_train=40, n_val=20):
    rng = np.random.default_rng(0)
    return {"X_train": rng.standard_normal((n_train, D)), "y_train": rng.integers(C, size=n_train),
            "X_val": rng.standard_normal((n_val, D)), "y_val": rng.integers(C, size=n_val)}


def _with(key, index, value):
    """_data() with ``data[key][index] = value`` (the array cast to hold it)."""
    data = _data()
    a = data[key].astype(np.result_type(data[key], np.asarray(value)))
    a[index] = value
    data[key] = a
    return data


class LinearModel:
    """Only the required protocol; ``params`` named as the caller likes."""

    def __init__(self, names=("W",), num_classes=None):
        self.params = {n: np.zeros((D, C)) for n in names}
        if num_classes is not None:
            self.num_classes = num_classes

    def loss(self, X, y=None):
        W = next(iter(self.params.values()))
        return X @ W if y is None else (0.0, {n: np.zeros_like(p) for n, p in self.params.items()})


# ------------------------------------------------------------ labels

@pytest.mark.parametrize("key", ["y_val", "y_train"])
@pytest.mark.parametrize("value, match", [
    (10, r"\[3\] = 10 is outside 0\.\.9 \(the model has 10 classes\); labels must be class indices"),
    (-1, r"\[3\] = -1 is outside 0\.\.9"),
    (10.5, r"\[3\] = 10\.5 is not a class index; labels must be integers"),
    (np.nan, r"\[3\] = nan is not a class index"),
    (np.inf, r"\[3\] = inf is not a class index"),
])
def test_labels_outside_the_classes_are_refused(key, value, match):
    with pytest.raises(ValueError, match=f"^{key}{match}"):
        Solver(_net(), _with(key, 3, value), **QUIET)


def test_whole_float_labels_ask_for_an_integer_dtype():
    data = _data()
    data["y_val"] = data["y_val"].astype(np.float64)
    with pytest.raises(ValueError, match=r"y_val holds whole numbers in dtype float64.*y_val\.astype\(np\.int64\)"):
        Solver(_net(), data, **QUIET)


@pytest.mark.parametrize("y, exc, match", [
    (np.zeros((20, 1), dtype=int), ValueError, r"y_val must be a 1-D array \(N,\).*got shape \(20, 1\)"),
    (np.zeros(20, dtype=bool), TypeError, r"y_val must be an integer array.*dtype bool"),
    ([0] * 20, TypeError, r"data\['y_val'\] must be a NumPy array.*got list"),
])
def test_labels_must_be_a_1d_integer_array(y, exc, match):
    data = _data()
    data["y_val"] = y
    with pytest.raises(exc, match=match):
        Solver(_net(), data, **QUIET)


@pytest.mark.parametrize("model, match", [
    (LinearModel(num_classes=C), r"\(the model has 10 classes\)"),
    (LinearModel(names=("W1", "W2")), r"\(the model's output weight W2 has 10 columns\)"),
    (ThreeLayerConvNet(input_dim=(2, 2, 2), num_filters=2, filter_size=1, hidden_dim=3, rng_seed=0),
     r"\(the model has 10 classes\)"),
])
def test_number_of_classes_comes_from_the_model(model, match):
    data = _data()
    if isinstance(model, ThreeLayerConvNet):
        data["X_train"] = data["X_train"].reshape(-1, 2, 2, 2)
        data["X_val"] = data["X_val"].reshape(-1, 2, 2, 2)
    data["y_val"][0] = C
    with pytest.raises(ValueError, match=r"^y_val\[0\] = 10 is outside 0\.\.9 " + match):
        Solver(model, data, **QUIET)
    data["y_val"][0] = C - 1
    Solver(model, data, **QUIET)


def test_model_without_class_count_refuses_negative_labels_then_checks_the_scores():
    model = LinearModel()                       # no num_classes, no numbered weights
    with pytest.raises(ValueError, match=r"^y_val\[3\] = -1 is negative; labels must be class indices"):
        Solver(model, _with("y_val", 3, -1), **QUIET)
    solver = Solver(model, _with("y_val", 3, C), **QUIET)      # the count is unknown until the scores
    with pytest.raises(ValueError, match=r"^y\[3\] = 10 is outside 0\.\.9 \(the model scores 10 classes\)"):
        solver.train()


def test_check_accuracy_refuses_labels_the_model_cannot_predict():
    solver = Solver(_net(), _data(), **QUIET)
    X = np.zeros((5, D))
    with pytest.raises(ValueError, match=r"^y\[2\] = 10 is outside 0\.\.9"):
        solver.check_accuracy(X, np.array([0, 1, 10, 2, 3]))
    with pytest.raises(ValueError, match=r"^y\[1\] = 2\.5 is not a class index"):
        solver.check_accuracy(X, np.array([0, 2.5, 1, 2, 3]))
    assert 0.0 <= solver.check_accuracy(X, [0, 1, 9, 2, 3]) <= 1.0        # a list of labels is fine


@pytest.mark.parametrize("face", ["normlab.cs231n", "normlab.cs231n_2017", "normlab.nndl"])
def test_course_solvers_check_the_data_too(face):
    CourseSolver = importlib.import_module(face + ".solver").Solver
    with pytest.raises(ValueError, match=r"^y_val\[3\] = 10 is outside 0\.\.9"):
        CourseSolver(_net(), _with("y_val", 3, 10), **QUIET)
    with pytest.raises(ValueError, match=r"^X_val\[2, 5\] = nan is not finite"):
        CourseSolver(_net(), _with("X_val", (2, 5), np.nan), **QUIET)


# ------------------------------------------------------------ inputs

@pytest.mark.parametrize("key, value", [("X_val", np.nan), ("X_train", np.nan), ("X_train", np.inf),
                                        ("X_val", -np.inf)])
def test_non_finite_inputs_are_refused(key, value):
    with pytest.raises(ValueError, match=fr"^{key}\[2, 5\] = {value} is not finite; remove or impute"):
        Solver(_net(), _with(key, (2, 5), value), **QUIET)


def test_non_finite_float32_image_input_is_located():
    data = _data()
    for k in ("X_train", "X_val"):
        data[k] = data[k].astype(np.float32).reshape(-1, 2, 2, 2)
    data["X_val"][7, 1, 0, 1] = np.nan
    model = ThreeLayerConvNet(input_dim=(2, 2, 2), num_filters=2, filter_size=1, hidden_dim=3, rng_seed=0)
    with pytest.raises(ValueError, match=r"^X_val\[7, 1, 0, 1\] = nan is not finite"):
        Solver(model, data, **QUIET)


def test_finite_data_whose_sum_overflows_is_accepted():
    """The finiteness check sums first; a sum that overflows on finite data must not be mistaken for inf."""
    data = _data()
    data["X_train"] = np.full((40, D), 3e38, dtype=np.float32)
    Solver(_net(), data, **QUIET)


@pytest.mark.parametrize("change, exc, match", [
    (lambda d: d.update(y_val=d["y_val"][:-1]), ValueError,
     r"^X_val has 20 rows and y_val 19 labels; they must be non-empty and equal"),
    (lambda d: d.update(X_train=d["X_train"][:39]), ValueError, r"^X_train has 39 rows and y_train 40 labels"),
    (lambda d: d.update(X_val=d["X_val"][:0], y_val=d["y_val"][:0]), ValueError, r"^X_val has 0 rows"),
    (lambda d: d.update(X_val=d["X_val"][:, :-1]), ValueError,
     r"^X_val has per-sample shape \(7,\), X_train \(8,\)"),
    (lambda d: d.update(X_train=d["X_train"].astype(complex)), TypeError,
     r"^X_train must hold real numbers, got dtype complex128"),
    (lambda d: d.update(X_train=d["X_train"].tolist()), TypeError, r"data\['X_train'\] must be a NumPy array"),
    (lambda d: d.update(X_val=np.float64(1.0)), TypeError, r"data\['X_val'\].*got float64"),
])
def test_inconsistent_splits_are_refused(change, exc, match):
    data = _data()
    change(data)
    with pytest.raises(exc, match=match):
        Solver(_net(), data, **QUIET)


# ------------------------------------------------------------ valid data

def test_valid_data_trains_and_is_not_copied():
    data = _data()
    data["y_train"] = data["y_train"].astype(np.uint8)          # MNIST's label dtype
    data["X_val"] = np.rint(10 * data["X_val"]).astype(np.int16)  # integer inputs are real numbers too
    solver = Solver(_net(), data, **QUIET)
    assert solver.X_train is data["X_train"] and solver.y_val is data["y_val"]
    solver.train()
    assert solver.status == "finished" and len(solver.val_acc_history) == 2
