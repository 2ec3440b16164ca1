"""A training run as data: its spec, its result, and a recipe's runs as (spec, result) pairs.

A sweep is a list of independent ``RunSpec``s. Each is pure data (JSON-able,
hashed into ``spec_hash``), so a run can be executed in any process
(:mod:`normlab.lab.execute`), stored, skipped on resume, and reproduced bit for
bit: the same spec gives the same ``RunResult`` histories whatever process or
machine runs it.

Experiment modules (one per recipe, see ``experiments/registry.py``) provide:

    NAME: str                                  # e.g. "weight-scale"
    TITLE: str; QUESTION: str                  # the course's question beside the figure
    Config                                     # frozen dataclass, defaults = the course's settings
    def quick(cfg) -> Config                   # reduced sizes for CI (--quick)
    def runs(cfg) -> list[RunSpec]             # the training runs it needs ([] when none)
    def analyze(cfg, done, out_dir) -> Section # figures, table, measured answer

``done`` is a :class:`Runs`: the recipe's runs that have a result, as
``(RunSpec, RunResult)`` pairs. A recipe selects them by the specs' typed
fields (``engine``, ``seed``, the ``tags`` its ``runs()`` set), never by
parsing run names.
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.registry import names as _dataset_names

__all__ = ["RunSpec", "RunResult", "Runs", "Section", "recipe_results", "code_version", "canonical_dataset",
           "STATUSES", "DATASETS", "EVALUATIONS", "ENGINES", "MAX_SEED"]

STATUSES = ("finished", "diverged", "failed")
# Seeds are stored as SQLite INTEGERs (signed 64-bit) and seed NumPy generators.
MAX_SEED = 2**63 - 1
DATASETS = _dataset_names()                 # the data registry's names: fashion-mnist, mnist, cifar-10
# Spellings older specs and config.json files carry (RunSpec accepted only "cifar10" before
# the names were taken from the data registry).
LEGACY_DATASETS = {"cifar10": "cifar-10"}
# How a dataset is spelled in the hashed identity: as it was when its runs were first
# hashed, so stored runs keep their spec_hash (and resume) under the canonical name.
_HASHED_AS = {v: k for k, v in LEGACY_DATASETS.items()}
EVALUATIONS = ("test_acc", "test_acc_train_mode", "per_class_test_acc")
ENGINES = ("numpy", "torch")
#: fc: FullyConnectedNet, cnn: ThreeLayerConvNet, resmlp: nets.residual.ResidualMLP (issue 14).
MODELS = ("fc", "cnn", "resmlp")
_TAG_TYPES = (str, int, float, bool, type(None))


def canonical_dataset(name) -> str:
    """The registry's spelling of a dataset name (legacy "cifar10" -> "cifar-10"); ValueError otherwise."""
    name = LEGACY_DATASETS.get(name, name) if isinstance(name, str) else name
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return name


