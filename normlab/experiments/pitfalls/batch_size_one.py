"""batch-size-one: batch norm cannot train at batch size 1; group norm and layer norm can.

Source of the belief: Wu & He (2018), "Group Normalization", arXiv:1803.08494, section 1 and
Figure 1: batch norm's error grows quickly as the batch shrinks because its statistics are those
of the batch, while group norm (and layer norm, its one-group case) computes them per sample and
is independent of the batch size. PyTorch's ``BatchNorm1d`` refuses the limit case outright
(one value per channel in training: "Expected more than 1 value per channel when training").

What is measured: on Fashion-MNIST, (1) a 784-128-128-10 fully connected net with batch norm,
trained at batch 32 (the protocol below), whose ``measure`` then attempts one training step at
batch 1 (``model.loss`` on one image, as the step-wise trainer would) and records the error it
raises. A measured refusal rather than a run left to fail: a failed run is reported by the CLI as
a problem of the suite, while this failure is the expected result (a run that does end 'failed'
with the same error counts as refused too); (2) the same net
with layer norm at batch 1 and at batch 32, 3072 training images, 2 epochs each (6144 and 192
steps: the same images seen); (3) ``ThreeLayerConvNet`` (conv 5x5x8 - group norm, 2 groups -
ReLU - pool - affine 64 - layer norm - ReLU - affine) at batch 1 and 32, 1536 images, 2 epochs.
SGD with momentum 0.9 at learning rate 0.02 at batch 32, scaled linearly with the batch
(Goyal et al. 2017, arXiv:1706.02677): 0.02 / 32 = 6.25e-4 at batch 1. The rate 0.02 was the best
(fc) or near-best (conv: 0.778 against 0.761-0.771) of 0.02, 0.05, 0.1, 0.2 in a one-seed pilot of
the batch-32 nets only, the reference condition. Final test accuracy (2000 test images) after the
last step, mean over 3 seeds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ..papers.verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics
from ..summarize import check_common, compare, config_dict, positive, positive_tuple, problems_sentence, spread, \
    status_text
from ._common import condition_mean, final_acc, ge, seed_bars, seed_values, task, text

NAME = "batch-size-one"
TITLE = "Batch size 1: batch norm cannot train, layer norm and group norm can"
QUESTION = ("Does batch norm fail at batch size 1 while layer norm (fc net) and group norm (conv net) train there "
            "as well as at batch 32, with the same images seen and the learning rate scaled with the batch?")
SUITE = "pitfalls"

PAPER = Paper(
    authors="Yuxin Wu, Kaiming He", year=2018, title="Group Normalization", arxiv="1803.08494",
    where="section 1 and Figure 1 (the batch-size argument); PyTorch BatchNorm1d's one-value-per-channel error",
    setup=("ResNet-50 on ImageNet; batch norm's error rises as the batch per GPU shrinks from 32 to 2, group "
           "norm's stays flat; group norm's statistics are per sample, so any batch size works."),
    ours=("Fashion-MNIST: a 784-128-128-10 net with batch norm at batch 1 (expected to fail), with layer norm at "
          "batch 1 and 32 (3072 images, 2 epochs); a small conv net with group norm at batch 1 and 32 (1536 "
          "images, 2 epochs); SGD momentum, lr 0.02 at batch 32 scaled linearly; 3 seeds."))

TOL = 0.05
REFUSAL_WORDS = ("more than 1 value per channel", "at least 2")

CLAIMS = (
    Claim("a", "Batch norm cannot train at batch size 1.",
          "Wu & He: batch norm's statistics come from the batch; PyTorch raises 'Expected more than 1 value per "
          "channel when training'.",
          "For every seed, a training step of the fc batch-norm net at batch 1 is refused (a measured refusal, or "
          "the run 'failed') with an error that says why (more than 1 value per channel) and the fix (a batch of "
          "at least 2)."),
    Claim("b", "Layer norm trains at batch size 1 as well as at a normal batch.",
          "Layer norm's statistics are per sample (Ba et al. 2016; Wu & He's Figure 2).",
          f"acc_LN(1) >= acc_LN(32) - {TOL} (same images seen, lr scaled linearly; mean over seeds)."),
    Claim("c", "Group norm trains a conv net at batch size 1 as well as at a normal batch.",
          "Wu & He, Figure 1: group norm's error is flat from batch 32 down to 2 per GPU (read from the figure).",
          f"acc_GN(1) >= acc_GN(32) - {TOL} (conv net, same protocol)."),
)


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (128, 128)
    weight_scale: float = 0.05
    num_train: int = 3072
    conv_num_train: int = 1536
    num_epochs: int = 2
    batch_size: int = 32                  # the normal batch; the small one is 1
    learning_rate: float = 0.02           # at batch_size; x b / batch_size at batch b (linear scaling)
    update_rule: str = "sgd_momentum"
    conv_num_filters: int = 8
    conv_num_groups: int = 2
    conv_weight_scale: float = 0.1
    num_test: int = 2000
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "conv_num_train", "num_epochs", "batch_size", "conv_num_filters",
                 "conv_num_groups", "num_test", integer=True)
        positive(self, "weight_scale", "learning_rate", "conv_weight_scale")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size} must be at least 2 (it is the normal batch)")
        if self.batch_size > min(self.num_train, self.conv_num_train):
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train} or "
                             f"conv_num_train={self.conv_num_train}")
        if self.conv_num_filters % self.conv_num_groups:
            raise ValueError(f"conv_num_filters={self.conv_num_filters} is not divisible by "
                             f"conv_num_groups={self.conv_num_groups}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=256, conv_num_train=128, num_epochs=1,
                               conv_num_filters=4, num_test=500, seeds=cfg.seeds[:2])


MEASURE = {"fn": "normlab.experiments.pitfalls.batch_size_one:measure", "kwargs": {}}


def _spec(cfg: Config, model: str, net: str, batch: int, seed: int, kwargs: dict, num_train: int,
          measure: dict | None = None) -> RunSpec:
    per_epoch = num_train // batch
    lr = cfg.learning_rate * batch / cfg.batch_size          # linear scaling with the batch
    return RunSpec(experiment=NAME, name=f"{model}/{net}/batch={batch}/seed={seed}", model=model,
                   model_kwargs=kwargs, dataset=cfg.dataset, num_train=num_train, num_test=cfg.num_test, seed=seed,
                   tags={"model": model, "net": net, "batch": batch},
                   task=task(cfg.num_epochs * per_epoch, batch, lr, cfg.update_rule, per_epoch, measure))


def runs(cfg: Config) -> list[RunSpec]:
    fc = lambda norm: {"hidden_dims": list(cfg.hidden_dims), "normalization": norm, "weight_scale": cfg.weight_scale}
    cnn = {"num_filters": cfg.conv_num_filters, "filter_size": 5, "hidden_dim": 64, "normalization": "groupnorm",
           "num_groups": cfg.conv_num_groups, "weight_scale": cfg.conv_weight_scale}
    specs = [_spec(cfg, "fc", "batchnorm", cfg.batch_size, s, fc("batchnorm"), cfg.num_train, MEASURE)
             for s in cfg.seeds]
    for b in (1, cfg.batch_size):
        specs += [_spec(cfg, "fc", "layernorm", b, s, fc("layernorm"), cfg.num_train) for s in cfg.seeds]
        specs += [_spec(cfg, "cnn", "groupnorm", b, s, cnn, cfg.conv_num_train) for s in cfg.seeds]
    return specs


def measure(model, data) -> dict:
    """One training step's forward and backward at batch 1 on the trained net: ``{"refusal": message}``
    (None if it was not refused); the model is left as it was (running statistics restored)."""
    saved = model.state_arrays()
    try:
        model.loss(data["X_train"][:1], data["y_train"][:1])
        return {"refusal": None}
    except ValueError as exc:
        return {"refusal": str(exc)}
    finally:
        model.load_state_arrays(saved)


def refusal_text(r) -> str | None:
    """The error that refused batch 1: the measured refusal, or a failed run's error."""
    if r.status == "failed":
        return (r.error or "").strip().splitlines()[0] if r.error else None
    return (r.extras.get("measure") or {}).get("refusal") if r.status == "finished" else None


