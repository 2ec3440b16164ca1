"""wu-he-2018: group norm against batch, layer and instance norm, over batch sizes and group numbers.

Reference: Yuxin Wu and Kaiming He (2018), "Group Normalization",
arXiv:1803.08494: Figure 1 with Table 2 (error against the batch size per
GPU), Table 1 and Figure 4 (BN, LN, IN and GN at 32 images per GPU) and
Table 3 (the number of groups).

The paper's setup: ResNet-50 on ImageNet, 8 GPUs, batch-norm statistics per
GPU; every normalization layer of the net is one of BN, LN, IN or GN (G = 32
groups by default). SGD for 100 epochs, the learning rate divided by 10 at
epochs 30, 60 and 90, weight decay 1e-4; at B images per GPU the learning rate
is 0.1 B / 32 (the linear scaling rule) and every batch size trains for the
same 100 epochs. Reported: top-1 error on the ImageNet validation set, BN
evaluated with its population statistics. Numbers used here: Table 1 (32
images/GPU) BN 23.6, GN 24.1, LN 25.3, IN 28.4; Table 2 (= Figure 1) BN
23.6 / 23.7 / 24.8 / 27.3 / 34.7 and GN 24.1 / 24.2 / 24.0 / 24.2 / 24.1 at
32 / 16 / 8 / 4 / 2 images per GPU; Table 3, fixed G = 64 / 32 / 16 / 8 / 4 /
2 / 1 (LN): 24.6 / 24.1 / 24.6 / 24.4 / 24.6 / 24.7 / 25.3, fixed 64 / 32 /
16 / 8 / 4 / 2 / 1 (IN) channels per group: 24.4 / 24.5 / 24.2 / 24.3 / 24.8
/ 25.6 / 28.4. Table 1's and Table 2's numbers agree across several
independent transcriptions of the paper (its own text could not be read
here); Table 3's other values come from one transcription (the criteria use
only its extremes, which are Table 1's LN and IN).

Ours: Fashion-MNIST, ``ThreeLayerConvNet`` (conv 5x5 with 16 filters -
[norm] - ReLU - 2x2 max pool - affine 64 - [norm] - ReLU - affine), 2000
training images for 4 epochs at every batch size (so batch 2 makes 16 times
the steps of batch 32, as in the paper), SGD with momentum 0.9 at learning
rate 0.1 B / 32: the paper's rule, and its base rate too, chosen by a pilot of
BN at batch 32 only (3000 images, 3 epochs, 2 seeds: mean test error 14.8,
14.7, 14.5 and 15.3 % at base rates 0.02, 0.05, 0.1 and 0.2). The rate is
halved after every epoch (our short stand-in for the paper's step decay); no
weight decay; weight scale 5e-2. The sizes (16 filters, 2000 images, 4
epochs, 2000 test images) were then set from the measured cost of a step to
fit about 3.5 CPU-minutes in all. The final weights are evaluated (no
best-epoch snapshot), BN in test mode with its running statistics.

The norms act on the conv layer: BN is spatial batch norm; GN uses G = 8
groups of C/G = 2 channels (C = 16 is too few channels for the paper's 32
groups; 8 is C/2); LN is group norm with one group, statistics over each
image's (C, H, W) as the paper defines LN for conv nets; IN is group norm with
G = C. The hidden affine layer gets BN in the BN net and layer norm in all the
group-norm nets (the net's design: layer norm is group norm's 1-D
counterpart), so the LN/GN/IN nets differ only in the conv layer's groups.
Conditions: BN and GN at batch 32, 16, 8, 4 and 2; G = 1, 2, 4, 8, 16 at
batch 32 (G = 1 is LN, G = 16 is IN, G = 8 is GN); 3 seeds each, 42 runs. A
condition's error is the mean over seeds of 1 - test accuracy, measured only
when every seed finished.

Runs: ``bn/batch=B/seed=S`` and ``gn/G=G/batch=B/seed=S``, tagged ``norm``
("batchnorm" or "groupnorm"), ``groups`` (None for BN) and ``batch``.
Figures: Figure 1's layout (error against batch size on a reversed log-2 axis,
the paper's Table 2 beside ours), Figure 4's (training and validation error
against the epoch at batch 32) and Table 3's (error against G, the paper's row
beside ours), ours as mean with a min-max band over seeds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..summarize import (Spread, check_common, config_dict, fmt, positive, positive_tuple, problems_sentence, spread,
                         status_text)
from .verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics
from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section

NAME = "wu-he-2018"
TITLE = "Group normalization against batch, layer and instance norm (Wu & He 2018)"
QUESTION = ("Is group norm's error independent of the batch size where batch norm's grows as the batch shrinks, "
            "close to batch norm's at a normal batch, and lower than layer norm's and instance norm's, the two "
            "extremes of its group number?")
SUITE = "papers"

PAPER = Paper(
    authors="Yuxin Wu, Kaiming He", year=2018, title="Group Normalization", arxiv="1803.08494",
    where="Figure 1 and Table 2 (batch sizes), Table 1 and Figure 4 (BN, LN, IN, GN at 32 images/GPU), Table 3 "
          "(number of groups)",
    setup=("ResNet-50 on ImageNet, 8 GPUs, batch-norm statistics per GPU; BN, LN, IN or GN (G = 32) in every "
           "normalization layer. SGD for 100 epochs (learning rate /10 at 30, 60, 90; weight decay 1e-4) at 32, "
           "16, 8, 4 or 2 images per GPU, learning rate 0.1 B / 32 and the same epochs for every batch size. "
           "Top-1 error on the validation set, BN with its population statistics."),
    ours=("Fashion-MNIST; a conv net (conv 5x5x16 - norm - ReLU - pool - affine 64 - norm - ReLU - affine), 2000 "
          "training images, 4 epochs at every batch size (32 to 2), SGD momentum 0.9 at 0.1 B / 32 halved each "
          "epoch; GN with G = 8 (2 channels per group), LN = GN with G = 1, IN = GN with G = 16; error on 2000 "
          "test images of the final weights, BN in test mode; 3 seeds, about 3.5 CPU-minutes in all, where the "
          "paper trained 100 ImageNet epochs per net on 8 GPUs."))

REF_BATCH = 32        # the paper's reference batch: learning rate = learning_rate * B / REF_BATCH
BN_RISE = 0.02        # (b): BN's error must rise by at least this much from the normal to the small batch
GN_FLAT = 0.01        # (b): GN's error may move by at most this much at any batch size

CLAIMS = (
    Claim("a", "At the normal batch size BN is best, GN close behind, LN and IN worse.",
          "Table 1, 32 images/GPU: error BN 23.6 %, GN 24.1 %, LN 25.3 %, IN 28.4 %.",
          "err_BN(32) < err_GN(32), err_GN(32) < err_LN(32), err_GN(32) < err_IN(32) (test error, mean over "
          "seeds)."),
    Claim("b", "BN's error grows as the batch shrinks, GN's does not.",
          "Table 2 / Figure 1, 32 / 16 / 8 / 4 / 2 images per GPU: BN 23.6 / 23.7 / 24.8 / 27.3 / 34.7 %, "
          "GN 24.1 / 24.2 / 24.0 / 24.2 / 24.1 % (BN +11.1 points from 32 to 2, GN within 0.2).",
          f"err_BN(2) - err_BN(32) >= {BN_RISE}, max over B of |err_GN(B) - err_GN(32)| <= {GN_FLAT}, "
          f"err_GN(2) < err_BN(2)."),
    Claim("c", "Group numbers between the extremes beat both extremes.",
          "Table 3 (32/GPU): G = 64 / 32 / 16 / 8 / 4 / 2 give 24.6 / 24.1 / 24.6 / 24.4 / 24.6 / 24.7 % and "
          "G = 1 (LN) 25.3 %; 64 / 32 / 16 / 8 / 4 / 2 channels per group give 24.4 / 24.5 / 24.2 / 24.3 / 24.8 / "
          "25.6 % and 1 channel per group (IN) 28.4 %: each row's extreme is its worst.",
          "err(G=1) > min over 1<G<C of err(G), err(G=C) > min over 1<G<C of err(G) (batch 32)."),
)

_PAPER_BATCHES = (32, 16, 8, 4, 2)
_PAPER_BN = (23.6, 23.7, 24.8, 27.3, 34.7)
_PAPER_GN = (24.1, 24.2, 24.0, 24.2, 24.1)
_PAPER_G = (64, 32, 16, 8, 4, 2, 1)
_PAPER_G_ERR = (24.6, 24.1, 24.6, 24.4, 24.6, 24.7, 25.3)
_PAPER_IN = 28.4


@dataclass(frozen=True)
class Config:
    num_filters: int = 16                          # C of the conv layer (ResNet-50: 64 to 2048)
    filter_size: int = 5
    hidden_dim: int = 64
    weight_scale: float = 5e-2                     # std of every initial weight (not tuned)
    num_groups: int = 8                            # GN's G (paper: 32): C/2, 2 channels per group
    group_sweep: tuple[int, ...] = (1, 2, 4, 8, 16)   # Table 3 at the normal batch; 1 is LN, C is IN
    batch_sizes: tuple[int, ...] = (32, 16, 8, 4, 2)  # paper: images per GPU; the largest is the normal one
    learning_rate: float = 0.1                     # at batch 32, scaled as lr * B / 32 (paper: 0.1 B / 32)
    momentum: float = 0.9
    lr_decay: float = 0.5                          # per epoch (paper: /10 at epochs 30, 60, 90 of 100)
    num_epochs: int = 4                            # the same at every batch size, as in the paper
    num_train: int = 2000
    num_val: int = 500                             # held-out training images: Figure 4's validation error
    num_test: int = 2000                           # the criteria's error: first images of the test set
    monitor_samples: int = 500                     # training images for Figure 4's training error
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive(self, "num_filters", "filter_size", "hidden_dim", "num_groups", "num_epochs", "num_train",
                 "num_val", "num_test", "monitor_samples", integer=True)
        positive(self, "weight_scale", "learning_rate")
        positive_tuple(self, "group_sweep", integer=True)
        positive_tuple(self, "batch_sizes", integer=True)
        if self.filter_size % 2 != 1:
            raise ValueError(f"filter_size must be odd (the conv keeps the image size), got {self.filter_size}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1] (the learning rate's factor after each epoch), "
                             f"got {self.lr_decay!r}")
        C, G = self.num_filters, self.num_groups
        if C % G or not 1 < G < C:
            raise ValueError(f"num_groups={G} must divide num_filters={C} and lie strictly between 1 and {C} "
                             f"(G = 1 is layer norm, G = C instance norm)")
        for name in ("group_sweep", "batch_sizes"):
            v = getattr(self, name)
            if len(set(v)) != len(v):
                raise ValueError(f"{name} must be distinct, got {v!r}")
        bad = [g for g in self.group_sweep if C % g]
        if bad:
            raise ValueError(f"group_sweep={self.group_sweep!r}: {bad} do not divide num_filters={C}")
        need = sorted({1, G, C} - set(self.group_sweep))
        if need:
            raise ValueError(f"group_sweep={self.group_sweep!r} must hold 1 (LN), num_groups={G} (GN) and "
                             f"num_filters={C} (IN); missing {need}")
        if len(self.batch_sizes) < 2 or min(self.batch_sizes) < 2:
            raise ValueError(f"batch_sizes={self.batch_sizes!r} needs at least two sizes, each >= 2 (batch norm "
                             f"needs two images a batch)")
        if max(self.batch_sizes) > self.num_train:
            raise ValueError(f"batch_sizes={self.batch_sizes!r}: {max(self.batch_sizes)} exceeds "
                             f"num_train={self.num_train}")

    @property
    def normal_batch(self) -> int:
        """The largest batch size: the paper's 32 images per GPU."""
        return max(self.batch_sizes)

    @property
    def small_batch(self) -> int:
        """The smallest batch size: the paper's 2 images per GPU."""
        return min(self.batch_sizes)


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, num_filters=4, hidden_dim=16, num_groups=2, group_sweep=(1, 2, 4),
                               batch_sizes=(16, 4, 2), num_train=128, num_epochs=2, num_val=50, num_test=200,
                               monitor_samples=50, seeds=cfg.seeds[:2])