@dataclass(frozen=True)
class RunSpec:
    """One training run, as data.

    - experiment, name: the recipe and the run's unique, human-readable name within
      it (e.g. "weight-scale", "batchnorm/scale=1.0e-04/seed=0"). Names are labels:
      nothing parses them.
    - model: "fc" (FullyConnectedNet) or "cnn" (ThreeLayerConvNet); model_kwargs
      are passed on (input_dim / num_classes are filled in from the data), with
      ``rng_seed`` set to this spec's seed unless given (weights and dropout
      masks from that generator; the course's ``seed`` keyword would fix one mask).
    - solver_kwargs: Solver options (update_rule, optim_config, num_epochs,
      batch_size, lr_decay, num_train_samples, num_val_samples); ``seed``
      defaults to this spec's seed, verbose is always off.
    - dataset, num_train, num_val, num_test: the data (None: the loader's default
      size). ``dataset`` is one of DATASETS; the legacy "cifar10" is read as "cifar-10".
    - evaluate: extra measurements after training, from EVALUATIONS.
    - engine: "numpy" (normlab's layers) or "torch" (the same net in ``torch.nn``,
      see ``normlab.engines.pytorch``; weights initialised by NumPy from the seed and
      copied, trained by the same Solver).
    - task: None (train with the :class:`~normlab.train.solver.Solver` for
      ``solver_kwargs``) or a dict describing step-wise training with probes
      (``{"kind": "steps", ...}``, see :mod:`normlab.lab.stepwise`): a fixed
      number of optimizer steps, the evaluation set measured every few steps,
      and measurements of the model during training (the papers suite). Such a
      spec takes no solver_kwargs or evaluate: they would be silently unused.
    - tags: what the recipe groups its runs by, as typed values (``{"net":
      "batchnorm", "scale": 1e-4}``): str, int, float, bool or None. They describe
      the run, they do not change it, so they are not part of ``spec_hash``.

    ``spec_hash`` is the run's identity in the store and must never change for an
    existing run: it hashes ``to_dict()`` without the tags, without ``engine`` when
    "numpy" (NumPy runs keep the identity they had before engines), without ``task``
    when None (likewise) and with
    "cifar-10" spelled "cifar10" (as it was hashed before the spelling was unified).
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
    tags: dict = field(default_factory=dict)
    task: dict | None = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {', '.join(map(repr, MODELS))}")
        object.__setattr__(self, "dataset", canonical_dataset(self.dataset))
        bad = [e for e in self.evaluate if e not in EVALUATIONS]
        if bad:
            raise ValueError(f"unknown evaluation(s) {bad}; expected some of {', '.join(EVALUATIONS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {', '.join(ENGINES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in 0..2**63-1, got {self.seed!r}")
        if self.task is not None:
            from .tasks import check_task
            check_task(self.task, self.model)
            if self.evaluate or self.solver_kwargs:
                raise ValueError("a spec with a task is trained step-wise: it takes no solver_kwargs or evaluate "
                                 "(the task measures the test set; use its 'measure' for anything else)")
        if not isinstance(self.tags, dict):
            raise ValueError(f"tags must be a dict, got {_brief(self.tags)}")
        for k, v in self.tags.items():
            finite = not isinstance(v, float) or math.isfinite(v)
            if not isinstance(k, str) or not isinstance(v, _TAG_TYPES) or not finite:
                raise ValueError(f"tag {k!r}={_brief(v)}: tags map names to a str, int, finite float, bool or None")
        object.__setattr__(self, "evaluate", tuple(self.evaluate))
        json.dumps(self.to_dict())   # fails early, here, on anything not JSON-able

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["engine"] == "numpy":
            del d["engine"]
        if d["task"] is None:
            del d["task"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """Rebuild a spec from :meth:`to_dict` output; ValueError naming what is wrong."""
        d = dict(_fields_of(cls, d, required=("experiment", "name", "model")))
        for key in ("experiment", "name"):
            if not isinstance(d[key], str):
                raise ValueError(f"{key} must be a string, got {_brief(d[key])}")
        if d.get("task") is not None and not isinstance(d["task"], dict):
            raise ValueError(f"task must be an object or null, got {_brief(d['task'])}")
        for key in ("model_kwargs", "solver_kwargs", "tags"):
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
        """SHA-256 of the canonical JSON of the run's identity (see the class docstring)."""
        ident = self.to_dict()
        del ident["tags"]
        ident["dataset"] = _HASHED_AS.get(ident["dataset"], ident["dataset"])
        canon = json.dumps(ident, sort_keys=True, separators=(",", ":"))
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
    # A paper's section (the papers suite): its reference, both setups and the
    # findings table, see ``normlab.experiments.papers.verdict.PaperReport``.
    paper: dict | None = None


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


class Runs:
    """A recipe's runs that have a result: ``(RunSpec, RunResult)`` pairs, in the order
    of the recipe's ``runs()``. Immutable; every selection returns a new ``Runs``.

    ``runs.where(net="batchnorm", batch=5)`` keeps the runs with those tags,
    ``runs.on("torch")`` those of one engine, ``runs.by_seed()`` sorts by seed;
    ``runs.results`` and ``runs.specs`` are the two halves, in order."""

    def __init__(self, pairs=()):
        pairs = tuple(pairs)
        for p in pairs:
            if not (isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], RunSpec)
                    and isinstance(p[1], RunResult)):
                raise TypeError(f"a Runs holds (RunSpec, RunResult) pairs, got {_brief(p)}")
        self._pairs = pairs

    def __iter__(self):
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, i):
        return self._pairs[i]

    def __eq__(self, other):
        return isinstance(other, Runs) and self._pairs == other._pairs

    __hash__ = None

    def __repr__(self) -> str:
        names = ", ".join(s.name for s, _ in self._pairs[:4]) + (", ..." if len(self) > 4 else "")
        return f"Runs({len(self)} runs: {names})"

    @property
    def specs(self) -> list:
        return [s for s, _ in self._pairs]

    @property
    def results(self) -> list:
        return [r for _, r in self._pairs]

    def where(self, **tags) -> "Runs":
        """The runs whose ``spec.tags`` hold every given value (a missing tag never matches)."""
        return Runs(p for p in self._pairs if all(k in p[0].tags and p[0].tags[k] == v for k, v in tags.items()))

    def on(self, engine: str) -> "Runs":
        """The runs of one engine ("numpy" or "torch")."""
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
        return Runs(p for p in self._pairs if p[0].engine == engine)

    def by_engine(self, engines=None) -> dict:
        """``{engine: Runs}`` for ``engines`` (default: those present), in ENGINES order when not given."""
        engines = [e for e in ENGINES if any(s.engine == e for s, _ in self._pairs)] if engines is None else engines
        return {e: self.on(e) for e in engines}

    def by_seed(self) -> "Runs":
        """The same runs sorted by seed (stable: equal seeds keep their order)."""
        return Runs(sorted(self._pairs, key=lambda p: p[0].seed))


def recipe_results(specs, results: dict) -> Runs:
    """What a recipe's ``analyze`` receives: its runs that have a result in ``results``
    ({spec_hash: RunResult}), paired with their specs, in the order of ``specs``."""
    return Runs((s, results[s.spec_hash]) for s in specs if s.spec_hash in results)
