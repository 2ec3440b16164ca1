"""normlab crosscheck: the NumPy and torch engines agree in float64 on small nets, the float32
drift is measured, and a mismatched momentum convention is caught (the check can fail)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the cross-check compares against PyTorch (pip install 'normlab[torch]')")

from normlab import cli  # noqa: E402
from normlab.crosscheck import CASES, CONTROLS, Case, crosscheck_case, format_report, run_crosscheck  # noqa: E402

TORCH_BN = {"convention": "torch"}
SMALL_FC = {"hidden_dims": [16, 16, 16], "weight_scale": 0.2}


def small(norm, **kw):
    return Case(f"fc {norm}", "fc", {**SMALL_FC, "normalization": norm,
                                     **({"norm_param": TORCH_BN} if norm == "batchnorm" else {}), **kw},
                (12,), batch_size=10, num_samples=50)


SMALL_CASES = (
    small(None), small("batchnorm"), small("layernorm"), small("batchnorm", dropout_keep_ratio=0.8, reg=0.1),
    Case("conv sbn", "cnn", {"num_filters": 4, "filter_size": 3, "hidden_dim": 8, "weight_scale": 0.2,
                             "normalization": "batchnorm", "norm_param": TORCH_BN}, (1, 6, 6),
         batch_size=8, num_samples=32, update_rule="sgd_momentum", learning_rate=1e-2),
    Case("conv gn", "cnn", {"num_filters": 4, "filter_size": 3, "hidden_dim": 8, "weight_scale": 0.2,
                            "normalization": "groupnorm", "num_groups": 2}, (1, 6, 6), batch_size=8, num_samples=32),
)


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: c.name)
def test_float64_engines_agree_after_100_steps(case):
    r = crosscheck_case(case, np.float64, steps=100)
    assert len(r["loss_diff_per_step"]) == 100
    assert r["max"] < 1e-9, r["measures"]
    if case.model_kwargs.get("normalization") == "batchnorm":
        assert r["measures"]["running"] is not None


def test_float32_drift_is_measured_not_zero_by_construction():
    r = crosscheck_case(SMALL_CASES[1], np.float32, steps=30)
    assert 0 < r["measures"]["loss"] < 1e-5, r["measures"]     # different rounding, same maths
    # Adam normalizes the rounding noise of the biases before batch norm (true gradient 0): they drift most
    assert r["measures"]["params"] < 0.1 and r["worst_param"].startswith("b"), r["per_param"]


@pytest.mark.parametrize("mismatch", ["momentum", "variance"])
def test_mismatched_convention_is_detected(mismatch):
    """The check must be able to fail: the course convention against PyTorch's."""
    if mismatch == "momentum":      # course 0.9 (weight of the old value) passed to torch as is
        case = small("batchnorm", norm_param={"convention": "course"})
        case = dataclasses.replace(case, torch_bn_momentum=0.9)
    else:                           # momentum mapped (0.1 on the new batch), variance biased and starting at 0
        case = small("batchnorm", norm_param={"convention": "course"})
    r = crosscheck_case(case, np.float64, steps=20)
    assert r["measures"]["running"] > 1e-3 and r["measures"]["eval_out"] > 1e-6, r["measures"]
    assert r["measures"]["loss"] < 1e-9                   # train mode does not see running statistics
    report = run_crosscheck(steps=20, cases=(), controls=(dataclasses.replace(case, expect_fail=True),),
                            float32=False)
    assert report["ok"] and report["rows"][0]["ok"]       # caught
    assert not run_crosscheck(steps=5, cases=(dataclasses.replace(case, expect_fail=False),), controls=(),
                              float32=False)["ok"]


def test_run_crosscheck_report_and_format():
    report = run_crosscheck(steps=10, cases=SMALL_CASES[:2], controls=())
    assert report["ok"] and len(report["rows"]) == 4
    assert report["float64_max"] < 1e-9 and report["float32_max"] > 0
    json.dumps(report)
    text = format_report(report)
    assert "fc batchnorm" in text and "The engines agree." in text and "float32 drift" in text


def test_seed_cases_cover_every_normalization():
    norms = {(c.model, c.model_kwargs.get("normalization")) for c in CASES}
    assert norms == {("fc", None), ("fc", "batchnorm"), ("fc", "layernorm"), ("cnn", "batchnorm"),
                     ("cnn", "groupnorm")}
    assert all(c.expect_fail for c in CONTROLS)


def test_cli_crosscheck_json(tmp_path, capsys, monkeypatch):
    import normlab.crosscheck as cc
    monkeypatch.setattr(cc, "CASES", SMALL_CASES[:2])
    monkeypatch.setattr(cc, "CONTROLS", (dataclasses.replace(
        small("batchnorm", norm_param={"convention": "course"}), torch_bn_momentum=0.9, expect_fail=True),))
    out = tmp_path / "x.json"
    assert cli.main(["crosscheck", "--steps", "5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "caught (control)" in text and "The engines agree." in text
    assert json.loads(out.read_text())["ok"] is True
