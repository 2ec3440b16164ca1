"""A RunSpec's task (step-wise training with probes): its schema, its identity, and a run of it."""
import json

import numpy as np
import pytest

from normlab.lab.runs import RunSpec
from normlab.lab.tasks import check_task

TASK = {"kind": "steps", "steps": 30, "batch_size": 20, "update_rule": "sgd", "optim_config": {"learning_rate": 0.1},
        "eval_every": 10, "eval_samples": 200}


def _spec(**task):
    return RunSpec(experiment="t", name="r", model="fc", model_kwargs={"hidden_dims": [16, 16]},
                   num_train=400, num_val=50, num_test=200, task={**TASK, **task})


def test_a_spec_without_task_keeps_its_identity():
    plain = RunSpec(experiment="t", name="r", model="fc")
    assert "task" not in plain.to_dict()
    assert RunSpec.from_dict(plain.to_dict()) == plain
    with_task = _spec()
    assert with_task.to_dict()["task"] == {**TASK}
    assert RunSpec.from_dict(json.loads(json.dumps(with_task.to_dict()))) == with_task
    assert with_task.spec_hash != RunSpec(experiment="t", name="r", model="fc", model_kwargs={"hidden_dims": [16, 16]},
                                          num_train=400, num_val=50, num_test=200).spec_hash
    assert _spec(steps=31).spec_hash != with_task.spec_hash


@pytest.mark.parametrize("change, message", [
    ({"kind": "epochs"}, "task kind 'epochs' is unknown"),
    ({"steps": 0}, "task 'steps' must be a positive integer, got 0"),
    ({"batch_size": True}, "task 'batch_size' must be a positive integer"),
    ({"update_rule": "lbfgs"}, "update_rule 'lbfgs' is unknown; expected one of sgd"),
    ({"optim_config": {"learning_rate": -1}}, "learning_rate must be a finite number > 0, got -1"),
    ({"eval_set": "train"}, "eval_set must be 'test' or 'val'"),
    ({"probes": {"hessian": {}}}, "unknown probe 'hessian'"),
    ({"probes": {"ics": {}}}, "probe 'ics' needs 'layers'"),
    ({"probes": {"ics": {"layers": [0]}}}, "probe 'ics' needs 'layers'"),
    ({"probes": {"landscape": {"multipliers": [0]}}}, "multipliers must be positive"),
    ({"probes": {"percentiles": {"layer": 1, "q": [101]}}}, r"percentiles q must be .* in \[0, 100\]"),
    ({"probes": {"percentiles": {"layer": 1, "bins": 3}}}, "probe 'percentiles' takes a dict with keys among"),
    ({"epochs": 3}, r"unknown task key\(s\) \['epochs'\]"),
])
def test_bad_tasks_are_refused_naming_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        check_task({**TASK, **change}, "fc")
    with pytest.raises(ValueError, match=message):
        _spec(**change)


def test_percentiles_need_an_fc_net():
    with pytest.raises(ValueError, match="'percentiles' probe needs an fc model"):
        check_task({**TASK, "probes": {"percentiles": {"layer": 1}}}, "cnn")
    with pytest.raises(ValueError, match="task must be an object or null"):
        RunSpec.from_dict({"experiment": "t", "name": "r", "model": "fc", "task": [1]})


