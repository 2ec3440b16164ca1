"""momentum-convention: the criteria on synthetic results, missing runs, the Config's validation,
population statistics by hand, the two conventions against torch.nn.BatchNorm1d, and the quick
config end to end."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.pitfalls import momentum as mo  # noqa: E402
from normlab.experiments.pitfalls._common import eval_normalized, population_stats  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402
from normlab.models import FullyConnectedNet  # noqa: E402

CFG = mo.quick(mo.Config())
M = CFG.batch_size


def _measure(rule, dist, off=0.0):
    mean, var = [[0.5, -1.0], [2.0]], [[1.0, 3.0], [0.5]]
    if rule == "course":      # stores the biased variance: x (m-1)/m of torch's
        var = [[v * (M - 1) / M for v in layer] for layer in var]
    if rule == "torch":
        mean = [[v * (1 + off) for v in layer] for layer in mean]
    return {"running_mean": mean, "running_var": var, "population_mean": mean, "distance": dist}


def _done(dist, acc, off=0.0, drop=None):
    pairs = []
    for s in mo.runs(CFG):
        if drop and drop(s):
            continue
        rule = s.tags["rule"]
        r = RunResult(s.spec_hash, s.experiment, s.name, "finished", loss_history=[1.0],
                      val_acc_history=[0.1, acc[rule]], best_val_acc=acc[rule], iterations_per_epoch=1,
                      extras={"measure": _measure(rule, dist[rule], off)}, seconds=0.1)
        pairs.append((s, r))
    return Runs(pairs)


D, A = {"course": 0.05, "torch": 0.05, "mistake": 0.2}, {"course": 0.81, "torch": 0.81, "mistake": 0.79}


@pytest.mark.parametrize("dist, acc, off, expected", [
    (D, A, 0.0, {"a": "agrees", "b": "agrees"}),
    (D, A, 1e-5, {"a": "disagrees", "b": "agrees"}),
    (D, {**A, "mistake": 0.82}, 0.0, {"a": "agrees", "b": "partly"}),
    ({**D, "mistake": 0.01}, {**A, "mistake": 0.82}, 0.0, {"a": "agrees", "b": "disagrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, dist, acc, off, expected):
    section = mo.analyze(CFG, _done(dist, acc, off), tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table)
    assert section.metrics["verdicts"] == expected


def test_missing_runs_give_not_measured(tmp_path):
    section = mo.analyze(CFG, _done(D, A, drop=lambda s: s.tags["rule"] == "torch"), tmp_path / "a")
    assert section.metrics["verdicts"] == {"a": "not measured", "b": "agrees"}
    section = mo.analyze(CFG, _done(D, A, drop=lambda s: s.tags["rule"] == "mistake"), tmp_path / "b")
    assert section.metrics["verdicts"] == {"a": "agrees", "b": "not measured"}
    section = mo.analyze(CFG, Runs(), tmp_path / "none")
    assert set(section.metrics["verdicts"].values()) == {"not measured"}
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", 1, "batch_size=1 must lie in 2..num_train=4096"),
    ("num_epochs", 0, "num_epochs must be a positive integer, got 0"),
    ("hidden_dims", (), r"hidden_dims must be a non-empty tuple, got \(\)"),
    ("seeds", (), "seeds must be a non-empty tuple"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(mo.Config(), **{field: value})


def _net(rng, norm_param=None):
    model = FullyConnectedNet([6, 4], input_dim=5, num_classes=3, normalization="batchnorm", rng_seed=1,
                              dtype=np.float64, norm_param=norm_param or {})
    for _ in range(3):
        model.loss(rng.normal(size=(16, 5)), rng.integers(0, 3, size=16))
    return model


def test_population_stats_are_the_batch_statistics_of_the_whole_set(rng):
    """With the running statistics set to the population's, a train-mode pass over the whole set
    (batch statistics = population statistics) and the eval-mode pass agree."""
    model, X = _net(rng), rng.normal(size=(50, 5))
    pop = population_stats(model, X)
    model.load_state_arrays({f"{k}{i}": v for i, (m, var) in enumerate(pop, 1)
                             for k, v in (("running_mean", m), ("running_var", var))})
    np.testing.assert_allclose(model.loss(X), model.scores(X, "train"), rtol=1e-10, atol=1e-10)
    z = eval_normalized(model, X)
    np.testing.assert_allclose(z[0].mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(z[0].var(0), pop[0][1] / (pop[0][1] + 1e-5), rtol=1e-10)


def test_eval_normalized_is_the_eval_forward_before_gamma_and_beta(rng):
    model, X = _net(rng), rng.normal(size=(20, 5))
    model.params["gamma1"], model.params["beta1"] = rng.normal(size=6), rng.normal(size=6)
    z = eval_normalized(model, X)
    taps = model.activation_inputs(X, mode="test")
    np.testing.assert_allclose(model.params["gamma1"] * z[0] + model.params["beta1"], taps[0], rtol=1e-10)
    np.testing.assert_allclose(model.params["gamma2"] * z[1] + model.params["beta2"], taps[1], rtol=1e-10)


def test_both_conventions_match_torch_batchnorm1d(rng):
    """The course's 0.9 and torch's 0.1 against torch.nn.BatchNorm1d(momentum=0.1) over the same batches."""
    torch = pytest.importorskip("torch")
    from normlab.nn.norm.batchnorm import batchnorm_forward
    ref = torch.nn.BatchNorm1d(4, momentum=0.1, dtype=torch.float64).train()
    course, tor = {"mode": "train"}, {"mode": "train", "convention": "torch"}
    m = 8
    for _ in range(200):
        x = rng.normal(1.5, 2.0, size=(m, 4))
        ref(torch.from_numpy(x))
        batchnorm_forward(x, np.ones(4), np.zeros(4), course)
        batchnorm_forward(x, np.ones(4), np.zeros(4), tor)
    np.testing.assert_allclose(tor["running_mean"], ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(tor["running_var"], ref.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(course["running_mean"], ref.running_mean.numpy(), rtol=1e-9)
    # like with like: the course's biased variance x m/(m-1); the starts (0 vs 1) weigh 0.9^200
    assert mo.rule_gap({"running_mean": [course["running_mean"]], "running_var": [course["running_var"]]},
                       {"running_mean": [ref.running_mean.numpy()], "running_var": [ref.running_var.numpy()]},
                       m) < 1e-9


def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = mo.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results)
    section = mo.analyze(CFG, done, tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper)
    assert all(v in VERDICTS for v in section.metrics["verdicts"].values())
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)
    assert time.process_time() - start < 20
