"""Checkpoints: the npz + json pair, atomic writes, clear errors for missing or
corrupt files, and Solver resume that is bit-identical to an uninterrupted run."""
import json
import os

import numpy as np
import pytest

from normlab.train import checkpoint as ckpt
from normlab.train.checkpoint import CheckpointError
from normlab.solver import Solver


class NoisyModel:
    """Linear softmax over batch-centred inputs with a running mean (used at
    test time) and dropout-like noise from ``self.rng``: every kind of state a
    checkpoint must carry."""

    def __init__(self, D=6, C=3, seed=0, dtype=np.float64):
        init = np.random.default_rng(seed)
        self.params = {"W": (0.1 * init.standard_normal((D, C))).astype(dtype),
                       "b": np.zeros(C, dtype=dtype)}
        self.running_mean = np.zeros(D, dtype=dtype)
        self.rng = np.random.default_rng(seed + 100)

    def state_arrays(self):
        return {"running_mean": self.running_mean.copy()}

    def load_state_arrays(self, state):
        self.running_mean = state["running_mean"].copy()

    def loss(self, X, y=None):
        W, b = self.params["W"], self.params["b"]
        if y is None:
            return (X - self.running_mean) @ W + b
        mu = X.mean(axis=0)
        self.running_mean = 0.9 * self.running_mean + 0.1 * mu
        Xd = (X - mu) * (self.rng.random(X.shape) < 0.8) / 0.8
        scores = Xd @ W + b
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = len(y)
        dscores = np.exp(log_probs)
        dscores[np.arange(n), y] -= 1
        dscores /= n
        return -log_probs[np.arange(n), y].mean(), {"W": Xd.T @ dscores, "b": dscores.sum(axis=0)}


def make_data(seed=0, D=6, C=3):
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((C, D))
    y = rng.integers(0, C, size=90)
    X = centres[y] + rng.standard_normal((90, D))
    return {"X_train": X[:60], "y_train": y[:60], "X_val": X[60:], "y_val": y[60:]}


OPTS = {"update_rule": "adam", "optim_config": {"learning_rate": 0.05}, "lr_decay": 0.9,
        "batch_size": 16, "num_epochs": 4, "num_train_samples": 20, "verbose": False}


def assert_same_run(a, b):
    assert a.loss_history == b.loss_history
    assert a.train_acc_history == b.train_acc_history
    assert a.val_acc_history == b.val_acc_history
    assert (a.best_val_acc, a.best_epoch, a.epoch, a.iteration, a.status) == \
           (b.best_val_acc, b.best_epoch, b.epoch, b.iteration, b.status)
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
        assert a.model.params[k].dtype == b.model.params[k].dtype
    for k, v in a.model.state_arrays().items():
        np.testing.assert_array_equal(v, b.model.state_arrays()[k])
    for p, config in a.optim_configs.items():
        assert config.keys() == b.optim_configs[p].keys()
        for k, v in config.items():
            np.testing.assert_array_equal(v, b.optim_configs[p][k])


# ------------------------------------------------------------ file format

def test_roundtrip_arrays_and_meta(tmp_path):
    arrays = {"params/W": np.arange(6, dtype=np.float32).reshape(2, 3), "optim/W/t": np.asarray(np.int64(3))}
    meta = {"epoch": 2, "history": [0.1, 1 / 3]}
    npz, js = ckpt.save_checkpoint(tmp_path / "run_epoch_2", arrays, meta)
    assert (npz.name, js.name) == ("run_epoch_2.npz", "run_epoch_2.json")
    for path in (tmp_path / "run_epoch_2", npz, js):
        got, got_meta = ckpt.load_checkpoint(path)
        assert got_meta == meta
        assert got["params/W"].dtype == np.float32
        np.testing.assert_array_equal(got["params/W"], arrays["params/W"])
    sidecar = json.loads(js.read_text())
    assert sidecar["format"] == "normlab-checkpoint" and sidecar["format_version"] == 1
    with np.load(npz, allow_pickle=False) as z:     # plain arrays, no pickles
        assert sorted(z.files) == sorted(arrays)
    assert sorted(os.listdir(tmp_path)) == ["run_epoch_2.json", "run_epoch_2.npz"]


