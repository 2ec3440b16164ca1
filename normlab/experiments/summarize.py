"""Helpers the recipes share: summary numbers over seeds, the runs' status, Config
checks, and wording a comparison from measured numbers (so no sentence can
contradict them). Runs are selected with :class:`~normlab.lab.runs.Runs`."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ..lab.runs import DATASETS, MAX_SEED, RunResult, Runs, canonical_dataset

__all__ = ["Spread", "spread", "best_val", "best_train", "final_loss", "status_text",
           "problems_sentence", "compare", "times", "check_common", "class_names", "config_dict", "fmt", "positive",
           "positive_tuple"]


@dataclass(frozen=True)
class Spread:
    """Mean, min and max over the seeds that have a value; ``n`` of ``total`` had one."""
    mean: float | None
    lo: float | None
    hi: float | None
    n: int
    total: int

    def text(self, digits: int = 3) -> str:
        """'0.801 (0.790-0.812 over 3 seeds)', '0.801' for one seed, 'n/a' for none."""
        if self.mean is None:
            return "n/a"
        if self.n == 1:
            return fmt(self.mean, digits)
        return f"{fmt(self.mean, digits)} ({fmt(self.lo, digits)}-{fmt(self.hi, digits)} over {self.n} seeds)"

    def as_dict(self) -> dict:
        return {"mean": self.mean, "min": self.lo, "max": self.hi, "n": self.n}


def fmt(v, digits: int = 3) -> str:
    """A number for a sentence: fixed digits in the usual range, scientific when tiny or huge."""
    if v is None or not math.isfinite(v):
        return "n/a" if v is None else str(v)
    if v != 0 and (abs(v) < 10 ** -digits or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def spread(values) -> Spread:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return Spread(None, None, None, 0, len(list(values)))
    return Spread(float(np.mean(vals)), min(vals), max(vals), len(vals), len(values))


def _usable(r: RunResult) -> bool:
    return r.status in ("finished", "diverged")


def best_val(r: RunResult):
    """Highest validation accuracy over the completed epochs (None for a failed run)."""
    return max(r.val_acc_history) if _usable(r) and r.val_acc_history else None


def best_train(r: RunResult):
    return max(r.train_acc_history) if _usable(r) and r.train_acc_history else None


def final_loss(r: RunResult):
    """Mean training loss of the last epoch; None unless the run finished (a diverged run has no final loss)."""
    return r.final_loss if r.status == "finished" else None


def status_text(runs: Runs, expected: int | None = None) -> str:
    """'3 finished', '2 finished; diverged: seed=1 (epoch 0, iteration 12: loss is inf)', ... for a table cell
    (``runs``: one configuration's runs, one per seed, listed in their order)."""
    parts = []
    done = sum(r.status == "finished" for _, r in runs)
    if done:
        parts.append(f"{done} finished")
    for status in ("diverged", "failed"):
        bad = [(s, r) for s, r in runs if r.status == status]
        if bad:
            why = lambda r: (r.error or "").strip().splitlines()[0][:80] if r.error else ""
            parts.append(f"{status}: " + ", ".join(f"seed={s.seed} ({why(r)})" if why(r) else f"seed={s.seed}"
                                                   for s, r in bad))
    if expected is not None and expected > len(runs):
        parts.append(f"{expected - len(runs)} missing")
    return "; ".join(parts) or "no runs"


def problems_sentence(runs: Runs, expected: int) -> str:
    """'' when every expected run finished, else a sentence naming the diverged, failed and missing runs."""
    parts = []
    for status in ("diverged", "failed"):
        names = sorted(s.name for s, r in runs if r.status == status)
        if names:
            parts.append(f"{len(names)} {status} ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})")
    missing = expected - len(runs)
    if missing > 0:
        parts.append(f"{missing} without a result")
    return (" Of the " + str(expected) + " runs, " + "; ".join(parts) + ".") if parts else ""


def compare(a: Spread, b: Spread, name_a: str, name_b: str, what: str, higher_is_better: bool = True,
            digits: int = 3) -> str:
    """A sentence comparing two measured spreads, worded from their values.

    Says which is better, by how much, and whether the seed ranges overlap
    (then the difference is within the seed-to-seed spread)."""
    if a.mean is None or b.mean is None:
        missing = name_a if a.mean is None else name_b
        return f"The {what} of {missing} is not available (no run produced it)."
    diff = a.mean - b.mean
    if diff == 0:
        return f"The {what} is the same with {name_a} and {name_b}: {a.text(digits)}."
    a_better = (diff > 0) == higher_is_better
    better, worse = (name_a, name_b) if a_better else (name_b, name_a)
    sa, sb = (a, b) if a_better else (b, a)
    word = "higher" if (sa.mean > sb.mean) else "lower"
    s = (f"The {what} is {word} with {better}, {sa.text(digits)}, than with {worse}, {sb.text(digits)}"
         f" (difference {fmt(abs(diff), digits)})")
    if a.n > 1 and b.n > 1:
        overlap = a.lo <= b.hi and b.lo <= a.hi
        s += ("; the seed ranges overlap, so the difference is within the seed-to-seed spread" if overlap
              else "; the seed ranges do not overlap")
    return s + "."


def times(a: float, b: float) -> str:
    """'3.2 times' for a ratio of two positive numbers (larger over smaller)."""
    hi, lo = max(a, b), min(a, b)
    return "infinitely many times" if lo == 0 else f"{hi / lo:.1f} times"


def check_common(cfg) -> None:
    """Validation shared by every Config: the dataset (a legacy spelling, "cifar10", is
    replaced by the registry's, "cifar-10"), seeds (0 .. 2**63-1: what the generator
    takes and the store's integer column holds) and the update rule. Training recipes
    check their engine with ``sides.check``."""
    from ..optim import UPDATE_RULES
    try:
        object.__setattr__(cfg, "dataset", canonical_dataset(cfg.dataset))   # a frozen Config, in __post_init__
    except ValueError:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {cfg.dataset!r}") from None
    rule = getattr(cfg, "update_rule", "sgd")
    if rule not in UPDATE_RULES:
        raise ValueError(f"update_rule must be one of {', '.join(UPDATE_RULES)}, got {rule!r}")
    seeds = cfg.seeds
    if (not isinstance(seeds, tuple) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s <= MAX_SEED
                   for s in seeds)):
        raise ValueError(f"seeds must be a non-empty tuple of integers in 0..{MAX_SEED} (2**63-1), got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds!r}")


