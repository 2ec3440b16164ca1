"""Sandwich layers: each equals the composition of its parts, and gradient-checks in float64.

The reference compositions use the naive conv/pool loops and the staged batch-norm
backward, so a sandwich is checked against independent implementations of its parts.
"""
import numpy as np
import pytest

from normlab import layer_utils as lu
from normlab.gradient_check import eval_numerical_gradient_array, rel_error
from normlab.layers import (affine_backward, affine_forward, batchnorm_backward, batchnorm_forward,
                            conv_backward_naive, conv_forward_naive, layernorm_backward, layernorm_forward,
                            max_pool_backward_naive, max_pool_forward_naive, relu_backward, relu_forward,
                            spatial_batchnorm_forward)

CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def _affine_args(rng, norm):
    x = rng.standard_normal((4, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    if not norm:
        return [x, w, b]
    gamma = 1 + 0.1 * rng.standard_normal(5)
    beta = 0.1 * rng.standard_normal(5)
    return [x, w, b, gamma, beta, {"mode": "train"} if norm == "bn" else {}]


def _conv_args(rng, bn, pool):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    args = [x, w, b]
    if bn:
        args += [1 + 0.1 * rng.standard_normal(4), 0.1 * rng.standard_normal(4)]
    args.append(dict(CONV))
    if bn:
        args.append({"mode": "train"})
    if pool:
        args.append(dict(POOL))
    return args


# Reference compositions: (forward(*args) -> out, backward(dout, *args) -> grads)

def _ref_affine_relu(x, w, b):
    a, fc = affine_forward(x, w, b)
    out, rc = relu_forward(a)

    def backward(dout):
        return affine_backward(relu_backward(dout, rc), fc)
    return out, backward


def _ref_affine_norm_relu(norm_fwd, norm_bwd):
    def ref(x, w, b, gamma, beta, param):
        a, fc = affine_forward(x, w, b)
        n, nc = norm_fwd(a, gamma, beta, dict(param))
        out, rc = relu_forward(n)

        def backward(dout):
            dn, dgamma, dbeta = norm_bwd(relu_backward(dout, rc), nc)
            return (*affine_backward(dn, fc), dgamma, dbeta)
        return out, backward
    return ref


def _spatial_bn_staged(x, gamma, beta, bn_param):
    """Spatial BN as plain BN on the channels-last reshape (staged backward)."""
    n, c, h, w = x.shape
    out, cache = batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta, bn_param)

    def backward(dout):
        dx, dgamma, dbeta = batchnorm_backward(dout.transpose(0, 2, 3, 1).reshape(-1, c), cache)
        return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), backward


def _ref_conv(bn, pool):
    def ref(x, w, b, *rest):
        rest = list(rest)
        gamma, beta = (rest.pop(0), rest.pop(0)) if bn else (None, None)
        conv_param = rest.pop(0)
        bn_param = rest.pop(0) if bn else None
        pool_param = rest.pop(0) if pool else None
        h, cc = conv_forward_naive(x, w, b, conv_param)
        if bn:
            h, bn_back = _spatial_bn_staged(h, gamma, beta, dict(bn_param))
        h, rc = relu_forward(h)
        if pool:
            h, pc = max_pool_forward_naive(h, pool_param)

        def backward(dout):
            d = max_pool_backward_naive(dout, pc) if pool else dout
            d = relu_backward(d, rc)
            if bn:
                d, dgamma, dbeta = bn_back(d)
            dx, dw, db = conv_backward_naive(d, cc)
            return (dx, dw, db, dgamma, dbeta) if bn else (dx, dw, db)
        return h, backward
    return ref


