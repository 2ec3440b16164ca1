"""Solver: options, minibatch order, reproducibility, best snapshot with state,
learning-rate decay, callable rules, and clean divergence.

Most tests use ``TinyModel`` (defined here, independent of the rest of the
package); the last section trains the real ``FullyConnectedNet``.
"""
import math
import warnings

import numpy as np
import pytest

from normlab import optim
from normlab.nn._checks import NonFiniteError
from normlab.train.checkpoint import load_checkpoint
from normlab.solver import Solver


def softmax_loss_grads(Xd, W, b, y):
    """Mean softmax cross-entropy of ``Xd @ W + b`` and its gradients."""
    scores = Xd @ W + b
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(y)
    dscores = np.exp(log_probs)
    dscores[np.arange(n), y] -= 1
    dscores /= n
    return -log_probs[np.arange(n), y].mean(), {"W": Xd.T @ dscores, "b": dscores.sum(axis=0)}


class PlainModel:
    """Linear softmax classifier: only the required protocol (params, loss)."""

    def __init__(self, D=6, C=3, seed=0, dtype=np.float64):
        init = np.random.default_rng(seed)
        self.params = {"W": (0.1 * init.standard_normal((D, C))).astype(dtype),
                       "b": np.zeros(C, dtype=dtype)}

    def loss(self, X, y=None):
        if y is None:
            return X @ self.params["W"] + self.params["b"]
        return softmax_loss_grads(X, self.params["W"], self.params["b"], y)


class TinyModel(PlainModel):
    """Linear softmax over batch-centred inputs, with a fake running mean (used
    in test mode, so restoring it matters) and dropout-like noise drawn from
    ``self.rng``; can be told to return a NaN loss or raise at a given call."""

    def __init__(self, D=6, C=3, seed=0, dtype=np.float64, keep=0.8, nan_at=None, raise_at=None):
        super().__init__(D, C, seed, dtype)
        self.running_mean = np.zeros(D, dtype=dtype)
        self.rng = np.random.default_rng(seed + 100)
        self.keep = keep
        self.calls = 0
        self.batches = []          # y of every training batch, in order
        self.nan_at, self.raise_at = nan_at, raise_at

    def state_arrays(self):
        return {"running_mean": self.running_mean.copy()}

    def load_state_arrays(self, state):
        self.running_mean = state["running_mean"].copy()

    def loss(self, X, y=None):
        W, b = self.params["W"], self.params["b"]
        if y is None:
            return (X - self.running_mean) @ W + b
        self.calls += 1
        self.batches.append(np.array(y))
        if self.raise_at == self.calls:
            raise NonFiniteError("statistics are NaN")
        mu = X.mean(axis=0)
        self.running_mean = 0.9 * self.running_mean + 0.1 * mu
        mask = (self.rng.random(X.shape) < self.keep) / self.keep
        loss, grads = softmax_loss_grads((X - mu) * mask, W, b, y)
        return (np.nan if self.nan_at == self.calls else loss), grads


