"""The run store: round trip, strict JSON, and no partial state after a SIGKILL."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from normlab.lab.runs import RunResult, RunSpec
from normlab._io import to_json, write_json_atomic
from normlab.lab.store import DamagedRow, RunStore, StoreError


def spec(name="a", seed=0, **kw):
    return RunSpec(experiment=kw.pop("experiment", "exp"), name=name, model="fc",
                   model_kwargs={"hidden_dims": [20]}, solver_kwargs={"num_epochs": 1}, num_train=200,
                   num_val=100, num_test=100, seed=seed, **kw)


def result(s, status="finished", n=5, **kw):
    return RunResult(spec_hash=s.spec_hash, experiment=s.experiment, name=s.name, status=status,
                     loss_history=[2.3 - 0.1 * i for i in range(n)], train_acc_history=[0.1, 0.2],
                     val_acc_history=[0.1, 0.15], best_val_acc=0.15, iterations_per_epoch=n,
                     seconds=1.25, code_version="0.1.0+abc", **kw)


def test_round_trip_and_statuses(tmp_path):
    path = tmp_path / "sub" / "runs.sqlite"
    a, b, c, d = spec("a"), spec("b", seed=1), spec("c", experiment="other"), spec("d")
    with RunStore(path) as store:
        assert store.summary() == {"finished": 0, "diverged": 0, "failed": 0, "running": 0}
        ra = result(a, extras={"test_acc": 0.5, "per_class_test_acc": [0.5, float("nan")]})
        store.put(a, ra)
        store.put(b, RunResult(**{**result(b).to_dict(), "status": "diverged", "loss_history": [2.3, None],
                                  "error": "epoch 0, iteration 1: loss is nan"}))
        store.put(c, RunResult(**{**result(c).to_dict(), "status": "failed", "error": "boom"}))
        store.mark_started(d)

        got = store.get(a.spec_hash)
        assert got.to_dict() == {**ra.to_dict(), "extras": {"test_acc": 0.5, "per_class_test_acc": [0.5, None]}}
        assert store.get(d.spec_hash) is None          # running: no result yet
        assert store.get("0" * 64) is None
        assert store.done_hashes() == {a.spec_hash, b.spec_hash}
        assert store.hashes() == {a.spec_hash, b.spec_hash, c.spec_hash, d.spec_hash}   # 'running' too
        assert store.summary() == {"finished": 1, "diverged": 1, "failed": 1, "running": 1}
        assert len(store) == 4
        assert [s.name for s, _ in store.results()] == ["a", "b", "c"]
        assert [(s, r.status) for s, r in store.results("exp")] == [(a, "finished"), (b, "diverged")]
        assert store.get(b.spec_hash).loss_history == [2.3, None]

        store.put(c, result(c))                         # a redone run replaces the failed one
        store.put(d, result(d))
        assert store.summary() == {"finished": 3, "diverged": 1, "failed": 0, "running": 0}

    # Persisted, and the schema holds what `normlab report` needs without parsing JSON.
    with RunStore(path) as store:
        assert store.get(a.spec_hash).to_dict()["loss_history"] == ra.loss_history
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
    assert cols == ["spec_hash", "experiment", "name", "seed", "status", "spec_json", "result_json",
                    "started_at", "finished_at", "seconds", "code_version"]
    row = db.execute("SELECT experiment, name, seed, status, seconds, code_version, started_at <= finished_at, "
                     "spec_json FROM runs WHERE spec_hash=?", (b.spec_hash,)).fetchone()
    assert row[:7] == ("exp", "b", 1, "diverged", 1.25, "0.1.0+abc", 1)
    assert RunSpec.from_dict(json.loads(row[7])) == b
    db.close()


def test_put_validates(tmp_path):
    a, b = spec("a"), spec("b")
    with RunStore(tmp_path / "runs.sqlite") as store:
        with pytest.raises(ValueError, match="does not belong to spec 'b'"):
            store.put(b, result(a))
        with pytest.raises(ValueError, match="unknown run status 'done'"):
            store.put(a, RunResult(**{**result(a).to_dict(), "status": "done"}))
        assert len(store) == 0
    store.close()                                       # idempotent
    with pytest.raises(ValueError, match="closed"):
        store.done_hashes()


def test_not_a_store(tmp_path):
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="cannot open run store"):
        RunStore(bad)


def _damage(path, s, text):
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE runs SET result_json=? WHERE spec_hash=?", (text, s.spec_hash))
    db.close()


@pytest.mark.parametrize("damage, why", [
    (lambda d: json.dumps({**d, "colour": "red"}), r"unknown key\(s\) 'colour'"),
    (lambda d: json.dumps(d)[:-9], r"Expecting|Unterminated|delimiter"),
    (lambda d: json.dumps({**d, "status": "done"}), r"status"),
    (lambda d: json.dumps({**d, "loss_history": "oops"}), r"loss_history"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "name"}), r"name"),
    (lambda d: json.dumps([d]), r"object|dict"),
    (lambda d: "[" * 100_000, r"."),
])
def test_a_damaged_row_names_the_file_and_the_run_and_is_set_aside(tmp_path, damage, why):
    path = tmp_path / "runs.sqlite"
    a, b = spec("a"), spec("b", experiment="other")
    with RunStore(path) as store:
        store.put(a, result(a))
        store.put(b, result(b))
    _damage(path, b, damage(result(b).to_dict()))
    with RunStore(path, create=False) as store:
        with pytest.raises(DamagedRow, match=why) as err:
            store.get(b.spec_hash)
        msg = str(err.value)
        assert str(path) in msg and "run other/b" in msg and f"--resume {tmp_path}` retrains it" in msg and "\n" not in msg
        assert err.value.run == "other/b" and err.value.spec_hash == b.spec_hash
        results, damaged = store.load()
        assert set(results) == {a.spec_hash} and set(damaged) == {b.spec_hash}
        assert store.done_hashes() == {a.spec_hash}          # a resumed sweep retrains it
        assert store.hashes() == {a.spec_hash, b.spec_hash}  # a damaged row is still a row
        with pytest.raises(DamagedRow):
            store.results()
        store.put(b, result(b))                               # ... and the new result repairs the row
        assert store.get(b.spec_hash) == result(b)


def test_a_row_holding_another_runs_result_is_damaged(tmp_path):
    path = tmp_path / "runs.sqlite"
    a, b = spec("a"), spec("b")
    with RunStore(path) as store:
        store.put(a, result(a))
        store.put(b, result(b))
    _damage(path, b, to_json(result(a).to_dict()))
    with RunStore(path) as store, pytest.raises(DamagedRow, match="holds the result of run hash"):
        store.get(b.spec_hash)


def test_disk_full_is_one_line_and_keeps_the_stored_rows(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.put(spec("a"), result(spec("a")))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count={pages}")      # the file cannot grow: as a full disk
        big = spec("big")
        with pytest.raises(StoreError) as err:
            store.put(big, result(big, n=200_000))
        msg = str(err.value)
        assert msg.startswith(f"cannot write run store {path}: database or disk is full")
        assert f"free some disk space, then `normlab reproduce --resume {tmp_path}` continues" in msg
        assert "\n" not in msg and not isinstance(err.value.__cause__, sqlite3.Error)
        assert len(store) == 1 and store.get(spec("a").spec_hash) == result(spec("a"))


def test_opening_without_create_refuses_missing_empty_and_schemaless_files(tmp_path):
    path = tmp_path / "runs.sqlite"
    with pytest.raises(StoreError, match=f"cannot open run store {path}: No such file"):
        RunStore(path, create=False)
    path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"is empty \(0 bytes\)"):
        RunStore(path, create=False)
    assert path.stat().st_size == 0                          # not turned into a fresh store
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="has no run table"):
        RunStore(path, create=False)


def test_write_json_atomic(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"a": float("nan"), "b": [np.float32(1.5), np.int64(3), float("-inf")],
                             "c": np.arange(3), "d": (1, 2), "e": tmp_path})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, 3, None], "c": [0, 1, 2], "d": [1, 2],
                                            "e": str(tmp_path)}
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    with pytest.raises(TypeError, match=r"cannot store object at \$\.x\[1\]"):
        write_json_atomic(path, {"x": [1, object()]})
    with pytest.raises(TypeError, match="keys must be strings"):
        to_json({1: 2})
    assert json.loads(path.read_text())["d"] == [1, 2]  # the failed writes left the old file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]   # and no temporary file


_WRITER = textwrap.dedent("""
    import sys
    from normlab.lab.runs import RunResult, RunSpec
    from normlab.lab.store import RunStore
    store = RunStore(sys.argv[1])
    first, n = int(sys.argv[2]), int(sys.argv[3])
    for i in range(first, 10**6):
        s = RunSpec(experiment="kill", name=f"run{i}", model="fc", seed=i)
        # Big rows (n floats each) so that a kill lands inside a write often.
        r = RunResult(spec_hash=s.spec_hash, experiment="kill", name=s.name, status="finished",
                      loss_history=[float(i)] * n, iterations_per_epoch=n)
        store.put(s, r)
        print(i, flush=True)
