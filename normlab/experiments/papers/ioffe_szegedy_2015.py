"""ioffe-szegedy-2015: batch norm in a deep sigmoid net -- faster training, stable sigmoid inputs,
higher learning rates, and the scale invariance behind them.

Reference: Sergey Ioffe and Christian Szegedy (2015), "Batch Normalization: Accelerating Deep
Network Training by Reducing Internal Covariate Shift", arXiv:1502.03167 (ICML 2015): Figure 1
(section 4.1), section 3.3, and the table of section 4.2.2 (the paper's Figure 3: steps to
Inception's accuracy and maximum accuracy of each net).

The paper's setup (section 4.1): MNIST, 28x28 binary images, three fully connected hidden layers
of 100 sigmoid units, weights drawn from a small random Gaussian (scale not given), a 10-way
softmax with cross entropy; 50,000 steps at 60 examples per mini-batch (optimizer and learning
rate not given); batch norm on every hidden layer, before the sigmoid. Figure 1(a) plots the test
accuracy against the steps (axes read from the figure: 10K to 50K steps, accuracy 0.7 to 1); the
batch-normalized net lies above the baseline; there is no table. Figure 1(b, c) plots, for one
typical sigmoid of the last hidden layer, the 15th, 50th and 85th percentiles of its input over
training (axis -2 to 2): without batch norm they move in mean and spread, with it they stay
nearly flat. Section 3.3 argues that batch norm allows higher learning rates because
BN(W u) = BN((a W) u) for a scalar a: the layer Jacobian does not depend on the scale of W and the
gradient with respect to aW is 1/a times that with respect to W. Section 4.2.2 (Inception on
ImageNet, initial learning rate 0.0015, asynchronous SGD with momentum, batch 32) reports the
maximum validation accuracy: Inception 72.2 %, BN-Baseline 72.7 %, BN-x5 73.0 %, BN-x30 74.8 %,
BN-x5-Sigmoid 69.8 %; steps to 72.2 %: 31.0M, 13.3M, 2.1M and 2.7M (BN-x5-Sigmoid never reaches
it). Inception itself at 5 times the learning rate drove its parameters to machine infinity; x5
and x30 also carry the changes of section 4.2.1 (no dropout, 5 times less L2, faster decay, no
local response normalization, ...).

Ours: Fashion-MNIST (MNIST is absent here) as grey levels with the mean image subtracted, the same
784-100-100-100-10 sigmoid net (``FullyConnectedNet(activation="sigmoid")``) with and without
batch norm, plain SGD at batch 60 for 5,000 steps (about 5 epochs; the budget's limit: 18 runs
on one core each, 1 ms a step without and 1.7 ms with batch norm), three seeds. The test accuracy
on all 10,000 test images every 250 steps; the percentiles of every unit of the last hidden
layer's sigmoid input, on the first 1,000 test images in train mode, every 50 steps.
Weight scale 0.1 and base learning rate 3.0 are the best of a pilot run on the baseline only,
before any batch-norm run: weight scale 0.01 left it at chance for 1000 steps (the gradient
vanishes through three sigmoid layers of tiny weights), 0.1 trained it better than 0.05; at 0.1,
5,000 steps, the final test accuracy was 0.838 at learning rate 0.3, 0.860 at 1.0 and 0.860 at
3.0 (mean of three seeds, 3.0 ahead on each seed) and chance at 10. The learning-rate claim runs
both nets at 1, 5 and 30 times the base rate (the x1 runs are the Figure 1 runs). A diverged run
(non-finite loss) counts as chance accuracy, 0.1, from its divergence on; a failed or missing run
makes the checks that need it "not measured"; the drift of claim (b) is taken from finished runs
only (a diverged run's last probe is not the end of training). The scale invariance (section 3.3) is computed,
not trained: a batch of 60 x 100 inputs and a 100 x 100 weight matrix, both standard normal,
float64, through normlab's ``batchnorm_forward`` / ``batchnorm_backward`` (eps 1e-5) and, for
eps 0 (which ``batchnorm_forward`` refuses), the normalization core it is built on.

Runs: ``{baseline,batchnorm}/lr=x{m}/seed=S`` tagged ``net`` and ``mult``. Figures: Figure 1's
three panels; test accuracy against the steps at each multiplier with the final accuracy against
the multiplier; the table of the scale-invariance check.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..summarize import (Spread, check_common, compare, config_dict, fmt, positive, positive_tuple,
                         problems_sentence, spread, status_text)
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics

NAME = "ioffe-szegedy-2015"
TITLE = "Batch normalization in a deep sigmoid net (Ioffe & Szegedy 2015)"
QUESTION = ("Does batch normalization make a deep sigmoid network train faster and more accurately, keep the "
            "distribution of its sigmoid inputs stable, tolerate much higher learning rates, and make a layer "
            "invariant to the scale of its weights?")
SUITE = "papers"

PAPER = Paper(
    authors="Sergey Ioffe, Christian Szegedy", year=2015,
    title="Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
    arxiv="1502.03167",
    where="Figure 1 (section 4.1), section 3.3, the table of section 4.2.2 (Inception at x1, x5, x30)",
    setup=("MNIST, 3 fully connected hidden layers of 100 sigmoid units, small random Gaussian weights, softmax "
           "with cross entropy, 50,000 steps of 60 examples, batch norm before each sigmoid; test accuracy and "
           "the 15/50/85th percentiles of one last-layer sigmoid input over training (Figure 1). Learning rates: "
           "Inception on ImageNet at its rate 0.0015 and with batch norm at 1, 5 and 30 times it (section 4.2.2)."),
    ours=("Fashion-MNIST, the same 784-100-100-100-10 sigmoid net with and without batch norm, weight scale 0.1, "
          "plain SGD at batch 60 for 5,000 steps, base learning rate 3.0 (the baseline's best of 0.3, 1, 3, 10 "
          "in a pilot), and 5 and 30 times it for both nets; three seeds; about 3 CPU-minutes in all. "
          "Scale invariance computed on a random 60 x 100 batch in float64."))

CHANCE = 0.1           # a diverged run's accuracy: ten balanced classes
SCALES = (0.1, 10.0, 100.0)
TOL_FWD, TOL_FWD_EXACT, TOL_GRAD = 1e-3, 1e-10, 1e-3

CLAIMS = (
    Claim("a", "Batch norm trains faster and reaches a higher test accuracy (Figure 1a).",
          "Figure 1(a), read from the figure (no table): the batch-normalized net's test accuracy is above the "
          "baseline's over all 50,000 steps (axis 0.7 to 1).",
          "mean test accuracy (3 seeds) of BN >= baseline at every evaluation after the first 10 % of the steps; "
          "BN reaches the baseline's final mean accuracy within half the steps."),
    Claim("b", "Without batch norm the sigmoid inputs drift; with it they stay stable (Figure 1b, c).",
          "Figure 1(b, c), read from the figure: the 15/50/85th percentiles of a typical last-layer sigmoid input "
          "move in mean and spread without batch norm and stay nearly flat with it.",
          "per unit: drift = mean over the 3 percentiles of |p(last probe) - p(step 0)| / (p85 - p15 at step 0); "
          "per seed, median over the last hidden layer's units: median drift with BN < without, for each of "
          "the 3 seeds."),
    Claim("c", "Batch norm allows much higher learning rates (section 3.3, section 4.2.2).",
          "Max accuracy (steps to 72.2 %): Inception 72.2 % (31.0M), BN-Baseline 72.7 % (13.3M), BN-x5 73.0 % "
          "(2.1M), BN-x30 74.8 % (2.7M), BN-x5-Sigmoid 69.8 % (never); Inception at x5 diverged.",
          "final test accuracy (mean of 3 seeds, a diverged run = 0.1): acc_BN(x30) >= acc_base(x30) + 0.05; "
          "acc_BN(x30) >= acc_BN(x1) - 0.02; acc_BN(x5) >= acc_base(x5)."),
    Claim("d", "Batch norm is invariant to the scale of the weights; larger weights get proportionally smaller "
               "gradients (section 3.3).",
          "BN(W u) = BN((aW) u); d BN((aW)u) / du = d BN(Wu) / du; d BN((aW)u) / d(aW) = (1/a) d BN(Wu) / dW.",
          f"for a in 0.1, 10, 100: max|BN(aWu) - BN(Wu)| / max|BN(Wu)| <= {TOL_FWD:g} (eps 1e-5) and "
          f"<= {TOL_FWD_EXACT:g} (eps 0); ||a dL/d(aW) - dL/dW|| / ||dL/dW|| <= {TOL_GRAD:g} (eps 1e-5), "
          "L = sum(BN * G), G random."),
)

NETS = (("baseline", None), ("batchnorm", "batchnorm"))
LEGEND = {"baseline": "baseline (no BN)", "batchnorm": "batchnorm (BN)"}   # colours follow the prefix


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100, 100, 100)   # paper: 3 hidden layers of 100 sigmoid units
    weight_scale: float = 0.1          # paper: "small random Gaussian"; best of 0.01, 0.05, 0.1 for the baseline
    steps: int = 5000                  # paper: 50,000; the budget's limit (about 5 epochs)
    batch_size: int = 60               # paper: 60
    learning_rate: float = 3.0         # paper: not given; the baseline's best of 0.3, 1, 3, 10 (pilot)
    multipliers: tuple[float, ...] = (1, 5, 30)      # paper (section 4.2.2): x1, x5, x30
    eval_every: int = 250              # test accuracy every k steps (and at step 0)
    eval_samples: int | None = None    # None: the whole test set (10,000 images)
    probe_every: int = 50              # the percentile probe of the x1 runs every k steps
    probe_samples: int = 1000          # images the percentiles are taken over (the first of the test set)
    shown_unit: int = 0                # the unit of the last hidden layer drawn in Figure 1(b, c), both nets
    dataset: str = "fashion-mnist"     # or "mnist" (the paper's) when present
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "multipliers")
        positive(self, "steps", "batch_size", "eval_every", "probe_every", "probe_samples", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.eval_samples is not None:
            positive(self, "eval_samples", integer=True)
        if 1 not in self.multipliers:
            raise ValueError(f"multipliers must include 1 (the Figure 1 runs), got {self.multipliers!r}")
        if len(set(self.multipliers)) != len(self.multipliers):
            raise ValueError(f"multipliers must be distinct, got {self.multipliers!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size}: batch norm needs at least 2 images a batch")
        if isinstance(self.shown_unit, bool) or not isinstance(self.shown_unit, int) \
                or not 0 <= self.shown_unit < self.hidden_dims[-1]:
            raise ValueError(f"shown_unit must be a unit of the last hidden layer, 0..{self.hidden_dims[-1] - 1}, "
                             f"got {self.shown_unit!r}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32, 32), steps=200, eval_every=50, eval_samples=1000,
                               probe_every=25, probe_samples=200, shown_unit=0, seeds=cfg.seeds[:2])


def _task(cfg: Config, mult) -> dict:
    task = {"kind": "steps", "steps": cfg.steps, "batch_size": cfg.batch_size, "update_rule": "sgd",
            "optim_config": {"learning_rate": cfg.learning_rate * mult}, "eval_every": cfg.eval_every,
            "eval_set": "test", "eval_samples": cfg.eval_samples}
    if mult == 1:        # Figure 1's runs carry the percentile probe
        task["probes"] = {"percentiles": {"layer": len(cfg.hidden_dims), "q": [15, 50, 85],
                                          "samples": cfg.probe_samples}}
        task["probe_every"] = cfg.probe_every
    return task


def runs(cfg: Config) -> list[RunSpec]:
    return [RunSpec(experiment=NAME, name=f"{label}/lr=x{m:g}/seed={s}", model="fc", dataset=cfg.dataset, seed=s,
                    model_kwargs={"hidden_dims": list(cfg.hidden_dims), "activation": "sigmoid",
                                  "normalization": norm, "weight_scale": cfg.weight_scale},
                    tags={"net": label, "mult": m}, task=_task(cfg, m))
            for m in cfg.multipliers for label, norm in NETS for s in cfg.seeds]


# --------------------------------------------------------------------------- measuring

def eval_steps(cfg: Config) -> list[int]:
    """The steps at which every run measures its test accuracy: 0, eval_every, ..., and the last."""
    steps = list(range(0, cfg.steps + 1, cfg.eval_every))
    return steps if steps[-1] == cfg.steps else steps + [cfg.steps]


def accuracy_curve(r, n: int) -> list | None:
    """A run's test accuracy at the ``n`` evaluation steps; a diverged run is at chance from its divergence
    on; None for a failed run or a history of the wrong length."""
    if r.status == "failed":
        return None
    acc = list(r.val_acc_history) + ([CHANCE] * (n - len(r.val_acc_history)) if r.status == "diverged" else [])
    return acc if len(acc) == n and all(a is not None for a in acc) else None


def final_acc(r, n: int):
    curve = accuracy_curve(r, n)
    return None if curve is None else curve[-1]


def _by_seed(rs: Runs, seeds, value) -> list:
    got = {s.seed: value(r) for s, r in rs}
    return [got.get(s) for s in seeds]


def mean_curve(rs: Runs, seeds, n: int) -> list | None:
    """The mean over ``seeds`` of the accuracy curves, or None unless every seed has one."""
    curves = _by_seed(rs, seeds, lambda r: accuracy_curve(r, n))
    return None if any(c is None for c in curves) else np.mean(curves, axis=0).tolist()


def mean_final(rs: Runs, seeds, n: int):
    vals = _by_seed(rs, seeds, lambda r: final_acc(r, n))
    return None if any(v is None for v in vals) else float(np.mean(vals))


def drift(r, relative: bool = True) -> float | None:
    """Median over the units of drift_u = mean_q |p_q(last probe) - p_q(step 0)| / (p85 - p15 at step 0)
    (``relative=False``: without the division, in the sigmoid input's units; reported, not a check);
    None unless the run finished with two probes or more (units of zero initial spread are left out)."""
    probes = r.extras.get("probes", {}).get("percentiles") if r.status == "finished" else None
    if not probes or len(probes) < 2:
        return None
    first, last = np.asarray(probes[0], dtype=float), np.asarray(probes[-1], dtype=float)   # (3 q, D units)
    width = first[-1] - first[0]
    keep = np.isfinite(width) & (width > 0) & np.all(np.isfinite(last), axis=0)
    if not keep.any():
        return None
    moved = np.mean(np.abs(last - first), axis=0)[keep]
    return float(np.median(moved / width[keep] if relative else moved))


def criteria(cfg: Config, curves: dict, finals: dict, drifts: dict, inv: dict) -> dict:
    """The checks of each claim, True / False / None (not measured), in the order of the criteria's text.
    ``curves[net]``: mean accuracy curve at x1; ``finals[(net, mult)]``: mean final accuracy;
    ``drifts[(net, seed)]``: median drift; ``inv``: the scale-invariance measures (``scale_invariance``)."""
    steps = eval_steps(cfg)
    bn, base = curves.get("batchnorm"), curves.get("baseline")
    if bn is None or base is None:
        a = [None, None]
    else:
        late = [i for i, s in enumerate(steps) if s > 0.1 * cfg.steps]
        reach = next((s for s, v in zip(steps, bn) if v >= base[-1]), None)
        a = [all(bn[i] >= base[i] for i in late), reach is not None and reach <= cfg.steps / 2]
    b = [None if drifts.get(("batchnorm", s)) is None or drifts.get(("baseline", s)) is None
         else bool(drifts[("batchnorm", s)] < drifts[("baseline", s)]) for s in cfg.seeds]
    f = lambda net, m: finals.get((net, m))
    ge = lambda x, y, d=0.0: None if x is None or y is None else bool(x >= y + d)
    c = [ge(f("batchnorm", 30), f("baseline", 30), 0.05), ge(f("batchnorm", 30), f("batchnorm", 1), -0.02),
         ge(f("batchnorm", 5), f("baseline", 5))]
    d = []
    for a_ in SCALES:
        m = inv[a_]
        d += [m["fwd"] <= TOL_FWD, m["fwd_eps0"] <= TOL_FWD_EXACT, m["grad"] <= TOL_GRAD]
    return {"a": a, "b": b, "c": c, "d": d}


def bn_linear(u, W, G, eps: float = 1e-5):
    """Batch norm (gamma 1, beta 0, train mode) of x = u W and the gradients of L = sum(BN(x) * G).

    Inputs: u (N, D_in), W (D_in, D), G (N, D) the upstream gradient dL/dBN(x); eps > 0 through
    ``batchnorm_forward`` / ``batchnorm_backward``.
    Returns ``(out (N, D), dL/dW (D_in, D), dL/du (N, D_in))``: dL/dW = u^T dL/dx, dL/du = dL/dx W^T.
    """
    from ...layers import batchnorm_backward, batchnorm_forward
    d = W.shape[1]
    out, cache = batchnorm_forward(u @ W, np.ones(d), np.zeros(d), {"mode": "train", "eps": eps})
    dx = batchnorm_backward(G, cache)[0]                                     # (N, D)
    return out, u.T @ dx, dx @ W.T


def scale_invariance(seed: int = 0, n: int = 60, d: int = 100) -> dict:
    """Section 3.3 measured: for each a in SCALES, with x = u W (u (n, d), W (d, d), G (n, d) standard
    normal, float64) and L = sum(BN(x) * G) (``bn_linear``):

    - "fwd": max|BN(u aW) - BN(u W)| / max|BN(u W)| (eps 1e-5);
    - "fwd_eps0": the same with eps 0, through the core ``normalize`` (``batchnorm_forward`` needs eps > 0);
    - "grad": ||a dL/d(aW) - dL/dW|| / ||dL/dW|| (eps 1e-5);
    - "du": ||dL/du(aW) - dL/du(W)|| / ||dL/du(W)||, the Jacobian's invariance (reported, not a check).
    """
    from ...nn.norm.core import normalize
    rng = np.random.default_rng([seed, 1502])
    u, W, G = rng.standard_normal((n, d)), rng.standard_normal((d, d)), rng.standard_normal((n, d))
    exact = lambda Wa: normalize(u @ Wa, (0,), 0.0)[0]                     # BN with eps 0
    ref, gW, gu = bn_linear(u, W, G)
    ref0 = exact(W)
    out = {}
    for a in SCALES:
        o, ga, gua = bn_linear(u, a * W, G)
        o0 = exact(a * W)
        out[a] = {"fwd": float(np.max(np.abs(o - ref)) / np.max(np.abs(ref))),
                  "fwd_eps0": float(np.max(np.abs(o0 - ref0)) / np.max(np.abs(ref0))),
                  "grad": float(np.linalg.norm(a * ga - gW) / np.linalg.norm(gW)),
                  "du": float(np.linalg.norm(gua - gu) / np.linalg.norm(gu))}
    return out


def _t(v, digits=3) -> str:
    return "not measured" if v is None else fmt(v, digits)


def _ours(key: str, cfg: Config, curves: dict, finals: dict, drifts: dict, inv: dict, absolute: dict) -> str:
    steps = eval_steps(cfg)
    if key == "a":
        bn, base = curves.get("batchnorm"), curves.get("baseline")
        if bn is None or base is None:
            return "not measured (a seed's x1 run is missing or failed)."
        late = [i for i, s in enumerate(steps) if s > 0.1 * cfg.steps]
        gap = min(bn[i] - base[i] for i in late)
        reach = next((s for s, v in zip(steps, bn) if v >= base[-1]), None)
        return (f"final mean test accuracy {fmt(bn[-1])} with BN, {fmt(base[-1])} without; smallest BN - baseline "
                f"gap after step {int(0.1 * cfg.steps)}: {fmt(gap)}; BN reaches the baseline's final {fmt(base[-1])} "
                + (f"at step {reach} of {cfg.steps}." if reach is not None else "at no evaluation."))
    if key == "b":
        return "median drift without / with BN: " + "; ".join(
            f"seed {s}: {_t(drifts.get(('baseline', s)))} / {_t(drifts.get(('batchnorm', s)))}"
            for s in cfg.seeds) + (". Not divided by the step-0 spread (reported, not a check): "
                                   + "; ".join(f"seed {s}: {_t(absolute.get(('baseline', s)))} / "
                                               f"{_t(absolute.get(('batchnorm', s)))}" for s in cfg.seeds)
                                   + "." if absolute else ".")
    if key == "c":
        f = lambda net, m: _t(finals.get((net, m)))
        return "final test accuracy without / with BN: " + "; ".join(
            f"x{m:g} (lr {cfg.learning_rate * m:g}): {f('baseline', m)} / {f('batchnorm', m)}"
            for m in cfg.multipliers) + "."
    worst = lambda k: max(inv[a][k] for a in SCALES)
    return (f"largest over a = 0.1, 10, 100: forward {fmt(worst('fwd'), 2)} (eps 1e-5), {fmt(worst('fwd_eps0'), 2)} "
            f"(eps 0); gradient {fmt(worst('grad'), 2)}; dL/du {fmt(worst('du'), 2)} (reported only).")


def findings(cfg: Config, curves: dict, finals: dict, drifts: dict, inv: dict,
             absolute: dict | None = None) -> list[Finding]:
    """The claims measured; ``absolute[(net, seed)]``: the drift not divided by the spread (words only)."""
    checks = criteria(cfg, curves, finals, drifts, inv)
    return [Finding(c, _ours(c.key, cfg, curves, finals, drifts, inv, absolute or {}), verdict(checks[c.key]))
            for c in CLAIMS]


# --------------------------------------------------------------------------- figures

def _band(ax, rs: Runs, label: str, x):
    results = [r for r in rs.results if r.status in ("finished", "diverged")]
    if results:
        figures.band(ax, [(r.val_acc_history, r.status == "diverged") for r in results], LEGEND[label],
                     figures.color_for(label), x=x, lw=1.4)


def _figure1(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    fig, (ax_a, ax_b, ax_c) = figures.new_figure(3, 1, width=4.3, height=3.4, title=(
        f"Figure 1 redrawn: 784-{'-'.join(map(str, cfg.hidden_dims))}-10 sigmoid net on {cfg.dataset}, "
        f"SGD lr {cfg.learning_rate:g}, batch {cfg.batch_size}"))
    steps = eval_steps(cfg)
    for label, _ in NETS:
        _band(ax_a, groups[(label, 1)], label, steps)
    ax_a.set(title="(a) test accuracy (zoomed, as the paper's)", xlabel="training step", ylabel="test accuracy")
    late = [v for label, _ in NETS for r in groups[(label, 1)].results for s, v in zip(steps, r.val_acc_history)
            if s > 0.1 * cfg.steps and v is not None]
    if late:                                 # the paper's axis starts at 0.7: the late differences show
        ax_a.set_ylim(max(0.0, min(late) - 0.05), min(1.0, max(late) + 0.05))
    if ax_a.get_legend_handles_labels()[0]:
        ax_a.legend(loc="lower right")
    seed, layer = cfg.seeds[0], len(cfg.hidden_dims)
    for ax, (label, _), panel in ((ax_b, NETS[0], "(b) without BN"), (ax_c, NETS[1], "(c) with BN")):
        run = [r for s, r in groups[(label, 1)] if s.seed == seed and r.status in ("finished", "diverged")]
        probes = run[0].extras.get("probes", {}).get("percentiles") if run else None
        if probes:
            p = np.asarray(probes, dtype=float)[:, :, cfg.shown_unit]           # (probes, 3 q)
            x = run[0].extras["probe_steps"]
            for j, (q, ls) in enumerate(zip((15, 50, 85), (":", "-", "--"))):
                ax.plot(x, p[:, j], color=figures.color_for(label), ls=ls, lw=1.5)
        else:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center")
        ax.set(title=f"{panel}: unit {cfg.shown_unit}, layer {layer}, seed {seed}", xlabel="training step",
               ylabel="input to the sigmoid")
    lo = min(ax_b.get_ylim()[0], ax_c.get_ylim()[0])
    hi = max(ax_b.get_ylim()[1], ax_c.get_ylim()[1])
    for ax in (ax_b, ax_c):
        ax.set_ylim(lo, hi)                     # one scale, as the paper's (b) and (c)
    from matplotlib.lines import Line2D
    fig.legend([Line2D([], [], color="0.25", ls=ls, lw=1.5) for ls in (":", "-", "--")],
               [f"(b, c) {q}th percentile over {cfg.probe_samples} test images" for q in (15, 50, 85)],
               loc="outside lower center", ncol=3)
    return figures.save(fig, stem)


def _figure_lr(cfg: Config, groups: dict, finals_by_seed: dict, stem: Path) -> list[Path]:
    k = len(cfg.multipliers)
    fig, axes = figures.new_figure(k + 1, 1, width=3.6, height=3.3, title=(
        f"Learning rates (section 3.3, section 4.2.2): base lr {cfg.learning_rate:g} times "
        f"{', '.join(f'{m:g}' for m in cfg.multipliers)}, {cfg.dataset}"))
    steps = eval_steps(cfg)
    for ax, m in zip(axes, cfg.multipliers):
        for label, _ in NETS:
            _band(ax, groups[(label, m)], label, steps)
        ax.axhline(CHANCE, color="0.5", lw=0.8, ls=":")
        ax.set(title=f"x{m:g} (lr {cfg.learning_rate * m:g})", xlabel="training step", ylabel="test accuracy",
               ylim=(0, 1))
    figures.sweep(axes[-1], cfg.multipliers, {LEGEND[label]: [finals_by_seed[(label, m)] for m in cfg.multipliers]
                                              for label, _ in NETS}, "final test accuracy", chance=CHANCE)
    axes[-1].set(title="final accuracy (diverged = 0.1)", xlabel="learning-rate multiplier (log)", ylim=(0, 1))
    axes[-1].set_xticks(list(cfg.multipliers), [f"x{m:g}" for m in cfg.multipliers])
    axes[-1].minorticks_off()
    figures.shared_legend(fig, axes[:-1])
    axes[-1].legend(loc="best", fontsize=7.5)
    return figures.save(fig, stem)


def _figure_invariance(inv: dict, stem: Path) -> list[Path]:
    fig, (ax,) = figures.new_figure(1, 1, width=7.6, height=2.1,
                                    title="Section 3.3: batch norm of u (aW), u 60 x 100, W 100 x 100, float64")
    ax.axis("off")
    head = ["a", f"forward, eps 1e-5\n(bound {TOL_FWD:g})", f"forward, eps 0\n(bound {TOL_FWD_EXACT:g})",
            f"a dL/d(aW) vs dL/dW\n(bound {TOL_GRAD:g})", "dL/du\n(reported)"]
    rows = [[f"{a:g}", f"{m['fwd']:.2e}", f"{m['fwd_eps0']:.2e}", f"{m['grad']:.2e}", f"{m['du']:.2e}"]
            for a, m in inv.items()]
    table = ax.table(cellText=rows, colLabels=head, loc="center", cellLoc="center")
    table.scale(1, 1.9)
    for (r, c), cell in table.get_celld().items():
        if r > 0 and 1 <= c <= 3:
            a = SCALES[r - 1]
            ok = inv[a][("fwd", "fwd_eps0", "grad")[c - 1]] <= (TOL_FWD, TOL_FWD_EXACT, TOL_GRAD)[c - 1]
            cell.set_facecolor("#e3f3e3" if ok else "#f8dcdc")
    return figures.save(fig, stem)


# --------------------------------------------------------------------------- analysis

def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    n = len(eval_steps(cfg))
    groups = {(label, m): done.where(net=label, mult=m).by_seed() for m in cfg.multipliers for label, _ in NETS}
    curves = {label: mean_curve(groups[(label, 1)], cfg.seeds, n) for label, _ in NETS}
    finals = {k: mean_final(rs, cfg.seeds, n) for k, rs in groups.items()}
    drifts = {(label, s.seed): drift(r) for label, _ in NETS for s, r in groups[(label, 1)]}
    absolute = {(label, s.seed): drift(r, relative=False) for label, _ in NETS for s, r in groups[(label, 1)]}
    inv = scale_invariance(cfg.seeds[0])
    found = findings(cfg, curves, finals, drifts, inv, absolute)
    finals_by_seed = {k: [(final_acc(r, n), r.status == "diverged") for r in rs.results]
                      + [(None, False)] * (len(cfg.seeds) - len(rs)) for k, rs in groups.items()}
    acc = {k: spread([v for v, _ in vals]) for k, vals in finals_by_seed.items()}
    dr = {label: spread([drifts.get((label, s)) for s in cfg.seeds]) for label, _ in NETS}
    dr_abs = {label: spread([absolute.get((label, s)) for s in cfg.seeds]) for label, _ in NETS}
    top = max(cfg.multipliers)
    answer = " ".join([
        compare(acc[("batchnorm", 1)], acc[("baseline", 1)], "batch norm", "no normalization",
                f"final test accuracy at the base learning rate {cfg.learning_rate:g}"),
        compare(dr["batchnorm"], dr["baseline"], "batch norm", "no normalization",
                "median drift of the last hidden layer's sigmoid inputs", higher_is_better=False),
        compare(acc[("batchnorm", top)], acc[("baseline", top)], "batch norm", "no normalization",
                f"final test accuracy at {top:g} times the base rate (a diverged run counted as 0.1)"),
        "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + ".",
    ]) + problems_sentence(done, len(runs(cfg)))
    table = [{"net": label, "lr multiplier": m, "learning rate": cfg.learning_rate * m,
              "final test acc": acc[(label, m)].mean, "final test acc range": _range(acc[(label, m)]),
              "median drift": dr[label].mean if m == 1 else None,
              "median drift range": _range(dr[label]) if m == 1 else None,
              "median drift, not divided": dr_abs[label].mean if m == 1 else None,
              "runs": status_text(groups[(label, m)], len(cfg.seeds))}
             for m in cfg.multipliers for label, _ in NETS]
    metrics = {
        "verdicts": verdict_metrics(found),
        "checks": criteria(cfg, curves, finals, drifts, inv),
        "criteria_inputs": {
            "eval_steps": eval_steps(cfg), "mean_test_acc_x1": curves,
            "final_test_acc_mean": {f"{net}/x{m:g}": v for (net, m), v in finals.items()},
            "median_drift": {f"{net}/seed={s}": v for (net, s), v in drifts.items()},
            "scale_invariance": {f"a={a:g}": m for a, m in inv.items()}, "chance": CHANCE},
        "conditions": {f"{net}/x{m:g}": {"final_test_acc": acc[(net, m)].as_dict()} for net, m in groups},
        "median_drift": {net: sp.as_dict() for net, sp in dr.items()},
        "median_drift_not_divided": {net: sp.as_dict() for net, sp in dr_abs.items()},
    }
    figs = [_figure1(cfg, groups, out_dir / "ioffe-szegedy-2015-figure1")[0],
            _figure_lr(cfg, groups, finals_by_seed, out_dir / "ioffe-szegedy-2015-learning-rates")[0],
            _figure_invariance(inv, out_dir / "ioffe-szegedy-2015-scale-invariance")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))


def _range(sp: Spread):
    return None if sp.mean is None else [sp.lo, sp.hi]
