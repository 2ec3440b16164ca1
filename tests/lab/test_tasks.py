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
