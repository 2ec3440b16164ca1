"""The Solver: minibatch training of a classification model, as in CS231n,
reproducible bit for bit and safe to run in sweeps.

Model protocol (duck-typed):

* ``model.params``: dict name -> ndarray, the learnable parameters.
* ``model.loss(X, y=None)``: scores of shape (N, C) when ``y`` is None (test
  mode), else ``(loss, grads)`` with ``grads`` keyed like ``params``.
* optional ``model.state_arrays() -> dict[str, ndarray]`` and
  ``model.load_state_arrays(d)``: non-learnable state (batch-norm running
  statistics). It is part of the best snapshot and of checkpoints.
* optional ``model.rng``: the ``np.random.Generator`` the model draws dropout
  masks from; its bit-generator state is checkpointed.
* optional ``model.num_classes``: the labels must lie in ``0..num_classes-1``.
  Without it, a model whose weights follow the course's naming (W1, ..., WL,
  the last of shape (H, C)) has ``C`` classes; otherwise labels need only be
  non-negative.

Differences from the course Solver (the public names are the same):

* Each epoch visits a fresh permutation of the training set, drawn from a
  generator owned by the Solver: the minibatch order of epoch ``e`` is the
  ``e``-th ``np.random.default_rng(seed).permutation(N)``, cut into
  ``max(N // batch_size, 1)`` batches (the remainder is dropped). The global
  NumPy RNG is never used. ``check_accuracy`` subsamples with a second seeded
  generator, so evaluating does not shift the training batches.
* Accuracies are measured at epoch 0 (before any update) and after every
  epoch: ``len(val_acc_history) == num_epochs + 1`` for a finished run.
* The best snapshot (``best_params`` plus ``best_state``, the state arrays)
  starts with epoch 0 and is swapped into the model when training ends,
  running statistics included.
* Divergence ends training cleanly (see :meth:`Solver.train`).
* ``checkpoint_name`` writes an npz + json pair after every epoch (see
  :mod:`normlab.train.checkpoint`); :meth:`Solver.from_checkpoint` resumes and
  reproduces the uninterrupted run bit for bit.
* Unknown options raise ``ValueError``, and so do bad data (see :class:`Solver`).
"""
from __future__ import annotations

import math
import os

import numpy as np

from .train import checkpoint as ckpt
from . import optim
from .nn._checks import NonFiniteError, require_class_indices, require_finite_data

__all__ = ["Solver"]

_OPTIONS = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "checkpoint_name": None,
    "print_every": 10,
    "verbose": True,
    "seed": 0,
    "restore_best": True,
}
_CHECKPOINT_KIND = "normlab.solver.Solver"


def _numerics():
    """Floating-point errors raise (caught as divergence) instead of warning;
    underflow to zero is harmless."""
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


def _int_option(value, name: str, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}"
                         + (" or None" if allow_none else "") + f", got {value!r}")
    return int(value)


def _model_classes(model) -> tuple[int | None, str]:
    """(number of classes, where it comes from) of ``model``; (None, "") when unknown."""
    c = getattr(model, "num_classes", None)
    if isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0:
        return int(c), f"the model has {c} classes"
    numbered = [int(k[1:]) for k in model.params if k[:1] == "W" and k[1:].isdigit()]
    if numbered:
        name = f"W{max(numbered)}"
        W = model.params[name]
        if getattr(W, "ndim", 0) == 2:
            return int(W.shape[1]), f"the model's output weight {name} has {W.shape[1]} columns"
    return None, ""


