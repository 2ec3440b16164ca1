"""running-variance: the criteria on synthetic results, missing runs, the Config's validation, the
(m-1)/m expectation of the biased batch variance, torch's running variance, and the quick config."""
from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.pitfalls import running_variance as rv  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402

CFG = rv.quick(rv.Config())


def _done(std, drop=None):
    pairs = []
    for s in rv.runs(CFG):
        if drop and drop(s):
            continue
        v = std[s.tags["variance"]]
        m = {"unit_std": [v, v], "median_std": v, "median_std_first": v}
        pairs.append((s, RunResult(s.spec_hash, s.experiment, s.name, "finished", loss_history=[1.0],
                                   val_acc_history=[0.1, 0.75], best_val_acc=0.75, iterations_per_epoch=1,
                                   extras={"measure": m}, seconds=0.1)))
    return Runs(pairs)


@pytest.mark.parametrize("std, expected", [
    ({"biased": 1.155, "unbiased": 1.0}, {"a": "agrees", "b": "agrees"}),
    ({"biased": 1.33, "unbiased": 1.0}, {"a": "disagrees", "b": "agrees"}),
    ({"biased": 1.385, "unbiased": 1.2}, {"a": "agrees", "b": "disagrees"}),
    ({"biased": 0.85, "unbiased": 0.85}, {"a": "disagrees", "b": "disagrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, std, expected):
    section = rv.analyze(CFG, _done(std), tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table)
    assert section.metrics["verdicts"] == expected


def test_missing_runs_give_not_measured(tmp_path):
    section = rv.analyze(CFG, _done({"biased": 1.155, "unbiased": 1.0}, drop=lambda s: s.tags["variance"] ==
                                    "biased" and s.seed == CFG.seeds[0]), tmp_path / "a")
    assert section.metrics["verdicts"] == {"a": "not measured", "b": "agrees"}
    section = rv.analyze(CFG, Runs(), tmp_path / "none")
    assert set(section.metrics["verdicts"].values()) == {"not measured"}
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)
    assert rv.verdict([True, None]) == "partly"


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", 8, "batch_size must be 4 .*got 8"),
    ("num_train", 2, "num_train=2 is below batch_size=4"),
    ("weight_scale", 0, "weight_scale must be a positive number, got 0"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(rv.Config(), **{field: value})


def test_biased_batch_variance_averages_to_three_quarters_at_batch_4(rng):
    x = rng.normal(0, 2.0, size=(200000, 4))                  # 200,000 batches of 4, sigma^2 = 4
    assert x.var(axis=1).mean() == pytest.approx(3 / 4 * 4, rel=0.01)
    assert x.var(axis=1, ddof=1).mean() == pytest.approx(4, rel=0.01)
    assert rv.RATIO == pytest.approx(math.sqrt(4 / 3))


def test_torch_running_variance_is_the_unbiased_one(rng):
    torch = pytest.importorskip("torch")
    from normlab.nn.norm.batchnorm import batchnorm_forward
    x = rng.normal(size=(4, 3))
    ref = torch.nn.BatchNorm1d(3, momentum=1.0, dtype=torch.float64).train()
    ref(torch.from_numpy(x))
    course, tor = {"mode": "train", "momentum": 0.0}, {"mode": "train", "convention": "torch", "momentum": 1.0}
    batchnorm_forward(x, np.ones(3), np.zeros(3), course)
    batchnorm_forward(x, np.ones(3), np.zeros(3), tor)
    np.testing.assert_allclose(tor["running_var"], ref.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(course["running_var"], x.var(axis=0), rtol=1e-12)


def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = rv.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results)
    section = rv.analyze(CFG, done, tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper)
    assert all(v in VERDICTS for v in section.metrics["verdicts"].values())
    assert section.metrics["criteria_inputs"]["first_layer"]["ratio"] == pytest.approx(rv.RATIO, rel=1e-3)
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)
    assert time.process_time() - start < 20
