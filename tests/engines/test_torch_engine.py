"""The torch engine: TorchModel follows the normlab model protocol, the Solver trains it
with the NumPy engine's schedule, and `--engine torch` runs a recipe end to end."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from normlab.lab.execute import execute
from normlab.lab.runs import RunSpec
from normlab.models import FullyConnectedNet, ThreeLayerConvNet
from normlab.solver import Solver

torch = pytest.importorskip("torch", reason="the torch engine needs PyTorch (pip install 'normlab[torch]')")
from normlab.engines.pytorch import TorchModel  # noqa: E402

TORCH_BN = {"convention": "torch"}


@pytest.fixture
def rng():
    return np.random.default_rng(505)


def _data(rng, shape, n=120, classes=5, dtype=np.float64):
    X = rng.standard_normal((n, *shape)).astype(dtype)
    return X, rng.integers(classes, size=n)


@pytest.mark.parametrize("kw", [
    {}, {"normalization": "batchnorm", "norm_param": TORCH_BN}, {"normalization": "layernorm"},
    {"normalization": "batchnorm", "bias_before_norm": False, "norm_param": TORCH_BN, "reg": 0.1},
    {"normalization": "batchnorm", "dropout_keep_ratio": 0.7, "norm_param": TORCH_BN, "seed": 3},
], ids=["plain", "bn", "ln", "bn-nobias-reg", "bn-dropout"])
def test_fc_loss_grads_and_scores_match_numpy(rng, kw):
    model = FullyConnectedNet([7, 6], input_dim=5, num_classes=4, dtype=np.float64, weight_scale=0.5,
                              **{"rng_seed": 0, **kw})
    tm = TorchModel(model)
    assert set(tm.params) == set(model.params) and tm.params["W1"] is not model.params["W1"]
    X, y = _data(rng, (5,), n=10, classes=4)
    loss, grads = model.loss(X, y)
    t_loss, t_grads = tm.loss(X, y)
    assert t_loss == pytest.approx(loss, rel=1e-12)
    for k in grads:
        assert t_grads[k].shape == model.params[k].shape
        np.testing.assert_allclose(t_grads[k], grads[k], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(tm.loss(X), model.loss(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tm.scores(X, "train"), model.scores(X, "train"), rtol=1e-12, atol=1e-14)
    if kw.get("normalization") == "batchnorm":
        a, b = model.state_arrays(), tm.state_arrays()
        assert set(a) == set(b) == {"running_mean1", "running_var1", "running_mean2", "running_var2"}
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-12)


@pytest.mark.parametrize("kw", [{"normalization": "layernorm"}, {"normalization": "batchnorm", "norm_param": TORCH_BN}],
                         ids=["ln", "bn"])
def test_float32_engine_stays_float32_and_matches_numpy_float32(rng, kw):
    """The float32 path: float64 input is cast, modules, buffers, gradients and the parameters after
    Adam steps are float32 (no float64 copy going stale), and each step's gradients agree with the
    NumPy float32 net's to float32 rounding."""
    from normlab import optim
    model = FullyConnectedNet([30, 30, 30], input_dim=20, num_classes=5, dtype=np.float32, weight_scale=0.1,
                              rng_seed=0, **kw)
    tm = TorchModel(model)
    assert tm.dtype == np.float32
    assert all(t.dtype == torch.float32 for t in [*tm.net.parameters(), *tm.net.buffers()] if t.is_floating_point())
    X, y = _data(rng, (20,), n=16, classes=5)             # float64
    cfgs = [{k: {"learning_rate": 1e-3} for k in model.params} for _ in range(2)]
    for _ in range(3):
        (loss, grads), (t_loss, t_grads) = model.loss(X, y), tm.loss(X, y)
        assert t_loss == pytest.approx(loss, rel=1e-5)
        for k in grads:
            assert t_grads[k].dtype == np.float32
            if kw["normalization"] == "batchnorm" and k in ("b1", "b2", "b3"):   # true gradient 0: rounding noise
                assert np.abs(t_grads[k]).max() < 1e-6 and np.abs(grads[k]).max() < 1e-6
                continue
            np.testing.assert_allclose(t_grads[k], grads[k], rtol=1e-3, atol=1e-5 * np.abs(grads[k]).max())
        for m, g, c in ((model, grads, cfgs[0]), (tm, t_grads, cfgs[1])):
            for k in m.params:
                m.params[k], c[k] = optim.adam(m.params[k], g[k], c[k])
        assert all(v.dtype == np.float32 for v in tm.params.values())
    assert tm.scores(X).dtype == np.float32
    assert all(v.dtype == np.float32 for v in tm.state_arrays().values())


