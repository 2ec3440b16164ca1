"""One engine or both (normlab.experiments.sides): every training recipe runs on the NumPy
engine, the torch engine, or both, and shows both side by side in its figures, table and answer."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys

import pytest

from normlab.lab import figures
from normlab.experiments import sides
from normlab.lab.execute import execute
from normlab.lab.runs import RunResult, RunSpec, recipe_results
from normlab.experiments.registry import RECIPES
from normlab.experiments.summarize import Spread, spread
from normlab.reproduce import plan

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="the torch engine needs PyTorch (pip install 'normlab[torch]')")
TRAINING = [m for m in RECIPES.values() if "engine" in {f.name for f in dataclasses.fields(m.Config)}]


def _tiny(mod, engine):
    """The recipe's quick config, one seed, one epoch: seconds per engine."""
    cfg = mod.quick(mod.Config())
    return dataclasses.replace(cfg, engine=engine, seeds=cfg.seeds[:1], num_epochs=1)


def test_training_recipes_are_the_five_course_experiments():
    assert sorted(m.NAME for m in TRAINING) == ["batch-size", "bn-vs-baseline", "spatial-bn", "train-eval-mode",
                                                 "weight-scale"]


def _done(specs):
    """Every spec with a (fake) finished result, as analyze receives them."""
    return recipe_results(specs, {s.spec_hash: RunResult(s.spec_hash, s.experiment, s.name, "finished",
                                                         loss_history=[2.3, 2.0], train_acc_history=[0.1, 0.5],
                                                         val_acc_history=[0.1, 0.4], iterations_per_epoch=1)
                                  for s in specs})


def test_expand_and_split_round_trip():
    specs = [RunSpec(experiment="x", name=f"{n}/seed=0", model="fc", tags={"net": n})
             for n in ("baseline", "batchnorm")]
    both = sides.expand("both", specs)
    assert [(s.engine, s.name) for s in both] == [
        ("numpy", "baseline/seed=0"), ("numpy", "batchnorm/seed=0"),
        ("torch", "torch/baseline/seed=0"), ("torch", "torch/batchnorm/seed=0")]
    assert [s.tags for s in both] == [s.tags for s in specs] * 2       # twins keep the recipe's tags
    assert [s.name for s in sides.expand("torch", specs)] == [s.name for s in specs]
    assert all(s.engine == "torch" for s in sides.expand("torch", specs))
    assert sides.expand("numpy", specs) == specs            # NumPy runs keep their identity (spec hash)
    parts = sides.split("both", _done(both))
    assert list(parts) == ["numpy", "torch"]
    assert [(s.engine, s.name) for s in parts["numpy"].specs] == [("numpy", "baseline/seed=0"),
                                                                  ("numpy", "batchnorm/seed=0")]
    assert [(s.engine, s.name) for s in parts["torch"].specs] == [("torch", "torch/baseline/seed=0"),
                                                                  ("torch", "torch/batchnorm/seed=0")]
    assert [s.tags["net"] for s in parts["torch"].specs] == ["baseline", "batchnorm"]
    # grouped by spec.engine, not by name: a NumPy run whose name starts with "torch/" stays NumPy
    odd = RunSpec(experiment="x", name="torch/baseline/seed=1", model="fc", seed=1, tags={"net": "baseline"})
    parts = sides.split("both", _done([*both, odd]))
    assert odd in parts["numpy"].specs and odd not in parts["torch"].specs
    with pytest.raises(TypeError, match="Runs of \\(spec, result\\) pairs.*got a dict"):
        sides.split("both", {s.name: r for s, r in _done(both)})      # the pre-pairs {name: result}
    alone = sides.split("torch", _done(sides.expand("torch", specs)))
    assert list(alone) == ["torch"] and len(alone["torch"]) == 2
    with pytest.raises(ValueError, match="engine must be one of numpy, torch, both, auto, got 'jax'"):
        sides.engines("jax")


@pytest.mark.parametrize("mod", TRAINING, ids=lambda m: m.NAME)
def test_every_training_recipe_accepts_both_and_doubles_its_runs(mod):
    one = mod.runs(dataclasses.replace(mod.Config(), engine="numpy"))
    both = mod.runs(dataclasses.replace(mod.Config(), engine="both"))
    assert len(both) == 2 * len(one)
    numpy_side, torch_side = both[:len(one)], both[len(one):]
    assert numpy_side == one                                   # the NumPy runs are unchanged
    for a, b in zip(one, torch_side):
        assert b.engine == "torch" and b.name == "torch/" + a.name
        assert dataclasses.replace(b, engine="numpy", name=a.name) == a   # same net, data, schedule, seed
    with pytest.raises(ValueError, match="engine must be one of numpy, torch, both, auto, got 'jax'"):
        mod.Config(engine="jax")


def test_reproduce_engine_option_sets_only_training_recipes():
    plans = {p.name: p for p in plan(quick=True, engine="both")}
    for name, p in plans.items():
        has = "engine" in {f.name for f in dataclasses.fields(p.config)}
        assert (p.config.engine == "both") if has else not any(s.engine == "torch" for s in p.specs), name
    # a recipe's own option wins over the sweep-wide engine
    p = plan(["bn-vs-baseline"], quick=True, engine="both", overrides={"bn-vs-baseline": {"engine": "numpy"}})[0]
    assert p.config.engine == "numpy" and all(s.engine == "numpy" for s in p.specs)


