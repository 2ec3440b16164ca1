"""The recipes' answers follow the data: synthetic results where normalization
loses, diverged / failed / missing runs, a real diverging run, and the figure
helpers' atomic saving."""
from __future__ import annotations

import dataclasses
import math

import pytest

pytest.importorskip("matplotlib")

from normlab.lab import figures  # noqa: E402
from normlab.experiments import (batch_size, bn_backward_speed, bn_forward, bn_vs_baseline, gradcheck,  # noqa: E402
                                 spatial_bn, train_eval_mode, weight_scale)
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, RunSpec  # noqa: E402
from normlab.experiments.summarize import Spread, compare, spread  # noqa: E402
from normlab.engines.gradchecks import CheckResult  # noqa: E402


def fake(name, val, train=None, loss=None, status="finished", per_epoch=2, extras=None, error=None):
    """A RunResult with the given validation history (train defaults to val + 0.05)."""
    train = train if train is not None else [min(v + 0.05, 1.0) for v in val]
    if loss is None:
        loss = [2.3 - 0.1 * i for i in range(per_epoch * (len(val) - 1))]
    return RunResult(spec_hash=name, experiment="x", name=name, status=status, loss_history=list(loss),
                     train_acc_history=list(train), val_acc_history=list(val), best_val_acc=max(val),
                     iterations_per_epoch=per_epoch, extras=extras or {}, error=error)


def paired(mod, cfg, results: dict) -> Runs:
    """What ``analyze`` receives: the recipe's runs (specs from ``mod.runs(cfg)``) paired with
    ``results`` ({run name: RunResult}); every name must be one of the recipe's runs."""
    specs = mod.runs(cfg)
    assert set(results) <= {s.name for s in specs}, set(results) - {s.name for s in specs}
    return Runs((s, results[s.name]) for s in specs if s.name in results)


def _pngs(section):
    return all(p.exists() and p.with_suffix(".svg").exists() for p in section.figures)


# --------------------------------------------------------------------------- answers adapt

def test_bn_vs_baseline_says_so_when_batch_norm_is_worse(tmp_path):
    cfg = dataclasses.replace(bn_vs_baseline.Config(), seeds=(0, 1), engine="numpy")
    results = {}
    for s in cfg.seeds:
        results[f"baseline/seed={s}"] = fake(f"baseline/seed={s}", [0.1, 0.6 + 0.01 * s, 0.7 + 0.01 * s],
                                             loss=[2.0, 1.0, 0.5, 0.4])
        results[f"batchnorm/seed={s}"] = fake(f"batchnorm/seed={s}", [0.1, 0.3 + 0.01 * s, 0.4 + 0.01 * s],
                                              loss=[2.0, 1.8, 1.5, 1.4])
    sec = bn_vs_baseline.analyze(cfg, paired(bn_vs_baseline, cfg, results), tmp_path)
    assert "best validation accuracy is higher with no normalization, 0.705" in sec.answer
    assert "training loss in epoch 10 is lower with no normalization" in sec.answer
    assert "the seed ranges do not overlap" in sec.answer
    assert "higher with batch norm" not in sec.answer
    assert _pngs(sec)


def test_weight_scale_says_batch_norm_is_more_sensitive_when_it_is(tmp_path):
    cfg = weight_scale.quick(weight_scale.Config())         # 3 scales, one seed
    results = {}
    for w, vb, vn in zip(cfg.weight_scales, (0.5, 0.52, 0.51), (0.15, 0.6, 0.25)):
        results[weight_scale.run_name("baseline", w, 0)] = fake("b", [0.1, vb])
        results[weight_scale.run_name("batchnorm", w, 0)] = fake("n", [0.1, vn])
    sec = weight_scale.analyze(cfg, paired(weight_scale, cfg, results), tmp_path)
    assert "spans 0.500-0.520 without batch norm (range 0.020)" in sec.answer
    assert "0.150-0.600 with it (range 0.450)" in sec.answer
    assert "batch norm makes it more sensitive" in sec.answer and "less sensitive" not in sec.answer
    assert "at all 3 scales without batch norm and at 2 of 3 scales (0.01 to 1) with it" in sec.answer