def positive(cfg, *names, integer: bool = False) -> None:
    """ValueError unless each named field is a positive (integer) number."""
    for n in names:
        v = getattr(cfg, n)
        ok = (not isinstance(v, bool) and isinstance(v, (int, np.integer) if integer else (int, float, np.number))
              and math.isfinite(v) and v > 0)
        if not ok:
            raise ValueError(f"{n} must be a positive {'integer' if integer else 'number'}, got {v!r}")


def positive_tuple(cfg, name, integer: bool = False) -> None:
    v = getattr(cfg, name)
    if not isinstance(v, tuple) or not v:
        raise ValueError(f"{name} must be a non-empty tuple, got {v!r}")
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer) if integer else (int, float, np.number)) \
                or not math.isfinite(x) or x <= 0:
            raise ValueError(f"{name} must hold positive {'integers' if integer else 'numbers'}, got {v!r}")


def class_names(dataset: str) -> tuple[str, ...]:
    from ..data.registry import get
    return tuple(get(dataset).classes)


def config_dict(cfg) -> dict:
    """The resolved config as JSON-able data (tuples as lists)."""
    def conv(v):
        return [conv(x) for x in v] if isinstance(v, (tuple, list)) else v
    return {f.name: conv(getattr(cfg, f.name)) for f in fields(cfg)}
