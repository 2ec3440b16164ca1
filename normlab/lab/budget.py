"""What a sweep will cost, estimated before anything runs, and the bounds past
which a command refuses to start it (``normlab run/reproduce --yes`` overrides).

A typo such as ``--hidden-dims 100000000`` or ``--num-epochs 1e30`` passes
every per-field check and would then fill the memory or run for ever; an
estimate of the whole sweep catches both in milliseconds.

Memory of one run (bytes; ``b`` = the dtype's size, float32 by default)::

    process  = 120 MB (NumPy engine) or 450 MB (torch engine)
    data     = images in the worker's cache: uint8 decode of the whole dataset
               + b * (num_train + num_val + num_test) * pixels
    params   = P parameters * b * 6   (weights, gradients, two Adam moments,
                                       the best snapshot, one update temporary)
    activity = batch * (sum of layer widths) * b * 10   (fc: forward caches and
               their gradients), conv: 2 im2col buffers + 8 feature maps;
               accuracy checks run in chunks of up to 500 images

A worker keeps up to 8 prepared datasets (``lab.execute.load_data``), so
its peak is the process, the largest run's parameters and activations, and
the data of up to 8 distinct data sets its runs use.

Time of one run: ``flops / RATE + iterations * layers * STEP_OVERHEAD +
RUN_OVERHEAD``, with
``flops = 6 * MACs`` per trained image (forward and backward), ``2 * MACs``
per image of the accuracy checks, ``MACs`` the multiply-adds of one forward
pass. RATE and STEP_OVERHEAD were measured on one core of the project's
machine (benchmarks/budget_calibration.py prints estimate vs measured); the
estimate is meant to be right within a factor of about 3, which is all a
guard against mistakes needs. A sweep's wall time is
``max(total / workers, longest run)``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

__all__ = ["RunCost", "Estimate", "estimate", "run_cost", "check", "describe", "available_memory",
           "MAX_SECONDS", "MEMORY_FRACTION"]

RATE = 40e9                   # float32 matrix-product throughput of one core, flop/s
STEP_OVERHEAD = 150e-6        # seconds per layer per iteration outside the matrix products
RUN_OVERHEAD = 0.4            # seconds per run: loading the data, building the model
PROCESS_BYTES = {"numpy": 120e6, "torch": 450e6}
MAX_SECONDS = 12 * 3600       # longer sweeps need --yes
MEMORY_FRACTION = 0.8         # of the memory available now, for all workers together
_DATA_CACHE = 8               # datasets one worker keeps (lab.execute.load_data)
# Images (and pixels per image) a loader gives by default: the registry's datasets.
_DEFAULT_SIZES = {"fashion-mnist": (59000, 1000, 10000, (1, 28, 28)), "mnist": (59000, 1000, 10000, (1, 28, 28)),
                  "cifar-10": (49000, 1000, 1000, (3, 32, 32))}
_ALL_IMAGES = {"fashion-mnist": 70000, "mnist": 70000, "cifar-10": 60000}


@dataclass(frozen=True)
class RunCost:
    name: str                 # experiment/name
    bytes: float              # peak memory of the run alone (process included)
    data_key: tuple           # what load_data caches for it
    data_bytes: float
    seconds: float
    what: str                 # the largest term, for messages


@dataclass(frozen=True)
class Estimate:
    runs: tuple               # RunCost of each run
    workers: int
    worker_bytes: float       # peak of one worker process
    seconds: float            # wall time of the sweep

    @property
    def largest(self) -> RunCost | None:
        return max(self.runs, key=lambda r: r.bytes, default=None)

    @property
    def longest(self) -> RunCost | None:
        return max(self.runs, key=lambda r: r.seconds, default=None)


def _size(x) -> int:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else 0


def run_cost(spec) -> RunCost:
    """The estimated memory and time of one :class:`~normlab.lab.runs.RunSpec`."""
    mk, sk = spec.model_kwargs, spec.solver_kwargs
    n_train_d, n_val_d, n_test_d, chw = _DEFAULT_SIZES.get(spec.dataset, _DEFAULT_SIZES["fashion-mnist"])
    n_train = n_train_d if spec.num_train is None else _size(spec.num_train)
    n_val = n_val_d if spec.num_val is None else _size(spec.num_val)
    n_test = n_test_d if spec.num_test is None else _size(spec.num_test)
    itemsize = 8 if "64" in str(mk.get("dtype", "float32")) else 4
    pixels = math.prod(chw)
    batch = max(_size(sk.get("batch_size", 100)), 1)
    epochs = _size(sk.get("num_epochs", 10))
    n_samples = sk.get("num_train_samples", 1000)
    n_check = (min(n_train, _size(n_samples)) if n_samples is not None else n_train) + \
        (min(n_val, _size(sk["num_val_samples"])) if sk.get("num_val_samples") is not None else n_val)
    classes = 10
    if spec.model in ("fc", "resmlp"):
        hidden = mk.get("hidden_dims", [100]) if spec.model == "fc" else \
            [mk.get("width", 64)] * (1 + 2 * _size(mk.get("depth", 32)))    # stem, two layers per block
        dims = [pixels, *[_size(h) for h in hidden], classes]
        macs = sum(a * b for a, b in zip(dims, dims[1:]))
        params = macs + sum(dims[1:]) * 3
        width = sum(dims)
        activity = max(batch, min(500, n_check or 1)) * width * itemsize * 10
        layers = len(dims) - 1
    else:
        c, h, w = chw
        f, k, hid = _size(mk.get("num_filters", 32)), _size(mk.get("filter_size", 7)), _size(mk.get("hidden_dim", 100))
        conv = f * c * k * k * h * w
        fc = f * (h // 2) * (w // 2) * hid + hid * classes
        macs, params = conv + fc, f * c * k * k + fc + 4 * (f + hid)
        per_image = 2 * c * k * k * h * w + 8 * f * h * w
        activity = max(batch, min(500, n_check or 1)) * per_image * itemsize
        layers = 4
    data_bytes = _ALL_IMAGES.get(spec.dataset, 70000) * pixels + (n_train + n_val + n_test) * pixels * itemsize
    parts = {"parameters": params * itemsize * 6, "activations": activity, "data": data_bytes}
    process = PROCESS_BYTES.get(spec.engine, PROCESS_BYTES["numpy"])
    iterations = epochs * max(n_train // batch, 1)
    checks = epochs + 1
    if spec.task is not None:        # step-wise training (normlab.lab.tasks)
        t = spec.task
        batch = max(_size(t.get("batch_size", 100)), 1)
        probes = t.get("probes", {})
        n_probes = -(-_size(t.get("steps", 1)) // max(_size(t.get("probe_every") or t.get("eval_every", 1)), 1))
        per_probe = (len(probes.get("ics", {}).get("layers", [])) + 1 if "ics" in probes else 0) + \
            (len(probes.get("landscape", {}).get("multipliers", [0] * 5)) + 1 if "landscape" in probes else 0)
        iterations = _size(t.get("steps", 1)) + n_probes * per_probe
        checks = _size(t.get("steps", 1)) // max(_size(t.get("eval_every", 1)), 1) + 2
        n_check = min(n_test, _size(t["eval_samples"])) if t.get("eval_samples") else n_test
    flops = 6.0 * macs * iterations * batch + 2.0 * macs * n_check * checks
    seconds = flops / RATE + iterations * layers * STEP_OVERHEAD + RUN_OVERHEAD
    what = max(parts, key=parts.get)
    return RunCost(f"{spec.experiment}/{spec.name}", process + sum(parts.values()),
                   (spec.dataset, n_train, n_val, n_test, spec.model), data_bytes, seconds,
                   f"{_bytes(parts[what])} of {what}")


def estimate(specs, jobs: int = 1) -> Estimate:
    """The cost of running ``specs`` on ``jobs`` local worker processes."""
    runs = tuple(run_cost(s) for s in specs)
    if not runs:
        return Estimate((), 0, 0.0, 0.0)
    workers = max(1, min(int(jobs), len(runs)))
    data = sorted({r.data_key: r.data_bytes for r in runs}.values(), reverse=True)[:_DATA_CACHE]
    own = max(r.bytes - r.data_bytes for r in runs)
    total = sum(r.seconds for r in runs)
    return Estimate(runs, workers, own + sum(data), max(total / workers, max(r.seconds for r in runs)))


def available_memory() -> float | None:
    """Bytes of memory available to new processes now (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check(est: Estimate, local: bool = True, memory: float | None = None, max_seconds: float | None = None) -> None:
    """ValueError (one line: the estimate, the bound, the fix) when the sweep is
    estimated to need more memory than ``MEMORY_FRACTION`` of what is available
    (``local`` workers only) or more than ``max_seconds`` (default :data:`MAX_SECONDS`)
    of wall time."""
    if not est.runs:
        return
    max_seconds = MAX_SECONDS if max_seconds is None else max_seconds
    if local:
        memory = available_memory() if memory is None else memory
        need = est.worker_bytes * est.workers
        if memory is not None and need > MEMORY_FRACTION * memory:
            big = est.largest
            raise ValueError(
                f"this sweep is estimated to need {_bytes(need)} of memory ({est.workers} worker process"
                f"{'es' if est.workers != 1 else ''} of up to {_bytes(est.worker_bytes)}; the largest run, "
                f"{big.name}, holds {big.what}), more than {MEMORY_FRACTION:.0%} of the {_bytes(memory)} "
                f"available; use smaller sizes or fewer --jobs, or pass --yes to start it anyway")
    seconds = est.seconds if local else est.longest.seconds
    if seconds > max_seconds:
        long = est.longest
        raise ValueError(
            f"this sweep is estimated to take {_duration(seconds)}"
            f"{f' on {est.workers} worker processes' if local and est.workers > 1 else ''} (the longest run, "
            f"{long.name}, {_duration(long.seconds)}), over the {_duration(max_seconds)} bound; use fewer "
            f"epochs or smaller sizes, or pass --yes to start it anyway")


def describe(est: Estimate) -> str:
    """The estimate in a few words, for the line a sweep starts with."""
    if not est.runs:
        return "nothing to estimate"
    return (f"estimated {_duration(est.seconds)} of training, up to {_bytes(est.worker_bytes)} "
            f"per worker process")


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n < 1e3 * size or unit != "TB" else f"{n / size:.2e} {unit}"
    return f"{n / 1e3:.3g} kB"


def _duration(s: float) -> str:
    if not math.isfinite(s) or s > 3.15e9:
        return f"{s / 3.15e7:.2e} years" if math.isfinite(s) else "for ever"
    for unit, size in (("years", 3.15e7), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size * (2 if unit in ("years", "days") else 1):
            return f"{s / size:.3g} {unit}"
    return f"{s:.0f} s"
