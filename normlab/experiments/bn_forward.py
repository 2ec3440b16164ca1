"""bn-forward: the statistics of batch norm's output at train and at test time
(BatchNormalization.ipynb, the forward-pass checks).

The course's toy setup: ``a = relu(X @ W1) @ W2`` with X (N, D1), W1 (D1, D2),
W2 (D2, D3) standard normal, N, D1, D2, D3 = 200, 50, 60, 3. In train mode
batch norm with gamma=1, beta=0 gives per-feature means ~0 and stds ~1, and
with gamma, beta the means ~beta and stds ~gamma. For test time, 50 train-mode
passes on fresh X fill the running averages; a fresh X in test mode then gives
means ~0 and stds ~1, "but noisier". No training runs: computed in analyze,
for each seed. Figure: how far each stage is from its target, and how the
test-time error shrinks with the number of training passes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lab import figures
from ..lab.runs import RunSpec, Runs, Section
from .summarize import check_common, config_dict, fmt, positive

NAME = "bn-forward"
TITLE = "Batch normalization forward pass: train-time and test-time statistics"
QUESTION = ("In train mode, are the per-feature means and standard deviations of batch norm's output "
            "~0 and ~1 (gamma=1, beta=0) and ~beta and ~gamma otherwise? At test time, after training "
            "passes have filled the running averages, how close are they to 0 and 1?")


@dataclass(frozen=True)
class Config:
    N: int = 200                                  # course: batch of 200
    D1: int = 50                                  # course: input features
    D2: int = 60                                  # course: hidden features
    D3: int = 3                                   # course: output features (the ones normalized)
    gamma: tuple[float, ...] = (1.0, 2.0, 3.0)    # course: np.asarray([1.0, 2.0, 3.0])
    beta: tuple[float, ...] = (11.0, 12.0, 13.0)  # course: np.asarray([11.0, 12.0, 13.0])
    train_passes: int = 50                        # course: 50 train-mode passes before the test-time check
    momentum: float = 0.9                         # course default (weight of the old running value)
    eps: float = 1e-5                             # course default
    dataset: str = "fashion-mnist"                # unused: the course's random toy data
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)      # the course draws once; a few draws show the spread (ms)

    def __post_init__(self):
        check_common(self)
        positive(self, "N", "D1", "D2", "D3", "train_passes", integer=True)
        positive(self, "eps")
        if self.N < 2:
            raise ValueError(f"N must be >= 2 for batch statistics, got {self.N}")
        for name in ("gamma", "beta"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or len(v) != self.D3:
                raise ValueError(f"{name} must be a tuple of D3={self.D3} numbers, got {v!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, train_passes=10, seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    return []


def _toy(cfg, seed):
    """(draw, W1, W2): draw() gives a fresh a = relu(X W1) W2 of shape (N, D3)."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((cfg.D1, cfg.D2))
    W2 = rng.standard_normal((cfg.D2, cfg.D3))
    return lambda: np.maximum(0, rng.standard_normal((cfg.N, cfg.D1)) @ W1) @ W2


def _stats(a):
    return a.mean(axis=0), a.std(axis=0)


def measure(cfg: Config, seed: int) -> dict:
    """Per-feature means and stds of each stage for one seed, plus the
    test-time errors after each training pass."""
    from ..layers import batchnorm_forward
    draw = _toy(cfg, seed)
    ones, zeros = np.ones(cfg.D3), np.zeros(cfg.D3)
    gamma, beta = np.asarray(cfg.gamma), np.asarray(cfg.beta)
    bn = lambda a, g, b, mode, p=None: batchnorm_forward(a, g, b, p if p is not None else
                                                         {"mode": mode, "eps": cfg.eps, "momentum": cfg.momentum})[0]
    a = draw()
    out = {"before": _stats(a), "train, gamma=1, beta=0": _stats(bn(a, ones, zeros, "train")),
           "train, gamma, beta": _stats(bn(a, gamma, beta, "train"))}
    bn_param = {"mode": "train", "eps": cfg.eps, "momentum": cfg.momentum}
    curve = []
    test_a = None
    for _ in range(cfg.train_passes):
        bn(draw(), ones, zeros, "train", bn_param)
        test_a = draw() if test_a is None else test_a
        m, s = _stats(bn(test_a, ones, zeros, "test", {**bn_param, "mode": "test"}))
        curve.append((float(np.max(np.abs(m))), float(np.max(np.abs(s - 1)))))
    # The course's check: a fresh batch in test mode after all the passes.
    out[f"test, after {cfg.train_passes} passes"] = _stats(bn(draw(), ones, zeros, "test",
                                                              {**bn_param, "mode": "test"}))
    return {"stages": {k: (m.tolist(), s.tolist()) for k, (m, s) in out.items()}, "curve": curve}