# --------------------------------------------------------------------------- runs

def _conditions(cfg: Config) -> list[tuple]:
    """Every condition once, as ``(norm, groups, batch)`` (groups None for BN), in run order."""
    keys = [("batchnorm", None, b) for b in cfg.batch_sizes] + [("groupnorm", cfg.num_groups, b)
                                                                for b in cfg.batch_sizes]
    keys += [("groupnorm", g, cfg.normal_batch) for g in cfg.group_sweep if g != cfg.num_groups]
    return keys


def label(cfg: Config, groups) -> str:
    """'BN' (groups None), 'LN' (1), 'IN' (C), 'GN' (num_groups) or 'GN(G=g)'."""
    if groups is None:
        return "BN"
    return {1: "LN", cfg.num_filters: "IN", cfg.num_groups: "GN"}.get(groups, f"GN(G={groups})")


def runs(cfg: Config) -> list[RunSpec]:
    specs = []
    for norm, groups, batch in _conditions(cfg):
        model = {"num_filters": cfg.num_filters, "filter_size": cfg.filter_size, "hidden_dim": cfg.hidden_dim,
                 "weight_scale": cfg.weight_scale, "normalization": norm}
        if groups is not None:
            model["num_groups"] = groups
        solver = {"update_rule": "sgd_momentum", "num_epochs": cfg.num_epochs, "batch_size": batch,
                  "optim_config": {"learning_rate": cfg.learning_rate * batch / REF_BATCH, "momentum": cfg.momentum},
                  "lr_decay": cfg.lr_decay, "num_train_samples": cfg.monitor_samples, "num_val_samples": None,
                  "restore_best": False}          # the paper evaluates the final weights
        name = "bn" if groups is None else f"gn/G={groups}"
        specs += [RunSpec(experiment=NAME, name=f"{name}/batch={batch}/seed={s}", model="cnn", model_kwargs=model,
                          solver_kwargs=solver, dataset=cfg.dataset, num_train=cfg.num_train, num_val=cfg.num_val,
                          num_test=cfg.num_test, seed=s, evaluate=("test_acc",),
                          tags={"norm": norm, "groups": groups, "batch": batch})
                  for s in cfg.seeds]
    return specs


