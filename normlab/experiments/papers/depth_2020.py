"""depth-2020: a deep residual net without normalization trains with SkipInit or Fixup, not plain.

References: Soham De and Samuel L. Smith (2020), "Batch Normalization Biases
Residual Blocks Towards the Identity Function in Deep Networks",
arXiv:2002.10444 (section 3: the variance of the residual stream at
initialization; section 4: SkipInit; their learning-rate sweeps of normalized
and SkipInit ResNets); Hongyi Zhang, Yann N. Dauphin and Tengyu Ma (2019),
"Fixup Initialization: Residual Learning Without Normalization",
arXiv:1901.09321 (the Fixup rules, section 3).

The papers' setup: Wide-ResNets and ResNets on CIFAR-10 and ImageNet (De &
Smith train a 16-4 Wide-ResNet up to 1000 layers with SGD and momentum over
a grid of learning rates and batch sizes); they argue that with batch norm on
the residual branch the branch has unit variance, so the stream's variance
grows by about one per block (linearly in depth), while without it each block
doubles the variance (exponentially); that SkipInit (a scalar multiplier on
the branch initialized to 0) is enough to train deep unnormalized nets; and
that batch norm's benefit is the larger stable learning rate.

Ours: Fashion-MNIST, flattened with the mean image subtracted; the
``ResidualMLP`` of ``normlab.nets.residual`` (a stem affine - ReLU to
``width`` units, ``depth`` blocks ``x + alpha f(x)`` with ``f = affine - [BN]
- ReLU - affine - [BN]``, an output affine), width 32 at depths 32 and 128 (64
did not fit the budget), the four variants, He init. Each run is step-wise
(``normlab.lab.stepwise``): 100 plain SGD steps at batch 64 over 6,400
training images (one epoch; the budget's limit, a depth-128 batch-norm step
costs about 40 ms), the test accuracy on the first 1,000 test images at steps
0, 50 and 100; learning rates 0.01, 0.04 and 0.16 for every variant (one grid,
so that the best rates can be compared). The grid was chosen on a pilot of the
batch-norm net alone (the papers' reference) at depth 32, seed 0, 200 steps:
0.02, 0.1 and 0.5 gave 0.769, 0.765 and a divergence, 0.01, 0.04 and 0.16 gave
0.746, 0.769 and 0.783, so the grid trains it at every rate. Three seeds. A run that diverges (non-finite
loss) counts at chance, 0.1, as in ioffe-szegedy-2015; a failed or missing run
leaves its condition, and every check using it, "not measured". The best rate
of a variant is the grid's rate of the highest mean final accuracy (ties to
the smaller rate), chosen on the same test images it is scored on (an
optimistic selection, the same for every variant).

The variance at initialization (analysis, no training): the stream ``x_l`` at
l = 0..128 of an untrained depth-128 net, in float64 (the plain net's
variance passes float32's range), batch norm in train mode on 512 training
images; the variance is the per-unit variance over the batch, averaged over
the units; three seeds. Our plain branch starts with an affine on the stream
itself, so with He init each block multiplies the variance by about 3 (De &
Smith's doubling assumes a branch that preserves the variance); the criterion
(at least 2^48 from block 32 to 128) holds for either.

Runs: ``d={depth}/{variant}/lr={lr}/seed=S``, tagged ``depth``, ``variant``
and ``lr``. Figures: the stream's variance against the block (log y, the four
variants, band over seeds), and the final test accuracy against the learning
rate, one panel per depth (the papers' sweeps).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ...nets.residual import VARIANTS, ResidualMLP
from ..summarize import check_common, compare, config_dict, fmt, positive, positive_tuple, problems_sentence, \
    spread, status_text
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics

NAME = "depth-2020"
TITLE = "Depth without normalization: SkipInit and Fixup (De & Smith 2020; Zhang et al. 2019)"
QUESTION = ("Does a deep residual net without normalization train only with SkipInit or Fixup, does the residual "
            "stream's variance at initialization grow linearly in depth with batch norm and exponentially "
            "without, and does batch norm allow the largest learning rate?")
SUITE = "papers"

PAPER = Paper(
    authors="Soham De, Samuel L. Smith", year=2020,
    title="Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks",
    arxiv="2002.10444",
    where=("section 3 (variance at initialization), section 4 (SkipInit) and the learning-rate sweeps; with "
           "Fixup from Zhang, Dauphin & Ma 2019, arXiv:1901.09321"),
    setup=("Wide-ResNets (16-4, up to 1000 layers) and ResNets on CIFAR-10 and ImageNet, SGD with momentum over "
           "grids of learning rates and batch sizes; batch norm, SkipInit (a scalar on each residual branch, "
           "initialized to 0) and, in Zhang et al., Fixup (no normalization, the branch's last layer at 0, the "
           "other rescaled by depth^(-1/(2m-2)), scalar biases and multipliers)."),
    ours=("Fashion-MNIST, flattened; a residual MLP of width 32 at depths 32 and 128 (stem affine - ReLU, "
          "blocks x + alpha f(x) with f = affine - [BN] - ReLU - affine - [BN], an output affine), He init; "
          "100 SGD steps at batch 64, learning rates 0.01, 0.04, 0.16, three seeds; the variance at "
          "initialization on 512 images, blocks 0-128. About 1.5 CPU-minutes, where the papers train ResNets "
          "on GPUs for days."))

CHANCE = 0.1      # a diverged run's accuracy: ten balanced classes

CLAIMS = (
    Claim("a", "Without normalization a deep residual net trains only with SkipInit or Fixup.",
          "De & Smith train 1000-layer Wide-ResNets with SkipInit and no normalization; without it an "
          "unnormalized deep ResNet does not train; Zhang et al. train 10,000-layer nets with Fixup.",
          "At the largest depth (128), final test accuracy at each variant's best rate of the grid, mean of 3 "
          "seeds, a diverged run = 0.1: acc_plain < acc_BN - 0.05; acc_skipinit >= acc_BN - 0.03; "
          "acc_fixup >= acc_BN - 0.03."),
    Claim("b", "At initialization the residual stream's variance grows about linearly in depth with batch norm, "
               "exponentially without.",
          "De & Smith, section 3: with batch norm on the branch each block adds about 1 to the variance; "
          "without, each block doubles it (2^l after l blocks).",
          "var_BN(128) / var_BN(32) within [2, 8] (linear: 4); log2(var_plain(128) / var_plain(32)) >= 48 "
          "(doubling: 96; half allowed); variances the mean over 3 seeds."),
    Claim("c", "Batch norm allows the largest learning rate.",
          "De & Smith: batch-normalized nets can be trained at larger learning rates than SkipInit nets (a "
          "benefit only at large batch sizes).",
          "At depth 32, on the grid: best rate of BN >= best rate of SkipInit; best rate of BN >= best rate of "
          "Fixup."),
)

LEGEND = {"plain": "no normalization", "batchnorm": "batch norm", "skipinit": "SkipInit", "fixup": "Fixup"}


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (32, 128)         # criterion (c) at the first, (a) at the largest
    width: int = 32                             # the stream's units (the papers: 64-640 channels)
    learning_rates: tuple[float, ...] = (0.01, 0.04, 0.16)   # plain SGD, one grid for every variant
    steps: int = 100                            # one epoch of num_train at batch_size
    batch_size: int = 64
    num_train: int = 6400
    eval_every: int = 50
    eval_samples: int = 1000                    # the first test images, every eval_every steps
    init_samples: int = 512                     # the variance at initialization: a batch of 512 images
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "depths", integer=True)
        positive_tuple(self, "learning_rates")
        positive(self, "width", "steps", "batch_size", "num_train", "eval_every", "eval_samples",
                 "init_samples", integer=True)
        if len(set(self.depths)) != len(self.depths) or list(self.depths) != sorted(self.depths):
            raise ValueError(f"depths must be distinct and increasing, got {self.depths!r}")
        if len(set(self.learning_rates)) != len(self.learning_rates):
            raise ValueError(f"learning_rates must be distinct, got {self.learning_rates!r}")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")
        if self.init_samples < 2:
            raise ValueError(f"init_samples={self.init_samples}: batch norm needs at least 2 images")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, depths=(2, 6), width=8, learning_rates=cfg.learning_rates[:2], steps=20,
                               batch_size=32, num_train=640, eval_every=10, eval_samples=300, init_samples=64,
                               seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    task = {"kind": "steps", "steps": cfg.steps, "batch_size": cfg.batch_size, "update_rule": "sgd",
            "eval_every": cfg.eval_every, "eval_set": "test", "eval_samples": cfg.eval_samples}
    return [RunSpec(experiment=NAME, name=f"d={d}/{v}/lr={lr:g}/seed={s}", model="resmlp",
                    model_kwargs={"depth": d, "width": cfg.width, "variant": v}, dataset=cfg.dataset,
                    num_train=cfg.num_train, num_test=cfg.eval_samples, seed=s,
                    tags={"depth": d, "variant": v, "lr": lr},
                    task={**task, "optim_config": {"learning_rate": lr}})
            for d in cfg.depths for v in VARIANTS for lr in cfg.learning_rates for s in cfg.seeds]


# --------------------------------------------------------------------------- criteria

def final_acc(r):
    """The test accuracy after the last step; CHANCE for a diverged run; None for a failed one."""
    if r.status == "diverged":
        return CHANCE
    return r.val_acc_history[-1] if r.status == "finished" and r.val_acc_history else None


def condition_acc(rs: Runs, seeds) -> float | None:
    """Mean final accuracy over ``seeds``, or None unless each seed has one."""
    by_seed = {s.seed: final_acc(r) for s, r in rs}
    vals = [by_seed.get(s) for s in seeds]
    return None if any(v is None for v in vals) else float(np.mean(vals))


def best(acc_by_lr: dict):
    """``(best rate, its accuracy)`` of ``{lr: mean acc or None}``; (None, None) if any rate is unmeasured.
    Ties go to the smaller rate."""
    if not acc_by_lr or any(a is None for a in acc_by_lr.values()):
        return None, None
    lr = min(acc_by_lr, key=lambda k: (-acc_by_lr[k], k))
    return lr, acc_by_lr[lr]


def _ok(cond):
    return None if cond is None else bool(cond)


def criteria(acc: dict, var: dict, shallow: int, deep: int) -> dict:
    """The checks of each claim: ``acc[(depth, variant)] = {lr: mean final accuracy or None}``;
    ``var[(variant, depth)]`` the stream's mean variance at initialization after ``depth`` blocks (None:
    not measured). ``{key: [True / False / None, ...]}`` in the criteria's order."""
    b = {k: best(v) for k, v in acc.items()}
    a_deep = lambda v: b.get((deep, v), (None, None))[1]
    lr_shallow = lambda v: b.get((shallow, v), (None, None))[0]
    bn = a_deep("batchnorm")
    less = lambda x, y, tol: None if x is None or y is None else x < y - tol
    geq = lambda x, y, tol: None if x is None or y is None else x >= y - tol
    vb = [var.get(("batchnorm", d)) for d in (32, 128)]
    vp = [var.get(("plain", d)) for d in (32, 128)]
    ratio_bn = None if None in vb else vb[1] / vb[0]
    log_plain = None if None in vp else float(np.log2(vp[1]) - np.log2(vp[0]))
    return {"a": [_ok(less(a_deep("plain"), bn, 0.05)), _ok(geq(a_deep("skipinit"), bn, 0.03)),
                  _ok(geq(a_deep("fixup"), bn, 0.03))],
            "b": [None if ratio_bn is None else bool(2 <= ratio_bn <= 8),
                  None if log_plain is None else bool(log_plain >= 48)],
            "c": [_ok(geq(lr_shallow("batchnorm"), lr_shallow("skipinit"), 0)),
                  _ok(geq(lr_shallow("batchnorm"), lr_shallow("fixup"), 0))]}


