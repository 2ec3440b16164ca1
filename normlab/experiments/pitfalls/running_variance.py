"""running-variance: the course's biased running variance against PyTorch's unbiased one, at batch 4.

Source of the belief: the PyTorch documentation of ``torch.nn.BatchNorm1d`` (2024): the batch's
variance is the biased estimator in the forward pass, but the running variance kept for evaluation
is computed with the unbiased one. The CS231n assignment's ``batchnorm_forward`` keeps the biased
batch variance in its running average; Ioffe & Szegedy (2015, arXiv:1502.03167, Algorithm 2) use
the unbiased ``m / (m - 1)`` correction for inference. Users take the two for interchangeable.

Why it matters at a small batch: for m independent values of variance sigma^2 the biased batch
variance (divide by m) has expectation (m - 1) / m * sigma^2, so its running average settles near
3/4 sigma^2 at m = 4, and normalizing a test input by it divides by sqrt(3/4) sigma: the eval-mode
normalized output has standard deviation sqrt(4/3) ~ 1.155 instead of 1. The unbiased one (divide
by m - 1) averages to sigma^2, standard deviation 1.

What is measured: 784-128-128-10 fully connected batch-norm nets on Fashion-MNIST (flattened, mean
subtracted), 2048 training images, Adam 1e-3, batch 4, 2 epochs = 1024 steps, 3 seeds; ``biased``
(the course's rule, momentum 0.9) and ``unbiased`` (``convention='torch'``, momentum 0.1: the
same average). Both normalize the batch with its biased variance in training, so both learn the
same weights from the same start and batches; only the running variance differs. After training
``measure`` forwards the test set in eval mode and takes the last batch-norm layer's normalized
input ``(a - running_mean) / sqrt(running_var + eps)`` (before gamma and beta, so that the
learned scale does not enter): its standard deviation over the test set per unit, median over
units. The eval-mode test accuracies of both are reported, not checked.

Observed (and why the last layer is not the first): with two batch-norm layers the widening
compounds. The first layer's normalized output is sqrt(4/3) wider with the biased running
variance, so the second layer's input is wider too and its biased running variance (gathered in
training, where batch statistics were used) is still 3/4 of the unbiased one: the last layer's
ratio comes out near 4/3, not sqrt(4/3). The criterion is kept as fixed (on the last layer); the
first layer's median std is measured beside it (``median_std_first``, not a check) to show the
per-layer factor.
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
from ..summarize import check_common, compare, config_dict, positive, positive_tuple, problems_sentence, spread, \
    status_text
from ._common import bn_runs, condition_mean, eval_normalized, final_acc, measured, seed_bars, seed_values, text

NAME = "running-variance"
TITLE = "Biased (course) against unbiased (PyTorch) running variance at batch size 4"
QUESTION = ("At batch size 4, does the course's biased running variance make the eval-mode normalized outputs "
            "sqrt(4/3) ~ 1.155 times wider than PyTorch's unbiased one, whose outputs have standard deviation 1?")
SUITE = "pitfalls"

PAPER = Paper(
    authors="PyTorch", year=2024, title="torch.nn.BatchNorm1d documentation", arxiv="",
    where="BatchNorm1d: 'the running sum is computed with the unbiased estimator' (the note on variance)",
    setup=("PyTorch keeps the running variance with the unbiased estimator var * m / (m - 1); the CS231n "
           "assignment keeps the biased batch variance; at batch m the biased one averages to (m-1)/m sigma^2."),
    ours=("784-128-128-10 batch-norm nets, 2048 Fashion-MNIST images, Adam 1e-3, batch 4, 1024 steps, 3 seeds, "
          "biased and unbiased running variance (same weights); the last batch-norm layer's eval-mode normalized "
          "output over the test set."))

M = 4
RATIO = math.sqrt(M / (M - 1))
TOL_RATIO, TOL_ONE = 0.05, 0.1
CONDITIONS = (("biased", {"convention": "course", "momentum": 0.9}),
              ("unbiased", {"convention": "torch", "momentum": 0.1}))

CLAIMS = (
    Claim("a", "At batch 4 the biased running variance widens the eval-mode outputs by sqrt(4/3).",
          "Arithmetic, not an experiment: E[biased batch variance] = (m-1)/m sigma^2, so the outputs' std is "
          "sqrt(m/(m-1)) = 1.155 at m = 4.",
          f"std_biased within {TOL_RATIO} of sqrt(4/3) x std_unbiased (median over units of the last batch-norm "
          f"layer's eval-mode normalized output's std over the test set, mean over seeds)."),
    Claim("b", "With the unbiased running variance the eval-mode outputs have unit variance.",
          "The unbiased estimator averages to sigma^2.",
          f"|std_unbiased - 1| <= {TOL_ONE}."),
)


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (128, 128)
    weight_scale: float = 0.05
    num_train: int = 2048
    num_epochs: int = 2
    batch_size: int = M            # the claim's batch: sqrt(4/3) is for m = 4
    learning_rate: float = 1e-3
    update_rule: str = "adam"
    num_test: int = 10000
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "num_epochs", "batch_size", "num_test", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.batch_size != M:
            raise ValueError(f"batch_size must be {M} (the claim's sqrt(4/3) is for batch 4), got {self.batch_size}")
        if self.num_train < self.batch_size:
            raise ValueError(f"num_train={self.num_train} is below batch_size={self.batch_size}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=256, num_epochs=2, num_test=1000,
                               seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    return bn_runs(NAME, cfg, CONDITIONS, "variance", "normlab.experiments.pitfalls.running_variance:measure")


def measure(model, data) -> dict:
    """The last batch-norm layer's eval-mode normalized output over the test set: its std per unit
    and the median over units."""
    layers = eval_normalized(model, data["X_test"])
    std = layers[-1].std(axis=0)
    return {"unit_std": std.tolist(), "median_std": float(np.median(std)),
            "median_std_first": float(np.median(layers[0].std(axis=0)))}


def criteria(std_biased, std_unbiased) -> dict:
    return {"a": [None if std_biased is None or std_unbiased is None
                  else bool(abs(std_biased - RATIO * std_unbiased) <= TOL_RATIO)],
            "b": [None if std_unbiased is None else bool(abs(std_unbiased - 1) <= TOL_ONE)]}


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    groups = {k: done.where(variance=k).by_seed() for k, _ in CONDITIONS}
    med = lambda r: measured(r, "median_std")
    stds = {k: seed_values(rs, cfg.seeds, med) for k, rs in groups.items()}
    accs = {k: seed_values(rs, cfg.seeds, final_acc) for k, rs in groups.items()}
    s_b, s_u = (condition_mean(groups[k], cfg.seeds, med) for k in ("biased", "unbiased"))
    checks = criteria(s_b, s_u)
    ratio = None if s_b is None or s_u is None else s_b / s_u
    first = lambda r: measured(r, "median_std_first")
    f_b, f_u = (condition_mean(groups[k], cfg.seeds, first) for k in ("biased", "unbiased"))
    ratio_first = None if f_b is None or f_u is None else f_b / f_u
    ours = {"a": f"std_biased = {text(s_b)}, std_unbiased = {text(s_u)}, ratio {text(ratio)} (sqrt(4/3) = "
                 f"{RATIO:.3f}; std_biased - sqrt(4/3) x std_unbiased = "
                 f"{text(None if ratio is None else s_b - RATIO * s_u)}, allowed {TOL_RATIO} either way).",
            "b": f"std_unbiased = {text(s_u)} (allowed 1 +- {TOL_ONE})."}
    found = [Finding(c, ours[c.key], verdict(checks[c.key])) for c in CLAIMS]
    ss, sa = {k: spread(v) for k, v in stds.items()}, {k: spread(v) for k, v in accs.items()}
    answer = (f"At batch {M} the eval-mode normalized output of the last batch-norm layer has a median std of "
              f"{ss['biased'].text()} with the biased running variance and {ss['unbiased'].text()} with the "
              f"unbiased one (ratio {text(ratio)}; sqrt(4/3) = {RATIO:.3f}; in the first batch-norm layer the ratio "
              f"is {text(ratio_first)}, and the two layers' factors compound). "
              + compare(sa["unbiased"], sa["biased"], "the unbiased running variance", "the biased one",
                        "eval-mode test accuracy") + " "
              + "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + "."
              + problems_sentence(done, len(runs(cfg))))
    table = [{"running_variance": k, "median_unit_std": ss[k].mean,
              "median_unit_std_range": None if ss[k].mean is None else [ss[k].lo, ss[k].hi],
              "test_acc": sa[k].mean, "test_acc_range": None if sa[k].mean is None else [sa[k].lo, sa[k].hi],
              "runs": status_text(groups[k], len(cfg.seeds))} for k, _ in CONDITIONS]
    metrics = {"verdicts": verdict_metrics(found), "checks": checks,
               "criteria_inputs": {"std_biased": s_b, "std_unbiased": s_u, "ratio": ratio, "sqrt_4_3": RATIO,
                                   "first_layer": {"std_biased": f_b, "std_unbiased": f_u, "ratio": ratio_first},
                                   "tol_ratio": TOL_RATIO, "tol_one": TOL_ONE},
               "per_seed": {"median_std": stds, "test_acc": accs}}
    figs = [_figure(cfg, groups, stds, accs, out_dir / "running-variance")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))


def _figure(cfg, groups, stds, accs, stem):
    fig, (ax0, ax1, ax2) = figures.new_figure(3, 1, width=3.8, height=3.5,
                                              title=f"Running variance at batch {M}, last batch-norm layer, "
                                                    f"on {cfg.dataset}")
    units = {k: seed_values(rs, cfg.seeds, lambda r: measured(r, "unit_std")) for k, rs in groups.items()}
    for b, u in zip(units["biased"], units["unbiased"]):
        if b and u:
            ax0.plot(u, b, ".", ms=2.5, color="#1f77b4")
    lo, hi = ax0.get_xlim()
    ax0.plot([lo, hi], [lo, hi], "k:", lw=0.8, label="equal")
    ax0.plot([lo, hi], [RATIO * lo, RATIO * hi], "r-", lw=0.8, label="x sqrt(4/3)")
    ax0.set(title="per unit (all seeds)", xlabel="std, unbiased running var", ylabel="std, biased running var")
    ax0.legend(loc="upper left")
    colors = ["#d62728", "#2ca02c"]
    seed_bars(ax1, ["biased\n(course)", "unbiased\n(PyTorch)"], [stds["biased"], stds["unbiased"]],
              "median over units of the std", colors=colors)
    ax1.axhline(1.0, color="black", lw=0.8, ls=":")
    ax1.axhline(RATIO, color="red", lw=0.8, ls="-")
    ax1.set_title("eval-mode normalized output")
    seed_bars(ax2, ["biased\n(course)", "unbiased\n(PyTorch)"], [accs["biased"], accs["unbiased"]],
              "eval-mode test accuracy", colors=colors)
    ax2.set_title("test accuracy (reported, not checked)")
    return figures.save(fig, stem)
