"""ioffe-szegedy-2015 (Ioffe & Szegedy 2015): the four criteria on synthetic results (every verdict
reachable), diverged / failed / missing runs, the Config's validation, the runs it asks for,
``bn_linear`` against finite differences and PyTorch, and the quick config executed and analyzed
end to end."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab._threads import blas_threads  # noqa: E402
from normlab.experiments.papers import ioffe_szegedy_2015 as io  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.gradient_check import eval_numerical_gradient_array, rel_error  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402

CFG = io.Config(hidden_dims=(4, 4, 4), steps=100, eval_every=10, probe_every=10, shown_unit=1)
STEPS = io.eval_steps(CFG)                       # 0, 10, ..., 100
INV = io.scale_invariance(0, n=12, d=6)
D = CFG.hidden_dims[-1]


def _curve(start, end):
    """A test-accuracy curve rising linearly from ``start`` at step 0 to ``end`` at the last step."""
    return [start + (end - start) * s / CFG.steps for s in STEPS]


def _probes(shift, n=3):
    """Percentile probes (probes, 3 q, D units): spread 2 at step 0, every percentile moved by ``shift``."""
    first = [[-1.0] * D, [0.0] * D, [1.0] * D]
    last = [[q + shift for q in row] for row in first]
    return [first] * (n - 1) + [last]


def _result(spec, curve, shift=0.0, status="finished"):
    history, error = list(curve), None
    if status == "diverged":
        history, error = history[:4], "non-finite loss (nan) at step 35"
    if status == "failed":
        history, error = [], "Traceback: boom"
    extras = {"eval_set": "test", "eval_steps": STEPS[:len(history)]}
    if spec.task.get("probes") and status == "finished":
        extras.update(probe_steps=[0, 50, 90], probes={"percentiles": _probes(shift)})
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0] * 10,
                     val_acc_history=history, best_val_acc=max(history, default=None), extras=extras,
                     seconds=0.5, error=error)


def _done(curves, shifts=None, status=lambda s: "finished", drop=lambda s: False) -> Runs:
    """Synthetic runs of CFG: ``curves[(net, mult)]`` (start, end) accuracies; ``shifts[(net, seed)]`` the
    x1 runs' percentile shift (default 2 without BN, 0.1 with)."""
    shifts = shifts or {}
    pairs = []
    for s in io.runs(CFG):
        if drop(s):
            continue
        net, m = s.tags["net"], s.tags["mult"]
        shift = shifts.get((net, s.seed), 2.0 if net == "baseline" else 0.1)
        pairs.append((s, _result(s, _curve(*curves[(net, m)]), shift, status(s))))
    return Runs(pairs)


GOOD = {("baseline", 1): (0.1, 0.80), ("batchnorm", 1): (0.75, 0.90), ("baseline", 5): (0.1, 0.50),
        ("batchnorm", 5): (0.5, 0.88), ("baseline", 30): (0.1, 0.10), ("batchnorm", 30): (0.5, 0.89)}


def _verdicts(done: Runs, inv=INV) -> dict:
    n = len(STEPS)
    groups = {(net, m): done.where(net=net, mult=m).by_seed() for m in CFG.multipliers for net, _ in io.NETS}
    curves = {net: io.mean_curve(groups[(net, 1)], CFG.seeds, n) for net, _ in io.NETS}
    finals = {k: io.mean_final(rs, CFG.seeds, n) for k, rs in groups.items()}
    drifts = {(net, s.seed): io.drift(r) for net, _ in io.NETS for s, r in groups[(net, 1)]}
    return {f.claim.key: f.verdict for f in io.findings(CFG, curves, finals, drifts, inv)}


def test_every_claim_agrees_on_good_runs():
    assert _verdicts(_done(GOOD)) == {"a": "agrees", "b": "agrees", "c": "agrees", "d": "agrees"}


def test_claim_a_partly_and_disagrees():
    # BN above the baseline everywhere but reaching its final 0.80 only at the last step: partly
    slow = {**GOOD, ("batchnorm", 1): (0.11, 0.801)}
    assert _verdicts(_done(slow))["a"] == "partly"
    low = {**GOOD, ("batchnorm", 1): (0.05, 0.70)}
    assert _verdicts(_done(low))["a"] == "disagrees"


def test_claim_a_checks_only_after_the_first_tenth():
    # BN below the baseline at steps 0 and 10 (<= 10 % of 100) only: still agrees
    n = len(STEPS)
    base = [0.5] * n
    bn = [0.4, 0.4] + [0.9] * (n - 2)
    checks = io.criteria(CFG, {"baseline": base, "batchnorm": bn}, {}, {}, INV)
    assert checks["a"] == [True, True]
    bn[2] = 0.45                                  # step 20 counts
    assert io.criteria(CFG, {"baseline": base, "batchnorm": bn}, {}, {}, INV)["a"] == [False, True]


