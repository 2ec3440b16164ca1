"""weight-scale: sensitivity to the initial weight scale, with and without
batch norm (BatchNormalization.ipynb, "Batch normalization and initialization").

Runs: ``{baseline,batchnorm}/scale=1.0e-04/seed=S`` for each of the weight
scales, tagged ``net`` and ``scale`` (the scale itself, not its rounded name;
with both engines each again on the torch engine as ``torch/...``). Figure:
best validation accuracy, best training accuracy and final training loss
against the weight scale (log axes), mean over seeds with a min-max band (the
torch engine dashed); a diverged run is marked with an ``x``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lab import figures
from . import sides
from ..lab.runs import RunSpec, Runs, Section
from .summarize import (best_train, best_val, check_common, final_loss, fmt, positive, positive_tuple,
                        problems_sentence, spread, status_text, times)

NAME = "weight-scale"
TITLE = "Batch normalization and weight initialization"
QUESTION = ("How sensitive are the best validation accuracy, the best training accuracy and the final "
            "training loss of an eight-layer network to the scale of its initial weights, with and "
            "without batch normalization?")
NETS = (("baseline", None), ("batchnorm", "batchnorm"))
CHANCE = 0.1


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (50,) * 7     # course: seven hidden layers of 50
    # course: np.logspace(-4, 0, num=20)
    weight_scales: tuple[float, ...] = tuple(float(v) for v in np.logspace(-4, 0, num=20))
    num_train: int = 1000                        # course: 1000 training images
    num_epochs: int = 10                         # course: 10
    batch_size: int = 50                         # course: 50
    learning_rate: float = 1e-3                  # course: Adam, 1e-3
    update_rule: str = "adam"
    dataset: str = "fashion-mnist"               # or "mnist" / "cifar-10" when present
    engine: str = "numpy"                        # or "torch" (the same nets in torch.nn), "both", "auto" (sides)
    # The course trains one seed per scale. Two show the spread; the 80 runs
    # (~0.6 s baseline, ~1.2 s batch norm, 1 BLAS thread) cost ~75-90
    # CPU-seconds of the 5-minute reproduce budget; a third seed would add ~45.
    seeds: tuple[int, ...] = (0, 1)

    def __post_init__(self):
        check_common(self)
        sides.check(self.engine)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "weight_scales")
        if len(set(self.weight_scales)) != len(self.weight_scales):
            raise ValueError(f"weight_scales must be distinct, got {self.weight_scales!r}")
        positive(self, "num_train", "num_epochs", "batch_size", integer=True)
        positive(self, "learning_rate")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(20,) * 3, weight_scales=(1e-4, 1e-2, 1.0), num_train=200,
                               num_epochs=2, seeds=cfg.seeds[:1])


def run_name(label: str, scale: float, seed: int) -> str:
    return f"{label}/scale={scale:.1e}/seed={seed}"


def runs(cfg: Config) -> list[RunSpec]:
    return sides.expand(cfg.engine, [
        RunSpec(experiment=NAME, name=run_name(label, w, s), model="fc", tags={"net": label, "scale": w},
                model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": norm, "weight_scale": w},
                solver_kwargs={"update_rule": cfg.update_rule, "optim_config": {"learning_rate": cfg.learning_rate},
                               "num_epochs": cfg.num_epochs, "batch_size": cfg.batch_size},
                dataset=cfg.dataset, num_train=cfg.num_train, seed=s)
        for label, norm in NETS for w in cfg.weight_scales for s in cfg.seeds])


def _per_scale(cfg, done, label, measure):
    """For each weight scale, [(value, diverged)] over the seeds that have a result (in the order of cfg.seeds)."""
    return [[(measure(r), r.status == "diverged") for r in done.where(net=label, scale=w).results]
            for w in cfg.weight_scales]


MEASURES = {"best_val_acc": best_val, "best_train_acc": best_train, "final_loss": final_loss}


def _mean(seeds):
    return spread([v for v, _ in seeds]).mean


def _measure(cfg, done) -> tuple[dict, dict, dict]:
    """One engine's numbers: per-seed values per scale, their means, and the sensitivity summary per net."""
    data = {m: {label: _per_scale(cfg, done, label, f) for label, _ in NETS} for m, f in MEASURES.items()}
    means = {m: {label: [_mean(v) for v in data[m][label]] for label, _ in NETS} for m in MEASURES}
    summary = {}
    for label, _ in NETS:
        vals = [(w, v) for w, v in zip(cfg.weight_scales, means["best_val_acc"][label]) if v is not None]
        if not vals:
            summary[label] = None
            continue
        lo, hi = min(v for _, v in vals), max(v for _, v in vals)
        learns = [w for w, v in vals if v > 2 * CHANCE]
        summary[label] = dict(lo=lo, hi=hi, range=hi - lo, best_scale=max(vals, key=lambda wv: wv[1])[0],
                              learns=len(learns), learns_from=min(learns) if learns else None,
                              learns_to=max(learns) if learns else None, scales=len(vals))
    return data, means, summary


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    shown, cfg = sides.section_config(cfg), sides.resolved(cfg)
    per_engine = sides.split(cfg.engine, done)
    measured = {e: _measure(cfg, rs) for e, rs in per_engine.items()}
    primary = next(iter(measured))

    fig, axes = figures.new_figure(3, 1, width=4.5, height=3.6,
                                   title=f"Eight-layer net: weight initialization scale "
                                         f"({cfg.dataset}){sides.title_suffix(cfg.engine)}")
    styles = {sides.tag(label, e, cfg.engine): sides.LINESTYLE[e] for e in measured for label, _ in NETS}
    for ax, m, ylabel in zip(axes, MEASURES, ("best validation accuracy", "best training accuracy",
                                              "final training loss")):
        figures.sweep(ax, cfg.weight_scales, {sides.tag(label, e, cfg.engine): measured[e][0][m][label]
                                              for e in measured for label, _ in NETS},
                      ylabel, chance=None if m == "final_loss" else CHANCE, logy=m == "final_loss", styles=styles)
    for ax, t in zip(axes, ("Best validation accuracy", "Best training accuracy", "Final training loss")):
        ax.set(title=t, xlabel="weight initialization scale")
    axes[0].set_ylim(0, 1)
    axes[1].set_ylim(0, 1)
    axes[0].legend(loc="best")
    paths = figures.save(fig, out_dir / "weight-scale")

    _, means, summary = measured[primary]
    metrics = _metrics(per_engine[primary], means, summary)
    answer = _answer(cfg, summary, means)
    if cfg.engine == "both":
        metrics["torch engine"] = _metrics(per_engine["torch"], *measured["torch"][1:])
        answer += " " + _engines_answer(summary, measured["torch"][2])
    answer += problems_sentence(done, len(runs(cfg)))
    table = []
    for i, w in enumerate(cfg.weight_scales):
        row = {"weight scale": w}
        for m in MEASURES:
            for e in measured:
                for label, _ in NETS:
                    row[f"{m} ({sides.tag(label, e, cfg.engine)})"] = measured[e][1][m][label][i]
        issues = []
        for e, rs_all in per_engine.items():
            for label, _ in NETS:
                rs = rs_all.where(net=label, scale=w)
                if any(r.status != "finished" for r in rs.results) or len(rs) < len(cfg.seeds):
                    issues.append(f"{sides.tag(label, e, cfg.engine)}: {status_text(rs, len(cfg.seeds))}")
        row["runs"] = "; ".join(issues) or "all finished"
        table.append(row)
    return Section(NAME, TITLE, QUESTION, answer, shown, metrics, table, [paths[0]])


