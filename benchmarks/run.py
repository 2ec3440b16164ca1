"""normlab speed benchmarks: one command, every ratio measured in the same run.

    .venv/bin/python benchmarks/run.py [--threads N] [--rows bn,bn-alt,conv,net,engines]
                                       [--quick] [--no-torch] [--json PATH]

Rows (see README.md): 1 batch norm train forward + ``batchnorm_backward_alt``
on (4096, 1024) and (64*28*28, 32) float32 against (a) a memory-traffic floor
(target <= 2x) and (b) PyTorch ``F.batch_norm`` + autograd (target <= 1x);
2 staged vs closed-form backward at (100, 500) float64 (speedup > 1); 3 fast
conv forward + backward against the naive loops (speedup > 1) and
``F.conv2d`` (target <= 3x); 4 one Adam training step of the six-layer
batch-norm net, batch 50, against the same net, weights and data in PyTorch
(target < 1x); 5 the seed's six-layer batch-norm training (bn-vs-baseline
settings: 1000 images of 784, batch 50, Adam 1e-3; synthetic data, 2 epochs)
by the same Solver on the NumPy engine against the torch engine
(``normlab.engines.pytorch``: torch.nn forward and autograd backward, same
update rule and batches), target <= 1x. Ratios are normlab / reference, except speedups
(reference / normlab), as the target column says.

Byte model of the floor (rows 1a, 1c). Batch norm must at least stream
5 arrays of N*D*itemsize bytes: the forward reads x and writes out, the
backward reads dout and x (or x_hat) and writes dx. Per-feature vectors
(gamma, beta, statistics) are O(D) and ignored. The floor time is
5 * N * D * itemsize / B, where B is the copy bandwidth measured in the same
run: the best of several ``np.copyto(dst, src)`` over two 128 MiB buffers
(256 MiB in total, far beyond the caches), counting 2 * nbytes per copy (one
read, one write). ``np.copyto`` is single-threaded, like NumPy's ufuncs and
reductions, so the floor is a single-core floor; only BLAS calls use the
thread pool.

Methodology. Thread pools are pinned before NumPy (or torch) is imported:
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS are set to
``--threads`` (default: the cores this process may run on) and
``torch.set_num_threads`` gets the same number. Each comparison first warms
every contender up, then times them *interleaved* (normlab, reference,
normlab, ...) with ``time.perf_counter`` and reports the best (minimum) of the
repeats: on a shared machine noise only ever adds time, so the minimum is the
most repeatable estimate; the median is kept in the JSON. The naive
convolution runs once (it takes seconds). Missing a target is a measurement,
not an error: the exit status is 0 unless a row raised.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
ROW_GROUPS = ("bn", "bn-alt", "conv", "net", "engines")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _row_list(text: str) -> list[str]:
    """'1,conv' -> ['bn', 'conv']; rows by name or by number."""
    rows = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name = ROW_GROUPS[int(item) - 1] if item.isdigit() and 1 <= int(item) <= len(ROW_GROUPS) else item
        if name not in ROW_GROUPS:
            raise argparse.ArgumentTypeError(f"unknown row {item!r}; expected some of "
                                             f"{', '.join(ROW_GROUPS)} (or 1-{len(ROW_GROUPS)})")
        rows.append(name)
    if not rows:
        raise argparse.ArgumentTypeError("--rows is empty")
    return rows


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="normlab vs memory floor, naive code and PyTorch, "
                                            "measured in one run.")
    p.add_argument("--threads", type=_positive_int, default=available_cores(),
                   help="BLAS/OpenMP/torch threads (default: available cores, %(default)s)")
    p.add_argument("--rows", type=_row_list, default=list(ROW_GROUPS),
                   help=f"comma-separated rows to run: {','.join(ROW_GROUPS)} or 1-{len(ROW_GROUPS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    return p


def pin_threads(n: int) -> None:
    for var in THREAD_VARS:
        os.environ[var] = str(n)


if __name__ == "__main__":
    # BLAS and OpenMP read these once, when the library loads: pin them before the imports below.
    pin_threads(build_parser().parse_known_args()[0].threads)

import numpy as np  # noqa: E402

from normlab.layers import (batchnorm_backward, batchnorm_backward_alt, batchnorm_forward,  # noqa: E402
                            conv_backward_fast, conv_backward_naive, conv_forward_fast, conv_forward_naive)
from normlab.models import FullyConnectedNet  # noqa: E402

BN_ARRAYS = 5  # the byte model: fwd reads x, writes out; bwd reads dout, x (or x_hat), writes dx


# --------------------------------------------------------------------------- sizes

@dataclass(frozen=True)
class Sizes:
    bn_shapes: tuple[tuple[int, int], ...]
    bn_alt_shape: tuple[int, int]
    copy_mib: int                      # per buffer; two buffers
    conv_x: tuple[int, int, int, int]  # (N, C, H, W)
    conv_w: tuple[int, int, int, int]  # (F, C, HH, WW)
    net_batch: int
    warmup: int
    repeats: dict = field(default_factory=dict)  # row group -> timed repeats


FULL = Sizes(bn_shapes=((4096, 1024), (64 * 28 * 28, 32)), bn_alt_shape=(100, 500), copy_mib=128,
             conv_x=(50, 3, 32, 32), conv_w=(25, 3, 3, 3), net_batch=50, warmup=3,
             repeats={"copy": 10, "bn": 15, "bn-alt": 300, "conv": 20, "naive": 1, "net": 200, "engines": 3})
QUICK = Sizes(bn_shapes=((256, 64), (2 * 7 * 7, 8)), bn_alt_shape=(100, 500), copy_mib=4,
              conv_x=(2, 3, 8, 8), conv_w=(4, 3, 3, 3), net_batch=50, warmup=1,
              repeats={"copy": 2, "bn": 2, "bn-alt": 2, "conv": 2, "naive": 1, "net": 2, "engines": 1})


# --------------------------------------------------------------------------- timing

@dataclass
class Timing:
    best: float    # seconds, min over repeats
    median: float
    n: int


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, Timing]:
    """Warm every function up, then time them in turns so drift hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: Timing(min(s), statistics.median(s), len(s)) for name, s in samples.items()}


