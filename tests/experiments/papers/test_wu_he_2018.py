"""wu-he-2018: the criteria on synthetic results (every verdict reachable), missing and failed runs,
the Config checks, the runs it asks for, and the quick config end to end (execute + analyze)."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

pytest.importorskip("matplotlib")

from normlab.experiments import registry  # noqa: E402
from normlab.experiments.papers import wu_he_2018 as wh  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.summarize import fmt  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, RunSpec, Runs, recipe_results  # noqa: E402

CFG = wh.Config()     # the full config: 16 filters, G = 8, batches 32..2, G sweep 1..16, 3 seeds


def _result(spec: RunSpec, err: float | None, status: str = "finished") -> RunResult:
    """A synthetic run: test error ``err`` (None: no test accuracy), short histories."""
    extras = {} if err is None else {"test_acc": 1.0 - err}
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[2.3, 1.0, 0.5, 0.4],
                     train_acc_history=[0.1, 0.7, 0.8], val_acc_history=[0.1, 0.65, 0.75], best_val_acc=0.75,
                     iterations_per_epoch=2, extras=extras)


def _done(errors, cfg=CFG, keep=lambda spec: True, status=lambda spec: "finished") -> Runs:
    """The recipe's runs with synthetic results: ``errors(norm, groups, batch)`` is a condition's error
    (the seeds spread it by +-0.001); ``keep`` drops runs (missing), ``status`` sets each run's status."""
    pairs = []
    for s in wh.runs(cfg):
        if keep(s):
            t = s.tags
            e = errors(t["norm"], t["groups"], t["batch"]) + 0.001 * (s.seed - 1)
            pairs.append((s, _result(s, e, status(s))))
    return Runs(pairs)


def _paper_like(norm, groups, batch):
    """The paper's shape: BN best at 32 and bad at 2, GN flat, the group extremes worst."""
    if norm == "batchnorm":
        return {32: 0.150, 16: 0.151, 8: 0.160, 4: 0.180, 2: 0.250}[batch]
    return {1: 0.170, 2: 0.160, 4: 0.158, 8: 0.155, 16: 0.180}[groups] + (0.002 if batch == 4 else 0.0)


def _reversed(norm, groups, batch):
    """Every check fails: BN flat and worse, GN worse at small batches, the extremes best."""
    if norm == "batchnorm":
        return 0.200
    if groups in (1, 16):
        return 0.150
    return 0.190 + (0.06 if batch == 2 and groups == 8 else 0.0)


def _mixed(norm, groups, batch):
    """Some checks hold: IN beats GN at 32; GN moves by 0.015 at batch 4."""
    if norm == "batchnorm":
        return {32: 0.152, 16: 0.148, 8: 0.162, 4: 0.177, 2: 0.441}[batch]
    return {1: 0.163, 2: 0.157, 4: 0.161, 8: 0.155, 16: 0.151}[groups] + (0.015 if batch == 4 else 0.0)


def _verdicts(done: Runs, cfg=CFG) -> dict:
    groups = wh.groups_of(cfg, done)
    err = {k: wh.condition_error(rs, cfg.seeds) for k, rs in groups.items()}
    return {f.claim.key: f.verdict for f in wh.findings(err, cfg)}


# --------------------------------------------------------------------------- criteria

@pytest.mark.parametrize("errors, expected", [
    (_paper_like, {"a": "agrees", "b": "agrees", "c": "agrees"}),
    (_reversed, {"a": "disagrees", "b": "disagrees", "c": "disagrees"}),
    (_mixed, {"a": "partly", "b": "partly", "c": "partly"}),
])
def test_every_verdict_is_reachable(errors, expected):
    assert _verdicts(_done(errors)) == expected


def test_criteria_checks_in_the_order_of_their_text():
    groups = wh.groups_of(CFG, _done(_mixed))
    err = {k: wh.condition_error(rs, CFG.seeds) for k, rs in groups.items()}
    # (a) BN < GN holds, GN < LN holds, GN < IN fails; (b) rise, flat (0.015 > 0.01) fails, GN(2) < BN(2)
    assert wh.criteria(err, CFG) == {"a": [True, True, False], "b": [True, False, True], "c": [True, False]}
    assert err[("batchnorm", None, 2)] == pytest.approx(0.441)        # the mean over seeds: +-0.001 cancels
    assert wh.gn_spread(err, CFG) == pytest.approx(0.015)
    assert wh.best_middle(err, CFG) == (8, pytest.approx(0.155))


