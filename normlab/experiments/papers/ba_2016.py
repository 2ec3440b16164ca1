"""ba-2016: layer norm against batch norm at batch sizes 128 and 4, and in a conv net.

Reference: Jimmy Lei Ba, Jamie Ryan Kiros and Geoffrey E. Hinton (2016),
"Layer Normalization", arXiv:1607.06450, section 6.6 with Figure 6
(permutation-invariant MNIST) and section 6.7 (convolutional networks).

The paper's setup (section 6.6): a 784-1000-1000-10 fully connected net on
permutation-invariant MNIST, 55,000 training images, Adam (the learning rate is
not given). Layer norm is put on the hidden layers only, never on the logits;
batch norm is described as "applied to all layers". Every net is trained at
batch size 128 and at batch size 4; at the small batch batch norm's variance is
the unbiased estimate. Figure 6 plots, over 60 epochs, the negative log
likelihood (log axis down to 1e-7, so presumably on the training set; the
caption does not say) and the test error (axis 0.5 % to 2.5 %) of batch norm,
layer norm and an unnormalized baseline, one pair of panels per batch size; it
has curves only, no table, and the text concludes that layer norm is robust to
the batch size and converges faster than batch norm. Section 6.7 reports, from
preliminary conv-net experiments with no figure or table, that layer norm
speeds training up over no normalization but batch norm beats both.

Ours: Fashion-MNIST (MNIST is absent here), flattened (the fc net sees no
image structure, so it is permutation-invariant) with the mean image
subtracted. A 784-128-128-10 net (``FullyConnectedNet``), 4096 training images
and 6 epochs at both batch sizes: same epochs as the paper, so batch 4 makes 32
times as many steps (6144) as batch 128 (192); batch 4 is what the budget pays
for (about 1 ms a step on one core). Layer norm and batch norm both normalize
the two hidden layers only (our net never normalizes the output layer; the
paper's batch norm may have normalized the logits too). Batch norm at batch 4
normalizes with the unbiased batch variance (``norm_param={"batch_variance":
"unbiased"}``), as the paper says; at batch 128 with the biased one. Adam at
learning rate 1e-3 for every net and both batch sizes: the paper gives no
rule, and one learning rate keeps the batch size the only difference. Weight
scale 0.1 (normal init) for every net: of 1e-2, 3e-2, 5e-2 and 1e-1 it trained
the unnormalized baseline best in a pilot at batch 128 (chosen on the
baseline's numbers only, so that the paper's reference net trains
sensibly). Each run is step-wise (``normlab.lab.stepwise``): mini-batches from a fresh permutation each epoch,
the test accuracy on all 10,000 test images after every epoch (Figure 6's test
error is one minus it) and the training loss of every step (Figure 6's NLL: we
plot each epoch's mean mini-batch loss, in train mode). The conv net
(section 6.7): ``ThreeLayerConvNet`` conv 5x5 with 8 filters - [norm] - ReLU -
2x2 max pool - affine 64 - [norm] - ReLU - affine, on 3000 images for 5
epochs at batch 50, Adam 1e-3, weight scale 0.1 (likewise the best of the
four for its baseline; 2e-1 was no better); its layer norm is group norm with
one group after the conv (statistics over C, H, W of each image, the paper's
conv layer norm) and layer norm after the hidden affine layer, its batch norm spatial batch norm and batch
norm. Three seeds everywhere; final accuracy = the test accuracy after the last
step, mean over seeds. A condition is measured only when all its seeds finished
(a diverged seed has no final accuracy: the checks using it are "not
measured", and the answer names the run).

Runs: ``fc/{layernorm,batchnorm,baseline}/batch={128,4}/seed=S`` and
``cnn/{batchnorm,layernorm,baseline}/seed=S``, tagged ``model``, ``net`` and
``batch``. Figures: Figure 6's layout (training NLL and test error against the
epoch, one row per batch size, the three nets as mean with a min-max band over
seeds; the untrained net's error at epoch 0 left out, as it would squash the
axis) and, for section 6.7, the conv net's training NLL and test accuracy
against the epoch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ...lab.tasks import UPDATE_RULES
from ..summarize import Spread, check_common, compare, config_dict, fmt, positive, positive_tuple, \
    problems_sentence, spread, status_text
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics

NAME = "ba-2016"
TITLE = "Layer normalization against batch normalization (Ba, Kiros & Hinton 2016)"
QUESTION = ("Is layer normalization robust to the batch size where batch normalization is not: as accurate as "
            "batch norm at batch size 128, better at batch size 4; and in a conv net better than no "
            "normalization but worse than batch norm?")
SUITE = "papers"

PAPER = Paper(
    authors="Jimmy Lei Ba, Jamie Ryan Kiros, Geoffrey E. Hinton", year=2016, title="Layer Normalization",
    arxiv="1607.06450", where="Figure 6 (section 6.6, permutation-invariant MNIST) and section 6.7 (conv nets)",
    setup=("Permutation-invariant MNIST, a 784-1000-1000-10 fully connected net, 55,000 training images, Adam "
           "(learning rate not given); layer norm on the hidden layers only, batch norm 'applied to all layers'; "
           "batch size 128 and 4, at 4 batch norm with the unbiased variance estimate; training NLL and test "
           "error over 60 epochs, with an unnormalized baseline (Figure 6). Section 6.7: preliminary conv-net "
           "experiments, setup not given."),
    ours=("Fashion-MNIST, flattened; a 784-128-128-10 net, 4096 training images, 6 epochs at batch 128 and at "
          "batch 4 (192 and 6144 Adam steps, learning rate 1e-3 for all), batch norm at batch 4 with the unbiased "
          "variance; both norms on the hidden layers only; test accuracy on the 10,000 test images every epoch. "
          "Conv net: conv 5x5x8 - pool - affine 64, 3000 images, 5 epochs at batch 50; layer norm there is group "
          "norm with one group (over C, H, W) and layer norm after the affine. Three seeds; about 2 CPU-minutes "
          "in all (--quick shrinks every size), where the paper trained on all of MNIST for 60 epochs."))

TOL_A = 0.01     # (a): LN may trail BN at batch 128 by at most this much accuracy
TOL_B = 0.02     # (b): LN's accuracy may move by at most this much from batch 128 to batch 4

CLAIMS = (
    Claim("a", "Layer norm matches or beats batch norm at a normal batch size (128).",
          "From the text of section 6.6 (Figure 6 has curves, no table): layer norm converges faster than batch "
          "norm (said of Figure 6 as a whole, batch 128 included); its test error axis spans 0.5 % to 2.5 % "
          "over 60 epochs.",
          f"acc_LN(128) >= acc_BN(128) - {TOL_A} (final test accuracy, mean over seeds)."),
    Claim("b", "Layer norm is robust to the batch size, batch norm is not: at batch 4 layer norm beats batch norm.",
          "From the text of section 6.6: layer norm is robust to the batch size (Figure 6, right: batch 4, batch "
          "norm with the unbiased variance) and still converges faster than batch norm.",
          f"acc_LN(4) >= acc_BN(4); |acc_LN(4) - acc_LN(128)| <= {TOL_B}; "
          f"acc_BN(128) - acc_BN(4) > acc_LN(128) - acc_LN(4)."),
    Claim("c", "In conv nets batch norm beats layer norm, which beats no normalization.",
          "From the text of section 6.7 (preliminary experiments, no figure or table): layer norm speeds training "
          "up over the unnormalized baseline, but batch norm outperforms the other methods.",
          "acc_BN > acc_LN and acc_LN > acc_none (conv net, final test accuracy, mean over seeds)."),
)

FC_NETS = (("layernorm", "layernorm"), ("batchnorm", "batchnorm"), ("baseline", None))
CNN_NETS = (("batchnorm", "batchnorm"), ("layernorm", "groupnorm"), ("baseline", None))
LEGEND = {"layernorm": "layer norm", "batchnorm": "batch norm", "baseline": "no normalization"}


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (128, 128)   # paper: (1000, 1000); ours for the budget (batch 4 pays)
    weight_scale: float = 0.1                   # best of 1e-2, 3e-2, 5e-2, 1e-1 for the baseline (pilot)
    num_train: int = 4096                       # paper: 55,000; divisible by both batch sizes
    num_epochs: int = 6                         # paper: 60; the same at both batch sizes, as the paper
    batch_size: int = 128                       # paper: 128
    small_batch_size: int = 4                   # paper: 4 (batch norm with the unbiased variance there)
    learning_rate: float = 1e-3                 # paper: Adam, rate not given; one rate for every net and batch
    update_rule: str = "adam"                   # paper: Adam
    num_test: int = 10000                       # the whole test set, after every epoch
    conv_num_filters: int = 8                   # section 6.7 gives no conv setup: a small conv net
    conv_filter_size: int = 5
    conv_hidden_dim: int = 64
    conv_weight_scale: float = 0.1              # likewise for the conv baseline (pilot)
    conv_num_train: int = 3000
    conv_num_epochs: int = 5
    conv_batch_size: int = 50                   # a normal batch, where batch norm works as designed
    dataset: str = "fashion-mnist"              # or "mnist" (the paper's) when present
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        if self.update_rule not in UPDATE_RULES:
            raise ValueError(f"update_rule must be one of {', '.join(UPDATE_RULES)} (step-wise training), "
                             f"got {self.update_rule!r}")
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "num_epochs", "batch_size", "small_batch_size", "num_test",
                 "conv_num_filters", "conv_filter_size", "conv_hidden_dim", "conv_num_train", "conv_num_epochs",
                 "conv_batch_size", integer=True)
        positive(self, "weight_scale", "learning_rate", "conv_weight_scale")
        if self.small_batch_size >= self.batch_size:
            raise ValueError(f"small_batch_size={self.small_batch_size} must be below batch_size={self.batch_size}")
        if self.small_batch_size < 2:
            raise ValueError(f"small_batch_size={self.small_batch_size}: batch norm needs at least 2 images a batch")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")
        if self.conv_batch_size > self.conv_num_train:
            raise ValueError(f"conv_batch_size={self.conv_batch_size} exceeds conv_num_train={self.conv_num_train}")
        if self.conv_filter_size % 2 != 1:
            raise ValueError(f"conv_filter_size must be odd (the conv keeps the image size), "
                             f"got {self.conv_filter_size}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=512, num_epochs=2, num_test=1000,
                               conv_num_filters=4, conv_hidden_dim=16, conv_num_train=200, conv_num_epochs=2,
                               seeds=cfg.seeds[:2])


def _task(cfg: Config, num_train: int, epochs: int, batch: int) -> dict:
    per_epoch = num_train // batch        # the stepwise sampler drops a short tail batch
    return {"kind": "steps", "steps": epochs * per_epoch, "batch_size": batch, "update_rule": cfg.update_rule,
            "optim_config": {"learning_rate": cfg.learning_rate}, "eval_every": per_epoch, "eval_set": "test"}


def runs(cfg: Config) -> list[RunSpec]:
    specs = []
    for batch in (cfg.batch_size, cfg.small_batch_size):
        for label, norm in FC_NETS:
            kwargs = {"hidden_dims": list(cfg.hidden_dims), "normalization": norm, "weight_scale": cfg.weight_scale}
            if norm == "batchnorm" and batch == cfg.small_batch_size:
                kwargs["norm_param"] = {"batch_variance": "unbiased"}   # the paper's rule for the small batch
            specs += [RunSpec(experiment=NAME, name=f"fc/{label}/batch={batch}/seed={s}", model="fc",
                              model_kwargs=kwargs, dataset=cfg.dataset, num_train=cfg.num_train,
                              num_test=cfg.num_test, seed=s, tags={"model": "fc", "net": label, "batch": batch},
                              task=_task(cfg, cfg.num_train, cfg.num_epochs, batch))
                      for s in cfg.seeds]
    for label, norm in CNN_NETS:
        kwargs = {"num_filters": cfg.conv_num_filters, "filter_size": cfg.conv_filter_size,
                  "hidden_dim": cfg.conv_hidden_dim, "normalization": norm, "weight_scale": cfg.conv_weight_scale}
        if norm == "groupnorm":
            kwargs["num_groups"] = 1          # one group: layer norm over (C, H, W) of each image
        specs += [RunSpec(experiment=NAME, name=f"cnn/{label}/seed={s}", model="cnn", model_kwargs=kwargs,
                          dataset=cfg.dataset, num_train=cfg.conv_num_train, num_test=cfg.num_test, seed=s,
                          tags={"model": "cnn", "net": label, "batch": cfg.conv_batch_size},
                          task=_task(cfg, cfg.conv_num_train, cfg.conv_num_epochs, cfg.conv_batch_size))
                  for s in cfg.seeds]
    return specs


# --------------------------------------------------------------------------- measuring

def final_acc(r):
    """The test accuracy after the last step of a finished run, else None."""
    return r.val_acc_history[-1] if r.status == "finished" and r.val_acc_history else None


def condition_acc(rs: Runs, seeds) -> float | None:
    """Mean final test accuracy of one condition, or None unless every seed's run finished."""
    by_seed = {s.seed: final_acc(r) for s, r in rs}
    vals = [by_seed.get(s) for s in seeds]
    return None if any(v is None for v in vals) else sum(vals) / len(vals)


