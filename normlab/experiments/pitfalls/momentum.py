"""momentum-convention: the course's ``momentum=0.9`` and PyTorch's ``momentum=0.1`` are one rule, written twice.

Source of the belief: the PyTorch documentation of ``torch.nn.BatchNorm1d`` (2024) says in a note
that its momentum differs from the optimizer's convention: the running statistic is updated as
``(1 - momentum) * running + momentum * batch``, momentum 0.1 by default, and the running
variance is computed with the unbiased estimator. The CS231n assignment's ``batchnorm_forward``
(its template and notebook, 2017-2024) writes ``running = momentum * running + (1 - momentum) *
batch`` with momentum 0.9 and the biased batch variance. Same average, opposite meaning of the
number, so passing PyTorch's 0.1 into the course's rule makes the running statistics weigh the
LAST batch 0.9: they follow the last batch instead of averaging.

What is measured: 784-128-128-10 fully connected batch-norm nets on Fashion-MNIST (flattened,
mean subtracted), 4096 training images, Adam 1e-3, batch 8 (a small batch makes one batch's
statistics noisy, so following the last batch shows; the brief's batch), 2 epochs = 1024 steps,
3 seeds, three conditions from the same start and the same batches (training itself never reads
the running statistics, so all three learn the same weights): ``course`` (course rule, 0.9),
``torch`` (``convention='torch'``, 0.1) and ``mistake`` (course rule, 0.1). After training the
``measure`` function returns the running statistics and PreciseBN's target (Wu & Johnson 2021,
arXiv:2105.07576): the exact population mean and variance of each batch-norm layer's input over
the 4096 training images, the layers below normalized with theirs.

Like with like (claim a): PyTorch's rule stores ``var_batch * m / (m - 1)`` and starts the running
variance at 1, the course's stores ``var_batch`` and starts at 0. With a fixed batch m the factor
is a constant, so the course's running variance times m / (m - 1) = 8/7 is compared with PyTorch's;
the different starts weigh 0.9^1024 (about 1e-47) after training. Running means are compared as
they are. Distance (claim b): the root mean square over all batch-norm units of (running mean -
population mean) / population std.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..papers.verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics
from ..summarize import check_common, compare, config_dict, positive, positive_tuple, problems_sentence, spread, \
    status_text
from ._common import bn_runs, condition_mean, final_acc, gt, measured, population_stats, seed_bars, seed_values, text

NAME = "momentum-convention"
TITLE = "Batch norm's momentum: the course's 0.9 on the old value, PyTorch's 0.1 on the new batch"
QUESTION = ("Are the course's momentum 0.9 and PyTorch's momentum 0.1 the same running average, and what does "
            "passing PyTorch's 0.1 into the course's rule do to the running statistics and the test accuracy?")
SUITE = "pitfalls"

PAPER = Paper(
    authors="PyTorch", year=2024, title="torch.nn.BatchNorm1d documentation; CS231n assignment 2 batchnorm_forward",
    arxiv="", where="BatchNorm1d: the note on momentum and the unbiased running variance",
    setup=("PyTorch: running = (1 - momentum) * running + momentum * batch, momentum 0.1, unbiased running variance "
           "starting at 1. CS231n: running = momentum * running + (1 - momentum) * batch, momentum 0.9, biased, "
           "starting at 0."),
    ours=("784-128-128-10 batch-norm nets, 4096 Fashion-MNIST images, Adam 1e-3, batch 8, 1024 steps, 3 seeds: "
          "course 0.9, torch 0.1 and the mistake (course rule with 0.1), same weights; running statistics against "
          "the exact population statistics of the training set (PreciseBN)."))

RTOL = 1e-6
CONDITIONS = (("course", {"convention": "course", "momentum": 0.9}),
              ("torch", {"convention": "torch", "momentum": 0.1}),
              ("mistake", {"convention": "course", "momentum": 0.1}))
LABELS = {"course": "course, 0.9", "torch": "PyTorch, 0.1", "mistake": "course rule, 0.1 (mistake)"}

CLAIMS = (
    Claim("a", "The course's momentum 0.9 and PyTorch's 0.1 are the same rule.",
          "The documentation's update rule with 0.1 on the new batch equals the course's with 0.9 on the old value.",
          f"Running means equal, and course running var x m/(m-1) equal to PyTorch's, to {RTOL:g} relative "
          f"(max over units, layers and seeds) after training."),
    Claim("b", "Passing PyTorch's 0.1 into the course's convention makes the running statistics follow the last "
               "batch.",
          "No number: with 0.1 on the old value the running mean is 0.9 times the last batch's.",
          "Distance of the running mean from the population mean (PreciseBN) larger with the mistake than with "
          "the course's 0.9; eval test accuracy with the mistake < with the course's 0.9 at batch 8 (means over "
          "3 seeds)."),
)


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (128, 128)
    weight_scale: float = 0.05
    num_train: int = 4096
    num_epochs: int = 2
    batch_size: int = 8
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
        if not 2 <= self.batch_size <= self.num_train:
            raise ValueError(f"batch_size={self.batch_size} must lie in 2..num_train={self.num_train}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=512, num_epochs=4, num_test=1000,
                               seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    return bn_runs(NAME, cfg, CONDITIONS, "rule", "normlab.experiments.pitfalls.momentum:measure")


def measure(model, data) -> dict:
    """Running statistics, the population statistics of the training set and the distance
    RMS((running mean - population mean) / population std) over all batch-norm units."""
    pop = population_stats(model, data["X_train"])
    stats = model.state_arrays()
    z = [(stats[f"running_mean{i}"] - m) / np.sqrt(v + 1e-5) for i, (m, v) in enumerate(pop, start=1)]
    return {"running_mean": [stats[f"running_mean{i}"].tolist() for i in range(1, len(pop) + 1)],
            "running_var": [stats[f"running_var{i}"].tolist() for i in range(1, len(pop) + 1)],
            "population_mean": [m.tolist() for m, _ in pop],
            "distance": float(np.sqrt(np.mean(np.concatenate(z) ** 2)))}


def rule_gap(course, torch, m: int) -> float | None:
    """Max relative difference between two runs' running statistics (course var x m/(m-1) against
    torch's); ``course``, ``torch`` are ``measure`` dicts or None."""
    if course is None or torch is None:
        return None
    gaps = []
    for key, factor in (("running_mean", 1.0), ("running_var", m / (m - 1))):
        for a, b in zip(course[key], torch[key]):
            a, b = np.asarray(a) * factor, np.asarray(b)
            gaps.append(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
    return float(max(gaps))


def criteria(gap, dist_mistake, dist_course, acc_mistake, acc_course) -> dict:
    return {"a": [None if gap is None else bool(gap <= RTOL)],
            "b": [gt(dist_mistake, dist_course), gt(acc_course, acc_mistake)]}


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    groups = {label: done.where(rule=label).by_seed() for label, _ in CONDITIONS}
    whole = lambda r: measured(r, "running_mean") and r.extras["measure"]
    course_m, torch_m = (seed_values(groups[k], cfg.seeds, whole) for k in ("course", "torch"))
    gaps = [rule_gap(a or None, b or None, cfg.batch_size) for a, b in zip(course_m, torch_m)]
    gap = None if any(g is None for g in gaps) else max(gaps)
    dist = lambda r: measured(r, "distance")
    dists = {k: seed_values(rs, cfg.seeds, dist) for k, rs in groups.items()}
    accs = {k: seed_values(rs, cfg.seeds, final_acc) for k, rs in groups.items()}
    d_mean = {k: condition_mean(rs, cfg.seeds, dist) for k, rs in groups.items()}
    a_mean = {k: condition_mean(rs, cfg.seeds, final_acc) for k, rs in groups.items()}
    checks = criteria(gap, d_mean["mistake"], d_mean["course"], a_mean["mistake"], a_mean["course"])
    ours = {"a": f"max relative difference {text(gap)} (allowed {RTOL:g}).",
            "b": (f"distance from the population mean: {text(d_mean['mistake'])} with the mistake, "
                  f"{text(d_mean['course'])} with 0.9; eval test accuracy {text(a_mean['mistake'])} with the mistake, "
                  f"{text(a_mean['course'])} with 0.9.")}
    found = [Finding(c, ours[c.key], verdict(checks[c.key])) for c in CLAIMS]
    sd, sa = {k: spread(v) for k, v in dists.items()}, {k: spread(v) for k, v in accs.items()}
    answer = (f"The course's 0.9 and PyTorch's 0.1 give running statistics that differ by at most {text(gap)} "
              f"(relative, var compared x{cfg.batch_size}/{cfg.batch_size - 1}). "
              + compare(sd["mistake"], sd["course"], "the mistake (0.1 in the course's rule)", "0.9",
                        "distance of the running mean from the population mean", higher_is_better=False) + " "
              + compare(sa["mistake"], sa["course"], "the mistake", "0.9", "eval-mode test accuracy") + " "
              + "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + "."
              + problems_sentence(done, len(runs(cfg))))
    table = [{"rule": LABELS[k], "test_acc": sa[k].mean, "test_acc_range": None if sa[k].mean is None else
              [sa[k].lo, sa[k].hi], "distance_to_population_mean": sd[k].mean,
              "runs": status_text(groups[k], len(cfg.seeds))} for k, _ in CONDITIONS]
    metrics = {"verdicts": verdict_metrics(found), "checks": checks,
               "criteria_inputs": {"max_relative_gap": gap, "gap_per_seed": gaps, "distance": d_mean,
                                   "test_acc": a_mean, "rtol": RTOL},
               "per_seed": {"distance": dists, "test_acc": accs}}
    figs = [_figure(cfg, course_m, torch_m, dists, accs, out_dir / "momentum-convention")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))


