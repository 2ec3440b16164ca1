"""The experiment recipes: each quick config end to end (execute + analyze),
Config validation, the registry, diverged/failed/missing runs, and answers
that follow the numbers (synthetic results where normalization loses)."""
from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

pytest.importorskip("matplotlib")

from normlab.experiments import registry
from normlab.lab.plan import suite_names  # noqa: E402
from normlab.experiments import (batch_size, bn_backward_speed, bn_forward, bn_vs_baseline, gradcheck,  # noqa: E402
                                 spatial_bn, train_eval_mode, weight_scale)
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunSpec, Section, recipe_results  # noqa: E402
from normlab.experiments.summarize import fmt  # noqa: E402

COURSE_ORDER = ["bn-forward", "gradcheck", "bn-backward-speed", "bn-vs-baseline", "weight-scale", "batch-size",
                "train-eval-mode", "spatial-bn", "crosscheck"]


def _numbers(obj):
    """Every finite number in a JSON-like structure."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and math.isfinite(obj):
        yield obj


def _check_figures(section: Section):
    assert section.figures
    for png in section.figures:
        assert png.suffix == ".png" and png.stat().st_size > 1000
        svg = png.with_suffix(".svg")
        assert svg.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text()[:2000]
    assert not [p for p in section.figures[0].parent.iterdir() if p.name.endswith(".tmp")]


def _answer_quotes_metrics(section: Section):
    numbers = list(_numbers(section.metrics))
    quoted = {fmt(v, d) for v in numbers for d in (1, 2, 3)} | {f"{v:.1e}" for v in numbers}
    quoted |= {str(v) for v in numbers if isinstance(v, int)}
    found = [q for q in quoted if re.search(r"(?<![\d.])" + re.escape(q) + r"(?![\d])", section.answer)]
    assert found, f"no metric appears in the answer: {section.answer}"


# --------------------------------------------------------------------------- end to end (quick)

@pytest.fixture(scope="module")
def quick_sections(tmp_path_factory):
    """Every recipe's quick config: runs executed serially, then analyzed."""
    out = {}
    for name in suite_names("course"):
        mod = registry.RECIPES[name]
        cfg = mod.quick(mod.Config())
        specs = mod.runs(cfg)
        done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
        results = {s.name: r for s, r in done}
        d = tmp_path_factory.mktemp(name)
        out[name] = (cfg, specs, results, mod.analyze(cfg, done, d))
    return out


@pytest.mark.parametrize("name", COURSE_ORDER)
def test_quick_recipe_end_to_end(quick_sections, name):
    if name == "crosscheck":
        pytest.importorskip("torch", reason="the crosscheck section compares against PyTorch (normlab[torch])")
    cfg, specs, results, section = quick_sections[name]
    mod = registry.get(name)
    assert all(r.status == "finished" for r in results.values()), {n: r.error for n, r in results.items()}
    assert isinstance(section, Section)
    assert (section.name, section.title, section.question) == (mod.NAME, mod.TITLE, mod.QUESTION)
    _check_figures(section)
    _answer_quotes_metrics(section)
    json.dumps(section.metrics), json.dumps(section.config), json.dumps(section.table, default=str)
    assert section.config["seeds"] == list(cfg.seeds)
    assert section.table and all(isinstance(row, dict) for row in section.table)
    assert "nan" not in section.answer.lower().replace("nan ", "")


def test_registry_course_order_and_unknown_name():
    assert suite_names("course") == COURSE_ORDER == list(registry.RECIPES)[:len(COURSE_ORDER)]
    assert suite_names("all") == list(registry.RECIPES) == \
        COURSE_ORDER + suite_names("papers") + suite_names("pitfalls")
    assert all(registry.RECIPES[n].SUITE == "papers" for n in suite_names("papers"))
    with pytest.raises(ValueError, match="unknown suite 'paper'; expected one of course, papers, pitfalls, all"):
        suite_names("paper")
    assert registry.get("weight-scale") is weight_scale
    with pytest.raises(ValueError, match="unknown experiment 'weight_scale'.*bn-forward.*spatial-bn"):
        registry.get("weight_scale")


@pytest.mark.parametrize("name", COURSE_ORDER)
def test_default_runs_are_unique_readable_and_json(name):
    mod = registry.get(name)
    cfg = mod.Config()
    specs = mod.runs(cfg)
    names = [s.name for s in specs]
    assert len(set(names)) == len(names)
    assert all(s.experiment == name and re.search(r"/seed=\d+$", s.name) for s in specs)
    assert len({s.spec_hash for s in specs}) == len(specs)
    assert all(RunSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s for s in specs)
    assert mod.quick(cfg) != cfg or not specs
    assert cfg.dataset == "fashion-mnist"
    assert dataclasses.replace(cfg, dataset="mnist").dataset == "mnist"
    # the legacy spelling an old config.json may carry is read as the data registry's
    assert dataclasses.replace(cfg, dataset="cifar10").dataset == "cifar-10"