def copy_bandwidth(mib: int, repeats: int) -> float:
    """Bytes per second of np.copyto over two `mib` MiB buffers (read + write counted)."""
    src = np.ones(mib * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)  # np.ones above and the warm-up copy fault every page in
    t = time_interleaved({"copy": lambda: np.copyto(dst, src)}, repeats, warmup=1)["copy"]
    return 2 * src.nbytes / t.best


# --------------------------------------------------------------------------- results

@dataclass
class Row:
    id: str
    name: str
    ref_name: str
    target: str = ""                 # "<= 2", "< 1", "> 1"
    inverse: bool = False            # ratio = ref / normlab (a speedup) instead of normlab / ref
    normlab_s: float | None = None   # best of repeats
    ref_s: float | None = None
    normlab_median_s: float | None = None
    ref_median_s: float | None = None
    skipped: str = ""
    error: str = ""

    @property
    def ratio(self) -> float | None:
        if self.normlab_s is None or self.ref_s is None:
            return None
        return self.ref_s / self.normlab_s if self.inverse else self.normlab_s / self.ref_s

    @property
    def met(self) -> bool | None:
        if self.ratio is None:
            return None
        op, bound = self.target.split()
        return {"<=": self.ratio <= float(bound), "<": self.ratio < float(bound),
                ">": self.ratio > float(bound)}[op]

    def record(self, ours: Timing, ref: Timing | None) -> "Row":
        self.normlab_s, self.normlab_median_s = ours.best, ours.median
        if ref is not None:
            self.ref_s, self.ref_median_s = ref.best, ref.median
        return self

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "met": self.met,
                "ratio_definition": "reference / normlab" if self.inverse else "normlab / reference"}