def _t(v, digits=3) -> str:
    return "not measured" if v is None else fmt(v, digits)


def _ours(key, acc, var, shallow, deep) -> str:
    b = {k: best(v) for k, v in acc.items()}
    if key == "a":
        return f"depth {deep}, best rate: " + ", ".join(
            f"{LEGEND[v]} {_t(b.get((deep, v), (None, None))[1])} (lr {_t(b.get((deep, v), (None, None))[0], 2)})"
            for v in VARIANTS) + "."
    if key == "b":
        r = lambda v: (None if None in (var.get((v, 32)), var.get((v, 128)))
                       else var[(v, 128)] / var[(v, 32)])
        rp = r("plain")
        return (f"var_BN(128) / var_BN(32) = {_t(r('batchnorm'), 2)}; log2(var_plain(128) / var_plain(32)) = "
                f"{_t(None if rp is None else float(np.log2(rp)), 1)}.")
    return f"depth {shallow}, best rate on the grid: " + ", ".join(
        f"{LEGEND[v]} {_t(b.get((shallow, v), (None, None))[0], 2)}" for v in VARIANTS) + "."


def findings(acc, var, shallow, deep) -> list[Finding]:
    checks = criteria(acc, var, shallow, deep)
    return [Finding(c, _ours(c.key, acc, var, shallow, deep), verdict(checks[c.key])) for c in CLAIMS]


