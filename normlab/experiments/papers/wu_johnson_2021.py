"""wu-johnson-2021: which "batch" batch norm's statistics come from, at training and at test time.

Reference: Yuxin Wu and Justin Johnson (2021), "Rethinking 'Batch' in BatchNorm",
arXiv:2105.07576: section 3 (population statistics: EMA against PreciseBN,
Figure 2), section 4 (the normalization batch size and the train/test
inconsistency, Figure 5) and section 5 (domain shift: statistics recomputed on
the target domain, ImageNet-C).

The paper's setup: ResNet-50 on ImageNet. Section 3 compares the exponential
moving average (EMA) of the mini-batch statistics with PreciseBN, which
recomputes the population statistics with the trained weights frozen (the
reference implementation, fvcore's ``update_bn_stats``, averages the per-batch
means and Bessel-corrected variances over a few hundred batches, an estimate
of the population's mean and unbiased variance); in large-batch training
(batch 8192, few iterations) EMA's statistics lag behind the weights and its
validation error is worse and unstable where PreciseBN's is not (Figure 2,
read from the figure). Section 4 varies the normalization batch size (NBS) and
evaluates with mini-batch statistics on the training set, with mini-batch
statistics of the same size on the validation set and with population
statistics: at a small NBS the population statistics give a higher error than
the mini-batch ones (the net was trained on mini-batch statistics, the test
sees others), at a large NBS the inconsistency disappears (Figure 5, read from
the figure). Section 5 evaluates on corrupted images (ImageNet-C): population
statistics recomputed on the target domain recover much of the lost accuracy.

Ours: Fashion-MNIST, flattened, mean image subtracted; a 784-128-128-10
``FullyConnectedNet`` with batch norm on both hidden layers (course
convention: momentum weights the OLD value, running mean and variance start
at 0, EMA of the biased batch variance), Adam at learning rate 1e-3 (one rate
everywhere; the BN net at batch 32 reaches ~0.84 after 1000 steps in a pilot,
a sensible baseline), 10,000 training images, every accuracy on all 10,000
test images. Everything after training is done by :func:`measure` on the
trained net, which it leaves unchanged:

- PreciseBN: the exact mean and the unbiased variance (divisor N - 1, as the
  paper's estimate of the population variance) of each BN layer's input over
  the first ``precise_samples`` training images, layer by layer, the earlier
  layers already normalizing with their precise statistics (one forward pass
  in inference mode does this).
- (a) EMA momentum 0.9 / 0.99 / 0.999 x a short and a long training (200 and
  1500 steps at batch 32): accuracy with the EMA and with the precise
  statistics, and the relative distance ||EMA - precise|| / ||precise|| of the
  last BN layer's mean and variance. Short training with a large momentum is
  our analogue of the paper's few-iteration regime where the EMA lags.
- (b) NBS 2 / 8 / 32 (our net normalizes the whole training batch, so the
  training batch size is the NBS; each trains on 8000 images, 4000 / 1000 /
  250 steps, same data, same rate): accuracy with mini-batch statistics of the
  NBS on the (fixed-permuted) test set in train mode, and on the training set
  (Figure 5's three curves), with EMA and with population (precise)
  statistics.
- (c) the (b) nets of NBS 32 on a shifted test set: raw pixels x -> 1.5 x +
  0.3 (contrast and brightness, before the training mean image is subtracted),
  with the training population's statistics kept against statistics recomputed
  (PreciseBN) on the shifted test images themselves. This shift is an affine
  map of every pixel, which the first BN layer absorbs exactly once its
  statistics are recomputed (up to eps): "recomputed" then equals the clean
  accuracy, and the check measures how much keeping the statistics loses.

Three seeds; a condition is measured only when all its seeds finished.
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

NAME = "wu-johnson-2021"
TITLE = "Rethinking 'batch' in batch norm: EMA vs PreciseBN, normalization batch size, shift (Wu & Johnson 2021)"
QUESTION = ("Are EMA population statistics inaccurate where PreciseBN is not, are population statistics "
            "inconsistent with training at a small normalization batch size, and do statistics recomputed on "
            "shifted test data recover accuracy?")
SUITE = "papers"

PAPER = Paper(
    authors="Yuxin Wu, Justin Johnson", year=2021, title="Rethinking \u201cBatch\u201d in BatchNorm",
    arxiv="2105.07576", where="Figure 2 (section 3), Figure 5 (section 4), section 5 (ImageNet-C)",
    setup=("ResNet-50 on ImageNet. Section 3: EMA (momentum 0.9) against PreciseBN (population statistics "
           "recomputed with frozen weights over a few thousand training images) in large-batch training "
           "(batch 8192). Section 4: normalization batch sizes 2 to 1024, evaluated with mini-batch statistics "
           "on training and validation images and with population statistics. Section 5: evaluation on "
           "ImageNet-C corruptions with statistics from the training set or recomputed on the target domain."),
    ours=("Fashion-MNIST; a 784-128-128-10 batch-norm fc net, Adam 1e-3, 10,000 training images; PreciseBN "
          "layer by layer over 10,000 training images (exact mean, unbiased variance). (a) momentum 0.9/0.99/"
          "0.999 x 200 and 1500 steps at batch 32; (b) training batch = NBS 2/8/32 on 8000 images each; (c) "
          "the NBS-32 nets on test images shifted by x -> 1.5 x + 0.3 (raw pixels). Three seeds, about a "
          "CPU-minute in all."))

TOL = 0.005

CLAIMS = (
    Claim("a", "EMA statistics can be inaccurate; PreciseBN is at least as good, and better where EMA lags.",
          "Figure 2 (read from the figure): in large-batch training the EMA's validation error is higher and "
          "unstable, PreciseBN's lower and stable; the EMA lags behind the weights (section 3).",
          f"acc_precise >= acc_EMA - {TOL} at every momentum and length; at the (momentum, length) whose "
          "distance is largest acc_precise > acc_EMA; distance(0.999) > distance(0.9) at the shorter length "
          "(distance: the larger of the last BN layer's relative mean and variance distances, mean over seeds)."),
    Claim("b", "At a small normalization batch size population statistics are inconsistent with training; at a "
               "large one they are fine.",
          "Figure 5 (read from the figure): at small NBS the error with population statistics is above the "
          "error with mini-batch statistics on the validation set; the gap closes as the NBS grows.",
          f"acc(mini-batch stats, 2) > acc(population) at NBS 2; acc(population) >= acc(mini-batch stats, 32) "
          f"- {TOL} at NBS 32."),
    Claim("c", "Statistics recomputed on the shifted data recover accuracy.",
          "Section 5: on ImageNet-C, population statistics recomputed on the corrupted images improve accuracy "
          "over the training set's statistics.",
          "acc_shift(recomputed) > acc_shift(kept) (NBS-32 nets, kept = the training population's statistics)."),
)


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (128, 128)   # paper: ResNet-50; ours: two BN layers, the last one measured
    weight_scale: float = 0.1
    learning_rate: float = 1e-3                 # Adam, one rate for every run
    num_train: int = 10000
    num_test: int = 10000
    precise_samples: int = 10000                # PreciseBN over this many training images
    momenta: tuple[float, ...] = (0.9, 0.99, 0.999)   # course convention: weight of the OLD value
    lengths: tuple[int, ...] = (200, 1500)      # (a): steps; the first is "the shorter length"
    ema_batch: int = 32                         # (a): the training batch
    nbs: tuple[int, ...] = (2, 8, 32)           # (b): normalization (= training) batch sizes
    nbs_samples: int = 8000                     # (b): training images seen at every NBS
    train_samples: int = 2000                   # (b): mini-batch accuracy on this many training images
    shift_scale: float = 1.5                    # (c): raw pixel x -> scale * x + offset
    shift_offset: float = 0.3
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive_tuple(self, "hidden_dims", integer=True)
        positive_tuple(self, "lengths", integer=True)
        positive_tuple(self, "nbs", integer=True)
        positive(self, "num_train", "num_test", "precise_samples", "ema_batch", "nbs_samples", "train_samples",
                 integer=True)
        positive(self, "weight_scale", "learning_rate", "shift_scale")
        if not self.momenta or any(not 0 < m < 1 for m in self.momenta) or 0.9 not in self.momenta \
                or 0.999 not in self.momenta:
            raise ValueError(f"momenta must lie in (0, 1) and include 0.9 and 0.999 (criterion a), "
                             f"got {self.momenta!r}")
        if len(self.lengths) != 2 or self.lengths[0] >= self.lengths[1]:
            raise ValueError(f"lengths must be (shorter, longer) steps, got {self.lengths!r}")
        if min(self.nbs) < 2 or list(self.nbs) != sorted(set(self.nbs)):
            raise ValueError(f"nbs must be increasing batch sizes of at least 2, got {self.nbs!r}")
        if self.precise_samples > self.num_train:
            raise ValueError(f"precise_samples={self.precise_samples} exceeds num_train={self.num_train}")
        if self.train_samples > self.num_train:
            raise ValueError(f"train_samples={self.train_samples} exceeds num_train={self.num_train}")
        if max(self.nbs) > self.num_test or self.ema_batch > self.num_train:
            raise ValueError(f"a batch size exceeds the data: nbs={self.nbs!r}, ema_batch={self.ema_batch}, "
                             f"num_test={self.num_test}, num_train={self.num_train}")
        if self.nbs_samples < max(self.nbs):
            raise ValueError(f"nbs_samples={self.nbs_samples} is below the largest NBS {max(self.nbs)}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=2000, num_test=1000, precise_samples=2000,
                               lengths=(40, 200), nbs_samples=400, train_samples=500, seeds=cfg.seeds[:2])


def _spec(cfg, part, name, seed, batch, steps, momentum, tags, nbs=None, shift=False) -> RunSpec:
    kwargs = {"precise_samples": cfg.precise_samples, "nbs": nbs, "train_samples": cfg.train_samples,
              "shift": [cfg.shift_scale, cfg.shift_offset] if shift else None, "dataset": cfg.dataset,
              "num_train": cfg.num_train, "seed": seed}
    task = {"kind": "steps", "steps": steps, "batch_size": batch, "update_rule": "adam",
            "optim_config": {"learning_rate": cfg.learning_rate}, "eval_every": steps, "eval_set": "test",
            "measure": {"fn": f"{__name__}:measure", "kwargs": kwargs}}
    model_kwargs = {"hidden_dims": list(cfg.hidden_dims), "normalization": "batchnorm",
                    "weight_scale": cfg.weight_scale, "norm_param": {"momentum": momentum}}
    return RunSpec(experiment=NAME, name=f"{part}/{name}/seed={seed}", model="fc", model_kwargs=model_kwargs,
                   dataset=cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, seed=seed,
                   tags={"part": part, **tags}, task=task)


def runs(cfg: Config) -> list[RunSpec]:
    specs = [_spec(cfg, "ema", f"momentum={m}/steps={n}", s, cfg.ema_batch, n, m, {"momentum": m, "steps": n})
             for m in cfg.momenta for n in cfg.lengths for s in cfg.seeds]
    specs += [_spec(cfg, "nbs", f"nbs={b}", s, b, cfg.nbs_samples // b, 0.9, {"nbs": b}, nbs=b,
                    shift=b == max(cfg.nbs))
              for b in cfg.nbs for s in cfg.seeds]
    return specs


# --------------------------------------------------------------------------- measuring a trained net

def bn_layers(model, X, stats=None):
    """Each BN layer's input (N, D_i) in inference mode, layer by layer; ``stats`` (a list of (mean, var) per
    layer, or None) overrides the running statistics. With ``stats=None`` the net's own running statistics."""
    if model.activation != "relu" or model.use_dropout or model.normalization != "batchnorm":
        raise ValueError("bn_layers needs a ReLU batch-norm fc net without dropout")
    h, inputs = np.asarray(X, dtype=np.float64).reshape(len(X), -1), []
    for i in range(1, model.num_layers):
        p, bn = model.params, model.bn_params[i - 1]
        x = h @ p[f"W{i}"].astype(np.float64) + p[f"b{i}"]          # (N, D_i): the BN layer's input
        inputs.append(x)
        mean, var = (bn["running_mean"], bn["running_var"]) if stats is None else stats[i - 1]
        h = np.maximum((x - mean) / np.sqrt(var + bn.get("eps", 1e-5)) * p[f"gamma{i}"] + p[f"beta{i}"], 0)
    return inputs