def skipped_row(row: Row, ours: Timing, reason: str) -> Row:
    """A row whose reference could not run; normlab's own time is still shown."""
    row.skipped = reason
    return row.record(ours, None)


# --------------------------------------------------------------------------- torch

def load_torch(enabled: bool, threads: int):
    """(torch, None) with its threads pinned, or (None, reason)."""
    if not enabled:
        return None, "skipped (--no-torch)"
    try:
        import torch
    except ImportError:
        return None, "skipped (torch not installed)"
    torch.set_num_threads(threads)
    return torch, None


# --------------------------------------------------------------------------- row 1: batch norm

def normlab_bn_step(x, gamma, beta, dout):
    def step():
        _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
        return batchnorm_backward_alt(dout, cache)
    return step


def torch_bn_step(torch, x, gamma, beta, dout):
    F = torch.nn.functional
    leaves = [torch.from_numpy(a).requires_grad_() for a in (x, gamma, beta)]
    dout_t = torch.from_numpy(dout)

    def step():
        for t in leaves:
            t.grad = None  # fresh gradients each step, as normlab returns fresh arrays
        F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], training=True).backward(dout_t)
    return step


def bn_rows(sizes: Sizes, torch, torch_skip: str | None, bandwidth: float) -> list[Row]:
    rng = np.random.default_rng(0)
    rows = []
    for k, shape in enumerate(sizes.bn_shapes):
        x = rng.standard_normal(shape, dtype=np.float32)
        dout = rng.standard_normal(shape, dtype=np.float32)
        gamma = rng.standard_normal(shape[1], dtype=np.float32)
        beta = rng.standard_normal(shape[1], dtype=np.float32)
        fns = {"normlab": normlab_bn_step(x, gamma, beta, dout)}
        if torch is not None:
            fns["torch"] = torch_bn_step(torch, x, gamma, beta, dout)
        t = time_interleaved(fns, sizes.repeats["bn"], sizes.warmup)
        label = f"bn fwd+bwd ({shape[0]}, {shape[1]}) f32"
        floor_s = BN_ARRAYS * x.nbytes / bandwidth
        rows.append(Row(f"1{'ac'[k]}", f"{label} vs floor", "memory floor", "<= 2")
                    .record(t["normlab"], Timing(floor_s, floor_s, 1)))
        torch_row = Row(f"1{'bd'[k]}", f"{label} vs torch", "torch", "<= 1")
        rows.append(torch_row.record(t["normlab"], t["torch"]) if torch is not None
                    else skipped_row(torch_row, t["normlab"], torch_skip))
    return rows


# --------------------------------------------------------------------------- row 2: staged vs closed form

def bn_alt_rows(sizes: Sizes, torch, torch_skip, bandwidth) -> list[Row]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(sizes.bn_alt_shape) * 5 + 12  # float64, as the course notebook
    D = x.shape[1]
    dout = rng.standard_normal(x.shape)
    _, cache = batchnorm_forward(x, rng.standard_normal(D), rng.standard_normal(D), {"mode": "train"})
    t = time_interleaved({"alt": lambda: batchnorm_backward_alt(dout, cache),
                          "staged": lambda: batchnorm_backward(dout, cache)},
                         sizes.repeats["bn-alt"], sizes.warmup)
    name = f"bn backward alt vs staged ({x.shape[0]}, {D}) f64"
    return [Row("2", name, "staged", "> 1", inverse=True).record(t["alt"], t["staged"])]


# --------------------------------------------------------------------------- row 3: convolution

def conv_step(forward, backward, x, w, b, dout, conv_param):
    def step():
        _, cache = forward(x, w, b, conv_param)
        return backward(dout, cache)
    return step


