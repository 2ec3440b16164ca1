"""The run data model (normlab.lab.runs): spec hashes that never change, tags outside
the hash, one set of dataset names, and ``Runs``, the (spec, result) pairs a recipe's
analyze receives."""
from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from normlab.data.registry import names as dataset_names
from normlab.experiments import batch_size, bn_vs_baseline, spatial_bn, train_eval_mode, weight_scale
from normlab.lab.runs import DATASETS, RunResult, Runs, RunSpec, recipe_results

# Hashes of runs trained by the pre-regroup code (its full `normlab reproduce`, runs.sqlite),
# and of CIFAR-10 specs as the pre-regroup code spelled them ("cifar10"): stored run
# directories resume only while these stay the same.
STORED = {
    ("bn-vs-baseline", "baseline/seed=0"): "c741320c8afd9f419359e52f68feaa493729cd5c45c29cf0ef235eac8aa7dc59",
    ("bn-vs-baseline", "torch/batchnorm/seed=2"): "9468d5449c109668aaf1acd4a854928422cf2f955e0bcdbe6dc6955a42533a1f",
    ("weight-scale", "batchnorm/scale=1.0e-04/seed=1"):
        "53163959e8b3fd5ac603448b129446c96ec83b7aa24505b17d3d298b96c02575",
    ("weight-scale", "baseline/scale=1.0e+00/seed=0"):
        "4e86ef4d250ea73972172e0e25120e4c9505cd268cf86429e0ffced292b36939",
    ("batch-size", "layernorm/batch=50/seed=1"): "0f3d0af24138cd63436f458f48110f6a054c37ee0d6c35f68203d0f8fb7af53a",
    ("batch-size", "baseline/batch=5/seed=0"): "66d7c14f72baaf4ba012c0e29f7c21fb45964022e55988b1d9665213e82d6c97",
    ("train-eval-mode", "batchnorm/seed=0"): "2dd7100f8395da5455fff423c37ddf52521b8ee6994fa0560fb0af3db8e5b661",
    ("spatial-bn", "groupnorm/seed=2"): "6f489e0b9860375638ac883a59e22a477d1893544236a5d6e9e2e4c1d97da599",
}
CIFAR = {
    ("bn-vs-baseline", "baseline/seed=0"): "f0a62a9ef8c6b3978142336818f7c181b64552a6bd613f9a11851303bea679c1",
    ("bn-vs-baseline", "torch/batchnorm/seed=2"): "45899cde3728870f651f1765e661af02fe19c3d8ee15fc6f7bbe63866bc75b82",
    ("spatial-bn", "baseline/seed=0"): "fb9c9c3336ed95fbc3c6d431ee2ca51cc64a3706dbabea18d987a7bfbd2c80fe",
}
MODULES = {m.NAME: m for m in (bn_vs_baseline, weight_scale, batch_size, train_eval_mode, spatial_bn)}


def _specs(name, **cfg):
    mod = MODULES[name]
    engine = "both" if name == "bn-vs-baseline" else "numpy"       # the full reproduce's engines
    return {s.name: s for s in mod.runs(mod.Config(**{"engine": engine, **cfg}))}


@pytest.mark.parametrize("key", list(STORED), ids="/".join)
def test_stored_runs_keep_their_hashes(key):
    spec = _specs(key[0])[key[1]]
    assert spec.tags                                           # tagged, yet hashed as before tags existed
    assert spec.spec_hash == STORED[key]
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).spec_hash == STORED[key]


@pytest.mark.parametrize("key", list(CIFAR), ids="/".join)
def test_cifar_runs_keep_their_hashes_under_either_spelling(key):
    for spelling in ("cifar10", "cifar-10"):
        spec = _specs(key[0], dataset=spelling)[key[1]]
        assert spec.dataset == "cifar-10" and spec.spec_hash == CIFAR[key]
    legacy = {k: v for k, v in spec.to_dict().items() if k != "tags"}
    legacy["dataset"] = "cifar10"                              # a spec stored by the pre-regroup code
    assert RunSpec.from_dict(legacy) == dataclasses.replace(spec, tags={})
    assert RunSpec.from_dict(legacy).spec_hash == CIFAR[key]