def precise_stats(model, X) -> list[tuple[np.ndarray, np.ndarray]]:
    """PreciseBN: the exact mean and unbiased variance of each BN layer's input over ``X`` (float64), layer
    by layer, the earlier layers normalizing with their precise statistics."""
    stats = []
    for i in range(1, model.num_layers):
        x = bn_layers(model, X, stats + [(0.0, 1.0)] * (model.num_layers - 1 - len(stats)))[i - 1]
        stats.append((x.mean(axis=0), x.var(axis=0, ddof=1)))
    return stats


def _with_stats(model, stats, fn):
    """``fn()`` with the running statistics replaced by ``stats`` (then restored)."""
    saved = model.state_arrays()
    try:
        for bn, (m, v) in zip(model.bn_params, stats):
            bn["running_mean"], bn["running_var"] = m.astype(model.dtype), v.astype(model.dtype)
        return fn()
    finally:
        model.load_state_arrays(saved)


def _acc(model, X, y, chunk=1000) -> float:
    hits = sum(int(np.sum(model.loss(X[i:i + chunk]).argmax(axis=1) == y[i:i + chunk]))
               for i in range(0, len(X), chunk))
    return hits / len(X)


def minibatch_acc(model, X, y, batch: int, seed: int) -> float:
    """Accuracy in train mode (each batch normalized with its own statistics) on batches of ``batch`` images of
    a fixed permutation of ``X`` (the tail shorter than ``batch`` dropped); the running statistics restored."""
    order = np.random.default_rng([seed, 7]).permutation(len(X))
    saved, hits, n = model.state_arrays(), 0, 0
    try:
        for i in range(0, len(X) - batch + 1, batch):
            idx = order[i:i + batch]
            hits += int(np.sum(model.scores(X[idx], "train").argmax(axis=1) == y[idx]))
            n += batch
    finally:
        model.load_state_arrays(saved)
    return hits / n


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def _mean_image(dataset: str, num_train: int) -> np.ndarray:
    from ...data import load_fashion_mnist, load_mnist
    loader = load_fashion_mnist if dataset == "fashion-mnist" else load_mnist
    raw = loader(num_training=num_train, num_validation=1, num_test=1, subtract_mean=False, flatten=True)
    return raw["X_train"].mean(axis=0, dtype=np.float64)