def torch_conv_step(torch, x, w, b, dout, conv_param):
    F = torch.nn.functional
    leaves = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    dout_t = torch.from_numpy(dout)

    def step():
        for t in leaves:
            t.grad = None
        F.conv2d(*leaves, stride=conv_param["stride"], padding=conv_param["pad"]).backward(dout_t)
    return step


def conv_rows(sizes: Sizes, torch, torch_skip, bandwidth) -> list[Row]:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(sizes.conv_x, dtype=np.float32)
    w = rng.standard_normal(sizes.conv_w, dtype=np.float32)
    b = rng.standard_normal(sizes.conv_w[0], dtype=np.float32)
    conv_param = {"stride": 1, "pad": 1}
    N, _, H, W = x.shape
    dout = rng.standard_normal((N, w.shape[0], H, W), dtype=np.float32)  # 3x3, stride 1, pad 1 keeps H, W
    args = (x, w, b, dout, conv_param)
    fns = {"fast": conv_step(conv_forward_fast, conv_backward_fast, *args)}
    if torch is not None:
        fns["torch"] = torch_conv_step(torch, *args)
    t = time_interleaved(fns, sizes.repeats["conv"], sizes.warmup)
    naive = time_interleaved({"naive": conv_step(conv_forward_naive, conv_backward_naive, *args)},
                             sizes.repeats["naive"], warmup=0)["naive"]
    label = f"conv fwd+bwd x{sizes.conv_x} w{sizes.conv_w} f32"
    torch_row = Row("3b", f"{label} vs torch", "torch", "<= 3")
    return [Row("3a", f"{label} vs naive", "naive", "> 1", inverse=True).record(t["fast"], naive),
            torch_row.record(t["fast"], t["torch"]) if torch is not None
            else skipped_row(torch_row, t["fast"], torch_skip)]


# --------------------------------------------------------------------------- row 4: training step

NET_HIDDEN, NET_INPUT, NET_CLASSES = [100] * 5, 784, 10


def normlab_train_step(model, X, y):
    from normlab.optim import adam  # imported here so the other rows run even without it
    configs = {k: {"learning_rate": 1e-3} for k in model.params}

    def step():
        loss, grads = model.loss(X, y)
        for k in configs:
            model.params[k], configs[k] = adam(model.params[k], grads[k], configs[k])
        return loss
    return step


def torch_net_like(torch, model):
    """nn.Sequential with the same architecture and the same initial weights as `model`."""
    nn = torch.nn
    layers, dims = [], [NET_INPUT] + NET_HIDDEN
    for i in range(1, len(dims)):
        layers += [nn.Linear(dims[i - 1], dims[i]), nn.BatchNorm1d(dims[i]), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], NET_CLASSES))
    net = nn.Sequential(*layers)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    norms = [m for m in net if isinstance(m, nn.BatchNorm1d)]
    p = model.params
    with torch.no_grad():
        for i, lin in enumerate(linears, 1):
            lin.weight.copy_(torch.from_numpy(p[f"W{i}"].T))  # normlab W is (in, out)
            lin.bias.copy_(torch.from_numpy(p[f"b{i}"]))
        for i, bn in enumerate(norms, 1):
            bn.weight.copy_(torch.from_numpy(p[f"gamma{i}"]))
            bn.bias.copy_(torch.from_numpy(p[f"beta{i}"]))
    return net


def torch_train_step(torch, model, X, y):
    net = torch_net_like(torch, model).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))

    def step():
        opt.zero_grad()
        loss = loss_fn(net(X_t), y_t)
        loss.backward()
        opt.step()
    return step


