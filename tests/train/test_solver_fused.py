"""The Solver's fast path for optim's own rules (``optim.fused_update``): the same training, bit for
bit, as the NumPy backend and as a callable rule, and the same divergence reports."""
import math

import numpy as np
import pytest

from normlab import optim
from normlab.models import FullyConnectedNet
from normlab.nn import backend
from normlab.solver import Solver

RULES = {"sgd": {"learning_rate": 0.05}, "sgd_momentum": {"learning_rate": 0.05},
         "sgd_nesterov_momentum": {"learning_rate": 0.05}, "rmsprop": {"learning_rate": 1e-3},
         "adam": {"learning_rate": 1e-3}}


def _data(dtype=np.float64):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((80, 10)).astype(dtype)
    y = rng.integers(3, size=80)
    return {"X_train": X[:60], "y_train": y[:60], "X_val": X[60:], "y_val": y[60:]}


def _train(rule, dtype, backend_name, update_rule=None, model_cls=FullyConnectedNet, **model_kw):
    with backend.using(backend_name):
        model = model_cls([8, 6], input_dim=10, num_classes=3, weight_scale=0.2, dtype=dtype, rng_seed=0,
                          reg=0.01, **model_kw)
        s = Solver(model, _data(dtype), update_rule=update_rule or rule, optim_config=RULES[rule],
                   batch_size=10, num_epochs=2, verbose=False, seed=1)
        s.train()
    return s


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_training_is_the_numpy_training(rule, dtype):
    pytest.importorskip("numba")
    fast, ref = _train(rule, dtype, "numba"), _train(rule, dtype, "numpy")
    named = _train(rule, dtype, "numba", update_rule=lambda w, dw, c: optim.UPDATE_RULES[rule][0](w, dw, c))
    for other in (ref, named):
        assert fast.loss_history == other.loss_history
        assert fast.val_acc_history == other.val_acc_history
        for k, v in fast.model.params.items():
            assert v.dtype == dtype and np.array_equal(v, other.model.params[k]), k
        for p, config in fast.optim_configs.items():
            for key, value in config.items():
                assert np.array_equal(value, other.optim_configs[p][key]), (p, key)


class NaNGrads(FullyConnectedNet):
    """Returns non-finite gradients for ``bad`` from its second training call on."""

    def __init__(self, *args, bad=(), **kw):
        super().__init__(*args, **kw)
        self.bad, self.calls = bad, 0

    def loss(self, X, y=None):
        out = super().loss(X, y)
        if y is None:
            return out
        self.calls += 1
        if self.calls < 2:
            return out
        loss, grads = out
        return loss, {k: (np.full_like(g, np.nan) if k in self.bad else g) for k, g in grads.items()}


@pytest.mark.parametrize("backend_name", ["numba", "numpy"])
@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("bad, named", [(("b3",), "b3"), (("W2", "b1"), "b1"), (("W1", "b3"), "W1")])
def test_first_non_finite_gradient_is_named_and_nothing_updated(backend_name, rule, bad, named):
    with backend.using(backend_name):
        model = NaNGrads([8, 6], input_dim=10, num_classes=3, weight_scale=0.2, rng_seed=0, bad=bad)
        s = Solver(model, _data(), update_rule=rule, optim_config=RULES[rule], batch_size=10, num_epochs=2,
                   verbose=False, seed=1, restore_best=False)
        before = {}

        def snapshot(X, y, step=s._step):
            before.update({k: v.copy() for k, v in model.params.items()})
            return step(X, y)
        s._step = snapshot
        s.train()
    assert s.diverged and f"gradient of {named!r} is not finite" in s.divergence_reason
    assert len(s.loss_history) == 2 and math.isnan(s.loss_history[-1])
    for k, v in model.params.items():     # the diverging step changed nothing
        assert np.array_equal(v, before[k]), k


@pytest.mark.parametrize("backend_name", ["numba", "numpy"])
def test_overflowing_update_is_a_floating_point_error_on_both_backends(backend_name):
    with backend.using(backend_name):
        model = FullyConnectedNet([8], input_dim=10, num_classes=3, weight_scale=0.2, dtype=np.float32, rng_seed=0)
        s = Solver(model, _data(np.float32), update_rule="sgd", optim_config={"learning_rate": 1e38},
                   batch_size=10, num_epochs=1, verbose=False, seed=1)
        s.train()
    assert s.diverged and "FloatingPointError" in s.divergence_reason