def _figure(cfg, course_m, torch_m, dists, accs, stem):
    fig, (ax0, ax1, ax2) = figures.new_figure(3, 1, width=3.9, height=3.6,
                                              title=f"Batch-norm momentum conventions, batch {cfg.batch_size}, "
                                                    f"on {cfg.dataset}")
    m = cfg.batch_size
    for a, b in zip(course_m, torch_m):
        if a and b:
            ax0.plot(np.concatenate(a["running_var"]) * m / (m - 1), np.concatenate(b["running_var"]), ".", ms=2,
                     color="#1f77b4")
            ax0.plot(np.concatenate(a["running_mean"]), np.concatenate(b["running_mean"]), ".", ms=2,
                     color="#ff7f0e")
    lims = ax0.get_xlim()
    ax0.plot(lims, lims, "k-", lw=0.6)
    ax0.set(title="(a) course 0.9 against PyTorch 0.1", xlabel=f"course (var x {m}/{m - 1})", ylabel="PyTorch")
    ax0.legend(handles=[ax0.plot([], [], ".", color=c, label=lab)[0] for c, lab in
                        (("#1f77b4", "running var"), ("#ff7f0e", "running mean"))], loc="upper left")
    colors = ["#1f77b4", "#2ca02c", "#d62728"]
    labels = [LABELS[k].replace(" (", "\n(") for k, _ in CONDITIONS]
    seed_bars(ax1, labels, [dists[k] for k, _ in CONDITIONS], "RMS (running - population mean) / std",
              colors=colors)
    ax1.set_title("(b) running mean vs population mean")
    seed_bars(ax2, labels, [accs[k] for k, _ in CONDITIONS], "eval-mode test accuracy", colors=colors)
    known = [v for k, _ in CONDITIONS for v in accs[k] if v is not None]
    if known:    # zoomed: the conditions differ by about 0.02, invisible on an axis from 0
        ax2.set_ylim(min(known) - 0.02, max(known) + 0.015)
    ax2.set_title("(b) test accuracy (axis zoomed)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=8)
    return figures.save(fig, stem)
