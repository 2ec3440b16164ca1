"""bjorck-2018: batch norm's benefit as the larger learning rates it allows; gradients and outputs at init.

Reference: Johan Bjorck, Carla Gomes, Bart Selman and Kilian Q. Weinberger (2018), "Understanding
Batch Normalization", arXiv:1806.02375 (NeurIPS 2018): Figure 1 (section 2, training with and
without batch norm at several learning rates) and section 4 (the gradients at initialization:
the histogram of one layer's gradient entries, heavy-tailed without batch norm; and the output
gradients of the final layer, showing that the unnormalized net gives nearly every input of a
mini-batch the same class).

The paper's setup: a 110-layer ResNet on CIFAR-10 (the original ResNet paper's protocol: SGD
with momentum and weight decay, standard augmentation), trained with and without batch norm at
several initial learning rates; at the smallest rate (1e-4) both nets end alike, the unnormalized
net diverges at the rates batch norm trains best at, and the best batch-norm run (the largest
rate) beats every unnormalized one. The figures give curves, no table: the numbers below are
"read from the figure" only where we say so, and we carry over the qualitative shape. The
gradient histograms (log count axis) are of a middle layer of the ResNet, at initialization.

Ours: Fashion-MNIST (CIFAR-10 is absent here) flattened, mean image subtracted; a fully
connected ReLU net of 10 hidden layers of 100 units (``FullyConnectedNet``), with and without
batch norm on every hidden layer. Weight scale sqrt(2/100) = 0.1414 for every layer: He's scale
for a fan-in of 100, exact for the 10 hidden-to-hidden and the output layer; the first layer
(fan-in 784) is 2.8 times above He's, the closest one constant comes. Plain SGD (no momentum,
no weight decay: the learning rate alone differs), batch 128, 200 steps on 20,000 training
images (1.3 epochs; what the 70 CPU-second budget pays for: a batch-norm step costs about 6 ms on
one core), at 7 learning rates half a decade apart from 1e-3 to 1 (a pilot showed the
unnormalized net diverging at 1 and training at 0.1, so the sweep brackets its limit), three
seeds. The test accuracy on the first 5,000 test images every 40 steps; the final accuracy of a
run is the last one, and a diverged run (non-finite loss) counts as chance (0.1: its scores are
not numbers). Depth 10 (not 20) for the budget.

At initialization (claim b), one run per net and seed, ``init/{net}/seed=S``: the step-wise task
needs one step, after which its ``measure`` rebuilds the net from the same seed (the sweep runs'
initial net, bit for bit) and measures (a) the gradient dL/dW1 of the first layer on the first
128 training images, in train mode: the excess kurtosis of its 78,400 entries (0 for a Gaussian),
the ratio of the largest to the median absolute entry, and their histogram in units of the
entries' standard deviation (so the two nets' shapes share one axis, as the paper's panels have
each its own scale); the middle hidden layer's kurtosis is reported beside it (the paper's layer
is a middle one; the criterion, fixed before any run, uses the first); (b) the share of the first
1,000 test images given the most common class, in train mode (batch norm with those images'
statistics: at initialization its running averages are still 0 and 1), and the share of each
class rank.

Runs: ``sweep/{batchnorm,baseline}/lr=L/seed=S`` tagged ``kind="sweep"``, ``net``, ``lr``;
``init/{net}/seed=S`` tagged ``kind="init"``, ``net``. Figures: final test accuracy against the
learning rate (log x) with min-max bands, and the test accuracy against the steps at the smallest
rate and at each net's best (Figure 1's curves); the gradient histograms at initialization (log
y), one panel per net, the first layer (judged) above the middle one (the paper's kind of layer,
shown, not judged); the class shares at initialization as bars by class rank. The full config
took 57 CPU-seconds (2 workers, a loaded machine), --quick 7.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..summarize import check_common, compare, config_dict, fmt, positive, positive_tuple, \
    problems_sentence, spread, status_text
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics

NAME = "bjorck-2018"
TITLE = "Batch norm allows larger learning rates; gradients at initialization (Bjorck et al. 2018)"
QUESTION = ("Does batch norm help because it allows larger learning rates (alike at a small rate, better at its "
            "own best, larger one), and is the unnormalized net at initialization ill-behaved: heavy-tailed "
            "gradients and nearly every input given the same class?")
SUITE = "papers"

PAPER = Paper(
    authors="Johan Bjorck, Carla Gomes, Bart Selman, Kilian Q. Weinberger", year=2018,
    title="Understanding Batch Normalization", arxiv="1806.02375",
    where="Figure 1 (section 2) and section 4 (gradient histograms and output gradients at initialization)",
    setup=("CIFAR-10, a 110-layer ResNet with and without batch norm, SGD with momentum and weight decay, "
           "standard augmentation, several initial learning rates (1e-4 for both nets and larger ones); "
           "at initialization the gradient entries of a middle layer (histograms, log counts) and the final "
           "layer's output gradients per input and class."),
    ours=("Fashion-MNIST, flattened; a fully connected ReLU net of 10 hidden layers of 100 units, weight "
          "scale sqrt(2/100) (He's for the hidden layers), with and without batch norm; plain SGD, batch 128, "
          "200 steps on 20,000 images at 7 learning rates from 1e-3 to 1, three seeds; final test accuracy "
          "on 5,000 test images. At initialization: the first layer's gradient on 128 images and the class "
          "shares of 1,000 test images (train mode). About a CPU-minute in all (--quick shrinks every size)."))

TOL_A = 0.03        # (a): |acc_BN - acc_noBN| at the smallest learning rate
SHARE_NOBN = 0.5    # (b): the unnormalized net gives at least this share of inputs its most common class
SHARE_BN = 0.3      # (b): the batch-norm net at most this share
CHANCE = 0.1        # the final accuracy of a diverged run (10 classes)

CLAIMS = (
    Claim("a", "Batch norm's benefit comes from the larger learning rates it allows.",
          "Figure 1 (curves, no table): at learning rate 1e-4 the nets with and without batch norm train alike; "
          "the unnormalized net diverges at the large rates where batch norm trains best, and batch norm at "
          "its large rate reaches the highest test accuracy (read from the figure).",
          f"|acc_BN(lr_min) - acc_noBN(lr_min)| <= {TOL_A} at the smallest rate of the sweep; best lr of BN > "
          f"best lr of no-BN; max over lr of acc_BN > max over lr of acc_noBN (final test accuracy, mean "
          f"over seeds; a diverged run counts as chance, {CHANCE})."),
    Claim("b", "Without batch norm the gradients at initialization are heavy-tailed and the net gives most inputs "
               "the same class.",
          "Section 4: the unnormalized net's gradient histogram (a middle layer, log counts) has heavy tails, "
          "batch norm's is concentrated; the unnormalized net's output gradients show it predicting one class "
          "for nearly every input of a mini-batch, whatever the input (from the figures, no numbers).",
          f"excess kurtosis of the first layer's gradient entries without BN > with BN; share of inputs given "
          f"the most common class at initialization without BN >= {SHARE_NOBN}, with BN <= {SHARE_BN} (means "
          f"over seeds)."),
)

NETS = (("batchnorm", "batchnorm"), ("baseline", None))
LEGEND = {"batchnorm": "batchnorm (BN)", "baseline": "baseline (no BN)"}   # keys first: figures.color_for


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100,) * 10        # paper: a 110-layer ResNet; ours 10 x 100, fully connected
    weight_scale: float = math.sqrt(2 / 100)          # He's for fan-in 100 (the first layer's fan-in is 784)
    learning_rates: tuple[float, ...] = (1e-3, 3.16e-3, 1e-2, 3.16e-2, 0.1, 0.316, 1.0)   # half a decade apart
    steps: int = 200                                  # plain SGD steps (1.3 epochs of num_train)
    batch_size: int = 128                             # paper: 128 (the ResNet protocol)
    eval_every: int = 40
    num_train: int = 20000
    num_test: int = 5000                              # the first 5,000 test images
    grad_samples: int = 128                           # one mini-batch for the gradient at initialization
    share_samples: int = 1000                         # test images whose predicted classes are counted
    hist_range: float = 20.0                          # histogram of gradient entries over +-20 standard deviations
    hist_bins: int = 80
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "learning_rates")
        if len(self.learning_rates) < 2 or list(self.learning_rates) != sorted(set(self.learning_rates)):
            raise ValueError(f"learning_rates must be at least two distinct rates in increasing order, "
                             f"got {self.learning_rates!r}")
        positive(self, "steps", "batch_size", "eval_every", "num_train", "num_test", "grad_samples",
                 "share_samples", "hist_bins", integer=True)
        positive(self, "weight_scale", "hist_range")
        if self.eval_every > self.steps:
            raise ValueError(f"eval_every={self.eval_every} exceeds steps={self.steps}")
        for name, limit, of in (("batch_size", self.num_train, "num_train"),
                                ("grad_samples", self.num_train, "num_train"),
                                ("share_samples", self.num_test, "num_test")):
            if getattr(self, name) > limit:
                raise ValueError(f"{name}={getattr(self, name)} exceeds {of}={limit}")
        if self.grad_samples < 2 or self.share_samples < 2:
            raise ValueError(f"grad_samples={self.grad_samples} and share_samples={self.share_samples} must be "
                             f"at least 2 (batch norm needs two inputs a batch)")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(50,) * 6, weight_scale=math.sqrt(2 / 50),
                               learning_rates=(1e-2, 0.1, 1.0), steps=30, eval_every=10, num_train=2000,
                               num_test=500, share_samples=500, seeds=cfg.seeds[:2])


def _model_kwargs(cfg: Config, norm) -> dict:
    return {"hidden_dims": list(cfg.hidden_dims), "normalization": norm, "weight_scale": cfg.weight_scale}


def runs(cfg: Config) -> list[RunSpec]:
    specs = []
    for label, norm in NETS:
        for lr in cfg.learning_rates:
            task = {"kind": "steps", "steps": cfg.steps, "batch_size": cfg.batch_size, "update_rule": "sgd",
                    "optim_config": {"learning_rate": lr}, "eval_every": cfg.eval_every, "eval_set": "test"}
            specs += [RunSpec(experiment=NAME, name=f"sweep/{label}/lr={lr:g}/seed={s}", model="fc",
                              model_kwargs=_model_kwargs(cfg, norm), dataset=cfg.dataset, num_train=cfg.num_train,
                              num_test=cfg.num_test, seed=s, tags={"kind": "sweep", "net": label, "lr": lr},
                              task=task) for s in cfg.seeds]
    for label, norm in NETS:
        for s in cfg.seeds:
            measure = {"fn": f"{__name__}:at_init",
                       "kwargs": {"model_kwargs": _model_kwargs(cfg, norm), "seed": s,
                                  "grad_samples": cfg.grad_samples, "share_samples": cfg.share_samples,
                                  "hist_range": cfg.hist_range, "hist_bins": cfg.hist_bins}}
            task = {"kind": "steps", "steps": 1, "batch_size": cfg.batch_size, "update_rule": "sgd",
                    "optim_config": {"learning_rate": cfg.learning_rates[0]}, "eval_every": 1, "eval_set": "test",
                    "eval_samples": min(100, cfg.num_test), "measure": measure}
            specs.append(RunSpec(experiment=NAME, name=f"init/{label}/seed={s}", model="fc",
                                 model_kwargs=_model_kwargs(cfg, norm), dataset=cfg.dataset,
                                 num_train=cfg.num_train, num_test=cfg.num_test, seed=s,
                                 tags={"kind": "init", "net": label}, task=task))
    return specs


# --------------------------------------------------------------------------- measuring at initialization

def excess_kurtosis(x) -> float:
    """E[(x - mean)^4] / Var(x)^2 - 3 over all entries of ``x``, in float64 (0 for a Gaussian)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0:
        raise ValueError("the kurtosis of constant entries is undefined (their variance is 0)")
    return float(np.mean(d ** 4) / m2 ** 2 - 3.0)


