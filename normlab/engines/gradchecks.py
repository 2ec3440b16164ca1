"""The gradient-check table: every layer and net against float64 central differences.

Each check runs a layer or net in float64 on the course notebook's test sizes,
with a random upstream gradient, and compares the analytic gradients with
``eval_numerical_gradient_array`` / ``eval_numerical_gradient``. The ``course``
column is the bound the CS231n notebooks state beside each check ("you should
expect relative errors between 1e-13 and 1e-8", ...); a row passes when the
measured error is below it.

Step and stencil: central differences err by about h^2 (truncation) plus
eps |f| / h (rounding). At the course's h = 1e-5 the rounding term alone puts
the tiniest dx entries of the normalization layers above the course's bounds
for a noticeable share of seeds, although the analytic gradients agree with
an extended-precision reference to 1e-14. The smooth layers (affine, the
norms, conv) are therefore checked with the five-point stencil at h = 1e-2
(error ~h^4); the piecewise-linear ones (ReLU, pooling, dropout), for which
central differences are exact away from kinks, and the nets, whose ReLU kinks
a larger step would cross, keep the course's central differences at h = 1e-5.
The table shows the step and the order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .. import layers as L
from ..gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from ..models import FullyConnectedNet, ThreeLayerConvNet
from ..nn.norm.ghost import ghost_batchnorm_backward, ghost_batchnorm_forward
from ..nn.norm.noisy import draw_noise, noisy_batchnorm_backward, noisy_batchnorm_forward
from ..nn.norm.renorm import batchrenorm_backward, batchrenorm_forward

__all__ = ["CheckResult", "run_checks", "format_table"]


@dataclass(frozen=True)
class CheckResult:
    check: str         # what was checked, e.g. "batchnorm_backward"
    quantity: str      # which gradient, e.g. "dx"
    error: float       # relative error against central differences
    bound: float       # the course's stated upper bound
    note: str = ""
    h: float = 1e-5    # the finite-difference step
    order: int = 2     # 2: central differences; 4: five-point stencil

    @property
    def ok(self) -> bool:
        return bool(self.error < self.bound)

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _layer(name, forward: Callable, backward: Callable, inputs: dict, bound: float, rng, note="",
           h: float = 1e-2, order: int = 4):
    """Check backward(dout, cache) against differences of forward(**inputs) for each input."""
    out, cache = forward(**inputs)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    rows = []
    for (key, value), grad in zip(inputs.items(), grads):
        if not isinstance(value, np.ndarray) or grad is None:
            continue
        num = eval_numerical_gradient_array(lambda v, key=key: forward(**{**inputs, key: v})[0], value, dout, h=h,
                                            order=order)
        rows.append(CheckResult(name, "d" + key, rel_error(grad, num), bound, note, h, order))
    return rows


def _net(name, model, X, y, bound: Callable[[str], float], note=""):
    """Check every parameter gradient of a model's loss."""
    def loss():
        return model.loss(X, y)

    _, grads = loss()
    rows = []
    for k in sorted(model.params):
        num = eval_numerical_gradient(lambda _: loss()[0], model.params[k], verbose=False)
        rows.append(CheckResult(name, k, rel_error(grads[k], num), bound(k), note, 1e-5, 2))
    return rows