def measure(model, data, precise_samples, nbs=None, train_samples=1000, shift=None, dataset="fashion-mnist",
            num_train=None, seed=0) -> dict:
    """Everything the recipe needs of a trained net (see the module docstring); the net is left unchanged."""
    Xtr = data["X_train"].reshape(len(data["X_train"]), -1)
    Xte, yte = data["X_test"].reshape(len(data["X_test"]), -1), data["y_test"]
    precise = precise_stats(model, Xtr[:precise_samples])
    last = model.bn_params[-1]
    out = {"acc_ema": _acc(model, Xte, yte), "acc_precise": _with_stats(model, precise, lambda: _acc(model, Xte, yte)),
           "dist_mean": _rel(last["running_mean"], precise[-1][0]), "dist_var": _rel(last["running_var"], precise[-1][1])}
    if nbs:
        out["acc_minibatch"] = minibatch_acc(model, Xte, yte, nbs, seed)
        out["acc_minibatch_train"] = minibatch_acc(model, Xtr[:train_samples], data["y_train"][:train_samples],
                                                   nbs, seed)
    if shift:
        mean = _mean_image(dataset, num_train or len(Xtr))
        Xs = (shift[0] * (Xte + mean) + shift[1] - mean).astype(model.dtype)   # raw x -> a x + b, re-centred
        out["shift"] = {"kept": _with_stats(model, precise, lambda: _acc(model, Xs, yte)),
                        "recomputed": _with_stats(model, precise_stats(model, Xs), lambda: _acc(model, Xs, yte)),
                        "clean_recomputed": _with_stats(model, precise_stats(model, Xte),
                                                        lambda: _acc(model, Xte, yte))}
    return out