""")


def _check_complete(store, n):
    rows = store.results("kill")
    for s, r in rows:
        assert r.spec_hash == s.spec_hash and r.name == s.name
        assert r.loss_history == [float(s.seed)] * n and r.iterations_per_epoch == n
    return {s.seed for s, _ in rows}


def test_writer_killed_mid_write_leaves_complete_rows(tmp_path):
    """SIGKILL a process at several moments inside a put (encoding, SQLite
    write, commit) while this process reads: every row any reader sees is complete,
    the database passes its integrity check, and no acknowledged write is lost."""
    path, n = tmp_path / "runs.sqlite", 20_000
    RunStore(path).close()
    acknowledged = []
    with RunStore(path) as reader:
        for offset in (0.0, 0.012, 0.025, 0.037, 0.05, 0.062):   # one put takes ~70 ms here
            first = len(acknowledged)
            proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(first), str(n)],
                                    stdout=subprocess.PIPE, text=True)
            try:
                acknowledged.append(int(proc.stdout.readline()))   # it is writing: kill it a little later
                _check_complete(reader, n)
                time.sleep(offset)
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
            assert proc.returncode == -signal.SIGKILL
            acknowledged += [int(i) for i in out.split()]
            with RunStore(path) as store:
                assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                seeds = _check_complete(store, n)
            assert set(acknowledged) <= seeds <= set(acknowledged) | {max(acknowledged) + 1}
            acknowledged = sorted(seeds)
    assert len(acknowledged) >= 6


_JSON_WRITER = textwrap.dedent("""
    import sys
    from normlab._io import write_json_atomic
    for i in range(10**6):
        write_json_atomic(sys.argv[1], {"i": i, "payload": [i] * 200_000})
        print(i, flush=True)
""")


def test_json_writer_killed_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "metrics.json"
    proc = subprocess.Popen([sys.executable, "-c", _JSON_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    seen = set()
    try:
        deadline = time.monotonic() + 60   # until it replaced the file a few times, however busy the machine
        while len(seen) < 4 and time.monotonic() < deadline:
            if path.exists():
                obj = json.loads(path.read_text())   # a partial file would not parse
                assert obj["payload"] == [obj["i"]] * 200_000
                seen.add(obj["i"])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    obj = json.loads(path.read_text())
    assert obj["payload"] == [obj["i"]] * 200_000
    assert len(seen) >= 4, "the writer never replaced the file; the test proved nothing"
