"""ba-2016 (Ba, Kiros & Hinton 2016): the criteria on synthetic results (every verdict reachable),
missing / failed / diverged runs, the Config's validation, the runs it asks for, and the quick
config executed and analyzed end to end."""
from __future__ import annotations

import dataclasses
import json
import re
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers import ba_2016 as ba  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402

CFG = ba.quick(ba.Config())
BIG, SMALL = CFG.batch_size, CFG.small_batch_size


def _result(spec, acc, status="finished"):
    """A synthetic result: test accuracy rising to ``acc`` over the spec's epochs, a falling loss."""
    task = spec.task
    per, steps = task["eval_every"], task["steps"]
    evals = list(range(0, steps + 1, per))
    history = [0.1] + [acc - 0.02 * (len(evals) - 1 - i) for i in range(1, len(evals))]
    losses = [2.0 / (1 + t / per) for t in range(steps)]
    error = None
    if status == "diverged":
        losses[-1], error = None, "non-finite loss (nan) at step 8"
    if status == "failed":
        history, losses, error = [], [], "Traceback: boom"
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=losses,
                     val_acc_history=history, best_val_acc=max(history, default=None),
                     iterations_per_epoch=per, extras={"eval_set": "test", "eval_steps": evals}, seconds=0.5,
                     error=error)


def _done(accs: dict, drop=lambda s: False, status=lambda s: "finished") -> Runs:
    """Synthetic runs of CFG: ``accs[(model, net, batch)]`` the final accuracy (batch None for the conv net),
    the same for every seed plus a seed-dependent wiggle of 0.001; ``drop(spec)`` leaves a run out."""
    pairs = []
    for s in ba.runs(CFG):
        if drop(s):
            continue
        key = (s.tags["model"], s.tags["net"], s.tags["batch"] if s.tags["model"] == "fc" else None)
        pairs.append((s, _result(s, accs[key] + 0.001 * s.seed, status(s))))
    return Runs(pairs)


def _accs(ln=(0.85, 0.85), bn=(0.85, 0.80), base=(0.84, 0.83), conv=(0.90, 0.87, 0.84)):
    """Conditions' accuracies: fc (batch BIG, batch SMALL) per net, conv (batchnorm, layernorm, baseline)."""
    out = {}
    for net, (a, b) in (("layernorm", ln), ("batchnorm", bn), ("baseline", base)):
        out[("fc", net, BIG)], out[("fc", net, SMALL)] = a, b
    for net, a in zip(("batchnorm", "layernorm", "baseline"), conv):
        out[("cnn", net, None)] = a
    return out


def _verdicts(done, tmp_path):
    section = ba.analyze(CFG, done, tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table, default=str)
    return section.metrics["verdicts"], section


# --------------------------------------------------------------------------- the criteria

