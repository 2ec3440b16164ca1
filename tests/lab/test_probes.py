"""The probes of normlab.lab.probes: closed forms and recomputations by hand, the model left bit
for bit as it was, divergence reported as None without warnings."""
import json
import math
import re
import warnings

import numpy as np
import pytest

from normlab.lab.probes import activation_percentiles, internal_covariate_shift, landscape, layer_of
from normlab.models import FullyConnectedNet
from normlab.nn._checks import NonFiniteError

LR = 0.1


def _net(**kw):
    kw = {"normalization": "batchnorm", **kw}
    return FullyConnectedNet(hidden_dims=[8, 8], input_dim=5, num_classes=3, dtype=np.float64, rng_seed=0, **kw)


@pytest.fixture
def batch():
    r = np.random.default_rng(11)
    return r.standard_normal((20, 5)), r.integers(3, size=20)


@pytest.fixture
def trained(batch):
    """A BN net after one train-mode pass: it has running statistics to restore."""
    m = _net()
    m.loss(*batch)
    return m


def _snapshot(model):
    return ({k: (v, v.copy()) for k, v in model.params.items()}, model.state_arrays())


def _assert_unchanged(model, snap):
    params, state = snap
    assert list(model.params) == list(params)
    for k, (obj, copy) in params.items():
        assert model.params[k] is obj, k               # the same arrays, never replaced ...
        np.testing.assert_array_equal(obj, copy)       # ... nor written to
        assert obj.tobytes() == copy.tobytes(), k      # bit for bit (-0.0, NaN payloads)
    now = model.state_arrays()
    assert set(now) == set(state)
    for k in state:
        assert now[k].dtype == state[k].dtype and now[k].tobytes() == state[k].tobytes(), k


# ------------------------------------------------------------------ layer_of


@pytest.mark.parametrize("name, layer", [("W1", 1), ("b3", 3), ("gamma12", 12), ("beta2", 2), ("W25", 25)])
def test_layer_of(name, layer):
    assert layer_of(name) == layer


def test_layer_of_rejects_names_without_index():
    with pytest.raises(ValueError, match="no layer index"):
        layer_of("gamma")


# ------------------------------------------------------------------ internal covariate shift


def test_ics_of_the_first_layer_is_zero(trained, batch):
    # No layer precedes layer 1, so G' is G: l2 exactly 0, cos exactly 1.
    ics = internal_covariate_shift(trained, *batch, LR, [1])
    assert ics["layers"] == [1] and ics["l2"] == [0.0] and ics["cos"] == [1.0]
    G = trained.loss(*batch)[1]["W1"]
    assert ics["grad_norm"][0] == pytest.approx(np.linalg.norm(G), rel=1e-14)


def test_ics_equals_a_recomputation_by_hand(trained, batch):
    X, y = batch
    state = trained.state_arrays()
    ics = internal_covariate_shift(trained, X, y, LR, [1, 2, 3])
    twin = _net()                                       # the same net, rebuilt from the seed
    twin.load_state_arrays(state)
    _, grads = twin.loss(X, y)
    for j, i in enumerate([1, 2, 3]):
        hand = _net()
        for k in hand.params:
            if int(re.search(r"\d+$", k).group()) < i:   # W, b, gamma, beta of the layers before i
                hand.params[k] = twin.params[k] - LR * grads[k]
        G, G2 = grads[f"W{i}"], hand.loss(X, y)[1][f"W{i}"]
        assert ics["l2"][j] == pytest.approx(np.linalg.norm(G - G2), rel=1e-12, abs=1e-15)
        cos = np.sum(G * G2) / (np.linalg.norm(G) * np.linalg.norm(G2))
        assert ics["cos"][j] == pytest.approx(cos, rel=1e-12)
        assert ics["grad_norm"][j] == pytest.approx(np.linalg.norm(G), rel=1e-12)
    assert ics["l2"][1] > 0 and ics["l2"][2] > 0


def test_ics_steps_gamma_and_beta_of_earlier_layers(batch):
    # The update of the layers before 2 moves gamma1 and beta1 too, not only W1 and b1:
    # stepping W1 and b1 alone gives another G'.
    X, y = batch
    m = _net()
    _, grads = m.loss(X, y)
    ics = internal_covariate_shift(m, X, y, LR, [2])
    only_w = _net()
    for k in ("W1", "b1"):
        only_w.params[k] = m.params[k] - LR * grads[k]
    G2_w = only_w.loss(X, y)[1]["W2"]
    assert ics["l2"][0] != pytest.approx(np.linalg.norm(grads["W2"] - G2_w), rel=1e-6)


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_ics_leaves_the_model_bit_identical(batch, normalization):
    m = _net(normalization=normalization)
    m.loss(*batch)
    snap = _snapshot(m)
    internal_covariate_shift(m, *batch, LR, [1, 2, 3])
    _assert_unchanged(m, snap)


def test_probes_on_a_net_never_trained_leave_no_running_statistics(batch):
    m = _net()
    assert m.state_arrays() == {}
    internal_covariate_shift(m, *batch, LR, [2])
    landscape(m, *batch, LR)
    assert m.state_arrays() == {}


def test_dropout_masks_repeat_across_evaluations_and_the_generator_is_restored(batch):
    # Every evaluation of a probe sees the same masks: layer 1's ICS stays exactly 0.
    m = _net(dropout_keep_ratio=0.5)
    rng_state = m.rng.bit_generator.state
    ics = internal_covariate_shift(m, *batch, LR, [1, 3])
    assert ics["l2"][0] == 0.0
    assert m.rng.bit_generator.state == rng_state
    landscape(m, *batch, LR)
    assert m.rng.bit_generator.state == rng_state