def refused(r) -> bool | None:
    """Batch norm's clear refusal of batch 1 (why and the fix); None if the run neither finished nor failed."""
    if r.status not in ("failed", "finished") or (r.status == "finished" and "measure" not in r.extras):
        return None
    msg = refusal_text(r)
    return msg is not None and all(w in msg for w in REFUSAL_WORDS)


def criteria(bn_refused: list, acc: dict, big: int) -> dict:
    """``bn_refused``: per seed True / False / None (no run); ``acc[(model, net, batch)]`` means or None."""
    ref = None if not bn_refused or any(v is None for v in bn_refused) else all(bn_refused)
    lower = lambda k: None if acc.get(k) is None else acc[k] - TOL
    return {"a": [ref],
            "b": [ge(acc.get(("fc", "layernorm", 1)), lower(("fc", "layernorm", big)))],
            "c": [ge(acc.get(("cnn", "groupnorm", 1)), lower(("cnn", "groupnorm", big)))]}


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    big = cfg.batch_size
    keys = [("fc", "layernorm", 1), ("fc", "layernorm", big), ("cnn", "groupnorm", 1), ("cnn", "groupnorm", big)]
    groups = {k: done.where(model=k[0], net=k[1], batch=k[2]).by_seed() for k in keys}
    bn = done.where(model="fc", net="batchnorm").by_seed()
    bn_refused = seed_values(bn, cfg.seeds, refused)
    bn_errors = list(dict.fromkeys(m for m in (refusal_text(r) for r in bn.results) if m))
    acc = {k: condition_mean(rs, cfg.seeds, final_acc) for k, rs in groups.items()}
    accs = {k: seed_values(rs, cfg.seeds, final_acc) for k, rs in groups.items()}
    checks = criteria(bn_refused, acc, big)
    ln1, ln32, gn1, gn32 = (acc[k] for k in keys)
    ours = {"a": (f"batch 1 refused with the reason and the fix for {sum(v is True for v in bn_refused)} of "
                  f"{len(cfg.seeds)} seeds"
                  + (f": \u201c{bn_errors[0]}\u201d" if bn_errors else "") + "."),
            "b": f"acc_LN(1) = {text(ln1)}, acc_LN({big}) = {text(ln32)} (allowed down to "
                 f"{text(None if ln32 is None else ln32 - TOL)}).",
            "c": f"acc_GN(1) = {text(gn1)}, acc_GN({big}) = {text(gn32)} (allowed down to "
                 f"{text(None if gn32 is None else gn32 - TOL)})."}
    found = [Finding(c, ours[c.key], verdict(checks[c.key])) for c in CLAIMS]
    sp = {k: spread(v) for k, v in accs.items()}
    n_refused = sum(v is True for v in bn_refused)
    answer = (f"A training step of the batch-norm net at batch 1 was refused for {n_refused} of {len(cfg.seeds)} "
              f"seeds. "
              + compare(sp[keys[0]], sp[keys[1]], "batch 1", f"batch {big}", "layer-norm fc net's test accuracy")
              + " " + compare(sp[keys[2]], sp[keys[3]], "batch 1", f"batch {big}",
                              "group-norm conv net's test accuracy")
              + " Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + "."
              + problems_sentence(done, len(runs(cfg))))
    bn_acc = spread(seed_values(bn, cfg.seeds, final_acc))
    table = [{"model": "fc", "net": "batchnorm", "batch": 1, "test_acc": None, "test_acc_range": None,
              "runs": f"refused for {sum(v is True for v in bn_refused)} of {len(cfg.seeds)} seeds"},
             {"model": "fc", "net": "batchnorm", "batch": big, "test_acc": bn_acc.mean,
              "test_acc_range": None if bn_acc.mean is None else [bn_acc.lo, bn_acc.hi],
              "runs": status_text(bn, len(cfg.seeds))}]
    table += [{"model": m, "net": n, "batch": b, "test_acc": sp[(m, n, b)].mean,
               "test_acc_range": None if sp[(m, n, b)].mean is None else [sp[(m, n, b)].lo, sp[(m, n, b)].hi],
               "runs": status_text(groups[(m, n, b)], len(cfg.seeds))} for m, n, b in keys]
    metrics = {"verdicts": verdict_metrics(found), "checks": checks,
               "criteria_inputs": {"bn_batch1_refused": bn_refused, "bn_errors": bn_errors, "acc_LN(1)": ln1,
                                   f"acc_LN({big})": ln32, "acc_GN(1)": gn1, f"acc_GN({big})": gn32, "tol": TOL},
               "per_seed": {f"{m}/{n}/batch={b}": accs[(m, n, b)] for m, n, b in keys}}
    fig, axes = figures.new_figure(2, 1, width=4.6, height=3.5, width_ratios=[2, 1],
                                   title=f"Batch size 1 against {big} (same images seen) on {cfg.dataset}")
    seed_bars(axes[0], ["batch norm\nbatch 1", f"batch norm\nbatch {big}", "layer norm\nbatch 1",
                        f"layer norm\nbatch {big}"],
              [[], seed_values(bn, cfg.seeds, final_acc), accs[keys[0]], accs[keys[1]]], "final test accuracy",
              colors=["#1f77b4", "#1f77b4", "#2ca02c", "#2ca02c"])
    if any(v is True for v in bn_refused):
        axes[0].annotate("refused\n(ValueError)", (0, 0.08), ha="center", va="bottom", fontsize=8,
                         xycoords=("data", "axes fraction"))
    axes[0].set_title("fc net")
    seed_bars(axes[1], ["group norm\nbatch 1", f"group norm\nbatch {big}"], [accs[keys[2]], accs[keys[3]]],
              "final test accuracy", colors=["#d62728", "#d62728"])
    axes[1].set_title("conv net")
    for ax in axes:
        ax.set_ylim(0, 1)
    figs = [figures.save(fig, out_dir / "batch-size-one")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
