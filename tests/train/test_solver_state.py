"""A Solver's state as a checkpoint (``normlab.train.solver_state``).

The format is the one normlab wrote before the regroup (issue 12), both ways:
checkpoints in ``data/`` were written by the old code (see ``data/README.md``);
today's code resumes them to the very end the old run reached, and writes the
same files itself. ``restore`` checks everything before it changes anything.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from normlab.cs231n.solver import Solver as CourseSolver
from normlab.models import FullyConnectedNet
from normlab.nn import backend
from normlab.solver import Solver
from normlab.train import checkpoint as ckpt
from normlab.train import solver_state
from normlab.train.checkpoint import CheckpointError

DATA = Path(__file__).parent / "data"
OPTS = {"batch_size": 10, "num_epochs": 3, "num_train_samples": 20, "num_val_samples": 10,
        "verbose": False, "seed": 4}
RUNS = {  # fixture stem -> (Solver class, its options; as in data/README.md)
    "old_solver": (Solver, {"update_rule": "adam", "optim_config": {"learning_rate": 1e-2}, "lr_decay": 0.9}),
    "old_course": (CourseSolver, {"update_rule": "sgd_momentum", "optim_config": {"learning_rate": 5e-2},
                                  "lr_decay": 0.95}),
}


@pytest.fixture(autouse=True)
def keep_global_rng():
    """The course Solver draws from (and restores) the global np.random; leave it as found."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


@pytest.fixture(autouse=True)
def reference_numerics():
    """The files in data/ were trained on the NumPy reference, and are compared bit for bit.

    The Numba kernels agree with it to float rounding, not to the last bit, and what is
    tested here is the format and the resume, not the kernels.
    """
    with backend.using("numpy"):
        yield


def _data():
    rng = np.random.default_rng(12)
    centres = 2.0 * rng.standard_normal((3, 5))
    y = rng.integers(0, 3, size=60)
    X = centres[y] + rng.standard_normal((60, 5))
    return {"X_train": X[:40], "y_train": y[:40], "X_val": X[40:], "y_val": y[40:]}


def _net(rng_seed=3):
    return FullyConnectedNet([6], input_dim=5, num_classes=3, normalization="batchnorm",
                             dropout_keep_ratio=0.8, weight_scale=0.1, dtype=np.float64, rng_seed=rng_seed)


def _assert_same_checkpoint(stem_a, stem_b):
    """Same arrays (keys, dtypes, bits) and the same meta, but for where the run writes its checkpoints."""
    (a, meta_a), (b, meta_b) = ckpt.load_checkpoint(stem_a), ckpt.load_checkpoint(stem_b)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    for meta in (meta_a, meta_b):
        meta["hyperparameters"].pop("checkpoint_name")
    assert meta_a == meta_b


@pytest.mark.parametrize("stem", list(RUNS))
def test_old_checkpoint_resumes_to_the_old_end(tmp_path, stem):
    cls, _ = RUNS[stem]
    np.random.seed(0)   # any global state: the course Solver takes its own from the file
    s = cls.from_checkpoint(_net(rng_seed=99), _data(), DATA / f"{stem}_epoch_1",
                            checkpoint_name=str(tmp_path / "new"))
    assert (s.epoch, s.batch_size, s.lr_decay) == (1, 10, RUNS[stem][1]["lr_decay"])
    s.train()
    _, end = ckpt.load_checkpoint(DATA / f"{stem}_epoch_3")
    assert s.status == "finished" and end["status"] == "running"   # written inside the loop
    assert s.loss_history == end["loss_history"] and len(s.loss_history) == 12
    assert s.train_acc_history == end["train_acc_history"]
    assert s.val_acc_history == end["val_acc_history"]
    assert (s.best_epoch, s.best_val_acc) == (end["best_epoch"], end["best_val_acc"])
    _assert_same_checkpoint(DATA / f"{stem}_epoch_3", tmp_path / "new_epoch_3")


@pytest.mark.parametrize("stem", list(RUNS))
def test_new_code_writes_the_old_files(tmp_path, stem):
    cls, opts = RUNS[stem]
    np.random.seed(231)
    cls(_net(), _data(), **OPTS, **opts, checkpoint_name=str(tmp_path / "new")).train()
    for epoch in (1, 3):
        _assert_same_checkpoint(DATA / f"{stem}_epoch_{epoch}", tmp_path / f"new_epoch_{epoch}")


def test_state_round_trips_without_files():
    cls, opts = RUNS["old_solver"]
    a = cls(_net(), _data(), **OPTS, **opts)
    a.num_epochs = 1
    a.train()
    arrays, meta = solver_state.solver_state(a)
    b = cls(_net(rng_seed=7), _data(), **OPTS, **opts)
    solver_state.restore(b, arrays, json.loads(json.dumps(meta)), "in memory")
    a.num_epochs = b.num_epochs = 3
    a.train()
    b.train()
    assert b.loss_history == a.loss_history and b.val_acc_history == a.val_acc_history
    for k, v in a.model.params.items():
        assert np.array_equal(v, b.model.params[k]), k


def test_refused_restore_changes_nothing():
    # A normlab Solver's checkpoint has no global np.random state, which a course Solver needs;
    # it is refused only after the parameters were checked, and before any is replaced.
    s = CourseSolver(_net(), _data(), **OPTS, **RUNS["old_course"][1])
    before = {k: v.copy() for k, v in s.model.params.items()}
    configs = s.optim_configs
    with pytest.raises(CheckpointError, match=r"old_solver_epoch_1\.json.*no global np\.random state"):
        s.load_checkpoint(DATA / "old_solver_epoch_1")
    assert all(np.array_equal(v, before[k]) for k, v in s.model.params.items())
    assert s.optim_configs is configs and s.loss_history == [] and s.epoch == 0


def test_read_refuses_another_kind(tmp_path):
    ckpt.save_checkpoint(tmp_path / "other", {"x": np.zeros(2)}, {"kind": "something.Else"})
    with pytest.raises(CheckpointError, match=r"other\.json.*not a Solver checkpoint \(kind 'something\.Else'\)"):
        Solver.from_checkpoint(_net(), _data(), tmp_path / "other")
    arrays, meta = solver_state.solver_state(Solver(_net(), _data(), **OPTS))
    assert meta["kind"] == "normlab.solver.Solver"   # the string in every file; never changes


def test_non_generator_model_rng_is_refused():
    s = Solver(_net(), _data(), **OPTS)
    s.model.rng = np.random.RandomState(0)
    with pytest.raises(TypeError, match="model.rng must be a np.random.Generator.*RandomState"):
        solver_state.solver_state(s)
