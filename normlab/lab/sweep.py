"""The sweep engine: run a grid of independent ``RunSpec``s into a ``RunStore``.

``run_sweep(specs, store, jobs=1, scheduler=None, progress=None, timeout=None)``

- Runs whose hash is in ``store.done_hashes()`` (finished or diverged) are not
  executed again; their stored results are returned. So a killed sweep resumes
  where it stopped, and running a sweep twice executes nothing the second time.
- ``jobs == 1``: in this process, one run after another.
  ``jobs > 1`` (or a ``timeout``): ``jobs`` local worker processes ('spawn').
  ``scheduler="tcp://host:port"``: a Dask distributed cluster (``pip install
  'normlab[dask]'``); ``jobs`` is then ignored.
- Only this process writes the store: each result is stored (one transaction)
  the moment it arrives, then ``progress(done, total, spec, result)`` is called
  (``done`` counts runs found done in the store too; skipped runs get no call).
- Workers are started with 'spawn', which re-imports the calling script: a
  script that calls ``run_sweep(jobs > 1)`` needs ``if __name__ == "__main__":``
  (console scripts and ``python -m`` have it). Dask workers need normlab installed.

Determinism. ``execute`` is deterministic given the spec, but OpenBLAS splits
a matrix product differently with 1 or 2 threads, which changes float
rounding (measured here: the histories of a 6-layer net differ in the last
bits between OPENBLAS_NUM_THREADS=1 and 2). Every run therefore executes with
ONE BLAS thread wherever it runs: workers are started with
``OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=NORMLAB_NUM_THREADS=1``
in their environment (read when they import numpy), and the serial path and
Dask tasks set the loaded BLAS to one thread at run time (threadpoolctl if
installed, else OpenBLAS's own ``set_num_threads``). Serial, ``jobs=2`` and
Dask histories are then bit-identical (the price: a serial sweep does not use
a second core for matrix products; use jobs=2 for that). If the BLAS cannot be pinned in this
process, the serial path warns (``BlasThreadsWarning``); set the variables
above before Python starts to be safe (the policy: ``normlab._threads``). NORMLAB_NUM_THREADS only changes the
speed of normlab's own kernels, never their results.

Faults. A worker that dies (killed, segfault, out of memory) fails only the
run it had started: that run is stored 'failed' ("worker process died
(signal 9, SIGKILL) while running NAME"), the worker is replaced and every
other run continues. A run that exceeds ``timeout`` seconds has its worker
killed and is stored 'failed'. 'failed' runs are redone by the next sweep.
"""
from __future__ import annotations

import ctypes
import math
import os
import signal
import time
import traceback
from collections import deque
from typing import Callable, Iterable

from .._threads import blas_threads, worker_environ
from .execute import execute
from .runs import RunResult, RunSpec, code_version
from .store import RunStore

__all__ = ["run_sweep", "check_scheduler", "die_with_parent",
           "KILL_HOOK_ENV"]

# Test-only: a worker whose run has this name kills its own process (SIGKILL)
# right after telling the parent it started it (a worker dying mid-run).
KILL_HOOK_ENV = "NORMLAB_TEST_KILL_RUN"
# A worker that dies before acknowledging a run did not run it: the run is
# requeued, up to this many times (then failed: the workers cannot start).
_MAX_UNSTARTED_DEATHS = 2
# Seconds to keep trying to reach a Dask scheduler before giving up.
DASK_CONNECT_TIMEOUT = 20.0

Progress = Callable[[int, int, RunSpec, RunResult], None]


