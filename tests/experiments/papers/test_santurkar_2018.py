"""santurkar-2018: the criteria on synthetic results (every verdict reachable), the Config's
validation, the DLN trainer, missing and failed runs, and the quick config end to end."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from normlab.experiments.papers import santurkar_2018 as rec
from normlab.experiments.papers.verdict import VERDICTS, verdict
from normlab.lab.runs import RunResult, Runs, recipe_results

CFG = dataclasses.replace(rec.quick(rec.Config()), seeds=(0, 1, 2))


# --------------------------------------------------------------------------- synthetic results

def _result(spec, acc=0.8, early=0.7, cos=0.9, land=(0.2, 1.0, 5.0), status="finished"):
    """A result as train_steps returns it: test accuracy ``early`` at 25% of the steps and ``acc`` at the
    end, cos(G, G') = ``cos`` at every probed layer, and landscape (loss range, grad change, beta) ``land``."""
    eval_steps = list(range(0, CFG.steps + 1, CFG.eval_every))
    accs = [0.1] + [early if t <= CFG.steps // 4 else acc for t in eval_steps[1:]]
    probe_steps = list(range(0, CFG.steps, CFG.probe_every))
    n = len(CFG.ics_layers)
    probes = {"percentiles": [[[-1.0, 0.5], [0.0, 0.6], [1.0, 0.7]] for _ in probe_steps]}
    if spec.tags["net"] in rec.PROBED:
        probes["ics"] = [{"layers": list(CFG.ics_layers), "l2": [0.1] * n, "cos": [cos] * n, "grad_norm": [1.0] * n}
                         for _ in probe_steps]
        lr_, gc, beta = land
        probes["landscape"] = [{"loss": 1.0, "losses": [1.0 + lr_ * i / 4 for i in range(5)], "steps": [0.1] * 5,
                                "loss_range": lr_, "grad_changes": [gc * i / 4 for i in range(1, 6)],
                                "grad_change": gc, "beta": beta, "grad_norm": 1.0} for _ in probe_steps]
    return RunResult(spec_hash=spec.spec_hash, experiment=rec.NAME, name=spec.name, status=status,
                     loss_history=[1.0] * CFG.steps, val_acc_history=accs if status == "finished" else [],
                     extras={"eval_steps": eval_steps, "probe_steps": probe_steps, "probes": probes})


def _done(**per_net) -> Runs:
    """Synthetic runs: ``per_net[label]`` is a dict of _result keywords (None: no runs of that net)."""
    specs = rec.runs(CFG)
    out = {}
    for s in specs:
        kw = per_net.get(s.tags["net"], {})
        if kw is not None:
            out[s.spec_hash] = _result(s, **kw)
    return recipe_results(specs, out)


def _dln(std_cos=0.9, bn_cos=0.1, status="finished"):
    def one(c):
        return {"status": status, "loss": [2.0, 1.0], "probe_steps": [0, 15, 30],
                "ics": [{"layers": list(CFG.dln_layers), "l2": [1.0] * 3, "cos": [c] * 3, "grad_norm": [1.0] * 3}] * 3}
    return {"standard": [one(std_cos)] * 3, "batchnorm": [one(bn_cos)] * 3}


def _verdicts(done, dln):
    return {k: verdict(v) for k, v in rec.measure(CFG, done, dln)["checks"].items()}


# --------------------------------------------------------------------------- the criteria

def test_paper_agrees_when_every_check_holds():
    done = _done(standard={"acc": 0.80, "early": 0.60, "cos": 0.99, "land": (0.5, 3.0, 9.0)},
                 batchnorm={"acc": 0.85, "early": 0.75, "cos": 0.9, "land": (0.1, 1.0, 2.0)},
                 **{"noisy-batchnorm": {"acc": 0.84, "early": 0.70}})
    assert _verdicts(done, _dln()) == {"a": "agrees", "b": "agrees", "c": "agrees"}


def test_each_criterion_can_disagree():
    done = _done(standard={"acc": 0.90, "early": 0.80, "cos": 0.5, "land": (0.1, 1.0, 2.0)},
                 batchnorm={"acc": 0.95, "early": 0.75, "cos": 0.9, "land": (0.5, 3.0, 9.0)},
                 **{"noisy-batchnorm": {"acc": 0.85, "early": 0.70}})
    assert _verdicts(done, _dln(std_cos=0.1, bn_cos=0.9)) == {"a": "disagrees", "b": "disagrees", "c": "disagrees"}


def test_partly_when_some_checks_hold():
    # noisy within 0.02 of BN and above standard at the end, but behind it at 25% of the steps;
    # BN's cos within the 0.05 margin in the MLP but not below the DLN's; only the loss range smaller.
    done = _done(standard={"acc": 0.80, "early": 0.75, "cos": 0.90, "land": (0.5, 1.0, 2.0)},
                 batchnorm={"acc": 0.85, "early": 0.75, "cos": 0.94, "land": (0.1, 3.0, 9.0)},
                 **{"noisy-batchnorm": {"acc": 0.84, "early": 0.70}})
    checks = rec.measure(CFG, done, _dln(std_cos=0.5, bn_cos=0.5))["checks"]
    assert checks["a"] == [True, True, False]
    assert checks["b"] == [True, True, True, False, False, False]
    assert checks["c"] == [True, False, False]
    assert {k: verdict(v) for k, v in checks.items()} == {"a": "partly", "b": "partly", "c": "partly"}


def test_tolerances_are_the_fixed_ones():
    # noisy 0.015 below BN passes (a)'s first check, 0.025 below fails; BN's cos 0.04 above the
    # standard's passes (b)'s MLP checks, 0.06 above fails
    done = _done(standard={"acc": 0.70, "cos": 0.75}, batchnorm={"acc": 0.875, "cos": 0.79},
                 **{"noisy-batchnorm": {"acc": 0.86}})
    checks = rec.measure(CFG, done, _dln())["checks"]
    assert checks["a"][0] is True and checks["b"][:3] == [True] * 3
    done = _done(standard={"acc": 0.70, "cos": 0.75}, batchnorm={"acc": 0.875, "cos": 0.81},
                 **{"noisy-batchnorm": {"acc": 0.85}})
    checks = rec.measure(CFG, done, _dln())["checks"]
    assert checks["a"][0] is False and checks["b"][:3] == [False] * 3


def test_missing_or_failed_runs_are_not_measured():
    m = rec.measure(CFG, Runs(), {})
    assert {k: verdict(v) for k, v in m["checks"].items()} == dict.fromkeys("abc", "not measured")
    done = _done(standard={"status": "failed"}, batchnorm={}, **{"noisy-batchnorm": None})
    checks = rec.measure(CFG, done, _dln(status="diverged"))["checks"]
    assert checks["a"] == [None, None, None] and all(c is None for c in checks["b"])
    assert checks["c"] == [None] * 3


def test_early_probe_step_and_late_half_are_outside_the_windows():
    """(b) skips step 0; (c) uses only the probe steps before half the steps."""
    specs = rec.runs(CFG)
    r = _result(specs[0], cos=0.5, land=(1.0, 1.0, 1.0))
    r.extras["probes"]["ics"][0]["cos"] = [None, -1.0, -1.0]     # step 0: ignored
    half = [t for t in r.extras["probe_steps"] if t >= CFG.steps / 2]
    for p, t in zip(r.extras["probes"]["landscape"], r.extras["probe_steps"]):
        if t >= CFG.steps / 2:
            p["loss_range"] = 99.0
    assert half and rec.ics_medians(r.extras["probe_steps"], r.extras["probes"]["ics"], CFG.ics_layers) == [0.5] * 3
    assert rec.landscape_medians(r, CFG.steps / 2)["loss_range"] == 1.0


def test_a_non_finite_landscape_value_counts_as_unbounded():
    r = _result(rec.runs(CFG)[0])
    for p in r.extras["probes"]["landscape"]:
        p["beta"] = None
    assert rec.landscape_medians(r, CFG.steps / 2)["beta"] == math.inf


# --------------------------------------------------------------------------- config, runs, DLN

@pytest.mark.parametrize("change, match", [
    ({"steps": 210}, "steps=210"), ({"eval_every": 30}, "eval_every=30"), ({"probe_every": 150}, "probe_every=150"),
    ({"ics_layers": (2, 7)}, r"ics_layers=\(2, 7\)"), ({"dln_layers": (5, 13)}, r"dln_layers=\(5, 13\)"),
    ({"dln_layers": (5, 13, 99)}, "99"), ({"histogram_layer": 6}, "histogram_layer=6"),
    ({"learning_rate": -0.1}, "-0.1"), ({"weight_scale": 0.0}, "weight_scale"), ({"seeds": (0, 0)}, r"\(0, 0\)"),
    ({"dataset": "imagenet"}, "imagenet"), ({"batch_size": 5000}, "batch_size=5000"),
    ({"dln_probe_every": 60}, "dln_probe_every=60"), ({"dln_examples": 1}, "dln_examples=1"), ({"multipliers": (0.5, -1.0)}, "-1.0"),
])
def test_config_rejects_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CFG, **change)


def test_runs_probe_only_standard_and_batchnorm():
    specs = rec.runs(rec.Config())
    assert len(specs) == 9 and len({s.spec_hash for s in specs}) == 9
    for s in specs:
        probes = s.task["probes"]
        assert ("ics" in probes) == ("landscape" in probes) == (s.tags["net"] in rec.PROBED)
        assert s.task["optim_config"] == {"learning_rate": 0.1} and s.task["update_rule"] == "sgd"
        assert s.model_kwargs["weight_scale"] == pytest.approx(math.sqrt(2 / 100))


def test_dln_trains_and_reports_divergence():
    cfg = dataclasses.replace(CFG, dln_depth=6, dln_layers=(2, 4, 6), dln_steps=40, dln_probe_every=10)
    for norm in (None, "batchnorm"):
        d = rec.train_dln(cfg, norm, 0)
        assert d["status"] == "finished" and d["loss"][-1] < d["loss"][0] and d["probe_steps"] == [0, 10, 20, 30]
        assert all(len(p["cos"]) == 3 for p in d["ics"])
    d = rec.train_dln(dataclasses.replace(cfg, dln_learning_rate=50.0), None, 0)
    assert d["status"] == "diverged" and len(d["loss"]) < cfg.dln_steps
    json.dumps(d, allow_nan=False)


# --------------------------------------------------------------------------- analyze

def _check_section(section):
    assert set(section.metrics["verdicts"].values()) <= set(VERDICTS)
    json.dumps(section.metrics, allow_nan=False)
    json.dumps(section.paper, allow_nan=False)
    assert len(section.figures) == 3
    for png in section.figures:
        assert png.stat().st_size > 1000 and png.with_suffix(".svg").stat().st_size > 1000
    assert all(v in section.answer for v in section.metrics["verdicts"].values())


def test_analyze_with_runs_missing_and_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(rec, "dln_runs", lambda cfg: _dln(status="diverged"))
    done = _done(standard={"status": "failed"}, batchnorm={}, **{"noisy-batchnorm": None})
    section = rec.analyze(CFG, done, tmp_path)
    _check_section(section)
    assert section.metrics["verdicts"] == dict.fromkeys("abc", "not measured")
    assert "failed" in section.answer and "without a result" in section.answer and "diverged" in section.answer


def test_quick_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    from normlab._threads import blas_threads
    from normlab.lab.execute import execute
    cfg = rec.quick(rec.Config())
    specs = rec.runs(cfg)
    with blas_threads(1):                 # as a sweep worker runs them
        done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
        section = rec.analyze(cfg, done, tmp_path)
    assert all(r.status == "finished" for r in done.results), [r.error for r in done.results]
    _check_section(section)
    assert section.paper["cite"].startswith("Santurkar") and len(section.paper["findings"]) == 3
    assert {row["net"] for row in section.table} >= {"standard", "batch norm", "noisy batch norm"}
    assert np.isfinite(section.metrics["a"]["final_test_acc"]["batchnorm"]["mean"])
