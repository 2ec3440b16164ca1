"""The Solver: minibatch training of a classification model, as in CS231n,
reproducible bit for bit and safe to run in sweeps.

Model protocol (``normlab.nets.Model`` states it in full; the Solver needs only this part):

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
  :mod:`normlab.train.solver_state`); :meth:`Solver.from_checkpoint` resumes and
  reproduces the uninterrupted run bit for bit.
* Unknown options raise ``ValueError``, and so do bad data (see :class:`Solver`
  and :mod:`normlab.train._validate`).
"""
from __future__ import annotations

import math
import os

import numpy as np

from . import checkpoint as ckpt
from . import solver_state
from .. import optim
from ._validate import (accuracy_labels, checked_data, flag, int_option, known_options, lr_decay,
                        require_predictable, update_rule)
from ..nn import _jit_ops, backend
from ..nn._checks import NonFiniteError

__all__ = ["Solver"]


def _all_finite(a) -> bool:
    """Every entry of the gradient ``a`` finite (one pass on the Numba backend, no mask array)."""
    fast = _jit_ops.all_finite(a)
    return bool(np.all(np.isfinite(a))) if fast is None else fast


def _fused_name(name: str, rule) -> str | None:
    """``name`` when ``rule`` is optim's own rule of that name and the Numba backend is on, else None."""
    return name if backend.fast() and optim.UPDATE_RULES.get(name, (None,))[0] is rule else None


def _apply(fused: str | None, rule, w, dw, config: dict):
    """``(next_w, next_config)``, or None when dw is not finite.

    optim's own rule on the Numba backend: its fused kernel both updates and
    proves the gradient finite (``optim.fused_update``), so dw needs no pass of its own.
    """
    update = None if fused is None else optim.fused_update(fused, w, dw, config)
    if update is None:
        if not _all_finite(dw):
            return None
        update = rule(w, dw, config)
    return update


