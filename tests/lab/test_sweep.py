"""The sweep engine: resume and idempotence, faults (dead worker, killed sweep,
divergence, timeout), and bit-identical histories serially, on local worker
processes and on Dask."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from normlab.lab import sweep as sweep_mod
from normlab.lab.execute import load_data
from normlab.lab.runs import RunSpec
from normlab.lab.store import RunStore
from normlab import _threads
from normlab._threads import WORKER_ENV, blas_threads
from normlab.lab.sweep import KILL_HOOK_ENV, run_sweep


@pytest.fixture(scope="module", autouse=True)
def fashion_mnist():
    try:
        load_data("fashion-mnist", 200, 100, 100, True)
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"Fashion-MNIST is not installed ({exc}); run: normlab data fetch fashion-mnist")


def spec(name, seed=0, hidden=(20,), epochs=2, num_train=200, num_val=100, **solver):
    solver = {"num_epochs": epochs, "batch_size": 50, "update_rule": "adam",
              "optim_config": {"learning_rate": 1e-3}, **solver}
    return RunSpec(experiment="sweep-test", name=name, model="fc", seed=seed,
                   model_kwargs={"hidden_dims": list(hidden), "normalization": "batchnorm" if seed % 2 else None},
                   solver_kwargs=solver, num_train=num_train, num_val=num_val, num_test=100)


# Big enough matrix products (1000 x 784 x 100) that OpenBLAS would use more
# than one thread if it were allowed to: a pinning mistake changes the bits.
EQUALITY_SPECS = [spec(f"eq{i}", seed=i, hidden=(100, 100), epochs=1, num_train=1000, num_val=500)
                  for i in range(4)]


def histories(results):
    return {h: (r.status, r.loss_history, r.train_acc_history, r.val_acc_history, r.best_val_acc)
            for h, r in results.items()}


class Recorder:
    """progress callback: the runs actually executed, in order."""

    def __init__(self):
        self.calls = []

    def __call__(self, done, total, spec, result):
        self.calls.append((done, total, spec.name, result.status))

    @property
    def names(self):
        return sorted(c[2] for c in self.calls)


def test_serial_sweep_stores_every_run_and_is_idempotent(tmp_path, monkeypatch):
    executed = []
    real = sweep_mod.execute
    monkeypatch.setattr(sweep_mod, "execute", lambda s: executed.append(s.name) or real(s))
    specs = [spec("a", 0), spec("b", 1), spec("c", 2)]
    with RunStore(tmp_path / "runs.sqlite") as store:
        rec = Recorder()
        first = run_sweep(specs + [specs[0]], store, progress=rec)      # a duplicate runs once
        assert list(first) == [s.spec_hash for s in specs]
        assert executed == ["a", "b", "c"]
        assert rec.calls == [(1, 3, "a", "finished"), (2, 3, "b", "finished"), (3, 3, "c", "finished")]
        assert store.summary() == {"finished": 3, "diverged": 0, "failed": 0, "running": 0}
        assert {h: r.to_dict() for h, r in first.items()} == {
            s.spec_hash: store.get(s.spec_hash).to_dict() for s in specs}

        rec = Recorder()
        again = run_sweep(specs, store, jobs=2, progress=rec)        # nothing to do: no worker starts
        assert executed == ["a", "b", "c"] and rec.calls == []
        assert histories(again) == histories(first)

        # A failed run and one left 'running' by a killed sweep are redone; done ones are not.
        failed = sweep_mod._failed(specs[1], "boom")
        store.put(specs[1], failed)
        store.mark_started(specs[2])
        rec = Recorder()
        third = run_sweep(specs, store, progress=rec)
        assert executed[3:] == ["b", "c"] and [c[:2] for c in rec.calls] == [(2, 3), (3, 3)]
        assert histories(third) == histories(first)


def test_diverging_run_is_stored_diverged_with_its_histories(tmp_path):
    # Weight scale 10 without batch norm at learning rate 1: overflows within a few steps.
    div = RunSpec(experiment="sweep-test", name="diverges", model="fc",
                  model_kwargs={"hidden_dims": [20] * 4, "weight_scale": 10.0},
                  solver_kwargs={"num_epochs": 1, "batch_size": 50, "update_rule": "sgd",
                                 "optim_config": {"learning_rate": 1.0}},
                  num_train=200, num_val=100, num_test=100)
    with RunStore(tmp_path / "runs.sqlite") as store:
        res = run_sweep([div, spec("ok")], store)[div.spec_hash]
        assert res.status == "diverged" and "overflow" in res.error
        stored = store.get(div.spec_hash)
        assert stored.status == "diverged" and stored.error == res.error
        assert len(stored.loss_history) >= 2 and stored.loss_history[-1] is None
        assert all(v is not None for v in stored.loss_history[:-1])
        assert div.spec_hash in store.done_hashes()                  # a result: not redone on resume
        json.dumps(stored.to_dict(), allow_nan=False)


def test_worker_killed_mid_run_fails_only_that_run_and_resume_redoes_only_it(tmp_path, monkeypatch):
    specs = [spec("victim", 0), spec("b", 1), spec("c", 2), spec("d", 3)]
    monkeypatch.setenv(KILL_HOOK_ENV, "victim")   # the worker running "victim" SIGKILLs itself
    with RunStore(tmp_path / "runs.sqlite") as store:
        rec = Recorder()
        res = run_sweep(specs, store, jobs=2, progress=rec)
        assert res[specs[0].spec_hash].status == "failed"
        assert res[specs[0].spec_hash].error == "worker process died (signal 9, SIGKILL) while running victim"
        assert [res[s.spec_hash].status for s in specs[1:]] == ["finished"] * 3
        assert rec.names == ["b", "c", "d", "victim"]
        assert store.summary() == {"finished": 3, "diverged": 0, "failed": 1, "running": 0}
        before = {s.name: store._conn.execute("SELECT finished_at FROM runs WHERE spec_hash=?",
                                              (s.spec_hash,)).fetchone()[0] for s in specs[1:]}

        monkeypatch.delenv(KILL_HOOK_ENV)
        rec = Recorder()
        resumed = run_sweep(specs, store, jobs=2, progress=rec)
        assert rec.names == ["victim"]
        assert all(r.status == "finished" for r in resumed.values())
        assert {s.name: store._conn.execute("SELECT finished_at FROM runs WHERE spec_hash=?",
                                            (s.spec_hash,)).fetchone()[0] for s in specs[1:]} == before
        assert histories(resumed)[specs[0].spec_hash] == histories(run_sweep([specs[0]], store))[specs[0].spec_hash]


_SWEEP_SCRIPT = textwrap.dedent("""
    import json, sys
    from normlab.lab.runs import RunSpec
    from normlab.lab.store import RunStore
    from normlab.lab.sweep import run_sweep
    specs = [RunSpec.from_dict(d) for d in json.load(open(sys.argv[2]))]
    jobs = int(sys.argv[3])
    if __name__ == "__main__":
        with RunStore(sys.argv[1]) as store:
            run_sweep(specs, store, jobs=jobs, progress=lambda d, t, s, r: print(s.name, flush=True))