def _ge(a, b):
    return None if a is None or b is None else bool(a >= b)


def _gt(a, b):
    return None if a is None or b is None else bool(a > b)


def _sub(a, b):
    return None if a is None or b is None else a - b


def criteria(acc: dict, big: int, small: int) -> dict:
    """Each claim's checks from the conditions' mean accuracies (``acc[(model, net, batch)]``, batch None for
    the conv net; None or absent when not measured), at batch sizes ``big`` and ``small``:
    ``{key: [True / False / None, ...]}``, in the order of the criteria's text."""
    ln, bn = (lambda b: acc.get(("fc", "layernorm", b))), (lambda b: acc.get(("fc", "batchnorm", b)))
    cnn = lambda net: acc.get(("cnn", net, None))
    drop_ln, drop_bn = _sub(ln(big), ln(small)), _sub(bn(big), bn(small))
    return {"a": [_ge(ln(big), None if bn(big) is None else bn(big) - TOL_A)],
            "b": [_ge(ln(small), bn(small)), None if drop_ln is None else bool(abs(drop_ln) <= TOL_B),
                  _gt(drop_bn, drop_ln)],
            "c": [_gt(cnn("batchnorm"), cnn("layernorm")), _gt(cnn("layernorm"), cnn("baseline"))]}


def _t(v) -> str:
    return "not measured" if v is None else fmt(v, 3)


