"""``nndl.layer_tests``: the checks the HW4 optimization notebook runs on the layers
students copy from HW3 (``from nndl.layer_tests import *``), here run on normlab's.

Each function prints what it checks, the bound, and the measured error, one
``name: value`` line per number, and returns None, as the course's do. Random inputs come from the global ``np.random`` (the course's
cells do not seed it; seed it first for repeatable numbers). The reference
outputs of the two fixed-input checks are the course's numbers.
"""
from __future__ import annotations

import numpy as np

from ..gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from .fc_net import FullyConnectedNet
from .layer_utils import affine_relu_backward, affine_relu_forward
from .layers import affine_backward, affine_forward, relu_backward, relu_forward

__all__ = ["affine_forward_test", "affine_backward_test", "relu_forward_test", "relu_backward_test",
           "affine_relu_test", "fc_net_test", "rel_error"]


def _report(title: str, errors: dict) -> None:
    print(title)
    for name, err in errors.items():
        print(f"{name}: {err}")


def affine_forward_test() -> None:
    """affine_forward on linspace inputs (2, 4, 5, 6) x (120, 3) against the course's output."""
    x = np.linspace(-0.1, 0.5, num=2 * 120).reshape(2, 4, 5, 6)
    w = np.linspace(-0.2, 0.3, num=120 * 3).reshape(120, 3)
    b = np.linspace(-0.3, 0.1, num=3)
    out, _ = affine_forward(x, w, b)
    expected = np.array([[1.49834967, 1.70660132, 1.91485297],
                         [3.25553199, 3.5141327, 3.77273342]])
    return _report("affine_forward (difference from the course's output, expect below 1e-9):",
                   {"difference": rel_error(out, expected)})


def affine_backward_test() -> None:
    """affine_backward against central differences, random x (10, 2, 3), w (6, 5)."""
    x, w, b = np.random.randn(10, 2, 3), np.random.randn(6, 5), np.random.randn(5)
    dout = np.random.randn(10, 5)
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    num = {"dx": eval_numerical_gradient_array(lambda v: affine_forward(v, w, b)[0], x, dout),
           "dw": eval_numerical_gradient_array(lambda v: affine_forward(x, v, b)[0], w, dout),
           "db": eval_numerical_gradient_array(lambda v: affine_forward(x, w, v)[0], b, dout)}
    return _report("affine_backward (relative errors, expect below 1e-9):",
                   {f"{k} error": rel_error(num[k], g) for k, g in zip(num, (dx, dw, db))})


def relu_forward_test() -> None:
    """relu_forward on linspace(-0.5, 0.5, 12) against the course's output."""
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    out, _ = relu_forward(x)
    expected = np.array([[0., 0., 0., 0.],
                         [0., 0., 0.04545455, 0.13636364],
                         [0.22727273, 0.31818182, 0.40909091, 0.5]])
    return _report("relu_forward (difference from the course's output, expect about 5e-8, as the "
                   "course's output is rounded to 8 digits):", {"difference": rel_error(out, expected)})


def relu_backward_test() -> None:
    """relu_backward against central differences on a random (10, 10) input."""
    x, dout = np.random.randn(10, 10), np.random.randn(10, 10)
    _, cache = relu_forward(x)
    num = eval_numerical_gradient_array(lambda v: relu_forward(v)[0], x, dout)
    return _report("relu_backward (relative error, expect below 1e-9):",
                   {"dx error": rel_error(num, relu_backward(dout, cache))})


def affine_relu_test() -> None:
    """The affine-relu sandwich against central differences."""
    x, w, b = np.random.randn(2, 3, 4), np.random.randn(12, 10), np.random.randn(10)
    dout = np.random.randn(2, 10)
    _, cache = affine_relu_forward(x, w, b)
    grads = affine_relu_backward(dout, cache)
    num = {"dx": eval_numerical_gradient_array(lambda v: affine_relu_forward(v, w, b)[0], x, dout),
           "dw": eval_numerical_gradient_array(lambda v: affine_relu_forward(x, v, b)[0], w, dout),
           "db": eval_numerical_gradient_array(lambda v: affine_relu_forward(x, w, v)[0], b, dout)}
    return _report("affine_relu_forward / affine_relu_backward (relative errors, expect below 1e-9):",
                   {f"{k} error": rel_error(num[k], g) for k, g in zip(num, grads)})


def fc_net_test() -> None:
    """A three-layer FullyConnectedNet (float64), reg 0 and 3.14: initial loss and every
    parameter's relative error against central differences (h = 1e-5)."""
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    for reg in (0, 3.14):
        print(f"Running check with reg = {reg}")
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg, weight_scale=5e-2,
                                  dtype=np.float64)
        loss, grads = model.loss(X, y)
        print(f"Initial loss: {loss}")
        for name in sorted(grads):
            num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False,
                                          h=1e-5)
            print(f"{name} relative error: {rel_error(num, grads[name])}")