def test_weight_scale_diverged_run_is_listed_plotted_and_has_no_final_loss(tmp_path):
    cfg = dataclasses.replace(weight_scale.quick(weight_scale.Config()), seeds=(0, 1))
    results = {}
    for w in cfg.weight_scales:
        for s in cfg.seeds:
            results[weight_scale.run_name("baseline", w, s)] = fake(weight_scale.run_name("baseline", w, s),
                                                                    [0.1, 0.5, 0.6])
            results[weight_scale.run_name("batchnorm", w, s)] = fake(weight_scale.run_name("batchnorm", w, s),
                                                                     [0.1, 0.6, 0.7])
    bad = weight_scale.run_name("baseline", 1.0, 1)
    results[bad] = fake(bad, [0.1, 0.2], loss=[2.3, 40.0, 1e6, None], status="diverged",
                        error="epoch 1, iteration 4: loss is inf")
    del results[weight_scale.run_name("batchnorm", 1.0, 1)]            # and one missing
    sec = weight_scale.analyze(cfg, paired(weight_scale, cfg, results), tmp_path)
    assert _pngs(sec)
    assert f"1 diverged ({bad})" in sec.answer and "1 without a result" in sec.answer
    row = sec.table[-1]
    assert "diverged: seed=1 (epoch 1, iteration 4: loss is inf)" in row["runs"] and "1 missing" in row["runs"]
    assert sec.table[0]["runs"] == "all finished"
    # The diverged seed has no final loss: the mean is the other seed's.
    assert row["final_loss (baseline)"] == pytest.approx(results[weight_scale.run_name("baseline", 1.0, 0)].final_loss)
    assert sec.metrics["baseline"]["diverged_runs"] == 1


def test_a_really_diverging_run_is_recorded_and_analyzed(tmp_path):
    cfg = dataclasses.replace(weight_scale.quick(weight_scale.Config()), weight_scales=(1e-2, 1.0))
    specs = weight_scale.runs(cfg)
    name = weight_scale.run_name("baseline", 1.0, 0)
    blowup = RunSpec(experiment="weight-scale", name=name, model="fc",
                     model_kwargs={"hidden_dims": [20, 20, 20], "weight_scale": 30.0},
                     solver_kwargs={"update_rule": "sgd", "optim_config": {"learning_rate": 1e4}, "num_epochs": 2,
                                    "batch_size": 50},
                     num_train=100)
    results = {s.name: execute(blowup if s.name == name else s) for s in specs}
    assert results[name].status == "diverged" and results[name].error
    sec = weight_scale.analyze(cfg, paired(weight_scale, cfg, results), tmp_path)
    assert _pngs(sec) and "diverged" in sec.answer and "diverged" in sec.table[-1]["runs"]


def test_batch_size_says_layer_norm_varies_more_when_it_does(tmp_path):
    cfg = dataclasses.replace(batch_size.Config(), batch_sizes=(5, 50), seeds=(0,))
    results = {"baseline/batch=5/seed=0": fake("b", [0.1, 0.5])}
    for b, vb, vl in ((5, 0.70, 0.50), (50, 0.71, 0.80)):
        results[f"batchnorm/batch={b}/seed=0"] = fake("bn", [0.1, vb])
        results[f"layernorm/batch={b}/seed=0"] = fake("ln", [0.1, vl])
    sec = batch_size.analyze(cfg, paired(batch_size, cfg, results), tmp_path)
    assert "batch norm's best validation accuracy varies by 0.010 and layer norm's by 0.300" in sec.answer
    assert "here batch norm depends less on the batch size than layer norm" in sec.answer
    assert "0.500 / 0.800" in sec.answer and "increases with the batch size" in sec.answer
    assert "higher with the baseline at batch 5" not in sec.answer
    assert len(sec.figures) == 2 and _pngs(sec)


def test_spatial_bn_says_so_when_normalization_hurts(tmp_path):
    cfg = dataclasses.replace(spatial_bn.Config(), seeds=(0,))
    results = {"baseline/seed=0": fake("a", [0.1, 0.7, 0.8]), "batchnorm/seed=0": fake("b", [0.1, 0.5, 0.6]),
               "groupnorm/seed=0": fake("c", [0.1, 0.72, 0.85])}
    sec = spatial_bn.analyze(cfg, paired(spatial_bn, cfg, results), tmp_path)
    assert "best validation accuracy is higher with no normalization, 0.800, than with spatial batch norm" in sec.answer
    assert "best validation accuracy is higher with group norm, 0.850" in sec.answer