def tail_stats(g, hist_range: float, hist_bins: int) -> dict:
    """The shape of a gradient's entries: excess kurtosis, max |g| / median |g|, standard deviation, and
    a histogram of (g - mean) / std over ``[-hist_range, hist_range]`` (``counts``, ``hist_bins`` bins)
    with the number of entries beyond that range (``beyond``)."""
    x = np.asarray(g, dtype=np.float64).ravel()
    a = np.abs(x)
    std = float(x.std())
    med = float(np.median(a))
    z = (x - x.mean()) / std if std > 0 else np.zeros_like(x)
    counts, _ = np.histogram(z, bins=hist_bins, range=(-hist_range, hist_range))
    return {"kurtosis": excess_kurtosis(x), "max_over_median": float(a.max() / med) if med > 0 else None,
            "std": std, "counts": counts.tolist(), "beyond": int(np.sum(np.abs(z) > hist_range)),
            "entries": int(x.size)}


def class_shares(scores) -> list[float]:
    """The share of inputs given each class (rows of ``scores`` (N, C)), sorted from the most common down."""
    counts = np.bincount(np.argmax(scores, axis=1), minlength=scores.shape[1])
    return sorted((counts / counts.sum()).tolist(), reverse=True)


def at_init(model, data, model_kwargs, seed, grad_samples, share_samples, hist_range, hist_bins) -> dict:
    """A task's ``measure``: ignores the trained ``model`` and rebuilds the net at initialization from
    ``model_kwargs`` and ``seed`` (as the runs build theirs); returns the first and middle hidden layer's
    gradient statistics (:func:`tail_stats`) on the first ``grad_samples`` training images and the class
    shares of the first ``share_samples`` test images, both in train mode."""
    from ...lab.execute import build_model
    spec = RunSpec(experiment=NAME, name="init", model="fc", model_kwargs=model_kwargs, seed=seed)
    net = build_model(spec, data)
    X, y = data["X_train"][:grad_samples], data["y_train"][:grad_samples]
    _, grads = net.loss(X, y)
    mid = len(model_kwargs["hidden_dims"]) // 2 + 1
    saved = net.state_arrays()
    shares = class_shares(net.scores(data["X_test"][:share_samples], "train"))
    net.load_state_arrays(saved)
    return {"first": tail_stats(grads["W1"], hist_range, hist_bins),
            "middle": {"layer": mid, **tail_stats(grads[f"W{mid}"], hist_range, hist_bins)},
            "class_shares": shares}


