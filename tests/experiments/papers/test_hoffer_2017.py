"""hoffer-2017 (ghost batch norm; Summers & Dinneen's example weighing): the criteria on synthetic
results (every verdict reachable), missing / failed runs, the weighing measure (alpha = 0 is test mode),
the Config's validation, the runs, and the quick config executed and analyzed end to end."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers import hoffer_2017 as ho  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402

CFG = ho.quick(ho.Config())


def _result(spec, acc, weighted=None, status="finished"):
    task = spec.task
    evals = list(range(0, task["steps"] + 1, task["eval_every"]))
    history = [0.1] + [acc] * (len(evals) - 1)
    extras = {"eval_set": "test", "eval_steps": evals}
    if spec.tags["cond"] == "weighing":
        extras["measure"] = {"alphas": [0.0, 0.25], "val_acc": [acc, weighted], "test_acc": [acc, weighted],
                             "chosen_alpha": 0.25, "acc_weighted": weighted, "acc_population": acc}
    error = None
    if status == "failed":
        history, extras, error = [], {}, "Traceback: boom"
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0] * task["steps"],
                     val_acc_history=history, best_val_acc=max(history, default=None),
                     iterations_per_epoch=task["eval_every"], extras=extras, seconds=0.5, error=error)


def _done(small, large, ghost, pop, weighted, drop=lambda s: False, status=lambda s: "finished") -> Runs:
    acc = {"small": small, "large": large, "ghost": ghost, "weighing": pop}
    return Runs((s, _result(s, acc[s.tags["cond"]] + 0.001 * s.seed, weighted + 0.001 * s.seed, status(s)))
                for s in ho.runs(CFG) if not drop(s))


@pytest.mark.parametrize("accs, expected", [
    ((0.85, 0.82, 0.845, 0.75, 0.76), {"a": "agrees", "b": "agrees"}),
    ((0.85, 0.82, 0.83, 0.75, 0.74), {"a": "partly", "b": "disagrees"}),
    ((0.85, 0.83, 0.82, 0.75, 0.75), {"a": "disagrees", "b": "agrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, accs, expected):
    section = ho.analyze(CFG, _done(*accs), tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table, default=str)
    assert section.metrics["verdicts"] == expected
    assert f"Verdicts: (a) {expected['a']}; (b) {expected['b']}." in section.answer


def test_criteria_tolerance_and_not_measured(tmp_path):
    assert ho.criteria({"small": 0.85, "large": 0.8, "ghost": 0.8401}) == {"a": [True, True], "b": [None]}
    assert ho.criteria({"small": 0.85, "large": 0.8, "ghost": 0.8399})["a"] == [True, False]
    section = ho.analyze(CFG, _done(0.85, 0.82, 0.845, 0.75, 0.76, drop=lambda s: s.tags["cond"] == "weighing"),
                         tmp_path / "m")
    assert section.metrics["verdicts"] == {"a": "agrees", "b": "not measured"}
    failed = lambda s: "failed" if s.tags["cond"] == "ghost" and s.seed == CFG.seeds[0] else "finished"
    section = ho.analyze(CFG, _done(0.85, 0.82, 0.845, 0.75, 0.76, status=failed), tmp_path / "f")
    assert section.metrics["verdicts"] == {"a": "not measured", "b": "agrees"} and "failed" in section.answer
    section = ho.analyze(CFG, Runs(), tmp_path / "none")
    assert set(section.metrics["verdicts"].values()) == {"not measured"}
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)


def test_weighing_with_alpha_zero_is_test_mode_and_alpha_moves_it():
    from normlab.models import FullyConnectedNet
    rng = np.random.default_rng(0)
    model = FullyConnectedNet([8, 6], input_dim=5, num_classes=3, normalization="batchnorm", dtype=np.float64,
                              rng_seed=0)
    X, y = rng.standard_normal((40, 5)) + 1, rng.integers(3, size=40)
    for _ in range(5):
        model.loss(X[:8], y[:8])
    np.testing.assert_allclose(ho.weighted_scores(model, X, 0.0), model.loss(X), rtol=1e-10, atol=1e-12)
    assert not np.allclose(ho.weighted_scores(model, X, 0.25), model.loss(X))
    m = ho.example_weighing(model, {"X_val": X[:20], "y_val": y[:20], "X_test": X[20:], "y_test": y[20:]},
                            [0.0, 0.25])
    assert m["chosen_alpha"] in (0.0, 0.25) and m["acc_population"] == m["test_acc"][0]


@pytest.mark.parametrize("field, value, match", [
    ("large_batch", 1000, "large_batch=1000 must be a multiple of small_batch=64"),
    ("large_batch", 16384, "large_batch=16384 exceeds num_train=8192"),
    ("alphas", (0.1, 0.2), r"alphas=\(0.1, 0.2\) must lie in \[0, 1\) and include 0"),
    ("weighing_batch", 1, "weighing_batch=1 must be >= 2"),
    ("num_epochs", 0, "num_epochs must be a positive integer, got 0"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(ho.Config(), **{field: value})


def test_runs_scale_the_learning_rate_by_the_square_root_and_keep_the_epochs():
    cfg = ho.Config()
    specs = {s.name: s for s in ho.runs(cfg)}
    assert len(specs) == 4 * 3
    small, large, ghost = (specs[f"{c}/seed=0"] for c in ho.CONDS)
    assert large.task["optim_config"]["learning_rate"] == pytest.approx(0.04)
    assert small.task["steps"] * cfg.small_batch == large.task["steps"] * cfg.large_batch == 6 * 8192
    assert ghost.model_kwargs["norm_param"] == {"ghost_size": 64} and ghost.task == large.task
    assert specs["weighing/seed=0"].num_val == cfg.num_val and ho.SUITE == "papers"


def test_quick_config_end_to_end(tmp_path):
    start = time.perf_counter()
    specs = ho.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results), {r.name: r.error for r in done.results}
    section = ho.analyze(CFG, done, tmp_path)
    assert time.perf_counter() - start < 60
    assert len(section.figures) == 1 and section.figures[0].read_bytes()[:4] == b"\x89PNG"
    json.dumps(section.metrics), json.dumps(section.config), json.dumps(section.paper)
    assert all(v in VERDICTS and v != "not measured" for v in section.metrics["verdicts"].values())
    assert section.paper["url"].endswith("1705.08741") and "nan" not in section.answer.lower()