# -- the sweep --------------------------------------------------------------------------------------
def run_sweep(specs: Iterable[RunSpec], store: RunStore, jobs: int = 1, scheduler: str | None = None,
              progress: Progress | None = None, timeout: float | None = None) -> dict[str, RunResult]:
    """Execute every spec not yet done in ``store``; return ``{spec_hash: RunResult}``.

    Inputs:
    - specs: the runs (duplicates, by hash, run once).
    - store: where each result is written the moment it arrives.
    - jobs: local worker processes (1: in this process, serially).
    - scheduler: a Dask scheduler address ("tcp://host:port"); needs the dask extra.
    - progress: called as ``progress(done, total, spec, result)`` after each
      executed run; ``done`` counts the runs already done in the store too.
    - timeout: seconds a run may take in a local worker (data loading
      included); a longer run is killed and stored 'failed'. Runs in worker
      processes even with ``jobs=1``. Not supported with ``scheduler``.

    Returns every spec's result, in the order of ``specs``: the stored result
    for runs skipped as done, the new one for the others. Never raises for a
    failing run (it is stored 'failed' and redone by the next sweep).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if scheduler is not None and timeout is not None:
        raise ValueError("timeout is only enforced on local worker processes; drop the timeout or the scheduler")
    unique: dict[str, RunSpec] = {}
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise TypeError(f"run_sweep takes RunSpec objects, got {type(spec).__name__}")
        unique.setdefault(spec.spec_hash, spec)
    done_before = store.done_hashes()
    results = {h: store.get(h) for h in unique if h in done_before}
    todo = [s for h, s in unique.items() if h not in done_before]
    total = len(unique)

    def record(spec: RunSpec, result: RunResult) -> None:
        store.put(spec, result)
        results[spec.spec_hash] = result
        if progress is not None:
            progress(len(results), total, spec, result)

    if todo:
        if scheduler is not None:
            _run_dask(todo, store, record, scheduler)
        elif jobs == 1 and timeout is None:
            _run_serial(todo, store, record)
        else:
            _run_local(todo, store, record, min(jobs, len(todo)), timeout)
    return {h: results[h] for h in unique}


def _failed(spec: RunSpec, error: str, seconds: float = 0.0) -> RunResult:
    return RunResult(spec_hash=spec.spec_hash, experiment=spec.experiment, name=spec.name, status="failed",
                     seconds=seconds, error=error, code_version=code_version())


def _run_serial(todo, store, record) -> None:
    with blas_threads(1):
        for spec in todo:
            store.mark_started(spec)
            record(spec, execute(spec))


# -- local worker processes -------------------------------------------------------------------------
def die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when ``parent_pid`` (the process that started it)
    dies, so a killed sweep leaves no orphan finishing work nobody will store."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return   # elsewhere an orphan exits at its next message to the dead parent
    if os.getppid() != parent_pid:   # the parent died before prctl
        os._exit(1)


def _worker_main(conn, parent_pid: int) -> None:
    """A worker: receive spec dicts, answer ("started", hash) then ("result", dict); None stops it."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    kill_name = os.environ.get(KILL_HOOK_ENV)
    with blas_threads(1):   # the environment already says 1; this covers a BLAS that ignores it
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return   # the parent is gone
            if msg is None:
                return
            try:
                spec = RunSpec.from_dict(msg)
                conn.send(("started", spec.spec_hash))
                if kill_name is not None and spec.name == kill_name:
                    os.kill(os.getpid(), signal.SIGKILL)
                reply = ("result", execute(spec).to_dict())
            except (EOFError, OSError):
                return
            except BaseException:  # noqa: BLE001 - report it; the parent stores the run failed
                reply = ("error", traceback.format_exc(limit=8))
            try:
                conn.send(reply)
            except (EOFError, OSError):
                return