# --------------------------------------------------------------------------- measuring

def error_of(r) -> float | None:
    """1 - test accuracy of a finished run, else None."""
    acc = r.extras.get("test_acc") if r.status == "finished" else None
    return None if acc is None else 1.0 - acc


def condition_error(rs: Runs, seeds) -> float | None:
    """Mean test error of one condition over ``seeds``, or None unless every seed's run finished."""
    by_seed = {s.seed: error_of(r) for s, r in rs}
    vals = [by_seed.get(s) for s in seeds]
    return None if any(v is None for v in vals) else sum(vals) / len(vals)


def _lt(a, b):
    return None if a is None or b is None else bool(a < b)


def _sub(a, b):
    return None if a is None or b is None else a - b


def gn_spread(err: dict, cfg: Config) -> float | None:
    """max over batch sizes of |err_GN(B) - err_GN(normal)|; None when any is not measured."""
    gn = [err.get(("groupnorm", cfg.num_groups, b)) for b in cfg.batch_sizes]
    base = err.get(("groupnorm", cfg.num_groups, cfg.normal_batch))
    return None if base is None or any(v is None for v in gn) else max(abs(v - base) for v in gn)


def best_middle(err: dict, cfg: Config) -> tuple:
    """``(G, error)`` of the lowest error among 1 < G < C at the normal batch; (None, None) when any is missing."""
    mid = [g for g in cfg.group_sweep if 1 < g < cfg.num_filters]
    vals = [err.get(("groupnorm", g, cfg.normal_batch)) for g in mid]
    if not mid or any(v is None for v in vals):
        return None, None
    return min(zip(mid, vals), key=lambda p: p[1])


