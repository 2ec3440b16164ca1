"""santurkar-2018: does batch norm help by reducing internal covariate shift, or by smoothing the landscape?

Santurkar, Tsipras, Ilyas & Madry (2018), "How Does Batch Normalization Help Optimization?",
arXiv:1805.11604. Reproduced: Figure 2 (section 2.1, "noisy" batch norm), Figure 3 and
Definition 2.1 (section 2.2, internal covariate shift as a change of gradients, with the
25-layer deep linear network), Figure 4 (section 3.1, the loss landscape along the gradient).

The paper's setup: a VGG net on CIFAR-10 trained by SGD, with and without batch norm, and with
batch norm followed by noise that changes at every step (non-zero mean, non-unit variance,
per layer); ICS of layer i at step t is ``||G - G'||`` and ``cos(G, G')`` with G the layer's
gradient and G' the same gradient once the layers before i have taken their step; the landscape
probe moves along the gradient by step sizes of 1/2 to 4 times the learning rate and records the
range of the loss, the l2 change of the gradient and that change over the distance moved
("effective" beta-smoothness). The DLN (Appendix A.1, ``normlab.nets.linear``): 25 square 10x10
layers, 1000 Gaussian examples, full-batch gradient descent for 10,000 steps.

Ours, and why: a 2-core CPU and about four minutes, so no VGG. The course's six-layer MLP
(hidden [100]*5, ReLU) on Fashion-MNIST, standard / batchnorm / noisy-batchnorm
(``normlab.nn.norm.noisy``), plain SGD at one learning rate for all three as the paper compares:

- learning rate 0.1, the paper's VGG rate as we read it (we could not re-check it in the stored
  text), batch 128, 4000 steps (about 8.7 epochs), 3 seeds;
- weight scale sqrt(2/100) = 0.141, He's scale for the 100-wide ReLU layers, so the standard
  net is a sensible baseline: at the course's 2e-2 (tuned for Adam) a pilot with plain SGD stayed
  at chance (loss 2.303) for 1000 steps, which would test initialization, not the paper's claims;
- the probes every 100 steps on the step's batch, before its update (``normlab.lab.stepwise``):
  ICS at layers 2, 4, 6 (of 6 affine layers), the landscape at 0.5, 1, 2, 3, 4 x the rate on
  the standard and batch-norm nets, and the 15/50/85th percentiles of one unit of layer 3 (the
  paper's activation histograms) on all three;
- the DLN as in the paper but 1000 steps (10,000 would take ten times the budget), 3 seeds,
  ICS at layers 5, 13, 21 every 50 steps, trained here in ``analyze`` (synthetic data is not a
  RunSpec). Learning rate 2e-3 on our loss ``0.5/N ||f(X) - Y||^2``: the paper's 1e-6 if its
  objective sums the squares over the 1000 examples (``normlab.nets.linear``); both DLNs train
  at it (pilot: the loss falls from about 45 to 5-11 in 1000 steps).

Deviation: the step-wise runs record the training loss per step, not a training accuracy, so
Figure 2's training panel shows the training loss. Criteria (fixed before any run) are the
``CLAIMS``; aggregation: per run a median over probe steps (for (b) after step 0, for (c) the
steps t < steps / 2, step 0 included), then the mean over the seeds that have a value.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..summarize import check_common, config_dict, fmt, positive, positive_tuple, problems_sentence, spread, status_text
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics

NAME = "santurkar-2018"
TITLE = "Santurkar et al. 2018: batch norm smooths the landscape, it does not reduce covariate shift"
QUESTION = ("Does batch norm help optimization without reducing internal covariate shift, by making the loss "
            "landscape smoother (Santurkar, Tsipras, Ilyas & Madry 2018)?")
SUITE = "papers"
PAPER = Paper(
    authors="Santurkar, Tsipras, Ilyas & Madry", year=2018, title="How Does Batch Normalization Help Optimization?",
    arxiv="1805.11604", where="Figure 2 (section 2.1), Figure 3 and Definition 2.1 (section 2.2), Figure 4 (section 3.1)",
    setup=("VGG on CIFAR-10 trained by SGD, standard vs batch norm vs batch norm followed by time-varying noise of "
           "non-zero mean and non-unit variance; ICS as the change of a layer's gradient when the earlier layers "
           "take their step; the loss and gradient along the gradient direction at 1/2 to 4 times the learning "
           "rate; a 25-layer deep linear network (10x10 layers, 1000 Gaussian examples, full-batch gradient "
           "descent, 10,000 steps)."),
    ours=("Fashion-MNIST, the six-layer MLP (hidden [100]*5, ReLU, weight scale sqrt(2/100)), plain SGD at 0.1, "
          "batch 128, 4000 steps, 3 seeds; ICS at layers 2, 4, 6 and the landscape every 100 steps; the DLN as "
          "the paper's but 1000 steps at 2e-3 (mean squared error / 2), 3 seeds. A CPU budget of four minutes."))
CLAIMS = (
    Claim("a", "Batch norm with noise injected after every BN layer trains about as well as batch norm, and better "
               "than the net without normalization.",
          "Figure 2: the noisy-BN net's training and test accuracy curves lie close to BN's and above the standard "
          "net's, although its activation distributions shift visibly more (read from the figure).",
          "means over the seeds, acc = test accuracy: acc_noisy(final) >= acc_BN(final) - 0.02; "
          "acc_noisy(final) > acc_std(final); acc_noisy(25% of the steps) > acc_std(25% of the steps)."),
    Claim("b", "Batch norm does not reduce internal covariate shift measured on the gradients (Definition 2.1).",
          "Figure 3: with BN the l2 difference of G and G' is similar or larger and the cosine similar or lower "
          "than without; in the 25-layer DLN the standard net shows almost no ICS while with BN G and G' are "
          "almost uncorrelated (read from the figure and section 2.2).",
          "per probed MLP layer: mean over seeds of the median over probe steps (after step 0) of cos(G, G') with "
          "BN <= the standard net's + 0.05; per probed DLN layer (3, spread over the depth): that median with "
          "BN < the standard DLN's."),
    Claim("c", "Batch norm makes the loss landscape smoother: the loss and its gradient change less along the "
               "gradient, most of all early in training.",
          "Figure 4: the variation of the loss, the change of the gradient and the effective beta-smoothness are "
          "all clearly smaller with BN, most of all early in training (read from the figure).",
          "over the probe steps in the first half of training, mean over seeds of the median with BN < the "
          "standard net's, for each of: the loss range, the l2 change of the gradient (its maximum over the step "
          "sizes), the effective beta-smoothness."),
)
NETS = (("standard", None), ("batchnorm", "batchnorm"), ("noisy-batchnorm", "noisy-batchnorm"))
PROBED = ("standard", "batchnorm")                   # the ICS and landscape probes run on these
LABELS = {"standard": "standard", "batchnorm": "batch norm", "noisy-batchnorm": "noisy batch norm"}
COLORS = {"standard": "#4d4d4d", "batchnorm": "#1f77b4", "noisy-batchnorm": "#ff7f0e"}
LANDSCAPE = (("loss_range", "loss range"), ("grad_change", "gradient change"), ("beta", "effective beta-smoothness"))
TOL_A, TOL_B = 0.02, 0.05                            # the criteria's tolerances, fixed with them


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100,) * 5   # the course's six-layer net
    weight_scale: float = 2 ** 0.5 / 10          # sqrt(2/100): He's scale for the 100-wide ReLU layers
    learning_rate: float = 0.1                   # plain SGD, the same for the three nets
    batch_size: int = 128
    steps: int = 4000                            # ~8.7 epochs of 59,000 images
    eval_every: int = 200                        # test accuracy every k steps; must divide steps / 4
    probe_every: int = 100                       # ICS, landscape and percentiles every k steps
    ics_layers: tuple[int, ...] = (2, 4, 6)      # 1-based affine layers (6 is the output layer)
    multipliers: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0)   # step sizes / learning rate: the paper's [1/2, 4]
    histogram_layer: int = 3                     # the hidden layer whose activation inputs Figure 2 shows
    histogram_samples: int = 1000                # the first n test images, forwarded in train mode
    num_train: int | None = None                 # None: the loader's 59,000
    num_test: int | None = None                  # None: all 10,000
    dln_depth: int = 25                          # the paper's DLN
    dln_width: int = 10
    dln_examples: int = 1000
    dln_learning_rate: float = 2e-3              # on 0.5/N ||f(X) - Y||^2; the paper's 1e-6 on the summed squares
    dln_steps: int = 1000                        # the paper's 10,000 would take ten times the budget
    dln_probe_every: int = 50
    dln_layers: tuple[int, ...] = (5, 13, 21)    # at least 3, spread over the depth
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "multipliers")
        positive(self, "weight_scale", "learning_rate", "dln_learning_rate")
        positive(self, "batch_size", "steps", "eval_every", "probe_every", "histogram_samples", "dln_depth",
                 "dln_width", "dln_examples", "dln_steps", "dln_probe_every", integer=True)
        for name in ("num_train", "num_test"):
            if getattr(self, name) is not None:
                positive(self, name, integer=True)
        if self.steps % 4 or (self.steps // 4) % self.eval_every:
            raise ValueError(f"steps={self.steps} and eval_every={self.eval_every}: criterion (a) reads the test "
                             f"accuracy at 25% of the steps, so steps / 4 must be a multiple of eval_every")
        if self.probe_every * 2 > self.steps:
            raise ValueError(f"probe_every={self.probe_every} leaves no probe after step 0 in the first half of "
                             f"steps={self.steps}; use probe_every <= steps / 2")
        if self.dln_examples < 2:
            raise ValueError(f"dln_examples={self.dln_examples}: batch norm needs at least 2 examples")
        if self.dln_probe_every >= self.dln_steps:
            raise ValueError(f"dln_probe_every={self.dln_probe_every} must be below dln_steps={self.dln_steps}")
        if self.num_train is not None and self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")
        _layers(self, "ics_layers", len(self.hidden_dims) + 1, 1)
        _layers(self, "dln_layers", self.dln_depth, 3)
        if not 1 <= self.histogram_layer <= len(self.hidden_dims) or isinstance(self.histogram_layer, bool):
            raise ValueError(f"histogram_layer={self.histogram_layer!r} is not a hidden layer (1.."
                             f"{len(self.hidden_dims)})")


def _layers(cfg, name, top, least):
    v = getattr(cfg, name)
    if (not isinstance(v, tuple) or len(set(v)) < least or len(set(v)) != len(v)
            or any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= top for i in v)):
        raise ValueError(f"{name}={v!r}: expected at least {least} distinct layer numbers in 1..{top}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32,) * 5, steps=200, eval_every=50, probe_every=25, batch_size=64,
                               num_train=2000, num_test=1000, histogram_samples=200, dln_steps=60,
                               dln_probe_every=15, seeds=cfg.seeds[:2])


def _task(cfg: Config, label: str) -> dict:
    probes = {"percentiles": {"layer": cfg.histogram_layer, "q": [15, 50, 85], "samples": cfg.histogram_samples}}
    if label in PROBED:
        probes["ics"] = {"layers": list(cfg.ics_layers)}
        probes["landscape"] = {"multipliers": [float(m) for m in cfg.multipliers]}
    return {"kind": "steps", "steps": cfg.steps, "batch_size": cfg.batch_size, "update_rule": "sgd",
            "optim_config": {"learning_rate": cfg.learning_rate}, "eval_every": cfg.eval_every, "eval_set": "test",
            "probe_every": cfg.probe_every, "probes": probes}


def runs(cfg: Config) -> list[RunSpec]:
    return [RunSpec(experiment=NAME, name=f"{label}/seed={s}", model="fc", tags={"net": label},
                    model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": norm,
                                  "weight_scale": float(cfg.weight_scale)},
                    dataset=cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, seed=s, task=_task(cfg, label))
            for label, norm in NETS for s in cfg.seeds]


# --------------------------------------------------------------------------- the deep linear network

def train_dln(cfg: Config, normalization, seed: int) -> dict:
    """Full-batch gradient descent on the paper's DLN regression task of ``seed`` (the same task and
    initial weights with and without batch norm), the ICS probe every ``dln_probe_every`` steps at
    ``dln_layers`` before that step's update. Returns JSON-able {status, loss, probe_steps, ics}."""
    from ...lab.probes import internal_covariate_shift
    from ...nets.linear import DeepLinearNet, linear_regression_task
    from ...nn._checks import NonFiniteError
    X, Y, _ = linear_regression_task(seed, n=cfg.dln_examples, dim=cfg.dln_width)
    model = DeepLinearNet(cfg.dln_depth, cfg.dln_width, normalization=normalization, rng_seed=seed)
    lr, out = cfg.dln_learning_rate, {"status": "finished", "loss": [], "probe_steps": [], "ics": []}
    with np.errstate(all="ignore"):
        for t in range(cfg.dln_steps):
            try:
                loss, grads = model.loss(X, Y)
                if not (math.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())):
                    raise NonFiniteError(f"non-finite loss or gradient at step {t}")
                if t % cfg.dln_probe_every == 0:
                    out["ics"].append(internal_covariate_shift(model, X, Y, lr, cfg.dln_layers))
                    out["probe_steps"].append(t)
            except NonFiniteError:
                out["status"] = "diverged"
                break
            out["loss"].append(float(loss))
            for k in model.params:
                model.params[k] = model.params[k] - lr * grads[k]
    return out


