"""How close normlab.lab.budget's estimates are: one run of each kind the course
recipes train, executed here with one BLAS thread, beside its estimate.

    python benchmarks/budget_calibration.py [--quick]

Prints, per run, the estimated and measured seconds and peak memory (RSS of
a fresh worker process) and their ratios. The estimate is a guard against
mistakes (a typo making a sweep a thousand times larger), so a factor of
about 3 either way is fine.
"""
from __future__ import annotations

import os

from normlab._threads import WORKER_ENV

os.environ.update(WORKER_ENV)   # before NumPy is imported: one thread of everything, as a sweep worker

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402


def _measure(spec_dict, queue):
    from normlab.lab.execute import execute
    from normlab.lab.runs import RunSpec
    t0 = time.perf_counter()
    result = execute(RunSpec.from_dict(spec_dict))
    queue.put((time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               result.status))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the --quick recipes' runs (seconds)")
    args = parser.parse_args()
    from normlab.lab.budget import _bytes, run_cost
    from normlab.lab.plan import plan

    picked = {}
    for p in plan(quick=args.quick, engine="numpy"):
        for s in p.specs:
            kind = (p.name, s.model, s.solver_kwargs.get("batch_size"), len(s.model_kwargs.get("hidden_dims", [])))
            picked.setdefault(kind, s)
    ctx = mp.get_context("spawn")
    print(f"{'run':58s} {'est s':>8s} {'meas s':>8s} {'ratio':>6s} {'est mem':>9s} {'meas mem':>9s} {'ratio':>6s}")
    for spec in picked.values():
        cost = run_cost(spec)
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(spec.to_dict(), queue))
        proc.start()
        seconds, rss, status = queue.get()
        proc.join()
        print(f"{cost.name[:58]:58s} {cost.seconds:8.2f} {seconds:8.2f} {cost.seconds / seconds:6.2f} "
              f"{_bytes(cost.bytes):>9s} {_bytes(rss):>9s} {cost.bytes / rss:6.2f}  {status}", flush=True)


if __name__ == "__main__":
    main()
