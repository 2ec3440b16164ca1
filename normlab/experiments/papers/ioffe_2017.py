"""ioffe-2017: batch renormalization against batch norm with micro-batches and non-i.i.d. batches.

Reference: Sergey Ioffe (2017), "Batch Renormalization: Towards Reducing Minibatch
Dependence in Batch-Normalized Models", arXiv:1702.03275, Algorithm 1, Figure 2
(micro-batches) and Figure 3 (non-i.i.d. batches).

The paper's setup: Inception v3 on ImageNet, 50 synchronized workers, RMSProp.
Figure 2 trains with micro-batches of 4 examples per worker (batch norm's
statistics over 4 examples), Figure 3 with non-i.i.d. batches of 32 per worker
made of 16 labels with 2 examples each; both plot the validation accuracy
against the training step for batch norm and batch renorm, with the
ordinary-batch baseline. Batch renorm ran with r_max = 1, d_max = 0 (batch
norm) for the first 5000 steps, relaxed to r_max = 3 at 40k steps and d_max
= 5 at 25k steps. The accuracies are read from the figures; we carry over
only their order: batch renorm above batch norm in both.

Ours: Fashion-MNIST, a 784-100-100-10 fc net with the norm on both hidden
layers (``normalization='batchnorm'`` or ``'batchrenorm'``), 6000 training
images, SGD with momentum 0.9 at learning rate 0.01 and weight scale 0.05 (one
setting fixed before the runs and not tuned on them; batch norm at batch 4, the
paper's own condition, trains sensibly with it), the 'torch' convention (momentum
0.1 on the new batch, running variance starting at 1, so r is near 1 from the
start). Micro-batches of 2 and 4 (``task batch_size``), and non-i.i.d. batches
of 16 drawn from 2 of the 10 classes (``task batch_order='few_classes'``:
our scale of "few labels per batch"). The same number of steps (1500) for
every condition. The warm-up scaled to our steps: r_max = 1, d_max = 0 for
the first 10 %, r_max = 3 reached at 50 % and d_max = 5 at 30 % (the paper's
5k / 40k / 25k of a much longer run, in the same order). Three seeds; the
test accuracy (eval mode, 2000 test images) every 150 steps.

Claim (c) runs the trained net in *train* mode on the same test images in
batches of the training batch size (``measure``: the running statistics
restored before every batch, so each batch sees the trained net's) and
compares that accuracy with the eval-mode one. Claim (d) is computed in
``analyze``: float64 batch renorm with r_max = 1, d_max = 0 against batch
norm on random data, output and gradients.

Runs: ``{batchnorm,batchrenorm}/{batch=2,batch=4,noniid}/seed=S`` tagged
``net`` and ``cond``. Figures: Figure 2/3's layout (test accuracy against
the step, one panel per condition, BN and BRN with min-max bands over seeds)
and the train/eval-mode gap per condition.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..summarize import check_common, compare, config_dict, fmt, positive, positive_tuple, problems_sentence, \
    spread, status_text
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics

NAME = "ioffe-2017"
TITLE = "Batch renormalization against batch norm (Ioffe 2017)"
QUESTION = ("Does batch renormalization beat batch norm when the batches are tiny or not i.i.d., by keeping the "
            "net's training-mode outputs close to its inference-mode outputs?")
SUITE = "papers"

PAPER = Paper(
    authors="Sergey Ioffe", year=2017,
    title="Batch Renormalization: Towards Reducing Minibatch Dependence in Batch-Normalized Models",
    arxiv="1702.03275", where="Algorithm 1, Figure 2 (micro-batches of 4) and Figure 3 (non-i.i.d. batches)",
    setup=("Inception v3 on ImageNet, 50 synchronized workers, RMSProp; Figure 2: 4 examples per worker for the "
           "normalization; Figure 3: batches of 32 per worker from 16 labels, 2 examples each; batch renorm "
           "with r_max = 1, d_max = 0 for 5000 steps, relaxed to r_max = 3 at 40k and d_max = 5 at 25k steps; "
           "validation accuracy against the step."),
    ours=("Fashion-MNIST, a 784-100-100-10 fc net, 6000 training images, 1500 SGD-momentum steps at batch 2, "
          "batch 4 and non-i.i.d. batches of 16 from 2 classes; warm-up scaled to 10 % / 50 % / 30 % of the "
          "steps; test accuracy on 2000 test images; three seeds; about 35 CPU-seconds (--quick shrinks it)."))

CLAIMS = (
    Claim("a", "Batch renorm beats batch norm with micro-batches.",
          "Figure 2 (read from the figure): at 4 examples per worker batch renorm's validation accuracy stays "
          "above batch norm's through training and ends closer to the ordinary-batch baseline.",
          "acc_BRN(B) > acc_BN(B) for B = 2 and B = 4 (final eval-mode test accuracy, mean over seeds)."),
    Claim("b", "Batch renorm beats batch norm with non-i.i.d. batches.",
          "Figure 3 (read from the figure): with batches of few labels batch norm's accuracy falls far below "
          "batch renorm's.",
          "acc_BRN(non-iid) > acc_BN(non-iid) (final eval-mode test accuracy, mean over seeds)."),
    Claim("c", "Batch renorm shrinks the gap between the net's outputs in training and in inference mode.",
          "Section 3 (the method's motivation): with r and d the train-mode activations equal the inference ones "
          "within the clips.",
          "|acc_train_mode - acc_eval_mode| of BRN < that of BN at B = 2 and at B = 4 (test set, train mode in "
          "batches of B, mean over seeds)."),
    Claim("d", "With r_max = 1 and d_max = 0 batch renorm is batch norm.",
          "Algorithm 1 with r = 1, d = 0 (the paper's first 5000 steps).",
          "max |BRN - BN| of the output and of dx, dgamma, dbeta <= 1e-12 (float64)."),
)

NETS = ("batchnorm", "batchrenorm")
LEGEND = {"batchnorm": "batch norm", "batchrenorm": "batch renorm"}
COLORS = {"batchnorm": "#1f77b4", "batchrenorm": "#d62728"}
TOL_D = 1e-12


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100, 100)   # paper: Inception v3; a small fc net on a CPU
    weight_scale: float = 0.05
    num_train: int = 6000
    num_test: int = 2000
    steps: int = 1500                           # the same for every condition
    eval_every: int = 150
    micro_batches: tuple[int, ...] = (2, 4)     # paper: 4 per worker
    noniid_batch: int = 16                      # paper: 32 per worker from 16 labels; ours from 2 classes
    learning_rate: float = 0.01                 # SGD momentum 0.9; fixed before the runs, not tuned
    r_max: float = 3.0                          # paper's final limits
    d_max: float = 5.0
    warmup: tuple[float, float, float] = (0.1, 0.5, 0.3)   # fractions of the steps: start, r_end, d_end
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "micro_batches", integer=True)
        positive(self, "num_train", "num_test", "steps", "eval_every", "noniid_batch", integer=True)
        positive(self, "weight_scale", "learning_rate")
        if min(self.micro_batches) < 2:
            raise ValueError(f"micro_batches={self.micro_batches}: batch norm needs at least 2 images a batch")
        if self.noniid_batch % 2:
            raise ValueError(f"noniid_batch={self.noniid_batch} must be even (half from each of 2 classes)")
        if not (self.r_max >= 1 and self.d_max >= 0):
            raise ValueError(f"r_max={self.r_max} must be >= 1 and d_max={self.d_max} >= 0")
        s, r, d = self.warmup
        if not (0 <= s < r <= 1 and s < d <= 1):
            raise ValueError(f"warmup={self.warmup} must be fractions start < r_end <= 1, start < d_end <= 1")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=1000, num_test=300, steps=120, eval_every=40,
                               seeds=cfg.seeds[:2])


def conditions(cfg: Config) -> list[tuple[str, int, str]]:
    """(cond label, batch size, batch order) of every condition."""
    return [(f"batch={b}", b, "iid") for b in cfg.micro_batches] + [("noniid", cfg.noniid_batch, "few_classes")]


def runs(cfg: Config) -> list[RunSpec]:
    s0, r1, d1 = (int(round(f * cfg.steps)) for f in cfg.warmup)
    specs = []
    for net in NETS:
        kwargs = {"hidden_dims": list(cfg.hidden_dims), "normalization": net, "weight_scale": cfg.weight_scale,
                  "norm_param": {"convention": "torch"}}
        if net == "batchrenorm":
            kwargs["norm_param"] = {"convention": "torch", "r_max": cfg.r_max, "d_max": cfg.d_max,
                                    "warmup": [s0, max(r1, s0 + 1), max(d1, s0 + 1)]}
        for cond, batch, order in conditions(cfg):
            task = {"kind": "steps", "steps": cfg.steps, "batch_size": batch, "update_rule": "sgd_momentum",
                    "optim_config": {"learning_rate": cfg.learning_rate}, "eval_every": cfg.eval_every,
                    "eval_set": "test", "batch_order": order,
                    "measure": {"fn": "normlab.experiments.papers.ioffe_2017:train_mode_accuracy",
                                "kwargs": {"batch_size": batch}}}
            specs += [RunSpec(experiment=NAME, name=f"{net}/{cond}/seed={s}", model="fc", model_kwargs=kwargs,
                              dataset=cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, seed=s,
                              tags={"net": net, "cond": cond, "batch": batch}, task=task)
                      for s in cfg.seeds]
    return specs


# --------------------------------------------------------------------------- measuring

def train_mode_accuracy(model, data, batch_size: int) -> dict:
    """The test accuracy in eval mode and in train mode (batches of ``batch_size`` in order, each with the
    trained net's running statistics restored first, so no batch sees another's)."""
    X, y = data["X_test"], data["y_test"]
    n = len(X) - len(X) % batch_size
    state = model.state_arrays()
    hits = 0
    for i in range(0, n, batch_size):
        hits += int(np.sum(np.argmax(model.scores(X[i:i + batch_size], mode="train"), axis=1) == y[i:i + batch_size]))
        model.load_state_arrays(state)
    eval_acc = float(np.mean(np.argmax(model.scores(X[:n], mode="test"), axis=1) == y[:n]))
    return {"train_mode_acc": hits / n, "eval_mode_acc": eval_acc, "samples": n}


def identity_check(seed: int = 0) -> float:
    """max |BRN(r_max=1, d_max=0) - BN| over the output, dx, dgamma, dbeta and the running statistics (float64)."""
    from ...nn.norm.batchnorm import batchnorm_after_bias, batchnorm_backward_closed
    from ...nn.norm.renorm import batchrenorm_backward, batchrenorm_forward
    rng = np.random.default_rng(seed)
    x, bias = 3 * rng.standard_normal((16, 7)) + 1, rng.standard_normal(7)
    g, b, dout = rng.standard_normal(7), rng.standard_normal(7), rng.standard_normal((16, 7))
    stats = {"running_mean": rng.standard_normal(7), "running_var": rng.random(7) + 0.5, "convention": "torch"}
    p_brn, p_bn = {"mode": "train", "r_max": 1.0, "d_max": 0.0, **stats}, {"mode": "train", **stats}
    o1, c1 = batchrenorm_forward(x, g, b, p_brn, bias=bias)
    o2, c2 = batchnorm_after_bias(x, bias, g, b, p_bn)
    diffs = [np.max(np.abs(o1 - o2))] + [np.max(np.abs(u - v)) for u, v in
                                          zip(batchrenorm_backward(dout, c1), batchnorm_backward_closed(dout, c2))]
    diffs += [np.max(np.abs(p_brn[k] - p_bn[k])) for k in ("running_mean", "running_var")]
    return float(max(diffs))


def _final(r):
    return r.val_acc_history[-1] if r.status == "finished" and r.val_acc_history else None


def _gap(r):
    m = r.extras.get("measure") if r.status == "finished" else None
    return None if not m else abs(m["train_mode_acc"] - m["eval_mode_acc"])


def _mean_all(rs: Runs, seeds, of):
    by_seed = {s.seed: of(r) for s, r in rs}
    vals = [by_seed.get(s) for s in seeds]
    return None if any(v is None for v in vals) else float(np.mean(vals))


def _gt(a, b):
    return None if a is None or b is None else bool(a > b)


def criteria(acc: dict, gap: dict, micro: tuple, identity: float | None) -> dict:
    """Each claim's checks from mean accuracies / gaps ``acc[(net, cond)]`` (None when not measured)."""
    return {"a": [_gt(acc.get(("batchrenorm", f"batch={b}")), acc.get(("batchnorm", f"batch={b}"))) for b in micro],
            "b": [_gt(acc.get(("batchrenorm", "noniid")), acc.get(("batchnorm", "noniid")))],
            "c": [_gt(gap.get(("batchnorm", f"batch={b}")), gap.get(("batchrenorm", f"batch={b}"))) for b in micro],
            "d": [None if identity is None else bool(identity <= TOL_D)]}


