"""finetune-shift: fine-tuning a batch-norm net on shifted data with its statistics frozen, adapting or recomputed.

Source. Yanghao Li, Naiyan Wang, Jianping Shi, Jiaying Liu and Xiaodi Hou
(2016), "Revisiting Batch Normalization For Practical Domain Adaptation"
(AdaBN), arXiv:1603.04779: batch norm's statistics carry the domain, so
replacing the source statistics by the target domain's adapts a net without
any training. The pitfall: a net fine-tuned on a new domain with batch norm in
eval mode (frozen running statistics, a common practice for small fine-tuning
batches) keeps normalizing with the source domain's statistics. We take no
number from the paper (its domains are Office-31 and Caltech-Bing, not ours).

Setup. Fashion-MNIST, flattened. The source domain is the data as loaded
(pixels in [0, 1], the training mean image m subtracted). The target domain
is a brightness / contrast change of the raw images, x -> 0.5 x + 0.5
(contrast halved, brightness raised), followed by the *source's* mean
subtraction (the preprocessing is part of the deployed net): X' = 0.5 (X + m)
+ 0.5 - m. A 784-100-100-10 ``FullyConnectedNet`` with batch norm before each
ReLU and no bias before the norms (``bias_before_norm=False``: the running mean
is then exactly the mean of the norm's input, which makes recomputing it
exact), weight scale 0.05, is pretrained on 10,000 source images (Adam 1e-3,
batch 100, 1000 steps). The fine-tuning is the pretraining run's ``measure``
(``finetune`` below, on the trained model): three copies of the net are each
fine-tuned for 300 Adam steps (learning rate 1e-3, fresh optimizer state, batch
100, the same mini-batches for the three) on the 10,000 shifted training
images, with batch norm (i) in train mode (batch statistics; the running
statistics follow with the course's momentum 0.9), (ii) frozen (eval mode
throughout: the source's running statistics, the gradient through the fixed
normalization), (iii) recomputed: the running mean and biased variance of every
BN layer replaced by those of its input over all shifted training images
(layer by layer, each computed with the earlier layers already normalized by
the shifted data's statistics), then frozen as in (ii). Each is evaluated in
eval mode on the 10,000 shifted test images every 100 steps; also measured:
the pretrained net on the shifted test set before fine-tuning, with source and
with recomputed statistics (AdaBN without training). Three seeds. The sizes
are the budget's (about 5 CPU-seconds a seed); the shift 0.5 x + 0.5 is the
brief's example, not tuned.

Criterion (fixed before any run; final shifted-test accuracy after fine-tuning,
mean over seeds): acc_recomputed > acc_frozen and acc_train > acc_frozen.

Runs: ``pretrain/seed=S``, tagged ``role``. Figure: the shifted-test accuracy
against the fine-tuning step for the three modes, mean with a min-max band over
seeds (step 0: the pretrained net with that mode's statistics).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import optim
from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..papers.verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics
from ..summarize import check_common, compare, config_dict, positive, positive_tuple, problems_sentence, \
    spread, status_text
from ._common import curves, final_acc, mean_or_none, per_seed, text as t
from .norm_position import task

NAME = "finetune-shift"
TITLE = "Fine-tuning on shifted data: batch-norm statistics frozen, adapting or recomputed"
QUESTION = ("When a batch-norm net is fine-tuned on a brightness/contrast-shifted version of its data, is "
            "freezing batch norm at the source statistics worse than letting them adapt (train mode) or "
            "recomputing them on the shifted data first?")
SUITE = "pitfalls"

PAPER = Paper(
    authors="Yanghao Li, Naiyan Wang, Jianping Shi, Jiaying Liu, Xiaodi Hou", year=2016,
    title="Revisiting Batch Normalization For Practical Domain Adaptation", arxiv="1603.04779",
    where="the AdaBN method (target-domain statistics in every BN layer)",
    setup=("Domain adaptation on Office-31 and Caltech-Bing with an Inception-BN net pretrained on ImageNet: the "
           "statistics of every BN layer are replaced by the target domain's, with no training, and compared "
           "with other adaptation methods."),
    ours=("Fashion-MNIST, a 784-100-100-10 BN net pretrained for 1000 Adam steps on 10,000 images; target domain "
          "x -> 0.5 x + 0.5 before the source's mean subtraction; 300 fine-tuning steps with BN in train mode, "
          "frozen at the source statistics, or recomputed on the shifted training data then frozen; "
          "accuracy on the 10,000 shifted test images; three seeds."))

CLAIMS = (
    Claim("a", "Fine-tuning with batch norm frozen at the source statistics is worse than letting the statistics "
               "adapt (train mode) or recomputing them on the shifted data before fine-tuning.",
          "Qualitative (their domains, not ours): target-domain statistics in the BN layers improve accuracy on "
          "the target domain over the source statistics.",
          "acc_recomputed > acc_frozen and acc_train > acc_frozen (final shifted-test accuracy after "
          "fine-tuning, mean over seeds)."),
)

MODES = ("train", "frozen", "recomputed")
LEGEND = {"train": "(i) BN in train mode (adapting)", "frozen": "(ii) BN frozen (source statistics)",
          "recomputed": "(iii) statistics recomputed, then frozen"}
COLORS = {"train": "#1f77b4", "frozen": "#d62728", "recomputed": "#2ca02c"}


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (100, 100)
    weight_scale: float = 0.05
    num_train: int = 10000
    steps: int = 1000                       # pretraining
    batch_size: int = 100
    learning_rate: float = 1e-3
    update_rule: str = "adam"
    eval_every: int = 500
    num_test: int = 10000
    finetune_steps: int = 300
    finetune_learning_rate: float = 1e-3    # Adam, fresh state per mode
    finetune_eval_every: int = 100
    contrast: float = 0.5                   # the shift x -> contrast * x + brightness (raw pixels in [0, 1])
    brightness: float = 0.5
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "steps", "batch_size", "eval_every", "num_test", "finetune_steps",
                 "finetune_eval_every", integer=True)
        positive(self, "weight_scale", "learning_rate", "finetune_learning_rate", "contrast")
        if not isinstance(self.brightness, (int, float)) or isinstance(self.brightness, bool) \
                or not np.isfinite(self.brightness):
            raise ValueError(f"brightness must be a finite number, got {self.brightness!r}")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=1000, steps=100, eval_every=50, num_test=1000,
                               finetune_steps=40, finetune_eval_every=20, seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    kwargs = {"steps": cfg.finetune_steps, "batch_size": cfg.batch_size, "learning_rate": cfg.finetune_learning_rate,
              "eval_every": cfg.finetune_eval_every, "contrast": cfg.contrast, "brightness": cfg.brightness,
              "dataset": cfg.dataset, "num_train": cfg.num_train, "num_test": cfg.num_test}
    return [RunSpec(experiment=NAME, name=f"pretrain/seed={s}", model="fc",
                    model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": "batchnorm",
                                  "bias_before_norm": False, "weight_scale": cfg.weight_scale},
                    dataset=cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, seed=s,
                    tags={"role": "pretrain"},
                    task={**task(cfg), "measure": {"fn": f"{__name__}:finetune", "kwargs": {**kwargs, "seed": s}}})
            for s in cfg.seeds]


# --------------------------------------------------------------------------- the fine-tuning (a run's measure)

def shifted(data: dict, dataset: str, num_train: int, num_test: int, contrast: float, brightness: float):
    """(X_train', X_test'): the raw images x -> contrast * x + brightness, minus the source's mean image."""
    X, Xt = (np.asarray(data[k]).reshape(len(data[k]), -1) for k in ("X_train", "X_test"))
    raw = load_raw(dataset, num_train, num_test)
    mean = (raw["X_train"].reshape(len(X), -1).astype(np.float64) - X).mean(axis=0)     # the subtracted mean m
    return [(contrast * (Z + mean) + brightness - mean).astype(X.dtype) for Z in (X, Xt)]


