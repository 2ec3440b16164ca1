"""Wall time of ``normlab reproduce`` with one and two worker processes.

    .venv/bin/python benchmarks/reproduce.py [--quick] [--jobs 1,2] [--only NAME,...] [--keep DIR]

Each setting runs ``normlab reproduce --jobs J --out <fresh dir>`` as its own
process (course settings, Fashion-MNIST; ``--quick`` for the reduced CI
sizes) and is timed from start to exit with ``time.perf_counter``: data
loading, training, analysis, figures and the report included. Then it prints
both times, the speedup of the second core (target >= 1.7x) and whether the
whole course took under 5 minutes, and checks that both run directories hold
bit-identical training histories (the worker count must never change a
result). The header prints the 1-minute load average: on a shared machine
other work inflates the times, so rerun when the load is low. Exit status 0
unless a reproduce run failed or the histories differ.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 300.0
TARGET_SPEEDUP = 1.7


def histories(run_dir: Path) -> dict:
    """{spec_hash: result minus timings} from the run store (read-only)."""
    db = sqlite3.connect(f"file:{run_dir / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        out = {}
        for h, text in db.execute("SELECT spec_hash, result_json FROM runs"):
            r = json.loads(text) if text else None
            if r is not None:
                r.pop("seconds", None)
            out[h] = r
        return out
    finally:
        db.close()


def run(jobs: int, out: Path, quick: bool, only: str | None) -> float:
    cmd = [sys.executable, "-m", "normlab.cli", "reproduce", "--jobs", str(jobs), "--out", str(out)]
    if quick:
        cmd.append("--quick")
    if only:
        cmd += ["--only", only]
    print(f"$ normlab {' '.join(cmd[3:])}", flush=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"normlab reproduce --jobs {jobs} failed (exit {res.returncode})")
    print(f"  {seconds:.1f} s", flush=True)
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (a smoke test, seconds)")
    ap.add_argument("--jobs", default="1,2", help="worker counts to time, comma-separated (default 1,2)")
    ap.add_argument("--only", metavar="NAME,...", help="only these experiments")
    ap.add_argument("--keep", metavar="DIR", help="keep the run directories under DIR (default: a temp dir)")
    ap.add_argument("--json", metavar="PATH", help="also write the timings as JSON")
    args = ap.parse_args(argv)
    jobs = [int(j) for j in args.jobs.split(",") if j]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"normlab reproduce benchmark: {'quick' if args.quick else 'full course settings'}, "
          f"Fashion-MNIST, {cpus} CPUs, load average {load:.2f}"
          + ("  (busy machine: times are inflated)" if load > 0.5 else ""), flush=True)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="normlab-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    times, dirs = {}, {}
    for j in jobs:
        dirs[j] = root / f"{stamp}-jobs{j}"
        times[j] = run(j, dirs[j], args.quick, args.only)
    print()
    for j in jobs:
        met = "" if args.quick else f"   (target < {TARGET_SECONDS:.0f} s: {'met' if times[j] < TARGET_SECONDS else 'MISSED'})"
        print(f"jobs {j}: {times[j]:7.1f} s{met}")
    speedup = None
    if 1 in times and 2 in times:
        speedup = times[1] / times[2]
        print(f"speedup from the second core: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x: "
              f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'})")
    same = True
    if len(dirs) > 1:
        ref = histories(dirs[jobs[0]])
        same = all(histories(dirs[j]) == ref for j in jobs[1:])
        print(f"training histories identical across worker counts: {'yes' if same else 'NO'} ({len(ref)} runs)")
    if args.json:
        Path(args.json).write_text(json.dumps({"quick": args.quick, "load_average": load, "cpus": cpus,
                                               "seconds": times, "speedup": speedup, "identical": same}, indent=2))
    if not args.keep:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