def dln_runs(cfg: Config) -> dict:
    """``{label: [train_dln result per seed]}`` for the standard and batch-norm DLN."""
    return {label: [train_dln(cfg, norm, s) for s in cfg.seeds] for label, norm in NETS[:2]}


# --------------------------------------------------------------------------- the criteria

def _nan(v) -> float:
    return math.nan if v is None else float(v)


def _ok(r) -> bool:
    return r.status == "finished"


def _probes(r, name) -> list:
    """A run's measurements of probe ``name``, one per probe step (empty when it has none)."""
    return r.extras.get("probes", {}).get(name, [])


def acc_at(r, step: int):
    """The test accuracy after ``step`` steps of a finished run (None when not measured)."""
    steps = r.extras.get("eval_steps", [])
    return float(r.val_acc_history[steps.index(step)]) if _ok(r) and step in steps else None


def ics_medians(probe_steps, ics, layers) -> list:
    """Per layer, the median over probe steps after step 0 of cos(G, G') (None where none is finite)."""
    out = []
    for j in range(len(layers)):
        vals = [_nan(p["cos"][j]) for t, p in zip(probe_steps, ics) if t > 0]
        vals = [v for v in vals if math.isfinite(v)]
        out.append(float(np.median(vals)) if vals else None)
    return out


