"""batch-size: batch norm (and then layer norm) at small and large batch sizes
(BatchNormalization.ipynb, "Batch normalization and batch size"; "Layer normalization").

Runs: ``baseline/batch=5/seed=S`` (no normalization, the smallest batch) and
``{batchnorm,layernorm}/batch=B/seed=S``, tagged ``net`` and ``batch`` (with
both engines each again on the torch engine as ``torch/...``). Figures: one per normalization, train and
validation accuracy per epoch for every batch size beside the baseline, mean
over seeds with a min-max band; with both engines, one row per engine.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..lab import figures
from . import sides
from ..lab.runs import RunSpec, Runs, Section
from .summarize import (best_val, check_common, compare, fmt, positive, positive_tuple, problems_sentence, spread,
                        status_text)

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
    dataset: str = "fashion-mnist"               # or "mnist" / "cifar-10" when present
    engine: str = "numpy"                        # or "torch" (the same nets in torch.nn), "both", "auto" (sides)
    # The course trains one seed; two show the spread. The 7 runs of a seed
    # cost ~35 CPU-seconds (1 BLAS thread; batch 5 dominates with 200 steps an
    # epoch), so 14 runs ~75 s; a third seed would push `normlab reproduce`
    # past its 5-minute budget on 2 cores.
    seeds: tuple[int, ...] = (0, 1)

    def __post_init__(self):
        check_common(self)
        sides.check(self.engine)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "batch_sizes", integer=True)
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ValueError(f"batch_sizes must be distinct, got {self.batch_sizes!r}")
        if "batchnorm" in self.norms and 1 in self.batch_sizes:
            # One sample has batch variance 0: every batch-norm output is beta (and PyTorch refuses it).
            raise ValueError(f"batch norm needs at least 2 samples per batch; remove 1 from "
                             f"batch_sizes={self.batch_sizes!r} or drop batchnorm from norms")
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
                   tags={"net": label, "batch": batch},
                   model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": norm,
                                 "weight_scale": cfg.weight_scale},
                   solver_kwargs={"update_rule": cfg.update_rule, "optim_config": {"learning_rate": cfg.learning_rate},
                                  "num_epochs": cfg.num_epochs, "batch_size": batch},
                   dataset=cfg.dataset, num_train=cfg.num_train, seed=seed)


def runs(cfg: Config) -> list[RunSpec]:
    specs = [_spec(cfg, "baseline", None, cfg.baseline_batch_size, s) for s in cfg.seeds]
    specs += [_spec(cfg, norm, norm, b, s) for norm in cfg.norms for b in cfg.batch_sizes for s in cfg.seeds]
    return sides.expand(cfg.engine, specs)


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


def _measure(cfg, done: Runs) -> dict:
    """One engine's numbers: its runs per configuration (in seed order) and their spreads."""
    base = done.where(net="baseline", batch=cfg.baseline_batch_size).by_seed()
    m = {"baseline": base, "base_best": spread([best_val(r) for r in base.results]),
         "base_train": spread([r.train_acc_history[-1] if r.status == "finished" else None for r in base.results]),
         "runs": {}, "best": {}, "train": {}}
    for norm in cfg.norms:
        for b in cfg.batch_sizes:
            m["runs"][norm, b] = rs = done.where(net=norm, batch=b).by_seed()
            m["best"][norm, b] = spread([best_val(r) for r in rs.results])
            m["train"][norm, b] = spread([r.train_acc_history[-1] if r.status == "finished" else None
                                          for r in rs.results])
    return m


def _table(cfg, m, engine) -> list:
    eng = {"engine": engine} if cfg.engine == "both" else {}
    rows = [{"net": "baseline", **eng, "batch size": cfg.baseline_batch_size, "best val acc": m["base_best"].mean,
             "best val acc range": [m["base_best"].lo, m["base_best"].hi] if m["base_best"].mean is not None else None,
             "final train acc": m["base_train"].mean, "runs": status_text(m["baseline"], len(cfg.seeds))}]
    for norm in cfg.norms:
        for b in sorted(cfg.batch_sizes):
            best = m["best"][norm, b]
            rows.append({"net": norm, **eng, "batch size": b, "best val acc": best.mean,
                         "best val acc range": [best.lo, best.hi] if best.mean is not None else None,
                         "final train acc": m["train"][norm, b].mean,
                         "runs": status_text(m["runs"][norm, b], len(cfg.seeds))})
    return rows


def _metrics(cfg, m) -> dict:
    sizes = sorted(cfg.batch_sizes)
    out = {"baseline": {"batch_size": cfg.baseline_batch_size, "best_val_acc": m["base_best"].as_dict()}}
    for norm in cfg.norms:
        have = [m["best"][norm, b].mean for b in sizes if m["best"][norm, b].mean is not None]
        out[norm] = {"best_val_acc_by_batch": {str(b): m["best"][norm, b].as_dict() for b in sizes},
                     "final_train_acc_by_batch": {str(b): m["train"][norm, b].as_dict() for b in sizes},
                     "range_over_batch_sizes": max(have) - min(have) if have else None}
    spreads = [x.hi - x.lo for x in m["best"].values() if x.n > 1]
    if spreads:
        out["max_seed_spread_best_val_acc"] = max(spreads)
    return out