# --------------------------------------------------------------------------- variance at initialization

def init_variance(cfg: Config, depth: int = 128) -> dict:
    """``{variant: [per seed: [variance of x_l for l = 0..depth]]}`` of untrained float64 nets on the
    first ``cfg.init_samples`` training images; ``{}`` when the data cannot be loaded."""
    from ...lab.execute import load_data
    try:
        X = load_data(cfg.dataset, max(cfg.init_samples, cfg.batch_size), None, 10, True)["X_train"]
    except (OSError, ValueError):
        return {}
    X = np.asarray(X[:cfg.init_samples], dtype=np.float64)
    out = {}
    for v in VARIANTS:
        out[v] = []
        for s in cfg.seeds:
            net = ResidualMLP(X.shape[1], 10, depth=depth, width=cfg.width, variant=v, dtype=np.float64,
                              rng_seed=s)
            out[v].append([float(x.var(axis=0).mean()) for x in net.stream(X, mode="train")])
    return out


# --------------------------------------------------------------------------- figures

def _figure_variance(curves: dict, cfg: Config, stem: Path) -> list[Path]:
    fig, (ax,) = figures.new_figure(1, 1, width=5.6, height=3.8,
                                    title=f"Section 3: residual stream at initialization, width {cfg.width}")
    for v in VARIANTS:
        if curves.get(v):
            figures.band(ax, [(c, False) for c in curves[v]], LEGEND[v], figures.color_for(LEGEND[v],
                                                                                           VARIANTS.index(v)))
    ax.set(xlabel="residual block l", ylabel="variance of x_l (log)", yscale="log")
    if not curves:
        ax.text(0.5, 0.5, "not measured (no data)", ha="center", transform=ax.transAxes)
    ax.legend(fontsize=8)
    return figures.save(fig, stem)


