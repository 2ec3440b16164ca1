"""The sweep budget: estimates grow with what costs, and the refusals name the
estimate, the bound and the fix. (How close the estimates are to measured runs
is what benchmarks/budget_calibration.py prints.)"""
from dataclasses import replace

import pytest

from normlab.lab import budget
from normlab.experiments import bn_vs_baseline, spatial_bn
from normlab.lab.runs import RunSpec


def _fc(**kw):
    spec = bn_vs_baseline.runs(bn_vs_baseline.Config())[0]
    mk = {**spec.model_kwargs, **kw.pop("model", {})}
    sk = {**spec.solver_kwargs, **kw.pop("solver", {})}
    return replace(spec, model_kwargs=mk, solver_kwargs=sk, **kw)


def test_cost_grows_with_width_epochs_and_data():
    base = budget.run_cost(_fc())
    wide = budget.run_cost(_fc(model={"hidden_dims": [10_000] * 5}))
    long = budget.run_cost(_fc(solver={"num_epochs": 100}))
    more = budget.run_cost(_fc(num_train=50_000))
    assert wide.bytes > base.bytes and wide.seconds > base.seconds
    assert long.seconds > 5 * base.seconds and long.bytes == base.bytes
    assert more.data_bytes > base.data_bytes and more.seconds > base.seconds
    assert base.seconds > 0 and 100e6 < base.bytes < 1e9      # a process and a small data set
    assert budget.run_cost(_fc(engine="torch")).bytes > base.bytes


def test_conv_runs_are_costed():
    spec = spatial_bn.runs(spatial_bn.Config())[0]
    cost = budget.run_cost(spec)
    bigger = budget.run_cost(replace(spec, model_kwargs={**spec.model_kwargs, "num_filters": 256}))
    assert bigger.seconds > 4 * cost.seconds and bigger.bytes > cost.bytes


def test_estimate_of_a_sweep():
    specs = [_fc(seed=s) for s in range(6)]
    one, two = budget.estimate(specs, jobs=1), budget.estimate(specs, jobs=2)
    assert two.workers == 2 and one.workers == 1
    assert two.seconds == pytest.approx(one.seconds / 2)
    assert budget.estimate(specs[:1], jobs=8).workers == 1           # never more workers than runs
    assert one.worker_bytes == two.worker_bytes
    assert budget.estimate([], jobs=2).runs == ()
    assert budget.describe(one).startswith("estimated ") and "per worker process" in budget.describe(one)


def test_memory_refusal_names_the_estimate_the_bound_and_the_fix():
    est = budget.estimate([_fc(model={"hidden_dims": [100_000_000]})], jobs=1)
    with pytest.raises(ValueError) as err:
        budget.check(est, memory=16e9)
    msg = str(err.value)
    assert msg.startswith("this sweep is estimated to need ") and "more than 80% of the 16 GB available" in msg
    assert "bn-vs-baseline/baseline/seed=0" in msg and " holds " in msg and "pass --yes" in msg
    budget.check(est, local=False, memory=16e9, max_seconds=1e9)   # a Dask cluster's memory is not ours to judge


def test_time_refusal_and_the_bound():
    est = budget.estimate([_fc(solver={"num_epochs": 10**30})], jobs=1)
    with pytest.raises(ValueError, match=r"estimated to take .* years .* over the 12 h bound; use fewer epochs"):
        budget.check(est, memory=1e12)
    with pytest.raises(ValueError, match="over the 12 h bound"):
        budget.check(est, local=False)           # on a cluster the longest run bounds the sweep
    small = budget.estimate([_fc()], jobs=1)
    budget.check(small, memory=16e9)
    with pytest.raises(ValueError, match="over the 0 s bound"):
        budget.check(small, memory=16e9, max_seconds=0)


def test_nonsense_sizes_do_not_crash_the_estimate():
    spec = _fc()
    weird = replace(spec, solver_kwargs={**spec.solver_kwargs, "batch_size": 0, "num_train_samples": None})
    assert budget.run_cost(weird).seconds > 0
    assert isinstance(budget.run_cost(RunSpec(experiment="x", name="y", model="cnn")).bytes, float)