def criteria(err: dict, cfg: Config) -> dict:
    """Each claim's checks from the conditions' mean errors (``err[(norm, groups, batch)]``, None or absent
    when not measured): ``{key: [True / False / None, ...]}``, in the order of the criteria's text."""
    big, small, C, G = cfg.normal_batch, cfg.small_batch, cfg.num_filters, cfg.num_groups
    bn = lambda b: err.get(("batchnorm", None, b))
    gn = lambda g, b=big: err.get(("groupnorm", g, b))
    rise, flat = _sub(bn(small), bn(big)), gn_spread(err, cfg)
    _, mid = best_middle(err, cfg)
    return {"a": [_lt(bn(big), gn(G)), _lt(gn(G), gn(1)), _lt(gn(G), gn(C))],
            "b": [None if rise is None else bool(rise >= BN_RISE), None if flat is None else bool(flat <= GN_FLAT),
                  _lt(gn(G, small), bn(small))],
            "c": [_lt(mid, gn(1)), _lt(mid, gn(C))]}


def _t(v) -> str:
    return "not measured" if v is None else fmt(v, 3)


def _ours(key: str, err: dict, cfg: Config) -> str:
    big, small, C, G = cfg.normal_batch, cfg.small_batch, cfg.num_filters, cfg.num_groups
    bn = lambda b: err.get(("batchnorm", None, b))
    gn = lambda g, b=big: err.get(("groupnorm", g, b))
    if key == "a":
        return (f"batch {big}: err_BN = {_t(bn(big))}, err_GN = {_t(gn(G))}, err_LN = {_t(gn(1))}, "
                f"err_IN = {_t(gn(C))}.")
    if key == "b":
        per_b = ", ".join(f"{b}: {_t(bn(b))} / {_t(gn(G, b))}" for b in cfg.batch_sizes)
        return (f"err BN / GN per batch size, {per_b}; BN's change from {big} to {small} = "
                f"{_t(_sub(bn(small), bn(big)))} (needed >= {BN_RISE}), GN's largest change = "
                f"{_t(gn_spread(err, cfg))} (allowed <= {GN_FLAT}).")
    g_best, mid = best_middle(err, cfg)
    per_g = ", ".join(f"G={g}: {_t(gn(g))}" for g in cfg.group_sweep)
    return (f"batch {big}, {per_g}; best between the extremes: "
            + ("not measured" if g_best is None else f"G={g_best} ({_t(mid)})") + ".")


