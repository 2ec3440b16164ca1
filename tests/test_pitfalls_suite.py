"""`normlab reproduce --suite pitfalls --quick` end to end, as CI runs it: every pitfall's
section with its source, claim, criterion and verdict; metrics.json carries the verdicts."""
import json
import os
import subprocess
import sys

from normlab.experiments.papers.verdict import VERDICTS
from normlab.lab.plan import recipes, suite_names


def test_pitfalls_quick_end_to_end(tmp_path):
    names = suite_names("pitfalls")
    assert names == ["eval-mode", "momentum-convention", "running-variance", "bn-before-after-relu",
                     "bn-dropout-order", "finetune-shift", "batch-size-one"]
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "normlab.cli", "reproduce", "--suite", "pitfalls", "--quick",
                          "--jobs", "2", "--out", str(out)], capture_output=True, text=True, env=dict(os.environ),
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["experiments"]) == set(names) and metrics["missing_runs"] == 0 and not metrics["failed_runs"]
    md = (out / "report.md").read_text()
    assert md.startswith("# normlab: the everyday pitfalls of batch norm, reproduced (quick, reduced sizes)")
    assert md.count("| claim | paper | ours | criterion | verdict |") == len(names)
    for n in names:
        mod = recipes()[n]
        assert mod.SUITE == "pitfalls"
        verdicts = metrics["experiments"][n]["verdicts"]
        assert set(verdicts) == {c.key for c in mod.CLAIMS} and all(v in VERDICTS for v in verdicts.values())
        assert list((out / n).glob("*.png")), f"{n} drew no figure"