# --------------------------------------------------------------------------- criteria

def final_acc(r):
    """A run's final test accuracy: the last evaluation if it finished, chance if it diverged, else None."""
    if r.status == "diverged":
        return CHANCE
    return r.val_acc_history[-1] if r.status == "finished" and r.val_acc_history else None


def _mean_all(values):
    """The mean of ``values``, or None when any is None (a condition needs every seed)."""
    values = list(values)
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def sweep_accs(cfg: Config, done: Runs) -> dict:
    """``{(net, lr): mean final test accuracy over the seeds, or None}``."""
    out = {}
    for label, _ in NETS:
        for lr in cfg.learning_rates:
            by_seed = {s.seed: final_acc(r) for s, r in done.where(kind="sweep", net=label, lr=lr)}
            out[(label, lr)] = _mean_all(by_seed.get(s) for s in cfg.seeds)
    return out


def init_stats(cfg: Config, done: Runs) -> dict:
    """``{net: {"kurtosis", "max_over_median", "share", "kurtosis_mid": mean over seeds or None}}``."""
    out = {}
    for label, _ in NETS:
        m = {s.seed: r.extras.get("measure") for s, r in done.where(kind="init", net=label)
             if r.status == "finished"}
        per = [m.get(s) for s in cfg.seeds]
        get = lambda f: _mean_all(None if x is None else f(x) for x in per)
        out[label] = {"kurtosis": get(lambda x: x["first"]["kurtosis"]),
                      "max_over_median": get(lambda x: x["first"]["max_over_median"]),
                      "share": get(lambda x: x["class_shares"][0]),
                      "kurtosis_mid": get(lambda x: x["middle"]["kurtosis"])}
    return out


