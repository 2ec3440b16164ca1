"""bn-before-after-relu: batch norm before or after the ReLU, five seeds each.

Source of the belief. Ioffe & Szegedy (2015), "Batch Normalization: Accelerating
Deep Network Training by Reducing Internal Covariate Shift", arXiv:1502.03167,
section 3.2, put the normalization immediately before the nonlinearity (they
normalize ``x = Wu + b``, arguing that its distribution is more Gaussian-like
than that of the layer's input). Practitioners often claim the opposite order,
ReLU then batch norm, trains better; the claim is argued in forum threads, not
in a paper with a controlled comparison, so we test the weaker statement that
is testable: the placement makes no difference beyond seed noise.

Setup. Fashion-MNIST (flattened, mean image subtracted), a 784-100-100-10
``FullyConnectedNet`` with batch norm on both hidden layers, either
``affine - BN - ReLU`` (``norm_position="before"``, the paper's) or
``affine - ReLU - BN`` (``norm_position="after"``); the biases of the affine
layers are kept in both (after the ReLU the bias is no longer redundant). Adam
at learning rate 1e-3, batch 100, 1000 steps on 10,000 training images (10
epochs), weight scale 0.05 (about sqrt(2 / 784), He's scale for the first
layer); the test accuracy on all 10,000 test images every 200 steps. These
sizes were chosen for the budget (under 3 CPU-seconds a run) and because the
paper's placement trains sensibly with them: a pilot of 1500 steps reached
about 85 % test accuracy and so did 1000, so the budget took the shorter; the
same settings for both placements, nothing tuned per placement.
Five seeds per placement (seed s: the same initial weights and the same
mini-batch order for both placements).

Criterion (fixed before any run): with d = mean(acc_before) - mean(acc_after)
over the seeds (final test accuracy) and SE = sqrt(s_b^2 / n_b + s_a^2 / n_a)
the standard error of that difference (s the sample standard deviation over
seeds, ddof 1), the claim holds when |d| <= 2 SE. A placement is measured only
when all its seeds finished.

Runs: ``before/seed=S`` and ``after/seed=S``, tagged ``position``. Figure: test
accuracy against the step, both placements as a mean with a min-max band over
seeds, and each seed's final accuracy with the mean and +-2 SE per placement.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..papers.verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics
from . import _common
from ._common import curves, final_acc, mean_or_none, per_seed, text as t
from ..summarize import check_common, compare, config_dict, fmt, positive, positive_tuple, problems_sentence, \
    spread, status_text

NAME = "bn-before-after-relu"
TITLE = "Batch norm before or after the ReLU"
QUESTION = ("Does it matter whether batch norm sits before the ReLU (Ioffe & Szegedy) or after it (a common "
            "practitioners' claim), beyond the seed-to-seed noise?")
SUITE = "pitfalls"

PAPER = Paper(
    authors="Sergey Ioffe, Christian Szegedy", year=2015,
    title="Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
    arxiv="1502.03167", where="section 3.2 (where the transform goes: before the nonlinearity)",
    setup=("The paper adds batch norm immediately before each nonlinearity, normalizing x = Wu + b (the bias "
           "then redundant); it reports no comparison with the opposite order. The opposite order (ReLU, then "
           "batch norm) is a practitioners' recommendation from forum threads, without a controlled study."),
    ours=("Fashion-MNIST, a 784-100-100-10 fc net with batch norm on both hidden layers, before or after the ReLU; "
          "Adam 1e-3, batch 100, 1000 steps on 10,000 images; final test accuracy on the 10,000 test images; five "
          "seeds per placement (same initial weights and batch order across placements)."))

CLAIMS = (
    Claim("a", "The placement of batch norm (before or after the ReLU) makes no difference beyond seed noise.",
          "No number: the paper places it before the nonlinearity by argument; the opposite claim has no "
          "controlled measurement either.",
          "|mean(acc_before) - mean(acc_after)| <= 2 x the standard error of the difference of the means "
          "(final test accuracy over the 5 seeds, sample standard deviations)."),
)

POSITIONS = ("before", "after")
LEGEND = {"before": "BN before ReLU (paper)", "after": "BN after ReLU"}
COLORS = {"before": "#1f77b4", "after": "#d62728"}


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100, 100)
    weight_scale: float = 0.05              # about sqrt(2 / 784), He's scale for the first layer
    num_train: int = 10000
    steps: int = 1000                       # 10 epochs of 100 batches
    batch_size: int = 100
    learning_rate: float = 1e-3
    update_rule: str = "adam"
    eval_every: int = 200
    num_test: int = 10000
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)   # the criterion needs a standard deviation: at least 2

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "steps", "batch_size", "eval_every", "num_test", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")
        if len(self.seeds) < 2:
            raise ValueError(f"seeds={self.seeds!r}: the standard error needs at least 2 seeds per placement")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=1000, steps=100, eval_every=50, num_test=1000,
                               seeds=cfg.seeds[:2])


def task(cfg, steps=None) -> dict:
    """The step-wise task of these recipes' runs (``cfg``: any Config with these fields)."""
    return _common.task(steps or cfg.steps, cfg.batch_size, cfg.learning_rate, cfg.update_rule, cfg.eval_every)