def test_engines_sentence_worded_from_the_numbers():
    a, b = spread([0.80, 0.82]), spread([0.79, 0.80])
    s = sides.engines_sentence([("best val", a, b), ("loss", spread([1.0]), spread([1.5]))])
    assert "best val: 0.795 (NumPy 0.810)" in s and "loss: 1.500 (NumPy 1.000)" in s
    assert "The largest difference is 0.500 (loss)" in s
    s = sides.engines_sentence([("best val", a, b)])
    assert "largest difference is 0.015 (best val), within the seed-to-seed range of that measure (0.020)" in s
    s = sides.engines_sentence([("best val", a, spread([0.5, 0.51]))])
    assert "larger than the seed-to-seed range" in s
    s = sides.engines_sentence([("best val", a, Spread(None, None, None, 0, 2))])
    assert "best val: n/a (NumPy 0.810)" in s and "largest" not in s


def test_torch_runs_are_drawn_dashed_in_the_same_colour(monkeypatch):
    pytest.importorskip("matplotlib")
    captured = []
    monkeypatch.setattr(figures, "save", lambda fig, stem: captured.append(fig) or [stem])
    run = RunResult(spec_hash="h", experiment="x", name="n", status="finished", loss_history=[2.3, 2.0, 1.8],
                    train_acc_history=[0.1, 0.5], val_acc_history=[0.1, 0.4], iterations_per_epoch=3)
    groups = {sides.tag("batchnorm", e, "both"): [run] for e in ("numpy", "torch")}
    figures.histories(groups, "t", "stem", styles={k: sides.LINESTYLE[k.split("[")[1][:-1]] for k in groups})
    lines = {ln.get_label(): ln for ax in captured[0].axes for ln in ax.get_lines()
             if ln.get_label().startswith("batchnorm")}
    assert lines["batchnorm [numpy]"].get_linestyle() == "-" and lines["batchnorm [torch]"].get_linestyle() == "--"
    assert lines["batchnorm [numpy]"].get_color() == lines["batchnorm [torch]"].get_color()


def test_bn_vs_baseline_shows_both_engines_by_default_when_torch_is_there(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from normlab.experiments import bn_vs_baseline
    from normlab.engines.pytorch import torch_available
    cfg = bn_vs_baseline.Config()
    assert cfg.engine == "auto"
    engines = ["numpy", "torch"] if torch_available() else ["numpy"]
    assert list(dict.fromkeys(s.engine for s in bn_vs_baseline.runs(cfg))) == engines
    assert sides.section_config(cfg)["engine"] == ("auto: both" if torch_available() else "auto: numpy")
    monkeypatch.setitem(sys.modules, "torch", None)          # `import torch` raises ImportError
    assert bn_vs_baseline.Config() == cfg                    # the same Config (and config.json) without torch
    assert all(s.engine == "numpy" for s in bn_vs_baseline.runs(cfg))
    tiny = dataclasses.replace(_tiny(bn_vs_baseline, "auto"), seeds=(0,))
    section = bn_vs_baseline.analyze(tiny, _done(bn_vs_baseline.runs(tiny)), tmp_path)
    assert section.config["engine"] == "auto: numpy" and "torch engine" not in section.metrics


@pytest.mark.parametrize("mod", list(RECIPES.values()), ids=lambda m: m.NAME)
def test_no_config_depends_on_what_is_installed(mod, monkeypatch):
    """The same command gives the same Config (so the same config.json) with and without PyTorch:
    an "auto" engine is resolved only by runs() and analyze()."""
    cfg, quick = mod.Config(), mod.quick(mod.Config())
    monkeypatch.setitem(sys.modules, "torch", None)
    assert mod.Config() == cfg and mod.quick(mod.Config()) == quick
    assert json.dumps(dataclasses.asdict(mod.Config())) == json.dumps(dataclasses.asdict(cfg))


@needs_torch
@pytest.mark.parametrize("mod", TRAINING, ids=lambda m: m.NAME)
def test_both_engines_side_by_side_in_figures_table_answer_and_metrics(mod, tmp_path):
    pytest.importorskip("matplotlib")
    cfg = _tiny(mod, "both")
    specs = mod.runs(cfg)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert len(done) == len(specs) and all(r.status in ("finished", "diverged") for r in done.results), \
        {s.name: r.error for s, r in done if r.status == "failed"}
    section = mod.analyze(cfg, done, tmp_path)
    assert section.figures and all(p.is_file() for p in section.figures)
    assert "On the torch engine" in section.answer
    if mod.NAME == "batch-size":             # the unbiased running variance, named with its factors
        b = sorted(cfg.batch_sizes)
        assert f"{b[0] / (b[0] - 1):.2f} times the course's biased one at batch {b[0]}" in section.answer
        assert "engines' best validation accuracies differ by " in section.answer
    # the torch side alone gives the numbers a torch-only run of the recipe gives
    alone = mod.analyze(dataclasses.replace(cfg, engine="torch"), sides.split("both", done)["torch"],
                        tmp_path / "torch-only")
    if mod.NAME == "train-eval-mode":        # one column per net and engine
        assert {"baseline (torch engine)", "batchnorm (torch engine)"} <= set(section.table[0])
        assert all(alone.metrics[k] == section.metrics[f"{k} (torch engine)"] for k in ("baseline", "batchnorm"))
    elif mod.NAME == "weight-scale":         # one column per measure, net and engine
        assert {"best_val_acc (batchnorm [numpy])", "best_val_acc (batchnorm [torch])"} <= set(section.table[0])
        assert alone.metrics == section.metrics["torch engine"]
    else:                                    # one row per net and engine
        assert {row["engine"] for row in section.table} == {"numpy", "torch"}
        assert alone.metrics == section.metrics["torch engine"]