""")


def _sweep_in_subprocess(tmp_path, specs, store_path, jobs, env=None):
    spec_file = tmp_path / "specs.json"
    spec_file.write_text(json.dumps([s.to_dict() for s in specs]))
    script = tmp_path / "sweep_script.py"
    script.write_text(_SWEEP_SCRIPT)
    return subprocess.Popen([sys.executable, str(script), str(store_path), str(spec_file), str(jobs)],
                            stdout=subprocess.PIPE, text=True, env=env)


def _children(pid):
    try:
        return [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return None   # not Linux, or a kernel without the children file


def _alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")   # a zombie has exited; reaping it is init's business


def test_killed_sweep_resumes_where_it_stopped(tmp_path):
    """SIGKILL the sweep's parent process (jobs=2) after two runs: the resumed
    sweep trains only the rest, and the histories equal an uninterrupted sweep's."""
    specs = [spec(f"r{i}", seed=i, epochs=3) for i in range(8)]
    path = tmp_path / "runs.sqlite"
    proc = _sweep_in_subprocess(tmp_path, specs, path, jobs=2)
    try:
        stored = {proc.stdout.readline().strip() for _ in range(2)}
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert len(stored) == 2 and stored <= {s.name for s in specs}
    with RunStore(path) as store:
        done = store.done_hashes()
        assert {s.spec_hash for s in specs if s.name in stored} <= done and len(done) < len(specs)
        rec = Recorder()
        resumed = run_sweep(specs, store, progress=rec)
        assert rec.names == sorted(s.name for s in specs if s.spec_hash not in done)
        assert store.summary()["finished"] == len(specs)
    with RunStore(tmp_path / "fresh.sqlite") as fresh:
        assert histories(resumed) == histories(run_sweep(specs, fresh))