def test_train_eval_mode_answers_from_the_measured_accuracies(tmp_path):
    cfg = dataclasses.replace(train_eval_mode.Config(), num_epochs=2)
    per_class = [0.5] * 10
    results = {
        "baseline/seed=0": fake("a", [0.1, 0.8, 0.85], extras={"test_acc": 0.84, "test_acc_train_mode": 0.84,
                                                               "per_class_test_acc": per_class}),
        "batchnorm/seed=0": fake("b", [0.1, 0.7, 0.75], extras={"test_acc": 0.74, "test_acc_train_mode": 0.79,
                                                                "per_class_test_acc": [0.4] * 9 + [0.9]}),
    }
    sec = train_eval_mode.analyze(cfg, paired(train_eval_mode, cfg, results), tmp_path)
    assert "test accuracy (eval mode) is higher with no normalization, 0.840" in sec.answer
    assert "scores 0.790 against 0.740 in eval mode: 0.050 higher (5.0 percentage points)" in sec.answer
    assert "identical accuracy" in sec.answer
    assert "more accurate on 1 of 10 classes" in sec.answer and "Ankle boot (+0.400)" in sec.answer
    assert len(sec.figures) == 2 and _pngs(sec)
    measures = [row["measure"] for row in sec.table]
    assert "test accuracy: Shirt" in measures and all(set(r) == {"measure", "baseline", "batchnorm"}
                                                      for r in sec.table)


def test_failed_and_missing_runs_do_not_break_the_analysis(tmp_path):
    cfg = dataclasses.replace(bn_vs_baseline.Config(), seeds=(0, 1), engine="numpy")
    results = {"baseline/seed=0": fake("b0", [0.1, 0.5]),
               "batchnorm/seed=0": RunResult("h", "bn-vs-baseline", "batchnorm/seed=0", "failed",
                                             error="ValueError: boom\ntraceback")}
    sec = bn_vs_baseline.analyze(cfg, paired(bn_vs_baseline, cfg, results), tmp_path)
    assert "best validation accuracy of batch norm is not available" in sec.answer
    assert "1 failed (batchnorm/seed=0)" in sec.answer and "2 without a result" in sec.answer
    assert sec.table[1]["runs"] == "failed: seed=0 (ValueError: boom); 1 missing"
    assert _pngs(sec)


# --------------------------------------------------------------------------- non-training recipes

def test_gradcheck_reports_failures_by_name(tmp_path):
    rows = [CheckResult("affine_backward", "dx", 1e-12, 1e-8), CheckResult("layernorm_backward", "dx", 3e-6, 1e-8),
            CheckResult("FullyConnectedNet(dropout)", "W1", 1.0, 1e-5, "keep=0.5")]
    sec = gradcheck.analyze(gradcheck.Config(), Runs(), tmp_path, checks=lambda seed, nets: rows)
    assert sec.answer.startswith("1 of 3 gradients are within the course's bounds.")
    assert "layernorm_backward dx (errors up to 3.0e-06 against 1e-08)" in sec.answer
    assert "FullyConnectedNet(dropout) (keep=0.5) W1" in sec.answer and "disagree entirely" in sec.answer
    assert sec.metrics["within_bounds"] == 1 and _pngs(sec)
    all_ok = gradcheck.analyze(gradcheck.Config(), Runs(), tmp_path, checks=lambda seed, nets: rows[:1])
    assert "Outside" not in all_ok.answer and all_ok.answer.startswith("1 of 1 gradients")


def test_bn_backward_speed_wording_follows_the_timings(tmp_path):
    cfg = bn_backward_speed.quick(bn_backward_speed.Config())
    errs = [{"dx": 1e-13, "dgamma": 1e-14, "dbeta": 1e-15}]
    slow_alt = {"errors": errs, "times": [[1e-4] * 5, [2e-4] * 5],
                "scaling": {10: {"staged": 1e-5, "simplified": 1e-5, "speedup": 1.0},
                            100: {"staged": 1e-4, "simplified": 2e-4, "speedup": 0.5}}}
    sec = bn_backward_speed.analyze(cfg, Runs(), tmp_path, measured=slow_alt)
    assert "simplified backward is slower here, 2.00 times the staged time" in sec.answer
    assert sec.answer.startswith("The two backward passes agree")
    fast = dict(slow_alt, times=[[3e-4] * 5, [1e-4] * 5], errors=[{"dx": 1e-3, "dgamma": 0.0, "dbeta": 0.0}])
    sec = bn_backward_speed.analyze(cfg, Runs(), tmp_path, measured=fast)
    assert "3.00 times as fast" in sec.answer and "do not agree" in sec.answer