def best_lr(accs: dict, net: str, lrs) -> tuple:
    """(argmax lr, max accuracy) of one net over the sweep; (None, None) unless every rate is measured."""
    vals = [accs.get((net, lr)) for lr in lrs]
    if any(v is None for v in vals):
        return None, None
    i = int(np.argmax(vals))                  # the smallest rate among ties
    return lrs[i], vals[i]


def _cmp(a, b, op):
    return None if a is None or b is None else bool(op(a, b))


def criteria(accs: dict, init: dict, lrs) -> dict:
    """Each claim's checks ``{key: [True / False / None, ...]}`` in the order of its criterion's text."""
    lo = lrs[0]
    bn, base = accs.get(("batchnorm", lo)), accs.get(("baseline", lo))
    lr_bn, max_bn = best_lr(accs, "batchnorm", lrs)
    lr_base, max_base = best_lr(accs, "baseline", lrs)
    ib, i0 = init.get("batchnorm", {}), init.get("baseline", {})
    return {"a": [None if bn is None or base is None else bool(abs(bn - base) <= TOL_A),
                  _cmp(lr_bn, lr_base, lambda a, b: a > b), _cmp(max_bn, max_base, lambda a, b: a > b)],
            "b": [_cmp(i0.get("kurtosis"), ib.get("kurtosis"), lambda a, b: a > b),
                  _cmp(i0.get("share"), SHARE_NOBN, lambda a, b: a >= b),
                  _cmp(ib.get("share"), SHARE_BN, lambda a, b: a <= b)]}