class _Worker:
    def __init__(self, ctx, index: int):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid()), name=f"normlab-worker-{index}", daemon=True)
        with worker_environ():
            self.proc.start()
        child.close()
        self.spec: RunSpec | None = None
        self.started = False
        self.t0 = 0.0

    def assign(self, spec: RunSpec) -> None:
        self.spec, self.started, self.t0 = spec, False, time.perf_counter()
        try:
            self.conn.send(spec.to_dict())
        except OSError:
            pass   # it died; the sentinel reports it and the run is requeued (not started)

    def stop(self, grace: float = 2.0) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(grace)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _death_reason(exitcode) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {-exitcode}, {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _cost(spec: RunSpec) -> float:
    """A rough work estimate, to start the longest runs first (shorter makespan);
    it only orders the queue, never changes a result."""
    mk, sk = spec.model_kwargs, spec.solver_kwargs
    n = (spec.num_train or 50_000) * max(int(sk.get("num_epochs", 10)), 1)
    if spec.task is not None:                       # step-wise: steps x batch samples seen
        n = int(spec.task.get("steps", 1)) * int(spec.task.get("batch_size", 100))
    chw = (3, 32, 32) if spec.dataset == "cifar-10" else (1, 28, 28)
    if spec.model in ("fc", "resmlp"):
        hidden = mk.get("hidden_dims", [100]) if spec.model == "fc" else \
            [mk.get("width", 64)] * (1 + 2 * int(mk.get("depth", 32)))
        dims = [math.prod(chw), *hidden, 10]
        return n * sum(a * b for a, b in zip(dims, dims[1:]))
    c, h, w = chw
    f, k = mk.get("num_filters", 32), mk.get("filter_size", 7)
    return n * (f * k * k * c * h * w + f * h * w // 4 * mk.get("hidden_dim", 100))


def _run_local(todo, store, record, jobs: int, timeout: float | None) -> None:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    # 'spawn': a fresh interpreter that imports numpy after our environment is
    # set (fork would inherit this process's BLAS threads and locks).
    ctx = mp.get_context("spawn")
    queue = deque(sorted(todo, key=_cost, reverse=True))
    unstarted_deaths: dict[str, int] = {}
    any_started = False
    workers: list[_Worker] = []

    def feed(w: _Worker) -> None:
        if queue:
            w.assign(queue.popleft())

    def replace(i: int) -> None:
        workers[i].stop(grace=0)
        if queue:   # no new worker just to stop it again
            workers[i] = _Worker(ctx, i)
            feed(workers[i])

    try:
        for i in range(jobs):
            workers.append(_Worker(ctx, i))
            feed(workers[i])
        while any(w.spec is not None for w in workers):
            busy = [w for w in workers if w.spec is not None]
            wait_for = None
            if timeout is not None:
                wait_for = max(0.0, min(w.t0 + timeout for w in busy) - time.perf_counter())
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], wait_for))
            for i, w in enumerate(workers):
                if w.spec is None:
                    continue
                spec = w.spec
                if w.conn in ready or w.proc.sentinel in ready:
                    # Drain messages first: a worker may have answered and then died.
                    msg = None
                    try:
                        while w.conn.poll():
                            msg = w.conn.recv()
                            if msg[0] == "started":   # 'running' in the store once a worker has it
                                w.started, any_started, msg = True, True, None
                                store.mark_started(spec)
                            else:
                                break
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        result = (RunResult.from_dict(msg[1]) if msg[0] == "result" else
                                  _failed(spec, f"worker error while running {spec.name}: {msg[1]}",
                                          time.perf_counter() - w.t0))
                        w.spec = None
                        record(spec, result)
                        feed(w)
                        continue
                    if w.proc.is_alive():
                        continue   # only a "started" message
                    w.proc.join()
                    w.spec = None
                    reason = _death_reason(w.proc.exitcode)
                    if w.started:
                        record(spec, _failed(spec, f"worker process died ({reason}) while running {spec.name}",
                                             time.perf_counter() - w.t0))
                    else:
                        # It never began this run: requeue it, unless workers keep dying at start-up.
                        unstarted_deaths[spec.spec_hash] = unstarted_deaths.get(spec.spec_hash, 0) + 1
                        if not any_started and sum(unstarted_deaths.values()) > _MAX_UNSTARTED_DEATHS * jobs:
                            raise RuntimeError(
                                f"every worker process died at start-up ({reason}); see the errors above. "
                                f"A script calling run_sweep with jobs > 1 must guard its entry point with "
                                f"if __name__ == '__main__': ('spawn' re-imports it)")
                        if unstarted_deaths[spec.spec_hash] > _MAX_UNSTARTED_DEATHS:
                            record(spec, _failed(spec, f"worker processes died ({reason}) before starting "
                                                       f"{spec.name}; see the errors above"))
                        else:
                            queue.appendleft(spec)
                    replace(i)
                elif timeout is not None and time.perf_counter() - w.t0 >= timeout:
                    w.spec = None
                    record(spec, _failed(spec, f"timed out after {timeout:g} s while running {spec.name} "
                                               f"(worker killed)", time.perf_counter() - w.t0))
                    replace(i)
    finally:
        for w in workers:
            w.stop(grace=2.0 if w.spec is None else 0)


# -- Dask -----------------------------------------------------------------------------------------------
def _dask_execute(spec_dict: dict) -> dict:
    """A Dask task: one run with one BLAS thread (left pinned: worker threads share the process)."""
    with blas_threads(1, restore=False):
        return execute(RunSpec.from_dict(spec_dict)).to_dict()


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError as exc:
        raise RuntimeError(f"--scheduler needs Dask distributed ({exc}); install it with "
                           f"pip install 'normlab[dask]'") from None
    try:
        return Client(address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: {exc}; start one "
                           f"(dask scheduler / dask worker) or drop --scheduler") from None


def check_scheduler(address: str) -> None:
    """RuntimeError (one line) unless a Dask scheduler answers at ``address``, so a
    command can refuse before it writes anything."""
    _connect(address).close()


def _run_dask(todo, store, record, address: str) -> None:
    client = _connect(address)          # first: it names the missing extra
    from distributed import as_completed
    with client:
        futures, specs, t0 = [], {}, time.perf_counter()
        for spec in todo:
            store.mark_started(spec)
            futures.append(client.submit(_dask_execute, spec.to_dict(), pure=False))
            specs[futures[-1].key] = spec
        for future in as_completed(futures, loop=client.loop):   # not the default client: we set none
            spec = specs.pop(future.key)
            try:
                result = RunResult.from_dict(future.result())
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: that run failed, the others go on
                result = _failed(spec, f"Dask task failed while running {spec.name}: {type(exc).__name__}: {exc}",
                                 time.perf_counter() - t0)
            future.release()
            record(spec, result)
