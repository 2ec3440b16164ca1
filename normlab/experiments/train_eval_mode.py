"""train-eval-mode: the PyTorch notebook's experiment, on the NumPy engine, the torch engine or both.

An MLP 784-512-256-10 (no bias before batch norm), plain SGD, batch 64,
trained on the whole training split with and without batch norm. After
training, the test set is classified twice: in eval mode (batch norm uses its
running statistics, as ``model.eval()``) and in train mode (each batch of 64
test images normalized with its own statistics, as forgetting
``model.eval()``).

Runs: ``{baseline,batchnorm}/seed=S``, tagged ``net``, each measuring test
accuracy in both modes and per class. Figures: training loss and validation accuracy per
epoch; test accuracy in the two modes; per-class test accuracy.

With both engines every net is also trained on the torch engine (the
same net in ``torch.nn``, same start and batches; runs ``torch/{label}/seed=S``,
see ``sides``): the figures draw it dashed (curves) or hatched (bars) beside
the NumPy engine, and the table and the answer give its numbers beside the
NumPy engine's.

The measured model is the one after the last epoch, as in the notebook
(``restore_best=False``: the Solver does not swap in its best-validation
snapshot).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lab import figures
from . import sides
from ..lab.runs import RunSpec, Runs, Section
from .summarize import (check_common, class_names, compare, fmt, positive, positive_tuple, problems_sentence, spread,
                        status_text)

NAME = "train-eval-mode"
TITLE = "Batch normalization at test time: train mode vs eval mode"
QUESTION = ("How does batch norm change the training loss of a 784-512-256-10 MLP trained with SGD, and "
            "what happens to the test accuracy when the batch-norm net is evaluated in train mode "
            "(batch statistics) instead of eval mode (running statistics)? Which classes gain?")
NETS = (("baseline", None), ("batchnorm", "batchnorm"))
EVALUATE = ("test_acc", "test_acc_train_mode", "per_class_test_acc")


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (512, 256)   # notebook: 784-512-256-10
    bias_before_norm: bool = False               # notebook: nn.Linear(..., bias=False) before BatchNorm1d
    # PyTorch's default nn.Linear init has std 1/sqrt(3 fan_in): 0.021, 0.026,
    # 0.036 for these layers; one scale for all, near the first (largest) layer's.
    weight_scale: float = 2.5e-2
    learning_rate: float = 0.01                  # notebook: SGD, lr 0.01, no momentum
    update_rule: str = "sgd"
    batch_size: int = 64                         # notebook: 64
    num_epochs: int = 10                         # notebook: 10
    num_train: int | None = None                 # None: the whole training split (59,000 Fashion-MNIST images)
    dataset: str = "fashion-mnist"               # or "mnist" / "cifar-10" when present
    engine: str = "numpy"                        # or "torch" (torch.nn, normlab[torch]), "both" side by side, "auto"
    # One seed: each run is ~9,200 SGD steps (~85-95 s with 1 BLAS thread);
    # the two are ~180 CPU-seconds, the largest share of the 5-minute
    # reproduce budget on 2 cores. Test accuracy is measured on 10,000 images
    # (sampling error ~0.4%).
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self):
        check_common(self)
        sides.check(self.engine)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "batch_size", "num_epochs", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.num_train is not None:
            positive(self, "num_train", integer=True)
            if self.batch_size > self.num_train:
                raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")
        if not isinstance(self.bias_before_norm, bool):
            raise ValueError(f"bias_before_norm must be True or False, got {self.bias_before_norm!r}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(64, 32), num_train=640, num_epochs=2, seeds=cfg.seeds[:1])


def runs(cfg: Config) -> list[RunSpec]:
    return sides.expand(cfg.engine, [
        RunSpec(experiment=NAME, name=f"{label}/seed={s}", model="fc", tags={"net": label},
                model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": norm,
                              "weight_scale": cfg.weight_scale, "bias_before_norm": cfg.bias_before_norm},
                solver_kwargs={"update_rule": cfg.update_rule, "optim_config": {"learning_rate": cfg.learning_rate},
                               "num_epochs": cfg.num_epochs, "batch_size": cfg.batch_size, "restore_best": False},
                dataset=cfg.dataset, num_train=cfg.num_train, seed=s, evaluate=EVALUATE)
        for label, norm in NETS for s in cfg.seeds])


def _extra(r, key):
    return r.extras.get(key) if r.status == "finished" else None


def _stats(rs) -> dict:
    """Summary numbers of one net's runs over the seeds."""
    per_class = [_extra(r, "per_class_test_acc") for r in rs]
    per_class = [p for p in per_class if p is not None]
    return {
        "final_loss": spread([r.epoch_losses()[-1] if r.status == "finished" and r.epoch_losses() else None
                              for r in rs]),
        "first_epoch_loss": spread([r.epoch_losses()[0] if r.status == "finished" and r.epoch_losses() else None
                                    for r in rs]),
        "test_acc": spread([_extra(r, "test_acc") for r in rs]),
        "test_acc_train_mode": spread([_extra(r, "test_acc_train_mode") for r in rs]),
        "per_class": (np.mean([[np.nan if v is None else v for v in p] for p in per_class], axis=0).tolist()
                      if per_class else None),
    }


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    shown, cfg = sides.section_config(cfg), sides.resolved(cfg)
    by_engine = {e: {label: rs.where(net=label).by_seed() for label, _ in NETS}
                 for e, rs in sides.split(cfg.engine, done).items()}
    primary = next(iter(by_engine))
    groups = by_engine[primary]
    classes = class_names(cfg.dataset)
    stats = {e: {label: _stats(rs.results) for label, rs in g.items()} for e, g in by_engine.items()}
    s = stats[primary]
    second = stats["torch"] if cfg.engine == "both" else {}
    paths = [_curves(cfg, by_engine, out_dir)[0], _test_figure(cfg, stats, classes, out_dir)[0]]

    b, n = s["batchnorm"], s["baseline"]
    parts = [compare(b["final_loss"], n["final_loss"], "batch norm", "no normalization",
                     f"mean training loss in epoch {cfg.num_epochs}", higher_is_better=False),
             compare(b["test_acc"], n["test_acc"], "batch norm", "no normalization", "test accuracy (eval mode)")]
    if b["test_acc"].mean is not None and b["test_acc_train_mode"].mean is not None:
        d = b["test_acc_train_mode"].mean - b["test_acc"].mean
        parts.append(
            f"Evaluated in train mode (each batch of {cfg.batch_size} test images normalized with its own "
            f"statistics), the batch-norm net scores {fmt(b['test_acc_train_mode'].mean)} against "
            f"{fmt(b['test_acc'].mean)} in eval mode: "
            + ("the same accuracy." if d == 0 else f"{fmt(abs(d))} {'higher' if d > 0 else 'lower'} "
               f"({fmt(100 * abs(d), 1)} percentage points)."))
    if n["test_acc"].mean is not None and n["test_acc_train_mode"].mean is not None:
        d0 = n["test_acc_train_mode"].mean - n["test_acc"].mean
        parts.append("Without batch norm the two modes give " + (
            "identical accuracy, as they must: the net has no mode-dependent layer." if d0 == 0 else
            f"different accuracies ({fmt(n['test_acc_train_mode'].mean)} vs {fmt(n['test_acc'].mean)})."))
    if b["per_class"] and n["per_class"]:
        gains = np.asarray(b["per_class"]) - np.asarray(n["per_class"])
        k_up = int(np.sum(gains > 0))
        hardest = int(np.nanargmin(b["per_class"]))
        parts.append(f"Per class, batch norm is more accurate on {k_up} of {len(gains)} classes; the largest "
                     f"change is on {classes[int(np.nanargmax(np.abs(gains)))]} "
                     f"({'+' if gains[np.nanargmax(np.abs(gains))] >= 0 else '-'}"
                     f"{fmt(abs(float(gains[np.nanargmax(np.abs(gains))])))}); the hardest class with batch norm "
                     f"is {classes[hardest]} ({fmt(b['per_class'][hardest])}, {fmt(n['per_class'][hardest])} "
                     f"without).")
    if second:
        tb, tn = second["batchnorm"], second["baseline"]
        parts.append(f"On the torch engine (the same nets in torch.nn, same start, same batches) the batch-norm "
                     f"net scores {fmt(tb['test_acc'].mean)} in eval mode and {fmt(tb['test_acc_train_mode'].mean)} "
                     f"in train mode (NumPy engine: {fmt(b['test_acc'].mean)} and "
                     f"{fmt(b['test_acc_train_mode'].mean)}); without batch norm {fmt(tn['test_acc'].mean)} "
                     f"(NumPy engine: {fmt(n['test_acc'].mean)}).")
    answer = " ".join(parts) + problems_sentence(done, len(runs(cfg)))

    all_stats = {**s, **{f"{k} (torch engine)": v for k, v in second.items()}}
    all_groups = {**groups, **{f"{k} (torch engine)": by_engine["torch"][k] for k in second}}

    def row(what, get):
        return {"measure": what, **{label: get(label) for label in all_stats}}
    table = [row(f"training loss, epoch {cfg.num_epochs}", lambda k: all_stats[k]["final_loss"].mean),
             row("test accuracy, eval mode", lambda k: all_stats[k]["test_acc"].mean),
             row("test accuracy, train mode", lambda k: all_stats[k]["test_acc_train_mode"].mean),
             row("runs", lambda k: status_text(all_groups[k], len(cfg.seeds)))]
    table += [row(f"test accuracy: {c}", lambda k, i=i: all_stats[k]["per_class"][i] if all_stats[k]["per_class"]
                  else None) for i, c in enumerate(classes)]
    metrics = {label: {k: (v.as_dict() if hasattr(v, "as_dict") else v) for k, v in st.items()}
               for label, st in all_stats.items()}
    return Section(NAME, TITLE, QUESTION, answer, shown, metrics, table, paths)


