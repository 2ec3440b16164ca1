"""bn-dropout-order: dropout before a batch-norm layer shifts its input's variance between train and eval.

Source. Xiang Li, Shuo Chen, Xiaolin Hu and Jian Yang (2019), "Understanding the
Disharmony between Dropout and Batch Normalization by Variance Shift",
arXiv:1801.05134 (CVPR 2019). Their argument: in training, dropout (with its
1 / p rescaling) changes the variance of the units it feeds; batch norm's
running variance, accumulated in training, keeps that variance; at test time
dropout is off, the variance of the batch-norm layer's input is different, and
the layer normalizes with the wrong statistics ("variance shift"). Their
experiments are on CIFAR-10/100 with DenseNet, ResNet, ResNeXt and Wide ResNet
(dropout before the last BN layers), and their remedy is to apply dropout only
after all BN layers. We take no number from the paper: our net is not theirs.
For inverted dropout with keep probability p on an input of mean mu and
variance s^2 the training variance is (s^2 + mu^2) / p - mu^2 (our derivation),
so with p = 0.5 the ratio of train to eval variance of the unit itself is at
least 2; after the next affine layer it is diluted, but not removed.

Setup. Fashion-MNIST (flattened, mean subtracted), a 784-100-100-10
``FullyConnectedNet`` with batch norm on both hidden layers (before the ReLU)
and dropout with keep probability 0.5 in three placements
(``dropout_position``): 'before_norm' (affine - dropout - BN - ReLU in every
hidden layer: the pitfall's literal form), 'last_layer' (dropout only after
the last hidden layer's ReLU, so no BN layer ever sees dropped units: Li et
al.'s remedy) and, reported without a verdict, the default 'after_activation'
(dropout after every ReLU, so the second layer's BN sees the first layer's
dropped units). Adam 1e-3, batch 100, 1000 steps on 10,000 images, weight
scale 0.05; three seeds. After training the run's ``measure`` (``variance_shift``
below) forwards the first 2000 test images once in train mode (dropout on,
BN on that batch's statistics) and once in eval mode, and takes, per unit of
the **second** hidden layer's BN input, the ratio of its variance over the 2000
images train / eval, then the median over units (and the same for layer 1,
reported). Layer 2 because it is the first BN layer that dropout can reach in
every placement that has dropout before a BN ('before_norm' and the default);
under 'last_layer' its input has no dropout, so its ratio differs from 1 only
through the first BN layer's batch versus running statistics.

Criteria (fixed before any run; medians over units, then means over the seeds):
(a) |ratio_before - 1| > 0.05 and |ratio_after - 1| <= 0.05 (before: 'before_norm',
after: 'last_layer', layer 2); (b) acc_after >= acc_before (final test accuracy,
eval mode, all 10,000 test images).

Runs: ``{before_norm,last_layer,after_activation}/seed=S``, tagged ``dropout``.
Figure: (left) the median train / eval variance ratio per hidden layer and
placement, mean with the min-max over seeds as error bars; (right) the test
accuracy against the step, mean with a min-max band over seeds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..papers.verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics
from ..summarize import check_common, compare, config_dict, positive, positive_tuple, problems_sentence, \
    spread, status_text
from ._common import curves, final_acc, mean_or_none, per_seed, text as t
from .norm_position import task

NAME = "bn-dropout-order"
TITLE = "Dropout before batch norm: the variance shift (Li, Chen, Hu & Yang 2019)"
QUESTION = ("Does dropout placed before a batch-norm layer make that layer's input variance differ between "
            "training and evaluation, and cost test accuracy against dropout only after the last batch norm?")
SUITE = "pitfalls"

PAPER = Paper(
    authors="Xiang Li, Shuo Chen, Xiaolin Hu, Jian Yang", year=2019,
    title="Understanding the Disharmony between Dropout and Batch Normalization by Variance Shift",
    arxiv="1801.05134", where="sections 3 and 4 (the variance shift; dropout after all BN layers as a remedy)",
    setup=("CIFAR-10 and CIFAR-100 with DenseNet, ResNet, ResNeXt and Wide ResNet, dropout inserted before BN "
           "layers at several drop rates; the variance shift is measured as the ratio of a unit's variance in "
           "train and test mode, and accuracy compared with dropout moved after every BN layer."),
    ours=("Fashion-MNIST, a 784-100-100-10 fc net, BN before each ReLU, dropout keep 0.5 directly before every BN "
          "('before_norm'), only after the last BN ('last_layer'), or after every ReLU (the default, reported); "
          "Adam 1e-3, 1000 steps of batch 100 on 10,000 images; the ratio on 2000 test images; three seeds."))

TOL = 0.05

CLAIMS = (
    Claim("a", "Dropout directly before a BN layer shifts the variance of its input between train and eval mode; "
               "dropout after the last BN does not.",
          "Qualitative (their nets, not ours): the train / test variance ratio departs from 1 when dropout feeds "
          "a BN layer; the shift is absent when dropout follows every BN layer.",
          f"|ratio_before - 1| > {TOL} and |ratio_after - 1| <= {TOL} (median over the second hidden layer's "
          f"units of var_train / var_eval of its BN input, mean over seeds)."),
    Claim("b", "Dropout after the last BN is at least as accurate as dropout before BN.",
          "Qualitative: moving dropout after all BN layers improves their nets' test accuracy.",
          "acc_after >= acc_before (final test accuracy in eval mode, mean over seeds)."),
)

POSITIONS = ("before_norm", "last_layer", "after_activation")
LEGEND = {"before_norm": "dropout before every BN", "last_layer": "dropout after the last BN only",
          "after_activation": "dropout after every ReLU (default)"}
COLORS = {"before_norm": "#d62728", "last_layer": "#1f77b4", "after_activation": "#7f7f7f"}


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100, 100)
    keep: float = 0.5                       # dropout keep probability (Li et al.'s largest drop rate, 0.5)
    weight_scale: float = 0.05
    num_train: int = 10000
    steps: int = 1000
    batch_size: int = 100
    learning_rate: float = 1e-3
    update_rule: str = "adam"
    eval_every: int = 200
    num_test: int = 10000
    measure_samples: int = 2000             # test images forwarded for the variance ratio
    layer: int = 2                          # the BN layer of the criterion (1-based)
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "steps", "batch_size", "eval_every", "num_test", "measure_samples", "layer",
                 integer=True)
        positive(self, "weight_scale", "learning_rate")
        if not 0 < self.keep < 1:
            raise ValueError(f"keep={self.keep!r}: a dropout keep probability strictly between 0 and 1")
        if len(self.hidden_dims) < 2 or self.layer > len(self.hidden_dims):
            raise ValueError(f"layer={self.layer} must name one of the {len(self.hidden_dims)} hidden layers, "
                             f"and the net needs at least 2 (hidden_dims={self.hidden_dims!r})")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")
        if self.measure_samples > self.num_test or self.measure_samples < 2:
            raise ValueError(f"measure_samples={self.measure_samples} must be in 2..num_test={self.num_test}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=1000, steps=100, eval_every=50, num_test=1000,
                               measure_samples=500, seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    specs = []
    for pos in POSITIONS:
        kw = {"hidden_dims": list(cfg.hidden_dims), "normalization": "batchnorm", "weight_scale": cfg.weight_scale,
              "dropout_keep_ratio": cfg.keep, "dropout_position": pos}
        tk = {**task(cfg), "measure": {"fn": f"{__name__}:variance_shift",
                                       "kwargs": {"samples": cfg.measure_samples}}}
        specs += [RunSpec(experiment=NAME, name=f"{pos}/seed={s}", model="fc", model_kwargs=kw, dataset=cfg.dataset,
                          num_train=cfg.num_train, num_test=cfg.num_test, seed=s, tags={"dropout": pos}, task=tk)
                  for s in cfg.seeds]
    return specs


def variance_shift(model, data, samples: int) -> dict:
    """Per hidden layer, the median over units of var_train / var_eval of the BN layer's input on the first
    ``samples`` test images (train mode: dropout on, BN on the batch's statistics; eval mode: neither).
    The model is left unchanged (``norm_inputs`` restores the statistics and the generators)."""
    X = np.asarray(data["X_test"][:samples]).reshape(min(samples, len(data["X_test"])), -1)
    train, evl = model.norm_inputs(X, "train"), model.norm_inputs(X, "test")
    out = {"median_ratio": [], "q25": [], "q75": []}
    for a, b in zip(train, evl):
        va, vb = np.var(a.astype(np.float64), axis=0), np.var(b.astype(np.float64), axis=0)
        ratio = va[vb > 1e-12] / vb[vb > 1e-12]       # a unit constant in eval mode has no ratio
        q25, med, q75 = (np.percentile(ratio, [25, 50, 75]).tolist() if ratio.size else [None] * 3)
        out["median_ratio"].append(med)
        out["q25"].append(q25)
        out["q75"].append(q75)
    return out


def ratio_of(layer: int):
    """A result's median ratio at ``layer`` (1-based), or None."""
    def of(r):
        m = r.extras.get("measure") or {}
        vals = m.get("median_ratio") or []
        return vals[layer - 1] if len(vals) >= layer else None
    return of


def criteria(m: dict) -> dict:
    """``{key: [checks]}`` from the means over seeds ``m[(quantity, position)]`` (None: not measured),
    quantity 'ratio' or 'acc', position 'before' or 'after'."""
    rb, ra, ab, aa = m.get(("ratio", "before")), m.get(("ratio", "after")), m.get(("acc", "before")), \
        m.get(("acc", "after"))
    return {"a": [None if rb is None else bool(abs(rb - 1) > TOL), None if ra is None else bool(abs(ra - 1) <= TOL)],
            "b": [None if ab is None or aa is None else bool(aa >= ab)]}


def findings(m: dict) -> list[Finding]:
    checks = criteria(m)
    ours = {"a": f"ratio_before = {t(m.get(('ratio', 'before')))}, ratio_after = {t(m.get(('ratio', 'after')))} "
                 f"(tolerance {TOL}).",
            "b": f"acc_before = {t(m.get(('acc', 'before')))}, acc_after = {t(m.get(('acc', 'after')))}."}
    return [Finding(c, ours[c.key], verdict(checks[c.key])) for c in CLAIMS]


# --------------------------------------------------------------------------- figure and analysis

def _figure(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    dims = "-".join(map(str, cfg.hidden_dims))
    fig, (ax_r, ax_acc) = figures.new_figure(2, 1, width=4.6, height=3.5,
                                             title=f"Variance shift: fc {dims}, dropout keep {cfg.keep}, "
                                                   f"on {cfg.dataset}")
    layers = np.arange(1, len(cfg.hidden_dims) + 1)
    for k, pos in enumerate(POSITIONS):
        rows = [[ratio_of(i)(r) for i in layers] for r in groups[pos].results if r.status == "finished"]
        rows = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
        if rows.size:
            mean, lo, hi = (np.array([f(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan for c in rows.T])
                            for f in (np.mean, np.min, np.max))
            x = layers + (k - 1) * 0.12
            ax_r.errorbar(x, mean, yerr=[mean - lo, hi - mean], fmt="o-", color=COLORS[pos], capsize=3,
                          label=LEGEND[pos])
        curves(ax_acc, groups[pos], LEGEND[pos], COLORS[pos])
    ax_r.axhline(1.0, color="black", lw=0.8)
    for y in (1 - TOL, 1 + TOL):
        ax_r.axhline(y, color="black", lw=0.6, ls=":")
    ax_r.set_xticks(layers)
    ax_r.set(title="median over units of var(train) / var(eval) of the BN input", xlabel="hidden layer",
             ylabel="variance ratio (train / eval)")
    ax_acc.set(title="test accuracy (eval mode)", xlabel="step", ylabel="test accuracy")
    lo = [min(r.val_acc_history[1:] or [1]) for pos in POSITIONS for r in groups[pos].results if r.val_acc_history]
    if lo:
        ax_acc.set_ylim(bottom=max(0.0, min(lo) - 0.02))
    figures.shared_legend(fig, [ax_acc])
    return figures.save(fig, stem)


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    groups = {pos: done.where(dropout=pos).by_seed() for pos in POSITIONS}
    ratio = ratio_of(cfg.layer)
    per = {(q, pos): per_seed(groups[pos], cfg.seeds, final_acc if q == "acc" else ratio)
           for q in ("acc", "ratio") for pos in POSITIONS}
    name = {"before": "before_norm", "after": "last_layer"}
    m = {(q, side): mean_or_none(per[(q, pos)]) for q in ("acc", "ratio") for side, pos in name.items()}
    found = findings(m)
    missing = lambda rs: [None] * (len(cfg.seeds) - len(rs))
    sp = {(q, pos): spread([(final_acc if q == "acc" else ratio)(r) if r.status == "finished" else None
                            for r in groups[pos].results] + missing(groups[pos]))
          for q in ("acc", "ratio") for pos in POSITIONS}
    answer = " ".join([
        f"The median train / eval variance ratio of layer {cfg.layer}'s BN input is "
        + "; ".join(f"{sp[('ratio', pos)].text()} with {LEGEND[pos]}" for pos in POSITIONS) + ".",
        compare(sp[("acc", "last_layer")], sp[("acc", "before_norm")], LEGEND["last_layer"], LEGEND["before_norm"],
                "final test accuracy"),
        "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + ".",
    ]) + problems_sentence(done, len(runs(cfg)))
    table = [{"dropout": pos, f"median_var_ratio_layer{cfg.layer}": sp[("ratio", pos)].mean,
              "ratio_range": None if sp[("ratio", pos)].mean is None else [sp[("ratio", pos)].lo,
                                                                            sp[("ratio", pos)].hi],
              "final_test_acc": sp[("acc", pos)].mean,
              "acc_range": None if sp[("acc", pos)].mean is None else [sp[("acc", pos)].lo, sp[("acc", pos)].hi],
              "runs": status_text(groups[pos], len(cfg.seeds))} for pos in POSITIONS]
    metrics = {"verdicts": verdict_metrics(found), "checks": criteria(m),
               "criteria_inputs": {"ratio_before": m[("ratio", "before")], "ratio_after": m[("ratio", "after")],
                                   "acc_before": m[("acc", "before")], "acc_after": m[("acc", "after")],
                                   "layer": cfg.layer, "tol": TOL, "per_seed": {f"{q}/{pos}": v for (q, pos), v
                                                                               in per.items()}},
               "conditions": {f"{q}/{pos}": s.as_dict() for (q, pos), s in sp.items()}}
    figs = [_figure(cfg, groups, out_dir / "bn-dropout-order")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
