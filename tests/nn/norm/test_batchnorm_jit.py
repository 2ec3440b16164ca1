"""Batch norm on the Numba backend against the NumPy reference, PyTorch and itself at other thread counts.

The fast path is a drop-in: same caches, dtypes and shapes; float64 within
1e-12 of the reference; float32 no further from the exact (float64) result
than the reference's own rounding; bit-identical whatever the thread count.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("numba")

from normlab.layers import (batchnorm_backward, batchnorm_backward_alt,  # noqa: E402
                            batchnorm_forward, spatial_batchnorm_backward, spatial_batchnorm_forward)
from normlab.nn import backend  # noqa: E402
from normlab.nn.norm import _jit, _jit_layer  # noqa: E402
from normlab.nn.norm.batchnorm import batchnorm_after_bias  # noqa: E402

# One block and several (a ragged last one), one channel, odd sizes, size-1 spatial axes.
SHAPES = [(50, 100), (7, 1), (2, 5), (3, 1), (3001, 64), (1029, 513), (5, 3, 7, 3), (33, 4, 31, 32),
          (9, 2, 1, 1), (2, 1, 1, 1), (64, 3, 28, 28)]
LAYOUTS = ["contiguous", "transposed", "strided"]


def make(rng, shape, dtype, layout="contiguous", offset=3.0, scale=2.0, ramp=True):
    """scale N(0, 1) + offset (+ a per-channel ramp 0, 1, ..., C - 1), in the given memory layout."""
    full = (2 * shape[0],) + shape[1:] if layout == "strided" else shape
    x = scale * rng.standard_normal(full) + offset
    if ramp:
        x = x + np.arange(shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2))
    if layout == "strided":
        x = x[::2]
    elif layout == "transposed":   # the same values in Fortran order: a non-C-contiguous array
        x = np.asfortranarray(x)
    return x.astype(dtype, copy=False)


def layer(shape):
    return (batchnorm_forward, batchnorm_backward_alt) if len(shape) == 2 else \
        (spatial_batchnorm_forward, spatial_batchnorm_backward)


def run(shape, x, dout, gamma, beta, mode="train", **bn):
    fwd, bwd = layer(shape)
    p = {"mode": "train", **bn}
    out, cache = fwd(x, gamma, beta, p)
    if mode == "test":
        p["mode"] = "test"
        out, cache = fwd(x, gamma, beta, p)
    dx, dgamma, dbeta = bwd(dout, cache)
    return out, dx, dgamma, dbeta, p["running_mean"], p["running_var"], cache


def both(*args, **kw):
    with backend.using("numpy"):
        ref = run(*args, **kw)
    with backend.using("numba"):
        fast = run(*args, **kw)
    return fast, ref


def exact(shape, x, dout, gamma, beta, **kw):
    with backend.using("numpy"):
        return run(shape, *(a.astype(np.float64) for a in (x, dout, gamma, beta)), **kw)


def err(a, b, scale):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / scale)


def scales(result):
    """Per output, the size its error is measured against (dx cancels: the size of its terms)."""
    out, dx, dgamma, dbeta, rm, rv, _ = result
    return [max(np.max(np.abs(a)), 1e-30) for a in (out, dx, dgamma, dbeta, rm, rv)]


def test_the_backend_is_the_one_asked_for():
    """make test runs the suite twice: Numba by default, then with NORMLAB_BACKEND=numpy."""
    assert backend.active() == (os.environ.get("NORMLAB_BACKEND") or "numba")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_float64_agrees_with_the_reference_to_1e12(rng, shape, layout):
    x, dout = make(rng, shape, np.float64, layout), make(rng, shape, np.float64, offset=0.0, scale=1.0, ramp=False)
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    for mode in ("train", "test"):
        fast, ref = both(shape, x, dout, gamma, beta, mode=mode)
        terms = np.max(np.abs(dout)) * np.max(np.abs(gamma / np.sqrt(ref[6].var.reshape(-1) + 1e-5)))
        for i, (a, b, s) in enumerate(zip(fast[:6], ref[:6], scales(ref))):
            assert a.shape == b.shape and a.dtype == b.dtype == np.float64
            assert err(a, b, max(s, terms) if i == 1 else s) <= 1e-12, (mode, i)


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_is_no_further_from_exact_than_the_reference(rng, shape):
    x, dout = make(rng, shape, np.float32), make(rng, shape, np.float32, offset=0.0, scale=1.0, ramp=False)
    gamma, beta = rng.standard_normal(shape[1]).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)
    fast, ref = both(shape, x, dout, gamma, beta)
    truth = exact(shape, x, dout, gamma, beta)
    ulp = np.finfo(np.float32).eps
    for i, (a, b, t, s) in enumerate(zip(fast[:6], ref[:6], truth[:6], scales(truth))):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
        assert err(a, t, s) <= 2 * err(b, t, s) + 16 * ulp, i


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_offset_keeps_the_spread(rng, dtype):
    """x = 1e4 + N(0, 1): statistics in float64 about the data keep the variance and dgamma
    (PyTorch's fused float32 kernel loses about 4% of dgamma here)."""
    shape = (4096, 8)
    x = (1e4 + rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    gamma, beta = np.ones(8, dtype), np.zeros(8, dtype)
    fast, ref = both(shape, x, dout, gamma, beta)
    if dtype == np.float64:   # the offset amplifies rounding by offset / spread = 1e4
        for a, b, s in zip(fast[:4], ref[:4], scales(ref)):
            assert err(a, b, s) <= 1e4 * 1e-12
        return
    truth = exact(shape, x, dout, gamma, beta)
    for a, b, t, s in zip(fast[:4], ref[:4], truth[:4], scales(truth)):
        assert err(a, t, s) <= 2 * err(b, t, s) + 16 * np.finfo(dtype).eps
    assert err(fast[2], truth[2], scales(truth)[2]) <= 2e-5


@pytest.mark.parametrize("shape", [(5001, 64), (80, 4, 31, 32), (1029, 513)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(rng, monkeypatch, shape, dtype):
    x, dout = make(rng, shape, dtype), make(rng, shape, dtype, offset=0.0, ramp=False)
    gamma, beta = np.linspace(0.5, 2, shape[1]).astype(dtype), np.zeros(shape[1], dtype)
    assert x.nbytes > _jit.SERIAL_BYTES and len(_jit._starts(np.ascontiguousarray(x).reshape(shape[0], shape[1], -1))) > 2
    results = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NORMLAB_NUM_THREADS", n)
        with backend.using("numba"):
            results.append(run(shape, x, dout, gamma, beta)[:6])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(50, 100), (33, 4, 31, 32)])
def test_same_cache_and_staged_backward(rng, shape):
    x, dout = make(rng, shape, np.float32), make(rng, shape, np.float32, offset=0.0, ramp=False)
    gamma, beta = np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32)
    fast, ref = both(shape, x, dout, gamma, beta)
    fc, rc = fast[6], ref[6]
    assert type(fc) is type(rc)
    for name in rc._fields:
        a, b = getattr(fc, name), getattr(rc, name)
        if isinstance(b, np.ndarray):
            assert a.shape == b.shape and a.dtype == b.dtype, name
        else:
            assert a == b, name
    if len(shape) == 2:   # the course's staged backward reads the same cache
        with backend.using("numba"):
            staged = batchnorm_backward(dout, fc)
        for a, b in zip(staged, fast[1:4]):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize("conv", [{"convention": "torch"}, {"batch_variance": "unbiased"}, {"momentum": 0.5}])
def test_conventions_and_bias_folding(rng, conv):
    shape = (40, 6)
    x, dout = make(rng, shape, np.float64), make(rng, shape, np.float64, offset=0.0, ramp=False)
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    fast, ref = both(shape, x, dout, gamma, beta, **conv)
    for a, b, s in zip(fast[:6], ref[:6], scales(ref)):
        assert err(a, b, s) <= 1e-12
    bias = rng.standard_normal(6)
    outs = []
    for name in ("numpy", "numba"):
        with backend.using(name):
            p = {"mode": "train", **conv}
            out, _ = batchnorm_after_bias(x, bias, gamma, beta, p)
            outs.append((out, p["running_mean"]))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_float16_input_runs_the_reference(rng):
    shape = (20, 3)
    x = make(rng, shape, np.float16)
    fast, ref = both(shape, x, np.ones(shape, np.float16), np.ones(3, np.float16), np.zeros(3, np.float16))
    for a, b in zip(fast[:6], ref[:6]):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(7, 1), (50, 100), (6, 4, 5, 3)])