def _t(v, digits=3):
    return "not measured" if v is None else fmt(v, digits)


def findings(acc: dict, gap: dict, micro: tuple, identity: float | None) -> list[Finding]:
    checks = criteria(acc, gap, micro, identity)
    pair = lambda d, cond: f"BRN {_t(d.get(('batchrenorm', cond)))} vs BN {_t(d.get(('batchnorm', cond)))}"
    ours = {"a": "; ".join(f"batch {b}: {pair(acc, f'batch={b}')}" for b in micro) + " (final test accuracy).",
            "b": f"non-i.i.d.: {pair(acc, 'noniid')} (final test accuracy).",
            "c": "; ".join(f"batch {b}: |train - eval| {pair(gap, f'batch={b}')}" for b in micro) + ".",
            "d": f"max |BRN - BN| = {'not measured' if identity is None else f'{identity:.1e}'} (bound {TOL_D:.0e})."}
    return [Finding(c, ours[c.key], verdict(checks[c.key])) for c in CLAIMS]


# --------------------------------------------------------------------------- figures

def _figure(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    conds = conditions(cfg)
    fig, axes = figures.new_figure(len(conds) + 1, 1, width=4.0, height=3.3,
                                   title=f"Figures 2 and 3 redrawn: fc net on {cfg.dataset}, eval-mode test accuracy")
    for ax, (cond, batch, order) in zip(axes, conds):
        for net in NETS:
            rs = [r for r in groups[(net, cond)].results if r.status in ("finished", "diverged")]
            if rs:
                x = max((r.extras.get("eval_steps", []) for r in rs), key=len)
                figures.band(ax, [(r.val_acc_history, r.status == "diverged") for r in rs], LEGEND[net],
                             COLORS[net], x=x)
        what = f"micro-batches of {batch}" if order == "iid" else f"non-i.i.d. batches of {batch} (2 classes)"
        ax.set(title=what, xlabel="training step", ylabel="test accuracy")
    ax = axes[-1]
    for k, net in enumerate(NETS):
        for j, (cond, _, _) in enumerate(conds):
            vals = [g for g in (_gap(r) for r in groups[(net, cond)].results) if g is not None]
            if vals:
                xj = j + (k - 0.5) * 0.3
                ax.plot([xj] * len(vals), vals, "o", color=COLORS[net], alpha=0.6, ms=4)
                ax.plot([xj - 0.1, xj + 0.1], [np.mean(vals)] * 2, color=COLORS[net], lw=2)
    ax.set_xticks(range(len(conds)), [c for c, _, _ in conds])
    ax.set(title="|train-mode - eval-mode accuracy| (seeds, mean)", ylabel="accuracy gap")
    figures.shared_legend(fig, axes[:-1])
    return figures.save(fig, stem)


# --------------------------------------------------------------------------- analysis

def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    conds = conditions(cfg)
    groups = {(net, cond): done.where(net=net, cond=cond).by_seed() for net in NETS for cond, _, _ in conds}
    acc = {k: _mean_all(rs, cfg.seeds, _final) for k, rs in groups.items()}
    gap = {k: _mean_all(rs, cfg.seeds, _gap) for k, rs in groups.items()}
    try:
        identity = identity_check()
    except (ValueError, FloatingPointError):
        identity = None
    found = findings(acc, gap, cfg.micro_batches, identity)
    missing = lambda rs: [None] * (len(cfg.seeds) - len(rs))
    sp = {k: (spread([_final(r) for r in rs.results] + missing(rs)), spread([_gap(r) for r in rs.results] + missing(rs)))
          for k, rs in groups.items()}
    answer = " ".join([compare(sp[("batchrenorm", c)][0], sp[("batchnorm", c)][0], "batch renorm", "batch norm",
                               f"final test accuracy ({c})") for c, _, _ in conds]
                      + ["Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + "."]
                      ) + problems_sentence(done, len(runs(cfg)))
    table = [{"net": net, "condition": cond, "final_test_acc": sp[(net, cond)][0].mean,
              "final_test_acc_range": [sp[(net, cond)][0].lo, sp[(net, cond)][0].hi],
              "train_eval_gap": sp[(net, cond)][1].mean, "train_eval_gap_range": [sp[(net, cond)][1].lo,
                                                                                 sp[(net, cond)][1].hi],
              "runs": status_text(groups[(net, cond)], len(cfg.seeds))} for (net, cond) in groups]
    metrics = {"verdicts": verdict_metrics(found), "checks": criteria(acc, gap, cfg.micro_batches, identity),
               "criteria_inputs": {"acc": {f"{n}/{c}": v for (n, c), v in acc.items()},
                                   "gap": {f"{n}/{c}": v for (n, c), v in gap.items()},
                                   "identity_max_abs_diff": identity, "tol_d": TOL_D},
               "conditions": {f"{n}/{c}": {"final_test_acc": a.as_dict(), "train_eval_gap": g.as_dict()}
                              for (n, c), (a, g) in sp.items()}}
    figs = [_figure(cfg, groups, out_dir / "ioffe-2017-figures2-3")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
