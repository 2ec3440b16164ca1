"""wu-johnson-2021: PreciseBN and the measurements against closed forms and torch, the criteria on synthetic
results (every verdict reachable), missing runs, the Config's validation, and the quick config end to end."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers import wu_johnson_2021 as wj  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs  # noqa: E402
from normlab.models import FullyConnectedNet  # noqa: E402

CFG = wj.quick(wj.Config())


@pytest.fixture
def net():
    rng = np.random.default_rng(0)
    model = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, normalization="batchnorm", rng_seed=0,
                              weight_scale=0.5, dtype=np.float64)
    for k in model.params:
        model.params[k] = model.params[k] + 0.1 * rng.standard_normal(model.params[k].shape)
    X = rng.standard_normal((64, 4))
    model.scores(X[:16], "train")          # some running statistics
    return model, X


def test_bn_layers_match_the_net(net):
    model, X = net
    mine = wj.bn_layers(model, X)
    taps = model.activation_inputs(X, mode="test")
    for i, (x, tap) in enumerate(zip(mine, taps), start=1):
        bn = model.bn_params[i - 1]
        y = (x - bn["running_mean"]) / np.sqrt(bn["running_var"] + bn.get("eps", 1e-5)) * model.params[f"gamma{i}"] \
            + model.params[f"beta{i}"]
        np.testing.assert_allclose(y, tap, rtol=1e-10, atol=1e-12)


def test_precise_stats_closed_form_and_layer_by_layer(net):
    model, X = net
    stats = wj.precise_stats(model, X)
    x1 = X @ model.params["W1"] + model.params["b1"]
    np.testing.assert_allclose(stats[0][0], x1.mean(0))
    np.testing.assert_allclose(stats[0][1], x1.var(0, ddof=1))
    h = np.maximum((x1 - stats[0][0]) / np.sqrt(stats[0][1] + 1e-5) * model.params["gamma1"]
                   + model.params["beta1"], 0)
    x2 = h @ model.params["W2"] + model.params["b2"]
    np.testing.assert_allclose(stats[1][0], x2.mean(0))
    np.testing.assert_allclose(stats[1][1], x2.var(0, ddof=1))


def test_precise_stats_against_torch(net):
    torch = pytest.importorskip("torch")
    model, X = net
    stats = wj.precise_stats(model, X)
    p = {k: torch.tensor(v) for k, v in model.params.items()}
    bns = [torch.nn.BatchNorm1d(d, momentum=None, dtype=torch.float64) for d in (6, 5)]   # cumulative average
    h = torch.tensor(X)
    for i, bn in enumerate(bns, start=1):
        bn.weight.data, bn.bias.data = p[f"gamma{i}"], p[f"beta{i}"]
        x = h @ p[f"W{i}"] + p[f"b{i}"]
        bn.train()
        bn(x)                                  # one batch = the whole set: running var is the unbiased variance
        bn.eval()
        h = torch.relu(bn(x))
        np.testing.assert_allclose(bn.running_mean.numpy(), stats[i - 1][0], rtol=1e-10)
        np.testing.assert_allclose(bn.running_var.numpy(), stats[i - 1][1], rtol=1e-10)


def test_measurements_leave_the_net_unchanged(net):
    model, X = net
    y = np.arange(len(X)) % 3
    before = model.state_arrays()
    wj.minibatch_acc(model, X, y, 4, 0)
    wj._with_stats(model, wj.precise_stats(model, X), lambda: wj._acc(model, X, y))
    after = model.state_arrays()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_minibatch_acc_uses_batch_statistics(net):
    model, X = net
    y = np.arange(len(X)) % 3
    order = np.random.default_rng([0, 7]).permutation(len(X))
    saved = model.state_arrays()
    expect = np.mean([model.scores(X[order[i:i + 8]], "train").argmax(1) == y[order[i:i + 8]]
                      for i in range(0, 64, 8)])
    model.load_state_arrays(saved)
    assert wj.minibatch_acc(model, X, y, 8, 0) == pytest.approx(expect)


# --------------------------------------------------------------------------- criteria

def _means(precise_gain=0.01, worst_gain=0.02, d999=0.5, d9=0.1, nbs_lo=(0.6, 0.4), nbs_hi=(0.8, 0.81),
           shift=(0.5, 0.7)):
    v = {}
    for m in CFG.momenta:
        for n in CFG.lengths:
            d = d999 if m == 0.999 else (d9 if m == 0.9 else 0.2)
            gain = worst_gain if (m, n) == (0.999, CFG.lengths[0]) else precise_gain
            v[("ema", m, n)] = {"acc_ema": 0.8, "acc_precise": 0.8 + gain, "dist": d * (2 if n == CFG.lengths[0] else 1)}
    v[("nbs", CFG.nbs[0])] = {"acc_minibatch": nbs_lo[0], "acc_precise": nbs_lo[1]}
    v[("nbs", CFG.nbs[-1])] = {"acc_minibatch": nbs_hi[0], "acc_precise": nbs_hi[1]}
    v["shift"] = {"kept": shift[0], "recomputed": shift[1]}
    return v


def _verdicts(v):
    return {f.claim.key: f.verdict for f in wj.findings(v, CFG)}


def test_every_verdict_reachable():
    assert _verdicts(_means()) == {"a": "agrees", "b": "agrees", "c": "agrees"}
    assert _verdicts(_means(precise_gain=-0.01))["a"] == "partly"
    assert _verdicts(_means(precise_gain=-0.01, worst_gain=-0.01, d999=0.01)) ["a"] == "disagrees"
    assert _verdicts(_means(nbs_lo=(0.4, 0.6)))["b"] == "partly"
    assert _verdicts(_means(nbs_lo=(0.4, 0.6), nbs_hi=(0.9, 0.8)))["b"] == "disagrees"
    assert _verdicts(_means(shift=(0.7, 0.6)))["c"] == "disagrees"
    assert _verdicts({}) == {"a": "not measured", "b": "not measured", "c": "not measured"}


def test_tolerance_is_inclusive():
    checks = wj.criteria(_means(precise_gain=-wj.TOL / 2), CFG.momenta, CFG.lengths, CFG.nbs)
    assert checks["a"][0] is True


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("field, value", [("momenta", (0.9, 0.99)), ("momenta", (0.9, 1.5, 0.999)),
                                          ("lengths", (500, 200)), ("nbs", (1, 8)), ("nbs", (8, 2)),
                                          ("precise_samples", 10 ** 6), ("learning_rate", -1.0),
                                          ("hidden_dims", ()), ("seeds", (0, 0))])
def test_config_rejects(field, value):
    with pytest.raises(ValueError, match=field if field != "seeds" else "seeds"):
        dataclasses.replace(wj.Config(), **{field: value})


def test_runs_are_unique_and_tagged():
    specs = wj.runs(wj.Config())
    assert len({s.name for s in specs}) == len(specs) == 3 * (6 + 3)
    assert {s.tags["part"] for s in specs} == {"ema", "nbs"}


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def quick_done():
    cfg = dataclasses.replace(CFG, num_test=500, lengths=(20, 60), nbs_samples=200, precise_samples=1000)
    specs = wj.runs(cfg)
    return cfg, [(s, execute(s)) for s in specs]


def test_quick_end_to_end(quick_done, tmp_path):
    cfg, pairs = quick_done
    assert all(r.status == "finished" for _, r in pairs), [r.error for _, r in pairs if r.error]
    section = wj.analyze(cfg, Runs(pairs), tmp_path)
    json.dumps(section.metrics)
    assert set(section.metrics["verdicts"].values()) <= set(VERDICTS)
    assert "not measured" not in section.metrics["verdicts"].values()
    for png in section.figures:
        assert png.exists() and png.with_suffix(".svg").exists()


def test_missing_and_failed_runs_are_not_measured(quick_done, tmp_path):
    cfg, pairs = quick_done
    keep = [(s, r) for s, r in pairs if not (s.tags.get("nbs") == cfg.nbs[-1] and s.seed == cfg.seeds[0])]
    s0, r0 = next((s, r) for s, r in keep if s.tags.get("momentum") == 0.999)
    failed = RunResult(r0.spec_hash, r0.experiment, r0.name, "failed", error="boom", seconds=0.1)
    keep = [(s, failed if s is s0 else r) for s, r in keep]
    section = wj.analyze(cfg, Runs(keep), tmp_path)
    v = section.metrics["verdicts"]
    assert v["c"] == "not measured"
    assert section.metrics["checks"]["a"][0] is None and section.metrics["checks"]["b"][1] is None
    json.dumps(section.metrics)