def test_tags_describe_a_run_but_are_not_its_identity():
    a = RunSpec(experiment="x", name="a/seed=0", model="fc")
    b = dataclasses.replace(a, tags={"net": "batchnorm", "scale": 1e-4, "batch": 5, "ok": True, "none": None})
    assert a != b and a.spec_hash == b.spec_hash
    assert RunSpec.from_dict(json.loads(json.dumps(b.to_dict()))) == b        # typed values survive JSON
    assert dataclasses.replace(a, name="b/seed=0").spec_hash != a.spec_hash   # the name still is
    for bad in ({"scale": float("nan")}, {"dims": [1, 2]}, {1: "x"}, "net=batchnorm"):
        with pytest.raises(ValueError, match="tag"):
            RunSpec(experiment="x", name="a", model="fc", tags=bad)
    with pytest.raises(ValueError, match="tags must be an object"):
        RunSpec.from_dict({**a.to_dict(), "tags": ["net"]})


def test_dataset_names_are_the_data_registrys():
    assert DATASETS == dataset_names() == ("fashion-mnist", "mnist", "cifar-10")
    assert RunSpec(experiment="x", name="a", model="fc", dataset="cifar10").dataset == "cifar-10"
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; expected one of fashion-mnist, mnist, cifar-10"):
        RunSpec(experiment="x", name="a", model="fc", dataset="imagenet")


def _result(spec, status="finished", val=0.5):
    return RunResult(spec_hash=spec.spec_hash, experiment=spec.experiment, name=spec.name, status=status,
                     val_acc_history=[val])


def test_runs_select_by_tags_engine_and_seed_never_by_name():
    specs = [RunSpec(experiment="x", name=f"{pre}{net}/b={b}/seed={s}", model="fc", seed=s, engine=e,
                     tags={"net": net, "batch": b})
             for e, pre in (("numpy", ""), ("torch", "torch/")) for net in ("bn", "ln") for b in (5, 50)
             for s in (2, 0, 1)]
    results = {s.spec_hash: _result(s, val=i / 100) for i, s in enumerate(specs)
               if (s.seed, s.tags["batch"]) != (1, 50)}                  # seed 1 at batch 50 has no result
    done = recipe_results(specs, results)
    assert isinstance(done, Runs) and len(done) == len(results) == 20
    assert done.specs == [s for s in specs if s.spec_hash in results]                   # the recipe's order
    assert [r.name for r in done.results] == [s.name for s in done.specs]
    bn5 = done.where(net="bn", batch=5)
    assert [(s.engine, s.seed) for s in bn5.specs] == [("numpy", 2), ("numpy", 0), ("numpy", 1),
                                                       ("torch", 2), ("torch", 0), ("torch", 1)]
    assert [s.seed for s in bn5.on("torch").by_seed().specs] == [0, 1, 2]
    assert [s.seed for s in done.where(net="ln", batch=50).on("numpy").by_seed().specs] == [0, 2]
    assert len(done.where(net="bn", batch=7)) == 0 and len(done.where(colour="red")) == 0
    assert list(done.by_engine()) == ["numpy", "torch"]
    assert list(done.on("numpy").by_engine()) == ["numpy"]
    assert done.on("numpy").by_engine(["numpy", "torch"])["torch"] == Runs()   # asked for: present, empty
    with pytest.raises(ValueError, match="unknown engine 'jax'"):
        done.on("jax")
    assert pickle.loads(pickle.dumps(done)) == done and pickle.loads(pickle.dumps(Runs())) == Runs()
    assert recipe_results([], results) == Runs() and not Runs()
    with pytest.raises(TypeError, match=r"\(RunSpec, RunResult\) pairs"):
        Runs([(specs[0], "not a result")])