def test_object_arrays_and_non_json_meta_refused(tmp_path):
    with pytest.raises(TypeError, match="'bad'"):
        ckpt.save_checkpoint(tmp_path / "x", {"bad": np.array([{}], dtype=object)}, {})
    with pytest.raises(ValueError):
        ckpt.save_checkpoint(tmp_path / "x", {}, {"loss": float("nan")})
    assert os.listdir(tmp_path) == []


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    from normlab._io import atomic_write   # what save_checkpoint writes with
    target = tmp_path / "f.bin"
    atomic_write(target, lambda f: f.write(b"old"))

    def failing(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_epoch_1.json"):
        ckpt.load_checkpoint(tmp_path / "nothing_epoch_1")
    ckpt.save_checkpoint(tmp_path / "a", {"x": np.zeros(2)}, {})
    os.remove(tmp_path / "a.npz")
    with pytest.raises(FileNotFoundError, match="a.npz"):
        ckpt.load_checkpoint(tmp_path / "a.json")


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "a.json").write_text('{"format": "normlab-checkpoint", "form'), r"a\.json.*not valid JSON"),
    (lambda d: (d / "a.npz").write_bytes((d / "a.npz").read_bytes()[:50]), r"a\.npz.*checksum"),
    (lambda d: (d / "a.json").write_text(json.dumps({"format": "normlab-checkpoint", "format_version": 99})),
     r"a\.json.*version 99"),
    (lambda d: (d / "a.json").write_text("[1, 2]"), r"a\.json.*not a normlab checkpoint"),
])
def test_corrupt_checkpoint_is_named(tmp_path, damage, match):
    ckpt.save_checkpoint(tmp_path / "a", {"x": np.zeros(2)}, {"k": 1})
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=match):
        ckpt.load_checkpoint(tmp_path / "a")


def test_npz_from_another_write_detected(tmp_path):
    ckpt.save_checkpoint(tmp_path / "a", {"x": np.zeros(2)}, {})
    ckpt.save_checkpoint(tmp_path / "b", {"x": np.ones(2)}, {})
    os.replace(tmp_path / "b.npz", tmp_path / "a.npz")
    with pytest.raises(CheckpointError, match="checksum"):
        ckpt.load_checkpoint(tmp_path / "a")