def test_workers_die_with_a_killed_sweep(tmp_path):
    """Workers busy with long runs do not outlive a SIGKILLed sweep (Linux)."""
    long_runs = [spec(f"long{i}", seed=i, epochs=500, num_train=1000, hidden=(100, 100)) for i in range(2)]
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    proc = _sweep_in_subprocess(tmp_path, long_runs, path, jobs=2)
    children = None
    try:
        with RunStore(path) as store:
            deadline = time.monotonic() + 30
            while store.summary()["running"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(0.5)   # into the runs
        children = _children(proc.pid) or []
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 3   # far shorter than a run
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphans = [c for c in children if _alive(c)]
    finally:
        for pid in [proc.pid] + [c for c in (children or []) if _alive(c)]:
            os.kill(pid, signal.SIGKILL)   # this test's own processes only
        proc.communicate()   # (the workers hold its stdout: returns once they are gone)
    if not children:
        pytest.skip("no /proc/PID/task/PID/children here to find the workers")
    assert len(children) >= 2   # the two workers (and multiprocessing's resource tracker)
    assert not orphans, "worker processes outlived the sweep"


def test_blas_threads_pins_and_restores():
    controls = _threads._openblas_controls()
    if controls is None:
        pytest.skip("numpy's BLAS is not OpenBLAS here; nothing to check")
    _, get = controls
    before = get()
    with blas_threads(1):
        assert get() == 1
    assert get() == before


def test_parallel_equals_serial_bit_for_bit(tmp_path):
    """jobs=2 (spawned workers, BLAS pinned by the environment) == serial in this
    process (BLAS pinned at run time) == serial in a process started with the
    pinned environment."""
    with RunStore(tmp_path / "parallel.sqlite") as store:
        parallel = run_sweep(EQUALITY_SPECS, store, jobs=2)
    with RunStore(tmp_path / "serial.sqlite") as store:
        serial = run_sweep(EQUALITY_SPECS, store, jobs=1)
    proc = _sweep_in_subprocess(tmp_path, EQUALITY_SPECS, tmp_path / "env.sqlite", jobs=1,
                                env={**os.environ, **WORKER_ENV})
    proc.communicate()
    assert proc.returncode == 0
    with RunStore(tmp_path / "env.sqlite") as store:
        pinned_env = {s.spec_hash: r for s, r in store.results()}
    assert all(r.status == "finished" for r in parallel.values())
    assert histories(parallel) == histories(serial) == histories(pinned_env)


def test_timeout_kills_the_run_and_keeps_the_others(tmp_path):
    slow = spec("slow", epochs=400, num_train=1000, hidden=(100, 100))
    with RunStore(tmp_path / "runs.sqlite") as store:
        t0 = time.perf_counter()
        res = run_sweep([slow, spec("quick")], store, jobs=1, timeout=3.0)
        assert time.perf_counter() - t0 < 20
        assert res[slow.spec_hash].status == "failed"
        assert res[slow.spec_hash].error.startswith("timed out after 3 s while running slow")
        assert res[spec("quick").spec_hash].status == "finished"


def test_arguments_are_validated(tmp_path, monkeypatch):
    with RunStore(tmp_path / "runs.sqlite") as store:
        with pytest.raises(ValueError, match="jobs must be a positive integer, got 0"):
            run_sweep([], store, jobs=0)
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            run_sweep([], store, timeout=-1)
        with pytest.raises(ValueError, match="only enforced on local worker processes"):
            run_sweep([], store, scheduler="tcp://127.0.0.1:1", timeout=5)
        with pytest.raises(TypeError, match="takes RunSpec objects, got dict"):
            run_sweep([spec("a").to_dict()], store)
        monkeypatch.setitem(sys.modules, "distributed", None)         # dask not installed
        with pytest.raises(RuntimeError, match=r"pip install 'normlab\[dask\]'"):
            run_sweep([spec("a")], store, scheduler="tcp://127.0.0.1:1")
        assert run_sweep([], store) == {}


@pytest.fixture
def restore_blas():
    controls = _threads._openblas_controls()
    before = controls[1]() if controls else None
    yield
    if controls:
        controls[0](before)   # Dask tasks leave BLAS pinned in their process, which is this one


def test_dask_local_cluster_equals_serial(tmp_path, restore_blas):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed "
                                                            "(pip install 'normlab[dask]')")
    # protocol="tcp": a real TCP scheduler on 127.0.0.1 (processes=False defaults to in-process comms).
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with RunStore(tmp_path / "dask.sqlite") as store:
            rec = Recorder()
            on_dask = run_sweep(EQUALITY_SPECS, store, scheduler=cluster.scheduler_address, progress=rec)
            assert store.summary()["finished"] == len(EQUALITY_SPECS)
            assert rec.names == sorted(s.name for s in EQUALITY_SPECS)
    with RunStore(tmp_path / "serial.sqlite") as store:
        assert histories(on_dask) == histories(run_sweep(EQUALITY_SPECS, store))


def test_unreachable_scheduler_says_so(tmp_path, monkeypatch):
    pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'normlab[dask]')")
    monkeypatch.setattr(sweep_mod, "DASK_CONNECT_TIMEOUT", 1.0)
    with RunStore(tmp_path / "runs.sqlite") as store:
        with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
            run_sweep([spec("a")], store, scheduler="tcp://127.0.0.1:9")