def load_raw(dataset: str, num_train: int, num_test: int) -> dict:
    """The same split without the mean subtraction."""
    from ...data import load_fashion_mnist, load_mnist
    loader = load_fashion_mnist if dataset == "fashion-mnist" else load_mnist
    return loader(num_training=num_train, num_test=num_test, subtract_mean=False, flatten=True)


def recompute_stats(model, X) -> None:
    """Every BN layer's running mean and biased variance := those of its input over ``X`` (one batch, so each
    layer's input is computed with the earlier layers normalized by ``X``'s own statistics)."""
    taps = model.norm_inputs(X, "train")
    state = model.state_arrays()
    for i, h in enumerate(taps, start=1):
        h = h.astype(np.float64)
        state[f"running_mean{i}"] = h.mean(axis=0).astype(model.dtype)
        state[f"running_var{i}"] = h.var(axis=0).astype(model.dtype)
    model.load_state_arrays(state)


def _accuracy(model, X, y, chunk=2000) -> float:
    return float(np.mean(np.concatenate([np.argmax(model.loss(X[i:i + chunk]), axis=1)
                                         for i in range(0, len(X), chunk)]) == y))


def _tune(model, mode, Xs, y, Xt, yt, steps, batch_size, learning_rate, eval_every, seed) -> dict:
    """Fine-tune ``model`` in place with Adam; BN in train mode (``mode == 'train'``) or eval mode."""
    rng = np.random.default_rng([seed, 2])      # the same batches for every mode
    configs = {k: {"learning_rate": learning_rate} for k in model.params}
    hist, at = [_accuracy(model, Xt, yt)], [0]
    perm, pos = rng.permutation(len(Xs)), 0
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for step in range(1, steps + 1):
            if pos + batch_size > len(Xs):
                perm, pos = rng.permutation(len(Xs)), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            if mode == "train":
                _, grads = model.loss(Xs[idx], y[idx])
            else:      # eval-mode batch norm: fixed statistics, gradient through the fixed normalization
                scores, caches, out_cache = model._forward(Xs[idx], "test")
                _, grads = model._backward(scores, y[idx], caches, out_cache)
            for k in model.params:
                model.params[k], configs[k] = optim.adam(model.params[k], grads[k], configs[k])
            if step % eval_every == 0 or step == steps:
                hist.append(_accuracy(model, Xt, yt))
                at.append(step)
    return {"steps": at, "acc": hist}