def test_unreadable_npz_with_matching_checksum(tmp_path):
    # A sidecar whose checksum matches garbage: np.load's error is wrapped and names the file.
    ckpt.save_checkpoint(tmp_path / "a", {"x": np.zeros(2)}, {})
    (tmp_path / "a.npz").write_bytes(b"not a zip")
    sidecar = json.loads((tmp_path / "a.json").read_text())
    import hashlib
    sidecar["npz_sha256"] = hashlib.sha256(b"not a zip").hexdigest()
    (tmp_path / "a.json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match=r"a\.npz.*cannot be read"):
        ckpt.load_checkpoint(tmp_path / "a")


# ------------------------------------------------------------ Solver checkpoints

def train(model, tmp_path, name="run", **kw):
    s = Solver(model, make_data(), **{**OPTS, "checkpoint_name": str(tmp_path / name), **kw})
    s.train()
    return s


def test_solver_writes_one_pair_per_epoch(tmp_path):
    s = train(NoisyModel(), tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(f"run_epoch_{e}.{ext}" for e in range(1, 5) for ext in ("npz", "json"))
    arrays, meta = ckpt.load_checkpoint(tmp_path / "run_epoch_2")
    assert meta["epoch"] == 2 and meta["iteration"] == 6
    assert meta["loss_history"] == s.loss_history[:6]
    assert meta["val_acc_history"] == s.val_acc_history[:3]
    assert meta["hyperparameters"]["update_rule"] == "adam"
    assert meta["hyperparameters"]["batch_size"] == 16
    assert meta["rng"]["minibatch"]["bit_generator"] == "PCG64"
    assert meta["optim_configs"]["W"]["scalars"]["t"] == 6
    assert {"params/W", "params/b", "state/running_mean", "optim/W/m", "optim/W/v",
            "best_params/W", "best_state/running_mean"} <= set(arrays)


@pytest.mark.parametrize("k", [1, 3])
def test_resume_is_bit_identical(tmp_path, k):
    full = train(NoisyModel(), tmp_path, "full")
    resumed = Solver.from_checkpoint(NoisyModel(seed=9), make_data(), tmp_path / f"full_epoch_{k}",
                                     checkpoint_name=str(tmp_path / "resumed"))
    assert resumed.epoch == k and resumed.lr_decay == 0.9
    resumed.train()
    assert_same_run(full, resumed)
    a, _ = ckpt.load_checkpoint(tmp_path / "full_epoch_4")
    b, _ = ckpt.load_checkpoint(tmp_path / "resumed_epoch_4")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_load_checkpoint_into_existing_solver(tmp_path):
    full = train(NoisyModel(), tmp_path)
    s = Solver(NoisyModel(), make_data(), **OPTS)
    s.load_checkpoint(tmp_path / "run_epoch_2.npz")
    s.train()
    assert_same_run(full, s)


def test_resume_with_more_epochs_and_new_learning_rate(tmp_path):
    train(NoisyModel(), tmp_path)
    s = Solver.from_checkpoint(NoisyModel(), make_data(), tmp_path / "run_epoch_4", num_epochs=6,
                               optim_config={"learning_rate": 1e-3})
    assert all(c["learning_rate"] == 1e-3 for c in s.optim_configs.values())
    s.train()
    assert len(s.val_acc_history) == 7 and len(s.loss_history) == 18


def test_model_without_optional_parts_checkpoints(tmp_path):
    class Plain:
        def __init__(self):
            self.params = {"W": np.zeros((6, 3)), "b": np.zeros(3)}

        def loss(self, X, y=None):
            scores = X @ self.params["W"] + self.params["b"]
            if y is None:
                return scores
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            n = len(y)
            loss = -np.log(p[np.arange(n), y]).mean()
            p[np.arange(n), y] -= 1
            return loss, {"W": X.T @ p / n, "b": p.sum(axis=0) / n}

    full = train(Plain(), tmp_path, update_rule="sgd_momentum")
    resumed = Solver.from_checkpoint(Plain(), make_data(), tmp_path / "run_epoch_2")
    resumed.train()
    assert resumed.loss_history == full.loss_history
    np.testing.assert_array_equal(resumed.model.params["W"], full.model.params["W"])


def test_callable_rule_must_be_given_again(tmp_path):
    def my_sgd(w, dw, config):
        config.setdefault("learning_rate", 0.1)
        return w - config["learning_rate"] * dw, config

    full = train(NoisyModel(), tmp_path, update_rule=my_sgd, optim_config={})
    with pytest.raises(ValueError, match="my_sgd.*update_rule="):
        Solver.from_checkpoint(NoisyModel(), make_data(), tmp_path / "run_epoch_2")
    s = Solver.from_checkpoint(NoisyModel(), make_data(), tmp_path / "run_epoch_2", update_rule=my_sgd)
    s.train()
    assert s.loss_history == full.loss_history


def test_mismatched_model_is_refused_naming_file(tmp_path):
    train(NoisyModel(), tmp_path, num_epochs=1)
    with pytest.raises(CheckpointError, match=r"run_epoch_1\.json.*'W' is float64 of shape \(6, 3\), the model has float64 of shape \(7, 3\)"):
        Solver.from_checkpoint(NoisyModel(D=7), make_data(D=7), tmp_path / "run_epoch_1")
    with pytest.raises(FileNotFoundError, match="run_epoch_9"):
        Solver.from_checkpoint(NoisyModel(), make_data(), tmp_path / "run_epoch_9")


# ------------------------------------------------------------ the real FullyConnectedNet

def test_fc_net_resume_is_bit_identical(tmp_path):
    models = pytest.importorskip("normlab.models")

    def net():
        return models.FullyConnectedNet([16, 16], input_dim=12, num_classes=4, normalization="batchnorm",
                                        dropout_keep_ratio=0.8, rng_seed=0)

    rng = np.random.default_rng(5)
    X = rng.standard_normal((150, 12)).astype(np.float32)
    y = rng.integers(0, 4, size=150)
    data = {"X_train": X[:100], "y_train": y[:100], "X_val": X[100:], "y_val": y[100:]}
    opts = {**OPTS, "optim_config": {"learning_rate": 5e-3}, "batch_size": 20, "num_epochs": 5}
    full = Solver(net(), data, **opts, checkpoint_name=str(tmp_path / "fc"))
    full.train()
    resumed = Solver.from_checkpoint(net(), data, tmp_path / "fc_epoch_2", checkpoint_name=None)
    resumed.train()
    assert_same_run(full, resumed)


def test_atomic_write_gives_files_the_usual_mode(tmp_path):
    import os
    import stat
    from normlab._io import atomic_write
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.json").stat().st_mode) == 0o644