def _curves(cfg, by_engine, out_dir):
    fig, (ax_loss, ax_val) = figures.new_figure(2, 1, width=4.8, height=3.6,
                                                title=f"MLP 512-256, SGD {cfg.learning_rate:g}, batch "
                                                      f"{cfg.batch_size} ({cfg.dataset})"
                                                      + sides.title_suffix(cfg.engine))
    for engine, groups in by_engine.items():
        for i, (label, rs) in enumerate(groups.items()):
            c, name, ls = figures.color_for(label, i), sides.tag(label, engine, cfg.engine), sides.LINESTYLE[engine]
            figures.band(ax_loss, [(r.epoch_losses(), r.status == "diverged") for r in rs.results], name, c,
                         x=list(range(1, cfg.num_epochs + 1)), marker="o", linestyle=ls)
            figures.band(ax_val, [(r.val_acc_history, r.status == "diverged") for r in rs.results], name, c,
                         marker="o", linestyle=ls)
    ax_loss.set(title="Training loss (mean per epoch)", xlabel="epoch", ylabel="loss")
    ax_val.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_val):
        ax.xaxis.get_major_locator().set_params(integer=True)
    figures.shared_legend(fig, [ax_val, ax_loss])
    return figures.save(fig, out_dir / "train-eval-mode-training")