def _metrics(done, means, summary) -> dict:
    """One engine's key numbers per net (nets without a finished run are left out)."""
    return {label: {**summary[label], **{f"{m}_by_scale": means[m][label] for m in MEASURES},
                    "diverged_runs": sum(r.status == "diverged" for r in done.where(net=label).results)}
            for label, _ in NETS if summary[label] is not None}


def _engines_answer(numpy_summary, torch_summary) -> str:
    """The torch engine's sensitivity beside the NumPy engine's."""
    parts = []
    for label, long in (("baseline", "without batch norm"), ("batchnorm", "with batch norm")):
        a, b = numpy_summary.get(label), torch_summary.get(label)
        if a is None or b is None:
            parts.append(f"{long}: not available on {'the NumPy' if a is None else 'the torch'} engine")
            continue
        parts.append(f"{long} the best validation accuracy spans {fmt(b['lo'])}-{fmt(b['hi'])} (range "
                     f"{fmt(b['range'])}; NumPy engine {fmt(a['range'])}) and the net learns at {b['learns']} of "
                     f"{b['scales']} scales (NumPy engine {a['learns']} of {a['scales']})")
    return "On the torch engine (the same nets in torch.nn, the same starts and batches): " + "; ".join(parts) + "."


def _answer(cfg, summary, means) -> str:
    n = len(cfg.weight_scales)
    b, nb = summary.get("batchnorm"), summary.get("baseline")
    if b is None or nb is None:
        return "No comparison is possible: " + ", ".join(k for k, v in summary.items() if v is None) + \
            " has no finished run."
    seeds = f"mean over {len(cfg.seeds)} seeds" if len(cfg.seeds) > 1 else "one seed"
    scale_span = f"{min(cfg.weight_scales):.2g} to {max(cfg.weight_scales):.2g}"
    s = (f"Across the {n} weight scales ({scale_span}), the best validation accuracy ({seeds}) spans "
         f"{fmt(nb['lo'])}-{fmt(nb['hi'])} without batch norm (range {fmt(nb['range'])}) and "
         f"{fmt(b['lo'])}-{fmt(b['hi'])} with it (range {fmt(b['range'])}). ")
    if b["range"] < nb["range"]:
        s += (f"Batch norm makes it {times(nb['range'], b['range'])} less sensitive to the initial scale. ")
    elif b["range"] > nb["range"]:
        s += (f"Here batch norm makes it more sensitive to the initial scale, by a factor of "
              f"{times(nb['range'], b['range']).replace(' times', '')}. ")
    else:
        s += "The sensitivity to the initial scale is the same with and without batch norm. "

    def learn_text(x):
        if not x["learns"]:
            return "at none of the scales"
        return (f"at {x['learns']} of {x['scales']} scales ({x['learns_from']:.2g} to {x['learns_to']:.2g})"
                if x["learns"] < x["scales"] else f"at all {x['scales']} scales")
    s += (f"The network learns (best validation accuracy above twice chance, {2 * CHANCE:.2f}) {learn_text(nb)} "
          f"without batch norm and {learn_text(b)} with it; the best scale is {nb['best_scale']:.2g} without "
          f"({fmt(nb['hi'])}) and {b['best_scale']:.2g} with ({fmt(b['hi'])}). ")
    fl = {label: means["final_loss"][label][-1] for label in ("baseline", "batchnorm")}
    s += (f"At the largest scale, {max(cfg.weight_scales):.2g}, the final training loss is "
          f"{fmt(fl['baseline'])} without batch norm and {fmt(fl['batchnorm'])} with it.")
    return s
