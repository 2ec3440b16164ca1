"""bn-vs-baseline: the six-layer net trained with and without batch norm
(BatchNormalization.ipynb, "Batchnorm for deep networks").

Runs: ``{baseline,batchnorm}/seed=S``, tagged ``net`` (with both engines each
again on the torch engine as ``torch/...``, see ``sides``). Figure: training
loss per iteration, train and validation accuracy per epoch, mean over seeds
with a min-max band (the torch engine dashed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..lab import figures
from . import sides
from ..lab.runs import RunSpec, Runs, Section
from .summarize import (best_val, check_common, compare, final_loss, positive, positive_tuple, problems_sentence,
                        spread, status_text)

NAME = "bn-vs-baseline"
TITLE = "Batch normalization in a deep network"
QUESTION = ("Does batch normalization make the six-layer network (hidden [100]*5, weight scale 2e-2) "
            "train faster and reach a higher accuracy than the same network without it?")
NETS = (("baseline", None), ("batchnorm", "batchnorm"))


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100,) * 5   # course: five hidden layers of 100
    weight_scale: float = 2e-2                   # course: 2e-2
    num_train: int = 1000                        # course: 1000 training images (small, to overfit visibly)
    num_epochs: int = 10                         # course: 10
    batch_size: int = 50                         # course: 50
    learning_rate: float = 1e-3                  # course: Adam, 1e-3
    update_rule: str = "adam"
    dataset: str = "fashion-mnist"               # or "mnist" / "cifar-10" when present
    # "numpy", "torch" (the same nets in torch.nn, normlab[torch]), "both" side by side, or "auto": both
    # where PyTorch is installed (6 more runs, ~6 s of the reproduce budget), so the report's headline
    # experiment shows the engines together; NumPy alone otherwise (see sides.resolve).
    engine: str = "auto"
    # The course trains one seed. Three show the spread; 6 runs of ~1.3 s
    # (1 BLAS thread) are ~8 s of the reproduce budget.
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        sides.check(self.engine)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "num_epochs", "batch_size", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(20,) * 3, num_train=200, num_epochs=2, seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    return sides.expand(cfg.engine, [
        RunSpec(experiment=NAME, name=f"{label}/seed={s}", model="fc", tags={"net": label},
                model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": norm,
                              "weight_scale": cfg.weight_scale},
                solver_kwargs={"update_rule": cfg.update_rule, "optim_config": {"learning_rate": cfg.learning_rate},
                               "num_epochs": cfg.num_epochs, "batch_size": cfg.batch_size},
                dataset=cfg.dataset, num_train=cfg.num_train, seed=s)
        for label, norm in NETS for s in cfg.seeds])


def _summary(rs):
    return {"best_val_acc": spread([best_val(r) for r in rs]),
            "final_train_acc": spread([r.train_acc_history[-1] if r.status == "finished" else None for r in rs]),
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
        f"Six-layer net with and without batch norm ({cfg.dataset}){sides.title_suffix(cfg.engine)}",
        out_dir / "bn-vs-baseline", chance=0.1,
        styles={sides.tag(label, e, cfg.engine): sides.LINESTYLE[e] for e in by_engine for label, _ in NETS})
    stats = {e: {label: _summary(rs.results) for label, rs in groups.items()} for e, groups in by_engine.items()}
    s = stats[primary]
    b, n = s["batchnorm"], s["baseline"]
    answer = " ".join([
        compare(b["best_val_acc"], n["best_val_acc"], "batch norm", "no normalization", "best validation accuracy"),
        compare(b["val_acc_epoch1"], n["val_acc_epoch1"], "batch norm", "no normalization",
                "validation accuracy after the first epoch"),
        compare(b["final_loss"], n["final_loss"], "batch norm", "no normalization",
                f"training loss in epoch {cfg.num_epochs}", higher_is_better=False),
    ])
    if "torch" in stats and cfg.engine == "both":
        t = stats["torch"]
        answer += " " + sides.engines_sentence(
            [(f"{m} {'with' if label == 'batchnorm' else 'without'} batch norm", s[label][key], t[label][key])
             for label, _ in reversed(NETS) for key, m in (("best_val_acc", "best validation accuracy"),
                                                           ("final_loss", "final training loss"))])
    answer += problems_sentence(done, len(runs(cfg)))
    table = [{"net": label, **({"engine": e} if cfg.engine == "both" else {}),
              **{k: v.mean for k, v in stats[e][label].items()},
              "best_val_acc_range": None if stats[e][label]["best_val_acc"].mean is None
              else [stats[e][label]["best_val_acc"].lo, stats[e][label]["best_val_acc"].hi],
              "runs": status_text(by_engine[e][label], len(cfg.seeds))}
             for e in by_engine for label, _ in NETS]
    metrics = {label: {k: v.as_dict() for k, v in s[label].items()} for label, _ in NETS}
    if cfg.engine == "both":
        metrics["torch engine"] = {label: {k: v.as_dict() for k, v in stats["torch"][label].items()}
                                   for label, _ in NETS}
    return Section(NAME, TITLE, QUESTION, answer, shown, metrics, table, [fig[0]])