def landscape_medians(r, half: float) -> dict:
    """The medians over probe steps t < ``half`` of the three landscape measures; a non-finite value
    counts as +inf (the loss or gradient left the float range along the gradient)."""
    pts = [p for t, p in zip(r.extras.get("probe_steps", []), _probes(r, "landscape")) if t < half]
    return {k: float(np.median([math.inf if p[k] is None else p[k] for p in pts])) if pts else None
            for k, _ in LANDSCAPE}


def _mean(values):
    """Mean of the values that are not None (inf kept, so an unbounded seed makes the mean unbounded)."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _check(a, b, holds):
    """``holds(a, b)`` as a bool, None when either number was not measured."""
    return None if a is None or b is None else bool(holds(a, b))


def measure(cfg: Config, done: Runs, dln: dict) -> dict:
    """The numbers the three criteria use, and their checks ({'a': [...], 'b': [...], 'c': [...]})."""
    by = {label: done.where(net=label).by_seed().results for label, _ in NETS}
    final = {k: spread([acc_at(r, cfg.steps) for r in rs]) for k, rs in by.items()}
    early = {k: spread([acc_at(r, cfg.steps // 4) for r in rs]) for k, rs in by.items()}
    noisy, bn, std = (final[k].mean for k in ("noisy-batchnorm", "batchnorm", "standard"))
    checks_a = [_check(noisy, bn, lambda x, y: x >= y - TOL_A), _check(noisy, std, lambda x, y: x > y),
                _check(early["noisy-batchnorm"].mean, early["standard"].mean, lambda x, y: x > y)]
    mlp = {k: [ics_medians(r.extras.get("probe_steps", []), _probes(r, "ics"), cfg.ics_layers)
               for r in by[k] if _ok(r)] for k in PROBED}
    lin = {k: [ics_medians(d["probe_steps"], d["ics"], cfg.dln_layers) for d in dln.get(k, [])
               if d["status"] == "finished"] for k in PROBED}
    mlp_cos = {k: [spread([m[j] for m in mlp[k]]) for j in range(len(cfg.ics_layers))] for k in PROBED}
    dln_cos = {k: [spread([m[j] for m in lin[k]]) for j in range(len(cfg.dln_layers))] for k in PROBED}
    checks_b = ([_check(b.mean, s.mean, lambda x, y: x <= y + TOL_B)
                 for b, s in zip(mlp_cos["batchnorm"], mlp_cos["standard"])]
                + [_check(b.mean, s.mean, lambda x, y: x < y) for b, s in zip(dln_cos["batchnorm"], dln_cos["standard"])])
    land = {k: [landscape_medians(r, cfg.steps / 2) for r in by[k] if _ok(r)] for k in PROBED}
    land_mean = {k: {m: _mean([x[m] for x in land[k]]) for m, _ in LANDSCAPE} for k in PROBED}
    checks_c = [_check(land_mean["batchnorm"][m], land_mean["standard"][m], lambda x, y: x < y) for m, _ in LANDSCAPE]
    return {"final": final, "early": early, "mlp_cos": mlp_cos, "dln_cos": dln_cos, "land": land,
            "land_mean": land_mean, "checks": {"a": checks_a, "b": checks_b, "c": checks_c}}


# --------------------------------------------------------------------------- figures, in the paper's layout

def _finite_mean(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def _window_means(losses, w: int) -> list:
    """The training loss averaged over each window of ``w`` steps (None for a window with a non-finite step)."""
    return [None if any(v is None for v in losses[i:i + w]) else float(np.mean(losses[i:i + w]))
            for i in range(0, len(losses) - w + 1, w)]


def _seed_range(s) -> tuple:
    """(lo, hi) of a Spread, widened to hold its mean (a mean of equal values may round just outside)."""
    return (None, None) if s.mean is None else (min(s.lo, s.mean), max(s.hi, s.mean))


def _figure2(cfg, by, m, stem) -> Path:
    fig, axes = figures.new_figure(3, 2, width=4.3, height=3.2, title=f"Figure 2 redrawn: standard, batch norm and "
                                   f"noisy batch norm ({cfg.dataset}, six-layer MLP, SGD {cfg.learning_rate:g})")
    w, hist = cfg.eval_every, axes[3:]
    for label, _ in NETS:
        rs = [r for r in by[label] if r.status != "failed"]
        div = [r.status == "diverged" for r in rs]
        figures.band(axes[0], [(_window_means(r.loss_history, w), d) for r, d in zip(rs, div)], LABELS[label],
                     COLORS[label], x=list(range(w, cfg.steps + 1, w)))
        figures.band(axes[1], [(r.val_acc_history, d) for r, d in zip(rs, div)], LABELS[label], COLORS[label],
                     x=list(range(0, cfg.steps + 1, w)))
    axes[0].set(title="Training loss (mean over each eval window)", xlabel="step", ylabel="loss", yscale="log")
    axes[1].set(title="Test accuracy", xlabel="step", ylabel="accuracy")
    series = {LABELS[k]: [m["early"][k].mean, m["final"][k].mean] for k, _ in NETS}
    errors = {LABELS[k]: tuple(zip(_seed_range(m["early"][k]), _seed_range(m["final"][k]))) for k, _ in NETS}
    figures.grouped_bars(axes[2], [f"step {cfg.steps // 4} (25%)", f"step {cfg.steps} (final)"], series,
                         "test accuracy", errors=errors, fmt=".3f", colors=[COLORS[k] for k, _ in NETS])
    known = [v for vals in series.values() for v in vals if v is not None]
    axes[2].set(title="Criterion (a): test accuracy, seed range", ylim=(max(min(known, default=0.1) - 0.08, 0), 1))
    for ax, (label, _) in zip(hist, NETS):
        r = next((r for r in by[label] if r.status != "failed" and _probes(r, "percentiles")), None)
        if r is None:
            continue
        x, p = r.extras["probe_steps"], np.array(_probes(r, "percentiles"), dtype=float)[:, :, 0]
        ax.fill_between(x, p[:, 0], p[:, 2], color=COLORS[label], alpha=0.3, lw=0, label="15th-85th percentile")
        ax.plot(x, p[:, 1], color=COLORS[label], lw=1.4, label="median")
        ax.set(title=f"{LABELS[label]}: layer {cfg.histogram_layer}, unit 1 (first seed)", xlabel="step",
               ylabel="activation input (train mode)")
    lims = [ax.get_ylim() for ax in hist if ax.has_data()]
    for ax in hist:
        if lims:
            ax.set_ylim(min(lo for lo, _ in lims), max(hi for _, hi in lims))
    figures.shared_legend(fig, axes[:2] + hist[:1])
    return figures.save(fig, stem)[0]


def _ics_series(items, key, j):
    """[(values of layer j over probe steps, diverged)] and the longest step grid, from (steps, ics, diverged)."""
    return [([_nan(p[key][j]) for p in ics], d) for _, ics, d in items], max((s for s, _, _ in items), key=len,
                                                                             default=[])


def _figure3(cfg, by, dln, stem) -> Path:
    cols = max(len(cfg.ics_layers), len(cfg.dln_layers))
    fig, axes = figures.new_figure(cols, 4, width=3.7, height=2.6, title="Figure 3 redrawn: internal covariate shift "
                                   "(Definition 2.1), standard vs batch norm")
    blocks = [(f"MLP ({cfg.dataset})", cfg.ics_layers,
               {k: [(r.extras.get("probe_steps", []), _probes(r, "ics"), r.status == "diverged")
                    for r in by[k] if r.status != "failed"] for k in PROBED}),
              (f"DLN ({cfg.dln_depth} layers)", cfg.dln_layers,
               {k: [(d["probe_steps"], d["ics"], d["status"] == "diverged") for d in dln.get(k, [])] for k in PROBED})]
    for b, (name, layers, groups) in enumerate(blocks):
        for q, (key, what) in enumerate((("l2", "l2 difference ||G - G'||"), ("cos", "cosine cos(G, G')"))):
            row = axes[(2 * b + q) * cols:(2 * b + q + 1) * cols]
            for j, ax in enumerate(row):
                if j >= len(layers):
                    ax.set_visible(False)
                    continue
                for k in PROBED:
                    values, x = _ics_series(groups[k], key, j)
                    figures.band(ax, values, LABELS[k], COLORS[k], x=x)
                ax.set(title=f"{name}, layer {layers[j]}", xlabel="step", ylabel=what)
                if key == "l2" and ax.has_data():
                    ax.set_yscale("log")
    figures.shared_legend(fig, axes)
    return figures.save(fig, stem)[0]


def _over_sizes(r, key, fn) -> list:
    """Per probe step, ``fn`` (min or max) over the step sizes of ``key`` ('losses' with L(w), or 'grad_changes')."""
    out = []
    for p in _probes(r, "landscape"):
        vals = [v for v in (p[key] + ([p["loss"]] if key == "losses" else [])) if v is not None]
        out.append(fn(vals) if vals else math.nan)
    return out


def _figure4(cfg, by, stem) -> Path:
    fig, axes = figures.new_figure(3, 2, width=4.3, height=3.1, title="Figure 4 redrawn: the landscape along the "
                                   f"gradient, step sizes {', '.join(f'{x:g}' for x in cfg.multipliers)} x the rate")
    for k in PROBED:
        rs = [r for r in by[k] if _ok(r) and _probes(r, "landscape")]
        if not rs:
            continue
        x, c = rs[0].extras["probe_steps"], COLORS[k]
        for ax, key in zip(axes[:2], ("losses", "grad_changes")):
            lo, hi = (np.array([_over_sizes(r, key, fn) for r in rs]) for fn in (min, max))   # (seeds, steps)
            lo, hi = ([_finite_mean(col) for col in a.T] for a in (lo, hi))
            ax.fill_between(x, lo, hi, color=c, alpha=0.35, lw=0, label=f"{LABELS[k]} (range over step sizes)")
        figures.band(axes[2], [([_nan(p["beta"]) for p in _probes(r, "landscape")], False) for r in rs],
                     LABELS[k], c, x=x)
        for ax, (key, _) in zip(axes[3:], LANDSCAPE):
            figures.band(ax, [([_nan(p[key]) for p in _probes(r, "landscape")], False) for r in rs],
                         LABELS[k], c, x=x)
    axes[0].set(title="(a) loss landscape", ylabel="loss along the gradient")
    axes[1].set(title="(b) gradient predictiveness", ylabel="||g - g'||")
    axes[2].set(title="(c) effective beta-smoothness", ylabel="max ||g - g'|| / ||w - w'||")
    for ax, (_, what) in zip(axes[3:], LANDSCAPE):
        ax.set(title=f"criterion (c): {what}", ylabel=what)
        ax.axvline(cfg.steps / 2, color="0.4", lw=0.8, ls=":", label="end of the criterion's first half")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.has_data() and ax is not axes[0]:
            ax.set_yscale("log")
    figures.shared_legend(fig, [axes[0], axes[2], axes[3]])
    return figures.save(fig, stem)[0]


# --------------------------------------------------------------------------- analysis

def _json(v):
    return None if v is None or not math.isfinite(v) else float(v)


def _means(spreads) -> str:
    return "/".join(fmt(s.mean, 3) for s in spreads)


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    import time
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    dln = dln_runs(cfg)
    dln_seconds = time.perf_counter() - t0
    m = measure(cfg, done, dln)
    by = {label: done.where(net=label).by_seed().results for label, _ in NETS}
    f, e, lm = m["final"], m["early"], m["land_mean"]
    lay, dlay = "/".join(map(str, cfg.ics_layers)), "/".join(map(str, cfg.dln_layers))
    ours = {
        "a": (f"final test accuracy: noisy BN {f['noisy-batchnorm'].text()}, BN {f['batchnorm'].text()}, standard "
              f"{f['standard'].text()}; at step {cfg.steps // 4}: noisy BN {e['noisy-batchnorm'].text()}, standard "
              f"{e['standard'].text()}"),
        "b": (f"median cos(G, G'), MLP layers {lay}: BN {_means(m['mlp_cos']['batchnorm'])}, standard "
              f"{_means(m['mlp_cos']['standard'])}; DLN layers {dlay}: BN {_means(m['dln_cos']['batchnorm'])}, "
              f"standard {_means(m['dln_cos']['standard'])}"),
        "c": "first-half medians, BN vs standard: " + "; ".join(
            f"{what} {fmt(lm['batchnorm'][key], 3)} vs {fmt(lm['standard'][key], 3)}" for key, what in LANDSCAPE),
    }
    findings = [Finding(c, ours[c.key], verdict(m["checks"][c.key])) for c in CLAIMS]
    v = verdict_metrics(findings)
    answer = (f"Noisy batch norm ends at a test accuracy of {f['noisy-batchnorm'].text()}, batch norm at "
              f"{f['batchnorm'].text()} and the standard net at {f['standard'].text()}: claim (a) {v['a']}. "
              f"Batch norm's median cos(G, G') is {_means(m['mlp_cos']['batchnorm'])} against the standard net's "
              f"{_means(m['mlp_cos']['standard'])} at MLP layers {lay} and {_means(m['dln_cos']['batchnorm'])} against "
              f"{_means(m['dln_cos']['standard'])} at DLN layers {dlay}: (b) {v['b']}; in the first half of training "
              f"its median loss range, gradient change and effective beta-smoothness are "
              f"{'/'.join(fmt(lm['batchnorm'][k], 3) for k, _ in LANDSCAPE)} against "
              f"{'/'.join(fmt(lm['standard'][k], 3) for k, _ in LANDSCAPE)}: (c) {v['c']}.")
    answer += problems_sentence(done, len(runs(cfg)))
    bad_dln = [f"{k}/seed={s}" for k, ds in dln.items() for s, d in zip(cfg.seeds, ds) if d["status"] != "finished"]
    if bad_dln:
        answer += f" DLN runs that diverged: {', '.join(bad_dln)}."
    dln_loss = {k: spread([d["loss"][-1] if d["status"] == "finished" and d["loss"] else None for d in ds])
                for k, ds in dln.items()}
    metrics = {
        "verdicts": v,
        "a": {"final_test_acc": {k: s.as_dict() for k, s in f.items()},
              "test_acc_at_25%": {k: s.as_dict() for k, s in e.items()}, "checks": m["checks"]["a"]},
        "b": {"mlp_layers": list(cfg.ics_layers), "dln_layers": list(cfg.dln_layers),
              "mlp_median_cos": {k: [s.as_dict() for s in m["mlp_cos"][k]] for k in PROBED},
              "dln_median_cos": {k: [s.as_dict() for s in m["dln_cos"][k]] for k in PROBED}, "checks": m["checks"]["b"]},
        "c": {"median_first_half": {k: {key: _json(x) for key, x in lm[k].items()} for k in PROBED},
              "per_seed": {k: [{key: _json(x) for key, x in d.items()} for d in m["land"][k]] for k in PROBED},
              "checks": m["checks"]["c"]},
        "dln": {"final_loss": {k: s.as_dict() for k, s in dln_loss.items()},
                "status": {k: [d["status"] for d in ds] for k, ds in dln.items()}, "seconds": round(dln_seconds, 1)},
    }
    cos_col = f"median cos(G, G') at layers {lay} (DLN: {dlay})"
    table = [{"net": LABELS[k], "final test acc": f[k].mean, "range": None if f[k].mean is None else [f[k].lo, f[k].hi],
              f"test acc at step {cfg.steps // 4}": e[k].mean, cos_col: [s.mean for s in m["mlp_cos"][k]]
              if k in PROBED else None, **{what: _json(lm[k][key]) if k in PROBED else None for key, what in LANDSCAPE},
              "runs": status_text(done.where(net=k), len(cfg.seeds))} for k, _ in NETS]
    table += [{"net": f"DLN, {LABELS[k]}", cos_col: [s.mean for s in m["dln_cos"][k]],
               "final loss": dln_loss[k].mean, "runs": ", ".join(d["status"] for d in dln[k])} for k in PROBED]
    figs = [_figure2(cfg, by, m, out_dir / "santurkar-fig2"), _figure3(cfg, by, dln, out_dir / "santurkar-fig3"),
            _figure4(cfg, by, out_dir / "santurkar-fig4")]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, findings, cfg.dataset, run_seconds(done) + dln_seconds))
