"""normlab list / run / reproduce / report: usage errors exit 2 with the usage, user
errors exit 1 in one line without a traceback, and `reproduce --quick` end to end
(what CI runs) including resume and rebuilding the report."""
import json
import os
import subprocess
import sys

import pytest

import _fake_recipe as fake
from normlab import cli, reproduce as R


@pytest.fixture
def recipe(monkeypatch):
    fake.install(monkeypatch)
    return fake


def _cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "normlab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_help_lists_every_command():
    res = _cli("--help")
    assert res.returncode == 0
    for cmd in ("list", "run", "reproduce", "report", "gradcheck", "data"):
        assert cmd in res.stdout
    res = _cli("reproduce", "--help")
    assert res.returncode == 0 and all(o in res.stdout for o in ("--quick", "--jobs", "--out", "--resume",
                                                                  "--scheduler", "--only"))


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--fast"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("usage: normlab") and "unrecognized arguments: --fast" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--jobs", "0"])
    assert exc.value.code == 2 and "expected a positive integer, got '0'" in capsys.readouterr().err


def test_list(recipe, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fake" in out and "A fake experiment" in out and "runs" in out


def test_run_unknown_experiment_names_the_valid_ones(recipe, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "nope"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unknown experiment 'nope'; choose from: fake" in err and "usage:" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--only", "fake,nope"])
    assert exc.value.code == 2 and "unknown experiment(s) nope" in capsys.readouterr().err


def test_run_options_are_the_config_fields_typed(recipe, monkeypatch, capsys, tmp_path):
    seen = {}

    def fake_reproduce(out, **kw):
        seen.update(kw, out=out)
        raise KeyboardInterrupt
    monkeypatch.setattr(R, "reproduce", fake_reproduce)
    assert cli.main(["run", "fake", "--hidden-dims", "30,20", "--learning_rate", "3e-3", "--note", "none",
                     "--fail", "no", "--num-epochs=2", "--jobs", "2", "--out", str(tmp_path / "o")]) == 130
    assert seen["overrides"] == {"fake": {"hidden_dims": (30, 20), "learning_rate": 0.003, "note": None,
                                          "fail": False, "num_epochs": 2}}
    assert seen["jobs"] == 2 and seen["names"] == ["fake"] and seen["out"] == str(tmp_path / "o")
    capsys.readouterr()
    for bad, msg in ((["--epochs", "2"], "valid options of fake: --hidden-dims, --num-train"),
                     (["--num-epochs", "two"], "expected an integer, got 'two'"),
                     (["--num-train", "10"], "num_train must be at least 50, got 10")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["run", "fake", *bad])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and msg in err and err.startswith("usage: normlab run fake"), err