def finetune(model, data, steps, batch_size, learning_rate, eval_every, contrast, brightness, dataset, num_train,
             num_test, seed) -> dict:
    """The three fine-tunings of the pretrained ``model`` on the shifted data (see the module docstring), each on
    its own copy; also the shifted-test accuracy of the pretrained net with source and recomputed statistics."""
    Xs, Xt = shifted(data, dataset, num_train, num_test, contrast, brightness)
    y, yt = np.asarray(data["y_train"]), np.asarray(data["y_test"])
    out = {"source_acc_on_shifted": _accuracy(model, Xt, yt),
           "source_acc": _accuracy(model, np.asarray(data["X_test"]).reshape(len(Xt), -1), yt)}
    adabn = copy.deepcopy(model)
    recompute_stats(adabn, Xs)
    out["recomputed_no_finetune_acc"] = _accuracy(adabn, Xt, yt)
    for mode in MODES:
        net = adabn if mode == "recomputed" else copy.deepcopy(model)
        out[mode] = _tune(net, mode, Xs, y, Xt, yt, steps, batch_size, learning_rate, eval_every, seed)
    return out


# --------------------------------------------------------------------------- analysis

def mode_acc(mode: str):
    """A result's final shifted-test accuracy after fine-tuning in ``mode``, or None."""
    def of(r):
        m = (r.extras.get("measure") or {}).get(mode) or {}
        return m["acc"][-1] if m.get("acc") else None
    return of


