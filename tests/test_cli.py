"""The normlab command line and the gradient-check suite behind `normlab gradcheck`."""
import json
import subprocess
import sys

import pytest

from normlab.cli import main
from normlab.engines.gradchecks import CheckResult, format_table, run_checks


def test_layer_checks_all_within_course_bounds():
    rows = run_checks(seed=0, nets=False)
    names = {r.check for r in rows}
    for layer in ("batchnorm_backward", "batchnorm_backward_alt", "layernorm_backward",
                  "spatial_batchnorm_backward", "spatial_groupnorm_backward", "dropout_backward",
                  "conv_backward_fast", "max_pool_backward_fast"):
        assert layer in names
    bad = [r for r in rows if not r.ok]
    assert not bad, format_table(bad)


def test_checks_are_deterministic_in_seed():
    a = run_checks(seed=3, nets=False)
    b = run_checks(seed=3, nets=False)
    assert [r.error for r in a] == [r.error for r in b]


def test_table_marks_failures():
    rows = [CheckResult("x", "dx", 1e-3, 1e-8), CheckResult("y", "dy", 1e-10, 1e-8)]
    table = format_table(rows)
    assert "FAIL" in table and "1 of 2 gradients within" in table and "1 outside" in table


def test_gradcheck_command_writes_json(tmp_path, capsys):
    out = tmp_path / "gc.json"
    assert main(["gradcheck", "--layers-only", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "batchnorm_backward_alt" in printed and "within the course's bounds" in printed
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["ok"] for r in rows)


def test_gradcheck_json_to_missing_directory_is_a_one_line_error(tmp_path, capsys):
    assert main(["gradcheck", "--layers-only", "--json", str(tmp_path / "no" / "such" / "gc.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("normlab: error:") and err.count("\n") == 1


def test_unknown_command_exits_2():
    with pytest.raises(SystemExit) as exc:
        main(["bogus"])
    assert exc.value.code == 2


def test_console_script_help():
    res = subprocess.run([sys.executable, "-m", "normlab.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "gradcheck" in res.stdout


def test_dropout_net_checks_hold_the_mask_fixed():
    from normlab.engines.gradchecks import dropout_net_checks
    import numpy as np
    rng = np.random.default_rng(0)
    rows = dropout_net_checks(rng.standard_normal((2, 15)), rng.integers(10, size=2), rng_seed=5)
    bad = [r for r in rows if not r.ok]
    assert rows and not bad, format_table(bad)