def _figure_sweep(groups: dict, cfg: Config, stem: Path) -> list[Path]:
    fig, axes = figures.new_figure(len(cfg.depths), 1, width=4.4, height=3.6,
                                   title=f"Final test accuracy against the learning rate ({cfg.steps} SGD steps, "
                                         f"batch {cfg.batch_size}; diverged = {CHANCE})")
    for ax, d in zip(axes, cfg.depths):
        per = {LEGEND[v]: [[(final_acc(r), r.status == "diverged") for r in groups[(d, v, lr)].results]
                           for lr in cfg.learning_rates] for v in VARIANTS}
        figures.sweep(ax, cfg.learning_rates, per, "final test accuracy", chance=CHANCE)
        ax.set(title=f"depth {d}", xlabel="learning rate (log)", ylim=(0, 1))
    figures.shared_legend(fig, axes)
    return figures.save(fig, stem)


# --------------------------------------------------------------------------- analysis

def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    shallow, deep = cfg.depths[0], cfg.depths[-1]
    groups = {(d, v, lr): done.where(depth=d, variant=v, lr=lr).by_seed()
              for d in cfg.depths for v in VARIANTS for lr in cfg.learning_rates}
    acc = {(d, v): {lr: condition_acc(groups[(d, v, lr)], cfg.seeds) for lr in cfg.learning_rates}
           for d in cfg.depths for v in VARIANTS}
    curves = init_variance(cfg)
    var = {(v, d): float(np.mean([c[d] for c in cs])) for v, cs in curves.items() for d in (32, 128)}
    found = findings(acc, var, shallow, deep)
    miss = lambda rs: [None] * (len(cfg.seeds) - len(rs))
    spreads = {k: spread([final_acc(r) for r in rs.results] + miss(rs)) for k, rs in groups.items()}
    best_sp = {(d, v): spreads[(d, v, best(acc[(d, v)])[0])] if best(acc[(d, v)])[0] is not None
               else spread([]) for d in cfg.depths for v in VARIANTS}
    answer = " ".join([
        compare(best_sp[(deep, "skipinit")], best_sp[(deep, "plain")], "SkipInit", "no normalization",
                f"final test accuracy at depth {deep} (best rate)"),
        compare(best_sp[(deep, "batchnorm")], best_sp[(deep, "fixup")], "batch norm", "Fixup",
                f"final test accuracy at depth {deep} (best rate)"),
        _ours("b", acc, var, shallow, deep)[0].upper() + _ours("b", acc, var, shallow, deep)[1:],
        "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + ".",
    ]) + problems_sentence(done, len(runs(cfg)))
    table = [{"depth": d, "variant": v, "lr": lr, "final_test_acc": spreads[(d, v, lr)].mean,
              "final_test_acc_range": None if spreads[(d, v, lr)].mean is None
              else [spreads[(d, v, lr)].lo, spreads[(d, v, lr)].hi],
              "best_lr": best(acc[(d, v)])[0] == lr, "runs": status_text(groups[(d, v, lr)], len(cfg.seeds))}
             for (d, v, lr) in groups]
    metrics = {
        "verdicts": verdict_metrics(found),
        "checks": criteria(acc, var, shallow, deep),
        "criteria_inputs": {
            "best": {f"d={d}/{v}": {"lr": best(acc[(d, v)])[0], "acc": best(acc[(d, v)])[1]}
                     for d in cfg.depths for v in VARIANTS},
            "init_variance": {f"{v}/l={d}": x for (v, d), x in var.items()}, "chance": CHANCE},
        "conditions": {f"d={d}/{v}/lr={lr:g}": sp.as_dict() for (d, v, lr), sp in spreads.items()},
    }
    figs = [_figure_variance(curves, cfg, out_dir / "depth-2020-init-variance")[0],
            _figure_sweep(groups, cfg, out_dir / "depth-2020-lr-sweep")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
