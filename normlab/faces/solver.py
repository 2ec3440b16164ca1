"""The course's Solver schedule on normlab's Solver: what ``cs231n.solver`` and
UCLA's ``nndl`` solver do, so a seeded course cell trains on the same batches.

normlab's :class:`~normlab.train.solver.Solver` draws each epoch as a permutation from
its own seeded generator and measures accuracy before the first update. The
course's loop (CS231n 2017-2022, copied by UCLA) differs, and its printed
numbers depend on the differences:

* every iteration samples ``np.random.choice(num_train, batch_size)`` from
  the GLOBAL generator (with replacement), so ``np.random.seed(231)`` before
  the cell fixes the batches;
* accuracy is checked after the first iteration (the "Epoch 0" line comes
  after one update), at the end of every epoch and after the last iteration;
  each check subsamples ``np.random.choice(N, num_samples)`` from the global
  generator, which shifts the following batches;
* the best parameters are those of the strictly highest validation accuracy
  and are the only thing restored at the end (the batch-norm running
  statistics stay those of the last iteration, as in the course);
* ``update_rule`` given as a string is looked up in the face's ``optim``
  module (``nndl``'s rmsprop keeps ``'a'``, and so on).

Everything else is normlab's: the update step and its divergence handling
(a non-finite loss ends training cleanly instead of training on NaN),
the accuracy computation, checkpoints as ``.npz`` + ``.json`` (with the global
generator's state, so a resumed run draws the same batches).
"""
from __future__ import annotations

import numpy as np

from ..train.solver import Solver

__all__ = ["CourseSolver"]


class CourseSolver(Solver):
    """``Solver(model, data, **kwargs)`` with the course's schedule (see the module docstring).

    ``optim`` is the face's optimizer module, where a string ``update_rule``
    is looked up; each face's ``solver.Solver`` is a subclass that sets it.
    """
    optim = None
    _uses_global_rng = True

    def __init__(self, model, data, **kwargs):
        rule = kwargs.get("update_rule", "sgd")
        if isinstance(rule, str):
            fn = getattr(self.optim, rule, None) if not rule.startswith("_") else None
            if not callable(fn):
                raise ValueError(f'Invalid update_rule "{rule}"; expected one of '
                                 f"{', '.join(getattr(self.optim, '__all__', ()))}")
            kwargs["update_rule"] = fn
        super().__init__(model, data, **kwargs)

    def _run_schedule(self) -> bool:
        """The course's loop: ``num_epochs * max(N // batch_size, 1)`` iterations of one
        random minibatch each; accuracy (and checkpoint) after the first, every
        epoch's last and the very last iteration. False on divergence."""
        per_epoch, total = self._iterations()
        for t in range(self.iteration, total):
            batch = np.random.choice(len(self.X_train), self.batch_size)
            if not self._step(self.X_train[batch], self.y_train[batch]):
                return False
            self._after_iteration(total)
            epoch_end = (t + 1) % per_epoch == 0
            if epoch_end:
                self.epoch += 1
                self._decay_learning_rates()
            if t == 0 or t == total - 1 or epoch_end:
                if not self._check_epoch():
                    return False
                if self.checkpoint_name is not None:
                    self.save_checkpoint(f"{self.checkpoint_name}_epoch_{self.epoch}")
        return True

    def _restore_best(self) -> None:
        """The best parameters only: the course keeps the last running statistics."""
        for k, v in self.best_params.items():
            self.model.params[k] = v.copy()

    def check_accuracy(self, X, y, num_samples=None, batch_size=100) -> float:
        """Accuracy on ``X``; with ``num_samples`` < N, on ``np.random.choice(N, num_samples)``
        (with replacement, from the global generator), as the course subsamples."""
        if num_samples is not None and len(X) > num_samples:
            mask = np.random.choice(len(X), num_samples)
            X, y = X[mask], np.asarray(y)[mask]
        return super().check_accuracy(X, y, None, batch_size)