# --------------------------------------------------------------------------- criteria

def _m(r, key, sub=None):
    """A finished run's measured value (``extras['measure'][key]`` or ``[key][sub]``), else None."""
    m = r.extras.get("measure") if r.status == "finished" else None
    v = None if m is None else m.get(key)
    return v.get(sub) if isinstance(v, dict) and sub else (None if isinstance(v, dict) else v)


def _dist(r):
    a, b = _m(r, "dist_mean"), _m(r, "dist_var")
    return None if a is None or b is None else max(a, b)


def condition(rs: Runs, seeds, value) -> float | None:
    """Mean of ``value(result)`` over the seeds, or None unless every seed has a value."""
    by_seed = {s.seed: value(r) for s, r in rs}
    vals = [by_seed.get(s) for s in seeds]
    return None if any(v is None for v in vals) else float(np.mean(vals))


def _gt(a, b):
    return None if a is None or b is None else bool(a > b)


def _ge(a, b):
    return None if a is None or b is None else bool(a >= b)


def criteria(v: dict, momenta, lengths, nbs) -> dict:
    """The checks of each claim from the conditions' means ``v`` (None or absent: not measured):
    ``v[("ema", m, n)] = {"acc_ema", "acc_precise", "dist"}``, ``v[("nbs", b)] = {"acc_minibatch",
    "acc_precise", ...}``, ``v["shift"] = {"kept", "recomputed"}``."""
    g = lambda key, q: (v.get(key) or {}).get(q)
    cells = [("ema", m, n) for m in momenta for n in lengths]
    every = [_ge(g(c, "acc_precise"), None if g(c, "acc_ema") is None else g(c, "acc_ema") - TOL) for c in cells]
    a1 = None if any(e is None for e in every) else all(every)
    dists = [g(c, "dist") for c in cells]
    a2 = None
    if all(d is not None for d in dists):
        worst = cells[int(np.argmax(dists))]
        a2 = _gt(g(worst, "acc_precise"), g(worst, "acc_ema"))
    short = lengths[0]
    a3 = _gt(g(("ema", 0.999, short), "dist"), g(("ema", 0.9, short), "dist"))
    lo, hi = ("nbs", nbs[0]), ("nbs", nbs[-1])
    b = [_gt(g(lo, "acc_minibatch"), g(lo, "acc_precise")),
         _ge(g(hi, "acc_precise"), None if g(hi, "acc_minibatch") is None else g(hi, "acc_minibatch") - TOL)]
    return {"a": [a1, a2, a3], "b": b, "c": [_gt(g("shift", "recomputed"), g("shift", "kept"))]}


