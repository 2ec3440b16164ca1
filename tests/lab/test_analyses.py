"""The analysis processes (normlab.lab.analyses) and what the orchestration imports."""
import subprocess
import sys

import _fake_recipe as fake
from normlab.lab.analyses import Analyses
from normlab.lab.plan import Plan


def _python(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_the_orchestration_imports_no_numpy():
    """normlab.cli pins the BLAS threads before NumPy is imported; the modules it and the
    analysis processes import first must not import it themselves."""
    code = ("import sys, normlab.cli, normlab.reproduce, normlab.lab.analyses, normlab.lab.plan, "
            "normlab.lab.configs, normlab.lab.rundir; print('numpy' in sys.modules)")
    assert _python(code) == "False"


def test_an_analysis_process_pins_blas_before_it_imports_numpy():
    code = ("import os, sys\n"
            "import normlab.lab.analyses as a\n"
            "real = a.pin_blas_threads\n"
            "seen = []\n"
            "a.pin_blas_threads = lambda: seen.append('numpy' in sys.modules) or real()\n"
            "a._pin_child(os.getppid())\n"
            "print(seen, os.environ['OPENBLAS_NUM_THREADS'])\n")
    assert _python(code) == "[False] 1"


def test_analyses_in_this_process_follow_course_order(tmp_path):
    plans = [Plan("fake", fake, fake.Config(), []), Plan("fake-again", fake, fake.Config(), [])]
    events = []
    analyses = Analyses(tmp_path, plans, jobs=1)
    analyses.start_early()                      # jobs == 1: nothing starts before the sweep
    assert analyses.pool is None and analyses.futures == {}
    sections = analyses.collect({}, [], lambda e, **i: events.append((i["index"], i["name"])))
    assert [s.answer for s in sections] == ["0 of 0 runs finished."] * 2
    assert events == [(1, "fake"), (2, "fake-again")] and (tmp_path / "fake-again/fake.png").is_file()
    assert sections[0].config == {"hidden_dims": [20], "num_train": 200, "num_epochs": 1, "learning_rate": 1e-3,
                                  "normalizations": ["batchnorm", "none"], "dataset": "fashion-mnist",
                                  "note": None, "fail": False}        # filled in from the Config