def net_rows(sizes: Sizes, torch, torch_skip, bandwidth) -> list[Row]:
    rng = np.random.default_rng(3)
    model = FullyConnectedNet(NET_HIDDEN, input_dim=NET_INPUT, num_classes=NET_CLASSES,
                              normalization="batchnorm", weight_scale=2e-2, dtype=np.float32, rng_seed=0)
    X = rng.standard_normal((sizes.net_batch, NET_INPUT), dtype=np.float32)
    y = rng.integers(NET_CLASSES, size=sizes.net_batch)
    row = Row("4", f"train step 6-layer bn net, batch {sizes.net_batch}, Adam", "torch", "< 1")
    fns = {"normlab": normlab_train_step(model, X, y)}
    if torch is not None:
        fns["torch"] = torch_train_step(torch, model, X, y)
    t = time_interleaved(fns, sizes.repeats["net"], sizes.warmup)
    return [row.record(t["normlab"], t["torch"]) if torch is not None
            else skipped_row(row, t["normlab"], torch_skip)]


# --------------------------------------------------------------------------- row 5: engines

def engine_training(engine: str, data: dict, epochs: int):
    """One bn-vs-baseline batch-norm training run (fresh model from seed 0) on ``engine``."""
    from normlab.solver import Solver

    def train():
        model = FullyConnectedNet(NET_HIDDEN, input_dim=NET_INPUT, num_classes=NET_CLASSES,
                                  normalization="batchnorm", weight_scale=2e-2, dtype=np.float32, rng_seed=0)
        if engine == "torch":
            from normlab.engines.pytorch import TorchModel
            model = TorchModel(model)
        solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3}, batch_size=50,
                        num_epochs=epochs, verbose=False, seed=0)
        solver.train()
        return solver.loss_history
    return train


def engine_rows(sizes: Sizes, torch, torch_skip, bandwidth) -> list[Row]:
    quick = sizes.repeats["engines"] == 1
    n, epochs = (200, 1) if quick else (1000, 2)
    rng = np.random.default_rng(5)
    data = {"X_train": rng.standard_normal((n, NET_INPUT), dtype=np.float32),
            "y_train": rng.integers(NET_CLASSES, size=n),
            "X_val": rng.standard_normal((200, NET_INPUT), dtype=np.float32),
            "y_val": rng.integers(NET_CLASSES, size=200)}
    row = Row("5", f"6-layer bn net training, {n} images x {epochs} epochs, numpy engine", "torch engine", "<= 1")
    fns = {"normlab": engine_training("numpy", data, epochs)}
    if torch is not None:
        fns["torch"] = engine_training("torch", data, epochs)
    t = time_interleaved(fns, sizes.repeats["engines"], warmup=1)
    return [row.record(t["normlab"], t["torch"]) if torch is not None
            else skipped_row(row, t["normlab"], torch_skip)]


ROW_FUNCTIONS = {"bn": bn_rows, "bn-alt": bn_alt_rows, "conv": conv_rows, "net": net_rows, "engines": engine_rows}


# --------------------------------------------------------------------------- output