def test_thresholds_of_criterion_b():
    """BN must rise by at least 0.02 from the normal to the small batch; GN may move by at most 0.01."""
    big, small = CFG.normal_batch, CFG.small_batch
    err = {("batchnorm", None, big): 0.25, ("batchnorm", None, small): 0.25 + wh.BN_RISE + 5e-4}
    err.update({("groupnorm", CFG.num_groups, b): 0.2 for b in CFG.batch_sizes})
    err[("groupnorm", CFG.num_groups, 4)] = 0.2 + wh.GN_FLAT - 5e-4
    assert wh.criteria(err, CFG)["b"] == [True, True, True]
    err[("batchnorm", None, small)] = 0.25 + wh.BN_RISE - 5e-4
    err[("groupnorm", CFG.num_groups, 4)] = 0.2 - wh.GN_FLAT - 5e-4      # a fall counts as a move too
    assert wh.criteria(err, CFG)["b"] == [False, False, True]


def test_failed_runs_are_not_measured():
    assert _verdicts(_done(_paper_like, status=lambda s: "failed")) == {k: "not measured" for k in "abc"}
    assert _verdicts(Runs()) == {k: "not measured" for k in "abc"}


def test_a_diverged_seed_leaves_its_condition_unmeasured():
    """BN at batch 2 with one diverged seed: its error is not measured, so checks using it are None."""
    diverged = lambda s: "diverged" if s.tags["norm"] == "batchnorm" and s.tags["batch"] == 2 and s.seed == 1 \
        else "finished"
    done = _done(_paper_like, status=diverged)
    groups = wh.groups_of(CFG, done)
    err = {k: wh.condition_error(rs, CFG.seeds) for k, rs in groups.items()}
    assert err[("batchnorm", None, 2)] is None and err[("batchnorm", None, 4)] == pytest.approx(0.18)
    assert wh.criteria(err, CFG)["b"] == [None, True, None]
    assert _verdicts(done)["b"] == "partly"      # an unmeasured check never counts as agreeing


def test_analyze_with_runs_missing(tmp_path):
    """No LN runs and no BN runs at batch 2, one GN seed missing at batch 8: the checks that need them
    are not measured, the rest are computed, and the section is complete and JSON-able."""
    keep = lambda s: not (s.tags["groups"] == 1 or (s.tags["norm"] == "batchnorm" and s.tags["batch"] == 2)
                          or (s.tags["groups"] == 8 and s.tags["batch"] == 8 and s.seed == 2))
    done = _done(_paper_like, keep=keep)
    section = wh.analyze(CFG, done, tmp_path)
    checks = section.metrics["checks"]
    assert checks == {"a": [True, None, True], "b": [None, None, None], "c": [None, True]}
    assert section.metrics["verdicts"] == {"a": "partly", "b": "not measured", "c": "partly"}
    assert section.metrics["criteria_inputs"]["err_LN(32)"] is None
    json.dumps(section.metrics), json.dumps(section.table), json.dumps(section.paper)
    assert "not measured" in section.paper["findings"][1]["ours"]
    assert f"{len(wh.runs(CFG)) - len(done)} without a result" in section.answer
    rows = {(r["condition"], r["batch"]): r for r in section.table}
    assert rows[("LN", 32)]["test_err"] is None and rows[("LN", 32)]["runs"] == "3 missing"
    assert rows[("GN", 8)]["runs"] == "2 finished; 1 missing"
    for png in section.figures:
        assert png.stat().st_size > 1000 and png.with_suffix(".svg").stat().st_size > 1000


# --------------------------------------------------------------------------- config and runs

@pytest.mark.parametrize("change, message", [
    ({"num_groups": 3}, r"num_groups=3 must divide num_filters=16"),
    ({"num_groups": 1}, r"num_groups=1 must divide num_filters=16 and lie strictly between 1 and 16"),
    ({"num_groups": 16}, r"num_groups=16 must divide"),
    ({"group_sweep": (1, 3, 8, 16)}, r"group_sweep=\(1, 3, 8, 16\): \[3\] do not divide num_filters=16"),
    ({"group_sweep": (2, 8, 16)}, r"must hold 1 \(LN\).*missing \[1\]"),
    ({"group_sweep": (1, 2, 16)}, r"missing \[8\]"),
    ({"group_sweep": (1, 8, 8, 16)}, r"group_sweep must be distinct, got \(1, 8, 8, 16\)"),
    ({"group_sweep": ()}, r"group_sweep must be a non-empty tuple, got \(\)"),
    ({"batch_sizes": (32,)}, r"batch_sizes=\(32,\) needs at least two sizes"),
    ({"batch_sizes": (32, 1)}, r"batch_sizes=\(32, 1\) needs at least two sizes, each >= 2"),
    ({"batch_sizes": (32, 32)}, r"batch_sizes must be distinct, got \(32, 32\)"),
    ({"batch_sizes": (4096, 2)}, r"4096 exceeds num_train=2000"),
    ({"batch_sizes": (32, 2.5)}, r"batch_sizes must hold positive integers, got \(32, 2.5\)"),
    ({"filter_size": 4}, r"filter_size must be odd .*got 4"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
    ({"lr_decay": 0.0}, r"lr_decay must be in \(0, 1\] .*got 0.0"),
    ({"lr_decay": 2}, r"lr_decay must be in \(0, 1\] .*got 2"),
    ({"learning_rate": -0.1}, r"learning_rate must be a positive number, got -0.1"),
    ({"num_train": 0}, r"num_train must be a positive integer, got 0"),
    ({"num_test": 10.5}, r"num_test must be a positive integer, got 10.5"),
    ({"seeds": ()}, r"seeds must be a non-empty tuple"),
    ({"dataset": "imagenet"}, r"dataset must be one of .*got 'imagenet'"),
])
def test_config_refuses_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CFG, **change)