def findings(err: dict, cfg: Config) -> list[Finding]:
    """The claims measured: each one's numbers in words and the verdict of its checks."""
    checks = criteria(err, cfg)
    return [Finding(c, _ours(c.key, err, cfg), verdict(checks[c.key])) for c in CLAIMS]


def groups_of(cfg: Config, done: Runs) -> dict:
    """``{(norm, groups, batch): Runs}`` of every condition, seeds in order."""
    return {k: done.where(norm=k[0], groups=k[1], batch=k[2]).by_seed() for k in _conditions(cfg)}


def _final_train_error(r):
    return 1.0 - r.train_acc_history[-1] if r.status == "finished" and r.train_acc_history else None


# --------------------------------------------------------------------------- figures

_IN_COLOR = figures.color_for("instance norm", 4)


def _log2_axis(ax, ticks, labels=None) -> None:
    """A log-2 x axis through ``ticks``, largest on the left (the paper's orientation)."""
    from matplotlib.ticker import NullLocator
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ticks), labels or [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(max(ticks) * 1.25, min(ticks) / 1.25)


def _seed_values(rs: Runs) -> list:
    """``(error in %, diverged)`` of each run of a condition (None: no error, the run did not finish)."""
    return [(None if error_of(r) is None else 100 * error_of(r), r.status == "diverged") for r in rs.results]


def _names(cfg: Config) -> dict:
    return {"BN": "batchnorm (BN)", "GN": f"groupnorm (GN, G={cfg.num_groups})", "LN": "layernorm (LN = GN, G=1)",
            "IN": f"instance norm (IN = GN, G={cfg.num_filters})"}


def _figure1(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    fig, (ax_p, ax_o) = figures.new_figure(2, 1, width=4.8, height=3.6,
                                           title="Figure 1 redrawn: error against the batch size")
    names = _names(cfg)
    for key, values in (("BN", _PAPER_BN), ("GN", _PAPER_GN)):
        ax_p.plot(_PAPER_BATCHES, values, "o-", ms=4, lw=1.6, color=figures.color_for(names[key]),
                  label=names[key].replace(f"G={cfg.num_groups}", "G=32"))
    ax_p.set(title="Paper: ResNet-50 on ImageNet (Table 2)", xlabel="batch size (images per GPU)",
             ylabel="top-1 validation error (%)")
    figures.sweep(ax_o, cfg.batch_sizes, {
        names["BN"]: [_seed_values(groups[("batchnorm", None, b)]) for b in cfg.batch_sizes],
        names["GN"]: [_seed_values(groups[("groupnorm", cfg.num_groups, b)]) for b in cfg.batch_sizes]},
        "test error (%)", logx=False)
    ax_o.set(title=f"Ours: conv net on {cfg.dataset}", xlabel="batch size (images per step)")
    for ax, ticks in ((ax_p, _PAPER_BATCHES), (ax_o, sorted(cfg.batch_sizes, reverse=True))):
        _log2_axis(ax, ticks)
        ax.legend(loc="upper left")
    return figures.save(fig, stem)


def _figure4(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    big, names = cfg.normal_batch, _names(cfg)
    fig, (ax_t, ax_v) = figures.new_figure(2, 1, width=4.6, height=3.4,
                                           title=f"Figure 4 redrawn: error curves at batch {big} ({cfg.dataset})")
    shown = (("BN", ("batchnorm", None, big)), ("GN", ("groupnorm", cfg.num_groups, big)),
             ("LN", ("groupnorm", 1, big)), ("IN", ("groupnorm", cfg.num_filters, big)))
    for key, cond in shown:
        rs = [r for r in groups[cond].results if r.status in ("finished", "diverged")]
        color = _IN_COLOR if key == "IN" else figures.color_for(names[key])
        for ax, hist in ((ax_t, "train_acc_history"), (ax_v, "val_acc_history")):
            curves = [([100 * (1 - a) for a in getattr(r, hist)], r.status == "diverged") for r in rs]
            if curves:
                figures.band(ax, curves, names[key], color, marker="o")
    # The paper's axes show the trained range; epoch 0 (chance, ~90 %) would flatten the curves.
    after1 = [100 * (1 - getattr(r, h)[1]) for c in shown for r in groups[c[1]].results
              for h in ("train_acc_history", "val_acc_history") if len(getattr(r, h)) > 1]
    for ax in (ax_t, ax_v):
        ax.set_ylim(0, min(100.0, 1.6 * max(after1)) if after1 else 100.0)
    ax_t.set(title=f"training error ({cfg.monitor_samples} training images)", xlabel="epoch",
             ylabel="error (%)")
    ax_v.set(title=f"validation error ({cfg.num_val} held-out images)", xlabel="epoch", ylabel="error (%)")
    for ax in (ax_t, ax_v):
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = ax_v.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=2)
    return figures.save(fig, stem)


def _table3(cfg: Config, groups: dict, stem: Path) -> list[Path]:
    C, G, big = cfg.num_filters, cfg.num_groups, cfg.normal_batch
    fig, (ax_p, ax_o) = figures.new_figure(2, 1, width=4.8, height=3.6,
                                           title="Table 3 redrawn: error against the number of groups")
    ax_p.plot(_PAPER_G, _PAPER_G_ERR, "o-", ms=4, lw=1.6, color=figures.COLORS["groupnorm"],
              label="fixed number of groups G")
    ax_p.axhline(_PAPER_IN, color=_IN_COLOR, ls="--", lw=1.2, label=f"IN (1 channel per group): {_PAPER_IN}")
    ax_p.set(title="Paper: ResNet-50 on ImageNet, 32/GPU", xlabel="number of groups G",
             ylabel="top-1 validation error (%)")
    _log2_axis(ax_p, _PAPER_G, [f"{g}\n(LN)" if g == 1 else str(g) for g in _PAPER_G])
    ax_p.set_ylim(min(_PAPER_G_ERR) - 0.5, _PAPER_IN + 0.7)
    sweep = sorted(cfg.group_sweep, reverse=True)
    figures.sweep(ax_o, sweep, {f"groupnorm, batch {big}": [_seed_values(groups[("groupnorm", g, big)])
                                                            for g in sweep]}, "test error (%)", logx=False)
    ax_o.set(title=f"Ours: conv net (C = {C}) on {cfg.dataset}", xlabel="number of groups G")
    tick = {1: "1\n(LN)", C: f"{C}\n(IN)", G: f"{G}\n(GN)"}
    _log2_axis(ax_o, sweep, [tick.get(g, str(g)) for g in sweep])
    ax_p.legend(loc="center left")
    ax_o.legend(loc="upper left")
    return figures.save(fig, stem)


# --------------------------------------------------------------------------- analysis

def _answer(cfg: Config, err: dict, stats: dict, found: list) -> str:
    big, small, C, G = cfg.normal_batch, cfg.small_batch, cfg.num_filters, cfg.num_groups
    s = lambda k: stats[k]["test_err"].text(3)
    rise, flat = _sub(err.get(("batchnorm", None, small)), err.get(("batchnorm", None, big))), gn_spread(err, cfg)
    g_best, mid = best_middle(err, cfg)
    change = ("is not measured" if rise is None
              else f"{'rises' if rise >= 0 else 'falls'} by {fmt(abs(rise), 3)}, to {s(('batchnorm', None, small))}")
    parts = [
        f"At batch {big} the test error is BN {s(('batchnorm', None, big))}, GN (G={G}) "
        f"{s(('groupnorm', G, big))}, LN {s(('groupnorm', 1, big))} and IN {s(('groupnorm', C, big))}; "
        f"from batch {big} to {small} BN's mean error {change}, while GN's moves by at most "
        + ("an unmeasured amount" if flat is None else fmt(flat, 3))
        + f" over batch sizes {', '.join(map(str, cfg.batch_sizes))} ({s(('groupnorm', G, small))} at batch "
        f"{small}).",
        "Between the group-number extremes the lowest error is "
        + ("not measured" if g_best is None else f"{fmt(mid, 3)} at G={g_best}")
        + f", against {_t(err.get(('groupnorm', 1, big)))} for G=1 (LN) and "
        f"{_t(err.get(('groupnorm', C, big)))} for G={C} (IN). Verdicts: "
        + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + ".",
    ]
    return " ".join(parts)


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    groups = groups_of(cfg, done)
    err = {k: condition_error(rs, cfg.seeds) for k, rs in groups.items()}
    found = findings(err, cfg)
    missing = lambda rs: [None] * (len(cfg.seeds) - len(rs))
    stats = {k: {"test_err": spread([error_of(r) for r in rs.results] + missing(rs)),
                 "final_train_err": spread([_final_train_error(r) for r in rs.results] + missing(rs))}
             for k, rs in groups.items()}
    big, small = cfg.normal_batch, cfg.small_batch
    answer = _answer(cfg, err, stats, found) + problems_sentence(done, len(runs(cfg)))
    table = [{"condition": label(cfg, g), "norm": norm, "groups": g, "batch": b,
              "learning_rate": cfg.learning_rate * b / REF_BATCH, "test_err": st["test_err"].mean,
              "test_err_range": _range(st["test_err"]), "final_train_err": st["final_train_err"].mean,
              "runs": status_text(groups[(norm, g, b)], len(cfg.seeds))}
             for (norm, g, b), st in stats.items()]
    g_best, mid = best_middle(err, cfg)
    key = lambda k: f"{label(cfg, k[1])}/batch={k[2]}"
    metrics = {
        "verdicts": verdict_metrics(found),
        "checks": criteria(err, cfg),
        "criteria_inputs": {
            **{_input_name(cfg, g, b): err[(n, g, b)] for n, g, b in _conditions(cfg)},
            f"err_BN({small}) - err_BN({big})": _sub(err[("batchnorm", None, small)], err[("batchnorm", None, big)]),
            "max_B |err_GN(B) - err_GN(normal)|": gn_spread(err, cfg),
            "best_middle_G": g_best, "best_middle_err": mid, "bn_rise": BN_RISE, "gn_flat": GN_FLAT},
        "conditions": {key(k): {m: v.as_dict() for m, v in st.items()} for k, st in stats.items()},
    }
    figs = [_figure1(cfg, groups, out_dir / "wu-he-2018-figure1")[0],
            _figure4(cfg, groups, out_dir / "wu-he-2018-figure4")[0],
            _table3(cfg, groups, out_dir / "wu-he-2018-table3")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))


def _input_name(cfg: Config, groups, batch) -> str:
    """'err_BN(32)', 'err_LN(32)', ... and 'err_GN(G=2, B=32)' for the sweep's other group numbers."""
    lab = label(cfg, groups)
    return f"err_GN(G={groups}, B={batch})" if "(" in lab else f"err_{lab}({batch})"


def _range(sp: Spread):
    return None if sp.mean is None else [sp.lo, sp.hi]
