"""The Numba fast path of layer, group and instance norm (``normlab.nn.norm._jit_rows``)
against the NumPy reference (``backend.using("numpy")``), a float64 computation
and PyTorch.

float64: the two backends agree to rtol 1e-12. float32: both round, so each is
compared with the float64 computation of the same inputs, and the fast path's
error may be at most twice the reference's plus a few ulps. Everything else is
exact: the same cache types and dtypes, float16 and mismatched dout on the
reference, the same bits for any number of threads, and the elementwise passes
the reference's operations given the cached statistics.
"""
import numpy as np
import pytest

pytest.importorskip("numba")

from normlab.nn import backend, warm  # noqa: E402
from normlab.nn._checks import NonFiniteError  # noqa: E402
from normlab.nn.norm import _jit_rows  # noqa: E402
from normlab.nn.norm.group import (GroupNormCache, LayerNormCache, instancenorm_backward,  # noqa: E402
                                   instancenorm_forward, layernorm_backward, layernorm_forward,
                                   spatial_groupnorm_backward, spatial_groupnorm_forward)

EPS = 1e-5


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Compile (or load) the kernels once, outside any test's time."""
    if not backend.available():
        pytest.skip("the Numba backend is not available")
    warm.warm()   # every kernel, as make setup compiles them


@pytest.fixture(autouse=True)
def numba_backend():
    with backend.using("numba"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ----------------------------------------------------------------------------- helpers

def run(kind, x, gamma, beta, dout, G=None):
    """(out, dx, dgamma, dbeta), cache of one layer on the current backend."""
    if kind == "ln":
        out, cache = layernorm_forward(x, gamma, beta, {})
        return (out, *layernorm_backward(dout, cache)), cache
    if kind == "in":
        out, cache = instancenorm_forward(x, gamma, beta, {})
        return (out, *instancenorm_backward(dout, cache)), cache
    out, cache = spatial_groupnorm_forward(x, gamma, beta, G, {})
    return (out, *spatial_groupnorm_backward(dout, cache)), cache


def reference(*args, **kw):
    with backend.using("numpy"):
        return run(*args, **kw)


def inputs(rng, kind, shape, dtype, offset=0.0, spread=3.0):
    c = shape[1]
    x = (offset + spread * rng.standard_normal(shape)).astype(dtype)
    gamma, beta = (rng.standard_normal(c).astype(dtype) for _ in range(2))
    dout = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dout


def condition(kind, x, G=None):
    """max|x| / smallest std of a statistic: how much rounding the normalization amplifies."""
    x64 = x.astype(np.float64)
    rows = x64 if kind == "ln" else x64.reshape(x.shape[0] * (x.shape[1] if kind == "in" else G), -1)
    return max(1.0, float(np.max(np.abs(rows)) / max(np.min(rows.std(axis=1)), 1e-300)))


def scales(kind, x, gamma, dout, cache):
    """The magnitude of the terms that round in (out, dx, dgamma, dbeta): cancellation makes a result
    smaller than its terms (dx of a group of two values is ~eps/var of them), never its error."""
    x_hat = np.abs(cache.x_hat)
    axes = (0,) if kind == "ln" else (0, 2, 3)
    gamma = np.abs(gamma).reshape((1, -1) + (1,) * (x.ndim - 2))
    summed = np.max(np.sum(np.abs(dout) * x_hat, axis=axes)), np.max(np.sum(np.abs(dout), axis=axes))
    return (np.max(x_hat * gamma) + np.max(np.abs(cache.gamma)), np.max(cache.inv_std) * np.max(np.abs(dout) * gamma),
            *summed)


def assert_float64_close(got, want, cond, m, scale):
    """rtol 1e-12, and an atol of a few eps times the conditioning, scaled to each result's terms."""
    for name, a, b, sc in zip(("out", "dx", "dgamma", "dbeta"), got, want, scale):
        assert a.dtype == b.dtype == np.float64 and a.shape == b.shape, name
        atol = 16 * np.finfo(np.float64).eps * cond * np.sqrt(m) * sc
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=atol, err_msg=name)


