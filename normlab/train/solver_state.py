"""A Solver's full training state as a checkpoint: ``solver_state`` and ``restore``.

The state goes into the npz + json pair of :mod:`normlab.train.checkpoint`.

npz groups (flattened ``group/name``):

* ``params/``, ``state/``: the model's parameters and state arrays (batch-norm
  running statistics, see the model protocol in :mod:`normlab.train.solver`);
* ``best_params/``, ``best_state/``: the best snapshot;
* ``optim/<param>/<key>``: the per-parameter optimizer arrays (Adam's ``m``,
  ``v``; NumPy scalars such as ``t`` as 0-d arrays).

JSON meta: ``kind`` ("normlab.solver.Solver"), the hyperparameters, the
per-parameter optimizer scalars and array keys, counters (``epoch``,
``iteration``), histories, best epoch and accuracy, status and divergence,
and the bit-generator states of the minibatch, evaluation and model
generators (plus the global ``np.random`` one for a Solver whose minibatches
come from it, ``_uses_global_rng``).

Restoring the state and training on reproduces the uninterrupted run bit for bit.
"""
from __future__ import annotations

import numpy as np

from . import checkpoint as ckpt
from ._validate import OPTIONS

__all__ = ["solver_state", "restore", "read", "resume_options",
           "state_arrays", "load_state_arrays"]

#: The ``kind`` written into every Solver checkpoint (the Solver's historical
#: import path; files carry it, so it never changes).
_CHECKPOINT_KIND = "normlab.solver.Solver"


# ------------------------------------------------------------ model protocol

def state_arrays(model) -> dict[str, np.ndarray]:
    """Copies of ``model.state_arrays()``; ``{}`` for a model without state."""
    get = getattr(model, "state_arrays", None)
    return {} if get is None else {k: np.array(v, copy=True) for k, v in get().items()}


def load_state_arrays(model, arrays: dict[str, np.ndarray]) -> None:
    """``model.load_state_arrays`` with copies of ``arrays``, if the model has state."""
    # Called even with {}: a snapshot taken before the first forward pass has
    # no running statistics yet, and restoring it must drop the later ones.
    load = getattr(model, "load_state_arrays", None)
    if load is not None:
        load({k: np.array(v, copy=True) for k, v in arrays.items()})


# ------------------------------------------------------------ RNG states in JSON

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


# ------------------------------------------------------------ save

def _hyperparameters(solver) -> dict:
    rule = solver.update_rule
    return {"update_rule": solver.update_rule_name,
            "update_rule_callable": None if solver.update_rule_name else
            f"{getattr(rule, '__module__', '?')}.{getattr(rule, '__qualname__', repr(rule))}",
            # Only the JSON-able part; the per-parameter configs are restored in full.
            "optim_config": {k: (v.item() if isinstance(v, np.generic) else v)
                             for k, v in solver.optim_config.items()
                             if isinstance(v, (np.generic, bool, int, float, str)) or v is None},
            "lr_decay": solver.lr_decay,
            "batch_size": solver.batch_size, "num_epochs": solver.num_epochs,
            "num_train_samples": solver.num_train_samples, "num_val_samples": solver.num_val_samples,
            "checkpoint_name": solver.checkpoint_name, "print_every": solver.print_every,
            "verbose": solver.verbose, "seed": solver.seed, "restore_best": solver.restore_best}


def _optim_entries(optim_configs: dict, arrays: dict) -> dict:
    """The JSON entries of the per-parameter optimizer configs; their arrays are added to ``arrays``."""
    configs = {}
    for p, config in optim_configs.items():
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
    return configs


