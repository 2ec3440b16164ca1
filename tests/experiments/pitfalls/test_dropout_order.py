"""bn-dropout-order: the criteria on synthetic results (each verdict reachable), missing runs, the Config's
validation, the variance-shift measure on a known net, and the quick config executed and analyzed end to end."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from normlab.experiments.papers.verdict import VERDICTS  # noqa: E402
from normlab.experiments.pitfalls import dropout_order as do  # noqa: E402
from normlab.lab.execute import execute  # noqa: E402
from normlab.lab.runs import RunResult, Runs, recipe_results  # noqa: E402
from normlab.models import FullyConnectedNet  # noqa: E402

CFG = do.quick(do.Config())


def _result(spec, acc, ratio, status="finished"):
    history = [] if status == "failed" else [0.1, acc]
    measure = {"median_ratio": [1.0, ratio], "q25": [1.0, ratio], "q75": [1.0, ratio]}
    return RunResult(spec.spec_hash, spec.experiment, spec.name, status, loss_history=[1.0] * 4,
                     val_acc_history=history, best_val_acc=max(history, default=None), iterations_per_epoch=10,
                     extras={"eval_set": "test", "eval_steps": [0, spec.task["steps"]],
                             **({} if status == "failed" else {"measure": measure})}, seconds=0.1,
                     error="boom" if status == "failed" else None)


def _done(values: dict, drop=lambda s: False, status=lambda s: "finished") -> Runs:
    """``values[position] = (acc, ratio)``, the same for every seed but a wiggle of 0.001 * seed."""
    return Runs([(s, _result(s, values[s.tags["dropout"]][0] + 0.001 * s.seed, values[s.tags["dropout"]][1],
                             status(s))) for s in do.runs(CFG) if not drop(s)])


@pytest.mark.parametrize("values, expected", [
    ({"before_norm": (0.80, 1.8), "last_layer": (0.82, 1.01), "after_activation": (0.81, 1.3)},
     {"a": "agrees", "b": "agrees"}),
    ({"before_norm": (0.83, 1.8), "last_layer": (0.82, 1.2), "after_activation": (0.81, 1.3)},
     {"a": "partly", "b": "disagrees"}),
    ({"before_norm": (0.83, 1.02), "last_layer": (0.82, 1.2), "after_activation": (0.81, 1.3)},
     {"a": "disagrees", "b": "disagrees"}),
])
def test_verdicts_from_synthetic_runs(tmp_path, values, expected):
    section = do.analyze(CFG, _done(values), tmp_path)
    assert section.metrics["verdicts"] == expected
    assert section.metrics["criteria_inputs"]["ratio_before"] == pytest.approx(values["before_norm"][1])
    json.dumps(section.metrics)


def test_missing_and_failed_runs_give_not_measured(tmp_path):
    values = {"before_norm": (0.80, 1.8), "last_layer": (0.82, 1.0), "after_activation": (0.81, 1.3)}
    section = do.analyze(CFG, _done(values, drop=lambda s: s.tags["dropout"] == "last_layer"), tmp_path)
    assert section.metrics["verdicts"] == {"a": "partly", "b": "not measured"}
    section = do.analyze(CFG, _done(values, status=lambda s: "failed" if s.seed == 0 else "finished"), tmp_path)
    assert section.metrics["verdicts"] == {"a": "not measured", "b": "not measured"}
    assert do.analyze(CFG, Runs([]), tmp_path).metrics["verdicts"] == {"a": "not measured", "b": "not measured"}


@pytest.mark.parametrize("field, value, match", [
    ("keep", 1.0, "keep=1.0"), ("layer", 3, "layer=3"), ("hidden_dims", (10,), "at least 2"),
    ("measure_samples", 20000, "measure_samples=20000"), ("steps", -5, "-5"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        do.Config(**{field: value})


def test_variance_shift_measure_on_known_nets():
    rng = np.random.default_rng(0)
    data = {"X_test": rng.standard_normal((4000, 6))}
    kw = dict(input_dim=6, num_classes=3, normalization="batchnorm", dropout_keep_ratio=0.5, weight_scale=0.5,
              dtype=np.float64)
    nets = {pos: FullyConnectedNet([8, 8], dropout_position=pos, rng_seed=1, **kw) for pos in do.POSITIONS}
    for net in nets.values():
        for _ in range(60):          # running statistics as training leaves them (momentum 0.9)
            net.scores(data["X_test"], "train")
    out = {pos: do.variance_shift(net, data, samples=4000) for pos, net in nets.items()}
    # dropout (keep 0.5) directly on a zero-mean input: train variance about (s^2 + mu^2) / p - mu^2 = 2 s^2
    assert out["before_norm"]["median_ratio"][0] == pytest.approx(2.0, rel=0.1)
    # no dropout reaches the norms; layer 1 sees the same input in both modes
    assert out["last_layer"]["median_ratio"][0] == pytest.approx(1.0, abs=1e-12)
    assert out["after_activation"]["median_ratio"][0] == pytest.approx(1.0, abs=1e-12)
    assert out["after_activation"]["median_ratio"][1] > 1.05
    state = nets["before_norm"].state_arrays()
    do.variance_shift(nets["before_norm"], data, samples=100)      # leaves the model unchanged
    assert all(np.array_equal(v, nets["before_norm"].state_arrays()[k]) for k, v in state.items())


def test_quick_config_end_to_end(tmp_path):
    start = time.process_time()
    specs = do.runs(CFG)
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for r in done.results), {r.name: r.error for r in done.results}
    section = do.analyze(CFG, done, tmp_path)
    assert time.process_time() - start < 40
    assert section.name == do.NAME and len(section.figures) == 1
    for png in section.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in png.with_suffix(".svg").read_text()[:2000]
    json.dumps(section.metrics), json.dumps(section.paper)
    assert all(v in VERDICTS and v != "not measured" for v in section.metrics["verdicts"].values())
    assert section.paper["url"].endswith("1801.05134")