def test_a_task_run_trains_step_by_step_and_is_reproducible():
    from normlab.lab.execute import execute
    spec = _spec(probe_every=10, probes={"ics": {"layers": [1, 3]}, "landscape": {"multipliers": [0.5, 2]},
                                         "percentiles": {"layer": 2, "samples": 100}})
    r = execute(spec)
    assert r.status == "finished", r.error
    assert len(r.loss_history) == 30 and all(np.isfinite(r.loss_history))
    assert r.extras["eval_steps"] == [0, 10, 20, 30] and len(r.val_acc_history) == 4
    assert r.best_val_acc == max(r.val_acc_history) and r.iterations_per_epoch == 400 // 20
    assert r.extras["probe_steps"] == [0, 10, 20]
    ics = r.extras["probes"]["ics"]
    assert len(ics) == 3 and ics[0]["l2"][0] == 0.0          # layer 1 has no earlier layer to shift it
    pct = np.asarray(r.extras["probes"]["percentiles"])
    assert pct.shape == (3, 3, 16) and np.all(np.diff(pct, axis=1) >= 0)     # p15 <= p50 <= p85 per unit
    assert len(r.extras["probes"]["landscape"]) == 3
    json.dumps(r.to_dict())
    again = execute(spec)
    assert again.loss_history == r.loss_history and again.extras == r.extras


def test_a_diverging_task_run_ends_as_diverged():
    from normlab.lab.execute import execute
    r = execute(_spec(optim_config={"learning_rate": 1e12}, steps=50))
    assert r.status == "diverged" and "non-finite loss" in r.error
    assert r.loss_history[-1] is None and len(r.loss_history) < 50


def test_a_task_measures_the_trained_model_and_the_training_accuracy(monkeypatch):
    import sys
    import types
    from normlab.lab.execute import execute
    mod = types.ModuleType("normlab.experiments._measure_for_test")
    seen = {}

    def measure(model, data, scale=1):
        seen["params"] = sorted(model.params)
        return {"n_test": len(data["X_test"]) * scale, "w1_norm": float(np.linalg.norm(model.params["W1"]))}
    mod.measure = measure
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    r = execute(_spec(train_eval_samples=100, measure={"fn": f"{mod.__name__}:measure", "kwargs": {"scale": 2}}))
    assert r.status == "finished", r.error
    assert r.extras["measure"]["n_test"] == 400 and seen["params"][0] == "W1"
    assert len(r.train_acc_history) == len(r.val_acc_history) == 4


@pytest.mark.parametrize("measure, message", [
    ({"fn": "os:system"}, "must name a function of a normlab recipe"),
    ({"fn": "normlab.experiments.x:not an identifier"}, "must name a function of a normlab recipe"),
    ({"fn": 3}, "task measure must be"), ({"fn": "normlab.experiments.x:f", "args": []}, "task measure must be"),
])
def test_a_measure_outside_the_recipes_is_refused(measure, message):
    with pytest.raises(ValueError, match=message):
        check_task({**TASK, "measure": measure}, "fc")


def test_few_class_batches_take_half_of_each_of_two_classes():
    from normlab.lab.stepwise import _few_class_batches
    y = np.repeat(np.arange(10), 30)
    batches = _few_class_batches(y, 8, np.random.default_rng(0))
    for _ in range(20):
        idx = next(batches)
        classes, counts = np.unique(y[idx], return_counts=True)
        assert len(idx) == 8 and len(classes) == 2 and list(counts) == [4, 4] and len(set(idx)) == 8


def test_a_few_classes_task_trains_and_bad_orders_are_refused():
    from normlab.lab.execute import execute
    r = execute(_spec(batch_order="few_classes"))
    assert r.status == "finished", r.error
    with pytest.raises(ValueError, match="batch_order must be one of"):
        check_task({**TASK, "batch_order": "sorted"}, "fc")
    with pytest.raises(ValueError, match="batch_size must be even"):
        check_task({**TASK, "batch_size": 7, "batch_order": "few_classes"}, "fc")


def test_a_task_takes_no_solver_options_or_evaluations():
    with pytest.raises(ValueError, match="takes no solver_kwargs or evaluate"):
        RunSpec(experiment="t", name="r", model="fc", task=TASK, evaluate=("test_acc",))
    with pytest.raises(ValueError, match="takes no solver_kwargs or evaluate"):
        RunSpec(experiment="t", name="r", model="fc", task=TASK, solver_kwargs={"num_epochs": 2})
