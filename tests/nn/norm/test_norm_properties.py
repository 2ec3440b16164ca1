"""Properties every normalization layer has, over random shapes and dtypes.

Each layer is described by its grouped view of x and the axes it reduces over,
so one set of properties covers batch, spatial batch, layer, group and
instance norm: normalized groups have mean 0 and std sqrt(v / (v + eps)),
dx sums to 0 over each group (normalization is shift-invariant), the output is
invariant to a constant added per group and to positive scaling (scaling x by a
equals normalizing x with eps / a^2, which makes the eps effect exact), and the
staged batch-norm backward equals the closed form.

Tolerances scale with the conditioning of each example: rounding error in
normalization grows like machine eps * max|x| / std.
"""
from typing import NamedTuple

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from normlab.nn.norm.batchnorm import batchnorm_backward_closed, batchnorm_backward_staged
from normlab.layers import (batchnorm_backward, batchnorm_forward, instancenorm_backward, instancenorm_forward,
                            layernorm_backward, layernorm_forward, spatial_batchnorm_backward,
                            spatial_batchnorm_forward, spatial_groupnorm_backward, spatial_groupnorm_forward)

SETTINGS = settings(max_examples=30, deadline=None)
DTYPES = st.sampled_from([np.float32, np.float64])


class Case(NamedTuple):
    kind: str
    shape: tuple
    groups: int        # G for group norm, else 0
    dtype: type
    seed: int
    scale: float
    shift: float


@st.composite
def cases(draw, kinds=("bn", "sbn", "ln", "gn", "in")):
    kind = draw(st.sampled_from(kinds))
    dims = st.integers(1, 4)
    groups = 0
    if kind == "bn":
        shape = (draw(st.integers(2, 8)), draw(st.integers(1, 9)))
    elif kind == "ln":
        shape = (draw(st.integers(1, 8)), draw(st.integers(2, 9)))
    elif kind == "sbn":
        shape = (draw(st.integers(2, 4)), draw(dims), draw(dims), draw(dims))
    else:
        groups = draw(st.integers(1, 3))
        per_group = draw(dims)
        h, w = draw(dims), draw(dims)
        if kind == "in":
            per_group = 1
        if per_group * h * w < 2:      # a group of one value has no spread to normalize
            w = 2
        shape = (draw(st.integers(1, 4)), groups * per_group, h, w)
    return Case(kind, shape, groups, draw(DTYPES), draw(st.integers(0, 2**32 - 1)),
                draw(st.floats(1.0, 100.0)), draw(st.floats(-10.0, 10.0)))


def forward(case, x, gamma, beta, eps):
    c = x.shape[1]
    if case.kind == "bn":
        return batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": eps})
    if case.kind == "sbn":
        return spatial_batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": eps})
    if case.kind == "ln":
        return layernorm_forward(x, gamma, beta, {"eps": eps})
    if case.kind == "gn":
        return spatial_groupnorm_forward(x, gamma, beta, case.groups, {"eps": eps})
    assert c == case.groups
    return instancenorm_forward(x, gamma, beta, {"eps": eps})


BACKWARD = {"bn": batchnorm_backward, "sbn": spatial_batchnorm_backward, "ln": layernorm_backward,
            "gn": spatial_groupnorm_backward, "in": instancenorm_backward}


