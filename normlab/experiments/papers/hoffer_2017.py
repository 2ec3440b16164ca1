"""hoffer-2017: ghost batch norm against the generalization gap of large batches, and inference
example weighing at a small training batch.

References: Elad Hoffer, Itay Hubara and Daniel Soudry (2017), "Train longer, generalize
better: closing the generalization gap in large batch training of neural networks",
arXiv:1705.08741, section 4 (learning rate sqrt(B) scaling, Ghost Batch Normalization,
Algorithm 1) and Table 1; Cecilia Summers and Michael J. Dinneen (2020), "Four Things
Everyone Should Know to Improve Batch Normalization", arXiv:1906.03548, section 3
(inference example weighing).

Hoffer et al.'s setup: image classification (MNIST, CIFAR-10/100, ImageNet) with small
batches (e.g. 128) against large ones (e.g. 4096), SGD with momentum; the large batch
with its learning rate scaled by sqrt(B_large / B_small), with ghost batch norm over
virtual batches of the small size, and with "regime adaptation" (more epochs). Table 1
shows each of these shrinking the test-accuracy gap of the large batch, the gap
closing only with regime adaptation. We could not check Table 1's numbers here, so the
paper's side is the order of the conditions, not its accuracies.

Summers & Dinneen: at inference a batch-norm net normalizes every example with
population statistics, whereas in training each example is part of the statistics it
is normalized with. Their inference example weighing mixes the example itself in with
a weight alpha. Our reading (their equation not checked here): per feature, the
moments of the mixture "alpha on the example x, 1 - alpha on the population (mu,
sigma^2)":

    mu_i = alpha * x_i + (1 - alpha) * mu
    var_i = (1 - alpha) * sigma^2 + alpha * (1 - alpha) * (x_i - mu)^2

alpha = 0 is batch norm's inference; alpha about 1 / B mimics training at batch B.
alpha is chosen on the validation split from a grid (ties: the smallest).

Ours: Fashion-MNIST, a 784-100-100-10 fc net with the norm on both hidden layers, 8192
training images, 6 epochs for every batch size (same epochs: the large batch makes
B_large / B_small times fewer steps), SGD with momentum 0.9 at learning rate 0.01 for
batch 64 (fixed before the runs, not tuned on them; batch norm at batch 64
reaches about 0.85 with it) and 0.01 *
sqrt(1024 / 64) = 0.04 for batch 1024, with batch norm and with ghost batch norm of
ghost size 64. Example weighing: batch norm trained at batch 4 (1500 steps, same
learning rate), alpha from {0, 1/16, 1/8, 3/16, 1/4, 3/8, 1/2} on 1000 validation
images, test accuracy on 2000 test images. Three seeds.

Runs: ``{small,large,ghost}/seed=S`` (tag ``cond``) and ``weighing/seed=S``. Figures:
Table 1's comparison as test accuracy against the epoch for the three conditions (min-max
bands over seeds), and the example-weighing sweep (validation and test accuracy against
alpha).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..summarize import check_common, compare, config_dict, fmt, positive, positive_tuple, problems_sentence, \
    spread, status_text
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics

NAME = "hoffer-2017"
TITLE = "Ghost batch norm for large batches (Hoffer, Hubara & Soudry 2017), example weighing (Summers & Dinneen 2020)"
QUESTION = ("Does ghost batch norm, with the square-root learning-rate scaling, close the test-accuracy gap of "
            "large-batch training, and does weighing the example itself into its inference statistics help a net "
            "trained with small batches?")
SUITE = "papers"

PAPER = Paper(
    authors="Elad Hoffer, Itay Hubara, Daniel Soudry", year=2017,
    title="Train longer, generalize better: closing the generalization gap in large batch training of neural networks",
    arxiv="1705.08741", where="section 4 and Table 1 (with Summers & Dinneen 2020, arXiv:1906.03548, section 3)",
    setup=("MNIST, CIFAR-10/100 and ImageNet nets, SGD with momentum, small batches (e.g. 128) against large ones "
           "(e.g. 4096) at the same epochs; the large batch with learning rate x sqrt(B_large / B_small) and ghost "
           "batch norm over virtual batches of the small size (Table 1). Summers & Dinneen: inference example "
           "weighing, alpha chosen on validation data."),
    ours=("Fashion-MNIST, a 784-100-100-10 fc net, 8192 training images, 6 epochs at batch 64 (lr 0.01) and 1024 "
          "(lr 0.04) with batch norm, and 1024 with ghost batch norm (ghost size 64); example weighing on batch "
          "norm trained at batch 4; three seeds; well under a CPU-minute (--quick shrinks it)."))

TOL_A = 0.01
CLAIMS = (
    Claim("a", "Ghost batch norm (with sqrt learning-rate scaling) closes the generalization gap of large batches.",
          "Table 1 (order of the conditions; accuracies not checked here): the large batch generalizes worse than "
          "the small one; learning-rate scaling and ghost batch norm shrink the gap.",
          f"acc_ghost(L) > acc_BN(L); acc_ghost(L) >= acc_BN(small) - {TOL_A} (final test accuracy, mean over seeds)."),
    Claim("b", "Inference example weighing helps at a small training batch (Summers & Dinneen 2020).",
          "Section 3 of arXiv:1906.03548: weighing the example into its normalization statistics improves test "
          "accuracy, most at small batches (numbers not checked here).",
          "acc_weighted >= acc_population at training batch 4 (test accuracy, alpha chosen on validation, mean "
          "over seeds)."),
)

CONDS = ("small", "large", "ghost")
LEGEND = {"small": "batch norm, small batch", "large": "batch norm, large batch", "ghost": "ghost batch norm, large batch"}
COLORS = {"small": "#1f77b4", "large": "#d62728", "ghost": "#2ca02c"}


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100, 100)
    weight_scale: float = 0.05
    num_train: int = 8192
    num_val: int = 1000
    num_test: int = 2000
    num_epochs: int = 6
    small_batch: int = 64
    large_batch: int = 1024
    learning_rate: float = 0.01            # at the small batch; the large gets x sqrt(large / small)
    weighing_batch: int = 4
    weighing_steps: int = 1500
    alphas: tuple[float, ...] = (0.0, 0.0625, 0.125, 0.1875, 0.25, 0.375, 0.5)
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "num_val", "num_test", "num_epochs", "small_batch", "large_batch",
                 "weighing_batch", "weighing_steps", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.small_batch < 2 or self.large_batch % self.small_batch or self.large_batch <= self.small_batch:
            raise ValueError(f"large_batch={self.large_batch} must be a multiple of small_batch={self.small_batch} "
                             f"above it (the ghost size), small_batch >= 2")
        if self.large_batch > self.num_train:
            raise ValueError(f"large_batch={self.large_batch} exceeds num_train={self.num_train}")
        if self.weighing_batch < 2:
            raise ValueError(f"weighing_batch={self.weighing_batch} must be >= 2")
        if 0.0 not in self.alphas or not all(0 <= a < 1 for a in self.alphas):
            raise ValueError(f"alphas={self.alphas} must lie in [0, 1) and include 0 (population statistics)")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=1024, num_val=300, num_test=500, num_epochs=2,
                               small_batch=16, large_batch=256, weighing_steps=150, seeds=cfg.seeds[:2])


def large_lr(cfg: Config) -> float:
    return cfg.learning_rate * math.sqrt(cfg.large_batch / cfg.small_batch)


def runs(cfg: Config) -> list[RunSpec]:
    specs = []
    for cond in CONDS:
        batch = cfg.small_batch if cond == "small" else cfg.large_batch
        kwargs = {"hidden_dims": list(cfg.hidden_dims), "weight_scale": cfg.weight_scale,
                  "normalization": "ghost-batchnorm" if cond == "ghost" else "batchnorm"}
        if cond == "ghost":
            kwargs["norm_param"] = {"ghost_size": cfg.small_batch}
        per = cfg.num_train // batch
        task = {"kind": "steps", "steps": cfg.num_epochs * per, "batch_size": batch, "update_rule": "sgd_momentum",
                "optim_config": {"learning_rate": cfg.learning_rate if cond == "small" else large_lr(cfg)},
                "eval_every": per, "eval_set": "test"}
        specs += [RunSpec(experiment=NAME, name=f"{cond}/seed={s}", model="fc", model_kwargs=kwargs,
                          dataset=cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, seed=s,
                          tags={"cond": cond, "batch": batch}, task=task) for s in cfg.seeds]
    task = {"kind": "steps", "steps": cfg.weighing_steps, "batch_size": cfg.weighing_batch,
            "update_rule": "sgd_momentum", "optim_config": {"learning_rate": cfg.learning_rate},
            "eval_every": cfg.weighing_steps, "eval_set": "test",
            "measure": {"fn": "normlab.experiments.papers.hoffer_2017:example_weighing",
                        "kwargs": {"alphas": list(cfg.alphas)}}}
    specs += [RunSpec(experiment=NAME, name=f"weighing/seed={s}", model="fc",
                      model_kwargs={"hidden_dims": list(cfg.hidden_dims), "weight_scale": cfg.weight_scale,
                                    "normalization": "batchnorm"},
                      dataset=cfg.dataset, num_train=cfg.num_train, num_val=cfg.num_val, num_test=cfg.num_test,
                      seed=s, tags={"cond": "weighing", "batch": cfg.weighing_batch}, task=task) for s in cfg.seeds]
    return specs


# --------------------------------------------------------------------------- measuring

def weighted_scores(model, X, alpha: float) -> np.ndarray:
    """Class scores of a trained batch-norm fc net (ReLU, no dropout) with every hidden layer's example i
    normalized with the mixture moments of the module docstring; alpha = 0 is test mode exactly."""
    h = np.asarray(X, dtype=model.dtype).reshape(len(X), -1)
    for i, p in enumerate(model.bn_params, start=1):
        a = h @ model.params[f"W{i}"] + model.params.get(f"b{i}", 0.0)
        mu, var = p["running_mean"], p["running_var"]
        mean_i = alpha * a + (1 - alpha) * mu
        var_i = (1 - alpha) * var + alpha * (1 - alpha) * (a - mu) ** 2
        eps = p.get("eps", 1e-5)
        h = np.maximum(model.params[f"gamma{i}"] * (a - mean_i) / np.sqrt(var_i + eps) + model.params[f"beta{i}"], 0)
    L = model.num_layers
    return h @ model.params[f"W{L}"] + model.params[f"b{L}"]


def example_weighing(model, data, alphas) -> dict:
    """Validation and test accuracy for every alpha; the alpha chosen on validation (ties: the smallest)."""
    acc = lambda X, y, a: float(np.mean(np.argmax(weighted_scores(model, X, a), axis=1) == y))
    val = [acc(data["X_val"], data["y_val"], a) for a in alphas]
    test = [acc(data["X_test"], data["y_test"], a) for a in alphas]
    best = int(np.argmax(val))
    return {"alphas": list(alphas), "val_acc": val, "test_acc": test, "chosen_alpha": alphas[best],
            "acc_weighted": test[best], "acc_population": test[list(alphas).index(0.0)]}


def _final(r):
    return r.val_acc_history[-1] if r.status == "finished" and r.val_acc_history else None


def _weigh(key):
    return lambda r: (r.extras.get("measure") or {}).get(key) if r.status == "finished" else None


def _mean_all(rs: Runs, seeds, of):
    by_seed = {s.seed: of(r) for s, r in rs}
    vals = [by_seed.get(s) for s in seeds]
    return None if any(v is None for v in vals) else float(np.mean(vals))


def criteria(v: dict) -> dict:
    """Checks from the means ``v`` (keys small, large, ghost, weighted, population; None: not measured)."""
    ok = lambda a, b, f: None if v.get(a) is None or v.get(b) is None else bool(f(v[a], v[b]))
    return {"a": [ok("ghost", "large", lambda g, l: g > l), ok("ghost", "small", lambda g, s: g >= s - TOL_A)],
            "b": [ok("weighted", "population", lambda w, p: w >= p)]}


def findings(v: dict, cfg: Config) -> list[Finding]:
    checks = criteria(v)
    t = lambda k: "not measured" if v.get(k) is None else fmt(v[k], 3)
    ours = {"a": (f"acc_ghost({cfg.large_batch}) = {t('ghost')}, acc_BN({cfg.large_batch}) = {t('large')}, "
                  f"acc_BN({cfg.small_batch}) = {t('small')} (allowed shortfall of ghost vs small: {TOL_A})."),
            "b": (f"at training batch {cfg.weighing_batch}: acc_weighted = {t('weighted')}, acc_population = "
                  f"{t('population')}.")}
    return [Finding(c, ours[c.key], verdict(checks[c.key])) for c in CLAIMS]


# --------------------------------------------------------------------------- figures and analysis

def _figure(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    fig, (ax, ax_w) = figures.new_figure(2, 1, width=4.8, height=3.4,
                                         title=f"Table 1 and example weighing redrawn: fc net on {cfg.dataset}")
    for cond in CONDS:
        rs = [r for r in groups[cond].results if r.status in ("finished", "diverged")]
        if rs:
            per = max(rs[0].iterations_per_epoch or 1, 1)
            x = [s / per for s in max((r.extras.get("eval_steps", []) for r in rs), key=len)]
            figures.band(ax, [(r.val_acc_history, r.status == "diverged") for r in rs],
                         f"{LEGEND[cond]} ({cfg.small_batch if cond == 'small' else cfg.large_batch})", COLORS[cond],
                         x=x, marker="o")
    ax.set(title="same epochs, lr x sqrt(B / B_small)", xlabel="epoch", ylabel="test accuracy")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ms = [r.extras["measure"] for r in groups["weighing"].results if r.status == "finished" and "measure" in r.extras]
    for key, color in (("val_acc", "#9467bd"), ("test_acc", "#1f77b4")):
        if ms:
            figures.band(ax_w, [(m[key], False) for m in ms], key.replace("_acc", " accuracy"), color,
                         x=ms[0]["alphas"], marker="o")
    ax_w.set(title=f"example weighing, BN trained at batch {cfg.weighing_batch}", xlabel="alpha (0: population)",
             ylabel="accuracy")
    if ax_w.get_legend_handles_labels()[0]:
        ax_w.legend(fontsize=8)
    return figures.save(fig, stem)


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    groups = {c: done.where(cond=c).by_seed() for c in (*CONDS, "weighing")}
    v = {c: _mean_all(groups[c], cfg.seeds, _final) for c in CONDS}
    v["weighted"] = _mean_all(groups["weighing"], cfg.seeds, _weigh("acc_weighted"))
    v["population"] = _mean_all(groups["weighing"], cfg.seeds, _weigh("acc_population"))
    found = findings(v, cfg)
    missing = lambda rs: [None] * (len(cfg.seeds) - len(rs))
    sp = {c: spread([_final(r) for r in groups[c].results] + missing(groups[c])) for c in CONDS}
    for k in ("acc_weighted", "acc_population", "chosen_alpha"):
        sp[k] = spread([_weigh(k)(r) for r in groups["weighing"].results] + missing(groups["weighing"]))
    answer = " ".join([
        compare(sp["ghost"], sp["large"], "ghost batch norm", "batch norm", f"final test accuracy at batch {cfg.large_batch}"),
        compare(sp["ghost"], sp["small"], f"ghost batch norm at batch {cfg.large_batch}",
                f"batch norm at batch {cfg.small_batch}", "final test accuracy"),
        compare(sp["acc_weighted"], sp["acc_population"], "example weighing", "population statistics",
                f"test accuracy of batch norm trained at batch {cfg.weighing_batch}"),
        "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + "."]) \
        + problems_sentence(done, len(runs(cfg)))
    table = [{"condition": k, "test_acc": s.mean, "test_acc_range": [s.lo, s.hi],
              "runs": status_text(groups[k if k in CONDS else "weighing"], len(cfg.seeds))} for k, s in sp.items()]
    metrics = {"verdicts": verdict_metrics(found), "checks": criteria(v), "criteria_inputs": {**v, "tol_a": TOL_A},
               "lr_small": cfg.learning_rate, "lr_large": large_lr(cfg),
               "conditions": {k: s.as_dict() for k, s in sp.items()}}
    figs = [_figure(cfg, groups, out_dir / "hoffer-2017-table1")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
