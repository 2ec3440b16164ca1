"""batch-size: batch norm (and then layer norm) at small and large batch sizes
(BatchNormalization.ipynb, "Batch normalization and batch size"; "Layer normalization").

Runs: ``baseline/batch=5/seed=S`` (no normalization, the smallest batch) and
``{batchnorm,layernorm}/batch=B/seed=S``. Figures: one per normalization,
train and validation accuracy per epoch for every batch size beside the
baseline, mean over seeds with a min-max band.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import figures
from .base import RunSpec, Section
from .summarize import (best_val, check_common, compare, config_dict, fmt, group, positive, positive_tuple,
                        problems_sentence, spread, status_text)

NAME = "batch-size"
TITLE = "Batch normalization, layer normalization and batch size"
QUESTION = ("How does the batch size affect training with batch normalization, and with layer "
            "normalization, which does not use batch statistics?")
NORMS = ("batchnorm", "layernorm")
LONG = {"batchnorm": "batch norm", "layernorm": "layer norm"}


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100,) * 5   # course: the six-layer net
    weight_scale: float = 2e-2                   # course: 2e-2
    batch_sizes: tuple[int, ...] = (5, 10, 50)   # course: 5, 10, 50
    baseline_batch_size: int = 5                 # course: baseline without normalization at batch 5
    learning_rate: float = 10 ** -3.5            # course: Adam, 10**-3.5
    update_rule: str = "adam"
    num_train: int = 1000                        # course: 1000 training images
    num_epochs: int = 10                         # course: 10
    norms: tuple[str, ...] = NORMS               # course: batch norm, then layer norm
    dataset: str = "fashion-mnist"               # or "mnist" / "cifar10" when present
    engine: str = "numpy"                        # or "torch": the same nets in torch.nn (normlab[torch])
    # The course trains one seed; two show the spread. The 7 runs of a seed
    # cost ~35 CPU-seconds (1 BLAS thread; batch 5 dominates with 200 steps an
    # epoch), so 14 runs ~75 s; a third seed would push `normlab reproduce`
    # past its 5-minute budget on 2 cores.
    seeds: tuple[int, ...] = (0, 1)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "batch_sizes", integer=True)
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ValueError(f"batch_sizes must be distinct, got {self.batch_sizes!r}")
        positive(self, "baseline_batch_size", "num_train", "num_epochs", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if not self.norms or any(n not in NORMS for n in self.norms):
            raise ValueError(f"norms must be a non-empty tuple of {NORMS}, got {self.norms!r}")
        if max(*self.batch_sizes, self.baseline_batch_size) > self.num_train:
            raise ValueError(f"batch sizes {self.batch_sizes} / {self.baseline_batch_size} must not exceed "
                             f"num_train={self.num_train}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(20,) * 3, batch_sizes=(5, 50), num_train=100, num_epochs=2,
                               seeds=cfg.seeds[:1])


def _spec(cfg, label, norm, batch, seed):
    return RunSpec(experiment=NAME, name=f"{label}/batch={batch}/seed={seed}", model="fc",
                   model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": norm,
                                 "weight_scale": cfg.weight_scale},
                   solver_kwargs={"update_rule": cfg.update_rule, "optim_config": {"learning_rate": cfg.learning_rate},
                                  "num_epochs": cfg.num_epochs, "batch_size": batch},
                   dataset=cfg.dataset, num_train=cfg.num_train, seed=seed, engine=cfg.engine)


def runs(cfg: Config) -> list[RunSpec]:
    specs = [_spec(cfg, "baseline", None, cfg.baseline_batch_size, s) for s in cfg.seeds]
    return specs + [_spec(cfg, norm, norm, b, s) for norm in cfg.norms for b in cfg.batch_sizes for s in cfg.seeds]


def _trend(values: list) -> str:
    """How a sequence over increasing batch sizes moves."""
    pairs = [(a, b) for a, b in zip(values, values[1:]) if a is not None and b is not None]
    if not pairs:
        return "cannot be compared across batch sizes"
    if all(b > a for a, b in pairs):
        return "increases with the batch size"
    if all(b < a for a, b in pairs):
        return "decreases as the batch size grows"
    return "does not change monotonically with the batch size"


def analyze(cfg: Config, results: dict, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    sizes = sorted(cfg.batch_sizes)
    base_label = f"baseline/batch={cfg.baseline_batch_size}"
    base = group(results, base_label)
    paths, metrics, table = [], {}, []
    base_best = spread([best_val(r) for r in base])
    metrics["baseline"] = {"batch_size": cfg.baseline_batch_size, "best_val_acc": base_best.as_dict()}
    table.append({"net": "baseline", "batch size": cfg.baseline_batch_size, "best val acc": base_best.mean,
                  "best val acc range": [base_best.lo, base_best.hi] if base_best.mean is not None else None,
                  "final train acc": spread([r.train_acc_history[-1] if r.status == "finished" else None
                                             for r in base]).mean,
                  "runs": status_text(base, len(cfg.seeds))})
    sentences, seed_spread = [], []
    for norm in cfg.norms:
        groups = {f"baseline, batch {cfg.baseline_batch_size}": base}
        best, train = {}, {}
        for b in sizes:
            rs = group(results, f"{norm}/batch={b}")
            groups[f"{norm}, batch {b}"] = rs
            best[b] = spread([best_val(r) for r in rs])
            train[b] = spread([r.train_acc_history[-1] if r.status == "finished" else None for r in rs])
            if best[b].n > 1:
                seed_spread.append(best[b].hi - best[b].lo)
            table.append({"net": norm, "batch size": b, "best val acc": best[b].mean,
                          "best val acc range": [best[b].lo, best[b].hi] if best[b].mean is not None else None,
                          "final train acc": train[b].mean, "runs": status_text(rs, len(cfg.seeds))})
        paths.append(_figure(cfg, norm, groups, out_dir)[0])
        means = [best[b].mean for b in sizes]
        trains = [train[b].mean for b in sizes]
        have = [m for m in means if m is not None]
        rng = max(have) - min(have) if have else None
        metrics[norm] = {"best_val_acc_by_batch": {str(b): best[b].as_dict() for b in sizes},
                         "final_train_acc_by_batch": {str(b): train[b].as_dict() for b in sizes},
                         "range_over_batch_sizes": rng}
        per = " / ".join(map(str, sizes))
        s = (f"With {LONG[norm]}, at batch sizes {per}, the best validation accuracy is "
             f"{' / '.join(fmt(m) for m in means)}"
             + (f" (means over {len(cfg.seeds)} seeds)" if len(cfg.seeds) > 1 else "")
             + f" and {_trend(means)}" + (f" (range {fmt(rng)})" if rng is not None else "")
             + f"; the training accuracy after the last epoch is {' / '.join(fmt(m) for m in trains)} and "
             + f"{_trend(trains)}. ")
        s += compare(best[sizes[0]], base_best, f"{LONG[norm]} at batch {sizes[0]}",
                     f"the baseline at batch {cfg.baseline_batch_size}", "best validation accuracy")
        sentences.append(s)
    noise = max(seed_spread) if seed_spread else None
    if noise is not None:
        metrics["max_seed_spread_best_val_acc"] = noise
    if all(n in metrics and metrics[n]["range_over_batch_sizes"] is not None for n in NORMS):
        rb, rl = metrics["batchnorm"]["range_over_batch_sizes"], metrics["layernorm"]["range_over_batch_sizes"]
        if rb > rl:
            s = (f"Over the batch sizes, batch norm's best validation accuracy varies by {fmt(rb)} and "
                 f"layer norm's by {fmt(rl)}: layer norm, whose statistics are per sample, depends less on "
                 f"the batch size here")
        elif rb < rl:
            s = (f"Over the batch sizes, batch norm's best validation accuracy varies by {fmt(rb)} and "
                 f"layer norm's by {fmt(rl)}: here batch norm depends less on the batch size than layer "
                 f"norm, although only batch norm uses batch statistics")
        else:
            s = f"Batch norm and layer norm vary equally over the batch sizes ({fmt(rb)})"
        if noise is not None:
            within = [LONG[n] + "'s" for n, r in (("batchnorm", rb), ("layernorm", rl)) if r <= noise]
            s += (f"; for comparison, the seeds of one normalized configuration differ by up to {fmt(noise)}"
                  + ("" if not within else ", so " + " and ".join(within)
                     + (" variations are" if len(within) > 1 else " variation is") + " within seed noise"))
        sentences.append(s + ".")
    answer = " ".join(sentences) + problems_sentence(results, len(runs(cfg)))
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, paths)


def _figure(cfg, norm, groups, out_dir):
    title = f"{LONG[norm].capitalize()} and batch size ({cfg.dataset})"
    # One colour per batch size, light (small batch) to dark (large); the baseline grey and dashed.
    import matplotlib
    cmap = matplotlib.colormaps["Blues" if norm == "batchnorm" else "Greens"]
    sizes = [k for k in groups if not k.startswith("baseline")]
    fig, axes = figures.new_figure(2, 1, width=4.8, height=3.6, title=title)
    for i, (label, rs) in enumerate(groups.items()):
        base = label.startswith("baseline")
        color = figures.COLORS["baseline"] if base else cmap(0.45 + 0.55 * sizes.index(label) / max(len(sizes) - 1, 1))
        for ax, attr in zip(axes, ("train_acc_history", "val_acc_history")):
            figures.band(ax, [(getattr(r, attr), r.status == "diverged") for r in rs], label, color, marker="o",
                         linestyle="--" if base else "-")
    axes[0].set(title="Training accuracy", xlabel="epoch", ylabel="accuracy")
    axes[1].set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.axhline(0.1, color="0.5", lw=0.8, ls=":")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[1].legend(loc="lower right")
    return figures.save(fig, out_dir / f"batch-size-{norm}")