def _t(x) -> str:
    return "not measured" if x is None else fmt(x, 3)


def _ours(key, v, cfg) -> str:
    g = lambda k, q: (v.get(k) or {}).get(q)
    if key == "a":
        cells = "; ".join(f"momentum {m}, {n} steps: EMA {_t(g(('ema', m, n), 'acc_ema'))}, precise "
                          f"{_t(g(('ema', m, n), 'acc_precise'))}, distance {_t(g(('ema', m, n), 'dist'))}"
                          for m in cfg.momenta for n in cfg.lengths)
        return f"Test accuracy and last-layer distance: {cells}."
    if key == "b":
        return "; ".join(f"NBS {b}: mini-batch {_t(g(('nbs', b), 'acc_minibatch'))}, EMA "
                         f"{_t(g(('nbs', b), 'acc_ema'))}, population {_t(g(('nbs', b), 'acc_precise'))}"
                         for b in cfg.nbs) + "."
    return (f"Shifted test set (raw x -> {cfg.shift_scale} x + {cfg.shift_offset}): training statistics kept "
            f"{_t(g('shift', 'kept'))}, recomputed on the shifted images {_t(g('shift', 'recomputed'))}; clean "
            f"test set {_t(g(('nbs', cfg.nbs[-1]), 'acc_precise'))}.")


def findings(v: dict, cfg: Config) -> list[Finding]:
    checks = criteria(v, cfg.momenta, cfg.lengths, cfg.nbs)
    return [Finding(c, _ours(c.key, v, cfg), verdict(checks[c.key])) for c in CLAIMS]


VALUES = {"acc_ema": lambda r: _m(r, "acc_ema"), "acc_precise": lambda r: _m(r, "acc_precise"), "dist": _dist,
          "dist_mean": lambda r: _m(r, "dist_mean"), "dist_var": lambda r: _m(r, "dist_var")}
NBS_VALUES = {"acc_ema": VALUES["acc_ema"], "acc_precise": VALUES["acc_precise"],
              "acc_minibatch": lambda r: _m(r, "acc_minibatch"),
              "acc_minibatch_train": lambda r: _m(r, "acc_minibatch_train")}