def fmt_time(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def table_cells(row: Row) -> list[str]:
    ours = fmt_time(row.normlab_s) if row.normlab_s is not None else "-"
    if row.error:
        return [row.id, row.name, ours, f"error: {row.error}", "-", "-", "-"]
    if row.skipped:
        return [row.id, row.name, ours, row.skipped, "-", "-", "-"]
    ratio_name = f"{row.ref_name}/normlab" if row.inverse else f"normlab/{row.ref_name}"
    return [row.id, row.name, ours, f"{fmt_time(row.ref_s)} ({row.ref_name})", f"{row.ratio:.2f}x",
            f"{ratio_name} {row.target}", "yes" if row.met else "NO"]


def print_table(rows: list[Row]) -> None:
    header = ["#", "row", "normlab", "reference", "ratio", "target", "met"]
    cells = [header] + [table_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    right = {2, 3, 4}
    for k, line in enumerate(cells):
        print("  ".join(c.rjust(w) if i in right else c.ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def openblas_threads() -> int | None:
    """Threads NumPy's OpenBLAS actually uses, read from the loaded library (Linux only)."""
    import ctypes
    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(libs):
        lib = ctypes.CDLL(path)
        for sym in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                    "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, sym):
                return int(getattr(lib, sym)())
    return None


def environment(args, torch, sizes: Sizes, bandwidth: float | None) -> dict:
    return {
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "threads": args.threads, "env": {v: os.environ.get(v) for v in THREAD_VARS},
        "openblas_threads": openblas_threads(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "cores_available": available_cores(), "load_average_1min": os.getloadavg()[0], "cpu": platform.processor() or platform.machine(),
        "quick": args.quick, "rows": args.rows, "warmup": sizes.warmup, "repeats": sizes.repeats,
        "copy_bandwidth_gb_s": bandwidth / 1e9 if bandwidth else None,
        "timer": "time.perf_counter, interleaved, best of repeats",
    }


def print_header(env: dict) -> None:
    print("normlab benchmarks" + ("  [--quick: tiny sizes, numbers meaningless]" if env["quick"] else ""))
    print(f"python {env['python']}  numpy {env['numpy']}  torch {env['torch'] or 'not used'}")
    print(f"threads {env['threads']}: " + " ".join(f"{k}={v}" for k, v in env["env"].items())
          + f"; OpenBLAS reports {env['openblas_threads']}; torch.get_num_threads()={env['torch_threads']}"
          + f"; {env['cores_available']} cores available, load average {env['load_average_1min']:.2f}"
          + (" (busy machine: timings noisy)" if env["load_average_1min"] > 0.5 * env["cores_available"] else ""))
    print(f"timing: warm-up {env['warmup']}, then best of interleaved repeats {env['repeats']}")
    print()


def print_notes(env: dict, sizes: Sizes, rows: list[Row]) -> None:
    print()
    if env["copy_bandwidth_gb_s"]:
        print(f"memory floor (1a, 1c): {BN_ARRAYS} arrays x N*D*4 bytes (fwd: read x, write out; "
              f"bwd: read dout, read x or x_hat, write dx; O(D) vectors ignored) / copy bandwidth "
              f"{env['copy_bandwidth_gb_s']:.1f} GB/s (best np.copyto, 2 x {sizes.copy_mib} MiB buffers, "
              "read+write counted; single-threaded like NumPy ufuncs)")
    if any(r.id == "3a" for r in rows):
        print(f"naive conv (3a): run {sizes.repeats['naive']}x without warm-up (it takes seconds)")
    print("ratio < 1 with target '<' means normlab is faster; speedup rows (2, 3a) print reference/normlab.")


def write_json(path: str, payload: dict) -> None:
    """Write to a temporary file in the same directory, then rename over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bench-", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- main

def run_rows(args, sizes: Sizes, torch, torch_skip, bandwidth) -> tuple[list[Row], bool]:
    rows, failed = [], False
    for group in args.rows:
        print(f"running {group} ...", file=sys.stderr, flush=True)
        try:
            rows += ROW_FUNCTIONS[group](sizes, torch, torch_skip, bandwidth)
        except Exception as exc:  # report, keep measuring the other rows, exit non-zero
            traceback.print_exc()
            rows.append(Row(group, group, "", error=f"{type(exc).__name__}: {exc}"))
            failed = True
    return rows, failed


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    pin_threads(args.threads)  # for child processes; this process's pools were pinned at import
    sizes = QUICK if args.quick else FULL
    torch, torch_skip = load_torch(not args.no_torch, args.threads)
    bandwidth = copy_bandwidth(sizes.copy_mib, sizes.repeats["copy"]) if "bn" in args.rows else None
    env = environment(args, torch, sizes, bandwidth)
    print_header(env)
    rows, failed = run_rows(args, sizes, torch, torch_skip, bandwidth)
    print_table(rows)
    print_notes(env, sizes, rows)
    if args.json:
        write_json(args.json, {"environment": env, "rows": [r.as_dict() for r in rows]})
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