def test_run_help_lists_the_fields_with_defaults(recipe, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "fake", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "--hidden-dims A,B,..." in out and "default: 20" in out and "--num-epochs N" in out


def test_missing_dataset_is_one_line_with_the_fix(recipe, monkeypatch, tmp_path, capsys):
    import normlab.data.locate as locate
    monkeypatch.setattr(locate, "SYSTEM_DIRS", ())
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.main(["run", "fake", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("normlab: error: fashion-mnist not found") and err.count("\n") == 1
    assert "`normlab data fetch fashion-mnist`" in err and "dataset-fashion-mnist" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_user_errors_are_one_line(recipe, tmp_path, capsys):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x").write_text("x")
    for argv, msg in ((["reproduce", "--out", str(tmp_path / "old")], "already exists and is not empty"),
                      (["report", str(tmp_path)], "not a normlab run directory"),
                      (["reproduce", "--resume", str(tmp_path / "none")], "not a normlab run directory")):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("normlab: error:") and msg in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--resume", str(tmp_path), "--quick"])
    assert exc.value.code == 2


def test_unusable_scheduler_is_one_line(recipe, tmp_path, capsys, monkeypatch):
    import normlab.lab.sweep as sweep
    def unreachable(address):
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: timed out; drop --scheduler")
    monkeypatch.setattr(sweep, "check_scheduler", unreachable)
    assert cli.main(["run", "fake", "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["normlab: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9: timed out; drop --scheduler"]
    assert not (tmp_path / "o").exists()              # refused before anything was written


def test_run_report_and_resume_through_the_cli(recipe, tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["run", "fake", "--out", str(out), "--jobs", "1"]) == 0
    printed = capsys.readouterr()
    assert f"report: {out / 'report.html'}" in printed.out and "fake: 2 of 2 runs finished." in printed.out
    assert "training [1/2] fake" in printed.err          # plain progress lines off a terminal
    assert cli.main(["reproduce", "--resume", str(out), "--jobs", "1"]) == 0
    printed = capsys.readouterr()
    assert "2 training runs, 0 trained now" in printed.out and "nothing to train" in printed.err
    (out / "report.html").unlink()
    assert cli.main(["report", str(out)]) == 0 and (out / "report.html").is_file()
    assert cli.main(["run", "fake", "--out", str(tmp_path / "f"), "--fail", "yes"]) == 1
    err = capsys.readouterr().err
    assert "normlab: problem: run fake/batchnorm/seed=0 failed" in err and "Traceback" not in err


def _registry_ready():
    try:
        from normlab.experiments.registry import RECIPES
    except ImportError:
        return False
    return bool(RECIPES)


@pytest.mark.skipif(not _registry_ready(), reason="the course recipes are not in yet")
def test_reproduce_quick_end_to_end(tmp_path):
    """What CI exercises: every course experiment at reduced size, in two worker processes;
    then `report` rebuilds it and `--resume` trains nothing."""
    from normlab.experiments.registry import RECIPES as ALL
    from normlab.lab.plan import suite_names
    RECIPES = {n: ALL[n] for n in suite_names("course")}
    out = tmp_path / "quick"
    res = _cli("reproduce", "--quick", "--jobs", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["experiments"]) == set(RECIPES) and metrics["missing_runs"] == 0
    page = (out / "report.html").read_text()
    for mod in RECIPES.values():
        assert mod.TITLE in page or mod.TITLE.replace("&", "&amp;") in page
    assert 'src="http' not in page and "data:image/png;base64," in page
    res = _cli("reproduce", "--resume", str(out))
    assert res.returncode == 0 and " 0 trained now" in res.stdout, res.stderr[-2000:]
    (out / "report.html").unlink()
    res = _cli("report", str(out))
    assert res.returncode == 0 and (out / "report.html").is_file(), res.stderr[-2000:]
    # the numbers of every recipe with training runs come back identical from the store
    # (recipes without runs re-measure: gradient checks, timings)
    trained = [n for n, m in RECIPES.items() if m.runs(m.quick(m.Config()))]
    again = json.loads((out / "metrics.json").read_text())
    assert trained and all(again["experiments"][n] == metrics["experiments"][n] for n in trained)


@pytest.mark.parametrize("argv", [["crosscheck"], ["run", "bn-vs-baseline", "--engine", "torch", "--quick"],
                                  ["run", "spatial-bn", "--engine", "both", "--quick"],
                                  ["reproduce", "--engine", "both", "--quick"]])
def test_torch_engine_without_torch_is_one_line_error(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)          # `import torch` raises ImportError
    out = tmp_path / "never"
    assert cli.main(argv + (["--out", str(out)] if argv[0] != "crosscheck" else [])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'normlab[torch]'" in err[0] and err[0].startswith("normlab: error:")
    assert not out.exists()


def test_reproduce_without_torch_reports_crosscheck_as_not_measured(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(sys.modules, "torch", None)
    out = tmp_path / "cc"
    assert cli.main(["reproduce", "--only", "crosscheck", "--quick", "--jobs", "1", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "Not measured: PyTorch is not installed" in md and "pip install 'normlab[torch]'" in md


def test_list_by_suite(capsys):
    from normlab.lab.plan import suite_names
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "bn-vs-baseline" in out and not any(n in out.split() for n in suite_names("papers"))
    assert cli.main(["list", "--suite", "papers"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in suite_names("papers")) and "bn-vs-baseline" not in out
    assert "normlab reproduce --suite papers" in out
    assert cli.main(["list", "--suite", "all"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in suite_names("all"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["list", "--suite", "paper"])
    assert exc.value.code == 2 and "invalid choice: 'paper'" in capsys.readouterr().err


def test_suite_options_that_contradict_are_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--suite", "papers", "--only", "bn-forward"])
    assert exc.value.code == 2 and "--only names the experiments itself" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--resume", str(tmp_path), "--suite", "papers"])
    assert exc.value.code == 2 and "leave out --only, --suite" in capsys.readouterr().err


def test_plan_of_a_suite():
    from normlab.lab.plan import plan, suite_names
    assert [p.name for p in plan(suite="papers", quick=True)] == suite_names("papers")
    assert [p.name for p in plan(quick=True)] == suite_names("course")
    with pytest.raises(ValueError, match="unknown suite 'none'"):
        plan(suite="none")
