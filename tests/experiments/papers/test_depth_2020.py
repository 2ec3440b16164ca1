"""depth-2020 (De & Smith 2020; Zhang et al. 2019): the criteria on synthetic numbers (every verdict
reachable), diverged / failed / missing runs, the Config's validation, and the quick config executed
and analyzed end to end."""
from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers import depth_2020 as dp  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS, verdict  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs  # noqa: E402

CFG = dp.quick(dp.Config())
LRS = (0.01, 0.04, 0.16)


def _acc(deep=None, shallow=None):
    """``acc[(depth, variant)] = {lr: acc}`` at depths 32 and 128; defaults: the papers' picture (plain
    at chance, SkipInit and Fixup near BN at their best rate, BN best at the largest rate)."""
    deep = deep or {"plain": (0.1, 0.1, 0.1), "batchnorm": (0.70, 0.75, 0.80), "skipinit": (0.72, 0.79, 0.1),
                    "fixup": (0.74, 0.78, 0.60)}
    shallow = shallow or deep
    return {**{(128, v): dict(zip(LRS, a)) for v, a in deep.items()},
            **{(32, v): dict(zip(LRS, a)) for v, a in shallow.items()}}


VAR = {("batchnorm", 32): 33.0, ("batchnorm", 128): 129.0, ("plain", 32): 2.0 ** 50, ("plain", 128): 2.0 ** 200}


def _verdicts(acc, var=VAR):
    checks = dp.criteria(acc, var, 32, 128)
    return {k: verdict(v) for k, v in checks.items()}


def test_the_papers_picture_agrees():
    assert _verdicts(_acc()) == {"a": "agrees", "b": "agrees", "c": "agrees"}


def test_partly_and_disagrees():
    # plain trains as well as BN (a: 2 of 3); BN's variance grows 10x (b: 1 of 2); BN best at a smaller
    # rate than SkipInit but not Fixup (c: 1 of 2)
    deep = {"plain": (0.78, 0.8, 0.1), "batchnorm": (0.70, 0.80, 0.1), "skipinit": (0.72, 0.79, 0.78),
            "fixup": (0.80, 0.78, 0.60)}
    shallow = {"plain": (0.1,) * 3, "batchnorm": (0.70, 0.80, 0.1), "skipinit": (0.1, 0.5, 0.8),
               "fixup": (0.8, 0.7, 0.1)}
    var = {**VAR, ("batchnorm", 128): 330.0}
    assert _verdicts(_acc(deep, shallow), var) == {"a": "partly", "b": "partly", "c": "partly"}
    # plain trains; SkipInit and Fixup at chance; variance flat with BN, slow without; BN's best rate smallest
    deep = {"plain": (0.8, 0.8, 0.8), "batchnorm": (0.80, 0.1, 0.1), "skipinit": (0.1, 0.1, 0.1),
            "fixup": (0.1, 0.1, 0.1)}
    shallow = {"plain": (0.1,) * 3, "batchnorm": (0.8, 0.1, 0.1), "skipinit": (0.1, 0.8, 0.1),
               "fixup": (0.1, 0.1, 0.8)}
    var = {("batchnorm", 32): 10.0, ("batchnorm", 128): 10.5, ("plain", 32): 1.0, ("plain", 128): 2.0 ** 10}
    assert _verdicts(_acc(deep, shallow), var) == {"a": "disagrees", "b": "disagrees", "c": "disagrees"}


def test_unmeasured_conditions():
    acc = _acc()
    acc[(128, "batchnorm")][0.04] = None          # one rate of BN missing: no best rate of BN
    acc[(32, "batchnorm")][0.16] = None
    assert _verdicts(acc, {}) == {"a": "not measured", "b": "not measured", "c": "not measured"}


def test_best_rate_ties_go_to_the_smaller():
    assert dp.best({0.1: 0.8, 0.01: 0.8, 0.5: 0.1}) == (0.01, 0.8)
    assert dp.best({0.1: 0.8, 0.01: None}) == (None, None)


@pytest.mark.parametrize("kwargs, match", [
    ({"depths": (128, 32)}, "increasing"), ({"depths": (0, 32)}, "depths"), ({"width": 0}, "width"),
    ({"learning_rates": (0.1, 0.1)}, "distinct"), ({"learning_rates": (-0.1,)}, "learning_rates"),
    ({"batch_size": 10000}, "batch_size=10000"), ({"init_samples": 1}, "init_samples=1"),
    ({"seeds": (0, 0)}, "distinct"), ({"dataset": "imagenet"}, "imagenet")])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dp.Config(**kwargs)


def test_runs_cover_the_grid():
    cfg = dp.Config()
    specs = dp.runs(cfg)
    assert len(specs) == len(cfg.depths) * 4 * len(cfg.learning_rates) * len(cfg.seeds)
    assert len({s.spec_hash for s in specs}) == len(specs)
    assert all(s.model == "resmlp" and s.task["steps"] == cfg.steps for s in specs)


def _fake(spec, status):
    hist = {"finished": [0.1, 0.5, 0.7], "diverged": [0.1], "failed": []}[status]
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0],
                     val_acc_history=hist, best_val_acc=max(hist, default=None), iterations_per_epoch=10,
                     extras={"eval_steps": [0, 10, 20][:len(hist)]}, seconds=0.1,
                     error=None if status == "finished" else "boom")


def test_analyze_with_missing_failed_and_diverged_runs(tmp_path):
    specs = dp.runs(CFG)
    status = lambda s: ("failed" if s.tags["variant"] == "fixup" else
                        "diverged" if s.tags["variant"] == "plain" else "finished")
    done = Runs([(s, _fake(s, status(s))) for s in specs if not (s.tags["variant"] == "skipinit" and s.seed == 0)])
    section = dp.analyze(CFG, done, tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper)
    v = section.metrics["verdicts"]
    assert v["c"] == "not measured"                               # SkipInit and Fixup unmeasured
    assert v["a"] == "partly"                                     # plain at chance < BN; the others unmeasured
    assert all(p.exists() for p in section.figures)


def test_quick_end_to_end(tmp_path):
    t = time.process_time()
    done = Runs([(s, execute(s)) for s in dp.runs(CFG)])
    section = dp.analyze(CFG, done, tmp_path)
    assert time.process_time() - t < 25
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table, default=str)
    assert set(section.metrics["verdicts"]) == {"a", "b", "c"}
    assert all(x in VERDICTS for x in section.metrics["verdicts"].values())
    assert section.metrics["verdicts"]["b"] != "not measured"
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)