def _test_figure(cfg, stats, classes, out_dir):
    fig, (ax_mode, ax_class) = figures.new_figure(2, 1, width=6, height=3.8, width_ratios=[1, 2.6],
                                                  title=f"Test accuracy after training ({cfg.dataset})"
                                                        + sides.title_suffix(cfg.engine, bars=True))
    nets = ("baseline", "batchnorm")
    modes = {"eval mode (running statistics)": ("test_acc", "#6a3d9a"),
             "train mode (batch statistics)": ("test_acc_train_mode", "#ff7f0e")}
    series, colors, hatches = {}, [], []
    for mode, (key, color) in modes.items():
        for e, s in stats.items():
            series[sides.tag(mode, e, cfg.engine)] = [s[k][key].mean for k in nets]
            colors.append(color)
            hatches.append(sides.HATCH[e])
    figures.grouped_bars(ax_mode, ["no normalization", "batch norm"], series, "test accuracy",
                         fmt=".3f" if len(stats) == 1 else ".2f", colors=colors, hatches=hatches)
    ax_mode.set(title="Eval mode vs train mode", ylim=(0, 1.3))
    ax_mode.legend(loc="upper center", fontsize=7.5 if len(stats) == 1 else 6.5)
    series, colors, hatches = {}, [], []
    for label, _ in NETS:
        for e, s in stats.items():
            series[sides.tag(label, e, cfg.engine)] = s[label]["per_class"] or [None] * len(classes)
            colors.append(figures.color_for(label))
            hatches.append(sides.HATCH[e])
    figures.grouped_bars(ax_class, list(classes), series, "test accuracy (eval mode)", colors=colors, hatches=hatches)
    ax_class.set(title="Per-class test accuracy", ylim=(0, 1.15))
    ax_class.tick_params(axis="x", labelrotation=30)
    ax_class.legend(loc="upper right", ncol=len(series))      # one row, above the bars (which stop at 1)
    return figures.save(fig, out_dir / "train-eval-mode-test")
