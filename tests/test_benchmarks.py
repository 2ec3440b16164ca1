"""Smoke tests of benchmarks/run.py in --quick mode: every row prints, exit 0.

No timing assertions: the numbers depend on the machine and its load.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
RUN = BENCH / "run.py"
ROW_IDS = ["1a", "1b", "1c", "1d", "1e", "1f", "1g", "2", "3a", "3b", "4", "5", "6a", "6b", "6c", "6d", "7", "8"]
TORCH_ROWS = ["1a", "1b", "1d", "1f", "3b", "4", "5", "6a", "6b", "6c", "6d", "7"]
OTHER_ROWS = ["1c", "1e", "1g", "2", "3a", "8"]   # floor, staged, naive, the 94 s baseline
ONE_BACKEND_ROWS = ["8"]                          # reproduce runs on the default backend only


def run_bench(*args, hide_torch=False, run=RUN, env=None):
    """Run the benchmark in a child process; hide_torch makes `import torch` fail."""
    if hide_torch:
        code = ("import runpy, sys; sys.modules['torch'] = None; "
                f"sys.argv = [{str(run)!r}] + sys.argv[1:]; runpy.run_path({str(run)!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, str(run), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning", **(env or {})})


def table_rows(stdout: str) -> dict[str, str]:
    """Table lines keyed by their row id (first column)."""
    first = {line: line.split()[0] for line in stdout.splitlines() if line.strip()}
    return {rid: line for line, rid in first.items() if rid in ROW_IDS}


def test_quick_run_prints_every_row_and_writes_json(tmp_path):
    torch = pytest.importorskip("torch")
    numba = pytest.importorskip("numba")
    out = tmp_path / "bench.json"
    proc = run_bench("--quick", "--threads", "1", "--json", str(out), env={"NORMLAB_BACKEND": ""})
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert sorted(rows) == sorted(ROW_IDS), proc.stdout
    assert all(line.split()[-1] in ("yes", "NO") for line in rows.values()), proc.stdout
    assert "numpy" in proc.stdout and torch.__version__ in proc.stdout and f"numba {numba.__version__}" in proc.stdout
    assert "backend.active() = numba" in proc.stdout and "targets judged on numba" in proc.stdout
    assert "kernel_threads()=1" in proc.stdout and "NORMLAB_NUM_THREADS=1" in proc.stdout
    assert "OPENBLAS_NUM_THREADS=1" in proc.stdout and "5 arrays" in proc.stdout
    assert "allclose" in proc.stdout and "NORMLAB_BACKEND=numpy" in proc.stdout  # the notes

    payload = json.loads(out.read_text())
    env = payload["environment"]
    assert [r["id"] for r in payload["rows"]] == ROW_IDS
    assert env["torch_threads"] == 1 and env["kernel_threads"] == 1 and env["backends"] == ["numba", "numpy"]
    assert env["numba"] == numba.__version__ and env["judged_on"] == "numba"
    for r in payload["rows"]:
        assert r["ratio"] > 0 and isinstance(r["met"], bool) and r["met_on"] == "numba", r
        assert r["ratio"] == r["ratios"]["numba"]
        backends = ["numba"] if r["id"] in ONE_BACKEND_ROWS else ["numba", "numpy"]
        assert sorted(r["normlab_s"]) == backends and all(r["normlab_s"][b] > 0 for b in backends), r
    assert not list(tmp_path.glob(".bench-*"))  # no temporary file left behind


def test_without_torch_the_torch_columns_say_skipped():
    proc = run_bench("--quick", "--threads", "1", hide_torch=True)
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert sorted(rows) == sorted(ROW_IDS), proc.stdout
    for rid in TORCH_ROWS:
        assert "skipped (torch not installed)" in rows[rid]
    for rid in OTHER_ROWS:
        assert "skipped" not in rows[rid] and rows[rid].split()[-1] in ("yes", "NO")


def test_numpy_backend_only_when_asked(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_bench("--quick", "--no-torch", "--rows", "bn,2,net", "--json", str(out),
                     env={"NORMLAB_BACKEND": "numpy"})
    assert proc.returncode == 0, proc.stderr
    assert "targets judged on numpy (NORMLAB_BACKEND=numpy)" in proc.stdout
    payload = json.loads(out.read_text())
    assert payload["environment"]["backends"] == ["numpy"]
    for r in payload["rows"]:
        assert list(r["normlab_s"]) == ["numpy"] and r["met_on"] == "numpy"
    assert all(isinstance(r["met"], bool) for r in payload["rows"] if not r["skipped"])


def test_row_selection_and_bad_arguments():
    proc = run_bench("--quick", "--no-torch", "--rows", "2,conv")
    assert proc.returncode == 0, proc.stderr
    assert sorted(table_rows(proc.stdout)) == ["2", "3a", "3b"]

    bad = run_bench("--rows", "bogus")
    assert bad.returncode != 0 and "unknown row 'bogus'" in bad.stderr


def test_a_missing_mlp_epoch_is_an_error_row_not_a_crash(tmp_path):
    """benchmarks/ without mlp_epoch.py: row 7 reports the error, the other rows still run, exit 1."""
    for f in BENCH.glob("*.py"):
        if f.name != "mlp_epoch.py":
            shutil.copy(f, tmp_path / f.name)
    proc = run_bench("--quick", "--no-torch", "--rows", "mlp,bn-alt", run=tmp_path / "run.py")
    assert proc.returncode == 1, proc.stderr
    rows = table_rows(proc.stdout)
    assert sorted(rows) == ["2", "7"], proc.stdout
    assert "error:" in rows["7"] and "mlp_epoch" in rows["7"]
    assert rows["2"].split()[-1] in ("yes", "NO")
