"""finetune-shift: the criterion on synthetic results (each verdict reachable), missing runs, the Config's
validation, the shift and the recomputed statistics on known data, and the quick config end to end."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.pitfalls import finetune_shift as ft  # noqa: E402
from normlab.lab.execute import execute, load_data  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402
from normlab.models import FullyConnectedNet  # noqa: E402

CFG = ft.quick(ft.Config())


def _result(spec, accs: dict, status="finished"):
    measure = {m: {"steps": [0, 40], "acc": [0.2, a + 0.001 * spec.seed]} for m, a in accs.items()}
    measure.update({"source_acc_on_shifted": 0.2, "recomputed_no_finetune_acc": 0.7, "source_acc": 0.8})
    ok = status == "finished"
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0] * 4,
                     val_acc_history=[0.1, 0.8] if ok else [], best_val_acc=0.8 if ok else None,
                     iterations_per_epoch=10, extras={"eval_set": "test", "eval_steps": [0, 100],
                                                      **({"measure": measure} if ok else {})},
                     seconds=0.1, error=None if ok else "boom")


def _done(accs, drop=lambda s: False, status=lambda s: "finished"):
    return Runs([(s, _result(s, accs, status(s))) for s in ft.runs(CFG) if not drop(s)])


@pytest.mark.parametrize("accs, expected", [
    ({"train": 0.80, "frozen": 0.70, "recomputed": 0.81}, "agrees"),
    ({"train": 0.69, "frozen": 0.70, "recomputed": 0.81}, "partly"),
    ({"train": 0.69, "frozen": 0.70, "recomputed": 0.60}, "disagrees"),
])
def test_verdicts_from_synthetic_runs(tmp_path, accs, expected):
    section = ft.analyze(CFG, _done(accs), tmp_path)
    assert section.metrics["verdicts"] == {"a": expected}
    assert section.metrics["criteria_inputs"]["acc_frozen"] == pytest.approx(0.70 + 0.0005)
    json.dumps(section.metrics)


def test_missing_and_failed_runs_give_not_measured(tmp_path):
    accs = {"train": 0.80, "frozen": 0.70, "recomputed": 0.81}
    for done in (_done(accs, drop=lambda s: s.seed == 1), _done(accs, status=lambda s: "failed" if s.seed else
                                                                "finished"), Runs([])):
        section = ft.analyze(CFG, done, tmp_path)
        assert section.metrics["verdicts"] == {"a": "not measured"}
        json.dumps(section.metrics)
    no_frozen = _done({"train": 0.80, "recomputed": 0.81})
    assert ft.analyze(CFG, no_frozen, tmp_path).metrics["verdicts"] == {"a": "not measured"}


@pytest.mark.parametrize("field, value, match", [
    ("contrast", 0.0, "contrast must be a positive number, got 0.0"), ("brightness", float("nan"), "nan"),
    ("finetune_steps", 0, "finetune_steps"), ("batch_size", 50000, "batch_size=50000"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        ft.Config(**{field: value})


def test_shift_is_applied_to_the_raw_pixels():
    data = load_data("fashion-mnist", 300, None, 200, True)
    Xs, Xt = ft.shifted(data, "fashion-mnist", 300, 200, 0.5, 0.5)
    raw = ft.load_raw("fashion-mnist", 300, 200)
    mean = raw["X_train"].reshape(300, -1).mean(axis=0, dtype=np.float64)
    np.testing.assert_allclose(Xt + mean, 0.5 * raw["X_test"].reshape(200, -1) + 0.5, atol=1e-5)
    np.testing.assert_allclose(Xs + mean, 0.5 * raw["X_train"].reshape(300, -1) + 0.5, atol=1e-5)


def test_recomputed_statistics_make_eval_mode_equal_train_mode_on_that_set():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 6)) * 3 + 2
    net = FullyConnectedNet([5, 4], input_dim=6, num_classes=3, normalization="batchnorm", bias_before_norm=False,
                            weight_scale=0.5, dtype=np.float64, rng_seed=0)
    net.params["beta1"] += 0.3        # so layer 2's input depends on layer 1's statistics
    ft.recompute_stats(net, X)
    state = net.state_arrays()
    # eval mode with the recomputed statistics is train mode on the whole set (up to eps)
    np.testing.assert_allclose(net.scores(X, "test"), net.scores(X, "train"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state["running_mean1"], (X @ net.params["W1"]).mean(axis=0), rtol=1e-12)


def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = ft.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results), {r.name: r.error for r in done.results}
    section = ft.analyze(CFG, done, tmp_path)
    assert time.process_time() - start < 40
    assert section.name == ft.NAME and len(section.figures) == 1
    for png in section.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in png.with_suffix(".svg").read_text()[:2000]
    json.dumps(section.metrics), json.dumps(section.paper)
    assert section.metrics["verdicts"]["a"] in VERDICTS and section.metrics["verdicts"]["a"] != "not measured"
    m = done.results[0].extras["measure"]
    assert set(m) >= {"train", "frozen", "recomputed", "source_acc_on_shifted", "recomputed_no_finetune_acc"}
    assert m["frozen"]["steps"][-1] == CFG.finetune_steps