def _t(v, digits=3) -> str:
    return "not measured" if v is None else fmt(v, digits)


def _lr(v) -> str:
    return "not measured" if v is None else f"{v:g}"


def _ours(key: str, accs: dict, init: dict, lrs) -> str:
    if key == "a":
        lo = lrs[0]
        (lr_bn, max_bn), (lr_base, max_base) = best_lr(accs, "batchnorm", lrs), best_lr(accs, "baseline", lrs)
        return (f"at lr {lo:g}: acc_BN = {_t(accs.get(('batchnorm', lo)))}, acc_noBN = "
                f"{_t(accs.get(('baseline', lo)))} (allowed gap {TOL_A}); best lr: BN {_lr(lr_bn)} "
                f"(acc {_t(max_bn)}), no-BN {_lr(lr_base)} (acc {_t(max_base)}).")
    ib, i0 = init["batchnorm"], init["baseline"]
    return (f"first-layer gradient excess kurtosis: no-BN {_t(i0['kurtosis'], 2)}, BN {_t(ib['kurtosis'], 2)} "
            f"(max/median |g|: {_t(i0['max_over_median'], 1)} and {_t(ib['max_over_median'], 1)}; middle layer "
            f"kurtosis {_t(i0['kurtosis_mid'], 2)} and {_t(ib['kurtosis_mid'], 2)}); share of the most common "
            f"class: no-BN {_t(i0['share'])} (needs >= {SHARE_NOBN}), BN {_t(ib['share'])} (needs <= {SHARE_BN}).")


def findings(accs: dict, init: dict, lrs) -> list[Finding]:
    checks = criteria(accs, init, lrs)
    return [Finding(c, _ours(c.key, accs, init, lrs), verdict(checks[c.key])) for c in CLAIMS]


# --------------------------------------------------------------------------- analysis

def _spread_of(done: Runs, seeds, value, **tags):
    rs = {s.seed: r for s, r in done.where(**tags)}
    return spread([value(rs[s]) if s in rs else None for s in seeds])


