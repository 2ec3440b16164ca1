"""The measuring and reporting half of benchmarks/run.py: timing, rows, table, JSON.

Imported by run.py (and goals.py) after the thread variables are pinned, since
it imports NumPy. Nothing here knows a particular row.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from normlab.nn import backend

BN_ARRAYS = 5  # the byte model: fwd reads x, writes out; bwd reads dout, x (or x_hat), writes dx


# --------------------------------------------------------------------------- sizes and context

@dataclass(frozen=True)
class Sizes:
    bn_shapes: tuple[tuple[int, int], ...]   # 2-D batch norm and layer norm; all but the first get a floor row
    spatial_shape: tuple[int, int, int, int]  # spatial batch norm and group norm (N, C, H, W)
    gn_groups: int
    bn_alt_shape: tuple[int, int]
    copy_mib: int                      # per buffer; two buffers
    conv_x: tuple[int, int, int, int]  # (N, C, H, W)
    conv_w: tuple[int, int, int, int]  # (F, C, HH, WW)
    net_batch: int
    warmup: int
    min_sample_s: float                # calls per timed sample: enough for this many seconds (at least one)
    repeats: dict = field(default_factory=dict)  # row group -> timed repeats


@dataclass
class Context:
    """What every row function gets."""
    sizes: Sizes
    quick: bool
    torch: object | None          # the torch module, threads pinned, or None
    torch_skip: str | None        # why torch is None
    bandwidth: float | None       # copy bytes/s, when a floor row runs
    backends: tuple[str, ...]     # normlab backends measured: ("numba", "numpy") or ("numpy",)
    judged: str                   # the backend whose ratio meets or misses a target


def on_backend(name: str, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` computed on backend ``name``; switching costs one dict store (``using`` costs a generator)."""
    def step():
        backend.set_backend(name)
        return fn()
    return step


# --------------------------------------------------------------------------- timing

@dataclass
class Timing:
    best: float    # seconds per call, min over repeats
    median: float
    n: int         # timed samples
    number: int = 1  # calls per sample


SETTLE_S = 0.02


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int,
                     min_sample_s: float = 0.0, settle_s: float = SETTLE_S) -> dict[str, Timing]:
    """Warm every function up, then time them in turns so drift hits all alike.

    Each sample calls a function ``number`` times, the same for all of them:
    enough that the fastest takes ``min_sample_s`` (short calls are otherwise
    dominated by timer and scheduling noise). Times are per call.

    Before each timed sample the function runs untimed for ``settle_s``: after
    a call, PyTorch's OpenMP workers spin-wait for milliseconds (libgomp's
    default GOMP_SPINCOUNT) on the cores the next contender's threads need.
    Measured at (4096, 1024), batch norm on normlab's two threads took 5.2 ms
    right after torch's call and 3.7 ms after its own; the settle lets
    whatever ran before go idle, so no contender pays for another's threads.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    number = 1
    if min_sample_s > 0:
        once = []
        for fn in fns.values():
            t0 = time.perf_counter()
            fn()
            once.append(time.perf_counter() - t0)
        number = max(1, min(10_000, math.ceil(min_sample_s / max(min(once), 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if settle_s > 0 and len(fns) > 1:
                end = time.perf_counter() + settle_s
                while time.perf_counter() < end:
                    fn()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - t0) / number)
    return {name: Timing(min(s), statistics.median(s), len(s), number) for name, s in samples.items()}


def fixed(seconds: float) -> Timing:
    """A reference that is a number, not a measurement (a floor, a baseline)."""
    return Timing(seconds, seconds, 1)


def copy_bandwidth(mib: int, repeats: int) -> float:
    """Bytes per second of np.copyto over two `mib` MiB buffers (read + write counted)."""
    src = np.ones(mib * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)  # np.ones above and the warm-up copy fault every page in
    t = time_interleaved({"copy": lambda: np.copyto(dst, src)}, repeats, warmup=1)["copy"]
    return 2 * src.nbytes / t.best


# --------------------------------------------------------------------------- checks

def assert_close(what: str, got, want, rtol: float = 1e-3) -> None:
    """``got`` equals ``want`` to ``rtol`` of the largest |want|; raises AssertionError otherwise."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.size != want.size:
        raise AssertionError(f"{what}: {got.shape} vs {want.shape}")
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = float(np.max(np.abs(got.reshape(want.shape) - want))) if want.size else 0.0
    if not err <= rtol * scale:  # also catches NaN
        raise AssertionError(f"{what}: max |difference| {err:.3g} > {rtol:g} x {scale:.3g}")