def test_runs_share_conditions_and_scale_the_learning_rate():
    specs = wh.runs(CFG)
    # BN and GN at 5 batch sizes, G = 1, 2, 4, 16 at batch 32 (G = 8 there is GN's run): 14 conditions x 3 seeds
    assert len(specs) == 14 * 3 == len({s.name for s in specs}) == len({s.spec_hash for s in specs})
    for s in specs:
        assert re.fullmatch(r"(bn|gn/G=\d+)/batch=\d+/seed=\d", s.name) and s.model == "cnn"
        b = s.tags["batch"]
        assert s.solver_kwargs["batch_size"] == b
        assert s.solver_kwargs["optim_config"] == {"learning_rate": pytest.approx(0.1 * b / 32), "momentum": 0.9}
        assert s.solver_kwargs["restore_best"] is False and s.evaluate == ("test_acc",)
        assert s.model_kwargs.get("num_groups") == s.tags["groups"]
        assert (s.tags["norm"] == "batchnorm") == (s.tags["groups"] is None)
        assert RunSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert [wh.label(CFG, g) for g in (None, 1, 2, 8, 16)] == ["BN", "LN", "GN(G=2)", "GN", "IN"]
    assert wh.quick(CFG) != CFG and wh.quick(CFG).seeds == (0, 1)


def test_module_declares_a_papers_recipe():
    assert registry.get("wu-he-2018") is wh and wh.SUITE == "papers"
    assert [c.key for c in wh.CLAIMS] == ["a", "b", "c"]
    assert wh.PAPER.arxiv == "1803.08494" and wh.PAPER.url == "https://arxiv.org/abs/1803.08494"


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def quick_section(tmp_path_factory):
    cfg = wh.quick(wh.Config())
    specs = wh.runs(cfg)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    return cfg, done, wh.analyze(cfg, done, tmp_path_factory.mktemp("wu-he-2018"))


def test_quick_end_to_end(quick_section):
    cfg, done, section = quick_section
    assert len(done) == len(wh.runs(cfg)) and all(r.status == "finished" for r in done.results), \
        {s.name: r.error for s, r in done}
    assert all("test_acc" in r.extras for r in done.results)
    assert (section.name, section.title, section.question) == (wh.NAME, wh.TITLE, wh.QUESTION)
    json.dumps(section.metrics), json.dumps(section.config), json.dumps(section.table), json.dumps(section.paper)
    assert set(section.metrics["verdicts"]) == {"a", "b", "c"}
    assert all(v in VERDICTS for v in section.metrics["verdicts"].values())
    assert [f["verdict"] for f in section.paper["findings"]] == list(section.metrics["verdicts"].values())
    assert section.config["seeds"] == list(cfg.seeds) and len(section.table) == len(wh.runs(cfg)) // 2
    names = [p.name for p in section.figures]
    assert names == ["wu-he-2018-figure1.png", "wu-he-2018-figure4.png", "wu-he-2018-table3.png"]
    for png in section.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert "<svg" in png.with_suffix(".svg").read_text()[:2000]


def test_quick_answer_quotes_the_criteria_numbers(quick_section):
    cfg, _, section = quick_section
    inputs = section.metrics["criteria_inputs"]
    err_bn = inputs[f"err_BN({cfg.normal_batch})"]
    assert fmt(err_bn, 3) in section.answer
    verdicts = section.metrics["verdicts"]
    assert "Verdicts: " + "; ".join(f"({k}) {v}" for k, v in verdicts.items()) + "." in section.answer
