"""Orchestration: the run directory's layout, refusals that leave old files intact,
resume after an interruption (bit-identical to an uninterrupted run), rebuilding
the report without training, configs round-tripping through config.json."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import _fake_recipe as fake
from normlab import _threads
from normlab import reproduce as R
from normlab.data.errors import DatasetNotFoundError
from normlab.lab.store import RunStore


@pytest.fixture
def recipe(monkeypatch):
    fake.install(monkeypatch)
    return fake


def _histories(out):
    with RunStore(out / "runs.sqlite") as store:
        return {s.name: (r.status, r.loss_history, r.val_acc_history) for s, r in store.results()}


def test_reproduce_writes_the_whole_run_directory(recipe, tmp_path):
    out = tmp_path / "run"
    events = []
    res = R.reproduce(out, jobs=1, progress=lambda e, **i: events.append(e))
    assert res.ok and res.total_runs == 2 and res.executed == 2, res.problems
    for rel in ("config.json", "runs.sqlite", "metrics.json", "report.md", "report.html", "fake/fake.png",
                "runs/fake/batchnorm/seed=0.json", "runs/fake/none/seed=0.json"):
        assert (out / rel).is_file(), rel
    config = json.loads((out / "config.json").read_text())
    assert config["experiments"]["fake"]["config"]["hidden_dims"] == [20]
    assert config["datasets"] == ["fashion-mnist"] and config["jobs"] == 1 and config["code_version"]
    hist = json.loads((out / "runs/fake/batchnorm/seed=0.json").read_text())
    assert hist["spec"]["name"] == "batchnorm/seed=0" and hist["result"]["status"] == "finished"
    assert len(hist["result"]["loss_history"]) == 4         # 200 images / batch 50, one epoch
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiments"]["fake"]["finished"] == 2 and metrics["failed_runs"] == []
    assert "2 of 2 runs finished." in (out / "report.md").read_text()
    assert events[0] == "sweep" and events.count("run") == 2 and events[-1] == "report"


def test_overrides_and_quick_resolve_into_config_json(recipe, tmp_path):
    res = R.reproduce(tmp_path / "r", jobs=1, overrides={"fake": {"hidden_dims": "12,8", "note": "none",
                                                                   "normalizations": "batchnorm"}})
    cfg = json.loads((tmp_path / "r/config.json").read_text())["experiments"]["fake"]["config"]
    assert cfg["hidden_dims"] == [12, 8] and cfg["note"] is None and res.total_runs == 1


def test_unknown_experiment_names_the_valid_ones(recipe, tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope'; expected one of: fake"):
        R.reproduce(tmp_path / "r", names=["nope"])
    assert not (tmp_path / "r").exists()


def test_non_empty_out_dir_is_refused_and_left_alone(recipe, tmp_path):
    (tmp_path / "old.txt").write_text("old")
    with pytest.raises(R.RunDirError, match="not empty; pass --resume"):
        R.reproduce(tmp_path, jobs=1)
    assert os.listdir(tmp_path) == ["old.txt"] and (tmp_path / "old.txt").read_text() == "old"


def test_out_dir_under_a_regular_file_fails_cleanly(recipe, tmp_path):
    """chmod does not stop root (these tests run as root), a path under a regular file
    stops everyone: mkdir fails with ENOTDIR."""
    (tmp_path / "file.txt").write_text("keep")
    with pytest.raises(R.RunDirError, match=r"cannot write to .*file.txt/sub: Not a directory; choose another"):
        R.reproduce(tmp_path / "file.txt" / "sub", jobs=1)
    assert (tmp_path / "file.txt").read_text() == "keep" and os.listdir(tmp_path) == ["file.txt"]


def _unshare_ok():
    return shutil.which("unshare") and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_ok(), reason="needs user+mount namespaces (unshare -rm)")
def test_read_only_run_dir_is_refused_and_old_files_intact(recipe, tmp_path):
    """A real unwritable directory even for root: a read-only bind mount in a private
    mount namespace. `report` and `reproduce --resume` on it fail in one line, exit 1,
    and every old file is byte-for-byte what it was."""
    out = tmp_path / "run"
    R.reproduce(out, jobs=1)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for cmd in (["report", str(out)], ["reproduce", "--resume", str(out)], ["run", "fake", "--out", str(out / "new")]):
        script = fake.BOOT + f"sys.exit(main({cmd!r}))"
        sh = (f"mount --bind {out} {out} && mount -o remount,bind,ro {out} && "
              f"exec {sys.executable} -c \"$0\"")
        res = subprocess.run(["unshare", "-rm", "sh", "-c", sh, script], capture_output=True, text=True)
        assert res.returncode == 1, (cmd, res.stderr)
        assert res.stderr.startswith(f"normlab: error: cannot write to {out}") and "Read-only file system" in res.stderr
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_missing_dataset_is_reported_before_anything_is_written(recipe, tmp_path, monkeypatch):
    import normlab.data.locate as locate
    monkeypatch.setattr(locate, "SYSTEM_DIRS", ())
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="normlab data fetch fashion-mnist"):
        R.reproduce(tmp_path / "r", jobs=1)
    assert not (tmp_path / "r").exists()


def test_interrupted_sweep_resumes_and_matches_an_uninterrupted_run(recipe, tmp_path):
    full = tmp_path / "full"
    R.reproduce(full, jobs=1)

    part = tmp_path / "part"

    def stop_after_first(event, **info):
        if event == "run":
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        R.reproduce(part, jobs=1, progress=stop_after_first)
    with RunStore(part / "runs.sqlite") as store:
        assert len(store.done_hashes()) == 1
    assert not (part / "report.html").exists()
    with pytest.raises(ValueError, match="reuses the run directory's own configuration"):
        R.reproduce(part, resume=True, quick=True)
    res = R.reproduce(part, resume=True, jobs=1)
    assert res.ok and res.executed == 1 and res.total_runs == 2
    assert _histories(part) == _histories(full)          # bit for bit, across processes and the interruption
    assert json.loads((part / "config.json").read_text())["invocations"][0]["jobs"] == 1


def test_resume_counts_what_is_done_once(recipe, tmp_path):
    """One "sweep" event with the count from the store; the "run" events go on counting
    from the runs already done; failed runs are counted as to do."""
    part = tmp_path / "part"

    def stop_after_first(event, **info):
        if event == "run":
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        R.reproduce(part, jobs=1, progress=stop_after_first)
    events = []
    res = R.reproduce(part, resume=True, jobs=1, progress=lambda e, **i: events.append((e, i)))
    sweeps = [i for e, i in events if e == "sweep"]
    assert [(i["total"], i["todo"]) for i in sweeps] == [(2, 1)] and res.executed == 1
    assert [(i["done"], i["total"]) for e, i in events if e == "run"] == [(2, 2)]

    failed = tmp_path / "failed"
    R.reproduce(failed, jobs=1, overrides={"fake": {"fail": True}})
    events.clear()
    res = R.reproduce(failed, resume=True, jobs=1, progress=lambda e, **i: events.append((e, i)))
    assert [(i["total"], i["todo"]) for e, i in events if e == "sweep"] == [(2, 2)] and res.executed == 2
    assert [(i["done"], i["total"]) for e, i in events if e == "run"] == [(1, 2), (2, 2)]


def test_the_store_is_read_once_and_the_analyses_get_the_sweeps_results(recipe, tmp_path, monkeypatch):
    """What is done is counted from one read of the store; the results the sweep returns go
    to the analyses as they are (no second read), and equal what the store holds."""
    import normlab.lab.runs as runs
    import normlab.lab.store as store_mod
    real_load, real_recipe_results = store_mod.RunStore.load, runs.recipe_results
    loads, given = [], []

    def load(self, *a, **kw):
        loads.append(a)
        return real_load(self, *a, **kw)

    def recipe_results(specs, results):
        given.append(dict(results))
        return real_recipe_results(specs, results)
    monkeypatch.setattr(store_mod.RunStore, "load", load)
    monkeypatch.setattr(runs, "recipe_results", recipe_results)
    out = tmp_path / "r"
    assert R.reproduce(out, jobs=1).ok
    assert len(loads) == 1 and len(given) == 1
    with RunStore(out / "runs.sqlite") as store:
        stored, damaged = real_load(store)
    assert given[0] == stored and len(stored) == 2 and not damaged


def test_resume_of_a_completed_dir_trains_nothing(recipe, tmp_path, monkeypatch):
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    (out / "report.html").unlink()
    import normlab.lab.sweep as sweep
    monkeypatch.setattr(sweep, "execute", lambda spec: pytest.fail("trained on resume"))
    res = R.reproduce(out, resume=True, jobs=2)
    assert res.ok and res.executed == 0 and (out / "report.html").is_file()


def test_rebuild_rewrites_the_report_from_the_store_without_training(recipe, tmp_path, monkeypatch):
    out = tmp_path / "r"
    first = R.reproduce(out, jobs=1)
    shutil.rmtree(out / "fake")
    for name in ("report.md", "report.html", "metrics.json"):
        (out / name).unlink()
    import normlab.lab.sweep as sweep
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: pytest.fail("trained on rebuild"))
    res = R.rebuild(out)
    assert res.ok and res.executed == 0 and res.metrics["experiments"] == first.metrics["experiments"]
    assert (out / "fake/fake.png").is_file() and "2 of 2 runs finished." in (out / "report.html").read_text()


def test_rebuild_of_an_incomplete_or_foreign_dir(recipe, tmp_path):
    with pytest.raises(R.RunDirError, match="not a normlab run directory"):
        R.rebuild(tmp_path)
    out = tmp_path / "r"
    R.reproduce(out, jobs=1)
    with RunStore(out / "runs.sqlite") as store:       # as a sweep interrupted before that run
        store._conn.execute("DELETE FROM runs WHERE name='none/seed=0'")
    (out / "runs/fake/none/seed=0.json").unlink()
    res = R.rebuild(out)
    assert not res.ok and "1 of 2 training runs have no result" in res.problems[0]
    assert "--resume" in (out / "report.md").read_text()


def test_failed_runs_and_analysis_errors_are_problems_not_crashes(recipe, tmp_path, monkeypatch):
    res = R.reproduce(tmp_path / "r", jobs=1, overrides={"fake": {"fail": True}})
    assert not res.ok and len(res.failed) == 2
    assert any("run fake/batchnorm/seed=0 failed: TypeError" in p for p in res.problems)
    monkeypatch.setattr(fake, "analyze", lambda *a: 1 / 0)
    res = R.rebuild(tmp_path / "r", jobs=1)         # in this process, where the patch applies
    assert any("analysis of fake failed: ZeroDivisionError" in p for p in res.problems)
    assert "Not available: the analysis failed" in (tmp_path / "r/report.md").read_text()


def test_pin_blas_threads(monkeypatch):
    for v in _threads.THREAD_VARS:
        monkeypatch.setenv(v, "4")
    _threads.pin_blas_threads()
    assert all(os.environ[v] == "1" for v in _threads.THREAD_VARS)
    code = "import normlab.cli, sys, os; normlab.cli.pin = __import__('normlab._threads')._threads.pin_blas_threads(); print(normlab.cli.pin)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "True"        # normlab.cli imports no NumPy: pinning still takes effect
