"""bjorck-2018 (Bjorck, Gomes, Selman & Weinberger 2018): the criteria on synthetic results (every
verdict reachable), missing / failed / diverged runs, the statistics at initialization (closed forms,
the rebuilt initial net), the Config's validation, the runs it asks for, and the quick config executed
and analyzed end to end."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers import bjorck_2018 as bj  # noqa: E402
from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.lab.execute import build_model, execute, load_data  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402

CFG = bj.quick(bj.Config())
LRS = CFG.learning_rates


def _measure(kurtosis, share, mid_kurtosis=1.0):
    counts = [0] * CFG.hist_bins
    counts[CFG.hist_bins // 2 - 1], counts[CFG.hist_bins // 2] = 60, 40
    stats = {"kurtosis": kurtosis, "max_over_median": 10.0, "std": 0.01, "counts": counts, "beyond": 0,
             "entries": 100}
    rest = (1 - share) / 9
    return {"first": stats, "middle": {"layer": 4, **stats, "kurtosis": mid_kurtosis},
            "class_shares": [share] + [rest] * 9}


def _result(spec, acc=None, measure=None, status="finished"):
    task = spec.task
    evals = list(range(0, task["steps"] + 1, task["eval_every"]))
    history = [0.1] + [acc - 0.01 * (len(evals) - 1 - i) for i in range(1, len(evals))] if acc else [0.1, 0.1]
    losses, error, extras = [1.0] * task["steps"], None, {"eval_set": "test", "eval_steps": evals}
    if measure is not None:
        extras["measure"] = measure
    if status == "diverged":
        history, losses, error = history[:1], [1.0, None], "non-finite loss at step 2"
    if status == "failed":
        history, losses, error, extras = [], [], "Traceback: boom", {}
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=losses,
                     val_acc_history=history, best_val_acc=max(history, default=None),
                     iterations_per_epoch=task["eval_every"], extras=extras, seconds=0.2, error=error)


def _done(acc, init, drop=lambda s: False, status=lambda s: "finished") -> Runs:
    """Synthetic runs: ``acc[net]`` the final accuracies over LRS (None: diverged), ``init[net]`` (kurtosis,
    top share); every seed alike plus a wiggle of 0.001 * seed."""
    pairs = []
    for s in bj.runs(CFG):
        if drop(s):
            continue
        st = status(s)
        if s.tags["kind"] == "sweep":
            a = acc[s.tags["net"]][LRS.index(s.tags["lr"])]
            st = "diverged" if a is None else st
            pairs.append((s, _result(s, None if a is None else a + 0.001 * s.seed, status=st)))
        else:
            k, share = init[s.tags["net"]]
            pairs.append((s, _result(s, 0.1, _measure(k + 0.01 * s.seed, share), status=st)))
    return Runs(pairs)


PAPER_ACC = {"batchnorm": (0.50, 0.80, 0.85), "baseline": (0.51, 0.78, None)}
PAPER_INIT = {"batchnorm": (0.5, 0.2), "baseline": (5.0, 0.9)}


def _verdicts(done, tmp_path):
    section = bj.analyze(CFG, done, tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table, default=str)
    return section.metrics["verdicts"], section


# --------------------------------------------------------------------------- the criteria

@pytest.mark.parametrize("acc, init, expected", [
    (PAPER_ACC, PAPER_INIT, {"a": "agrees", "b": "agrees"}),
    # alike at the small rate, but both best at 0.1 and no-BN higher there; BN's top share 0.35
    ({"batchnorm": (0.50, 0.80, 0.70), "baseline": (0.51, 0.82, None)},
     {"batchnorm": (0.5, 0.35), "baseline": (5.0, 0.9)}, {"a": "partly", "b": "partly"}),
    # apart at the small rate, no-BN best at the largest rate and higher; init the other way round
    ({"batchnorm": (0.40, 0.80, 0.70), "baseline": (0.51, 0.78, 0.86)},
     {"batchnorm": (5.0, 0.6), "baseline": (0.5, 0.3)}, {"a": "disagrees", "b": "disagrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, acc, init, expected):
    verdicts, section = _verdicts(_done(acc, init), tmp_path)
    assert verdicts == expected
    assert [r["verdict"] for r in section.paper["findings"]] == [expected["a"], expected["b"]]
    assert f"Verdicts: (a) {expected['a']}; (b) {expected['b']}." in section.answer


def test_criteria_thresholds_ties_and_diverged_runs():
    accs = {("batchnorm", lr): a for lr, a in zip(LRS, (0.50, 0.80, 0.85))}
    accs.update({("baseline", lr): a for lr, a in zip(LRS, (0.525, 0.80, bj.CHANCE))})
    init = {"batchnorm": {"kurtosis": 1.0, "share": 0.3}, "baseline": {"kurtosis": 1.0, "share": 0.5}}
    # |0.50 - 0.525| <= 0.03; kurtosis tie is not "greater"; 0.5 >= 0.5 and 0.3 <= 0.3
    assert bj.criteria(accs, init, LRS) == {"a": [True, True, True], "b": [False, True, True]}
    accs[("baseline", LRS[0])] = 0.531
    assert bj.criteria(accs, init, LRS)["a"][0] is False
    # a tie in accuracy picks the smaller rate as best: BN's best 0.1 equals no-BN's best 0.1
    accs[("batchnorm", LRS[2])] = 0.80
    assert bj.best_lr(accs, "batchnorm", LRS) == (LRS[1], 0.80)
    assert bj.criteria(accs, init, LRS)["a"] == [False, False, False]
    # one unmeasured rate leaves the best-rate checks uncomputed, not the small-rate one
    accs[("baseline", LRS[1])] = None
    assert bj.criteria(accs, init, LRS)["a"] == [False, None, None]
    assert (bj.TOL_A, bj.SHARE_NOBN, bj.SHARE_BN) == (0.03, 0.5, 0.3)


def test_diverged_run_counts_as_chance_failed_as_unmeasured():
    s = next(s for s in bj.runs(CFG) if s.tags["kind"] == "sweep")
    assert bj.final_acc(_result(s, 0.8)) == pytest.approx(0.8)
    assert bj.final_acc(_result(s, 0.8, status="diverged")) == bj.CHANCE
    assert bj.final_acc(_result(s, 0.8, status="failed")) is None


def test_missing_failed_and_diverged_runs_give_not_measured(tmp_path):
    no_init = lambda s: s.tags["kind"] == "init"
    verdicts, section = _verdicts(_done(PAPER_ACC, PAPER_INIT, drop=no_init), tmp_path / "no-init")
    assert verdicts == {"a": "agrees", "b": "not measured"}
    assert "without a result" in section.answer and "not measured" in section.paper["findings"][1]["ours"]

    one_lr = lambda s: "failed" if s.tags.get("lr") == LRS[1] and s.tags["net"] == "baseline" else "finished"
    verdicts, section = _verdicts(_done(PAPER_ACC, PAPER_INIT, status=one_lr), tmp_path / "failed")
    assert section.metrics["checks"]["a"] == [True, None, None] and verdicts["a"] == "partly"
    assert "failed" in section.answer and "best rates are not measured" in section.answer

    bn_init = lambda s: "failed" if s.tags == {"kind": "init", "net": "batchnorm"} and s.seed == 0 else "finished"
    verdicts, section = _verdicts(_done(PAPER_ACC, PAPER_INIT, status=bn_init), tmp_path / "bn-init")
    # BN's kurtosis and share unmeasured; no-BN's share alone holds: an uncomputed check never agrees
    assert section.metrics["checks"]["b"] == [None, True, None] and verdicts["b"] == "partly"

    verdicts, section = _verdicts(Runs(), tmp_path / "none")
    assert set(verdicts.values()) == {"not measured"}
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)


# --------------------------------------------------------------------------- statistics at initialization

def test_excess_kurtosis_closed_forms(rng):
    assert bj.excess_kurtosis([-1.0, 1.0, -1.0, 1.0]) == pytest.approx(-2.0)      # two points: 1 - 3
    # deviations (-1, -1, -1, 3): m2 = 12/4 = 3, m4 = 84/4 = 21, 21/9 - 3 = -2/3
    assert bj.excess_kurtosis([0.0, 0.0, 0.0, 4.0]) == pytest.approx(-2 / 3)
    assert abs(bj.excess_kurtosis(rng.normal(size=200_000))) < 0.05
    assert bj.excess_kurtosis(rng.laplace(size=200_000)) == pytest.approx(3.0, abs=0.15)
    with pytest.raises(ValueError, match="variance is 0"):
        bj.excess_kurtosis(np.ones(5))


def test_tail_stats_and_class_shares():
    g = np.array([[-2.0, -1.0], [1.0, 2.0], [0.5, -0.5]])
    s = bj.tail_stats(g, hist_range=3.0, hist_bins=6)
    assert s["max_over_median"] == pytest.approx(2.0 / 1.0) and s["entries"] == 6 and s["beyond"] == 0
    assert sum(s["counts"]) == 6 and s["std"] == pytest.approx(np.std(g))
    scores = np.array([[1, 0, 0], [2, 0, 1], [0, 5, 1], [3, 1, 0]], dtype=float)
    assert bj.class_shares(scores) == [0.75, 0.25, 0.0]


def test_at_init_measures_the_runs_initial_net():
    """The measure ignores the model it is given and rebuilds the run's net at initialization."""
    spec = next(s for s in bj.runs(CFG) if s.tags == {"kind": "init", "net": "baseline"} and s.seed == 0)
    data = load_data(spec.dataset, spec.num_train, spec.num_val, spec.num_test, True)
    kw = spec.task["measure"]["kwargs"]
    m = bj.at_init(None, data, **kw)
    net = build_model(spec, data)
    _, grads = net.loss(data["X_train"][:CFG.grad_samples], data["y_train"][:CFG.grad_samples])
    assert m["first"]["kurtosis"] == pytest.approx(bj.excess_kurtosis(grads["W1"]), rel=1e-12)
    assert m["class_shares"] == bj.class_shares(net.scores(data["X_test"][:CFG.share_samples], "train"))
    assert m["middle"]["layer"] == len(CFG.hidden_dims) // 2 + 1
    r = execute(spec)
    assert r.status == "finished" and r.extras["measure"] == json.loads(json.dumps(m))