def _init_value(path):
    def get(r):
        m = r.extras.get("measure") if r.status == "finished" else None
        for k in path:
            m = None if m is None else m[k]
        return m
    return get


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    lrs = cfg.learning_rates
    accs, init = sweep_accs(cfg, done), init_stats(cfg, done)
    found = findings(accs, init, lrs)
    acc_sp = {(n, lr): _spread_of(done, cfg.seeds, final_acc, kind="sweep", net=n, lr=lr)
              for n, _ in NETS for lr in lrs}
    best = {n: best_lr(accs, n, lrs)[0] for n, _ in NETS}
    share = {n: _spread_of(done, cfg.seeds, _init_value(("class_shares", 0)), kind="init", net=n) for n, _ in NETS}
    kurt = {n: _spread_of(done, cfg.seeds, _init_value(("first", "kurtosis")), kind="init", net=n) for n, _ in NETS}
    if best["batchnorm"] is not None and best["baseline"] is not None:
        best_sentence = compare(acc_sp[("batchnorm", best["batchnorm"])], acc_sp[("baseline", best["baseline"])],
                                f"batch norm (at its best rate, {best['batchnorm']:g})",
                                f"no normalization (at its best rate, {best['baseline']:g})", "final test accuracy")
    else:
        best_sentence = "The best rates are not measured (a sweep run is missing or failed)."
    answer = " ".join([
        compare(acc_sp[("batchnorm", lrs[0])], acc_sp[("baseline", lrs[0])], "batch norm", "no normalization",
                f"final test accuracy at the smallest rate, {lrs[0]:g},"),
        best_sentence,
        compare(kurt["baseline"], kurt["batchnorm"], "no normalization", "batch norm",
                "excess kurtosis of the first layer's gradient at initialization"),
        compare(share["baseline"], share["batchnorm"], "no normalization", "batch norm",
                "share of test images given the most common class at initialization"),
        "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + ".",
    ]) + problems_sentence(done, len(runs(cfg)))
    table = [{"net": n, "lr": lr, "final_test_acc": acc_sp[(n, lr)].mean,
              "final_test_acc_range": None if acc_sp[(n, lr)].mean is None else [acc_sp[(n, lr)].lo,
                                                                                 acc_sp[(n, lr)].hi],
              "runs": status_text(done.where(kind="sweep", net=n, lr=lr), len(cfg.seeds))}
             for n, _ in NETS for lr in lrs]
    table += [{"net": n, "lr": "init", "grad_kurtosis_W1": kurt[n].mean,
               "grad_max_over_median_W1": init[n]["max_over_median"], "grad_kurtosis_mid": init[n]["kurtosis_mid"],
               "top_class_share": share[n].mean, "top_class_share_range": None if share[n].mean is None
               else [share[n].lo, share[n].hi], "runs": status_text(done.where(kind="init", net=n), len(cfg.seeds))}
              for n, _ in NETS]
    checks = criteria(accs, init, lrs)
    metrics = {
        "verdicts": verdict_metrics(found),
        "checks": checks,
        "criteria_inputs": {"lr_min": lrs[0], "acc_BN(lr_min)": accs[("batchnorm", lrs[0])],
                            "acc_noBN(lr_min)": accs[("baseline", lrs[0])],
                            "best_lr_BN": best["batchnorm"], "best_lr_noBN": best["baseline"],
                            "max_acc_BN": best_lr(accs, "batchnorm", lrs)[1],
                            "max_acc_noBN": best_lr(accs, "baseline", lrs)[1],
                            "kurtosis_W1_BN": init["batchnorm"]["kurtosis"],
                            "kurtosis_W1_noBN": init["baseline"]["kurtosis"],
                            "top_share_BN": init["batchnorm"]["share"], "top_share_noBN": init["baseline"]["share"],
                            "tol_a": TOL_A, "share_noBN_min": SHARE_NOBN, "share_BN_max": SHARE_BN,
                            "diverged_counts_as": CHANCE},
        "final_test_acc": {f"{n}/lr={lr:g}": acc_sp[(n, lr)].as_dict() for n, _ in NETS for lr in lrs},
        "init": init,
    }
    figures_ = [_figure1(cfg, done, best, out_dir / f"{NAME}-figure1")[0],
                _figure_gradients(cfg, done, out_dir / f"{NAME}-gradients-at-init")[0],
                _figure_shares(cfg, done, out_dir / f"{NAME}-class-shares-at-init")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figures_,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))


# --------------------------------------------------------------------------- figures

def _figure1(cfg: Config, done: Runs, best: dict, stem: Path) -> list[Path]:
    """Final test accuracy against the learning rate; the test accuracy against the steps at the
    smallest rate and at each net's best (Figure 1's curves)."""
    fig, (ax_lr, ax_t) = figures.new_figure(2, 1, width=4.8, height=3.6, title=(
        f"Figure 1 redrawn: {len(cfg.hidden_dims)} x {cfg.hidden_dims[0]} ReLU fc net, plain SGD, "
        f"{cfg.steps} steps, on {cfg.dataset}"))
    groups = {LEGEND[n]: [[(final_acc(r), r.status == "diverged")
                           for r in done.where(kind="sweep", net=n, lr=lr).results] for lr in cfg.learning_rates]
              for n, _ in NETS}
    figures.sweep(ax_lr, cfg.learning_rates, groups, "final test accuracy", chance=CHANCE)
    ax_lr.set(title="final test accuracy against the learning rate", xlabel="learning rate (log)", ylim=(0, 1),
              xlim=(cfg.learning_rates[0] / 1.5, cfg.learning_rates[-1] * 1.5))   # fixed: no run may be measured
    styles = {}
    for n, _ in NETS:
        for lr, ls in ((cfg.learning_rates[0], "--"), (best[n], "-")):
            rs = done.where(kind="sweep", net=n, lr=lr).results if lr is not None else []
            rs = [r for r in rs if r.status in ("finished", "diverged")]
            if rs and (lr, n) not in styles:
                styles[(lr, n)] = ls
                steps = max((r.extras.get("eval_steps", []) for r in rs), key=len)
                which = "smallest rate" if ls == "--" else "its best rate"
                figures.band(ax_t, [(r.val_acc_history, r.status == "diverged") for r in rs],
                             f"{LEGEND[n]}, lr {lr:g} ({which})", figures.color_for(n), x=steps, marker="o",
                             linestyle=ls)
    ax_t.axhline(CHANCE, color="0.5", lw=0.8, ls=":")
    ax_t.set(title="test accuracy during training", xlabel="step", ylabel="test accuracy", ylim=(0, 1))
    if ax_t.get_legend_handles_labels()[0]:
        ax_t.legend(fontsize=7, loc="center right")
    figures.shared_legend(fig, [ax_lr])
    return figures.save(fig, stem)