def criteria(acc: dict) -> dict:
    """``{"a": [recomputed > frozen, train > frozen]}`` from the mean accuracies per mode (None: not measured)."""
    gt = lambda a, b: None if a is None or b is None else bool(a > b)
    return {"a": [gt(acc.get("recomputed"), acc.get("frozen")), gt(acc.get("train"), acc.get("frozen"))]}


def findings(acc: dict) -> list[Finding]:
    ours = (f"acc_train = {t(acc.get('train'))}, acc_frozen = {t(acc.get('frozen'))}, "
            f"acc_recomputed = {t(acc.get('recomputed'))} (shifted test set, after fine-tuning).")
    return [Finding(CLAIMS[0], ours, verdict(criteria(acc)["a"]))]


def _figure(cfg: Config, rs: Runs, stem: Path) -> list[Path]:
    fig, axes = figures.new_figure(2, 1, width=4.8, height=3.6,
                                   title=f"Fine-tuning on x -> {cfg.contrast} x + {cfg.brightness} "
                                         f"({cfg.dataset}), shifted test set")
    for zoom, ax in enumerate(axes):
        for mode in MODES:
            has = Runs([(s, r) for s, r in rs if (r.extras.get("measure") or {}).get(mode)])
            # the zoom leaves out step 0 (the untuned net), where frozen and train mode start far below
            cut = 1 if zoom else 0
            curves(ax, has, LEGEND[mode], COLORS[mode], of=lambda r, m=mode: r.extras["measure"][m]["acc"][cut:],
                   x=lambda r, m=mode: r.extras["measure"][m]["steps"][cut:])
        ax.set(title="from the pretrained net" if not zoom else "after the first evaluation (zoom)",
               xlabel="fine-tuning step", ylabel="shifted test accuracy (eval mode)")
    figures.shared_legend(fig, axes)
    return figures.save(fig, stem)


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    rs = done.where(role="pretrain").by_seed()
    missing = [None] * (len(cfg.seeds) - len(rs))
    acc = {mode: mean_or_none(per_seed(rs, cfg.seeds, mode_acc(mode))) for mode in MODES}
    found = findings(acc)
    extra = lambda key: (lambda r: (r.extras.get("measure") or {}).get(key))
    sp = {mode: spread([mode_acc(mode)(r) for r in rs.results] + missing) for mode in MODES}
    sp.update({k: spread([(final_acc if k == "source" else extra(k))(r) for r in rs.results] + missing)
               for k in ("source", "source_acc_on_shifted", "recomputed_no_finetune_acc")})
    answer = " ".join([
        f"Before fine-tuning the pretrained net scores {sp['source'].text()} on the source test set and "
        f"{sp['source_acc_on_shifted'].text()} on the shifted one ({sp['recomputed_no_finetune_acc'].text()} with "
        f"recomputed statistics).",
        compare(sp["recomputed"], sp["frozen"], "recomputed statistics", "frozen source statistics",
                "shifted test accuracy after fine-tuning"),
        compare(sp["train"], sp["frozen"], "train-mode batch norm", "frozen source statistics",
                "shifted test accuracy after fine-tuning"),
        f"Verdict ({found[0].claim.key}): {found[0].verdict}.",
    ]) + problems_sentence(done, len(runs(cfg)))
    table = [{"condition": k, "shifted_test_acc" if k in MODES else "test_acc": sp[k].mean,
              "range": None if sp[k].mean is None else [sp[k].lo, sp[k].hi], "runs": status_text(rs, len(cfg.seeds))}
             for k in (*MODES, "source", "source_acc_on_shifted", "recomputed_no_finetune_acc")]
    metrics = {"verdicts": verdict_metrics(found), "checks": criteria(acc),
               "criteria_inputs": {f"acc_{m}": acc[m] for m in MODES},
               "conditions": {k: v.as_dict() for k, v in sp.items()}}
    figs = [_figure(cfg, rs, out_dir / "finetune-shift")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))