def test_against_torch(rng, shape):
    torch = pytest.importorskip("torch")
    x, dout = make(rng, shape, np.float64), make(rng, shape, np.float64, offset=0.0, ramp=False)
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    with backend.using("numba"):
        out, dx, dgamma, dbeta, *_ = run(shape, x, dout, gamma, beta)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5)
    ty.backward(torch.tensor(dout))
    for a, t in ((out, ty), (dx, tx.grad), (dgamma, tg.grad), (dbeta, tb.grad)):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-9, atol=1e-10)


def test_a_kernel_that_cannot_compile_falls_back_once(rng, monkeypatch):
    from numba.core.errors import TypingError
    state = dict(backend._state)

    def broken(*args, **kw):
        raise TypingError("no implementation for this input")

    monkeypatch.setattr(_jit_layer, "train_forward", broken)
    monkeypatch.setattr(_jit_layer, "folded_backward", broken)
    monkeypatch.setitem(backend._state, "noticed", False)
    shape = (30, 4)
    x, dout = make(rng, shape, np.float64), make(rng, shape, np.float64, offset=0.0, ramp=False)
    try:
        with warnings.catch_warnings(record=True) as caught, backend.using("numba"):
            warnings.simplefilter("always")
            got = run(shape, x, dout, np.ones(4), np.zeros(4))
            again = run(shape, x, dout, np.ones(4), np.zeros(4))
            assert backend.active() == "numpy"
        notices = [w for w in caught if issubclass(w.category, backend.FastBackendNotice)]
        assert len(notices) == 1 and "failed to compile" in str(notices[0].message)
    finally:
        backend._state.update(state)
    with backend.using("numpy"):
        ref = run(shape, x, dout, np.ones(4), np.zeros(4))
    for a, b, c in zip(got[:6], again[:6], ref[:6]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def _python(code: str, **env):
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_environment_variable_turns_it_off():
    r = _python("import normlab.nn.backend as b; print(b.active())", NORMLAB_BACKEND="numpy")
    assert r.returncode == 0 and r.stdout.strip() == "numpy", r.stderr
    r = _python("import normlab.nn.backend as b", NORMLAB_BACKEND="cuda")
    assert r.returncode != 0 and "NORMLAB_BACKEND='cuda'" in r.stderr and "numba, numpy" in r.stderr


def test_without_numba_one_notice_and_numpy_computes():
    code = ("import sys, warnings; sys.modules['numba'] = None\n"
            "import numpy as np\n"
            "from normlab.layers import batchnorm_forward\n"
            "from normlab.nn import backend\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    for _ in range(3):\n"
            "        batchnorm_forward(np.ones((4, 2)) * np.arange(4)[:, None], np.ones(2), np.zeros(2), {'mode': 'train'})\n"
            "    print(backend.active())\n"
            "print(sum(issubclass(x.category, backend.FastBackendNotice) for x in w))\n"
            "print([str(x.message) for x in w][0])\n")
    r = _python(code, NORMLAB_BACKEND="")   # the default: Numba when installed
    assert r.returncode == 0, r.stderr
    active, count, message = r.stdout.strip().splitlines()
    assert active == "numpy" and count == "1" and "pip install 'normlab[fast]'" in message


def test_one_openmp_runtime_beside_torch():
    """No kernel uses Numba's parallel mode, so Numba loads no OpenMP/TBB pool of its own."""
    pytest.importorskip("torch")
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("reads the loaded libraries from /proc (Linux)")
    code = ("import torch, numpy as np\n"
            "from normlab.layers import batchnorm_forward, batchnorm_backward_alt\n"
            "x = np.random.default_rng(0).standard_normal((6000, 64)).astype(np.float32)\n"
            "out, c = batchnorm_forward(x, np.ones(64), np.zeros(64), {'mode': 'train'})\n"
            "batchnorm_backward_alt(out, c); torch.ones(4) @ torch.ones(4)\n"
            "from normlab.nn import backend; print(backend.active())\n"
            "libs = {l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps')\n"
            "        if any(k in l.lower() for k in ('omp', 'tbb'))}\n"
            "print(sorted(libs))\n")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    active, libs = r.stdout.strip().splitlines()
    assert active == (os.environ.get("NORMLAB_BACKEND") or "numba")
    libs = eval(libs)
    assert len([lib for lib in libs if "omp" in lib]) <= 1 and not [lib for lib in libs if "tbb" in lib], libs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w, ratio", [(0.1, None), (0.1, 50 / 49), (0.9, None), (1 / 3, 7 / 6)])
def test_running_update_is_numpys_expression_bit_for_bit(rng, dtype, w, ratio):
    rm, rv, bm, bv = (rng.standard_normal(37).astype(dtype) for _ in range(4))
    mean, var = _jit_layer.running_update(rm, rv, bm, bv, w, ratio)
    bv_ref = bv if ratio is None else bv * ratio
    np.testing.assert_array_equal(mean, (1 - w) * rm + w * bm)
    np.testing.assert_array_equal(var, (1 - w) * rv + w * bv_ref)
    assert mean.dtype == var.dtype == dtype
