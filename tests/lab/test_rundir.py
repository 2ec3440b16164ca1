"""The run directory at the level of normlab.lab.rundir: one writer (the lock), what a
killed writer leaves behind (stale temporaries), the checks made before the first
byte, history paths, and runs restored from their histories; the commands that use
them are tested in test_faults.py and test_reproduce.py."""
import json
import os
import signal
import subprocess
import sys

from dataclasses import replace

import pytest

import _fake_recipe as fake
from normlab._io import atomic_write
from normlab.lab.rundir import (CONFIG_FILE, CONFIG_FORMAT, LOCK_FILE, PROBE_PREFIX, RunDirBusy, RunDirError,
                                RunDirLock, check_writable, clear, has_results, history_path, is_empty, load_config,
                                open_store, refuse_not_empty, remove_stale_temporaries, restore_from_histories,
                                write_json)
from normlab.lab.runs import RunResult

HOLD = """
import sys, time
from normlab.lab.rundir import RunDirLock
lock = RunDirLock(sys.argv[1], "normlab reproduce").acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder(out):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path):
    with RunDirLock(tmp_path, "normlab run fake") as lock:
        assert lock.held
        info = json.loads((tmp_path / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "normlab run fake"
        with pytest.raises(RunDirBusy, match=rf"in use by another normlab \(pid {os.getpid()}, `normlab run fake`"):
            RunDirLock(tmp_path).acquire()        # a second open file description: flock refuses it too
    assert not lock.held and not (tmp_path / LOCK_FILE).exists()
    RunDirLock(tmp_path).acquire().release()      # free again
    lock.release()                                 # idempotent


def test_lock_held_by_another_process_and_dropped_when_it_is_killed(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(RunDirBusy) as err:
            RunDirLock(tmp_path).acquire()
        msg = str(err.value)
        assert f"pid {proc.pid}" in msg and "`normlab reproduce`" in msg and "\n" not in msg
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the kernel dropped the lock with its holder; the stale file does not block anyone
    assert (tmp_path / LOCK_FILE).exists()
    with RunDirLock(tmp_path, "normlab report"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_lock_survives_the_unlink_race(tmp_path, monkeypatch):
    """A holder that releases between our open() and our flock() unlinks the file we
    opened; the lock on that orphaned inode must not count."""
    first = RunDirLock(tmp_path).acquire()
    real_open = os.open
    calls = []

    def open_then_release(path, *a, **kw):
        fd = real_open(path, *a, **kw)
        if not calls:
            calls.append(path)
            first.release()          # unlinks the file this fd refers to
        return fd
    monkeypatch.setattr(os, "open", open_then_release)
    second = RunDirLock(tmp_path).acquire()
    monkeypatch.undo()
    try:
        assert os.path.samestat(os.fstat(second._fd), os.stat(tmp_path / LOCK_FILE))
        with pytest.raises(RunDirBusy):
            RunDirLock(tmp_path).acquire()
    finally:
        second.release()


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "runs/fake").mkdir(parents=True)
    stale = [tmp_path / ".report.html.ab3_x9Zq.tmp", tmp_path / "runs/fake/.seed=0.json.k2J8aa_1.tmp",
             tmp_path / ".normlab-write-test.Qw3rTy12"]
    keep = [tmp_path / "report.html", tmp_path / ".report.html.tmp", tmp_path / "notes.tmp",
            tmp_path / ".hidden", tmp_path / LOCK_FILE, tmp_path / "runs/fake/seed=0.json"]
    for p in stale + keep:
        p.write_bytes(b"x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


def test_the_pattern_matches_what_atomic_write_leaves(tmp_path):
    """Kill a writer inside atomic_write (after the temporary exists): the file it
    leaves is one remove_stale_temporaries recognises."""
    code = ("import os, signal, sys\nfrom normlab._io import atomic_write\n"
            "atomic_write(sys.argv[1], lambda f: (f.write(b'x' * 1000), os.kill(os.getpid(), signal.SIGKILL)))")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "report.html")])
    assert res.returncode == -signal.SIGKILL
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".report.html.")
    assert remove_stale_temporaries(tmp_path) == left and not any(tmp_path.iterdir())


def test_atomic_write_errors_name_the_file(tmp_path):
    target = tmp_path / "report.html"

    def full(f):
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match=rf"^cannot write {target}: No space left on device; free some disk space") as err:
        atomic_write(target, full)
    assert err.value.errno == 28 and not any(tmp_path.iterdir())
    with pytest.raises(OSError, match=rf"cannot write {tmp_path / 'nope/x.json'}: No such file"):
        atomic_write(tmp_path / "nope/x.json", lambda f: f.write(b"{}"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_atomic_write_on_a_full_device_names_the_file(tmp_path, monkeypatch):
    """A real ENOSPC: the bytes go to /dev/full (fsync of a full write fails on flush)."""
    import normlab.train.checkpoint as ck
    real = os.fdopen

    def to_dev_full(fd, *a, **kw):
        os.dup2(os.open("/dev/full", os.O_WRONLY), fd)
        return real(fd, *a, **kw)
    monkeypatch.setattr(ck.os, "fdopen", to_dev_full)
    with pytest.raises(OSError, match=rf"cannot write {tmp_path / 'm.json'}: No space left on device") as err:
        atomic_write(tmp_path / "m.json", lambda f: f.write(b"x" * 100_000))
    assert err.value.errno == 28
    assert not any(tmp_path.iterdir())


def test_history_paths_stay_inside_the_run_dir(tmp_path):
    spec = replace(fake.runs(fake.Config())[0], name="../../etc/pass wd")
    p = history_path(tmp_path, spec)
    assert p == tmp_path / "runs/fake/_../_../etc/pass_wd.json"
    assert tmp_path in p.parents


def test_empty_means_nothing_but_a_lock_and_write_probes(tmp_path):
    out = tmp_path / "r"
    assert is_empty(out)                                   # not there yet
    check_writable(out)
    assert out.is_dir() and is_empty(out) and not any(out.iterdir())   # the probe is gone again
    (out / LOCK_FILE).write_text("{}")
    (out / (PROBE_PREFIX + "abcdefgh")).write_text("")
    assert is_empty(out)
    refuse_not_empty(out)
    (out / "notes.txt").write_text("mine")
    assert not is_empty(out)
    with pytest.raises(RunDirError, match=rf"^{out} already exists and is not empty; pass --resume {out}"):
        refuse_not_empty(out)


def test_clear_removes_all_but_the_lock(tmp_path):
    (tmp_path / "runs/fake").mkdir(parents=True)
    for rel in ("config.json", "runs/fake/a.json", LOCK_FILE):
        (tmp_path / rel).write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    clear(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]


def test_load_config_names_what_is_wrong(tmp_path):
    with pytest.raises(RunDirError, match=rf"^{tmp_path} is not a normlab run directory \(no config.json\)$"):
        load_config(tmp_path)
    write_json(tmp_path / CONFIG_FILE, {"format": "something else"})
    with pytest.raises(RunDirError, match="is not a normlab run configuration"):
        load_config(tmp_path)
    write_json(tmp_path / CONFIG_FILE, {"format": CONFIG_FORMAT, "experiments": {}})
    assert load_config(tmp_path) == {"format": CONFIG_FORMAT, "experiments": {}}


def test_finished_runs_come_back_from_their_histories(tmp_path):
    """An emptied store is refilled from the history files of finished (or diverged)
    runs; failed runs, foreign or broken histories and runs with a row are left alone."""
    specs = fake.runs(fake.Config(normalizations=("batchnorm", "none", "layernorm", "groupnorm")))
    statuses = ("finished", "diverged", "failed", "finished")
    for spec, status in zip(specs, statuses):
        result = RunResult(spec_hash=spec.spec_hash, experiment=spec.experiment, name=spec.name, status=status,
                           loss_history=[2.3, 2.2], seconds=1.0)
        write_json(history_path(tmp_path, spec), {"spec": spec.to_dict(), "result": result.to_dict()})
    history_path(tmp_path, specs[3]).write_text("{")       # a broken history: that run is trained again
    by_hash = {s.spec_hash: s for s in specs}
    assert not has_results(tmp_path)
    with open_store(tmp_path) as store:
        assert restore_from_histories(tmp_path, store, by_hash) == ["fake/batchnorm/seed=0", "fake/none/seed=0"]
        assert store.hashes() == {specs[0].spec_hash, specs[1].spec_hash}
        assert store.get(specs[0].spec_hash).loss_history == [2.3, 2.2]
        assert restore_from_histories(tmp_path, store, by_hash) == []      # they have a row now
    assert has_results(tmp_path)