def layer_checks(rng) -> list[CheckResult]:
    rows = []
    x = rng.standard_normal((10, 2, 3))
    rows += _layer("affine_backward", L.affine_forward, L.affine_backward,
                   {"x": x, "w": rng.standard_normal((6, 5)), "b": rng.standard_normal(5)}, 1e-8, rng)
    rows += _layer("relu_backward", L.relu_forward, L.relu_backward, {"x": rng.standard_normal((10, 10))},
                   1e-8, rng, h=1e-5, order=2)
    for p in (0.25, 0.5, 0.75):
        fwd = lambda x, p=p: L.dropout_forward(x, {"mode": "train", "p": p, "seed": 123})
        rows += _layer("dropout_backward", fwd, L.dropout_backward, {"x": rng.standard_normal((10, 10)) + 10},
                       1e-8, rng, note=f"p={p}", h=1e-5, order=2)

    N, D = 4, 5
    bn_in = {"x": 5 * rng.standard_normal((N, D)) + 12, "gamma": rng.standard_normal(D),
             "beta": rng.standard_normal(D)}
    bn = lambda x, gamma, beta: L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    rows += _layer("batchnorm_backward", bn, L.batchnorm_backward, bn_in, 1e-8, rng, "staged")
    rows += _layer("batchnorm_backward_alt", bn, L.batchnorm_backward_alt, bn_in, 1e-8, rng, "closed form")
    ln = lambda x, gamma, beta: L.layernorm_forward(x, gamma, beta, {})
    rows += _layer("layernorm_backward", ln, L.layernorm_backward, bn_in, 1e-8, rng)

    N, C, H, W = 2, 3, 4, 5
    sbn_in = {"x": 5 * rng.standard_normal((N, C, H, W)) + 12, "gamma": rng.standard_normal(C),
              "beta": rng.standard_normal(C)}
    sbn = lambda x, gamma, beta: L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    rows += _layer("spatial_batchnorm_backward", sbn, L.spatial_batchnorm_backward, sbn_in, 1e-6, rng)

    N, C, H, W, G = 2, 6, 4, 5, 2
    gn_in = {"x": 5 * rng.standard_normal((N, C, H, W)) + 12, "gamma": rng.standard_normal((1, C, 1, 1)),
             "beta": rng.standard_normal((1, C, 1, 1))}
    gn = lambda x, gamma, beta: L.spatial_groupnorm_forward(x, gamma, beta, G, {})
    rows += _layer("spatial_groupnorm_backward", gn, L.spatial_groupnorm_backward, gn_in, 1e-7, rng, f"G={G}")
    inorm = lambda x, gamma, beta: L.instancenorm_forward(x, gamma, beta, {})
    rows += _layer("instancenorm_backward", inorm, L.instancenorm_backward, gn_in, 1e-7, rng, "G=C")

    conv_in = {"x": rng.standard_normal((4, 3, 5, 5)), "w": rng.standard_normal((2, 3, 3, 3)),
               "b": rng.standard_normal(2)}
    cp = {"stride": 1, "pad": 1}
    rows += _layer("conv_backward_naive", lambda x, w, b: L.conv_forward_naive(x, w, b, cp),
                   L.conv_backward_naive, conv_in, 1e-8, rng)
    rows += _layer("conv_backward_fast", lambda x, w, b: L.conv_forward_fast(x, w, b, cp),
                   L.conv_backward_fast, conv_in, 1e-8, rng)
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    pool_in = {"x": rng.standard_normal((3, 2, 8, 8))}
    rows += _layer("max_pool_backward_naive", lambda x: L.max_pool_forward_naive(x, pp),
                   L.max_pool_backward_naive, pool_in, 1e-10, rng, h=1e-5, order=2)
    rows += _layer("max_pool_backward_fast", lambda x: L.max_pool_forward_fast(x, pp),
                   L.max_pool_backward_fast, pool_in, 1e-10, rng, h=1e-5, order=2)
    return rows


def net_checks(rng) -> list[CheckResult]:
    rows = []
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = rng.standard_normal((N, D))
    y = rng.integers(C, size=N)
    # Course bounds for the nets: W up to 1e-4 (with batch norm the N=2 batch
    # makes the loss strongly curved), b, gamma, beta 1e-8..1e-5.
    bounds = {None: lambda k: 1e-5, "batchnorm": lambda k: 1e-4 if k.startswith("W") else 1e-5,
              "layernorm": lambda k: 1e-4 if k.startswith("W") else 1e-5}
    for norm in (None, "batchnorm", "layernorm"):
        for reg in (0.0, 3.14):
            model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg, weight_scale=5e-2,
                                      dtype=np.float64, normalization=norm, rng_seed=int(rng.integers(2**31)))
            rows += _net(f"FullyConnectedNet({norm or 'none'})", model, X, y, bounds[norm], f"reg={reg}")
    rows += dropout_net_checks(X, y, int(rng.integers(2**31)))
    Xc = rng.standard_normal((2, 3, 8, 8))
    yc = rng.integers(10, size=2)
    for norm in (None, "batchnorm", "groupnorm"):
        model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=7,
                                  dtype=np.float64, normalization=norm, num_groups=2, weight_scale=1e-1,
                                  rng_seed=int(rng.integers(2**31)))
        rows += _net(f"ThreeLayerConvNet({norm or 'none'})", model, Xc, yc, lambda k: 1e-2)
    return rows


def dropout_net_checks(X, y, rng_seed: int) -> list[CheckResult]:
    """Net-level checks with dropout. ``seed=123`` has the course's meaning: every
    evaluation of the loss draws the same mask, so finite differences see one function."""
    rows = []
    D, C = X.shape[1], 10
    for keep in (0.75, 0.5):
        model = FullyConnectedNet([20, 30], input_dim=D, num_classes=C, weight_scale=5e-2, dtype=np.float64,
                                  dropout_keep_ratio=keep, seed=123, rng_seed=rng_seed)
        rows += _net("FullyConnectedNet(dropout)", model, X, y, lambda k: 1e-5, f"keep={keep}")
    return rows


