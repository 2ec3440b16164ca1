"""The schema of a :class:`~normlab.lab.runs.RunSpec`'s ``task``: step-wise training with probes.

A spec without a task trains with the Solver (epochs, validation accuracy per
epoch: the course's protocol). The papers measure differently: a fixed number
of optimizer steps on mini-batches drawn from the whole training set, the
test accuracy every few steps (Ioffe & Szegedy's Figure 1 has steps on its
x axis), and quantities of the model *during* training (the percentiles of a
layer's activation input; Santurkar et al.'s internal covariate shift and
loss-landscape probes). Such a run is described by a task dict::

    {"kind": "steps",
     "steps": 5000,                       # optimizer steps
     "batch_size": 60,
     "update_rule": "sgd",                # a name of normlab.optim
     "optim_config": {"learning_rate": 0.5},
     "eval_every": 250,                   # accuracy on the evaluation set every k steps (and at the end)
     "eval_set": "test",                  # "test" or "val"
     "eval_samples": None,                # the first n images of that set (None: all)
     "probe_every": 250,                  # the probes every k steps (before that step's update)
     "train_eval_samples": 2000,          # also the accuracy on the first n training images (optional)
     "batch_order": "iid",                # or "few_classes": each batch from 2 random classes (optional)
     "measure": {"fn": "normlab.experiments.pitfalls.eval_mode:measure",   # after training (optional):
                 "kwargs": {"batch_sizes": [8, 256]}},                     #   fn(model, data, **kwargs) -> JSON
     "probes": {                          # any of:
         "percentiles": {"layer": 3, "q": [15, 50, 85], "samples": 1000},
         "ics": {"layers": [2, 4, 6]},
         "landscape": {"multipliers": [0.5, 1, 2, 3, 4]}}}

:func:`check_task` validates one (ValueError naming the key and the fix);
:mod:`normlab.lab.stepwise` runs it. A task is part of the run's identity
(``spec_hash``).
"""
from __future__ import annotations

import math

__all__ = ["check_task", "KINDS", "PROBES", "UPDATE_RULES", "BATCH_ORDERS"]

KINDS = ("steps",)
PROBES = ("percentiles", "ics", "landscape")
UPDATE_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")
_KEYS = {"kind", "steps", "batch_size", "update_rule", "optim_config", "eval_every", "eval_set", "eval_samples",
         "probe_every", "probes", "train_eval_samples", "measure", "batch_order"}
#: ``batch_order``: "iid" (default: a fresh permutation each epoch) or "few_classes" (every batch
#: from 2 classes drawn at random, half of it from each: the non-i.i.d. batches of Ioffe 2017).
BATCH_ORDERS = ("iid", "few_classes")
#: Where a task's ``measure`` function may live: a spec comes from files (config.json, the
#: store) that anyone could edit, so it may only name functions of normlab's own recipes.
MEASURE_PACKAGE = "normlab.experiments."
_PROBE_KEYS = {"percentiles": {"layer", "q", "samples"}, "ics": {"layers"}, "landscape": {"multipliers"}}


def _positive_int(task, key, required=True):
    v = task.get(key)
    if v is None and not required:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"task {key!r} must be a positive integer, got {v!r}")


def check_task(task: dict, model: str) -> None:
    """ValueError naming the first thing wrong with ``task`` for a run of ``model``."""
    if not isinstance(task, dict):
        raise ValueError(f"a task is a dict, got {type(task).__name__}")
    if task.get("kind") not in KINDS:
        raise ValueError(f"task kind {task.get('kind')!r} is unknown; expected one of {', '.join(KINDS)}")
    unknown = sorted(set(task) - _KEYS)
    if unknown:
        raise ValueError(f"unknown task key(s) {unknown}; allowed: {sorted(_KEYS)}")
    for key in ("steps", "batch_size", "eval_every"):
        _positive_int(task, key)
    for key in ("eval_samples", "probe_every", "train_eval_samples"):
        _positive_int(task, key, required=False)
    if task.get("update_rule", "sgd") not in UPDATE_RULES:
        raise ValueError(f"task update_rule {task.get('update_rule')!r} is unknown; "
                         f"expected one of {', '.join(UPDATE_RULES)}")
    oc = task.get("optim_config", {})
    if not isinstance(oc, dict):
        raise ValueError(f"task optim_config must be a dict, got {oc!r}")
    lr = oc.get("learning_rate")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr)
                           or lr <= 0):
        raise ValueError(f"task learning_rate must be a finite number > 0, got {lr!r}")
    order = task.get("batch_order", "iid")
    if order not in BATCH_ORDERS:
        raise ValueError(f"task batch_order must be one of {', '.join(BATCH_ORDERS)}, got {order!r}")
    if order == "few_classes" and task["batch_size"] % 2:
        raise ValueError(f"batch_order 'few_classes' takes half of each batch from each of 2 classes: "
                         f"batch_size must be even, got {task['batch_size']}")
    if task.get("eval_set", "test") not in ("test", "val"):
        raise ValueError(f"task eval_set must be 'test' or 'val', got {task.get('eval_set')!r}")
    if "measure" in task:
        m = task["measure"]
        fn = m.get("fn") if isinstance(m, dict) else None
        if (not isinstance(m, dict) or set(m) - {"fn", "kwargs"} or not isinstance(fn, str)
                or not isinstance(m.get("kwargs", {}), dict)):
            raise ValueError(f"task measure must be {{'fn': 'module:function', 'kwargs': {{...}}}}, got {m!r}")
        module, _, name = fn.partition(":")
        if not module.startswith(MEASURE_PACKAGE) or not name.isidentifier():
            raise ValueError(f"task measure fn {fn!r} must name a function of a normlab recipe, "
                             f"'{MEASURE_PACKAGE}<module>:<function>'")
    probes = task.get("probes", {})
    if not isinstance(probes, dict):
        raise ValueError(f"task probes must be a dict, got {probes!r}")
    for name, opts in probes.items():
        if name not in PROBES:
            raise ValueError(f"unknown probe {name!r}; expected some of {', '.join(PROBES)}")
        if not isinstance(opts, dict) or set(opts) - _PROBE_KEYS[name]:
            raise ValueError(f"probe {name!r} takes a dict with keys among {sorted(_PROBE_KEYS[name])}, got {opts!r}")
    if "percentiles" in probes:
        if model != "fc":
            raise ValueError("the 'percentiles' probe needs an fc model (its activation inputs)")
        p = probes["percentiles"]
        _positive_int(p, "layer")
        _positive_int(p, "samples", required=False)
        q = p.get("q", [15, 50, 85])
        if not isinstance(q, list) or not q or not all(isinstance(x, (int, float)) and 0 <= x <= 100 for x in q):
            raise ValueError(f"percentiles q must be a non-empty list of numbers in [0, 100], got {q!r}")
    if "ics" in probes:
        layers = probes["ics"].get("layers")
        if not isinstance(layers, list) or not layers or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in layers):
            raise ValueError(f"probe 'ics' needs 'layers', a non-empty list of 1-based layer numbers, got {layers!r}")
    if "landscape" in probes:
        m = probes["landscape"].get("multipliers", [0.5, 1, 2, 3, 4])
        if not isinstance(m, list) or not m or not all(isinstance(x, (int, float)) and x > 0 for x in m):
            raise ValueError(f"probe 'landscape' multipliers must be positive numbers, got {m!r}")
