"""bn-backward-speed: the staged batch-norm backward (through the computation
graph) against the simplified closed form (BatchNormalization.ipynb,
"Batch normalization: alternative backward").

No training runs: computed in analyze. For each seed, random float64 inputs
at the course's N=100, D=500 (x = 5 randn + 12, random gamma, beta, dout):
the relative errors between the two backward passes, and the time per call
of each, as the median over ``rounds`` rounds of calls (as many calls per round
as fill ``round_seconds``), the two interleaved round by round so machine load
affects both alike. The same
timing at a few other batch sizes shows how the speedup depends on N.
Figure: the per-call times of every round at N=100, D=500; the speedup vs N.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lab import figures
from ..lab.runs import RunSpec, Runs, Section
from .summarize import check_common, config_dict, positive

NAME = "bn-backward-speed"
TITLE = "Batch norm backward: staged vs simplified"
QUESTION = ("Does the simplified closed-form batch-norm backward give the same gradients as the staged "
            "one, and how much faster is it (course: N=100, D=500)?")


@dataclass(frozen=True)
class Config:
    N: int = 100                                     # course: 100
    D: int = 500                                     # course: 500
    round_seconds: float = 0.01                      # length of a timed round (calls per round calibrated)
    rounds: int = 15                                 # timed rounds per implementation (median reported)
    other_batch_sizes: tuple[int, ...] = (10, 1000)  # the speedup at other N, same D (empty: skip)
    dataset: str = "fashion-mnist"                   # unused: random inputs
    # random inputs; timing is 2 x rounds x round_seconds per seed and size, ~2 s in all
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        positive(self, "N", "D", "rounds", integer=True)
        positive(self, "round_seconds")
        if self.N < 2:
            raise ValueError(f"N must be >= 2 for batch statistics, got {self.N}")
        if not isinstance(self.other_batch_sizes, tuple) or any(
                isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 for n in self.other_batch_sizes):
            raise ValueError(f"other_batch_sizes must be a tuple of integers >= 2, got {self.other_batch_sizes!r}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, round_seconds=0.002, rounds=5, other_batch_sizes=(10,), seeds=cfg.seeds[:1])


def runs(cfg: Config) -> list[RunSpec]:
    return []


def _inputs(N, D, seed):
    from ..layers import batchnorm_forward
    rng = np.random.default_rng(seed)
    x = 5 * rng.standard_normal((N, D)) + 12
    gamma, beta, dout = rng.standard_normal(D), rng.standard_normal(D), rng.standard_normal((N, D))
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    return dout, cache


def _time(fns, args, round_seconds, rounds):
    """Per-call seconds of each function in each round: rounds interleaved, (len(fns), rounds);
    the calls per round fill about ``round_seconds`` for the slower function."""
    slowest = 0.0
    for f in fns:                                      # warm up (first-call allocations) and calibrate
        f(*args)
        t0 = time.perf_counter()
        f(*args)
        slowest = max(slowest, time.perf_counter() - t0)
    number = int(min(max(round_seconds / max(slowest, 1e-9), 1), 10_000))
    out = np.empty((len(fns), rounds))
    for r in range(rounds):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(number):
                f(*args)
            out[i, r] = (time.perf_counter() - t0) / number
    return out


def measure(cfg: Config) -> dict:
    from ..gradient_check import rel_error
    from ..layers import batchnorm_backward, batchnorm_backward_alt
    fns = (batchnorm_backward, batchnorm_backward_alt)
    errors, times = [], []
    for seed in cfg.seeds:
        dout, cache = _inputs(cfg.N, cfg.D, seed)
        staged, alt = batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)
        errors.append({k: float(rel_error(a, b)) for k, a, b in zip(("dx", "dgamma", "dbeta"), staged, alt)})
        times.append(_time(fns, (dout, cache), cfg.round_seconds, cfg.rounds))
    times = np.concatenate(times, axis=1)              # (2, seeds * rounds)
    scaling = {}
    for n in sorted({*cfg.other_batch_sizes, cfg.N}):
        t = times if n == cfg.N else _time(fns, _inputs(n, cfg.D, cfg.seeds[0]), cfg.round_seconds, cfg.rounds)
        scaling[n] = {"staged": float(np.median(t[0])), "simplified": float(np.median(t[1])),
                      "speedup": float(np.median(t[0]) / np.median(t[1]))}
    return {"errors": errors, "times": times, "scaling": scaling}


def analyze(cfg: Config, done: Runs, out_dir: Path, measured: dict | None = None) -> Section:
    """``measured`` (the output of :func:`measure`) skips the measurement (tests)."""
    m = measured if measured is not None else measure(cfg)
    times = np.asarray(m["times"])
    med = np.median(times, axis=1)
    q1, q3 = np.percentile(times, [25, 75], axis=1)
    speedup = med[0] / med[1]
    worst = {k: max(e[k] for e in m["errors"]) for k in ("dx", "dgamma", "dbeta")}
    paths = _figure(cfg, times, m["scaling"], Path(out_dir))

    agree = all(v < 1e-8 for v in worst.values())
    answer = (f"The two backward passes {'agree' if agree else 'do not agree'}: relative errors dx "
              f"{worst['dx']:.1e}, dgamma {worst['dgamma']:.1e}, dbeta {worst['dbeta']:.1e} (worst of "
              f"{len(cfg.seeds)} random inputs; the course expects below 1e-8 and equal gradients). "
              f"At N={cfg.N}, D={cfg.D} a staged call takes {_us(med[0])} and a simplified one {_us(med[1])} "
              f"(medians over {times.shape[1]} timed rounds; interquartile ranges "
              f"{_us(q1[0])}-{_us(q3[0])} and {_us(q1[1])}-{_us(q3[1])}): ")
    if speedup >= 1.05:
        answer += f"the simplified backward is {speedup:.2f} times as fast."
    elif speedup <= 1 / 1.05:
        answer += f"the simplified backward is slower here, {1 / speedup:.2f} times the staged time."
    else:
        answer += f"about the same speed (ratio {speedup:.2f})."
    overlap = q1[0] <= q3[1] and q1[1] <= q3[0]
    if overlap:
        answer += " The interquartile ranges overlap, so the difference is within timing noise."
    others = {n: v for n, v in m["scaling"].items() if n != cfg.N}
    if others:
        answer += " At D={} the speedup is {}.".format(
            cfg.D, ", ".join(f"{v['speedup']:.2f} at N={n}" for n, v in sorted(m["scaling"].items())))
    table = [{"N": n, "D": cfg.D, "staged (us/call)": v["staged"] * 1e6, "simplified (us/call)": v["simplified"] * 1e6,
              "speedup": v["speedup"]} for n, v in sorted(m["scaling"].items())]
    table += [{"N": cfg.N, "D": cfg.D, "seed": s, **{f"rel. error {k}": v for k, v in e.items()}}
              for s, e in zip(cfg.seeds, m["errors"])]
    metrics = {"rel_errors_max": worst, "median_seconds": {"staged": float(med[0]), "simplified": float(med[1])},
               "iqr_seconds": {"staged": [float(q1[0]), float(q3[0])], "simplified": [float(q1[1]), float(q3[1])]},
               "speedup": float(speedup), "scaling": {str(n): v for n, v in m["scaling"].items()}}
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, [paths[0]])


def _us(seconds) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds * 1e6 >= 10 else f"{seconds * 1e6:.1f} µs"


def _figure(cfg, times, scaling, out_dir):
    fig, (ax_box, ax_scale) = figures.new_figure(2, 1, width=4.8, height=3.6,
                                                 title="Batch norm backward: staged vs simplified")
    ax_box.boxplot([times[0] * 1e6, times[1] * 1e6], tick_labels=["staged", "simplified"], widths=0.5,
                   medianprops={"color": "black"})
    ax_box.set(title=f"Time per call, N={cfg.N}, D={cfg.D}", ylabel="µs per call")
    ax_box.set_ylim(bottom=0)
    ns = sorted(scaling)
    ax_scale.plot(ns, [scaling[n]["speedup"] for n in ns], "o-", color="#1f77b4", label="staged / simplified time")
    ax_scale.axhline(1.0, color="0.5", lw=0.8, ls=":", label="equal speed")
    ax_scale.set_xscale("log")
    ax_scale.set(title=f"Speedup vs batch size (D={cfg.D})", xlabel="batch size N", ylabel="speedup (×)")
    ax_scale.set_ylim(bottom=0)
    ax_scale.legend(loc="lower right")
    return figures.save(fig, out_dir / "bn-backward-speed")