def _rng_state_to_json(state):
    # PCG64 states are plain ints; MT19937 carries an ndarray key.
    if isinstance(state, dict):
        return {k: _rng_state_to_json(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return {"__ndarray__": state.tolist(), "dtype": state.dtype.str}
    if isinstance(state, np.integer):
        return int(state)
    return state


def _rng_state_from_json(state):
    if isinstance(state, dict):
        if "__ndarray__" in state:
            return np.asarray(state["__ndarray__"], dtype=np.dtype(state["dtype"]))
        return {k: _rng_state_from_json(v) for k, v in state.items()}
    return state


class Solver:
    """Train ``model`` on ``data`` with minibatch gradient descent.

    Inputs:
    - model: an object following the model protocol of this module.
    - data: dict with ``X_train`` (N, ...), ``y_train`` (N,), ``X_val``,
      ``y_val`` (other keys are ignored).
    - update_rule: a name in ``optim.UPDATE_RULES`` or a callable
      ``update(w, dw, config) -> (next_w, config)``. Default 'sgd'.
    - optim_config: dict of hyperparameters, copied for every parameter.
    - lr_decay: ``learning_rate`` of every parameter is multiplied by it after each epoch.
    - batch_size, num_epochs: minibatch size and number of epochs.
    - num_train_samples / num_val_samples: subsample size for the accuracy
      checks (None: the whole split). Defaults 1000 / None.
    - checkpoint_name: write ``f"{checkpoint_name}_epoch_{epoch}.npz/.json"`` after each epoch.
    - print_every, verbose: progress printing.
    - seed: int >= 0 (or None for fresh entropy) seeding minibatch order and
      accuracy subsampling.

    Raises ``ValueError`` for an unknown option (naming it), a bad value or
    missing data keys, and checks the data once, here: ``X_train``/``X_val``
    are arrays of real numbers, all finite, with the same per-sample shape;
    ``y_train``/``y_val`` are 1-D integer arrays of class indices (in
    ``0..C-1`` when the model tells its number of classes C, see the module
    docstring), one per row of X. Violations raise ``ValueError`` (``TypeError``
    for a non-array or non-numeric dtype) naming the key and the first bad entry.
    """

    #: True for a subclass whose minibatches come from the global np.random (the
    #: course faces): its checkpoints then carry that generator's state.
    _uses_global_rng = False

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown Solver option(s) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(_OPTIONS)}")
        opts = {**_OPTIONS, **kwargs}
        if not isinstance(getattr(model, "params", None), dict):
            raise TypeError(f"model must have a dict attribute 'params', got {type(model).__name__}")
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"data is missing {', '.join(missing)}; expected X_train, y_train, X_val, y_val")
        self.model = model
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]
        self._check_data()

        rule = opts["update_rule"]
        self.optim_config = dict(opts["optim_config"] or {})
        if isinstance(rule, str):
            optim.check_config(rule, self.optim_config)
            self.update_rule_name, self.update_rule = rule, optim.UPDATE_RULES[rule][0]
        elif callable(rule):
            names = [n for n, (f, _) in optim.UPDATE_RULES.items() if f is rule]
            self.update_rule_name, self.update_rule = (names[0] if names else None), rule
            if names:
                optim.check_config(names[0], self.optim_config)
        else:
            raise ValueError(f"update_rule must be a name in {list(optim.UPDATE_RULES)} or a callable, got {rule!r}")
        lr_decay = opts["lr_decay"]
        if isinstance(lr_decay, bool) or not isinstance(lr_decay, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(lr_decay) and lr_decay > 0):
            raise ValueError(f"lr_decay must be a finite number > 0, got {lr_decay!r}")
        self.lr_decay = float(lr_decay)
        self.batch_size = _int_option(opts["batch_size"], "batch_size", 1)
        self.num_epochs = _int_option(opts["num_epochs"], "num_epochs", 0)
        self.num_train_samples = _int_option(opts["num_train_samples"], "num_train_samples", 1, True)
        self.num_val_samples = _int_option(opts["num_val_samples"], "num_val_samples", 1, True)
        self.print_every = _int_option(opts["print_every"], "print_every", 1)
        self.verbose = bool(opts["verbose"])
        name = opts["checkpoint_name"]
        self.checkpoint_name = None if name is None else os.fspath(name)
        self.seed = _int_option(opts["seed"], "seed", 0, True)
        if not isinstance(opts["restore_best"], bool):
            raise ValueError(f"restore_best must be True or False, got {opts['restore_best']!r}")
        self.restore_best = opts["restore_best"]
        self._reset()

    def _check_data(self) -> None:
        """Validate the four arrays (see the class docstring): shapes and labels first, then one
        finiteness pass over each X."""
        num_classes, source = _model_classes(self.model)
        for split in ("train", "val"):
            X, y = getattr(self, f"X_{split}"), getattr(self, f"y_{split}")
            for key, a in ((f"X_{split}", X), (f"y_{split}", y)):
                if not isinstance(a, np.ndarray) or a.ndim == 0:
                    got = "a 0-d array" if isinstance(a, np.ndarray) else type(a).__name__
                    raise TypeError(f"data[{key!r}] must be a NumPy array with one row per sample, got {got}; "
                                    f"convert with np.asarray")
            if len(X) == 0 or len(X) != len(y):
                raise ValueError(f"X_{split} has {len(X)} rows and y_{split} {len(y)} labels; they must be "
                                 f"non-empty and equal (one label per row)")
            require_class_indices(y, f"y_{split}", num_classes, source)
        if self.X_val.shape[1:] != self.X_train.shape[1:]:
            raise ValueError(f"X_val has per-sample shape {self.X_val.shape[1:]}, X_train "
                             f"{self.X_train.shape[1:]}; both splits must be preprocessed alike")
        require_finite_data(self.X_train, "X_train")
        require_finite_data(self.X_val, "X_val")

    def _reset(self):
        self.epoch = 0
        self.iteration = 0
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.best_val_acc = 0.0
        self.best_epoch: int | None = None
        self.best_params: dict[str, np.ndarray] = {}
        self.best_state: dict[str, np.ndarray] = {}
        self.diverged = False
        self.status = "created"
        self.divergence_reason: str | None = None
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}
        seq = np.random.SeedSequence(self.seed)
        # default_rng(seed) == Generator(PCG64(SeedSequence(seed))): batches are
        # reproducible outside the Solver; the spawned child is an independent stream.
        self._batch_rng = np.random.Generator(np.random.PCG64(seq))
        self._eval_rng = np.random.Generator(np.random.PCG64(seq.spawn(1)[0]))

    # ------------------------------------------------------------ model protocol

    def _state_arrays(self) -> dict[str, np.ndarray]:
        get = getattr(self.model, "state_arrays", None)
        return {} if get is None else {k: np.array(v, copy=True) for k, v in get().items()}

    def _load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        # Called even with {}: a snapshot taken before the first forward pass has
        # no running statistics yet, and restoring it must drop the later ones.
        load = getattr(self.model, "load_state_arrays", None)
        if load is not None:
            load({k: np.array(v, copy=True) for k, v in arrays.items()})

    # ------------------------------------------------------------ training

    def _diverge(self, reason: str, loss: float | None = None) -> bool:
        if loss is not None:
            self.loss_history.append(loss)
        self.diverged = True
        self.status = "diverged"
        where = (f"iteration {self.iteration + 1}" if loss is not None
                 else f"the accuracy check after iteration {self.iteration}")
        self.divergence_reason = f"epoch {self.epoch}, {where}: {reason}"
        if self.verbose:
            print(f"Diverged at {self.divergence_reason}; stopping")
        return False

    def _step(self, X_batch, y_batch) -> bool:
        """One update of every parameter; False (and nothing updated) on divergence."""
        params = self.model.params
        updates = {}
        try:
            with _numerics():
                loss, grads = self.model.loss(X_batch, y_batch)
                loss = float(loss)
                if not math.isfinite(loss):
                    return self._diverge(f"loss is {loss}", loss)
                for p, w in params.items():
                    if p not in grads:
                        raise ValueError(f"model.loss returned no gradient for parameter {p!r}")
                    if not np.all(np.isfinite(grads[p])):
                        return self._diverge(f"gradient of {p!r} is not finite", math.nan)
                    # Update copies; commit only when every parameter succeeded.
                    updates[p] = self.update_rule(w, grads[p], dict(self.optim_configs[p]))
        except (FloatingPointError, NonFiniteError) as e:
            return self._diverge(f"{type(e).__name__}: {e}", math.nan)
        for p, (next_w, next_config) in updates.items():
            params[p] = next_w
            self.optim_configs[p] = next_config
        self.loss_history.append(loss)
        return True

    def _check_epoch(self) -> bool:
        """Append train/val accuracy and update the best snapshot; False on divergence."""
        try:
            with _numerics():
                train_acc = self.check_accuracy(self.X_train, self.y_train, num_samples=self.num_train_samples)
                val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        except (FloatingPointError, NonFiniteError) as e:
            return self._diverge(f"{type(e).__name__}: {e}")
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if self.verbose:
            print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; val_acc: {val_acc:f}")
        if self.best_epoch is None or val_acc > self.best_val_acc:
            self.best_val_acc, self.best_epoch = val_acc, self.epoch
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}
            self.best_state = self._state_arrays()
        return True

    def _decay_learning_rates(self) -> None:
        if self.lr_decay == 1.0:
            return
        for p, config in self.optim_configs.items():
            if "learning_rate" not in config:
                raise ValueError(f"lr_decay={self.lr_decay} needs a 'learning_rate' in the optimizer "
                                 f"config of {p!r}; pass it in optim_config")
            config["learning_rate"] *= self.lr_decay

    def train(self):
        """Run the remaining epochs (all of them, or those after a checkpoint).

        Every step runs under ``np.errstate(over/invalid/divide='raise')``. A
        non-finite loss or gradient, a ``FloatingPointError`` or a
        ``NonFiniteError`` during a step (or during the epoch's accuracy check)
        stops training: ``diverged`` becomes True, ``status`` 'diverged',
        ``divergence_reason`` says where and why. The diverging step is the
        last entry of ``loss_history``: the loss itself when it was computed
        and is non-finite (nan or inf), else ``nan``; its update is not
        applied. Accuracy histories then end at the last completed epoch.
        Other exceptions (programming errors) propagate.

        At the end, finished or diverged, the best snapshot (highest
        validation accuracy, earliest on ties, epoch 0 included) is swapped
        into the model: parameters and state arrays. With
        ``restore_best=False`` (a normlab option) the model keeps its final
        parameters, as a plain training loop would.
        """
        if self.diverged:
            return
        self.status = "running"
        if self._run_schedule():
            self.status = "finished"
        if self.restore_best and self.best_epoch is not None:
            self._restore_best()

    def _iterations(self) -> tuple[int, int]:
        """(iterations per epoch, iterations in all): the remainder of N / batch_size is dropped."""
        per_epoch = max(len(self.X_train) // self.batch_size, 1)
        return per_epoch, self.num_epochs * per_epoch

    def _after_iteration(self, total: int) -> None:
        """Count the iteration just taken and print its loss every ``print_every`` iterations."""
        self.iteration += 1
        if self.verbose and (self.iteration - 1) % self.print_every == 0:
            print(f"(Iteration {self.iteration} / {total}) loss: {self.loss_history[-1]:f}")

    def _run_schedule(self) -> bool:
        """normlab's schedule: accuracy at epoch 0, then per epoch a fresh permutation
        cut into batches, learning-rate decay, accuracy and checkpoint. False on divergence."""
        per_epoch, total = self._iterations()
        ok = bool(self.val_acc_history) or self._check_epoch()   # epoch 0, unless resumed
        while ok and self.epoch < self.num_epochs:
            order = self._batch_rng.permutation(len(self.X_train))
            for i in range(per_epoch):
                batch = order[i * self.batch_size:(i + 1) * self.batch_size]
                if not self._step(self.X_train[batch], self.y_train[batch]):
                    return False
                self._after_iteration(total)
            self.epoch += 1
            self._decay_learning_rates()
            ok = self._check_epoch()
            if ok and self.checkpoint_name is not None:
                self.save_checkpoint(f"{self.checkpoint_name}_epoch_{self.epoch}")
        return ok

    def _restore_best(self) -> None:
        """Swap the best snapshot into the model: parameters and state arrays."""
        for k, v in self.best_params.items():
            self.model.params[k] = v.copy()
        self._load_state_arrays(self.best_state)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100) -> float:
        """Fraction of ``X`` (N, ...) whose argmax score equals ``y`` (N,).

        When ``num_samples`` < N, a subset of that size is drawn without
        replacement from the Solver's evaluation generator. Scores come from
        ``model.loss(X_batch)`` on batches of ``batch_size``; the result does
        not depend on the batching for models whose test mode is per-sample.

        ``y`` must hold class indices (1-D, integer, >= 0) below the number of
        scores the model gives: a label it cannot predict raises ValueError
        instead of counting as a wrong prediction.
        """
        batch_size = _int_option(batch_size, "batch_size", 1)
        num_samples = _int_option(num_samples, "num_samples", 1, True)
        labels = y = require_class_indices(y, "y")
        N = len(X)
        if N == 0 or len(y) != N:
            raise ValueError(f"X and y must be non-empty and of equal length, got {N} and {len(y)}")
        if num_samples is not None and N > num_samples:
            mask = np.sort(self._eval_rng.choice(N, size=num_samples, replace=False))
            X, y, N = X[mask], y[mask], num_samples
        y_pred = []
        for i in range(0, N, batch_size):
            scores = self.model.loss(X[i:i + batch_size])
            y_pred.append(np.argmax(scores, axis=1))
        num_classes = scores.shape[1]
        if labels.max() >= num_classes:
            require_class_indices(labels, "y", num_classes, f"the model scores {num_classes} classes")
        return float(np.mean(np.concatenate(y_pred) == y))

    # ------------------------------------------------------------ checkpoints

    def _hyperparameters(self) -> dict:
        rule = self.update_rule
        return {"update_rule": self.update_rule_name,
                "update_rule_callable": None if self.update_rule_name else
                f"{getattr(rule, '__module__', '?')}.{getattr(rule, '__qualname__', repr(rule))}",
                # Only the JSON-able part; the per-parameter configs are restored in full.
                "optim_config": {k: (v.item() if isinstance(v, np.generic) else v)
                                 for k, v in self.optim_config.items()
                                 if isinstance(v, (np.generic, bool, int, float, str)) or v is None},
                "lr_decay": self.lr_decay,
                "batch_size": self.batch_size, "num_epochs": self.num_epochs,
                "num_train_samples": self.num_train_samples, "num_val_samples": self.num_val_samples,
                "checkpoint_name": self.checkpoint_name, "print_every": self.print_every,
                "verbose": self.verbose, "seed": self.seed, "restore_best": self.restore_best}

    def save_checkpoint(self, path):
        """Write the full training state to ``path`` (stem; ``.npz`` + ``.json``).

        npz groups: ``params/``, ``state/``, ``best_params/``, ``best_state/``,
        ``optim/<param>/<key>`` (optimizer arrays, NumPy scalars as 0-d arrays).
        JSON meta: hyperparameters, per-parameter optimizer scalars, counters,
        histories, best epoch/accuracy, status, RNG bit-generator states.
        Returns ``(npz_path, json_path)``.
        """
        arrays = ckpt.flatten({"params": self.model.params, "state": self._state_arrays(),
                               "best_params": self.best_params, "best_state": self.best_state})
        configs = {}
        for p, config in self.optim_configs.items():
            entry = configs[p] = {"scalars": {}, "arrays": {}}
            for k, v in config.items():
                if isinstance(v, (np.ndarray, np.generic)):
                    key = f"optim/{p}/{k}"
                    if key in arrays:
                        raise ValueError(f"optimizer array key {key!r} is ambiguous")
                    arrays[key] = np.asarray(v)
                    entry["arrays"][k] = {"key": key, "scalar": isinstance(v, np.generic)}
                elif v is None or isinstance(v, (bool, int, float, str)):
                    entry["scalars"][k] = v
                else:
                    raise TypeError(f"cannot checkpoint optimizer option {k!r} of {p!r}: "
                                    f"{type(v).__name__} is neither a number, a string nor an array")
        model_rng = getattr(self.model, "rng", None)
        if model_rng is not None and not hasattr(model_rng, "bit_generator"):
            raise TypeError(f"model.rng must be a np.random.Generator to be checkpointed, "
                            f"got {type(model_rng).__name__}")
        meta = {"kind": _CHECKPOINT_KIND, "hyperparameters": self._hyperparameters(),
                "epoch": self.epoch, "iteration": self.iteration,
                "loss_history": self.loss_history, "train_acc_history": self.train_acc_history,
                "val_acc_history": self.val_acc_history, "best_val_acc": self.best_val_acc,
                "best_epoch": self.best_epoch, "status": self.status, "diverged": self.diverged,
                "divergence_reason": self.divergence_reason, "optim_configs": configs,
                "rng": {"minibatch": _rng_state_to_json(self._batch_rng.bit_generator.state),
                        "eval": _rng_state_to_json(self._eval_rng.bit_generator.state),
                        "model": None if model_rng is None else
                        _rng_state_to_json(model_rng.bit_generator.state),
                        "global": None if not self._uses_global_rng else
                        _rng_state_to_json(np.random.get_state(legacy=False))}}
        return ckpt.save_checkpoint(path, arrays, meta)

    @classmethod
    def from_checkpoint(cls, model, data, path, **overrides):
        """A Solver in the state saved at ``path``, ready to ``train()`` on.

        Hyperparameters come from the checkpoint; ``overrides`` replace them
        (e.g. ``num_epochs``, ``verbose``, ``checkpoint_name``). An
        ``optim_config`` override is applied on top of the restored per-
        parameter configs (e.g. a new learning rate). A checkpoint of a run
        with a callable ``update_rule`` needs ``update_rule=`` again.
        """
        arrays, meta = ckpt.load_checkpoint(path)
        json_path = ckpt.checkpoint_paths(path)[1]
        hp = cls._checked_meta(meta, json_path)["hyperparameters"]
        kwargs = {k: v for k, v in hp.items() if k in _OPTIONS}
        if hp.get("update_rule") is None and "update_rule" not in overrides:
            raise ValueError(f"checkpoint {str(json_path)!r} was trained with the callable update rule "
                             f"{hp.get('update_rule_callable')}; pass update_rule= to resume")
        kwargs.update(overrides)
        solver = cls(model, data, **kwargs)
        solver._restore(arrays, meta, json_path)
        if overrides.get("optim_config"):
            for config in solver.optim_configs.values():
                config.update(overrides["optim_config"])
        return solver

    def load_checkpoint(self, path) -> None:
        """Restore model parameters and state, optimizer state, RNG states,
        counters, histories and best snapshot from ``path``; this Solver's
        hyperparameters (batch size, epochs, ...) are kept."""
        arrays, meta = ckpt.load_checkpoint(path)
        self._restore(arrays, meta, ckpt.checkpoint_paths(path)[1])

    @staticmethod
    def _checked_meta(meta: dict, json_path) -> dict:
        if meta.get("kind") != _CHECKPOINT_KIND:
            raise ckpt.CheckpointError(f"{str(json_path)!r} is not a Solver checkpoint (kind {meta.get('kind')!r})")
        return meta

    def _restore(self, arrays, meta, json_path) -> None:
        def fail(msg):
            raise ckpt.CheckpointError(f"checkpoint {str(json_path)!r}: {msg}")

        meta = self._checked_meta(meta, json_path)
        groups = ckpt.unflatten({k: v for k, v in arrays.items() if not k.startswith("optim/")})
        params = groups.get("params", {})
        if set(params) != set(self.model.params):
            fail(f"parameters {sorted(params)} do not match the model's {sorted(self.model.params)}")
        for k, v in params.items():
            cur = self.model.params[k]
            if v.shape != cur.shape or v.dtype != cur.dtype:
                fail(f"parameter {k!r} is {v.dtype} of shape {v.shape}, the model has {cur.dtype} of shape {cur.shape}")
        state = groups.get("state", {})
        if state and not hasattr(self.model, "load_state_arrays"):
            fail("holds state arrays but the model has no load_state_arrays()")
        model_rng = getattr(self.model, "rng", None)
        if (meta["rng"]["model"] is None) != (model_rng is None):
            fail("model.rng presence differs from the checkpointed model's")
        configs = {}
        for p, entry in meta["optim_configs"].items():
            config = dict(entry["scalars"])
            for k, a in entry["arrays"].items():
                config[k] = arrays[a["key"]][()] if a["scalar"] else arrays[a["key"]]
            configs[p] = config
        if set(configs) != set(self.model.params):
            fail(f"optimizer configs for {sorted(configs)} do not match the model's parameters")

        for k, v in params.items():
            self.model.params[k] = v
        self._load_state_arrays(state)
        if model_rng is not None:
            model_rng.bit_generator.state = _rng_state_from_json(meta["rng"]["model"])
        if self._uses_global_rng:
            if meta["rng"].get("global") is None:
                fail("holds no global np.random state, which this Solver's minibatches come from")
            np.random.set_state(_rng_state_from_json(meta["rng"]["global"]))
        self._batch_rng.bit_generator.state = _rng_state_from_json(meta["rng"]["minibatch"])
        self._eval_rng.bit_generator.state = _rng_state_from_json(meta["rng"]["eval"])
        self.optim_configs = configs
        self.epoch, self.iteration = meta["epoch"], meta["iteration"]
        self.loss_history = list(meta["loss_history"])
        self.train_acc_history = list(meta["train_acc_history"])
        self.val_acc_history = list(meta["val_acc_history"])
        self.best_val_acc, self.best_epoch = meta["best_val_acc"], meta["best_epoch"]
        self.best_params = groups.get("best_params", {})
        self.best_state = groups.get("best_state", {})
        self.diverged, self.status = meta["diverged"], meta["status"]
        self.divergence_reason = meta["divergence_reason"]
