"""batch-size-one: the criteria on synthetic results, missing and failed runs, the Config's
validation, the runs' linear learning-rate scaling, the measured refusal, and the quick config."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.pitfalls import batch_size_one as bs  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402
from normlab.models import FullyConnectedNet  # noqa: E402

CFG = bs.quick(bs.Config())
BIG = CFG.batch_size
MSG = ("expected more than 1 value per channel when training, got input shape (1, 32); "
       "use a batch of at least 2 or mode='test'")


def _done(acc, msg=MSG, bn_status="finished", drop=None):
    pairs = []
    for s in bs.runs(CFG):
        if drop and drop(s):
            continue
        key = (s.tags["model"], s.tags["net"], s.tags["batch"])
        status = bn_status if s.tags["net"] == "batchnorm" else "finished"
        extras = {"measure": {"refusal": msg}} if s.tags["net"] == "batchnorm" and status == "finished" else {}
        a = acc.get(key, 0.8) + 0.001 * s.seed
        pairs.append((s, RunResult(s.spec_hash, s.experiment, s.name, status, loss_history=[1.0],
                                   val_acc_history=[] if status == "failed" else [0.1, a], best_val_acc=a,
                                   iterations_per_epoch=1, extras=extras, seconds=0.1,
                                   error=f"ValueError: {msg}" if status == "failed" else None)))
    return Runs(pairs)


def _acc(ln=(0.78, 0.79), gn=(0.78, 0.77)):
    return {("fc", "layernorm", 1): ln[0], ("fc", "layernorm", BIG): ln[1], ("cnn", "groupnorm", 1): gn[0],
            ("cnn", "groupnorm", BIG): gn[1]}


@pytest.mark.parametrize("acc, msg, status, expected", [
    (_acc(), MSG, "finished", {"a": "agrees", "b": "agrees", "c": "agrees"}),
    (_acc(), MSG, "failed", {"a": "agrees", "b": "agrees", "c": "agrees"}),
    (_acc(ln=(0.70, 0.79)), None, "finished", {"a": "disagrees", "b": "disagrees", "c": "agrees"}),
    (_acc(gn=(0.60, 0.77)), "ValueError: shapes", "failed", {"a": "disagrees", "b": "agrees", "c": "disagrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, acc, msg, status, expected):
    section = bs.analyze(CFG, _done(acc, msg, status), tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table)
    assert section.metrics["verdicts"] == expected


def test_missing_runs_give_not_measured(tmp_path):
    section = bs.analyze(CFG, _done(_acc(), drop=lambda s: s.tags["model"] == "cnn" and s.tags["batch"] == 1),
                         tmp_path / "a")
    assert section.metrics["verdicts"] == {"a": "agrees", "b": "agrees", "c": "not measured"}
    section = bs.analyze(CFG, Runs(), tmp_path / "none")
    assert set(section.metrics["verdicts"].values()) == {"not measured"}
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)
    assert bs.verdict([None, False, True]) == "partly"


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", 1, "batch_size=1 must be at least 2"),
    ("batch_size", 4096, "batch_size=4096 exceeds num_train=3072 or conv_num_train=1536"),
    ("conv_num_groups", 3, "conv_num_filters=8 is not divisible by conv_num_groups=3"),
    ("learning_rate", -1.0, "learning_rate must be a positive number, got -1.0"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(bs.Config(), **{field: value})


def test_runs_see_the_same_images_with_the_rate_scaled_linearly():
    cfg = bs.Config()
    for s in bs.runs(cfg):
        t, b = s.task, s.tags["batch"]
        assert t["batch_size"] == b and t["steps"] * b == cfg.num_epochs * (s.num_train // b) * b
        assert t["optim_config"]["learning_rate"] == pytest.approx(cfg.learning_rate * b / cfg.batch_size)
    assert {s.tags["batch"] for s in bs.runs(cfg) if s.tags["net"] != "batchnorm"} == {1, cfg.batch_size}


def test_measure_records_the_refusal_and_leaves_the_model(rng):
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, normalization="batchnorm", rng_seed=0,
                              dtype=np.float64)
    data = {"X_train": rng.normal(size=(8, 3)), "y_train": rng.integers(0, 2, size=8)}
    model.loss(data["X_train"], data["y_train"])
    before = model.state_arrays()
    out = bs.measure(model, data)
    assert all(w in out["refusal"] for w in bs.REFUSAL_WORDS)
    assert all(np.array_equal(before[k], v) for k, v in model.state_arrays().items())
    ln = FullyConnectedNet([4], input_dim=3, num_classes=2, normalization="layernorm", rng_seed=0)
    assert bs.measure(ln, data) == {"refusal": None}


def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = bs.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results)
    section = bs.analyze(CFG, done, tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper)
    assert all(v in VERDICTS for v in section.metrics["verdicts"].values())
    assert section.metrics["verdicts"]["a"] == "agrees"
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)
    assert time.process_time() - start < 20
