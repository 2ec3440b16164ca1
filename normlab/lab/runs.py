"""What every experiment shares: a training run's spec, its result, and executing it.

A sweep is a list of independent ``RunSpec``s. Each is pure data (JSON-able,
hashed into ``spec_hash``), so a run can be executed in any process, stored,
skipped on resume, and reproduced bit for bit: the same spec gives the same
``RunResult`` histories whatever process or machine runs it.

Experiment modules (one per recipe, see ``registry.py``) provide:

    NAME: str                                  # e.g. "weight-scale"
    TITLE: str; QUESTION: str                  # the course's question beside the figure
    Config                                     # frozen dataclass, defaults = the course's settings
    def quick(cfg) -> Config                   # reduced sizes for CI (--quick)
    def runs(cfg) -> list[RunSpec]             # the training runs it needs ([] when none)
    def analyze(cfg, results, out_dir) -> Section   # figures, table, measured answer

``results`` maps ``spec.name`` to ``RunResult`` for every run of the recipe.
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["RunSpec", "RunResult", "Section", "execute", "load_data", "build_model", "code_version",
           "STATUSES"]

STATUSES = ("finished", "diverged", "failed")
# Seeds are stored as SQLite INTEGERs (signed 64-bit) and seed NumPy generators.
MAX_SEED = 2**63 - 1
DATASETS = ("fashion-mnist", "mnist", "cifar10")
EVALUATIONS = ("test_acc", "test_acc_train_mode", "per_class_test_acc")
ENGINES = ("numpy", "torch")
ENGINE_CHOICES = ENGINES + ("both",)        # a recipe's engine: one, or both side by side (experiments.sides)


@dataclass(frozen=True)
class RunSpec:
    """One training run, as data.

    - experiment, name: the recipe and the run's unique name within it
      (e.g. "weight-scale", "batchnorm/scale=1.0e-04/seed=0").
    - model: "fc" (FullyConnectedNet) or "cnn" (ThreeLayerConvNet); model_kwargs
      are passed on (input_dim / num_classes are filled in from the data), with
      ``rng_seed`` set to this spec's seed unless given (weights and dropout
      masks from that generator; the course's ``seed`` keyword would fix one mask).
    - solver_kwargs: Solver options (update_rule, optim_config, num_epochs,
      batch_size, lr_decay, num_train_samples, num_val_samples); ``seed``
      defaults to this spec's seed, verbose is always off.
    - dataset, num_train, num_val, num_test: the data (None: the loader's default size).
    - evaluate: extra measurements after training, from EVALUATIONS.
    - engine: "numpy" (normlab's layers) or "torch" (the same net in ``torch.nn``,
      see ``normlab.engines.pytorch``; weights initialised by NumPy from the seed and
      copied, trained by the same Solver). Left out of ``to_dict`` (and so of the
      hash) when "numpy", so NumPy runs keep the identity they had before engines.
    """
    experiment: str
    name: str
    model: str
    model_kwargs: dict = field(default_factory=dict)
    solver_kwargs: dict = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    num_train: int | None = None
    num_val: int | None = None
    num_test: int | None = None
    seed: int = 0
    evaluate: tuple[str, ...] = ()
    engine: str = "numpy"

    def __post_init__(self):
        if self.model not in ("fc", "cnn"):
            raise ValueError(f"unknown model {self.model!r}; expected 'fc' or 'cnn'")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; expected one of {', '.join(DATASETS)}")
        bad = [e for e in self.evaluate if e not in EVALUATIONS]
        if bad:
            raise ValueError(f"unknown evaluation(s) {bad}; expected some of {', '.join(EVALUATIONS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {', '.join(ENGINES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in 0..2**63-1, got {self.seed!r}")
        object.__setattr__(self, "evaluate", tuple(self.evaluate))
        json.dumps(self.to_dict())   # fails early, here, on anything not JSON-able

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["engine"] == "numpy":
            del d["engine"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """Rebuild a spec from :meth:`to_dict` output; ValueError naming what is wrong."""
        d = dict(_fields_of(cls, d, required=("experiment", "name", "model")))
        for key in ("experiment", "name"):
            if not isinstance(d[key], str):
                raise ValueError(f"{key} must be a string, got {_brief(d[key])}")
        for key in ("model_kwargs", "solver_kwargs"):
            if not isinstance(d.get(key, {}), dict):
                raise ValueError(f"{key} must be an object, got {_brief(d[key])}")
        if not isinstance(d.get("evaluate", []), (list, tuple)):
            raise ValueError(f"evaluate must be a list, got {_brief(d['evaluate'])}")
        d["evaluate"] = tuple(d.get("evaluate", ()))
        try:
            return cls(**d)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    @property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON of the spec: the run's identity in the store."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()


def _fields_of(cls, d, required) -> dict:
    """``d`` checked to be a dict holding only ``cls``'s fields and all of ``required``."""
    if not isinstance(d, dict):
        raise ValueError(f"a {cls.__name__} is a JSON object, got {type(d).__name__}")
    known = {f for f in cls.__dataclass_fields__}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} in a {cls.__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"a {cls.__name__} needs {', '.join(map(repr, missing))}")
    return d


