"""Smoke tests of benchmarks/run.py in --quick mode: every row prints, exit 0.

No timing assertions: the numbers depend on the machine and its load.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
ROW_IDS = ["1a", "1b", "1c", "1d", "2", "3a", "3b", "4", "5"]


def run_bench(*args, hide_torch=False):
    """Run the benchmark in a child process; hide_torch makes `import torch` fail."""
    if hide_torch:
        code = ("import runpy, sys; sys.modules['torch'] = None; "
                f"sys.argv = [{str(RUN)!r}] + sys.argv[1:]; runpy.run_path({str(RUN)!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, str(RUN), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"})


def table_rows(stdout: str) -> dict[str, str]:
    """Table lines keyed by their row id (first column)."""
    first = {line: line.split()[0] for line in stdout.splitlines() if line.strip()}
    return {rid: line for line, rid in first.items() if rid in ROW_IDS}


def test_quick_run_prints_every_row_and_writes_json(tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    proc = run_bench("--quick", "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert sorted(rows) == sorted(ROW_IDS), proc.stdout
    assert all(line.split()[-1] in ("yes", "NO") for line in rows.values()), proc.stdout
    assert "numpy" in proc.stdout and torch.__version__ in proc.stdout
    assert "OPENBLAS_NUM_THREADS=1" in proc.stdout and "5 arrays" in proc.stdout

    payload = json.loads(out.read_text())
    assert [r["id"] for r in payload["rows"]] == ROW_IDS
    assert payload["environment"]["torch_threads"] == 1
    assert all(r["ratio"] > 0 and isinstance(r["met"], bool) for r in payload["rows"])
    assert not list(tmp_path.glob(".bench-*"))  # no temporary file left behind


def test_without_torch_the_torch_columns_say_skipped():
    proc = run_bench("--quick", "--threads", "1", hide_torch=True)
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert sorted(rows) == sorted(ROW_IDS), proc.stdout
    for rid in ("1b", "1d", "3b", "4", "5"):
        assert "skipped (torch not installed)" in rows[rid]
    for rid in ("1a", "1c", "2", "3a"):
        assert "skipped" not in rows[rid]


def test_row_selection_and_bad_arguments():
    proc = run_bench("--quick", "--no-torch", "--rows", "2,conv")
    assert proc.returncode == 0, proc.stderr
    assert sorted(table_rows(proc.stdout)) == ["2", "3a", "3b"]

    bad = run_bench("--rows", "bogus")
    assert bad.returncode != 0 and "unknown row 'bogus'" in bad.stderr