@pytest.mark.parametrize("accs, expected", [
    # the paper's picture: LN = BN at 128, LN robust at 4, BN loses 0.05; conv BN > LN > none
    (_accs(), {"a": "agrees", "b": "agrees", "c": "agrees"}),
    # LN trails BN by 0.005 at 128 (within 0.01); LN loses 0.04 at batch 4 (> 0.02) but still beats BN
    (_accs(ln=(0.845, 0.805), bn=(0.85, 0.75)), {"a": "agrees", "b": "partly", "c": "agrees"}),
    # LN clearly worse at 128; at 4 LN worse than BN, LN loses 0.1, BN loses nothing; conv order reversed
    (_accs(ln=(0.80, 0.70), bn=(0.85, 0.85), conv=(0.80, 0.82, 0.84)),
     {"a": "disagrees", "b": "disagrees", "c": "disagrees"}),
    # conv: LN beats batch norm (against the paper) and no normalization (with it)
    (_accs(conv=(0.85, 0.87, 0.84)), {"a": "agrees", "b": "agrees", "c": "partly"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, accs, expected):
    verdicts, section = _verdicts(_done(accs), tmp_path)
    assert verdicts == expected
    rows = section.paper["findings"]
    assert [r["verdict"] for r in rows] == [expected[k] for k in "abc"]
    assert all(v in VERDICTS for v in verdicts.values())
    assert f"Verdicts: (a) {expected['a']}; (b) {expected['b']}; (c) {expected['c']}." in section.answer


def test_criteria_use_the_means_over_seeds_and_the_fixed_tolerances():
    acc = {("fc", "layernorm", BIG): 0.845, ("fc", "batchnorm", BIG): 0.8549,
           ("fc", "layernorm", SMALL): 0.826, ("fc", "batchnorm", SMALL): 0.80,
           ("cnn", "batchnorm", None): 0.9, ("cnn", "layernorm", None): 0.9, ("cnn", "baseline", None): 0.8}
    checks = ba.criteria(acc, BIG, SMALL)
    # 0.845 >= 0.8549 - 0.01; |0.826 - 0.845| = 0.019 <= 0.02; BN drop 0.0549 > LN drop 0.019
    assert checks == {"a": [True], "b": [True, True, True], "c": [False, True]}
    acc[("fc", "layernorm", SMALL)] = 0.824     # LN now drops 0.021 > 0.02
    assert ba.criteria(acc, BIG, SMALL)["b"] == [True, False, True]
    assert (ba.TOL_A, ba.TOL_B) == (0.01, 0.02)
    # a missing condition leaves exactly the checks that use it uncomputed
    del acc[("cnn", "baseline", None)], acc[("fc", "batchnorm", SMALL)]
    assert ba.criteria(acc, BIG, SMALL) == {"a": [True], "b": [None, False, None], "c": [False, None]}


def test_condition_accuracy_needs_every_seed_finished():
    specs = [s for s in ba.runs(CFG) if s.tags == {"model": "fc", "net": "layernorm", "batch": BIG}]
    rs = Runs((s, _result(s, 0.8 + 0.01 * s.seed)) for s in specs)
    assert ba.condition_acc(rs, CFG.seeds) == pytest.approx(0.805)
    assert ba.condition_acc(Runs(rs[:1]), CFG.seeds) is None
    diverged = Runs([rs[0], (specs[1], _result(specs[1], 0.8, "diverged"))])
    assert ba.condition_acc(diverged, CFG.seeds) is None


def test_missing_failed_and_diverged_runs_give_not_measured(tmp_path):
    small = lambda s: s.tags["batch"] == SMALL and s.tags["model"] == "fc"
    verdicts, section = _verdicts(_done(_accs(), drop=small), tmp_path / "missing")
    assert verdicts == {"a": "agrees", "b": "not measured", "c": "agrees"}
    assert "without a result" in section.answer and "not measured" in section.paper["findings"][1]["ours"]
    assert section.metrics["criteria_inputs"][f"acc_LN({SMALL})"] is None

    failed = lambda s: "failed" if s.tags["model"] == "cnn" and s.seed == CFG.seeds[0] else "finished"
    verdicts, section = _verdicts(_done(_accs(), status=failed), tmp_path / "failed")
    assert verdicts == {"a": "agrees", "b": "agrees", "c": "not measured"}
    assert "3 failed" in section.answer

    diverged = lambda s: "diverged" if s.tags == {"model": "fc", "net": "batchnorm", "batch": BIG} else "finished"
    verdicts, section = _verdicts(_done(_accs(), status=diverged), tmp_path / "diverged")
    # BN(128) unmeasured: (a) and (b)'s third check (BN's drop) need it; (b)'s first two still hold
    assert verdicts == {"a": "not measured", "b": "partly", "c": "agrees"}
    assert section.metrics["checks"]["b"] == [True, True, None]
    assert "diverged" in section.answer

    verdicts, section = _verdicts(Runs(), tmp_path / "none")
    assert set(verdicts.values()) == {"not measured"}
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)


# --------------------------------------------------------------------------- config and runs

@pytest.mark.parametrize("field, value, match", [
    ("hidden_dims", (128, 0), r"hidden_dims must hold positive integers, got \(128, 0\)"),
    ("num_train", 0, "num_train must be a positive integer, got 0"),
    ("learning_rate", -1e-3, "learning_rate must be a positive number, got -0.001"),
    ("small_batch_size", 128, "small_batch_size=128 must be below batch_size=128"),
    ("small_batch_size", 1, "small_batch_size=1: batch norm needs at least 2"),
    ("batch_size", 8192, "batch_size=8192 exceeds num_train=4096"),
    ("conv_batch_size", 5000, "conv_batch_size=5000 exceeds conv_num_train=3000"),
    ("conv_filter_size", 4, "conv_filter_size must be odd.*got 4"),
    ("update_rule", "sgd_nesterov", "update_rule must be one of .*got 'sgd_nesterov'"),
    ("seeds", (0, 0), r"seeds must be distinct, got \(0, 0\)"),
    ("dataset", "imagenet", "dataset must be one of .*got 'imagenet'"),
    ("weight_scale", float("nan"), "weight_scale must be a positive number, got nan"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(ba.Config(), **{field: value})


def test_runs_follow_the_paper_protocol():
    cfg = ba.Config()
    specs = ba.runs(cfg)
    assert len(specs) == 3 * 2 * 3 + 3 * 3 and len({s.spec_hash for s in specs}) == len(specs)
    assert all(re.search(r"/seed=\d+$", s.name) for s in specs) and len({s.name for s in specs}) == len(specs)
    fc = [s for s in specs if s.model == "fc"]
    for s in fc:
        epochs = s.task["steps"] // s.task["eval_every"]
        assert epochs == cfg.num_epochs and s.task["batch_size"] == s.tags["batch"]      # same epochs at both
        assert s.task["eval_every"] == cfg.num_train // s.tags["batch"] and s.task["eval_set"] == "test"
        assert s.task["update_rule"] == "adam" and s.task["optim_config"] == {"learning_rate": 1e-3}
        unbiased = s.model_kwargs.get("norm_param") == {"batch_variance": "unbiased"}
        assert unbiased == (s.tags["net"] == "batchnorm" and s.tags["batch"] == cfg.small_batch_size)
    assert {s.tags["batch"] for s in fc} == {128, 4}
    ln_conv = [s for s in specs if s.model == "cnn" and s.tags["net"] == "layernorm"]
    assert all(s.model_kwargs["normalization"] == "groupnorm" and s.model_kwargs["num_groups"] == 1
               for s in ln_conv)
    assert ba.quick(cfg) != cfg and ba.SUITE == "papers" and [c.key for c in ba.CLAIMS] == ["a", "b", "c"]


def test_groupnorm_with_one_group_is_layer_norm_over_c_h_w(rng):
    """The conv net's layer norm: group norm with G=1 normalizes each image over (C, H, W), as
    torch's layer_norm over the last three axes (per-channel gamma/beta then scale and shift)."""
    torch = pytest.importorskip("torch")
    from normlab.nn.norm.group import spatial_groupnorm_forward
    x = rng.normal(2.0, 3.0, size=(4, 6, 5, 5))
    gamma, beta = rng.normal(size=6), rng.normal(size=6)
    out, _ = spatial_groupnorm_forward(x, gamma, beta, 1, {"eps": 1e-5})
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x), (6, 5, 5), eps=1e-5).numpy()
    np.testing.assert_allclose(out, ref * gamma.reshape(1, 6, 1, 1) + beta.reshape(1, 6, 1, 1), rtol=1e-10,
                               atol=1e-10)


# --------------------------------------------------------------------------- end to end

def test_quick_config_end_to_end(tmp_path):
    start = time.perf_counter()
    specs = ba.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results), {r.name: r.error for r in done.results}
    section = ba.analyze(CFG, done, tmp_path)
    assert time.perf_counter() - start < 40          # ~5 s on one core; generous for a loaded CI machine
    assert (section.name, section.title, section.question) == (ba.NAME, ba.TITLE, ba.QUESTION)
    assert len(section.figures) == 2
    for png in section.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert "<svg" in png.with_suffix(".svg").read_text()[:2000]
    json.dumps(section.metrics), json.dumps(section.config), json.dumps(section.paper)
    assert set(section.metrics["verdicts"]) == {"a", "b", "c"}
    assert all(v in VERDICTS and v != "not measured" for v in section.metrics["verdicts"].values())
    assert section.config["seeds"] == list(CFG.seeds) and len(section.table) == 9
    assert section.paper["cite"].startswith("Jimmy Lei Ba") and section.paper["url"].endswith("1607.06450")
    assert "nan" not in section.answer.lower()
