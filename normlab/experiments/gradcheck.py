"""gradcheck: every layer's and net's analytic gradients against finite
differences, beside the relative errors the course notebooks say to expect
(the table of :mod:`normlab.engines.gradchecks`).

No training runs: computed in analyze, once per seed (different random
inputs); a row's error is its largest over the seeds. Figure: one line per
check, a dot per gradient, the course's bound as a bar.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..lab import figures
from ..lab.runs import RunSpec, Runs, Section
from .summarize import check_common, config_dict

NAME = "gradcheck"
TITLE = "Gradient checks of every layer and network"
QUESTION = ("Do the analytic gradients of every layer (batch norm, layer norm, spatial batch norm, group "
            "norm, dropout, conv, pool) and of the nets (reg 0 and 3.14) agree with finite differences "
            "within the relative errors the course states?")


@dataclass(frozen=True)
class Config:
    nets: bool = True                     # also check the nets (~17 s of the ~21 s)
    dataset: str = "fashion-mnist"        # unused: the checks draw random inputs
    # One seed (~21 s, single-threaded, run in the report step); more seeds
    # take each row's worst error over several random inputs.
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self):
        check_common(self)
        if not isinstance(self.nets, bool):
            raise ValueError(f"nets must be True or False, got {self.nets!r}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, nets=False, seeds=cfg.seeds[:1])


def runs(cfg: Config) -> list[RunSpec]:
    return []


def analyze(cfg: Config, done: Runs, out_dir: Path, checks=None) -> Section:
    """``checks(seed, nets) -> list[CheckResult]`` defaults to the suite's ``run_checks``."""
    if checks is None:
        from ..engines.gradchecks import run_checks as checks
    worst = {}
    for seed in cfg.seeds:
        for r in checks(seed, cfg.nets):
            key = (r.check, r.quantity, r.note)
            if key not in worst or not r.error <= worst[key].error:   # NaN errors win
                worst[key] = r
    rows = list(worst.values())
    lines = {}
    for r in rows:
        lines.setdefault(f"{r.check} {r.note}".strip(), []).append((r.quantity, r.error, r.bound, r.ok))
    paths = figures.dots_against_bounds(list(lines.items()), "Gradient checks: relative error vs the course's bound",
                                        Path(out_dir) / "gradcheck")
    bad = [r for r in rows if not r.ok]
    seeds = f" (worst of {len(cfg.seeds)} seeds)" if len(cfg.seeds) > 1 else ""
    answer = f"{len(rows) - len(bad)} of {len(rows)} gradients are within the course's bounds{seeds}. "
    ok_rows = [r for r in rows if r.ok]
    if ok_rows:
        tight = max(ok_rows, key=lambda r: r.error / r.bound)
        answer += (f"Among those, the closest to its bound is {tight.check} {tight.quantity}"
                   f"{' (' + tight.note + ')' if tight.note else ''}: {tight.error:.1e} against {tight.bound:.0e}. ")
    if bad:
        by_check = {}
        for r in bad:
            by_check.setdefault((r.check, r.note), []).append(r)
        answer += "Outside the bounds: " + "; ".join(
            f"{c}{' (' + n + ')' if n else ''} {', '.join(r.quantity for r in rs)} "
            f"(errors up to {max(r.error for r in rs):.1e} against {min(r.bound for r in rs):.0e})"
            for (c, n), rs in by_check.items()) + "."
        if any(r.error >= 0.5 for r in bad):
            answer += (" A relative error near 1 means the analytic and numerical gradients disagree entirely "
                       "(a wrong gradient or a check that does not hold the layer's randomness fixed), not a "
                       "rounding problem.")
    table = [{"check": r.check, "gradient": r.quantity, "setting": r.note, "h, order": f"{r.h:.0e}, {r.order}",
              "relative error": r.error, "course bound": r.bound, "ok": r.ok} for r in rows]
    metrics = {"checked": len(rows), "within_bounds": len(rows) - len(bad),
               "outside": [f"{r.check} {r.quantity} {r.note}".strip() for r in bad],
               "max_error_over_bound": max((r.error / r.bound for r in rows), default=None)}
    return Section(NAME, TITLE, QUESTION, answer.strip(), config_dict(cfg), metrics, table, [paths[0]])