def test_claim_b_per_seed():
    worse = {("batchnorm", 0): 3.0}               # seed 0: BN drifts more than the baseline
    assert _verdicts(_done(GOOD, worse))["b"] == "partly"
    all_worse = {("batchnorm", s): 3.0 for s in CFG.seeds}
    assert _verdicts(_done(GOOD, all_worse))["b"] == "disagrees"


def test_drift_is_the_median_over_units_of_the_normalized_shift():
    spec = next(s for s in io.runs(CFG) if s.tags["mult"] == 1)
    r = _result(spec, _curve(0.1, 0.8), shift=0.5)
    assert io.drift(r) == pytest.approx(0.25)     # |0.5| / (1 - (-1))
    assert io.drift(r, relative=False) == pytest.approx(0.5)
    probes = _probes(0.5)
    probes[-1] = [[q + 4.0 * (u == 0) for u, q in enumerate(row)] for row in probes[-1]]   # one outlier unit
    r.extras["probes"]["percentiles"] = probes
    assert io.drift(r) == pytest.approx(0.25)
    assert io.drift(_result(spec, _curve(0.1, 0.8), status="diverged")) is None


def test_claim_c_counts_a_diverged_run_as_chance():
    # BN at x30 diverging: 0.1, not above the baseline's 0.1 + 0.05, nor near BN at x1; x5 still holds
    div30 = lambda s: "diverged" if (s.tags["net"], s.tags["mult"]) == ("batchnorm", 30) else "finished"
    assert _verdicts(_done(GOOD, status=div30))["c"] == "partly"
    spec = next(s for s in io.runs(CFG) if s.tags["mult"] == 30)
    curve = io.accuracy_curve(_result(spec, _curve(0.5, 0.9), status="diverged"), len(STEPS))
    assert curve[4:] == [io.CHANCE] * (len(STEPS) - 4)
    bad = {**GOOD, ("batchnorm", 30): (0.1, 0.1), ("batchnorm", 5): (0.1, 0.3)}
    assert _verdicts(_done(bad))["c"] == "disagrees"


def test_claim_d_disagrees_when_no_bound_holds():
    broken = {a: {"fwd": 1.0, "fwd_eps0": 1.0, "grad": 1.0, "du": 1.0} for a in io.SCALES}
    assert _verdicts(_done(GOOD), broken)["d"] == "disagrees"
    some = {**broken, 10.0: INV[10.0]}
    assert _verdicts(_done(GOOD), some)["d"] == "partly"


def test_failed_and_missing_runs_give_not_measured(tmp_path):
    failed_x1 = lambda s: "failed" if s.tags["mult"] == 1 and s.seed == 2 else "finished"
    v = _verdicts(_done(GOOD, status=failed_x1))
    assert v["a"] == "not measured" and v["b"] == "partly" and v["c"] == "partly"   # seed 2 of x1 unknown
    only_x1 = _done(GOOD, drop=lambda s: s.tags["mult"] != 1)
    assert _verdicts(only_x1)["c"] == "not measured"       # every check of (c) needs an x5 or x30 run
    none = Runs()
    section = io.analyze(CFG, none, tmp_path / "none")
    assert section.metrics["verdicts"] == {"a": "not measured", "b": "not measured", "c": "not measured",
                                           "d": "agrees"}
    assert "18 runs" in section.answer and "without a result" in section.answer
    json.dumps(section.metrics)
    half = io.analyze(CFG, _done(GOOD, drop=lambda s: s.seed == 0), tmp_path / "half")
    assert set(half.metrics["verdicts"].values()) <= set(VERDICTS)
    assert half.metrics["verdicts"]["a"] == "not measured"