def grouped(case, a):
    """(view of a, reduced axes): each statistic is taken over `axes` of the view."""
    if case.kind == "bn":
        return a, (0,)
    if case.kind == "sbn":
        return a, (0, 2, 3)
    if case.kind == "ln":
        return a, (1,)
    n, c, h, w = a.shape
    return a.reshape(n, case.groups, c // case.groups, h, w), (2, 3, 4)   # (N, G, C/G, H, W)


def make(case):
    rng = np.random.default_rng(case.seed)
    x = (case.shift * case.scale + case.scale * rng.standard_normal(case.shape)).astype(case.dtype)
    c = case.shape[1]
    gamma = (rng.random(c) + 0.5).astype(case.dtype)
    beta = rng.standard_normal(c).astype(case.dtype)
    dout = rng.standard_normal(case.shape).astype(case.dtype)
    eps = 1e-8 * case.scale ** 2          # small against the data's variance
    return rng, x, gamma, beta, dout, eps


def condition(case, x):
    """max|x| / smallest group std: how much rounding the normalization amplifies."""
    view, axes = grouped(case, x.astype(np.float64))
    std = view.std(axis=axes)
    return float(np.max(np.abs(view)) / max(np.min(std), 1e-300))


def tol(case, x):
    return 64 * np.finfo(case.dtype).eps * max(1.0, condition(case, x))


@SETTINGS
@given(cases())
def test_groups_have_mean_zero_and_unit_std(case):
    _, x, _, _, _, eps = make(case)
    c = case.shape[1]
    out, _ = forward(case, x, np.ones(c, case.dtype), np.zeros(c, case.dtype), eps)
    assert out.dtype == case.dtype and out.shape == x.shape
    view, axes = grouped(case, out.astype(np.float64))
    xv, _ = grouped(case, x.astype(np.float64))
    v = xv.var(axis=axes)
    t = tol(case, x)
    np.testing.assert_allclose(view.mean(axis=axes), 0.0, atol=t)
    np.testing.assert_allclose(view.std(axis=axes), np.sqrt(v / (v + eps)), atol=t)


@SETTINGS
@given(cases())
def test_dx_sums_to_zero_over_each_group(case):
    _, x, gamma, beta, dout, eps = make(case)
    _, cache = forward(case, x, gamma, beta, eps)
    dx, dgamma, dbeta = BACKWARD[case.kind](dout, cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == case.dtype
    view, axes = grouped(case, dx.astype(np.float64))
    m = view.size // np.prod([s for a, s in enumerate(view.shape) if a not in axes])
    dx_scale = np.max(np.abs(dout)) * np.max(gamma) / np.sqrt(eps + np.min(
        grouped(case, x.astype(np.float64))[0].var(axis=axes)))
    np.testing.assert_allclose(view.sum(axis=axes), 0.0, atol=m * dx_scale * tol(case, x))


@SETTINGS
@given(cases(), st.data())
def test_output_invariant_to_constant_per_group(case, data):
    rng, x, gamma, beta, _, eps = make(case)
    view, axes = grouped(case, x)
    shift_shape = tuple(1 if a in axes else s for a, s in enumerate(view.shape))
    shift = (case.scale * data.draw(st.floats(-10.0, 10.0)) * rng.random(shift_shape)).astype(case.dtype)
    shifted = (view + shift).reshape(x.shape)
    out, _ = forward(case, x, gamma, beta, eps)
    out_shifted, _ = forward(case, shifted, gamma, beta, eps)
    t = max(tol(case, x), tol(case, shifted))
    np.testing.assert_allclose(out_shifted, out, atol=4 * t * np.max(gamma), rtol=0)


@SETTINGS
@given(cases(), st.floats(0.25, 8.0))
def test_output_invariant_to_positive_scaling(case, a):
    _, x, gamma, beta, _, eps = make(case)
    out_scaled, _ = forward(case, (a * x).astype(case.dtype), gamma, beta, eps)
    out, _ = forward(case, x, gamma, beta, eps / a ** 2)     # exact: var(a x) + eps = a^2 (var(x) + eps / a^2)
    np.testing.assert_allclose(out_scaled, out, atol=4 * tol(case, x) * np.max(gamma), rtol=0)


@SETTINGS
@given(cases(kinds=("bn", "sbn")), st.sampled_from(["train", "test"]))
def test_staged_backward_equals_closed_form(case, mode):
    rng, x, gamma, beta, dout, eps = make(case)
    c = case.shape[1]
    bn_param = {"mode": mode, "eps": eps, "running_mean": (case.shift * case.scale * np.ones(c)).astype(case.dtype),
                "running_var": (case.scale ** 2 * (rng.random(c) + 0.5)).astype(case.dtype)}
    fwd = batchnorm_forward if case.kind == "bn" else spatial_batchnorm_forward
    _, cache = fwd(x, gamma, beta, bn_param)
    staged = batchnorm_backward_staged(dout, cache)
    closed = batchnorm_backward_closed(dout, cache)
    dx_scale = np.max(np.abs(dout)) * np.max(gamma) * np.max(cache.inv_std)
    m = x.size // c
    t = tol(case, x)
    np.testing.assert_allclose(staged[0], closed[0], atol=m * dx_scale * t, rtol=0)
    # dgamma, dbeta: sums of m terms; rounding bounded by the sums of magnitudes.
    x_hat = np.abs(cache.x_hat.astype(np.float64))
    axes = cache.axes
    bounds = (np.sum(np.abs(dout) * x_hat, axis=axes), np.sum(np.abs(dout), axis=axes, dtype=np.float64))
    for s, k, bound in zip(staged[1:], closed[1:], bounds):
        assert np.all(np.abs(s.ravel().astype(np.float64) - k.ravel()) <= t * bound)
    assert [g.dtype for g in staged] == [g.dtype for g in closed] == [case.dtype] * 3