def _ours(key: str, acc: dict, big: int, small: int) -> str:
    ln, bn = (lambda b: acc.get(("fc", "layernorm", b))), (lambda b: acc.get(("fc", "batchnorm", b)))
    if key == "a":
        return (f"acc_LN({big}) = {_t(ln(big))}, acc_BN({big}) = {_t(bn(big))} "
                f"(LN - BN = {_t(_sub(ln(big), bn(big)))}; the criterion allows down to -{TOL_A}).")
    if key == "b":
        return (f"acc_LN({small}) = {_t(ln(small))}, acc_BN({small}) = {_t(bn(small))}; the drop from batch {big} "
                f"to {small} (acc({big}) - acc({small})) is {_t(_sub(ln(big), ln(small)))} for LN (allowed: at most "
                f"{TOL_B} either way) and {_t(_sub(bn(big), bn(small)))} for BN.")
    cnn = lambda net: acc.get(("cnn", net, None))
    return (f"conv net: acc_BN = {_t(cnn('batchnorm'))}, acc_LN (group norm, one group) = {_t(cnn('layernorm'))}, "
            f"acc_none = {_t(cnn('baseline'))}.")


def findings(acc: dict, big: int, small: int) -> list[Finding]:
    """The claims measured: each one's numbers in words and the verdict of its checks."""
    checks = criteria(acc, big, small)
    return [Finding(c, _ours(c.key, acc, big, small), verdict(checks[c.key])) for c in CLAIMS]