def _targets(cfg):
    D = cfg.D3
    return {"train, gamma=1, beta=0": ([0.0] * D, [1.0] * D), "train, gamma, beta": (list(cfg.beta), list(cfg.gamma)),
            f"test, after {cfg.train_passes} passes": ([0.0] * D, [1.0] * D)}


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    per_seed = [measure(cfg, s) for s in cfg.seeds]
    stages = list(per_seed[0]["stages"])
    targets = _targets(cfg)
    table, errors = [], {}
    for st in stages:
        M = np.array([p["stages"][st][0] for p in per_seed])      # (seeds, D3)
        S = np.array([p["stages"][st][1] for p in per_seed])
        for j in range(cfg.D3):
            row = {"stage": st, "feature": j, "mean": float(M[:, j].mean()), "std": float(S[:, j].mean())}
            if st in targets:
                row["target mean"], row["target std"] = targets[st][0][j], targets[st][1][j]
            row["mean range over seeds"] = [float(M[:, j].min()), float(M[:, j].max())]
            table.append(row)
        if st in targets:
            tm, ts = np.asarray(targets[st][0]), np.asarray(targets[st][1])
            errors[st] = {"max |mean - target|": float(np.max(np.abs(M - tm))),
                          "max |std - target|": float(np.max(np.abs(S - ts)))}
    curves = np.array([p["curve"] for p in per_seed])             # (seeds, passes, 2)
    paths = _figure(cfg, errors, curves, out_dir)

    before_m = np.array([p["stages"]["before"][0] for p in per_seed])
    before_s = np.array([p["stages"]["before"][1] for p in per_seed])
    seeds = f"{len(cfg.seeds)} random draws" if len(cfg.seeds) > 1 else "one random draw"
    e1, e2 = errors["train, gamma=1, beta=0"], errors["train, gamma, beta"]
    et = errors[f"test, after {cfg.train_passes} passes"]
    answer = (f"Over {seeds} of the toy network, the features before batch norm have means "
              f"{fmt(before_m.min(), 2)} to {fmt(before_m.max(), 2)} and stds {fmt(before_s.min(), 2)} to "
              f"{fmt(before_s.max(), 2)}. " + _closeness("In train mode with gamma=1, beta=0", e1, "0", "1") + " "
              + _closeness(f"With gamma={_vec(cfg.gamma)}, beta={_vec(cfg.beta)}", e2, "beta", "gamma") + " "
              + _closeness(f"At test time, after {cfg.train_passes} training passes", et, "0", "1")
              + _test_note(cfg, e1, et, curves))
    metrics = {"errors": errors, "before_means": [float(before_m.min()), float(before_m.max())],
               "before_stds": [float(before_s.min()), float(before_s.max())],
               "test_error_by_pass": {"max_abs_mean": curves[:, :, 0].mean(axis=0).tolist(),
                                      "max_abs_std_minus_1": curves[:, :, 1].mean(axis=0).tolist()}}
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, [paths[0]])


def _vec(v):
    return "(" + ", ".join(f"{x:g}" for x in v) + ")"


def _closeness(prefix, err, mean_target, std_target) -> str:
    """'... the means are within 2.2e-16 of 0 (exact up to rounding) ...', worded from the errors."""
    def word(e):
        if e < 1e-6:
            return "exact up to rounding and eps"
        if e < 0.05:
            return "close"
        if e < 0.2:
            return "roughly equal"
        return "far off"
    em, es = err["max |mean - target|"], err["max |std - target|"]
    return (f"{prefix}, the means are within {fmt(em, 3)} of {mean_target} ({word(em)}) and the stds within "
            f"{fmt(es, 3)} of {std_target} ({word(es)}).")


def _test_note(cfg, train_err, test_err, curves) -> str:
    ratio_m = test_err["max |mean - target|"] / max(train_err["max |mean - target|"], 1e-300)
    first, last = curves[:, 0, :].mean(axis=0), curves[:, -1, :].mean(axis=0)
    s = ""
    if ratio_m > 10:
        s += (" Test time is noisier than train time, as the course says: the running averages estimate the "
              "statistics of all batches, not of the batch being normalized.")
    else:
        s += " Test time is about as accurate as train time here."
    trend = "shrinks" if last[0] < first[0] else "does not shrink"
    s += (f" The test-time error of the means {trend} from {fmt(first[0], 3)} after one pass to {fmt(last[0], 3)} after "
          f"{cfg.train_passes} (mean over draws; the running averages start at 0 and forget at rate "
          f"{cfg.momentum:g} per pass).")
    return s


def _figure(cfg, errors, curves, out_dir):
    fig, (ax_err, ax_curve) = figures.new_figure(2, 1, width=5.2, height=3.6,
                                                 title="Batch norm forward: distance from the expected statistics")
    stages = list(errors)
    x = np.arange(len(stages))
    vals_m = [max(errors[s]["max |mean - target|"], 1e-17) for s in stages]
    vals_s = [max(errors[s]["max |std - target|"], 1e-17) for s in stages]
    ax_err.bar(x - 0.2, vals_m, 0.38, color="#1f77b4", label="max |mean − target|")
    ax_err.bar(x + 0.2, vals_s, 0.38, color="#ff7f0e", label="max |std − target|")
    ax_err.set_yscale("log")
    ax_err.set_xticks(x, ["train\nγ=1, β=0", "train\nγ, β", f"test, after\n{cfg.train_passes} passes"])
    ax_err.set(title="Per stage (max over features and draws)", ylabel="absolute error (log scale)")
    ax_err.legend(loc="upper left")
    passes = np.arange(1, curves.shape[1] + 1)
    for k, (label, color) in enumerate((("max |mean|", "#1f77b4"), ("max |std − 1|", "#ff7f0e"))):
        figures.band(ax_curve, [(c[:, k].tolist(), False) for c in curves], label, color, x=passes)
    ax_curve.set_yscale("log")
    ax_curve.set(title="Test-mode output vs training passes", xlabel="training passes (train mode)",
                 ylabel="absolute error (log scale)")
    ax_curve.legend(loc="upper right")
    return figures.save(fig, out_dir / "bn-forward")