@pytest.mark.parametrize("field, value, match", [
    ("weight_scale", -0.1, "weight_scale must be a positive number, got -0.1"),
    ("steps", 0, "steps must be a positive integer, got 0"),
    ("learning_rate", float("nan"), "learning_rate must be a positive number, got nan"),
    ("multipliers", (5, 30), r"multipliers must include 1 \(the Figure 1 runs\), got \(5, 30\)"),
    ("multipliers", (1, 5, 5), r"multipliers must be distinct, got \(1, 5, 5\)"),
    ("multipliers", (1, -5), r"multipliers must hold positive numbers, got \(1, -5\)"),
    ("batch_size", 1, "batch_size=1: batch norm needs at least 2"),
    ("eval_samples", 0, "eval_samples must be a positive integer, got 0"),
    ("shown_unit", 100, r"shown_unit must be a unit of the last hidden layer, 0..99, got 100"),
    ("hidden_dims", (100, 0), r"hidden_dims must hold positive integers, got \(100, 0\)"),
    ("seeds", (), r"seeds must be a non-empty tuple"),
    ("dataset", "imagenet", "dataset must be one of .*, got 'imagenet'"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(io.Config(), **{field: value})


def test_runs_follow_the_protocol():
    cfg = io.Config()
    specs = io.runs(cfg)
    assert len(specs) == 2 * 3 * 3 and len({s.spec_hash for s in specs}) == len(specs)
    for s in specs:
        t = s.task
        assert s.model_kwargs["activation"] == "sigmoid" and s.model_kwargs["hidden_dims"] == [100, 100, 100]
        assert s.model_kwargs["normalization"] == (None if s.tags["net"] == "baseline" else "batchnorm")
        assert t["batch_size"] == 60 and t["update_rule"] == "sgd" and t["eval_set"] == "test"
        assert t["optim_config"]["learning_rate"] == pytest.approx(3.0 * s.tags["mult"])
        assert ("probes" in t) == (s.tags["mult"] == 1)
    probe = next(s for s in specs if s.tags["mult"] == 1).task["probes"]["percentiles"]
    assert probe == {"layer": 3, "q": [15, 50, 85], "samples": 1000}


def test_bn_linear_against_finite_differences(rng):
    u, W, G = rng.standard_normal((7, 5)), rng.standard_normal((5, 4)), rng.standard_normal((7, 4))
    out, dW, du = io.bn_linear(u, W, G)
    assert np.allclose(out.mean(axis=0), 0, atol=1e-12) and np.allclose(out.std(axis=0), 1, atol=1e-5)
    num_W = eval_numerical_gradient_array(lambda w: io.bn_linear(u, w, G)[0], W.copy(), G)
    num_u = eval_numerical_gradient_array(lambda x: io.bn_linear(x, W, G)[0], u.copy(), G)
    assert rel_error(dW, num_W) < 1e-7 and rel_error(du, num_u) < 1e-7


def test_bn_linear_against_torch(rng):
    torch = pytest.importorskip("torch")
    u, W, G = rng.standard_normal((9, 6)), rng.standard_normal((6, 5)), rng.standard_normal((9, 5))
    tu, tW = (torch.tensor(a, requires_grad=True) for a in (u, W))
    y = torch.nn.functional.batch_norm(tu @ tW, None, None, training=True, eps=1e-5)
    (y * torch.tensor(G)).sum().backward()
    out, dW, du = io.bn_linear(u, W, G)
    assert np.allclose(out, y.detach().numpy(), atol=1e-12)
    assert np.allclose(dW, tW.grad.numpy(), atol=1e-10) and np.allclose(du, tu.grad.numpy(), atol=1e-10)


def test_scale_invariance_holds_and_gradients_shrink_as_one_over_a():
    inv = io.scale_invariance(0)
    for a, m in inv.items():
        assert m["fwd"] < 1e-4 and m["fwd_eps0"] < 1e-12 and m["grad"] < 1e-4 and m["du"] < 1e-4
    # the eps-1e-5 error shrinks as the scaled variance grows (eps / var(a x))
    assert inv[10.0]["fwd"] < inv[0.1]["fwd"]


def test_quick_config_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMLAB_NUM_THREADS", "1")     # one thread, as a sweep worker runs
    t0 = time.process_time()           # CPU time: the budget's measure (wall time depends on the machine's load)
    cfg = io.quick(io.Config())
    specs = io.runs(cfg)
    with blas_threads(1):
        done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status in ("finished", "diverged") for r in done.results), [r.error for r in done.results]
    x1 = next(r for s, r in done if s.tags["mult"] == 1)
    probes = np.asarray(x1.extras["probes"]["percentiles"])
    assert probes.shape == (len(x1.extras["probe_steps"]), 3, cfg.hidden_dims[-1])
    assert x1.extras["eval_steps"] == io.eval_steps(cfg)
    section = io.analyze(cfg, done, tmp_path)
    assert time.process_time() - t0 < 20
    assert len(section.figures) == 3
    for png in section.figures:
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.with_suffix(".svg").exists()
    metrics = json.loads(json.dumps(section.metrics))
    assert set(metrics["verdicts"]) == {"a", "b", "c", "d"}
    assert set(metrics["verdicts"].values()) <= set(VERDICTS)
    assert section.paper["findings"] and all(f["verdict"] in VERDICTS for f in section.paper["findings"])
    assert "Verdicts: (a) " in section.answer
    assert len(section.table) == 2 * len(cfg.multipliers)
