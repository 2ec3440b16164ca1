"""bn-before-after-relu: the criterion on synthetic results (each verdict reachable), missing and failed runs,
the Config's validation, and the quick config executed and analyzed end to end."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.pitfalls import norm_position as npos  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402

CFG = npos.quick(npos.Config())


def _result(spec, acc, status="finished", extras=None):
    evals = [0, spec.task["steps"]]
    history = [] if status == "failed" else [0.1, acc]
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0] * spec.task["steps"],
                     val_acc_history=history, best_val_acc=max(history, default=None), iterations_per_epoch=10,
                     extras={"eval_set": "test", "eval_steps": evals, **(extras or {})}, seconds=0.1,
                     error="boom" if status == "failed" else None)


def _done(acc, cfg=CFG, drop=lambda s: False, status=lambda s: "finished"):
    """``acc(position, seed)``: each run's final accuracy."""
    return Runs([(s, _result(s, acc(s.tags["position"], s.seed), status(s))) for s in npos.runs(cfg) if not drop(s)])


FIVE = npos.Config(seeds=(0, 1, 2, 3, 4))
NOISE = [0.000, 0.004, -0.004, 0.002, -0.002]


@pytest.mark.parametrize("shift, expected", [(0.0, "agrees"), (0.003, "agrees"), (0.02, "disagrees")])
def test_verdict_from_synthetic_runs(tmp_path, shift, expected):
    done = _done(lambda pos, s: 0.85 + NOISE[s] + (shift if pos == "after" else 0.0), cfg=FIVE)
    section = npos.analyze(FIVE, done, tmp_path)
    assert section.metrics["verdicts"] == {"a": expected}
    diff = section.metrics["criteria_inputs"]["difference"]
    assert diff["d"] == pytest.approx(-shift, abs=1e-12)
    # SE of the difference of two means, the same noise in both groups: sqrt(2 var / 5)
    assert diff["se"] == pytest.approx(np.sqrt(2 * np.var(NOISE, ddof=1) / 5))


def test_missing_or_failed_runs_give_not_measured(tmp_path):
    only_before = _done(lambda pos, s: 0.85, cfg=FIVE, drop=lambda s: s.tags["position"] == "after")
    assert npos.analyze(FIVE, only_before, tmp_path).metrics["verdicts"] == {"a": "not measured"}
    failed = _done(lambda pos, s: 0.85, cfg=FIVE, status=lambda s: "failed" if s.seed == 3 else "finished")
    section = npos.analyze(FIVE, failed, tmp_path)
    assert section.metrics["verdicts"] == {"a": "not measured"} and "not measured" in section.answer
    empty = npos.analyze(FIVE, Runs([]), tmp_path)
    assert empty.metrics["verdicts"] == {"a": "not measured"}
    json.dumps(empty.metrics)


def test_criteria_partly_is_unreachable_with_one_check():
    assert npos.criteria({"before": [0.8, 0.81], "after": None}) == {"a": [None]}
    assert npos.verdict([True]) == "agrees" and npos.verdict([False]) == "disagrees"


@pytest.mark.parametrize("field, value, match", [
    ("seeds", (0,), "at least 2 seeds"), ("steps", 0, "steps must be a positive integer, got 0"),
    ("learning_rate", -1.0, "-1.0"), ("batch_size", 20000, "batch_size=20000"),
    ("hidden_dims", (), r"hidden_dims must be a non-empty tuple, got \(\)"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        npos.Config(**{field: value})


def test_runs_pair_the_placements_seed_by_seed():
    specs = npos.runs(npos.Config())
    assert len(specs) == 10
    assert {s.model_kwargs["norm_position"] for s in specs} == {"before", "after"}
    before = {s.seed: s for s in specs if s.tags["position"] == "before"}
    after = {s.seed: s for s in specs if s.tags["position"] == "after"}
    assert before.keys() == after.keys() == set(range(5))
    assert all(before[k].task == after[k].task for k in before)


def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = npos.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results), {r.name: r.error for r in done.results}
    section = npos.analyze(CFG, done, tmp_path)
    assert time.process_time() - start < 40
    assert section.name == npos.NAME and len(section.figures) == 1
    for png in section.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in png.with_suffix(".svg").read_text()[:2000]
    json.dumps(section.metrics), json.dumps(section.paper)
    assert section.metrics["verdicts"]["a"] in VERDICTS and section.metrics["verdicts"]["a"] != "not measured"
    assert npos.SUITE == "pitfalls" and section.paper["url"].endswith("1502.03167")