CASES = {
    "affine_relu": (lu.affine_relu_forward, lu.affine_relu_backward, _ref_affine_relu,
                    lambda r: _affine_args(r, None), 3),
    "affine_bn_relu": (lu.affine_bn_relu_forward, lu.affine_bn_relu_backward,
                       _ref_affine_norm_relu(batchnorm_forward, batchnorm_backward),
                       lambda r: _affine_args(r, "bn"), 5),
    "affine_ln_relu": (lu.affine_ln_relu_forward, lu.affine_ln_relu_backward,
                       _ref_affine_norm_relu(layernorm_forward, layernorm_backward),
                       lambda r: _affine_args(r, "ln"), 5),
    "conv_relu": (lu.conv_relu_forward, lu.conv_relu_backward, _ref_conv(False, False),
                  lambda r: _conv_args(r, False, False), 3),
    "conv_relu_pool": (lu.conv_relu_pool_forward, lu.conv_relu_pool_backward, _ref_conv(False, True),
                       lambda r: _conv_args(r, False, True), 3),
    "conv_bn_relu": (lu.conv_bn_relu_forward, lu.conv_bn_relu_backward, _ref_conv(True, False),
                     lambda r: _conv_args(r, True, False), 5),
    "conv_bn_relu_pool": (lu.conv_bn_relu_pool_forward, lu.conv_bn_relu_pool_backward, _ref_conv(True, True),
                          lambda r: _conv_args(r, True, True), 5),
}


@pytest.mark.parametrize("name", list(CASES))
def test_sandwich_equals_composition_of_parts(rng, name):
    fwd, bwd, ref, make_args, n_grads = CASES[name]
    args = make_args(rng)
    out, cache = fwd(*args)
    ref_out, ref_backward = ref(*args)
    np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = bwd(dout, cache)
    ref_grads = ref_backward(dout)
    assert len(grads) == len(ref_grads) == n_grads
    for g, r, a in zip(grads, ref_grads, args):
        assert g.shape == a.shape
        np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", list(CASES))
def test_sandwich_gradient_check(rng, name):
    fwd, bwd, _, make_args, n_grads = CASES[name]
    args = make_args(rng)
    out, cache = fwd(*args)
    dout = rng.standard_normal(out.shape)
    grads = bwd(dout, cache)
    for i in range(n_grads):
        num = eval_numerical_gradient_array(lambda _: fwd(*args)[0], args[i], dout)
        if i == 2 and "bn" in name:
            # batch norm removes any per-feature shift: the bias before it has gradient
            # exactly 0, so compare absolutely (rel_error of two roundoff-sized numbers is
            # noise); the sandwich gives the bias to the norm, so the forward does not move
            assert np.abs(grads[i]).max() < 1e-12 and np.abs(num).max() == 0
        else:
            assert rel_error(grads[i], num) < 1e-7, f"{name}: gradient {i}"


@pytest.mark.parametrize("name", [n for n in CASES if "bn" in n])
def test_bn_sandwich_updates_running_stats_like_batchnorm(rng, name):
    fwd, _, _, make_args, _ = CASES[name]
    args = make_args(rng)
    bn_param = next(a for a in args if isinstance(a, dict) and a.get("mode") == "train")
    fwd(*args)
    x, w, b, gamma, beta = args[:5]
    pre = (affine_forward(x, w, b)[0] if name.startswith("affine")
           else conv_forward_naive(x, w, b, CONV)[0])
    ref_param = {"mode": "train"}
    (batchnorm_forward if name.startswith("affine") else spatial_batchnorm_forward)(pre, gamma, beta, ref_param)
    np.testing.assert_allclose(bn_param["running_mean"], ref_param["running_mean"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bn_param["running_var"], ref_param["running_var"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(CASES))
def test_sandwich_keeps_float32(rng, name):
    fwd, bwd, _, make_args, n_grads = CASES[name]
    args = [a.astype(np.float32) if isinstance(a, np.ndarray) else a for a in make_args(rng)]
    out, cache = fwd(*args)
    assert out.dtype == np.float32
    grads = bwd(np.ones_like(out), cache)
    assert all(g.dtype == np.float32 for g in grads)