# --------------------------------------------------------------------------- results

@dataclass
class Row:
    id: str
    name: str
    ref_name: str
    target: str = ""                 # "<= 2", "< 1", "> 1"
    inverse: bool = False            # ratio = ref / normlab (a speedup) instead of normlab / ref
    judged: str = "numba"            # the backend whose ratio is held against the target
    normlab_s: dict = field(default_factory=dict)         # backend -> best of repeats, seconds
    normlab_median_s: dict = field(default_factory=dict)
    ref_s: float | None = None
    ref_median_s: float | None = None
    ref_by_backend_s: dict = field(default_factory=dict)  # only when the reference runs on a backend too (row 2)
    skipped: str = ""
    error: str = ""

    def ref_for(self, b: str) -> float | None:
        return self.ref_by_backend_s.get(b, self.ref_s)

    def ratio_on(self, b: str) -> float | None:
        ours, ref = self.normlab_s.get(b), self.ref_for(b)
        if ours is None or ref is None:
            return None
        return ref / ours if self.inverse else ours / ref

    @property
    def ratio(self) -> float | None:
        return self.ratio_on(self.judged)

    @property
    def met(self) -> bool | None:
        if self.ratio is None:
            return None
        op, bound = self.target.split()
        return {"<=": self.ratio <= float(bound), "<": self.ratio < float(bound),
                ">": self.ratio > float(bound)}[op]

    def record(self, ours: dict[str, Timing], ref: Timing | None,
               ref_by_backend: dict[str, Timing] | None = None) -> "Row":
        self.normlab_s = {b: t.best for b, t in ours.items()}
        self.normlab_median_s = {b: t.median for b, t in ours.items()}
        if ref is not None:
            self.ref_s, self.ref_median_s = ref.best, ref.median
        self.ref_by_backend_s = {b: t.best for b, t in (ref_by_backend or {}).items()}
        return self

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "ratios": {b: self.ratio_on(b) for b in self.normlab_s},
                "met": self.met, "met_on": self.judged,
                "ratio_definition": "reference / normlab" if self.inverse else "normlab / reference"}


def skipped_row(row: Row, ours: dict[str, Timing], reason: str) -> Row:
    """A row whose reference could not run; normlab's own times are still shown."""
    row.skipped = reason
    return row.record(ours, None)


def with_reference(row: Row, ctx: Context, ours: dict[str, Timing], ref: Timing | None) -> Row:
    """``row`` against ``ref``, or skipped with ctx.torch_skip when torch could not run."""
    return row.record(ours, ref) if ref is not None else skipped_row(row, ours, ctx.torch_skip or "skipped")


def guarded(rows: list[tuple[str, str]], build: Callable[[], list[Row]]) -> list[Row]:
    """``build()``, or one error row per (id, name) when it raises: one failure never hides the other rows."""
    try:
        return build()
    except Exception as exc:
        traceback.print_exc()
        return [Row(rid, name, "", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                for rid, name in rows]


# --------------------------------------------------------------------------- output

def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def table_cells(row: Row) -> list[str]:
    times = [fmt_time(row.normlab_s.get(b)) for b in ("numba", "numpy")]
    if row.error:
        return [row.id, row.name, *times, f"error: {row.error}", "-", "-", "-", "-"]
    if row.skipped:
        return [row.id, row.name, *times, row.skipped, "-", "-", "-", "-"]
    ref = f"{fmt_time(row.ref_s)} ({row.ref_name})"
    if row.ref_by_backend_s.get("numpy") is not None and "numba" in row.ref_by_backend_s:
        ref = f"{fmt_time(row.ref_by_backend_s['numba'])} / {fmt_time(row.ref_by_backend_s['numpy'])} ({row.ref_name})"
    ratio_name = f"{row.ref_name}/normlab" if row.inverse else f"normlab/{row.ref_name}"
    ratios = [fmt_ratio(row.ratio_on(b)) for b in ("numba", "numpy")]
    return [row.id, row.name, *times, ref, *ratios, f"{ratio_name} {row.target}", "yes" if row.met else "NO"]


def print_table(rows: list[Row], judged: str) -> None:
    header = ["#", "row", "numba", "numpy", "reference", "ratio numba", "ratio numpy", "target",
              f"met ({judged})"]
    cells = [header] + [table_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    right = {2, 3, 4, 5, 6}
    for k, line in enumerate(cells):
        print("  ".join(c.rjust(w) if i in right else c.ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


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
