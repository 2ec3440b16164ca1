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
- ``batch_order='few_classes'``: every batch instead takes batch / 2 images of each of 2
  classes drawn at random (from the same generator): non-i.i.d. batches.
- ``train_eval_samples``: the accuracy on the first n training images is measured
  with the evaluation set's, into ``train_acc_history``.
- ``measure``: after the last step (of a run that did not diverge), ``fn(model,
  data, **kwargs)`` of the named recipe module; its JSON-able return value is
  ``extras["measure"]`` (what a recipe needs of the trained net besides accuracy).
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


def _few_class_batches(y: np.ndarray, batch: int, rng):
    """Endless non-i.i.d. index batches: 2 distinct classes drawn uniformly, then batch / 2 images of each,
    drawn without replacement from that class's images."""
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    half = batch // 2
    if len(by_class) < 2 or min(len(ix) for ix in by_class) < half:
        raise ValueError(f"batch_order 'few_classes' needs 2 classes with at least {half} images each")
    while True:
        a, b = rng.choice(len(by_class), size=2, replace=False)
        yield np.concatenate([rng.choice(by_class[a], half, replace=False),
                              rng.choice(by_class[b], half, replace=False)])


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
    batches = (_few_class_batches(y, batch, rng) if task.get("batch_order", "iid") == "few_classes"
               else _batches(len(X), batch, rng))
    n_tr = task.get("train_eval_samples")
    train_acc = (lambda: _accuracy(model, X[:n_tr], y[:n_tr])) if n_tr else None
    losses, accs, eval_steps = [], [_accuracy(model, Xe, ye)], [0]
    train_accs = [train_acc()] if train_acc else []
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
                    if train_acc:
                        train_accs.append(train_acc())
    except (FloatingPointError, NonFiniteError) as exc:
        losses.append(None)
        status, error = "diverged", f"non-finite loss at step {len(losses)} ({type(exc).__name__}: {exc})"
    extras = {"eval_set": eval_set, "eval_steps": eval_steps, "probe_steps": probe_steps, "probes": measured}
    if "measure" in task and status == "finished":
        extras["measure"] = _measure(task["measure"], model, data)
    return {"status": status, "error": error, "loss_history": losses, "val_acc_history": accs,
            "train_acc_history": train_accs, "best_val_acc": max(accs),
            "iterations_per_epoch": max(len(X) // batch, 1), "extras": extras}


def _measure(spec: dict, model, data):
    # The task's measure function (check_task allows only normlab recipes') on the trained model;
    # its value must be JSON (a recipe's bug fails the run, with the reason).
    import importlib
    import json
    module, _, name = spec["fn"].partition(":")
    value = getattr(importlib.import_module(module), name)(model, data, **spec.get("kwargs", {}))
    json.dumps(value)
    return value