def _numerics():
    """Floating-point errors raise (caught as divergence) instead of warning;
    underflow to zero is harmless."""
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


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

    Raises ``ValueError`` for an unknown option (naming it), a bad value or bad
    data, checked once, here (:func:`normlab.train._validate.checked_data`): X
    finite real arrays of one per-sample shape, y 1-D integer class indices (in
    ``0..C-1`` when the model tells C, see the module docstring), one per row of
    X. ``TypeError`` for a non-array or non-numeric dtype.
    """

    #: True for a subclass whose minibatches come from the global np.random (the
    #: course faces): its checkpoints then carry that generator's state.
    _uses_global_rng = False

    def __init__(self, model, data, **kwargs):
        opts = known_options(kwargs)
        self.X_train, self.y_train, self.X_val, self.y_val = checked_data(model, data)
        self.model = model
        self.update_rule_name, self.update_rule, self.optim_config = update_rule(
            opts["update_rule"], opts["optim_config"])
        self.lr_decay = lr_decay(opts["lr_decay"])
        self.batch_size = int_option(opts["batch_size"], "batch_size", 1)
        self.num_epochs = int_option(opts["num_epochs"], "num_epochs", 0)
        self.num_train_samples = int_option(opts["num_train_samples"], "num_train_samples", 1, True)
        self.num_val_samples = int_option(opts["num_val_samples"], "num_val_samples", 1, True)
        self.print_every = int_option(opts["print_every"], "print_every", 1)
        self.verbose = bool(opts["verbose"])
        self.checkpoint_name = None if opts["checkpoint_name"] is None else os.fspath(opts["checkpoint_name"])
        self.seed = int_option(opts["seed"], "seed", 0, True)
        self.restore_best = flag(opts["restore_best"], "restore_best")
        self._reset()

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
        fused = _fused_name(self.update_rule_name, self.update_rule)
        try:
            with _numerics():
                loss, grads = self.model.loss(X_batch, y_batch)
                loss = float(loss)
                if not math.isfinite(loss):
                    return self._diverge(f"loss is {loss}", loss)
                for p, w in params.items():
                    if p not in grads:
                        raise ValueError(f"model.loss returned no gradient for parameter {p!r}")
                    # Update copies; commit only when every parameter succeeded.
                    updates[p] = _apply(fused, self.update_rule, w, grads[p], dict(self.optim_configs[p]))
                    if updates[p] is None:
                        return self._diverge(f"gradient of {p!r} is not finite", math.nan)
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
            self.best_state = solver_state.state_arrays(self.model)
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

        Steps and accuracy checks run under ``np.errstate(over/invalid/divide='raise')``.
        A non-finite loss or gradient, a ``FloatingPointError`` or a ``NonFiniteError``
        stops training: ``diverged`` becomes True, ``status`` 'diverged' and
        ``divergence_reason`` says where and why. The diverging step's loss (the
        loss itself when it was computed and is nan or inf, else nan) ends
        ``loss_history``; its update is not applied, and the accuracy histories end
        at the last completed epoch. Other exceptions (programming errors) propagate.

        At the end, finished or diverged, the best snapshot (highest validation
        accuracy, earliest on ties, epoch 0 included) is swapped into the model,
        parameters and state arrays; with ``restore_best=False`` (a normlab option)
        the model keeps its final parameters, as a plain training loop would.
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
        solver_state.load_state_arrays(self.model, self.best_state)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100) -> float:
        """Fraction of ``X`` (N, ...) whose argmax score equals ``y`` (N,).

        When ``num_samples`` < N, a subset of that size is drawn without
        replacement from the Solver's evaluation generator. Scores come from
        ``model.loss(X_batch)`` on batches of ``batch_size`` (the result does
        not depend on it for models whose test mode is per-sample). ``y`` must
        hold class indices (1-D, integer, >= 0) below the number of scores: a
        label the model cannot predict raises ValueError, not a wrong prediction.
        """
        batch_size = int_option(batch_size, "batch_size", 1)
        num_samples = int_option(num_samples, "num_samples", 1, True)
        labels = y = accuracy_labels(X, y)
        N = len(X)
        if num_samples is not None and N > num_samples:
            mask = np.sort(self._eval_rng.choice(N, size=num_samples, replace=False))
            X, y, N = X[mask], y[mask], num_samples
        y_pred = []
        for i in range(0, N, batch_size):
            scores = self.model.loss(X[i:i + batch_size])
            y_pred.append(np.argmax(scores, axis=1))
        require_predictable(labels, num_classes=scores.shape[1])
        return float(np.mean(np.concatenate(y_pred) == y))

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path):
        """Write the full training state to ``path`` (stem; ``.npz`` + ``.json``; the
        layout is in :mod:`normlab.train.solver_state`). Returns ``(npz_path, json_path)``."""
        return ckpt.save_checkpoint(path, *solver_state.solver_state(self))

    @classmethod
    def from_checkpoint(cls, model, data, path, **overrides):
        """A Solver in the state saved at ``path``, ready to ``train()`` on.

        Hyperparameters come from the checkpoint; ``overrides`` replace them
        (e.g. ``num_epochs``, ``verbose``, ``checkpoint_name``). An
        ``optim_config`` override is applied on top of the restored per-
        parameter configs (e.g. a new learning rate). A checkpoint of a run
        with a callable ``update_rule`` needs ``update_rule=`` again.
        """
        arrays, meta, json_path = solver_state.read(path)
        solver = cls(model, data, **solver_state.resume_options(meta, json_path, overrides))
        solver_state.restore(solver, arrays, meta, json_path)
        if overrides.get("optim_config"):
            for config in solver.optim_configs.values():
                config.update(overrides["optim_config"])
        return solver

    def load_checkpoint(self, path) -> None:
        """Restore model parameters and state, optimizer state, RNG states,
        counters, histories and best snapshot from ``path``; this Solver's
        hyperparameters (batch size, epochs, ...) are kept."""
        solver_state.restore(self, *solver_state.read(path))