SHIFT_VALUES = {k: (lambda r, k=k: _m(r, "shift", k)) for k in ("kept", "recomputed", "clean_recomputed")}


def _groups(cfg: Config, done: Runs) -> dict:
    out = {("ema", m, n): done.where(part="ema", momentum=m, steps=n).by_seed()
           for m in cfg.momenta for n in cfg.lengths}
    out.update({("nbs", b): done.where(part="nbs", nbs=b).by_seed() for b in cfg.nbs})
    return out


def _values(cfg: Config, groups: dict) -> tuple[dict, dict]:
    """(means for the criteria, spreads for the table) per condition."""
    means, spreads = {}, {}
    for key, rs in groups.items():
        table = VALUES if key[0] == "ema" else NBS_VALUES
        means[key] = {q: condition(rs, cfg.seeds, f) for q, f in table.items()}
        pad = [None] * (len(cfg.seeds) - len(rs))
        spreads[key] = {q: spread([f(r) for r in rs.results] + pad) for q, f in table.items()}
    top = groups[("nbs", cfg.nbs[-1])]
    means["shift"] = {q: condition(top, cfg.seeds, f) for q, f in SHIFT_VALUES.items()}
    spreads["shift"] = {q: spread([f(r) for r in top.results] + [None] * (len(cfg.seeds) - len(top)))
                        for q, f in SHIFT_VALUES.items()}
    return means, spreads


# --------------------------------------------------------------------------- figures

def _per_x(rs_list, f):
    """For figures.sweep: one entry per x, a list over seeds of (value, diverged)."""
    return [[(f(r), r.status == "diverged") for r in rs.results] for rs in rs_list]


def _figure2(cfg, groups, stem) -> list[Path]:
    fig, (ax_acc, ax_d) = figures.new_figure(2, 1, width=4.8, height=3.5, title=(
        f"Figure 2 redrawn (section 3): EMA vs PreciseBN, fc BN net on {cfg.dataset}, batch {cfg.ema_batch}"))
    xs = list(range(len(cfg.momenta)))
    acc, dist = {}, {}
    for n in cfg.lengths:
        rs = [groups[("ema", m, n)] for m in cfg.momenta]
        acc[f"EMA, {n} steps"] = _per_x(rs, VALUES["acc_ema"])
        acc[f"PreciseBN, {n} steps"] = _per_x(rs, VALUES["acc_precise"])
        dist[f"mean, {n} steps"] = _per_x(rs, VALUES["dist_mean"])
        dist[f"variance, {n} steps"] = _per_x(rs, VALUES["dist_var"])
    figures.sweep(ax_acc, xs, acc, "test accuracy", logx=False,
                  styles={k: "--" for k in acc if k.startswith("Precise")})
    figures.sweep(ax_d, xs, dist, "||EMA - precise|| / ||precise||", logx=False, logy=True,
                  styles={k: "--" for k in dist if k.startswith("variance")})
    for ax, title in ((ax_acc, "test accuracy with EMA / precise statistics"),
                      (ax_d, "last BN layer: relative distance of the EMA")):
        ax.set(title=title, xlabel="EMA momentum (weight of the old value)")
        ax.set_xticks(xs, [str(m) for m in cfg.momenta])
        ax.legend(fontsize=7)
    return figures.save(fig, stem)


def _figure5(cfg, groups, stem) -> list[Path]:
    fig, (ax,) = figures.new_figure(1, 1, width=5.6, height=3.8, title=(
        f"Figure 5 redrawn (section 4): statistics source vs normalization batch size, {cfg.dataset}"))
    rs = [groups[("nbs", b)] for b in cfg.nbs]
    curves = {"mini-batch stats, training set": _per_x(rs, NBS_VALUES["acc_minibatch_train"]),
              "mini-batch stats (size NBS), test set": _per_x(rs, NBS_VALUES["acc_minibatch"]),
              "EMA statistics, test set": _per_x(rs, NBS_VALUES["acc_ema"]),
              "population (PreciseBN), test set": _per_x(rs, NBS_VALUES["acc_precise"])}
    figures.sweep(ax, cfg.nbs, curves, "accuracy", styles={"mini-batch stats, training set": ":"})
    ax.set_xscale("log", base=2)
    ax.set_xticks(cfg.nbs, [str(b) for b in cfg.nbs])
    ax.set(title="accuracy (the paper plots error)", xlabel="normalization batch size (= training batch)")
    ax.legend(fontsize=7)
    return figures.save(fig, stem)


