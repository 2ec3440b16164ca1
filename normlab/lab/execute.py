"""Executing a :class:`~normlab.lab.runs.RunSpec`: load its data, build its model, train, measure.

``execute(spec)`` is what a sweep worker calls (a spec with a ``task`` is
trained step-wise by :mod:`normlab.lab.stepwise` instead of the Solver); it never raises for a failing
run (the result's status is 'failed', with the error). It uses of a model
only the protocol of :class:`normlab.nets.protocol.Model` (``loss``,
``scores(X, mode)``, ``state_arrays`` / ``load_state_arrays``), which both
NumPy nets and ``engines.pytorch.TorchModel`` implement in full.
"""
from __future__ import annotations

import math
import time
import traceback
from functools import lru_cache

import numpy as np

from .runs import RunResult, RunSpec, code_version

__all__ = ["execute", "load_data", "build_model"]


@lru_cache(maxsize=8)
def load_data(dataset: str, num_train: int | None, num_val: int | None, num_test: int | None,
              flatten: bool) -> dict:
    """The dataset (a RunSpec's canonical name) as the course's dict, cached per process
    (the loaders cache the decoded files, so other subset sizes cost only the split).
    The arrays are read-only: every run of the process shares them."""
    from ..data import get_CIFAR10_data, load_fashion_mnist, load_mnist
    sizes = {k: v for k, v in (("num_training", num_train), ("num_validation", num_val),
                                ("num_test", num_test)) if v is not None}
    if dataset == "cifar-10":
        data = get_CIFAR10_data(**sizes)
        if flatten:
            data = {k: (v.reshape(len(v), -1) if k.startswith("X") else v) for k, v in data.items()}
    else:
        loader = load_fashion_mnist if dataset == "fashion-mnist" else load_mnist
        data = loader(flatten=flatten, **sizes)
    for v in data.values():
        v.setflags(write=False)
    return data


def build_model(spec: RunSpec, data: dict):
    """The spec's NumPy net, sized from the data (input_dim, num_classes) unless its model_kwargs say."""
    from ..models import FullyConnectedNet, ThreeLayerConvNet
    kwargs = {"rng_seed": spec.seed, **spec.model_kwargs}
    classes = int(max(data["y_train"].max(), data["y_val"].max())) + 1
    if spec.model == "fc":
        kwargs.setdefault("input_dim", int(np.prod(data["X_train"].shape[1:])))
        kwargs.setdefault("num_classes", classes)
        return FullyConnectedNet(**kwargs)
    if spec.model == "resmlp":
        from ..nets.residual import ResidualMLP
        kwargs.setdefault("input_dim", int(np.prod(data["X_train"].shape[1:])))
        kwargs.setdefault("num_classes", classes)
        return ResidualMLP(**kwargs)
    kwargs.setdefault("input_dim", tuple(data["X_train"].shape[1:]))
    kwargs.setdefault("num_classes", classes)
    return ThreeLayerConvNet(**kwargs)


def _predict(model, X, batch_size=500, mode="test"):
    """Predicted classes; ``mode='train'`` normalizes each batch with its own
    statistics (the PyTorch notebook's evaluation in ``model.train()``). The
    model's running statistics are restored afterwards, so evaluating never
    changes the model."""
    saved = model.state_arrays()
    try:
        preds = [(model.scores(X[i:i + batch_size], mode) if mode == "train" else model.loss(X[i:i + batch_size]))
                 .argmax(axis=1) for i in range(0, len(X), batch_size)]
    finally:
        model.load_state_arrays(saved)
    return np.concatenate(preds)


def _finite_or_none(values):
    return [float(v) if math.isfinite(v) else None for v in values]


def execute(spec: RunSpec) -> RunResult:
    """Train the run described by ``spec`` and measure it. Never raises for a
    failing run: the result's status is 'failed' with the error message."""
    t0 = time.perf_counter()
    base = dict(spec_hash=spec.spec_hash, experiment=spec.experiment, name=spec.name, code_version=code_version())
    try:
        from ..solver import Solver
        flatten = spec.model in ("fc", "resmlp")
        data = load_data(spec.dataset, spec.num_train, spec.num_val, spec.num_test, flatten)
        model = build_model(spec, data)
        if spec.engine == "torch":
            from ..engines.pytorch import TorchModel
            model = TorchModel(model)
        if spec.task is not None:
            from .stepwise import train_steps
            fields = train_steps(model, data, spec.task, spec.seed)
            return RunResult(**base, **fields, seconds=time.perf_counter() - t0)
        solver_kwargs = {"seed": spec.seed, **spec.solver_kwargs, "verbose": False}
        solver = Solver(model, {k: data[k] for k in ("X_train", "y_train", "X_val", "y_val")}, **solver_kwargs)
        solver.train()
        extras = {}
        if spec.evaluate:
            X, y = data["X_test"], data["y_test"]
            if "test_acc" in spec.evaluate or "per_class_test_acc" in spec.evaluate:
                pred = _predict(model, X)
                extras["test_acc"] = float(np.mean(pred == y))
                if "per_class_test_acc" in spec.evaluate:
                    extras["per_class_test_acc"] = [float(np.mean(pred[y == c] == c)) if np.any(y == c) else None
                                                    for c in range(int(y.max()) + 1)]
            if "test_acc_train_mode" in spec.evaluate:
                pred = _predict(model, X, batch_size=solver_kwargs.get("batch_size", 100), mode="train")
                extras["test_acc_train_mode"] = float(np.mean(pred == y))
        return RunResult(**base, status="diverged" if solver.diverged else "finished",
                         loss_history=_finite_or_none(solver.loss_history),
                         train_acc_history=[float(a) for a in solver.train_acc_history],
                         val_acc_history=[float(a) for a in solver.val_acc_history],
                         best_val_acc=float(solver.best_val_acc),
                         iterations_per_epoch=max(len(data["X_train"]) // solver.batch_size, 1),
                         extras=extras, seconds=time.perf_counter() - t0,
                         error=solver.divergence_reason if solver.diverged else None)
    except Exception as exc:  # noqa: BLE001 - a failing run is data, not a crash of the sweep
        return RunResult(**base, status="failed", seconds=time.perf_counter() - t0,
                         error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