def test_the_global_generator_is_restored(batch):
    np.random.seed(5)
    m = FullyConnectedNet(hidden_dims=[8], input_dim=5, num_classes=3, dropout_keep_ratio=0.5, dtype=np.float64)
    before = np.random.get_state()[1].copy()
    internal_covariate_shift(m, *batch, LR, [1, 2])
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_ics_rejects_bad_arguments(trained, batch):
    with pytest.raises(ValueError, match=r"layers \[4\] have no weight"):
        internal_covariate_shift(trained, *batch, LR, [1, 4])
    for lr in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="lr"):
            internal_covariate_shift(trained, *batch, lr, [1])


def test_a_failing_loss_leaves_the_model_restored(trained, batch):
    X, y = batch
    snap = _snapshot(trained)
    with pytest.raises(ValueError):
        internal_covariate_shift(trained, X[:, :4], y, LR, [1])
    _assert_unchanged(trained, snap)


# ------------------------------------------------------------------ landscape


def test_landscape_equals_a_recomputation_by_hand(trained, batch):
    X, y = batch
    mults = (0.5, 1, 2, 3, 4)
    state = trained.state_arrays()
    snap = _snapshot(trained)
    out = landscape(trained, X, y, LR, mults)
    _assert_unchanged(trained, snap)

    twin = _net()
    twin.load_state_arrays(state)
    loss0, g = twin.loss(X, y)
    gvec = np.concatenate([g[k].ravel() for k in twin.params])
    losses, changes = [], []
    for m in mults:
        eta = m * LR
        hand = _net()
        for k in hand.params:
            hand.params[k] = twin.params[k] - eta * g[k]
        loss, g2 = hand.loss(X, y)
        losses.append(loss)
        changes.append(np.linalg.norm(gvec - np.concatenate([g2[k].ravel() for k in hand.params])))
    assert out["loss"] == loss0
    assert out["losses"] == losses                         # the same arithmetic: equal floats
    assert out["steps"] == pytest.approx([m * LR for m in mults])
    assert out["loss_range"] == pytest.approx(max([loss0] + losses) - min([loss0] + losses), rel=1e-12)
    assert out["grad_changes"] == pytest.approx(changes, rel=1e-12)
    assert out["grad_change"] == pytest.approx(max(changes), rel=1e-12)
    betas = [c / (m * LR * np.linalg.norm(gvec)) for c, m in zip(changes, mults)]
    assert out["beta"] == pytest.approx(max(betas), rel=1e-12)
    assert out["grad_norm"] == pytest.approx(np.linalg.norm(gvec), rel=1e-12)
    json.dumps(out, allow_nan=False)


def test_landscape_rejects_bad_multipliers(trained, batch):
    with pytest.raises(ValueError, match="multipliers is empty"):
        landscape(trained, *batch, LR, ())
    with pytest.raises(ValueError, match="multiplier"):
        landscape(trained, *batch, LR, (1, -2))


# ------------------------------------------------------------------ divergence


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_huge_steps_give_none_without_warnings(batch, normalization):
    m = _net(normalization=normalization)
    m.loss(*batch)
    snap = _snapshot(m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        land = landscape(m, *batch, 1e300, multipliers=(1e-300, 1, 4))
        ics = internal_covariate_shift(m, *batch, 1e300, [1, 2, 3])
    _assert_unchanged(m, snap)
    assert land["losses"][0] is not None                   # eta = 1: a finite step
    assert land["losses"][1:] == [None, None] and land["grad_changes"][1:] == [None, None]
    assert land["loss_range"] is None and land["grad_change"] is None and land["beta"] is None
    assert land["loss"] is not None and land["grad_norm"] is not None
    assert ics["l2"][0] == 0.0
    for key in ("l2", "cos", "grad_norm"):
        assert all(v is None or math.isfinite(v) for v in ics[key])
    json.dumps([land, ics], allow_nan=False)


def test_a_diverged_model_raises_nonfinite(batch):
    m = _net()
    m.params["W1"] = np.full_like(m.params["W1"], np.inf)
    snap = _snapshot(m)
    with pytest.raises(NonFiniteError, match="diverged"):
        landscape(m, *batch, LR)
    with pytest.raises(NonFiniteError, match="diverged"):
        internal_covariate_shift(m, *batch, LR, [1])
    _assert_unchanged(m, snap)


# ------------------------------------------------------------------ activation percentiles


def test_activation_percentiles_per_unit():
    acts = np.random.default_rng(0).standard_normal((101, 4)) * np.array([1, 2, 3, 4])
    out = activation_percentiles(acts)
    assert out.shape == (3, 4)
    for j in range(4):
        np.testing.assert_allclose(out[:, j], np.percentile(acts[:, j], [15, 50, 85]))
    # closed form: 0..100 in one column, so the q-th percentile is q
    col = np.arange(101.0)[:, None]
    np.testing.assert_array_equal(activation_percentiles(col, q=(0, 15, 50, 100))[:, 0], [0, 15, 50, 100])
    assert activation_percentiles(col, q=50).shape == (1, 1)


@pytest.mark.parametrize("acts, q", [(np.zeros(5), (50,)), (np.zeros((0, 3)), (50,)), (np.zeros((4, 3)), (120,))])
def test_activation_percentiles_rejects(acts, q):
    with pytest.raises(ValueError):
        activation_percentiles(acts, q)
