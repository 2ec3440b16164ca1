"""ioffe-2017 (batch renormalization): the criteria on synthetic results (every verdict reachable),
missing / failed runs, the train-mode measure, the Config's validation, the runs it asks for, and the
quick config executed and analyzed end to end."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers import ioffe_2017 as io  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402

CFG = io.quick(io.Config())
MICRO = CFG.micro_batches


def _result(spec, acc, gap, status="finished"):
    task = spec.task
    evals = list(range(0, task["steps"] + 1, task["eval_every"]))
    history = [0.1] + [acc - 0.01 * (len(evals) - 1 - i) for i in range(1, len(evals))]
    error, extras = None, {"eval_set": "test", "eval_steps": evals,
                           "measure": {"train_mode_acc": acc - gap, "eval_mode_acc": acc, "samples": 300}}
    if status == "failed":
        history, error, extras = [], "Traceback: boom", {}
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0] * task["steps"],
                     val_acc_history=history, best_val_acc=max(history, default=None), iterations_per_epoch=10,
                     extras=extras, seconds=0.5, error=error)


def _done(acc, gap, drop=lambda s: False, status=lambda s: "finished") -> Runs:
    """``acc[(net, cond)]`` final accuracy and ``gap[(net, cond)]`` |train - eval|, plus a seed wiggle."""
    return Runs((s, _result(s, acc[(s.tags["net"], s.tags["cond"])] + 0.001 * s.seed,
                            gap[(s.tags["net"], s.tags["cond"])], status(s)))
                for s in io.runs(CFG) if not drop(s))


def _conds(bn, brn):
    keys = [f"batch={b}" for b in MICRO] + ["noniid"]
    return {**{("batchnorm", k): v for k, v in zip(keys, bn)}, **{("batchrenorm", k): v for k, v in zip(keys, brn)}}


@pytest.mark.parametrize("acc, gap, expected", [
    (_conds((0.5, 0.7, 0.5), (0.6, 0.75, 0.7)), _conds((0.1, 0.1, 0.1), (0.0, 0.0, 0.0)),
     {"a": "agrees", "b": "agrees", "c": "agrees"}),
    (_conds((0.5, 0.8, 0.5), (0.6, 0.75, 0.4)), _conds((0.1, 0.0, 0.1), (0.0, 0.05, 0.0)),
     {"a": "partly", "b": "disagrees", "c": "partly"}),
    (_conds((0.6, 0.8, 0.5), (0.5, 0.75, 0.4)), _conds((0.0, 0.0, 0.1), (0.1, 0.05, 0.0)),
     {"a": "disagrees", "b": "disagrees", "c": "disagrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, acc, gap, expected):
    section = io.analyze(CFG, _done(acc, gap), tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table, default=str)
    assert section.metrics["verdicts"] == {**expected, "d": "agrees"}
    assert section.metrics["criteria_inputs"]["identity_max_abs_diff"] <= 1e-12
    assert all(v in VERDICTS for v in section.metrics["verdicts"].values())
    assert "Verdicts: (a) " + expected["a"] in section.answer


def test_criteria_and_identity_not_measured():
    acc = _conds((0.5, 0.7, 0.5), (0.6, 0.75, 0.7))
    gap = _conds((0.1, 0.1, 0.1), (0.0, 0.0, 0.0))
    assert io.criteria(acc, gap, MICRO, 0.0) == {"a": [True, True], "b": [True], "c": [True, True], "d": [True]}
    assert io.criteria(acc, gap, MICRO, 1e-9)["d"] == [False]
    del acc[("batchnorm", f"batch={MICRO[0]}")], gap[("batchrenorm", "batch=4")]
    assert io.criteria(acc, gap, MICRO, None) == {"a": [None, True], "b": [True], "c": [True, None], "d": [None]}
    assert {f.verdict for f in io.findings({}, {}, MICRO, None)} == {"not measured"}
    assert io.identity_check() == 0.0


def test_missing_and_failed_runs_give_not_measured(tmp_path):
    acc, gap = _conds((0.5, 0.7, 0.5), (0.6, 0.75, 0.7)), _conds((0.1, 0.1, 0.1), (0.0, 0.0, 0.0))
    section = io.analyze(CFG, _done(acc, gap, drop=lambda s: s.tags["cond"] == "noniid"), tmp_path / "m")
    assert section.metrics["verdicts"] == {"a": "agrees", "b": "not measured", "c": "agrees", "d": "agrees"}
    assert "without a result" in section.answer
    failed = lambda s: "failed" if s.tags["net"] == "batchrenorm" and s.seed == CFG.seeds[0] else "finished"
    section = io.analyze(CFG, _done(acc, gap, status=failed), tmp_path / "f")
    assert section.metrics["verdicts"] == {"a": "not measured", "b": "not measured", "c": "not measured",
                                           "d": "agrees"}
    section = io.analyze(CFG, Runs(), tmp_path / "none")
    assert section.metrics["verdicts"]["a"] == "not measured"
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)


def test_train_mode_accuracy_restores_the_running_statistics():
    from normlab.models import FullyConnectedNet
    rng = np.random.default_rng(0)
    model = FullyConnectedNet([8], input_dim=5, num_classes=3, normalization="batchrenorm", rng_seed=0,
                              norm_param={"r_max": 3, "d_max": 5})
    X, y = rng.standard_normal((40, 5)), rng.integers(3, size=40)
    for _ in range(5):
        model.loss(X[:8], y[:8])
    before = model.state_arrays()
    m = io.train_mode_accuracy(model, {"X_test": X[:11], "y_test": y[:11]}, batch_size=4)
    assert m["samples"] == 8 and 0 <= m["train_mode_acc"] <= 1 and 0 <= m["eval_mode_acc"] <= 1
    assert all(np.array_equal(before[k], v) for k, v in model.state_arrays().items())


@pytest.mark.parametrize("field, value, match", [
    ("micro_batches", (1, 4), r"micro_batches=\(1, 4\): batch norm needs at least 2"),
    ("noniid_batch", 15, "noniid_batch=15 must be even"),
    ("steps", 0, "steps must be a positive integer, got 0"),
    ("r_max", 0.5, "r_max=0.5 must be >= 1"),
    ("warmup", (0.5, 0.2, 0.6), r"warmup=\(0.5, 0.2, 0.6\) must be fractions"),
    ("learning_rate", -1.0, "learning_rate must be a positive number, got -1.0"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(io.Config(), **{field: value})


def test_runs_follow_the_protocol():
    cfg = io.Config()
    specs = io.runs(cfg)
    assert len(specs) == 2 * 3 * 3 and len({s.spec_hash for s in specs}) == len(specs)
    for s in specs:
        assert s.task["steps"] == cfg.steps and s.task["measure"]["kwargs"] == {"batch_size": s.task["batch_size"]}
        assert s.task["batch_order"] == ("few_classes" if s.tags["cond"] == "noniid" else "iid")
        if s.tags["net"] == "batchrenorm":
            assert s.model_kwargs["norm_param"]["warmup"] == [150, 750, 450]
    assert io.SUITE == "papers" and [c.key for c in io.CLAIMS] == ["a", "b", "c", "d"]


def test_quick_config_end_to_end(tmp_path):
    start = time.perf_counter()
    specs = io.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results), {r.name: r.error for r in done.results}
    section = io.analyze(CFG, done, tmp_path)
    assert time.perf_counter() - start < 60
    assert len(section.figures) == 1 and section.figures[0].read_bytes()[:4] == b"\x89PNG"
    json.dumps(section.metrics), json.dumps(section.config), json.dumps(section.paper)
    assert all(v in VERDICTS and v != "not measured" for v in section.metrics["verdicts"].values())
    assert section.paper["url"].endswith("1702.03275") and "nan" not in section.answer.lower()
