"""eval-mode: the criteria on synthetic results (every verdict reachable), missing runs, the Config's
validation, the train-mode measurement against a forward pass by hand, and the quick config end to end."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.pitfalls import eval_mode as em  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402
from normlab.models import FullyConnectedNet  # noqa: E402

CFG = em.quick(em.Config())
MSG = ("expected more than 1 value per channel when training, got input shape (1, 32); "
       "use a batch of at least 2 or mode='test'")


def _result(spec, acc_eval, acc8, acc256, msg=MSG, status="finished"):
    m = {"eval": acc_eval, "train": {"1": None, "8": acc8, "256": acc256}, "refused": {"1": msg} if msg else {}}
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0],
                     val_acc_history=[0.1, acc_eval], best_val_acc=acc_eval, iterations_per_epoch=1,
                     extras={"measure": m} if status == "finished" else {}, seconds=0.1)


def _done(*accs, msg=MSG, drop=False):
    specs = em.runs(CFG)[1:] if drop else em.runs(CFG)
    return Runs((s, _result(s, *accs, msg=msg)) for s in specs)


@pytest.mark.parametrize("accs, msg, expected", [
    ((0.83, 0.75, 0.83), MSG, {"a": "agrees", "b": "agrees", "c": "agrees"}),
    ((0.83, 0.825, 0.80), MSG, {"a": "agrees", "b": "disagrees", "c": "disagrees"}),
    ((0.83, 0.75, 0.83), "some error", {"a": "disagrees", "b": "agrees", "c": "agrees"}),
    ((0.83, 0.75, 0.83), None, {"a": "disagrees", "b": "agrees", "c": "agrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, accs, msg, expected):
    section = em.analyze(CFG, _done(*accs, msg=msg), tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper), json.dumps(section.table)
    assert section.metrics["verdicts"] == expected
    assert "Verdicts: (a) " + expected["a"] in section.answer


def test_criteria_partly_and_not_measured(tmp_path):
    assert em.verdict([True, False]) == "partly"
    assert em.criteria([True, None], 0.8, 0.7, 0.8)["a"] == [None]
    assert em.criteria([True, True], None, 0.7, 0.8) == {"a": [True], "b": [None], "c": [None]}
    section = em.analyze(CFG, _done(0.83, 0.75, 0.83, drop=True), tmp_path / "missing")
    assert set(section.metrics["verdicts"].values()) == {"not measured"} and "without a result" in section.answer
    section = em.analyze(CFG, Runs(), tmp_path / "none")
    assert set(section.metrics["verdicts"].values()) == {"not measured"}
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)


@pytest.mark.parametrize("field, value, match", [
    ("num_train", 0, "num_train must be a positive integer, got 0"),
    ("small_test_batch", 1, "need 2 <= small_test_batch < large_test_batch <= num_test, got 1"),
    ("large_test_batch", 8192, "got 8, 8192, 4096"),
    ("batch_size", 10000, "batch_size=10000 exceeds num_train=4096"),
    ("update_rule", "lbfgs", "update_rule must be one of .*got 'lbfgs'"),
    ("learning_rate", float("nan"), "learning_rate must be a positive number, got nan"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(em.Config(), **{field: value})


def test_measure_matches_batches_by_hand_and_leaves_the_model_unchanged():
    rng = np.random.default_rng(0)
    model = FullyConnectedNet([6], input_dim=5, num_classes=3, normalization="batchnorm", rng_seed=0,
                              dtype=np.float64)
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 3, size=40)
    for _ in range(5):
        model.loss(rng.normal(size=(16, 5)), rng.integers(0, 3, size=16))
    before = model.state_arrays()
    out = em.measure(model, {"X_test": X, "y_test": y}, [1, 8])
    by_hand = np.concatenate([model.scores(X[i:i + 8], "train").argmax(1) for i in range(0, 40, 8)])
    model.load_state_arrays(before)
    assert out["train"]["8"] == pytest.approx(np.mean(by_hand == y))
    assert out["eval"] == pytest.approx(np.mean(model.loss(X).argmax(1) == y))
    assert out["train"]["1"] is None and all(w in out["refused"]["1"] for w in em.FIX_WORDS)
    after = model.state_arrays()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_torch_refuses_one_value_per_channel_too():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.BatchNorm1d(4).train()(torch.zeros(1, 4))


def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = em.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results)
    section = em.analyze(CFG, done, tmp_path)
    json.dumps(section.metrics), json.dumps(section.paper)
    assert all(v in VERDICTS for v in section.metrics["verdicts"].values())
    assert section.metrics["verdicts"]["a"] == "agrees"
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)
    assert time.process_time() - start < 20