@pytest.mark.parametrize("norm", [None, "batchnorm", "groupnorm"])
def test_conv_loss_and_grads_match_numpy(rng, norm):
    model = ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=4, filter_size=3, hidden_dim=5, num_classes=3,
                              weight_scale=0.3, dtype=np.float64, normalization=norm, num_groups=2, rng_seed=1,
                              reg=0.05, norm_param=TORCH_BN if norm == "batchnorm" else None)
    tm = TorchModel(model)
    X, y = _data(rng, (2, 6, 6), n=6, classes=3)
    loss, grads = model.loss(X, y)
    t_loss, t_grads = tm.loss(X, y)
    assert t_loss == pytest.approx(loss, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(t_grads[k], grads[k], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(tm.loss(X), model.loss(X), rtol=1e-11, atol=1e-13)


def test_momentum_mapping_and_state_arrays_round_trip(rng):
    course = FullyConnectedNet([6], input_dim=4, num_classes=3, normalization="batchnorm", rng_seed=0)
    bn = TorchModel(course).net.norm1
    assert bn.momentum == pytest.approx(0.1) and bn.eps == 1e-5      # course 0.9 on the old value
    tm = TorchModel(FullyConnectedNet([6], input_dim=4, num_classes=3, normalization="batchnorm",
                                      norm_param={"convention": "torch", "momentum": 0.3}, rng_seed=0))
    assert tm.net.norm1.momentum == pytest.approx(0.3)
    state = {"running_mean1": np.arange(6.0, dtype=np.float32), "running_var1": np.full(6, 2.0, np.float32)}
    tm.load_state_arrays(state)
    got = tm.state_arrays()
    assert all(np.array_equal(got[k], state[k]) for k in state)
    tm.load_state_arrays({})                                          # absent: the initial values ('torch': var 1)
    assert np.array_equal(tm.state_arrays()["running_var1"], np.ones(6, np.float32))


@pytest.mark.parametrize("kind", ["fc", "cnn"])
def test_running_stats_start_as_the_numpy_models_and_differ_only_by_bessel(rng, kind):
    """A course-convention net (running variance from 0, biased): the torch engine starts from the same
    running statistics, so after the same steps its running means equal the NumPy net's and its running
    variances are the NumPy ones times m / (m - 1) (PyTorch updates with the unbiased batch variance).
    Left at PyTorch's start (variance 1) they would differ by 0.9**steps."""
    if kind == "fc":
        model = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, normalization="batchnorm",
                                  dtype=np.float64, weight_scale=0.1, rng_seed=1)
        X, y = _data(rng, (4,), n=10, classes=3)
        m = [10, 10]                                         # values per channel in each batch-norm layer
    else:
        model = ThreeLayerConvNet((2, 6, 6), num_filters=3, filter_size=3, hidden_dim=5, num_classes=3,
                                  normalization="batchnorm", dtype=np.float64, weight_scale=0.1, rng_seed=1)
        X, y = _data(rng, (2, 6, 6), n=10, classes=3)
        m = [10 * 6 * 6, 10]
    tm = TorchModel(model)
    assert all(np.array_equal(v, 0 * v) for v in tm.state_arrays().values())    # course start: 0 and 0
    for _ in range(5):
        for net in (model, tm):
            _, grads = net.loss(X, y)
            for k in net.params:
                net.params[k] = net.params[k] - 1e-2 * grads[k]
    a, b = model.state_arrays(), tm.state_arrays()
    assert set(a) == set(b) and len(a) == 4
    for i, mi in enumerate(m, start=1):
        np.testing.assert_allclose(b[f"running_mean{i}"], a[f"running_mean{i}"], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(b[f"running_var{i}"], a[f"running_var{i}"] * mi / (mi - 1), rtol=1e-9)
    tm.load_state_arrays({})                                  # absent: back to the NumPy model's start
    assert all(np.array_equal(v, 0 * v) for v in tm.state_arrays().values())


def test_solver_trains_torch_model_like_numpy(rng):
    """Same Solver, same batches, same Adam: float64 histories agree to rounding."""
    X, y = _data(rng, (8,), n=60, classes=3)
    Xv, yv = _data(rng, (8,), n=20, classes=3)
    data = {"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv}
    out = []
    for engine in ("numpy", "torch"):
        model = FullyConnectedNet([10, 10], input_dim=8, num_classes=3, normalization="batchnorm",
                                  norm_param=TORCH_BN, dtype=np.float64, weight_scale=0.3, rng_seed=2)
        if engine == "torch":
            model = TorchModel(model)
        s = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=10,
                   num_epochs=3, lr_decay=0.9, verbose=False, seed=4)
        s.train()
        out.append(s)
    a, b = out
    assert len(a.loss_history) == len(b.loss_history) == 18
    np.testing.assert_allclose(b.loss_history, a.loss_history, rtol=1e-10)
    assert a.train_acc_history == b.train_acc_history and a.val_acc_history == b.val_acc_history


def test_engine_field_validated_and_hash_stable():
    kw = dict(experiment="x", name="a/seed=0", model="fc")
    numpy_spec, torch_spec = RunSpec(**kw), RunSpec(**kw, engine="torch")
    assert "engine" not in numpy_spec.to_dict()            # NumPy runs keep their pre-engine identity
    assert torch_spec.spec_hash != numpy_spec.spec_hash
    assert RunSpec.from_dict(torch_spec.to_dict()) == torch_spec
    with pytest.raises(ValueError, match="unknown engine 'jax'"):
        RunSpec(**kw, engine="jax")


def test_execute_torch_engine_with_evaluations():
    from normlab.experiments import train_eval_mode as tem
    cfg = dataclasses.replace(tem.quick(tem.Config()), engine="torch", num_train=128, num_epochs=1)
    specs = tem.runs(cfg)
    assert all(s.engine == "torch" for s in specs)
    res = execute(specs[1])                                   # the batch-norm net
    assert res.status == "finished", res.error
    assert len(res.loss_history) == 2 and len(res.val_acc_history) == 2
    assert {"test_acc", "test_acc_train_mode", "per_class_test_acc"} <= set(res.extras)


def test_train_eval_mode_both_engines_side_by_side(tmp_path):
    pytest.importorskip("matplotlib")
    from normlab.experiments import train_eval_mode as tem
    cfg = dataclasses.replace(tem.quick(tem.Config()), engine="both", num_train=128, num_epochs=1)
    specs = tem.runs(cfg)
    assert [(s.engine, s.name) for s in specs] == [
        ("numpy", "baseline/seed=0"), ("numpy", "batchnorm/seed=0"),
        ("torch", "torch/baseline/seed=0"), ("torch", "torch/batchnorm/seed=0")]
    from normlab.lab.runs import recipe_results
    done = recipe_results(specs, {s.spec_hash: execute(s) for s in specs})
    assert all(r.status == "finished" for _, r in done), {s.name: r.error for s, r in done}
    section = tem.analyze(cfg, done, tmp_path)
    row = next(r for r in section.table if r["measure"] == "test accuracy, train mode")
    assert set(row) == {"measure", "baseline", "batchnorm", "baseline (torch engine)", "batchnorm (torch engine)"}
    assert "On the torch engine" in section.answer


def test_cli_run_with_torch_engine(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import json

    from normlab import cli
    out = tmp_path / "run"
    assert cli.main(["run", "bn-vs-baseline", "--engine", "torch", "--quick", "--jobs", "1", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert "torch" in json.dumps(config)
    hists = list((out / "runs" / "bn-vs-baseline").rglob("*.json"))
    assert len(hists) == 4 and all(json.loads(h.read_text())["spec"]["engine"] == "torch" for h in hists)


@pytest.mark.parametrize("kw", [
    {}, {"normalization": "batchnorm", "norm_param": TORCH_BN},
    {"normalization": "batchnorm", "norm_param": TORCH_BN, "bias_before_norm": False, "reg": 0.1},
    {"normalization": "layernorm", "dropout_keep_ratio": 0.7},
], ids=["plain", "bn", "bn-nobias-reg", "ln-dropout"])
def test_sigmoid_fc_loss_grads_and_scores_match_numpy(rng, kw):
    model = FullyConnectedNet([7, 6], input_dim=5, num_classes=4, dtype=np.float64, weight_scale=0.5,
                              activation="sigmoid", **{"rng_seed": 0, **kw})
    tm = TorchModel(model)
    assert tm.architecture().activation == "sigmoid"
    assert isinstance(tm.net.activation, torch.nn.Sigmoid)
    X, y = _data(rng, (5,), n=10, classes=4)
    loss, grads = model.loss(X, y)
    t_loss, t_grads = tm.loss(X, y)
    assert t_loss == pytest.approx(loss, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(t_grads[k], grads[k], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(tm.loss(X), model.loss(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tm.scores(X, "train"), model.scores(X, "train"), rtol=1e-12, atol=1e-14)
    relu = TorchModel(FullyConnectedNet([7, 6], input_dim=5, num_classes=4, rng_seed=0))
    assert isinstance(relu.net.activation, torch.nn.ReLU)


def test_numpy_only_settings_are_refused():
    with pytest.raises(ValueError, match="noisy-batchnorm runs on the numpy engine only"):
        TorchModel(FullyConnectedNet([6], input_dim=4, normalization="noisy-batchnorm", rng_seed=0))
    with pytest.raises(ValueError, match="batch_variance='unbiased' runs on the numpy engine only"):
        TorchModel(FullyConnectedNet([6], input_dim=4, normalization="batchnorm",
                                     norm_param={"batch_variance": "unbiased"}, rng_seed=0))
    with pytest.raises(ValueError, match="batch_variance='unbiased' runs on the numpy engine only"):
        TorchModel(ThreeLayerConvNet((2, 4, 4), num_filters=2, filter_size=3, normalization="batchnorm",
                                     norm_param={"batch_variance": "unbiased"}, rng_seed=0))


@pytest.mark.parametrize("kw", [
    {"normalization": "batchnorm", "norm_param": TORCH_BN, "norm_position": "after"},
    {"normalization": "batchnorm", "norm_param": TORCH_BN, "dropout_keep_ratio": 0.7, "seed": 3,
     "dropout_position": "before_norm"},
    {"normalization": "batchnorm", "norm_param": TORCH_BN, "dropout_keep_ratio": 0.7, "seed": 3,
     "dropout_position": "last_layer"},
    {"normalization": "layernorm", "norm_position": "after", "dropout_keep_ratio": 0.7,
     "dropout_position": "before_norm"},
], ids=["bn-after", "bn-drop-before-norm", "bn-drop-last", "ln-after-drop-before-norm"])
def test_fc_positions_match_numpy(rng, kw):
    model = FullyConnectedNet([7, 6], input_dim=5, num_classes=4, dtype=np.float64, weight_scale=0.5,
                              **{"rng_seed": 0, **kw})
    model.params["b1"] += 0.3 * rng.standard_normal(7)
    tm = TorchModel(model)
    X, y = _data(rng, (5,), n=10, classes=4)
    loss, grads = model.loss(X, y)
    t_loss, t_grads = tm.loss(X, y)
    assert t_loss == pytest.approx(loss, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(t_grads[k], grads[k], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(tm.loss(X), model.loss(X), rtol=1e-12, atol=1e-14)