def make_data(seed=0, n_train=60, n_val=30, D=6, C=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((C, D))

    def split(n):
        y = rng.integers(0, C, size=n)
        return (centres[y] + rng.standard_normal((n, D))).astype(dtype), y

    X_train, y_train = split(n_train)
    X_val, y_val = split(n_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def run(model=None, data=None, **kw):
    model = TinyModel() if model is None else model
    opts = {"update_rule": "sgd_momentum", "optim_config": {"learning_rate": 0.1},
            "batch_size": 16, "num_epochs": 3, "verbose": False, **kw}
    solver = Solver(model, make_data() if data is None else data, **opts)
    solver.train()
    return solver


# ------------------------------------------------------------ options

def test_unknown_option_is_named():
    with pytest.raises(ValueError, match=r"'learning_rate'.*allowed: update_rule"):
        Solver(TinyModel(), make_data(), learning_rate=0.1)


@pytest.mark.parametrize("kw, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"num_epochs": -1}, "num_epochs"),
    ({"lr_decay": 0.0}, "lr_decay"),
    ({"seed": -3}, "seed"),
    ({"update_rule": "nesterov"}, "nesterov"),
    ({"update_rule": "adam", "optim_config": {"lr": 1e-3}}, "'lr'"),
    ({"update_rule": optim.adam, "optim_config": {"momentum": 0.9}}, "'momentum'"),
])
def test_bad_option_values(kw, match):
    with pytest.raises(ValueError, match=match):
        Solver(TinyModel(), make_data(), **kw)


def test_missing_data_key():
    data = make_data()
    del data["y_val"]
    with pytest.raises(ValueError, match="y_val"):
        Solver(TinyModel(), data)


# ------------------------------------------------------------ minibatches and histories

def test_history_lengths_and_status():
    s = run(num_epochs=3, batch_size=16)  # 60 samples -> 3 iterations per epoch, 12 dropped
    assert len(s.loss_history) == 9 and s.iteration == 9
    assert len(s.train_acc_history) == len(s.val_acc_history) == 4
    assert all(type(v) is float for v in s.loss_history + s.val_acc_history)
    assert (s.status, s.diverged, s.epoch) == ("finished", False, 3)
    assert s.best_val_acc == max(s.val_acc_history)
    assert s.best_epoch == s.val_acc_history.index(s.best_val_acc)


def test_batch_larger_than_training_set_uses_one_batch_per_epoch():
    model = TinyModel()
    s = run(model, batch_size=1000, num_epochs=2)
    assert len(s.loss_history) == 2
    assert [len(b) for b in model.batches] == [60, 60]


def test_minibatches_are_a_fresh_permutation_per_epoch_from_seed():
    model, data = TinyModel(), make_data()
    run(model, data, batch_size=20, num_epochs=3, seed=7)
    rng = np.random.default_rng(7)
    expected = []
    for _ in range(3):
        order = rng.permutation(60)
        expected += [data["y_train"][order[i * 20:(i + 1) * 20]] for i in range(3)]
    assert len(model.batches) == 9
    for got, want in zip(model.batches, expected):
        np.testing.assert_array_equal(got, want)


def test_same_seed_bit_identical_and_global_rng_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a, b = run(seed=3), run(seed=3)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert a.loss_history == b.loss_history
    assert a.train_acc_history == b.train_acc_history and a.val_acc_history == b.val_acc_history
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    assert run(seed=4).loss_history != a.loss_history


def test_accuracy_subsampling_does_not_shift_training_batches():
    full = run(num_train_samples=None)
    sub = run(num_train_samples=10)
    assert full.loss_history == sub.loss_history


def test_check_accuracy_batching_equals_unbatched():
    s = run(num_epochs=1)
    X, y = s.X_val, s.y_val
    whole = s.check_accuracy(X, y, batch_size=1000)
    assert s.check_accuracy(X, y, batch_size=7) == whole
    assert s.check_accuracy(X, y, batch_size=1) == whole
    assert whole == np.mean(np.argmax(s.model.loss(X), axis=1) == y)


def test_check_accuracy_subsample_without_replacement():
    s = Solver(TinyModel(), make_data(), verbose=False)
    X = np.eye(6)[np.arange(30) % 6] * 100      # scores pick class of W row; y = row index
    y = np.arange(30)
    s.model.params["W"] = np.zeros((6, 30)) ; s.model.params["b"] = np.zeros(30)
    s.model.params["W"][np.arange(6), np.arange(6)] = 1.0
    assert s.check_accuracy(X, y, num_samples=30) == s.check_accuracy(X, y) == 6 / 30
    for _ in range(5):
        assert s.check_accuracy(X, y, num_samples=10) <= 0.6


# ------------------------------------------------------------ best snapshot

def test_best_snapshot_restores_params_and_state_of_best_epoch(tmp_path):
    data = make_data()
    # Validation labels that training makes worse: the best epoch is not the last.
    data["y_val"] = (data["y_val"] + 1) % 3
    model = TinyModel()
    initial = {"params/W": model.params["W"].copy(), "params/b": model.params["b"].copy(),
               "state/running_mean": model.running_mean.copy()}
    s = run(model, data, num_epochs=4, checkpoint_name=str(tmp_path / "t"))
    assert s.best_epoch < 4 and s.val_acc_history[-1] < s.best_val_acc
    best = initial if s.best_epoch == 0 else load_checkpoint(tmp_path / f"t_epoch_{s.best_epoch}")[0]
    last = load_checkpoint(tmp_path / "t_epoch_4")[0]
    np.testing.assert_array_equal(model.params["W"], best["params/W"])
    np.testing.assert_array_equal(model.params["b"], best["params/b"])
    np.testing.assert_array_equal(model.running_mean, best["state/running_mean"])
    assert not np.array_equal(model.running_mean, last["state/running_mean"])


def test_model_without_optional_parts():
    s = run(PlainModel())
    assert s.status == "finished" and s.best_state == {}
    assert len(s.val_acc_history) == 4


# ------------------------------------------------------------ update rules

def test_lr_decay_after_every_epoch(tmp_path):
    s = run(update_rule="sgd", optim_config={"learning_rate": 0.1}, lr_decay=0.5, num_epochs=3,
            checkpoint_name=str(tmp_path / "run"))
    for config in s.optim_configs.values():
        assert config["learning_rate"] == 0.1 * 0.5 * 0.5 * 0.5
    _, meta = load_checkpoint(tmp_path / "run_epoch_1")
    assert meta["optim_configs"]["W"]["scalars"]["learning_rate"] == 0.05


def test_update_rule_callable_matches_name():
    def my_sgd(w, dw, config):
        config.setdefault("learning_rate", 1e-2)
        return w - config["learning_rate"] * dw, config

    named = run(update_rule="sgd", optim_config={"learning_rate": 0.1})
    custom = run(update_rule=my_sgd, optim_config={"learning_rate": 0.1})
    assert named.loss_history == custom.loss_history
    assert run(update_rule=optim.adam).loss_history == run(update_rule="adam").loss_history


def test_lr_decay_needs_learning_rate_for_callable():
    def no_lr(w, dw, config):
        return w - 0.1 * dw, config

    with pytest.raises(ValueError, match="learning_rate"):
        run(update_rule=no_lr, optim_config={}, lr_decay=0.9)


def test_float32_model_stays_float32():
    s = run(TinyModel(dtype=np.float32), make_data(dtype=np.float32), update_rule="adam")
    assert all(v.dtype == np.float32 for v in s.model.params.values())
    assert all(c["m"].dtype == np.float32 for c in s.optim_configs.values())


# ------------------------------------------------------------ divergence

def _no_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    assert caught == []
    return out


def test_overflowing_update_diverges_cleanly():
    s = _no_warnings(lambda: run(update_rule="sgd", optim_config={"learning_rate": 1e308}))
    assert s.diverged and s.status == "diverged"
    assert "FloatingPointError" in s.divergence_reason
    assert math.isnan(s.loss_history[-1]) and all(map(math.isfinite, s.loss_history[:-1]))
    assert s.best_epoch == 0
    for k, v in s.model.params.items():       # the best (initial) weights are back
        np.testing.assert_array_equal(v, s.best_params[k])


def test_nan_loss_recorded_and_update_not_applied():
    model = TinyModel(nan_at=4)
    s = _no_warnings(lambda: run(model, num_epochs=3))
    assert s.diverged and len(s.loss_history) == 4 and s.iteration == 3
    assert math.isnan(s.loss_history[-1])
    assert "loss is nan" in s.divergence_reason
    assert len(s.val_acc_history) == 2          # epoch 0 and the completed epoch 1


def test_non_finite_error_diverges_other_errors_propagate():
    s = run(TinyModel(raise_at=2))
    assert s.diverged and "NonFiniteError" in s.divergence_reason and len(s.loss_history) == 2

    class Broken(TinyModel):
        def loss(self, X, y=None):
            if y is not None:
                raise ValueError("a bug, not a divergence")
            return super().loss(X)

    with pytest.raises(ValueError, match="a bug"):
        run(Broken())


def test_sweep_survives_diverging_members():
    def sweep():
        return [run(update_rule="sgd", optim_config={"learning_rate": lr}, num_epochs=2)
                for lr in (1e-2, 1e308, 1e-1, 1e308)]

    statuses = [s.status for s in _no_warnings(sweep)]
    assert statuses == ["finished", "diverged", "finished", "diverged"]


def test_verbose_prints_progress(capsys):
    run(verbose=True, print_every=2, num_epochs=1)
    out = capsys.readouterr().out
    assert "(Iteration 1 / 3) loss:" in out and "(Iteration 3 / 3)" in out
    assert "(Epoch 0 / 1) train acc:" in out and "(Epoch 1 / 1)" in out
    run(verbose=False)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------ the real FullyConnectedNet

def _fc_net(**kw):
    models = pytest.importorskip("normlab.models")
    opts = {"input_dim": 12, "num_classes": 4, "normalization": "batchnorm",
            "dropout_keep_ratio": 0.8, "rng_seed": 0, **kw}
    return models.FullyConnectedNet([16, 16], **opts)


def _fc_data():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((150, 12)).astype(np.float32)
    y = rng.integers(0, 4, size=150)
    return {"X_train": X[:100], "y_train": y[:100], "X_val": X[100:], "y_val": y[100:]}


def _fc_run(model=None, **kw):
    opts = {"update_rule": "adam", "optim_config": {"learning_rate": 5e-3}, "batch_size": 20,
            "num_epochs": 6, "verbose": False, **kw}
    s = Solver(_fc_net() if model is None else model, _fc_data(), **opts)
    s.train()
    return s


def test_fc_net_same_seed_bit_identical():
    a, b = _fc_run(), _fc_run()
    assert a.loss_history == b.loss_history and a.val_acc_history == b.val_acc_history
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])