def solver_state(solver) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of ``solver``'s full training state, for :func:`checkpoint.save_checkpoint`.

    Raises ``TypeError`` for an optimizer option that is neither a number, a
    string nor an array, or a ``model.rng`` that is not a ``np.random.Generator``.
    """
    arrays = ckpt.flatten({"params": solver.model.params, "state": state_arrays(solver.model),
                           "best_params": solver.best_params, "best_state": solver.best_state})
    configs = _optim_entries(solver.optim_configs, arrays)
    model_rng = getattr(solver.model, "rng", None)
    if model_rng is not None and not hasattr(model_rng, "bit_generator"):
        raise TypeError(f"model.rng must be a np.random.Generator to be checkpointed, "
                        f"got {type(model_rng).__name__}")
    meta = {"kind": _CHECKPOINT_KIND, "hyperparameters": _hyperparameters(solver),
            "epoch": solver.epoch, "iteration": solver.iteration,
            "loss_history": solver.loss_history, "train_acc_history": solver.train_acc_history,
            "val_acc_history": solver.val_acc_history, "best_val_acc": solver.best_val_acc,
            "best_epoch": solver.best_epoch, "status": solver.status, "diverged": solver.diverged,
            "divergence_reason": solver.divergence_reason, "optim_configs": configs,
            "rng": {"minibatch": _rng_state_to_json(solver._batch_rng.bit_generator.state),
                    "eval": _rng_state_to_json(solver._eval_rng.bit_generator.state),
                    "model": None if model_rng is None else
                    _rng_state_to_json(model_rng.bit_generator.state),
                    "global": None if not solver._uses_global_rng else
                    _rng_state_to_json(np.random.get_state(legacy=False))}}
    return arrays, meta


# ------------------------------------------------------------ load

def read(path) -> tuple[dict[str, np.ndarray], dict, object]:
    """``(arrays, meta, json_path)`` of the Solver checkpoint at ``path``.

    Raises what :func:`checkpoint.load_checkpoint` raises, and
    ``CheckpointError`` for a checkpoint that is not a Solver's.
    """
    arrays, meta = ckpt.load_checkpoint(path)
    json_path = ckpt.checkpoint_paths(path)[1]
    if meta.get("kind") != _CHECKPOINT_KIND:
        raise ckpt.CheckpointError(f"{str(json_path)!r} is not a Solver checkpoint (kind {meta.get('kind')!r})")
    return arrays, meta, json_path


def resume_options(meta: dict, json_path, overrides: dict) -> dict:
    """The Solver options of the checkpointed run, updated with ``overrides``.

    A run trained with a callable update rule (not one of ``optim``'s) needs
    ``update_rule=`` in ``overrides``: a function is not stored.
    """
    hp = meta["hyperparameters"]
    kwargs = {k: v for k, v in hp.items() if k in OPTIONS}
    if hp.get("update_rule") is None and "update_rule" not in overrides:
        raise ValueError(f"checkpoint {str(json_path)!r} was trained with the callable update rule "
                         f"{hp.get('update_rule_callable')}; pass update_rule= to resume")
    kwargs.update(overrides)
    return kwargs


def _optim_configs(meta: dict, arrays: dict) -> dict:
    configs = {}
    for p, entry in meta["optim_configs"].items():
        config = dict(entry["scalars"])
        for k, a in entry["arrays"].items():
            config[k] = arrays[a["key"]][()] if a["scalar"] else arrays[a["key"]]
        configs[p] = config
    return configs


def restore(solver, arrays: dict[str, np.ndarray], meta: dict, json_path) -> None:
    """Put the state of :func:`solver_state` back into ``solver`` (hyperparameters excepted).

    Everything is checked against ``solver.model`` before anything is
    changed: a mismatch (parameter names, shapes or dtypes, state arrays for a
    model without ``load_state_arrays``, presence of ``model.rng``, optimizer
    configs, no global generator state for a ``_uses_global_rng`` Solver)
    raises ``CheckpointError`` naming ``json_path`` and leaves the solver as it was.
    """
    def fail(msg):
        raise ckpt.CheckpointError(f"checkpoint {str(json_path)!r}: {msg}")

    model = solver.model
    groups = ckpt.unflatten({k: v for k, v in arrays.items() if not k.startswith("optim/")})
    params = groups.get("params", {})
    if set(params) != set(model.params):
        fail(f"parameters {sorted(params)} do not match the model's {sorted(model.params)}")
    for k, v in params.items():
        cur = model.params[k]
        if v.shape != cur.shape or v.dtype != cur.dtype:
            fail(f"parameter {k!r} is {v.dtype} of shape {v.shape}, the model has {cur.dtype} of shape {cur.shape}")
    state = groups.get("state", {})
    if state and not hasattr(model, "load_state_arrays"):
        fail("holds state arrays but the model has no load_state_arrays()")
    model_rng = getattr(model, "rng", None)
    if (meta["rng"]["model"] is None) != (model_rng is None):
        fail("model.rng presence differs from the checkpointed model's")
    if solver._uses_global_rng and meta["rng"].get("global") is None:
        fail("holds no global np.random state, which this Solver's minibatches come from")
    configs = _optim_configs(meta, arrays)
    if set(configs) != set(model.params):
        fail(f"optimizer configs for {sorted(configs)} do not match the model's parameters")

    for k, v in params.items():
        model.params[k] = v
    load_state_arrays(model, state)
    if model_rng is not None:
        model_rng.bit_generator.state = _rng_state_from_json(meta["rng"]["model"])
    if solver._uses_global_rng:
        np.random.set_state(_rng_state_from_json(meta["rng"]["global"]))
    solver._batch_rng.bit_generator.state = _rng_state_from_json(meta["rng"]["minibatch"])
    solver._eval_rng.bit_generator.state = _rng_state_from_json(meta["rng"]["eval"])
    solver.optim_configs = configs
    solver.epoch, solver.iteration = meta["epoch"], meta["iteration"]
    solver.loss_history = list(meta["loss_history"])
    solver.train_acc_history = list(meta["train_acc_history"])
    solver.val_acc_history = list(meta["val_acc_history"])
    solver.best_val_acc, solver.best_epoch = meta["best_val_acc"], meta["best_epoch"]
    solver.best_params = groups.get("best_params", {})
    solver.best_state = groups.get("best_state", {})
    solver.diverged, solver.status = meta["diverged"], meta["status"]
    solver.divergence_reason = meta["divergence_reason"]