def _figure_shift(cfg, spreads, stem) -> list[Path]:
    fig, (ax,) = figures.new_figure(1, 1, width=5.0, height=3.6, title=(
        f"Section 5 (ImageNet-C in the paper): NBS-{cfg.nbs[-1]} nets on a shifted test set"))
    top, sh = spreads[("nbs", cfg.nbs[-1])], spreads["shift"]
    series = {"training population statistics (kept)": [top["acc_precise"], sh["kept"]],
              "recomputed on the evaluated images": [sh["clean_recomputed"], sh["recomputed"]]}
    figures.grouped_bars(ax, ["clean test set", f"shifted: {cfg.shift_scale} x + {cfg.shift_offset}"],
                         {k: [s.mean for s in v] for k, v in series.items()}, "test accuracy (mean, min-max)",
                         errors={k: ([s.lo for s in v], [s.hi for s in v]) for k, v in series.items()}, fmt=".3f")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower left")
    return figures.save(fig, stem)


# --------------------------------------------------------------------------- analysis

def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    groups = _groups(cfg, done)
    means, spreads = _values(cfg, groups)
    found = findings(means, cfg)
    worst = max(((m, n) for m in cfg.momenta for n in cfg.lengths),
                key=lambda c: -1 if means[("ema", *c)]["dist"] is None else means[("ema", *c)]["dist"])
    w, lo, hi, sh = spreads[("ema", *worst)], spreads[("nbs", cfg.nbs[0])], spreads[("nbs", cfg.nbs[-1])], \
        spreads["shift"]
    answer = " ".join([
        compare(w["acc_precise"], w["acc_ema"], "PreciseBN", "EMA", f"test accuracy at momentum {worst[0]} and "
                f"{worst[1]} steps (where the EMA is farthest from the population)"),
        compare(lo["acc_minibatch"], lo["acc_precise"], "mini-batch statistics", "population statistics",
                f"test accuracy at normalization batch size {cfg.nbs[0]}"),
        compare(hi["acc_precise"], hi["acc_minibatch"], "population statistics", "mini-batch statistics",
                f"test accuracy at normalization batch size {cfg.nbs[-1]}"),
        compare(sh["recomputed"], sh["kept"], "recomputed statistics", "the training statistics",
                "accuracy on the shifted test set"),
        "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + ".",
    ]) + problems_sentence(done, len(runs(cfg)))
    rng = lambda s: None if s.mean is None else [s.lo, s.hi]
    table = [{"part": "ema", "momentum": m, "steps": n, "runs": status_text(groups[("ema", m, n)], len(cfg.seeds)),
              **{q: s.mean for q, s in spreads[("ema", m, n)].items()},
              **{f"{q}_range": rng(s) for q, s in spreads[("ema", m, n)].items() if q.startswith("acc")}}
             for m in cfg.momenta for n in cfg.lengths]
    table += [{"part": "nbs", "nbs": b, "runs": status_text(groups[("nbs", b)], len(cfg.seeds)),
               **{q: s.mean for q, s in spreads[("nbs", b)].items()},
               **{f"{q}_range": rng(s) for q, s in spreads[("nbs", b)].items()}} for b in cfg.nbs]
    table.append({"part": "shift", "nbs": cfg.nbs[-1], **{f"acc_{q}": s.mean for q, s in sh.items()},
                  **{f"acc_{q}_range": rng(s) for q, s in sh.items()}})
    key = lambda k: k if isinstance(k, str) else "/".join(map(str, k))
    metrics = {"verdicts": verdict_metrics(found), "checks": criteria(means, cfg.momenta, cfg.lengths, cfg.nbs),
               "criteria_inputs": {key(k): v for k, v in means.items()}, "tol": TOL,
               "conditions": {key(k): {q: s.as_dict() for q, s in v.items()} for k, v in spreads.items()}}
    figs = [_figure2(cfg, groups, out_dir / f"{NAME}-figure2")[0], _figure5(cfg, groups, out_dir / f"{NAME}-figure5")[0],
            _figure_shift(cfg, spreads, out_dir / f"{NAME}-shift")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