def _groups(cfg: Config, done: Runs) -> dict:
    """``{(model, net, batch): Runs}`` (batch None for the conv net), seeds in order."""
    out = {("fc", label, b): done.where(model="fc", net=label, batch=b).by_seed()
           for b in (cfg.batch_size, cfg.small_batch_size) for label, _ in FC_NETS}
    out.update({("cnn", label, None): done.where(model="cnn", net=label).by_seed() for label, _ in CNN_NETS})
    return out


def _final_nll(r):
    losses = r.epoch_losses() if r.status == "finished" else []
    return losses[-1] if losses else None


# --------------------------------------------------------------------------- figures

def _nll(r) -> tuple[list, list]:
    """Each epoch's mean mini-batch loss, plotted at the epoch's end (1, 2, ...)."""
    losses = r.epoch_losses()
    return list(range(1, len(losses) + 1)), losses


def _after_epoch1(r, of) -> tuple[list, list]:
    """The evaluations after each epoch (the untrained net's, at step 0, left out: it would squash the
    axis the curves differ on), as ``of(accuracy)``."""
    per = max(r.iterations_per_epoch or 1, 1)
    pts = list(zip(r.extras.get("eval_steps", range(len(r.val_acc_history))), r.val_acc_history))[1:]
    return [step / per for step, _ in pts], [None if a is None else of(a) for _, a in pts]