def _measures(done: Runs, net: str) -> list:
    return [r.extras["measure"] for r in done.where(kind="init", net=net).by_seed().results
            if r.status == "finished" and "measure" in r.extras]


def _figure_gradients(cfg: Config, done: Runs, stem: Path) -> list[Path]:
    """Section 4's histograms: gradient entries at initialization, log counts, in units of their standard
    deviation (each panel its own scale, as the paper's), mean with min-max over seeds. Top row: the first
    layer (the criterion's); bottom row: the middle layer (the paper's choice; shown, not judged)."""
    mid = len(cfg.hidden_dims) // 2 + 1
    fig, axes = figures.new_figure(2, 2, width=4.8, height=3.2, title=(
        f"Gradients at initialization on {cfg.grad_samples} images, {cfg.dataset}"))
    centres = (np.arange(cfg.hist_bins) + 0.5) * (2 * cfg.hist_range / cfg.hist_bins) - cfg.hist_range
    for row, (where, name) in enumerate((("first", "dL/dW1 (criterion)"), ("middle", f"dL/dW{mid} (not judged)"))):
        for ax, (n, _) in zip(axes[2 * row:2 * row + 2], NETS[::-1]):
            ms = _measures(done, n)
            if ms:
                dens = [[c / m[where]["entries"] if c else None for c in m[where]["counts"]] for m in ms]
                figures.band(ax, [(d, False) for d in dens], LEGEND[n], figures.color_for(n), x=centres.tolist())
                k = spread([m[where]["kurtosis"] for m in ms])
                std = spread([m[where]["std"] for m in ms])
                ax.set_title(f"{name}, {LEGEND[n]}:\nexcess kurtosis {k.text(1)}, std {fmt(std.mean, 3)}",
                             fontsize=8.5)
                ax.set_yscale("log")
            else:
                ax.set_title(f"{name}, {LEGEND[n]}: not measured", fontsize=8.5)
            ax.set(xlabel="gradient entry / its standard deviation", ylabel="share of entries (log)")
    lim = max(max(abs(v) for v in ax.get_xlim()) for ax in axes)
    for ax in axes:
        ax.set_xlim(-lim, lim)              # one x range: the shapes side by side
    figures.shared_legend(fig, axes)
    return figures.save(fig, stem)


def _figure_shares(cfg: Config, done: Runs, stem: Path) -> list[Path]:
    """The share of test images given each class at initialization, classes ranked by share."""
    fig, (ax,) = figures.new_figure(1, 1, width=7.0, height=3.6, title=(
        f"Predicted classes at initialization ({cfg.share_samples} test images, train mode)"))
    series, errors = {}, {}
    for n, _ in NETS[::-1]:
        ms = _measures(done, n)
        cols = np.array([m["class_shares"] for m in ms]) if ms else np.full((1, 10), np.nan)
        series[LEGEND[n]] = cols.mean(axis=0).tolist()
        errors[LEGEND[n]] = (cols.min(axis=0).tolist(), cols.max(axis=0).tolist())
    k = len(next(iter(series.values())))
    figures.grouped_bars(ax, [str(i + 1) for i in range(k)], series, "share of the images",
                         errors=errors, colors=[figures.color_for(n) for n, _ in NETS[::-1]])
    ax.axhline(SHARE_NOBN, color="0.3", lw=0.8, ls="--", label=f"criterion: no BN's rank 1 >= {SHARE_NOBN}")
    ax.axhline(SHARE_BN, color="0.6", lw=0.8, ls=":", label=f"criterion: BN's rank 1 <= {SHARE_BN}")
    ax.set(xlabel="class rank (1: the class given to most images); bars: mean, whiskers: min-max over seeds",
           ylim=(0, 1.05))
    ax.legend(fontsize=8)
    return figures.save(fig, stem)
