"""spatial-bn: a small conv net without normalization, with spatial batch norm
and with group norm (ConvolutionalNetworks.ipynb, "Spatial batch
normalization" and "Group normalization").

Runs: ``{baseline,batchnorm,groupnorm}/seed=S``, tagged ``net``
(ThreeLayerConvNet; with 'groupnorm' the hidden affine layer gets layer norm;
with both engines each again on the torch engine as ``torch/...``). Figure: training loss,
train and validation accuracy, mean over seeds with a min-max band (the torch
engine dashed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..lab import figures
from . import sides
from ..lab.runs import RunSpec, Runs, Section
from .summarize import best_val, check_common, compare, final_loss, positive, problems_sentence, spread, status_text

NAME = "spatial-bn"
TITLE = "Spatial batch normalization and group normalization in a conv net"
QUESTION = ("Does spatial batch normalization (or group normalization) help a small convolutional "
            "network train faster and generalize better?")
NETS = (("baseline", None), ("batchnorm", "batchnorm"), ("groupnorm", "groupnorm"))
LONG = {"baseline": "no normalization", "batchnorm": "spatial batch norm", "groupnorm": "group norm"}


@dataclass(frozen=True)
class Config:
    # The course's ThreeLayerConvNet (32 filters of 7x7, hidden 100, CIFAR-10)
    # made small enough for the budget: 16 filters of 3x3 on 28x28 images.
    num_filters: int = 16
    filter_size: int = 3
    hidden_dim: int = 100                        # course: 100
    num_groups: int = 4                          # group norm: 4 groups of 4 channels
    weight_scale: float = 1e-3                   # course: 1e-3
    learning_rate: float = 1e-3                  # course: Adam, 1e-3
    update_rule: str = "adam"
    batch_size: int = 50                         # course: 50
    num_train: int = 2000                        # a few thousand images ...
    num_epochs: int = 3                          # ... and a few epochs: ~4.5 s a run (1 BLAS thread)
    dataset: str = "fashion-mnist"               # or "mnist" / "cifar-10" when present
    engine: str = "numpy"                        # or "torch" (the same nets in torch.nn), "both", "auto" (sides)
    seeds: tuple[int, ...] = (0, 1, 2)           # 9 runs, ~40 s in all

    def __post_init__(self):
        check_common(self)
        sides.check(self.engine)
        positive(self, "num_filters", "filter_size", "hidden_dim", "num_groups", "batch_size", "num_train",
                 "num_epochs", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.filter_size % 2 != 1:
            raise ValueError(f"filter_size must be odd (the conv keeps the spatial size), got {self.filter_size}")
        if self.num_filters % self.num_groups:
            raise ValueError(f"num_filters={self.num_filters} is not divisible by num_groups={self.num_groups}")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, num_filters=4, num_groups=2, hidden_dim=16, num_train=100, num_epochs=2,
                               batch_size=25, seeds=cfg.seeds[:1])


def runs(cfg: Config) -> list[RunSpec]:
    return sides.expand(cfg.engine, [
        RunSpec(experiment=NAME, name=f"{label}/seed={s}", model="cnn", tags={"net": label},
                model_kwargs={"num_filters": cfg.num_filters, "filter_size": cfg.filter_size,
                              "hidden_dim": cfg.hidden_dim, "weight_scale": cfg.weight_scale,
                              "normalization": norm, "num_groups": cfg.num_groups},
                solver_kwargs={"update_rule": cfg.update_rule, "optim_config": {"learning_rate": cfg.learning_rate},
                               "num_epochs": cfg.num_epochs, "batch_size": cfg.batch_size},
                dataset=cfg.dataset, num_train=cfg.num_train, seed=s)
        for label, norm in NETS for s in cfg.seeds])


def _summary(rs) -> dict:
    return {"best_val_acc": spread([best_val(r) for r in rs]),
            "val_acc_epoch1": spread([r.val_acc_history[1] if len(r.val_acc_history) > 1 else None for r in rs]),
            "final_loss": spread([final_loss(r) for r in rs])}


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    shown, cfg = sides.section_config(cfg), sides.resolved(cfg)
    by_engine = {e: {label: rs.where(net=label).by_seed() for label, _ in NETS}
                 for e, rs in sides.split(cfg.engine, done).items()}
    primary = next(iter(by_engine))
    fig = figures.histories(
        {sides.tag(label, e, cfg.engine): rs.results for e, groups in by_engine.items()
         for label, rs in groups.items()},
        f"Conv net {cfg.num_filters}x{cfg.filter_size}x{cfg.filter_size}, hidden {cfg.hidden_dim} "
        f"({cfg.dataset}){sides.title_suffix(cfg.engine)}",
        out_dir / "spatial-bn", chance=0.1,
        styles={sides.tag(label, e, cfg.engine): sides.LINESTYLE[e] for e in by_engine for label, _ in NETS})
    stats = {e: {label: _summary(rs.results) for label, rs in groups.items()} for e, groups in by_engine.items()}
    s = stats[primary]
    parts = []
    for label in ("batchnorm", "groupnorm"):
        parts.append(compare(s[label]["best_val_acc"], s["baseline"]["best_val_acc"], LONG[label],
                             LONG["baseline"], "best validation accuracy"))
        parts.append(compare(s[label]["val_acc_epoch1"], s["baseline"]["val_acc_epoch1"], LONG[label],
                             LONG["baseline"], "validation accuracy after one epoch"))
    parts.append(compare(s["batchnorm"]["final_loss"], s["groupnorm"]["final_loss"], LONG["batchnorm"],
                         LONG["groupnorm"], f"training loss in epoch {cfg.num_epochs}", higher_is_better=False))
    if cfg.engine == "both":
        parts.append(sides.engines_sentence([(f"best validation accuracy, {LONG[label]}", s[label]["best_val_acc"],
                                              stats["torch"][label]["best_val_acc"]) for label, _ in NETS]))
    answer = " ".join(parts) + problems_sentence(done, len(runs(cfg)))
    table = [{"net": LONG[label], **({"engine": e} if cfg.engine == "both" else {}),
              **{k: v.mean for k, v in stats[e][label].items()},
              "best_val_acc_range": None if stats[e][label]["best_val_acc"].mean is None
              else [stats[e][label]["best_val_acc"].lo, stats[e][label]["best_val_acc"].hi],
              "runs": status_text(by_engine[e][label], len(cfg.seeds))} for e in by_engine for label, _ in NETS]
    metrics = {label: {k: v.as_dict() for k, v in s[label].items()} for label, _ in NETS}
    if cfg.engine == "both":
        metrics["torch engine"] = {label: {k: v.as_dict() for k, v in stats["torch"][label].items()}
                                   for label, _ in NETS}
    return Section(NAME, TITLE, QUESTION, answer, shown, metrics, table, [fig[0]])