def assert_float32_as_good(kind, x, gamma, beta, dout, G=None):
    """The fast path's float32 errors are at most 2x the reference's plus a few ulps (vs float64)."""
    got, _ = run(kind, x, gamma, beta, dout, G)
    ref, _ = reference(kind, x, gamma, beta, dout, G)
    exact, _ = reference(kind, *(a.astype(np.float64) for a in (x, gamma, beta, dout)), G)
    for name, a, r, e in zip(("out", "dx", "dgamma", "dbeta"), got, ref, exact):
        assert a.dtype == r.dtype == np.float32 and a.shape == r.shape, name
        fast_err = np.max(np.abs(a - e))
        ref_err = np.max(np.abs(r.astype(np.float64) - e))
        ulps = 4 * np.finfo(np.float32).eps * np.max(np.abs(e))
        assert fast_err <= 2 * ref_err + ulps, (name, fast_err, ref_err)


def compare(rng, kind, shape, dtype, G=None, offset=0.0, spread=3.0):
    x, gamma, beta, dout = inputs(rng, kind, shape, dtype, offset, spread)
    if dtype == np.float32:
        assert_float32_as_good(kind, x, gamma, beta, dout, G)
        return
    got, cache = run(kind, x, gamma, beta, dout, G)
    want, ref_cache = reference(kind, x, gamma, beta, dout, G)
    assert type(cache) is type(ref_cache)
    m = shape[1] if kind == "ln" else x.size // x.shape[0] // (x.shape[1] if kind == "in" else G)
    assert_float64_close(got, want, condition(kind, x, G), max(m, x.shape[0]), scales(kind, x, gamma, dout, ref_cache))


# ----------------------------------------------------------------------------- layer norm

LN_SHAPES = [(50, 100), (7, 1), (1, 13), (3, 5), (4096, 1024)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", LN_SHAPES, ids=str)
def test_layernorm_matches_reference(rng, shape, dtype):
    compare(rng, "ln", shape, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layernorm_huge_offset(rng, dtype):
    # x = 1e4 + N(0, 1): E[x^2] - E[x]^2 would keep nothing of the variance in float32
    compare(rng, "ln", (64, 300), dtype, offset=1e4, spread=1.0)
    x, gamma, beta, dout = inputs(rng, "ln", (64, 300), dtype, offset=1e4, spread=1.0)
    out, _ = layernorm_forward(x, np.ones_like(gamma), np.zeros_like(beta), {})
    v = x.astype(np.float64).var(axis=1)
    np.testing.assert_allclose(out.astype(np.float64).std(axis=1), np.sqrt(v / (v + EPS)),
                               rtol=1e-3 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("view", ["transposed", "strided"])
def test_layernorm_non_contiguous_input(rng, view):
    base = rng.standard_normal((40, 60)) * 2 + 1
    x = base.T if view == "transposed" else base[::2, ::3]
    assert not x.flags.c_contiguous
    gamma, beta = rng.standard_normal((2, x.shape[1]))
    dout = rng.standard_normal(x.shape)
    got, cache = run("ln", x, gamma, beta, dout)
    want, ref_cache = reference("ln", np.ascontiguousarray(x), gamma, beta, dout)
    assert_float64_close(got, want, condition("ln", x), x.shape[1], scales("ln", x, gamma, dout, ref_cache))
    dout_view = np.asfortranarray(dout)   # a non-contiguous upstream gradient too
    for a, b in zip(layernorm_backward(dout_view, cache), got[1:]):
        np.testing.assert_array_equal(a, b)


def test_layernorm_float16_is_the_reference(rng):
    x, gamma, beta, dout = inputs(rng, "ln", (6, 10), np.float16)
    got, cache = run("ln", x, gamma, beta, dout)
    want, ref_cache = reference("ln", x, gamma, beta, dout)
    assert type(cache) is type(ref_cache) is LayerNormCache
    for a, b in zip(got, want):
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- group and instance norm

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("G", [1, 2, 3, 6])
def test_groupnorm_matches_reference(rng, G, dtype):
    compare(rng, "gn", (2, 6, 5, 7), dtype, G)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("G", [8, 32])
def test_groupnorm_large(rng, G, dtype):
    compare(rng, "gn", (64, 32, 28, 28), dtype, G)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, G", [((3, 1, 4, 5), 1), ((2, 4, 1, 1), 2), ((5, 1, 1, 1), 1), ((2, 6, 1, 3), 3)],
                         ids=["one-channel", "hw1", "one-value", "h1"])
def test_groupnorm_degenerate_shapes(rng, shape, G, dtype):
    compare(rng, "gn", shape, dtype, G)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 6, 5, 7), (3, 1, 4, 4), (2, 3, 1, 1), (8, 16, 9, 11)], ids=str)