def test_fc_net_best_snapshot_restores_running_statistics(tmp_path):
    model = _fc_net()
    s = _fc_run(model, checkpoint_name=str(tmp_path / "fc"))
    assert s.status == "finished"
    assert 0 < s.best_epoch < s.num_epochs, "pick a configuration whose best epoch is not the last"
    arrays, _ = load_checkpoint(tmp_path / f"fc_epoch_{s.best_epoch}")
    state = model.state_arrays()
    assert set(state) == {"running_mean1", "running_var1", "running_mean2", "running_var2"}
    last, _ = load_checkpoint(tmp_path / f"fc_epoch_{s.num_epochs}")
    for k, v in state.items():
        np.testing.assert_array_equal(v, arrays[f"state/{k}"])
        assert not np.array_equal(v, last[f"state/{k}"])
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, arrays[f"params/{k}"])


def test_fc_net_diverging_config_ends_as_diverged():
    model = _fc_net(normalization=None, dropout_keep_ratio=1, weight_scale=1e4)
    s = _no_warnings(lambda: _fc_run(model, update_rule="sgd", optim_config={"learning_rate": 1e30}))
    assert s.diverged and s.status == "diverged"
    assert all(np.all(np.isfinite(v)) for v in model.params.values())


def test_non_finite_gradient_diverges_without_update():
    class InfGrad(TinyModel):
        def loss(self, X, y=None):
            out = super().loss(X, y)
            if y is None or self.calls < 2:
                return out
            return out[0], {**out[1], "b": np.full(3, np.inf)}

    model = InfGrad()
    s = run(model)
    assert s.diverged and "gradient of 'b'" in s.divergence_reason
    assert math.isnan(s.loss_history[-1]) and len(s.loss_history) == 2