def _unbiased_sentence(sizes, numpy_best, torch_best) -> str:
    """The one convention the engines do not share, with the factor and the measured gap at each end of
    the batch sizes: PyTorch's BatchNorm1d updates its running variance with the unbiased batch variance
    (b / (b - 1) times the course's biased one), which moves eval-mode (validation) accuracy."""
    ends = list(dict.fromkeys((sizes[0], sizes[-1])))
    gaps = [abs(torch_best["batchnorm", b].mean - numpy_best["batchnorm", b].mean)
            if None not in (torch_best["batchnorm", b].mean, numpy_best["batchnorm", b].mean) else None
            for b in ends]
    factors = [f"{b / (b - 1):.2f} times" for b in ends]
    factors[0] += " the course's biased one"
    return ("PyTorch's running variance uses the unbiased batch variance, "
            + " and ".join(f"{f} at batch {b}" for f, b in zip(factors, ends))
            + "; with batch norm the engines' best validation accuracies differ by "
            + " and ".join(f"{fmt(g)} at batch {b}" for g, b in zip(gaps, ends)) + ".")


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    shown, cfg = sides.section_config(cfg), sides.resolved(cfg)
    sizes = sorted(cfg.batch_sizes)
    measured = {e: _measure(cfg, rs) for e, rs in sides.split(cfg.engine, done).items()}
    primary = next(iter(measured))
    m = measured[primary]
    metrics = _metrics(cfg, m)
    table = [row for e in measured for row in _table(cfg, measured[e], e)]
    paths = [_figure(cfg, norm, measured, out_dir)[0] for norm in cfg.norms]
    sentences = []
    for norm in cfg.norms:
        means = [m["best"][norm, b].mean for b in sizes]
        trains = [m["train"][norm, b].mean for b in sizes]
        rng = metrics[norm]["range_over_batch_sizes"]
        per = " / ".join(map(str, sizes))
        s = (f"With {LONG[norm]}, at batch sizes {per}, the best validation accuracy is "
             f"{' / '.join(fmt(v) for v in means)}"
             + (f" (means over {len(cfg.seeds)} seeds)" if len(cfg.seeds) > 1 else "")
             + f" and {_trend(means)}" + (f" (range {fmt(rng)})" if rng is not None else "")
             + f"; the training accuracy after the last epoch is {' / '.join(fmt(v) for v in trains)} and "
             + f"{_trend(trains)}. ")
        s += compare(m["best"][norm, sizes[0]], m["base_best"], f"{LONG[norm]} at batch {sizes[0]}",
                     f"the baseline at batch {cfg.baseline_batch_size}", "best validation accuracy")
        sentences.append(s)
    noise = metrics.get("max_seed_spread_best_val_acc")
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
    if cfg.engine == "both":
        t = measured["torch"]
        metrics["torch engine"] = _metrics(cfg, t)
        sentences.append(sides.engines_sentence(
            [("best validation accuracy, baseline at batch " + str(cfg.baseline_batch_size), m["base_best"],
              t["base_best"])]
            + [(f"{LONG[norm]} at batch {b}", m["best"][norm, b], t["best"][norm, b])
               for norm in cfg.norms for b in sizes]))
        if "batchnorm" in cfg.norms:
            sentences.append(_unbiased_sentence(sizes, m["best"], t["best"]))
    answer = " ".join(sentences) + problems_sentence(done, len(runs(cfg)))
    return Section(NAME, TITLE, QUESTION, answer, shown, metrics, table, paths)


def _figure(cfg, norm, measured, out_dir):
    """Training and validation accuracy per epoch for each batch size beside the baseline; one row per engine."""
    title = f"{LONG[norm].capitalize()} and batch size ({cfg.dataset}){sides.title_suffix(cfg.engine)}"
    # One colour per batch size, light (small batch) to dark (large); the baseline grey and dashed.
    import matplotlib
    cmap = matplotlib.colormaps["Blues" if norm == "batchnorm" else "Greens"]
    sizes = sorted(cfg.batch_sizes)
    fig, axes = figures.new_figure(2, len(measured), width=4.8, height=3.6, title=title)
    for row, (engine, m) in enumerate(measured.items()):
        groups = [(f"baseline, batch {cfg.baseline_batch_size}", m["baseline"], None),
                  *((f"{norm}, batch {b}", m["runs"][norm, b], b) for b in sizes)]
        ax_train, ax_val = axes[2 * row], axes[2 * row + 1]
        for label, rs, b in groups:
            base = b is None
            color = (figures.COLORS["baseline"] if base
                     else cmap(0.45 + 0.55 * sizes.index(b) / max(len(sizes) - 1, 1)))
            for ax, attr in ((ax_train, "train_acc_history"), (ax_val, "val_acc_history")):
                figures.band(ax, [(getattr(r, attr), r.status == "diverged") for r in rs.results], label, color,
                             marker="o", linestyle="--" if base else "-")
        on = f" ({sides.LONG[engine]})" if cfg.engine == "both" else ""
        ax_train.set(title="Training accuracy" + on, xlabel="epoch", ylabel="accuracy")
        ax_val.set(title="Validation accuracy" + on, xlabel="epoch", ylabel="accuracy")
        ax_val.legend(loc="lower right")
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.axhline(0.1, color="0.5", lw=0.8, ls=":")
        ax.xaxis.get_major_locator().set_params(integer=True)
    return figures.save(fig, out_dir / f"batch-size-{norm}")