def test_instancenorm_matches_reference(rng, shape, dtype):
    compare(rng, "in", shape, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_groupnorm_huge_offset(rng, dtype):
    compare(rng, "gn", (4, 6, 7, 9), dtype, 3, offset=1e4, spread=1.0)


def test_groupnorm_non_contiguous_input(rng):
    base = rng.standard_normal((2, 6, 10, 7)) * 2 + 1
    x = base[:, :, ::2]   # (2, 6, 5, 7), strided
    gamma, beta = rng.standard_normal((2, 1, 6, 1, 1))   # (1, C, 1, 1) parameters
    dout = rng.standard_normal(x.shape)
    got, cache = run("gn", x, gamma, beta, dout, 2)
    want, ref_cache = reference("gn", np.ascontiguousarray(x), gamma, beta, dout, 2)
    assert got[2].shape == got[3].shape == (1, 6, 1, 1)
    assert_float64_close(got, want, condition("gn", x, 2), 2 * 35, scales("gn", x, gamma, dout, ref_cache))


@pytest.mark.parametrize("kind", ["gn", "in"])
def test_groupnorm_float16_is_the_reference(rng, kind):
    x, gamma, beta, dout = inputs(rng, kind, (2, 6, 3, 4), np.float16)
    got, cache = run(kind, x, gamma, beta, dout, 3)
    want, ref_cache = reference(kind, x, gamma, beta, dout, 3)
    assert type(cache) is type(ref_cache) is GroupNormCache
    for a, b in zip(got, want):
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- exact properties

CASES = [("ln", (33, 70), None), ("gn", (3, 6, 5, 7), 2), ("in", (3, 4, 5, 6), None)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, shape, G", CASES, ids=[c[0] for c in CASES])
def test_same_cache_on_both_backends(rng, kind, shape, G, dtype):
    x, gamma, beta, dout = inputs(rng, kind, shape, dtype, offset=5.0)
    _, cache = run(kind, x, gamma, beta, dout, G)
    _, ref_cache = reference(kind, x, gamma, beta, dout, G)
    assert type(cache) is type(ref_cache)
    for field, a, b in zip(cache._fields, cache, ref_cache):
        if isinstance(b, np.ndarray):
            assert (a.shape, a.dtype) == (b.shape, b.dtype), field
        else:
            assert a == b, field
    assert cache.x_hat.shape == x.shape and cache.x_hat.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, shape, G", CASES, ids=[c[0] for c in CASES])
def test_elementwise_passes_are_the_references_operations(rng, kind, shape, G, dtype):
    # Given the cached statistics, out is the reference's x_hat * gamma + beta to the bit.
    x, gamma, beta, dout = inputs(rng, kind, shape, dtype, offset=5.0)
    (out, *_), cache = run(kind, x, gamma, beta, dout, G)
    c = (1, -1) if kind == "ln" else (1, -1, 1, 1)
    want = cache.x_hat * gamma.reshape(c)
    want += beta.reshape(c)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, shape, G", CASES, ids=[c[0] for c in CASES])
def test_caches_cross_backends(rng, kind, shape, G, dtype):
    # The cache is one type: either backend's backward takes the other's forward.
    x, gamma, beta, dout = inputs(rng, kind, shape, dtype, offset=5.0)
    backward = layernorm_backward if kind == "ln" else spatial_groupnorm_backward
    _, fast_cache = run(kind, x, gamma, beta, dout, G)
    _, ref_cache = reference(kind, x, gamma, beta, dout, G)
    with backend.using("numpy"):
        a = backward(dout, fast_cache)
    b = backward(dout, ref_cache)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for u, v in zip(a, b):
        assert u.dtype == v.dtype == dtype
        np.testing.assert_allclose(u, v, rtol=tol, atol=tol * np.max(np.abs(v)))


THREAD_CASES = [("ln", (1024, 512), None), ("gn", (16, 32, 32, 32), 8), ("in", (8, 16, 64, 64), None),
                ("ln", (20000, 24), None)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, shape, G", THREAD_CASES, ids=[f"{c[0]}{c[1]}" for c in THREAD_CASES])
def test_bits_do_not_depend_on_thread_count(rng, monkeypatch, kind, shape, G, dtype):
    x, gamma, beta, dout = inputs(rng, kind, shape, dtype, offset=3.0)
    rows = x.reshape(x.shape[0] * (1 if kind == "ln" else (G or x.shape[1])), -1)
    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("NORMLAB_NUM_THREADS", threads)
        step, blocks, used = _jit_rows._plan(rows)
        assert used == min(int(threads), blocks) and blocks >= 4   # several blocks, cut among the threads
        results[threads] = run(kind, x, gamma, beta, dout, G)[0]
    for threads in ("2", "3"):
        for a, b in zip(results[threads], results["1"]):
            np.testing.assert_array_equal(a, b)


def test_mismatched_dout_takes_the_reference(rng):
    x, gamma, beta, _ = inputs(rng, "ln", (5, 8), np.float32)
    dout = rng.standard_normal(x.shape)   # float64 upstream gradient of float32 x
    _, cache = layernorm_forward(x, gamma, beta, {})
    got = layernorm_backward(dout, cache)
    with backend.using("numpy"):
        want = layernorm_backward(dout, cache)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["ln", "gn"])
def test_overflowing_variance_raises_on_both_backends(rng, kind):
    shape = (3, 8) if kind == "ln" else (2, 4, 2, 2)
    x = (3e19 * rng.standard_normal(shape)).astype(np.float32)   # var ~ 1e39 overflows float32
    one, zero = np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32)
    for name in backend.BACKENDS:
        with backend.using(name), pytest.raises(NonFiniteError, match="NaN or inf"):
            if kind == "ln":
                layernorm_forward(x, one, zero, {})
            else:
                spatial_groupnorm_forward(x, one, zero, 2, {})


def test_compile_failure_falls_back_to_the_reference(rng, monkeypatch):
    from numba.core.errors import TypingError

    def broken(*args):
        raise TypingError("cannot compile")

    monkeypatch.setitem(backend._state, "failed", None)      # restored after the test
    monkeypatch.setitem(backend._state, "noticed", False)
    monkeypatch.setattr(_jit_rows, "layernorm_forward", broken)
    x, gamma, beta, dout = inputs(rng, "ln", (4, 6), np.float64)
    with pytest.warns(backend.FastBackendNotice, match="failed to compile"):
        got, cache = run("ln", x, gamma, beta, dout)
    assert not backend.fast() and backend.active() == "numpy"
    want, _ = reference("ln", x, gamma, beta, dout)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- PyTorch

torch_cases = [("ln", (7, 1), None), ("ln", (1, 13), None), ("ln", (3, 5), None), ("ln", (129, 257), None),
               ("gn", (2, 6, 5, 7), 3), ("gn", (3, 1, 1, 1), 1), ("gn", (2, 4, 1, 1), 4), ("gn", (1, 6, 3, 1), 2),
               ("in", (2, 5, 3, 7), None)]


@pytest.mark.parametrize("kind, shape, G", torch_cases, ids=[f"{c[0]}{c[1]}" for c in torch_cases])
def test_matches_torch(rng, kind, shape, G):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, gamma, beta, dout = inputs(rng, kind, shape, np.float64, offset=12.0, spread=5.0)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    if kind == "ln":
        out = F.layer_norm(tx, shape[1:], tg, tb, eps=EPS)
    else:
        out = F.group_norm(tx, shape[1] if kind == "in" else G, tg, tb, eps=EPS)
    out.backward(torch.tensor(dout))
    want = (out.detach().numpy(), tx.grad.numpy(), tg.grad.numpy(), tb.grad.numpy())
    got, _ = run(kind, x, gamma, beta, dout, G)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
