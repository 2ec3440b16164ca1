"""Update rules: the CS231n known answers, closed forms over several steps,
dtype preservation, the config-dict contract and option validation."""
import numpy as np
import pytest

from normlab import optim
from normlab.optim import adam, rmsprop, sgd, sgd_momentum

N, D = 4, 5
RULES = [sgd, sgd_momentum, rmsprop, adam]


def rel_error(x, y):
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


@pytest.fixture
def wd():
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    return w, dw


# ------------------------------------------------------------ course known answers

def test_sgd_momentum_known_answer(wd):
    w, dw = wd
    v = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = sgd_momentum(w, dw, {"learning_rate": 1e-3, "velocity": v})
    expected_next_w = np.asarray([
        [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
        [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
        [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
        [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]])
    expected_velocity = np.asarray([
        [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
        [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
        [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
        [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]])
    assert rel_error(next_w, expected_next_w) < 1e-7
    assert rel_error(config["velocity"], expected_velocity) < 1e-7


def test_rmsprop_known_answer(wd):
    w, dw = wd
    cache = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = rmsprop(w, dw, {"learning_rate": 1e-2, "cache": cache})
    expected_next_w = np.asarray([
        [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
        [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
        [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
        [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]])
    expected_cache = np.asarray([
        [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
        [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
        [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
        [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]])
    # The printed expected values carry 8 decimals: ~1e-7 relative is their precision.
    assert rel_error(next_w, expected_next_w) < 5e-7
    assert rel_error(config["cache"], expected_cache) < 1e-7


def test_adam_known_answer(wd):
    w, dw = wd
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    next_w, config = adam(w, dw, {"learning_rate": 1e-2, "m": m, "v": v, "t": 5})
    expected_next_w = np.asarray([
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
    expected_v = np.asarray([
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]])
    expected_m = np.asarray([
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]])
    assert rel_error(next_w, expected_next_w) < 5e-7
    assert rel_error(config["v"], expected_v) < 1e-7
    assert rel_error(config["m"], expected_m) < 1e-7
    assert config["t"] == 6


# ------------------------------------------------------------ closed form, several steps

def _grads(rng, steps):
    return [rng.standard_normal((N, D)) for _ in range(steps)]


def test_sgd_closed_form_and_default(wd):
    w, dw = wd
    next_w, config = sgd(w, dw)
    np.testing.assert_array_equal(next_w, w - 1e-2 * dw)
    assert config == {"learning_rate": 1e-2}


def test_momentum_closed_form_over_steps(wd):
    w, _ = wd
    gs = _grads(np.random.default_rng(0), 4)
    config = {"learning_rate": 0.05, "momentum": 0.8}
    cur = w
    for g in gs:
        cur, config = sgd_momentum(cur, g, config)
    # v_k = sum_j 0.8**(k-j) * (-lr g_j); w_4 = w + v_1 + ... + v_4
    vs, v = [], np.zeros_like(w)
    for g in gs:
        v = 0.8 * v - 0.05 * g
        vs.append(v)
    np.testing.assert_allclose(cur, w + sum(vs), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(config["velocity"], vs[-1], rtol=1e-12)


def test_rmsprop_closed_form_over_steps(wd):
    w, _ = wd
    gs = _grads(np.random.default_rng(1), 3)
    cur, config = w, None
    for g in gs:
        cur, config = rmsprop(cur, g, config)
    d = 0.99
    c1 = (1 - d) * gs[0] ** 2
    c2 = d * c1 + (1 - d) * gs[1] ** 2
    c3 = d * c2 + (1 - d) * gs[2] ** 2
    expected = w - 1e-2 * (gs[0] / (np.sqrt(c1) + 1e-8) + gs[1] / (np.sqrt(c2) + 1e-8)
                           + gs[2] / (np.sqrt(c3) + 1e-8))
    np.testing.assert_allclose(cur, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(config["cache"], c3, rtol=1e-12)
    assert config["decay_rate"] == 0.99 and config["epsilon"] == 1e-8


def test_adam_first_step_is_sign_step(wd):
    # t becomes 1 before the correction: m_hat = dw, v_hat = dw**2, so the
    # first step is lr * dw / (|dw| + eps) (a sign step); using t=0 would divide by zero.
    w, dw = wd
    next_w, config = adam(w, dw)
    np.testing.assert_allclose(next_w, w - 1e-3 * dw / (np.abs(dw) + 1e-8), rtol=1e-12)
    assert config["t"] == 1
    assert config["learning_rate"] == 1e-3 and config["beta1"] == 0.9 and config["beta2"] == 0.999


def test_adam_closed_form_over_steps(wd):
    w, _ = wd
    gs = _grads(np.random.default_rng(2), 3)
    cur, config = w, {"learning_rate": 0.1, "beta1": 0.5, "beta2": 0.75}
    for g in gs:
        cur, config = adam(cur, g, config)
    m = v = np.zeros_like(w)
    expected = w
    for t, g in enumerate(gs, start=1):
        m = 0.5 * m + 0.5 * g
        v = 0.75 * v + 0.25 * g * g
        expected = expected - 0.1 * (m / (1 - 0.5 ** t)) / (np.sqrt(v / (1 - 0.75 ** t)) + 1e-8)
    np.testing.assert_allclose(cur, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(config["m"], m, rtol=1e-12)
    np.testing.assert_allclose(config["v"], v, rtol=1e-12)
    assert config["t"] == 3


# ------------------------------------------------------------ contract

@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_for_weights_and_state(rule, dtype):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 4)).astype(dtype)
    dw = rng.standard_normal((3, 4))  # float64 gradient must not upcast float32 weights
    config = None
    for _ in range(3):
        w, config = rule(w, dw, config)
        assert w.dtype == dtype
        for k, v in config.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == dtype, k


@pytest.mark.parametrize("rule", RULES)
def test_inputs_not_mutated_and_same_dict_returned(rule, wd):
    w, dw = wd
    w0, dw0 = w.copy(), dw.copy()
    config = {"learning_rate": 1e-2}
    _, out = rule(w, dw, config)
    _, out = rule(w, dw, out)
    assert out is config
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dw, dw0)


@pytest.mark.parametrize("rule", RULES)
def test_core_matches_adapter(rule, wd):
    w, dw = wd
    name = rule.__name__
    _, spec = optim.UPDATE_RULES[name]
    hp = spec.hyper(learning_rate=0.02)
    core_w, state = spec.step(w, dw, hp, None)
    adapter_w, config = rule(w, dw, {"learning_rate": 0.02})
    np.testing.assert_array_equal(core_w, adapter_w)
    if state is not None:
        for k, v in state._asdict().items():
            np.testing.assert_array_equal(config[k], v)


def test_hyperparameters_are_frozen():
    hp = optim.AdamConfig()
    with pytest.raises(Exception):
        hp.learning_rate = 1.0


@pytest.mark.parametrize("rule", RULES)
def test_unknown_key_names_key_and_allowed(rule, wd):
    w, dw = wd
    with pytest.raises(ValueError, match=r"'lr'.*allowed: learning_rate"):
        rule(w, dw, {"lr": 1e-3})


def test_state_key_of_another_rule_is_unknown(wd):
    w, dw = wd
    with pytest.raises(ValueError, match="'velocity'"):
        adam(w, dw, {"velocity": np.zeros_like(w)})


@pytest.mark.parametrize("config, match", [
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"beta1": 1.0}, "beta1"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"m": np.zeros((N, D))}, "missing v"),
    ({"m": np.zeros((1, 2)), "v": np.zeros((1, 2))}, "shape"),
])
def test_bad_adam_config(config, match, wd):
    w, dw = wd
    with pytest.raises(ValueError, match=match):
        adam(w, dw, config)


def test_shape_and_type_errors(wd):
    w, dw = wd
    with pytest.raises(ValueError, match="shape"):
        sgd(w, dw[:2])
    with pytest.raises(TypeError, match="floating-point"):
        sgd(np.arange(4), np.ones(4))


def test_check_config_and_allowed_keys():
    assert optim.allowed_config_keys("sgd_momentum") == ("learning_rate", "momentum", "velocity")
    optim.check_config("rmsprop", {"decay_rate": 0.9})
    with pytest.raises(ValueError, match="unknown update rule 'nesterov'"):
        optim.check_config("nesterov", {})
    with pytest.raises(ValueError, match="'decay'"):
        optim.check_config("rmsprop", {"decay": 0.9})
