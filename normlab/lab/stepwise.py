"""Step-wise training with probes: the protocol of a :class:`~normlab.lab.runs.RunSpec`'s ``task``.

``train_steps(model, data, task, seed) -> dict`` trains ``model`` for
``task["steps"]`` optimizer steps and returns what it measured (the fields of a
:class:`~normlab.lab.runs.RunResult`). The task's schema is documented in
:mod:`normlab.lab.tasks`.

Conventions:

- Mini-batches are drawn without replacement from a fresh permutation of the
  whole training set each epoch, from ``np.random.default_rng([seed, 1])``
  (the model's own generator, from the same seed, stays the model's).
- Step t (1-based) computes the loss on its batch, then (every ``probe_every``
  steps, counting from step 1) runs the probes on that same batch at the
  parameters *before* the update, then applies the update. So the probes at
  step 1 measure the initialised net.
- The evaluation set's accuracy is measured in test mode after the updates of
  steps ``eval_every``, ``2 * eval_every``, ... and after the last step, and
  once before training (step 0).
- A non-finite loss or gradient, or any floating-point error, ends the run as
  'diverged' (the Solver's rule); the losses up to it are kept.
- The percentile probe forwards a fixed set (the first ``samples`` images of
  the evaluation set) in *train* mode, so batch norm normalizes with that
  set's own statistics (the distribution training sees), and restores the
  running statistics: no probe ever changes the model.
"""
from __future__ import annotations

import math

import numpy as np

from .. import optim
from ..nn._checks import NonFiniteError
from .probes import activation_percentiles, internal_covariate_shift, landscape

__all__ = ["train_steps"]


def _accuracy(model, X, y, chunk=1000) -> float:
    hits = 0
    for i in range(0, len(X), chunk):
        hits += int(np.sum(np.argmax(model.loss(X[i:i + chunk]), axis=1) == y[i:i + chunk]))
    return hits / len(X)


def _batches(n: int, batch: int, rng):
    """Endless index batches: each epoch a new permutation, its tail shorter than ``batch`` dropped."""
    if batch > n:
        raise ValueError(f"batch_size={batch} exceeds the {n} training images")
    while True:
        perm = rng.permutation(n)
        for i in range(0, n - batch + 1, batch):
            yield perm[i:i + batch]


def _probe(model, name, opts, Xb, yb, lr, fixed):
    if name == "percentiles":
        acts = model.activation_inputs(fixed, mode="train")
        layer = opts["layer"]
        if not 1 <= layer <= len(acts):
            raise ValueError(f"percentiles layer={layer} but the net has {len(acts)} hidden layers")
        q = opts.get("q", [15, 50, 85])
        return activation_percentiles(acts[layer - 1], q).tolist()
    if name == "ics":
        return internal_covariate_shift(model, Xb, yb, lr, opts["layers"])
    return landscape(model, Xb, yb, lr, tuple(opts.get("multipliers", (0.5, 1, 2, 3, 4))))


def train_steps(model, data: dict, task: dict, seed: int) -> dict:
    """Train ``model`` as ``task`` says (see the module docstring); return the result's fields:
    status, loss_history, val_acc_history (the evaluation set's accuracy at ``extras['eval_steps']``),
    best_val_acc, iterations_per_epoch, error and extras (eval_set, eval_steps, probe_steps, probes)."""
    X, y = data["X_train"], data["y_train"]
    eval_set = task.get("eval_set", "test")
    Xe, ye = data[f"X_{eval_set}"], data[f"y_{eval_set}"]
    if task.get("eval_samples"):
        Xe, ye = Xe[:task["eval_samples"]], ye[:task["eval_samples"]]
    steps, batch, every = task["steps"], task["batch_size"], task["eval_every"]
    probes = task.get("probes", {})
    probe_every = task.get("probe_every", every)
    rule = getattr(optim, task.get("update_rule", "sgd"))
    base = dict(task.get("optim_config", {}))
    lr = float(base.get("learning_rate", 1e-2))
    configs = {k: dict(base) for k in model.params}
    fixed = None
    if "percentiles" in probes:
        fixed = Xe[:probes["percentiles"].get("samples", 1000)]
    rng = np.random.default_rng([seed, 1])
    batches = _batches(len(X), batch, rng)
    losses, accs, eval_steps = [], [_accuracy(model, Xe, ye)], [0]
    probe_steps, measured = [], {name: [] for name in probes}
    status, error = "finished", None
    try:
        # The Solver's numerics: a floating-point error is divergence, not a warning.
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            for t in range(1, steps + 1):
                idx = next(batches)
                Xb, yb = X[idx], y[idx]
                loss, grads = model.loss(Xb, yb)
                loss = float(loss)
                if not math.isfinite(loss) or not all(np.all(np.isfinite(g)) for g in grads.values()):
                    raise NonFiniteError(f"loss {loss} or a gradient is not finite")
                losses.append(loss)
                if probes and (t - 1) % probe_every == 0:
                    probe_steps.append(t - 1)
                    for name, opts in probes.items():
                        measured[name].append(_probe(model, name, opts, Xb, yb, lr, fixed))
                for k in model.params:
                    model.params[k], configs[k] = rule(model.params[k], grads[k], configs[k])
                if t % every == 0 or t == steps:
                    accs.append(_accuracy(model, Xe, ye))
                    eval_steps.append(t)
    except (FloatingPointError, NonFiniteError) as exc:
        losses.append(None)
        status, error = "diverged", f"non-finite loss at step {len(losses)} ({type(exc).__name__}: {exc})"
    return {"status": status, "error": error, "loss_history": losses, "val_acc_history": accs,
            "best_val_acc": max(accs), "iterations_per_epoch": max(len(X) // batch, 1),
            "extras": {"eval_set": eval_set, "eval_steps": eval_steps, "probe_steps": probe_steps,
                       "probes": measured}}