# --------------------------------------------------------------------------- config and runs

@pytest.mark.parametrize("field, value, match", [
    ("hidden_dims", (100, 0), r"hidden_dims must hold positive integers, got \(100, 0\)"),
    ("learning_rates", (0.1, 0.01), r"learning_rates must be at least two distinct rates in increasing order"),
    ("learning_rates", (0.1,), r"at least two distinct rates.*got \(0.1,\)"),
    ("learning_rates", (0.0, 0.1), r"learning_rates must hold positive numbers, got \(0.0, 0.1\)"),
    ("steps", 0, "steps must be a positive integer, got 0"),
    ("eval_every", 500, "eval_every=500 exceeds steps=200"),
    ("batch_size", 30000, "batch_size=30000 exceeds num_train=20000"),
    ("share_samples", 6000, "share_samples=6000 exceeds num_test=5000"),
    ("grad_samples", 1, "grad_samples=1 and share_samples=1000 must be at least 2"),
    ("weight_scale", float("nan"), "weight_scale must be a positive number, got nan"),
    ("seeds", (0, 0), r"seeds must be distinct, got \(0, 0\)"),
    ("dataset", "imagenet", "dataset must be one of .*got 'imagenet'"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(bj.Config(), **{field: value})


def test_runs_follow_the_protocol():
    cfg = bj.Config()
    specs = bj.runs(cfg)
    assert len(specs) == 2 * 7 * 3 + 2 * 3 and len({s.spec_hash for s in specs}) == len(specs)
    assert len({s.name for s in specs}) == len(specs)
    for s in specs:
        assert s.model_kwargs["weight_scale"] == pytest.approx(np.sqrt(2 / 100))
        assert s.model_kwargs["hidden_dims"] == [100] * 10 and s.task["update_rule"] == "sgd"
        assert s.model_kwargs["normalization"] == ("batchnorm" if s.tags["net"] == "batchnorm" else None)
    sweep = [s for s in specs if s.tags["kind"] == "sweep"]
    assert {s.task["optim_config"]["learning_rate"] for s in sweep} == set(cfg.learning_rates)
    assert all(s.task["steps"] == 200 and s.task["batch_size"] == 128 for s in sweep)
    assert np.allclose(np.diff(np.log10(cfg.learning_rates)), 0.5, atol=0.002)
    assert bj.quick(cfg) != cfg and bj.SUITE == "papers" and [c.key for c in bj.CLAIMS] == ["a", "b"]


# --------------------------------------------------------------------------- end to end

def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = bj.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status in ("finished", "diverged") for r in done.results), {r.name: r.error for r in done.results}
    assert all(r.status == "finished" for s, r in done if s.tags["kind"] == "init")
    section = bj.analyze(CFG, done, tmp_path)
    assert time.process_time() - start < 30          # CPU time (~6 s); wall time depends on the machine's load
    assert (section.name, section.title, section.question) == (bj.NAME, bj.TITLE, bj.QUESTION)
    assert len(section.figures) == 3
    for png in section.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert "<svg" in png.with_suffix(".svg").read_text()[:2000]
    json.dumps(section.metrics), json.dumps(section.config), json.dumps(section.paper)
    assert set(section.metrics["verdicts"]) == {"a", "b"}
    assert all(v in VERDICTS and v != "not measured" for v in section.metrics["verdicts"].values())
    assert section.paper["cite"].startswith("Johan Bjorck") and section.paper["url"].endswith("1806.02375")
    assert "nan" not in section.answer.lower()