def test_bn_forward_matches_the_course_closed_forms(tmp_path):
    cfg = bn_forward.quick(bn_forward.Config())
    m = bn_forward.measure(cfg, 0)
    means, stds = m["stages"]["train, gamma, beta"]
    assert means == pytest.approx(list(cfg.beta)) and stds == pytest.approx(list(cfg.gamma), rel=1e-6)
    assert len(m["curve"]) == cfg.train_passes


# --------------------------------------------------------------------------- helpers

def test_compare_wording():
    a, b = spread([0.8, 0.82]), spread([0.5, 0.6])
    assert compare(a, b, "A", "B", "accuracy") == ("The accuracy is higher with A, 0.810 (0.800-0.820 over 2 seeds), "
                                                   "than with B, 0.550 (0.500-0.600 over 2 seeds) (difference 0.260); "
                                                   "the seed ranges do not overlap.")
    assert compare(a, b, "A", "B", "loss", higher_is_better=False).startswith("The loss is lower with B")
    assert "overlap, so" in compare(spread([0.5, 0.7]), spread([0.6, 0.65]), "A", "B", "accuracy")
    assert spread([None, math.nan]) == Spread(None, None, None, 0, 2)


def test_save_writes_png_and_svg_atomically(tmp_path):
    fig, (ax,) = figures.new_figure()
    figures.band(ax, [([1.0, 2.0, None], True), ([1.0, 1.5, 1.2], False), ([1.1, 1.4, 1.3], False)], "batchnorm",
                 "C0")
    paths = figures.save(fig, tmp_path / "sub" / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.svg"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig.png", "fig.svg"]
    labels = ax.get_legend_handles_labels()[1]
    assert "batchnorm (mean, range of 2 seeds)" in labels and "batchnorm: diverged (1 of 3)" in labels


def test_histories_has_one_legend_below_the_panels_with_every_group_once(tmp_path, monkeypatch):
    captured = []
    monkeypatch.setattr(figures, "save", lambda fig, stem: captured.append(fig) or [])
    ok = RunResult(spec_hash="a", experiment="x", name="a", status="finished", loss_history=[2.3, 2.0, 1.8],
                   train_acc_history=[0.1, 0.5], val_acc_history=[0.1, 0.4], iterations_per_epoch=3)
    bad = RunResult(spec_hash="b", experiment="x", name="b", status="diverged", loss_history=[2.3, float("inf")],
                    train_acc_history=[0.1], val_acc_history=[0.1], iterations_per_epoch=3)
    figures.histories({"baseline": [ok, ok], "batchnorm": [ok, bad]}, "t", tmp_path / "h")
    fig = captured[0]
    assert all(ax.get_legend() is None for ax in fig.axes)          # nothing drawn over the curves
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["baseline (mean, range of 2 seeds)", "batchnorm", "batchnorm: diverged (1 of 2)"]
    assert legend.legend_handles[0].get_marker() == "o"             # drawn as in the accuracy panels


def test_batch_size_names_the_unbiased_variance_factor_and_the_measured_gap_at_each_end():
    numpy_best = {("batchnorm", 5): spread([0.70]), ("batchnorm", 50): spread([0.80])}
    torch_best = {("batchnorm", 5): spread([0.74]), ("batchnorm", 50): spread([None])}
    s = batch_size._unbiased_sentence([5, 50], numpy_best, torch_best)
    assert s == ("PyTorch's running variance uses the unbiased batch variance, 1.25 times the course's biased one "
                 "at batch 5 and 1.02 times at batch 50; with batch norm the engines' best "
                 "validation accuracies differ by 0.040 at batch 5 and n/a at batch 50.")
    one = batch_size._unbiased_sentence([5], numpy_best, torch_best)      # one batch size: named once
    assert one.count("at batch 5") == 2 and "batch 50" not in one