def test_overflow_while_measuring_accuracy_diverges():
    class Overflowing(TinyModel):
        def loss(self, X, y=None):
            if y is None and self.calls >= 3:
                return np.full((len(X), 3), 1e300) * 1e300
            return super().loss(X, y)

    s = _no_warnings(lambda: run(Overflowing(), num_epochs=3))
    assert s.diverged and "accuracy check after iteration 3" in s.divergence_reason
    assert len(s.loss_history) == 3 and all(map(math.isfinite, s.loss_history))
    assert len(s.val_acc_history) == 1


def test_restore_best_false_keeps_the_final_parameters():
    from normlab.models import FullyConnectedNet
    rng = np.random.default_rng(0)
    data = {"X_train": rng.standard_normal((60, 8)), "y_train": rng.integers(3, size=60),
            "X_val": rng.standard_normal((30, 8)), "y_val": rng.integers(3, size=30)}
    finals = {}
    for restore in (True, False):
        model = FullyConnectedNet([10], input_dim=8, num_classes=3, normalization="batchnorm", rng_seed=0)
        solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-2}, num_epochs=4,
                        batch_size=10, verbose=False, seed=0, restore_best=restore)
        solver.train()
        finals[restore] = (model, solver)
    model_f, solver_f = finals[False]
    model_t, solver_t = finals[True]
    assert solver_f.loss_history == solver_t.loss_history          # same training either way
    assert all(np.array_equal(model_t.params[k], solver_t.best_params[k]) for k in model_t.params)
    if solver_t.best_epoch != 4:                                    # the last epoch was not the best
        assert any(not np.array_equal(model_f.params[k], solver_f.best_params[k]) for k in model_f.params)


def test_restore_best_must_be_a_bool():
    with pytest.raises(ValueError, match="restore_best must be True or False, got 'no'"):
        Solver(_TinyModelForRestore(), {"X_train": np.zeros((2, 1)), "y_train": np.zeros(2, int),
                                         "X_val": np.zeros((2, 1)), "y_val": np.zeros(2, int)}, restore_best="no")


class _TinyModelForRestore:
    params = {"W": np.zeros(1)}

    def loss(self, X, y=None):
        return np.zeros((len(X), 2)) if y is None else (0.0, {"W": np.zeros(1)})