def _number_or_none(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _brief(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite_or_none(values):
    return [float(v) if math.isfinite(v) else None for v in values]


@dataclass
class RunResult:
    """What a run produced. Histories as the Solver keeps them; a non-finite
    loss (the diverging step) is stored as None."""
    spec_hash: str
    experiment: str
    name: str
    status: str                                   # one of STATUSES
    loss_history: list = field(default_factory=list)
    train_acc_history: list = field(default_factory=list)
    val_acc_history: list = field(default_factory=list)
    best_val_acc: float | None = None
    iterations_per_epoch: int | None = None
    extras: dict = field(default_factory=dict)    # test_acc, test_acc_train_mode, per_class_test_acc
    seconds: float = 0.0
    error: str | None = None                      # the reason, for 'failed' and 'diverged'
    code_version: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunResult":
        """Rebuild a result from :meth:`to_dict` output (e.g. a store row), checking
        every field's type; ValueError naming the first that is wrong."""
        d = _fields_of(cls, d, required=("spec_hash", "experiment", "name", "status"))
        if d["status"] not in STATUSES:
            raise ValueError(f"status {d['status']!r} is not one of {', '.join(STATUSES)}")
        for key in ("spec_hash", "experiment", "name", "code_version"):
            if key in d and not isinstance(d[key], str):
                raise ValueError(f"{key} must be a string, got {type(d[key]).__name__}")
        for key in ("loss_history", "train_acc_history", "val_acc_history"):
            v = d.get(key, [])
            if not isinstance(v, list) or not all(_number_or_none(x) for x in v):
                raise ValueError(f"{key} must be a list of numbers (or null), got {_brief(v)}")
        for key in ("best_val_acc", "seconds"):
            if key in d and not _number_or_none(d[key]):
                raise ValueError(f"{key} must be a number, got {_brief(d[key])}")
        if d.get("iterations_per_epoch") is not None and (
                not isinstance(d["iterations_per_epoch"], int) or isinstance(d["iterations_per_epoch"], bool)):
            raise ValueError(f"iterations_per_epoch must be an integer, got {_brief(d['iterations_per_epoch'])}")
        if not isinstance(d.get("extras", {}), dict):
            raise ValueError(f"extras must be an object, got {_brief(d['extras'])}")
        if d.get("error") is not None and not isinstance(d["error"], str):
            raise ValueError(f"error must be a string, got {_brief(d['error'])}")
        d = dict(d)
        if d.get("seconds") is None:
            d["seconds"] = 0.0
        return cls(**d)

    @property
    def final_loss(self) -> float | None:
        """Mean loss over the last epoch's iterations (None entries skipped)."""
        per = self.iterations_per_epoch or len(self.loss_history) or 1
        tail = [v for v in self.loss_history[-per:] if v is not None]
        return float(np.mean(tail)) if tail else None

    def epoch_losses(self) -> list:
        """Mean training loss of each epoch (an epoch with a non-finite loss gives None)."""
        per = self.iterations_per_epoch or 1
        out = []
        for i in range(0, len(self.loss_history), per):
            chunk = self.loss_history[i:i + per]
            out.append(None if any(v is None for v in chunk) else float(np.mean(chunk)))
        return out


@dataclass
class Section:
    """One experiment's part of the report."""
    name: str
    title: str
    question: str
    answer: str                                   # measured, in words, from the numbers
    config: dict
    metrics: dict                                 # JSON-able key numbers
    table: list = field(default_factory=list)     # rows (dicts) of key numbers
    figures: list = field(default_factory=list)   # paths (PNG; an SVG beside each)


@lru_cache(maxsize=None)
def code_version() -> str:
    """normlab's version plus the git commit of the checkout, when there is one."""
    from .. import __version__
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        if rev.returncode == 0 and rev.stdout.strip():
            return f"{__version__}+{rev.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def recipe_results(specs, results: dict):
    """What a recipe's ``analyze`` receives: its runs' results, from ``results``
    ({spec_hash: RunResult}); runs without a result are absent."""
    return {s.name: results[s.spec_hash] for s in specs if s.spec_hash in results}


@lru_cache(maxsize=8)
def load_data(dataset: str, num_train: int | None, num_val: int | None, num_test: int | None,
              flatten: bool) -> dict:
    """The dataset as the course's dict, cached per process (the loaders cache the
    decoded files, so other subset sizes cost only the split)."""
    from ..data import get_CIFAR10_data, load_fashion_mnist, load_mnist
    sizes = {k: v for k, v in (("num_training", num_train), ("num_validation", num_val),
                                ("num_test", num_test)) if v is not None}
    if dataset == "cifar10":
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
    from ..models import FullyConnectedNet, ThreeLayerConvNet
    kwargs = {"rng_seed": spec.seed, **spec.model_kwargs}
    classes = int(max(data["y_train"].max(), data["y_val"].max())) + 1
    if spec.model == "fc":
        kwargs.setdefault("input_dim", int(np.prod(data["X_train"].shape[1:])))
        kwargs.setdefault("num_classes", classes)
        return FullyConnectedNet(**kwargs)
    kwargs.setdefault("input_dim", tuple(data["X_train"].shape[1:]))
    kwargs.setdefault("num_classes", classes)
    return ThreeLayerConvNet(**kwargs)


def _predict(model, X, batch_size=500, mode="test"):
    """Predicted classes; ``mode='train'`` normalizes each batch with its own
    statistics (the PyTorch notebook's evaluation in ``model.train()``). The
    model's running statistics are restored afterwards, so evaluating never
    changes the model."""
    if mode == "train" and not hasattr(model, "scores"):  # ThreeLayerConvNet on the NumPy engine
        raise ValueError(f"{type(model).__name__} cannot evaluate in train mode (no scores(X, mode))")
    saved = model.state_arrays() if hasattr(model, "state_arrays") else None
    try:
        preds = [(model.scores(X[i:i + batch_size], mode) if mode == "train" else model.loss(X[i:i + batch_size]))
                 .argmax(axis=1) for i in range(0, len(X), batch_size)]
    finally:
        if saved is not None:
            model.load_state_arrays(saved)
    return np.concatenate(preds)


def execute(spec: RunSpec) -> RunResult:
    """Train the run described by ``spec`` and measure it. Never raises for a
    failing run: the result's status is 'failed' with the error message."""
    t0 = time.perf_counter()
    base = dict(spec_hash=spec.spec_hash, experiment=spec.experiment, name=spec.name, code_version=code_version())
    try:
        from ..solver import Solver
        flatten = spec.model == "fc"
        data = load_data(spec.dataset, spec.num_train, spec.num_val, spec.num_test, flatten)
        model = build_model(spec, data)
        if spec.engine == "torch":
            from ..engines.pytorch import TorchModel
            model = TorchModel(model)
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
                         error=getattr(solver, "divergence_reason", None) if solver.diverged else None)
    except Exception as exc:  # noqa: BLE001 - a failing run is data, not a crash of the sweep
        return RunResult(**base, status="failed", seconds=time.perf_counter() - t0,
                         error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