def runs(cfg: Config) -> list[RunSpec]:
    return [RunSpec(experiment=NAME, name=f"{pos}/seed={s}", model="fc",
                    model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": "batchnorm",
                                  "norm_position": pos, "weight_scale": cfg.weight_scale},
                    dataset=cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, seed=s,
                    tags={"position": pos}, task=task(cfg))
            for pos in POSITIONS for s in cfg.seeds]


def difference(before, after) -> dict | None:
    """d = mean(before) - mean(after) and the standard error of that difference (sample std, ddof 1)."""
    if before is None or after is None:
        return None
    d = float(np.mean(before) - np.mean(after))
    se = math.sqrt(np.var(before, ddof=1) / len(before) + np.var(after, ddof=1) / len(after))
    return {"d": d, "se": se, "two_se": 2 * se}


def criteria(acc: dict) -> dict:
    """``{"a": [check]}`` from the per-seed final accuracies ``acc[position]`` (None: not measured)."""
    diff = difference(acc.get("before"), acc.get("after"))
    return {"a": [None if diff is None else bool(abs(diff["d"]) <= diff["two_se"])]}


def findings(acc: dict) -> list[Finding]:
    diff = difference(acc.get("before"), acc.get("after"))
    ours = (f"mean acc_before = {t(mean_or_none(acc.get('before')))}, mean acc_after = "
            f"{t(mean_or_none(acc.get('after')))}; d = before - after = {t(diff and diff['d'], 4)}, "
            f"2 SE = {t(diff and diff['two_se'], 4)}.")
    return [Finding(CLAIMS[0], ours, verdict(criteria(acc)["a"]))]


# --------------------------------------------------------------------------- figure and analysis

def _figure(cfg: Config, groups: dict, acc: dict, stem: Path) -> list[Path]:
    dims = "-".join(map(str, cfg.hidden_dims))
    fig, (ax_curve, ax_seed) = figures.new_figure(2, 1, width=4.6, height=3.4, width_ratios=[1.6, 1],
                                                  title=f"BN before vs after ReLU: fc {dims} on {cfg.dataset}")
    for pos in POSITIONS:
        curves(ax_curve, groups[pos], LEGEND[pos], COLORS[pos])
    ax_curve.set(title="test accuracy during training", xlabel="step", ylabel="test accuracy")
    lo = [min(r.val_acc_history[1:] or [1]) for r in groups["before"].results + groups["after"].results
          if r.val_acc_history]
    if lo:
        ax_curve.set_ylim(bottom=max(0.0, min(lo) - 0.02))
    for k, pos in enumerate(POSITIONS):
        vals = [final_acc(r) for r in groups[pos].results]
        vals = [v for v in vals if v is not None]
        ax_seed.plot([k] * len(vals), vals, "o", color=COLORS[pos], alpha=0.7)
        if len(vals) >= 2:
            se = float(np.std(vals, ddof=1) / math.sqrt(len(vals)))
            ax_seed.errorbar([k + 0.15], [np.mean(vals)], yerr=[2 * se], fmt="s", color="black", capsize=4)
    ax_seed.set_xticks([0, 1], ["before", "after"])
    ax_seed.set_xlim(-0.5, 1.6)
    ax_seed.set(title="final accuracy per seed (mean +- 2 SE)", xlabel="BN placement", ylabel="test accuracy")
    figures.shared_legend(fig, [ax_curve])
    return figures.save(fig, stem)


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    groups = {pos: done.where(position=pos).by_seed() for pos in POSITIONS}
    acc = {pos: per_seed(rs, cfg.seeds) for pos, rs in groups.items()}
    found = findings(acc)
    diff = difference(acc["before"], acc["after"])
    sp = {pos: spread([final_acc(r) for r in rs.results] + [None] * (len(cfg.seeds) - len(rs)))
          for pos, rs in groups.items()}
    tail = ("not measured" if diff is None else
            f"d = before - after = {fmt(diff['d'], 4)} against 2 SE = {fmt(diff['two_se'], 4)}")
    answer = (compare(sp["before"], sp["after"], "BN before the ReLU", "BN after the ReLU", "final test accuracy")
              + f" The difference of the means is {tail}; verdict ({found[0].claim.key}) {found[0].verdict}."
              + problems_sentence(done, len(runs(cfg))))
    table = [{"position": pos, "final_test_acc": sp[pos].mean,
              "final_test_acc_range": None if sp[pos].mean is None else [sp[pos].lo, sp[pos].hi],
              "std_over_seeds": None if acc[pos] is None else float(np.std(acc[pos], ddof=1)),
              "runs": status_text(groups[pos], len(cfg.seeds))} for pos in POSITIONS]
    metrics = {"verdicts": verdict_metrics(found), "checks": criteria(acc),
               "criteria_inputs": {"acc_before": acc["before"], "acc_after": acc["after"], "difference": diff},
               "conditions": {pos: sp[pos].as_dict() for pos in POSITIONS}}
    figs = [_figure(cfg, groups, acc, out_dir / "bn-before-after-relu")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