def papers_checks(rng, nets: bool = True) -> list[CheckResult]:
    """The layers and nets the papers suite adds: sigmoid (Ioffe & Szegedy's net), batch norm
    with the unbiased batch variance (Ba et al.'s batch-4 baseline), noisy batch norm
    (Santurkar et al.) and sigmoid nets. They draw from their own generator, so the
    course's checks above see the same inputs as before."""
    rows = _layer("sigmoid_backward", L.sigmoid_forward, L.sigmoid_backward, {"x": 3 * rng.standard_normal((10, 10))},
                  1e-8, rng)
    N, D = 4, 5
    bn_in = {"x": 5 * rng.standard_normal((N, D)) + 12, "gamma": rng.standard_normal(D),
             "beta": rng.standard_normal(D)}
    bnu = lambda x, gamma, beta: L.batchnorm_forward(x, gamma, beta, {"mode": "train", "batch_variance": "unbiased"})
    rows += _layer("batchnorm_backward", bnu, L.batchnorm_backward, bn_in, 1e-8, rng, "unbiased var")
    rows += _layer("batchnorm_backward_alt", bnu, L.batchnorm_backward_alt, bn_in, 1e-8, rng, "unbiased var")
    draw = draw_noise((D,), rng)      # one fixed draw: within a step the noise is a constant
    nbn = lambda x, gamma, beta: noisy_batchnorm_forward(x, gamma, beta, {"mode": "train"}, noise=draw)
    # Not a course layer: the bound the course gives group norm.
    rows += _layer("noisy_batchnorm_backward", nbn, noisy_batchnorm_backward, bn_in, 1e-7, rng, "fixed draw")
    if nets:
        # Six samples: with two, batch norm maps every unit to +-gamma whatever W is, and the
        # first layer's gradients shrink to rounding.
        D, C = 15, 10
        X, y = rng.standard_normal((6, D)), rng.integers(C, size=6)
        for norm in (None, "batchnorm"):
            model = FullyConnectedNet([20, 30], input_dim=D, num_classes=C, weight_scale=5e-1, dtype=np.float64,
                                      normalization=norm, activation="sigmoid", rng_seed=int(rng.integers(2**31)))
            rows += _net(f"FullyConnectedNet({norm or 'none'})", model, X, y,
                         lambda k: 1e-4 if k.startswith("W") else 1e-5, "sigmoid, N=6")
        # De & Smith's and Zhang et al.'s residual nets; the zero-initialized parameters (SkipInit's
        # alpha, Fixup's last branch layer and classifier) are moved off zero so every gradient is generic.
        from ..nets.residual import VARIANTS, ResidualMLP
        for variant in VARIANTS:
            model = ResidualMLP(D, C, depth=3, width=8, variant=variant, dtype=np.float64,
                                rng_seed=int(rng.integers(2**31)))
            for k in model.params:
                model.params[k] = model.params[k] + 0.3 * rng.standard_normal(model.params[k].shape)
            rows += _net(f"ResidualMLP({variant})", model, X, y,
                         lambda k: 1e-4 if k.startswith("W") else 1e-5, "depth 3, N=6")
    # Batch renorm (Ioffe 2017) with running statistics far from the batch's: r and d sit at their
    # clips, so they are constants near x as its backward assumes; ghost batch norm (Hoffer et al. 2017).
    # Own sizes and last in the list: the rows above see the same inputs as without them.
    n, d = 4, 5
    far = {"running_mean": np.full(d, -40.0), "running_var": np.full(d, 900.0)}
    brn = lambda x, gamma, beta: batchrenorm_forward(x, gamma, beta, {"mode": "train", "r_max": 2.0, "d_max": 0.5,
                                                                      **far})
    rows += _layer("batchrenorm_backward", brn, batchrenorm_backward, {
        "x": 5 * rng.standard_normal((n, d)) + 12, "gamma": rng.standard_normal(d), "beta": rng.standard_normal(d)},
        1e-8, rng, "r, d clipped")
    gbn = lambda x, gamma, beta: ghost_batchnorm_forward(x, gamma, beta, {"mode": "train", "ghost_size": n})
    rows += _layer("ghost_batchnorm_backward", gbn, ghost_batchnorm_backward, {
        "x": 5 * rng.standard_normal((3 * n, d)) + 12, "gamma": rng.standard_normal(d),
        "beta": rng.standard_normal(d)}, 1e-8, rng, f"ghost {n} of {3 * n}")
    return rows


def run_checks(seed: int = 0, nets: bool = True) -> list[CheckResult]:
    """All layer checks (and net checks unless ``nets=False``), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    rows = layer_checks(rng)
    if nets:
        rows += net_checks(rng)
    return rows + papers_checks(np.random.default_rng([seed, 2015]), nets)


def format_table(rows: list[CheckResult]) -> str:
    """A fixed-width table: check, gradient, note, measured error, course bound, ok."""
    head = ("check", "grad", "setting", "h, order", "rel. error", "course <", "")
    body = [(r.check, r.quantity, r.note, f"{r.h:.0e}, {r.order}", f"{r.error:.2e}", f"{r.bound:.0e}", "ok" if r.ok else "FAIL")
            for r in rows]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    line = lambda row: "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
    out = [line(head), line(tuple("-" * w for w in widths)), *map(line, body)]
    bad = sum(not r.ok for r in rows)
    out.append(f"\n{len(rows) - bad} of {len(rows)} gradients within the course's bounds"
               + (f"; {bad} outside" if bad else ""))
    return "\n".join(out)
