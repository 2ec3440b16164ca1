"""A run directory under faults: kills (SIGKILL, SIGTERM) with process-tree checks,
two writers at once, damaged, emptied and full stores, malformed config.json,
stale temporaries, and options that would only fail late (each refused before
a byte is written). The unit-level pieces are in test_rundir.py and test_store.py."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import _fake_recipe as fake
from normlab import cli, reproduce as R
from normlab.lab.rundir import LOCK_FILE, RunDirLock
from normlab.lab.store import RunStore

LONG = ["--num-epochs", "5000"]          # a fake run that trains for tens of seconds


@pytest.fixture
def recipe(monkeypatch):
    fake.install(monkeypatch)
    return fake


def _start(*args, **kw):
    """``normlab ARGS`` with the fake recipe in a new session (its process tree is that session)."""
    return subprocess.Popen([sys.executable, "-c", fake.BOOT + f"sys.exit(main({list(args)!r}))"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-c", fake.BOOT + f"sys.exit(main({list(args)!r}))"],
                          capture_output=True, text=True, timeout=timeout)


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (zombies excluded)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(name))
    return pids


def _wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _training(out):
    """True once the store has a row marked running (a worker is training)."""
    try:
        db = sqlite3.connect(f"file:{out / 'runs.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0] > 0
        finally:
            db.close()
    except sqlite3.Error:
        return False


def _snapshot(out):
    return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in out.rglob("*") if p.is_file()}


def _kill_session(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ kills

def test_sigkill_leaves_no_child_and_nothing_is_written_after(tmp_path):
    out = tmp_path / "r"
    proc = _start("run", "fake", *LONG, "--jobs", "2", "--out", str(out))
    try:
        _wait(lambda: _training(out) and len(_session(proc.pid)) >= 3, 120, "two workers training")
        proc.send_signal(signal.SIGKILL)                  # the parent only, as `kill -9 $!`
        proc.wait(10)
        _wait(lambda: not _session(proc.pid), 5, "every child of the killed sweep to exit")
        before = _snapshot(out)
        time.sleep(2)
        assert _snapshot(out) == before                   # no orphan wrote into the run directory
        with RunDirLock(out, "test"):                     # the kernel dropped the dead writer's lock
            pass
    finally:
        _kill_session(proc)


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist")
                    and not os.environ.get("CI"), reason="needs Fashion-MNIST")
def test_sigkill_of_reproduce_quick_takes_the_analysis_pool_with_it(tmp_path):
    """The issue's reproduction: `normlab reproduce --quick --out D & sleep 4; kill -9 $!`
    left the analysis pool and its resource tracker writing figures into D for minutes."""
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "normlab.cli", "reproduce", "--quick", "--jobs", "2",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        # the analyses that need no training start at once: wait for their pool (> parent + 2 workers)
        _wait(lambda: len(_session(proc.pid)) >= 5 and _training(out), 120, "workers and the analysis pool")
        time.sleep(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _wait(lambda: not _session(proc.pid), 5, "the workers, the analysis pool and its resource tracker")
        before = _snapshot(out)
        time.sleep(3)
        assert _snapshot(out) == before
    finally:
        _kill_session(proc)


@pytest.mark.parametrize("target", ["parent", "group"])
def test_sigterm_is_a_clean_stop_with_a_resume_hint(tmp_path, target):
    out = tmp_path / "r"
    proc = _start("run", "fake", *LONG, "--jobs", "2", "--out", str(out))
    try:
        _wait(lambda: _training(out), 120, "training to start")
        if target == "parent":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)           # as a service manager or `timeout` does
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        assert err.splitlines()[-1] == (f"normlab: terminated (SIGTERM); finished runs are kept: "
                                        f"`normlab reproduce --resume {out}` continues")
        assert "Traceback" not in err
        _wait(lambda: not _session(proc.pid), 5, "the workers to exit")
        assert not (out / LOCK_FILE).exists() and (out / "config.json").is_file()
        with RunStore(out / "runs.sqlite", create=False) as store:
            assert store.done_hashes() == set()          # nothing finished; resume trains both runs
    finally:
        _kill_session(proc)


def test_sigterm_before_anything_is_written_says_so(tmp_path, monkeypatch, capsys, recipe):
    import normlab.reproduce as rep

    def terminated(*a, **kw):
        raise cli.Terminated()
    monkeypatch.setattr(rep, "reproduce", terminated)
    assert cli.main(["run", "fake", "--out", str(tmp_path / "r")]) == 143
    assert capsys.readouterr().err == "normlab: terminated (SIGTERM); nothing was written\n"
    assert signal.getsignal(signal.SIGTERM) is not cli._raise_terminated    # restored after main()


def test_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys, recipe):
    import normlab.reproduce as rep

    def oom(*a, **kw):
        raise MemoryError("Unable to allocate 7.6 TiB for an array with shape (1000000000000,)")
    monkeypatch.setattr(rep, "reproduce", oom)
    assert cli.main(["run", "fake", "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err == ("normlab: error: out of memory (Unable to allocate 7.6 TiB for an array "
                                       "with shape (1000000000000,)); use smaller sizes or fewer --jobs\n")


# ------------------------------------------------------------------ two writers

def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "r"
    first = _start("run", "fake", *LONG, "--jobs", "1", "--out", str(out))
    try:
        _wait(lambda: _training(out), 120, "the first writer to train")
        config = (out / "config.json").read_bytes()
        for args in (["reproduce", "--resume", str(out), "--jobs", "1"], ["report", str(out)]):
            res = _run(*args)
            assert res.returncode == 1 and res.stdout == "", res.stderr
            assert res.stderr == (f"normlab: error: {out} is in use by another normlab (pid {first.pid}, "
                                  f"`normlab run fake` since {json.loads((out / LOCK_FILE).read_text())['since']});"
                                  f" wait for it to finish or choose another --out\n")
        res = _run("run", "fake", "--num-epochs", "2", "--out", str(out))
        assert res.returncode == 1 and "already exists and is not empty" in res.stderr
        assert (out / "config.json").read_bytes() == config and not (out / "report.md").exists()
    finally:
        _kill_session(first)


def test_twins_started_together_give_one_run_directory(tmp_path):
    """The issue's reproduction: two commands on one new directory at the same moment.
    Exactly one trains; the other fails in one line; the store holds one sweep."""
    out = tmp_path / "r"
    procs = [_start("run", "fake", "--jobs", "1", "--out", str(out), "--num-epochs", str(n)) for n in (1, 2)]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 1], results
    loser = next(err for rc, err in results if rc == 1)
    assert len(loser.splitlines()) == 1 and ("in use by another normlab (pid" in loser
                                              or "already exists and is not empty" in loser), loser
    winner = 1 + [rc for rc, _ in results].index(0)
    config = json.loads((out / "config.json").read_text())
    assert config["experiments"]["fake"]["config"]["num_epochs"] == winner
    with RunStore(out / "runs.sqlite", create=False) as store:
        specs = [s for s, _ in store.results()]
    assert len(specs) == 2 and {s.solver_kwargs["num_epochs"] for s in specs} == {winner}


# ------------------------------------------------------------------ stores and configs

def _done(out):
    with RunStore(out / "runs.sqlite") as store:
        return {s.name: (r.status, r.loss_history, r.val_acc_history) for s, r in store.results()}


def test_damaged_row_is_a_named_problem_and_resume_retrains_it(recipe, tmp_path):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    good = _done(out)
    db = sqlite3.connect(out / "runs.sqlite")
    with db:
        db.execute("UPDATE runs SET result_json = json_set(result_json, '$.colour', 'red') WHERE name='none/seed=0'")
    db.close()
    res = R.rebuild(out, jobs=1)
    assert not res.ok
    problem = next(p for p in res.problems if "damaged" in p)
    assert (f"run store {out / 'runs.sqlite'}: the row of run fake/none/seed=0 is damaged (unknown key(s) "
            f"'colour' in a RunResult); `normlab reproduce --resume {out}` retrains it") in problem
    res = R.reproduce(out, resume=True, jobs=1)
    assert res.ok and res.executed == 1 and _done(out) == good


def test_invalid_json_in_a_row_names_the_file_and_the_run(recipe, tmp_path, capsys):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    db = sqlite3.connect(out / "runs.sqlite")
    with db:
        db.execute("UPDATE runs SET result_json = substr(result_json, 1, 40) WHERE name='batchnorm/seed=0'")
    db.close()
    assert cli.main(["report", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"run store {out / 'runs.sqlite'}: the row of run fake/batchnorm/seed=0 is damaged" in err
    assert "Traceback" not in err


def test_emptied_store_never_overwrites_the_report_and_resume_restores_it(recipe, tmp_path):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    good = _done(out)
    keep = {n: (out / n).read_bytes() for n in ("metrics.json", "report.md", "report.html")}
    (out / "runs.sqlite").write_bytes(b"")               # truncated to 0 bytes
    for p in out.glob("runs.sqlite-*"):
        p.unlink()
    with pytest.raises(R.RunDirError, match=r"is empty \(0 bytes\).*holds 2 run histories, so the report was "
                                            r"left as it was: `normlab reproduce --resume"):
        R.rebuild(out, jobs=1)
    assert {n: (out / n).read_bytes() for n in keep} == keep and (out / "runs.sqlite").stat().st_size == 0
    (out / "runs.sqlite").unlink()                       # a missing store: the same
    with pytest.raises(R.RunDirError, match="run histories, so the report was left as it was"):
        R.rebuild(out, jobs=1)
    assert {n: (out / n).read_bytes() for n in keep} == keep
    events = []
    res = R.reproduce(out, resume=True, jobs=1, progress=lambda e, **i: events.append((e, i)))
    assert res.ok and res.executed == 0 and _done(out) == good
    sweep = next(i for e, i in events if e == "sweep")
    assert sorted(sweep["restored"]) == ["fake/batchnorm/seed=0", "fake/none/seed=0"]
    assert json.loads((out / "metrics.json").read_text())["experiments"] == \
        json.loads(keep["metrics.json"])["experiments"]


def test_a_replaced_store_missing_rows_is_refused_by_report(recipe, tmp_path):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    with RunStore(out / "runs.sqlite") as store:
        store._conn.execute("DELETE FROM runs")
    before = (out / "report.html").read_bytes()
    with pytest.raises(R.RunDirError, match=r"2 runs \(e.g. fake/"):
        R.rebuild(out, jobs=1)
    assert (out / "report.html").read_bytes() == before


@pytest.mark.parametrize("edit, why", [
    (lambda c: c.pop("experiments"), "has no 'experiments'"),
    (lambda c: c.update(experiments=["fake"]), "has 'experiments' as a list"),
    (lambda c: c.update(experiments={}), "names no experiment"),
    (lambda c: c["experiments"]["fake"].pop("config"), "experiment 'fake' has no 'config' object"),
    (lambda c: c["experiments"].update(fake=3), "experiment 'fake' has no 'config' object"),
    (lambda c: c["experiments"]["fake"]["config"].update(num_train=1), "config of experiment 'fake' is not valid"),
    (lambda c: c["experiments"]["fake"]["config"].update(colour=1), "config of experiment 'fake' is not valid"),
])
def test_malformed_config_json_is_one_line_naming_the_file(recipe, tmp_path, capsys, edit, why):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    config = json.loads((out / "config.json").read_text())
    edit(config)
    (out / "config.json").write_text(json.dumps(config))
    before = _snapshot(out)
    for cmd in (["reproduce", "--resume", str(out), "--jobs", "1"], ["report", str(out)]):
        assert cli.main(cmd) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"normlab: error: {out / 'config.json'}") and why in err, err
        assert len(err.splitlines()) == 1 and "restore it from a backup" in err
    assert _snapshot(out) == before


def test_config_json_that_is_not_json_or_too_deep(recipe, tmp_path, capsys):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    for text in ("{", "[" * 100_000):
        (out / "config.json").write_text(text)
        assert cli.main(["report", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"normlab: error: cannot read {out / 'config.json'}") and len(err.splitlines()) == 1


def test_stale_temporaries_are_removed_under_the_lock(recipe, tmp_path, capsys):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    stale = [out / ".report.html.Zx81_qwe.tmp", out / "runs/fake/none/.seed=0.json.a1b2c3d4.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1_000_000)
    assert cli.main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    assert not any(p.exists() for p in stale)
    assert all(f"normlab: removed {p}, a temporary file left by a killed writer" in err for p in stale)


def test_store_full_during_a_sweep_is_one_line_and_keeps_what_was_stored(recipe, tmp_path, monkeypatch, capsys):
    import normlab.lab.store as store_mod
    real_put = store_mod.RunStore.put
    calls = []

    def put(self, spec, result):
        calls.append(spec.name)
        if len(calls) == 2:
            raise store_mod._write_failure(self.path, sqlite3.OperationalError("database or disk is full"))
        return real_put(self, spec, result)
    monkeypatch.setattr(store_mod.RunStore, "put", put)
    out = tmp_path / "r"
    assert cli.main(["run", "fake", "--jobs", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"normlab: error: cannot write run store {out / 'runs.sqlite'}: database or disk is full; "
                       f"the runs stored before are kept: free some disk space, then "
                       f"`normlab reproduce --resume {out}` continues")
    monkeypatch.undo()
    fake.install(monkeypatch)
    with RunStore(out / "runs.sqlite") as store:
        assert len(store.done_hashes()) == 1
    res = R.reproduce(out, resume=True, jobs=1)
    assert res.ok and res.executed == 1


# ------------------------------------------------------------------ late validation, now early

@pytest.mark.parametrize("args, why", [
    (["--seeds", str(2**63)], "seeds must be a non-empty tuple of integers in 0..9223372036854775807"),
    (["--update-rule", "nosuch"], "update_rule must be one of sgd, sgd_momentum"),
])
def test_invalid_options_are_usage_errors(tmp_path, capsys, args, why):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "bn-vs-baseline", "--quick", "--out", str(tmp_path / "r"), *args])
    assert exc.value.code == 2 and why in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, why", [
    (["--hidden-dims", "100000000"], "estimated to need"),
    (["--num-epochs", "1e30"], "estimated to take"),
    (["--num-train", "10000000"], "10000000"),
])
def test_sweeps_past_the_budget_or_the_data_are_refused_before_writing(tmp_path, capsys, args, why):
    out = tmp_path / "r"
    t0 = time.perf_counter()
    assert cli.main(["run", "bn-vs-baseline", "--quick", "--out", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and why in err, err
    assert time.perf_counter() - t0 < 60 and not out.exists()


def test_yes_starts_a_sweep_over_the_time_bound(recipe, tmp_path, monkeypatch):
    import normlab.lab.budget as budget
    monkeypatch.setattr(budget, "MAX_SECONDS", 1e-3)
    with pytest.raises(ValueError, match="pass --yes to start it anyway"):
        R.reproduce(tmp_path / "a", jobs=1)
    assert not (tmp_path / "a").exists()
    assert R.reproduce(tmp_path / "b", jobs=1, yes=True).ok


def test_a_run_spec_seed_must_fit_the_generator_and_the_store():
    from dataclasses import replace
    spec = fake.runs(fake.Config())[0]
    assert replace(spec, seed=2**63 - 1).seed == 2**63 - 1
    for bad in (2**63, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"seed must be an integer in 0\.\.2\*\*63-1"):
            replace(spec, seed=bad)
