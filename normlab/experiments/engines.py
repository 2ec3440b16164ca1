"""crosscheck: do the NumPy engine and the torch engine (``torch.nn`` modules) agree?

No training runs: computed in analyze with ``normlab.engines.crosscheck`` (small
synthetic data, the seed nets, ``steps`` updates on both engines from the same
start on the same batches). float64 must agree to ``tolerance``; float32 drift
is measured. A control with the momentum convention left unmapped must be
caught. Without PyTorch the section says so and is skipped (not a problem:
torch is an optional extra). Figure: the relative loss difference per step.
About 5 s for the full 100 steps (2 cores).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..lab import figures
from ..lab.runs import RunSpec, Runs, Section
from .summarize import check_common, config_dict, fmt, positive

NAME = "crosscheck"
TITLE = "NumPy engine vs PyTorch engine"
QUESTION = ("Does normlab's NumPy implementation behave like torch.nn (BatchNorm1d/2d, LayerNorm, GroupNorm, "
            "Linear, Conv2d, dropout) when both start from the same weights and see the same batches?")


@dataclass(frozen=True)
class Config:
    steps: int = 100                  # issue: relative differences below 1e-9 after 100 float64 steps
    tolerance: float = 1e-9
    dataset: str = "fashion-mnist"    # unused: synthetic inputs of the datasets' shapes
    seeds: tuple[int, ...] = (0,)     # seeds weights, data and batch order

    def __post_init__(self):
        check_common(self)
        positive(self, "steps", integer=True)
        positive(self, "tolerance")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, steps=20)


def runs(cfg: Config) -> list[RunSpec]:
    return []


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    from ..engines.pytorch import TORCH_MISSING, torch_available
    if not torch_available():
        return Section(NAME, TITLE, QUESTION, f"Not measured: {TORCH_MISSING}.", config_dict(cfg),
                       {"skipped": TORCH_MISSING})
    from ..engines.crosscheck import MEASURES, run_crosscheck
    reports = [run_crosscheck(steps=cfg.steps, seed=s, tolerance=cfg.tolerance) for s in cfg.seeds]
    rows = [r for rep in reports for r in rep["rows"]]
    f64 = max(rep["float64_max"] for rep in reports)
    f32 = max(rep["float32_max"] for rep in reports)
    ok = all(rep["ok"] for rep in reports)
    controls = [r for r in rows if r["expect_fail"]]
    worst64 = max((r for r in rows if r["dtype"] == "float64" and not r["expect_fail"]), key=lambda r: r["max"])
    worst32 = max((r for r in rows if r["dtype"] == "float32"), key=lambda r: r["max"])
    cases = sorted({r["case"] for r in rows if not r["expect_fail"]})
    answer = (f"In float64 the two engines agree on all {len(cases)} nets after {cfg.steps} update steps: the "
              f"largest relative difference of any loss, first-step gradient, parameter, running statistic or "
              f"train/eval-mode output is {fmt(f64)} ({worst64['case']}), "
              + ("within" if f64 <= cfg.tolerance else "OUTSIDE")
              + f" the tolerance {cfg.tolerance:g}. In float32 the same comparison drifts to {fmt(f32)} "
              f"({worst32['case']}): rounding, amplified by training, measured and not asserted. ")
    if controls:
        c = max(controls, key=lambda r: r["max"])
        answer += (f"The control that passes the course's momentum 0.9 to PyTorch unmapped differs by "
                   f"{fmt(c['max'])} and is " + ("caught" if all(r["ok"] for r in controls) else "NOT caught")
                   + ", so the check can fail.")
    if not ok:
        answer += " The cross-check FAILED."
    table = [{"case": r["case"], "dtype": r["dtype"], **{m: r["measures"][m] for m in MEASURES},
              "verdict": ("measured" if r["ok"] is None else
                          ("caught" if r["ok"] else "not caught") if r["expect_fail"] else
                          ("ok" if r["ok"] else "FAIL"))}
             for r in rows]
    metrics = {"float64_max": f64, "float32_max": f32, "ok": ok, "tolerance": cfg.tolerance, "steps": cfg.steps,
               "rows": [{k: r[k] for k in ("case", "dtype", "measures", "max", "ok", "expect_fail")} for r in rows]}
    paths = _figure(cfg, [r for r in reports[0]["rows"] if not r["expect_fail"]], Path(out_dir))
    return Section(NAME, TITLE, QUESTION, answer.strip(), config_dict(cfg), metrics, table, [paths[0]])


def _figure(cfg, rows, out_dir):
    fig, (ax,) = figures.new_figure(1, 1, width=9.0, height=3.8,
                                    title="NumPy vs torch engine: relative loss difference per step")
    names = list(dict.fromkeys(r["case"] for r in rows))
    for r in rows:
        c = figures.color_for("", names.index(r["case"]))
        ys = [max(v, 1e-18) for v in r["loss_diff_per_step"]]   # exact agreement drawn at the floor
        ax.plot(range(1, len(ys) + 1), ys, color=c, lw=1.2, ls="-" if r["dtype"] == "float64" else "--",
                label=f"{r['case']} ({r['dtype']})")
    ax.axhline(cfg.tolerance, color="k", lw=0.8, ls=":", label=f"float64 tolerance {cfg.tolerance:g}")
    ax.set(yscale="log", xlabel="update step", ylabel="|loss_numpy - loss_torch| / loss_numpy")
    # Outside the axes: inside, it hid the float64 curves at the bottom of the plot.
    fig.legend(fontsize=7, loc="outside right lower")
    return figures.save(fig, out_dir / "crosscheck")