@pytest.mark.parametrize("name", COURSE_ORDER)
def test_runs_are_told_apart_by_engine_seed_and_tags(name):
    """What analyze groups by: every run of a recipe is one (engine, seed, tags), and the tags
    carry the recipe's structure as typed values (never to be parsed out of the names)."""
    mod = registry.get(name)
    cfg = mod.Config()
    specs = mod.runs(dataclasses.replace(cfg, engine="both") if hasattr(cfg, "engine") else cfg)
    keys = [(s.engine, s.seed, tuple(sorted(s.tags.items()))) for s in specs]
    assert len(set(keys)) == len(specs) and all(s.tags.get("net") for s in specs)
    assert {s.seed for s in specs} <= set(cfg.seeds)
    if name == "weight-scale":
        assert {s.tags["scale"] for s in specs} == set(cfg.weight_scales)
    if name == "batch-size":
        assert {s.tags["batch"] for s in specs} == {*cfg.batch_sizes, cfg.baseline_batch_size}


def test_course_settings_and_run_counts():
    ws = weight_scale.Config()
    assert len(ws.weight_scales) == 20 and ws.weight_scales[0] == pytest.approx(1e-4)
    assert ws.weight_scales[-1] == pytest.approx(1.0) and ws.hidden_dims == (50,) * 7
    assert len(weight_scale.runs(ws)) == 20 * 2 * len(ws.seeds)
    assert weight_scale.runs(ws)[0].name == "baseline/scale=1.0e-04/seed=0"
    bs = batch_size.Config()
    assert bs.learning_rate == pytest.approx(10 ** -3.5) and bs.batch_sizes == (5, 10, 50)
    assert len(batch_size.runs(bs)) == (1 + 2 * 3) * len(bs.seeds)
    tem = train_eval_mode.Config()
    spec = train_eval_mode.runs(tem)[1]
    assert spec.model_kwargs["hidden_dims"] == [512, 256] and spec.model_kwargs["bias_before_norm"] is False
    # restore_best=False: the notebook measures the model after the last epoch.
    assert spec.solver_kwargs == {"update_rule": "sgd", "optim_config": {"learning_rate": 0.01}, "num_epochs": 10,
                                  "batch_size": 64, "restore_best": False}
    assert set(spec.evaluate) == {"test_acc", "test_acc_train_mode", "per_class_test_acc"}
    assert bn_vs_baseline.runs(bn_vs_baseline.Config())[0].model_kwargs["weight_scale"] == 2e-2
    assert [bn_forward.runs(bn_forward.Config()), gradcheck.runs(gradcheck.Config()),
            bn_backward_speed.runs(bn_backward_speed.Config())] == [[], [], []]


# --------------------------------------------------------------------------- Config validation

@pytest.mark.parametrize("mod, bad, match", [
    (bn_vs_baseline, {"seeds": ()}, "seeds"),
    (bn_vs_baseline, {"seeds": (0, 0)}, "distinct"),
    (bn_vs_baseline, {"seeds": (-1,)}, "seeds"),
    (bn_vs_baseline, {"dataset": "imagenet"}, "dataset must be one of fashion-mnist, mnist, cifar-10, got 'imagenet'"),
    (bn_vs_baseline, {"engine": "jax"}, "engine must be one of numpy, torch, both, auto, got 'jax'"),
    (bn_vs_baseline, {"batch_size": 5000}, "exceeds num_train"),
    (bn_vs_baseline, {"learning_rate": -1e-3}, "learning_rate"),
    (weight_scale, {"weight_scales": (1e-3, 0.0)}, "weight_scales"),
    (weight_scale, {"hidden_dims": (50, 0)}, "hidden_dims"),
    (batch_size, {"norms": ("groupnorm",)}, "norms"),
    (batch_size, {"batch_sizes": (5, 5)}, "distinct"),
    (batch_size, {"batch_sizes": (1, 5)}, "at least 2 samples per batch"),
    (train_eval_mode, {"num_epochs": 0}, "num_epochs"),
    (train_eval_mode, {"bias_before_norm": "no"}, "bias_before_norm"),
    (spatial_bn, {"num_filters": 6, "num_groups": 4}, "divisible"),
    (spatial_bn, {"filter_size": 4}, "odd"),
    (bn_forward, {"gamma": (1.0, 2.0)}, "D3=3"),
    (bn_forward, {"momentum": 1.0}, "momentum"),
    (bn_backward_speed, {"other_batch_sizes": (1,)}, "other_batch_sizes"),
    (bn_backward_speed, {"rounds": 0}, "rounds"),
    (gradcheck, {"nets": 1}, "nets"),
])
def test_config_validation(mod, bad, match):
    with pytest.raises(ValueError, match=match):
        mod.Config(**bad)