def _curves(ax, rs: Runs, label: str, xy):
    """One net's runs (finished and diverged) as a mean with a min-max band; ``xy(r) -> (x, values)``."""
    results = [r for r in rs.results if r.status in ("finished", "diverged")]
    if results:
        curves = [xy(r) for r in results]
        figures.band(ax, [(y, r.status == "diverged") for r, (_, y) in zip(results, curves)], LEGEND[label],
                     figures.color_for(label), x=max((x for x, _ in curves), key=len), marker="o")


def _plain_log_labels(ax):
    """Log-axis ticks as plain numbers (0.3, not 3x10^-1); the minor ones labelled only within a decade."""
    from matplotlib import ticker
    plain = ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(plain)
    lo, hi = ax.get_ylim()
    ax.yaxis.set_minor_formatter(plain if 0 < lo and hi / lo < 10 else ticker.NullFormatter())


def _nll_axes(ax, title: str):
    ax.set(title=title, xlabel="epoch", ylabel="mean mini-batch NLL (log)", yscale="log")
    _plain_log_labels(ax)


def _figure6(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    dims = "-".join(map(str, cfg.hidden_dims))
    fig, axes = figures.new_figure(2, 2, width=4.6, height=3.3,
                                   title=f"Figure 6 redrawn: fc net, hidden layers {dims}, on {cfg.dataset}")
    for row, batch in enumerate((cfg.batch_size, cfg.small_batch_size)):
        ax_nll, ax_err = axes[2 * row], axes[2 * row + 1]
        for label, _ in FC_NETS:
            rs = groups[("fc", label, batch)]
            _curves(ax_nll, rs, label, _nll)
            _curves(ax_err, rs, label, lambda r: _after_epoch1(r, lambda a: 1 - a))
        unbiased = " (BN: unbiased variance)" if batch == cfg.small_batch_size else ""
        _nll_axes(ax_nll, f"batch size {batch}: training NLL{unbiased}")
        ax_err.set(title=f"batch size {batch}: test error", xlabel="epoch", ylabel="test error")
        for ax in (ax_nll, ax_err):
            ax.xaxis.get_major_locator().set_params(integer=True)
    figures.shared_legend(fig, axes)
    return figures.save(fig, stem)


def _figure_conv(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    fig, (ax_nll, ax_acc) = figures.new_figure(
        2, 1, width=4.6, height=3.4, title=f"Section 6.7 (no figure in the paper): conv net on {cfg.dataset}, "
                                          f"batch {cfg.conv_batch_size}")
    for label, _ in CNN_NETS:
        rs = groups[("cnn", label, None)]
        _curves(ax_nll, rs, label, _nll)
        _curves(ax_acc, rs, label, lambda r: _after_epoch1(r, lambda a: a))
    _nll_axes(ax_nll, "training NLL")
    ax_acc.set(title="test accuracy", xlabel="epoch", ylabel="test accuracy")
    for ax in (ax_nll, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
    figures.shared_legend(fig, [ax_acc, ax_nll])
    for text in (fig.legends[0].get_texts() if fig.legends else []):
        text.set_text(text.get_text().replace("layer norm", "layer norm (group norm, 1 group)"))
    return figures.save(fig, stem)


# --------------------------------------------------------------------------- analysis

def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    big, small = cfg.batch_size, cfg.small_batch_size
    groups = _groups(cfg, done)
    acc = {k: condition_acc(rs, cfg.seeds) for k, rs in groups.items()}
    found = findings(acc, big, small)
    missing = lambda rs: [None] * (len(cfg.seeds) - len(rs))
    stats = {k: {"final_test_acc": spread([final_acc(r) for r in rs.results] + missing(rs)),
                 "final_train_nll": spread([_final_nll(r) for r in rs.results] + missing(rs))}
             for k, rs in groups.items()}
    s = lambda model, net, batch=None: stats[(model, net, batch)]["final_test_acc"]
    answer = " ".join([
        compare(s("fc", "layernorm", big), s("fc", "batchnorm", big), "layer norm", "batch norm",
                f"final test accuracy at batch size {big}"),
        compare(s("fc", "layernorm", small), s("fc", "batchnorm", small), "layer norm", "batch norm",
                f"final test accuracy at batch size {small}"),
        compare(s("cnn", "batchnorm"), s("cnn", "layernorm"), "batch norm", "layer norm",
                "conv net's final test accuracy"),
        compare(s("cnn", "layernorm"), s("cnn", "baseline"), "layer norm", "no normalization",
                "conv net's final test accuracy"),
        "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + ".",
    ]) + problems_sentence(done, len(runs(cfg)))
    table = [{"model": model, "net": net, "batch": cfg.conv_batch_size if batch is None else batch,
              "final_test_acc": st["final_test_acc"].mean, "final_test_acc_range": _range(st["final_test_acc"]),
              "final_train_nll": st["final_train_nll"].mean,
              "runs": status_text(groups[(model, net, batch)], len(cfg.seeds))}
             for (model, net, batch), st in stats.items()]
    ln, bn, cnn = (lambda b: acc[("fc", "layernorm", b)]), (lambda b: acc[("fc", "batchnorm", b)]), \
        (lambda net: acc[("cnn", net, None)])
    metrics = {
        "verdicts": verdict_metrics(found),
        "checks": criteria(acc, big, small),
        "criteria_inputs": {f"acc_LN({big})": ln(big), f"acc_BN({big})": bn(big), f"acc_LN({small})": ln(small),
                            f"acc_BN({small})": bn(small), "conv acc_BN": cnn("batchnorm"),
                            "conv acc_LN": cnn("layernorm"), "conv acc_none": cnn("baseline"),
                            "tol_a": TOL_A, "tol_b": TOL_B},
        "conditions": {f"{model}/{net}" + ("" if batch is None else f"/batch={batch}"):
                       {k: v.as_dict() for k, v in st.items()} for (model, net, batch), st in stats.items()},
    }
    figs = [_figure6(cfg, groups, out_dir / "ba-2016-figure6")[0],
            _figure_conv(cfg, groups, out_dir / "ba-2016-convnet")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))


def _range(sp: Spread):
    return None if sp.mean is None else [sp.lo, sp.hi]
