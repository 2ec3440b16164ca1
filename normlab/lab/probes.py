"""Probes of Santurkar, Tsipras, Ilyas & Madry 2018, "How Does Batch Normalization Help
Optimization?" (arXiv 1805.11604): measurements of a model at its current parameters on one batch.

Every probe evaluates the model at other parameters by swapping arrays into ``model.params``
and calling ``model.loss(X, y)`` (train mode), and puts everything back before it returns,
even when an evaluation raises: the same parameter arrays (never written to), the running
statistics (``state_arrays`` / ``load_state_arrays``: train mode updates them), and the state
of the generators dropout masks come from (the model's ``rng`` and the global ``np.random``).
The generators are reset after each evaluation, so all evaluations of one probe see the same
dropout masks and compare one function at different points.

Any model with the project's protocol works (``params`` named ``W{i}``, ``b{i}``,
``gamma{i}``, ``beta{i}``, i the 1-based layer; ``loss``; ``state_arrays``): the course nets,
``TorchModel`` and ``normlab.nets.linear.DeepLinearNet``. Results are plain floats and lists,
JSON-able: a non-finite value is None. Norms and dot products are in float64.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager

import numpy as np

from ..nn._checks import NonFiniteError, finite_nonnegative

__all__ = ["layer_of", "internal_covariate_shift", "landscape", "activation_percentiles"]

_LAYER = re.compile(r"(\d+)$")


def layer_of(name: str) -> int:
    """The 1-based layer index of a parameter name: its trailing digits (``'gamma12'`` -> 12)."""
    m = _LAYER.search(str(name))
    if not m:
        raise ValueError(f"parameter name {name!r} has no layer index; expected a name like 'W3' or 'gamma3'")
    return int(m.group(1))


def _finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _dot(a, b) -> float:
    """<a, b> in float64 over every entry."""
    return float(np.vdot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))


def _norm(grads: dict, keys) -> float:
    """The l2 norm of the vector that concatenates ``grads[k]`` for ``k`` in ``keys``."""
    return math.sqrt(sum(_dot(grads[k], grads[k]) for k in keys))


@contextmanager
def _frozen(model, X, y):
    """Yield ``evaluate(params, shifted=True) -> (loss, grads)``: the model's train-mode loss on
    (X, y) at ``params`` (a full dict, the keys of ``model.params``), with the model restored
    after each evaluation and again on leaving.

    An evaluation whose arithmetic leaves the float range returns ``(loss or nan, None)``.
    Layers meet that three ways: they overflow quietly, a normalization raises
    NonFiniteError, the softmax and SVM losses raise ValueError on NaN/inf scores. So away
    from the current parameters (``shifted=True``) a ValueError counts as non-finite: the
    same X and y have passed at the current parameters, where every error propagates.
    Floating-point warnings are silenced inside: probing far along a gradient is expected
    to overflow.
    """
    original = dict(model.params)
    state = model.state_arrays()
    gen = getattr(model, "rng", None)
    rng_state = gen.bit_generator.state if gen is not None else None
    global_state = np.random.get_state()

    def restore():
        model.params.clear()
        model.params.update(original)
        model.load_state_arrays(state)
        if gen is not None:
            gen.bit_generator.state = rng_state
        np.random.set_state(global_state)

    def evaluate(params, shifted=True):
        model.params.update(params)
        try:
            with np.errstate(all="ignore"):
                loss, grads = model.loss(X, y)
        except NonFiniteError:
            return math.nan, None
        except ValueError:
            if not shifted:
                raise
            return math.nan, None
        finally:
            restore()
        loss = float(loss)
        if not (math.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())):
            return (loss if math.isfinite(loss) else math.nan), None
        return loss, grads

    try:
        yield evaluate
    finally:
        restore()


def _step(params, grads, lr, keys):
    """``p - lr * dL/dp`` for the names in ``keys``, the other arrays as they are (same dtype)."""
    out = dict(params)
    for k in keys:
        p = params[k]
        out[k] = (p - np.asarray(lr, dtype=p.dtype) * grads[k]).astype(p.dtype, copy=False)
    return out


def _check_lr(lr, name="lr"):
    return finite_nonnegative(lr, name, "the learning rate of the SGD step", allow_zero=False)


def internal_covariate_shift(model, X, y, lr, layers) -> dict:
    """Internal covariate shift of the paper's Definition 2.1 (Section 2.2), for each layer in ``layers``.

    The paper defines the ICS of layer i at step t as ``||G_{t,i} - G'_{t,i}||_2`` with
    ``G_{t,i}`` the gradient of the loss on the batch (x^(t), y^(t)) with respect to the layer's
    weights W_i at the parameters of step t (what a simultaneous update of all layers uses),
    and ``G'_{t,i}`` the same gradient after the layers before i (1..i-1) have taken their
    update to step t+1 while layers i..k keep their step-t values. Figure 3 plots this
    l2 difference (ideally 0) and the cosine of the angle between G and G' (ideally 1).

    Here the update of the earlier layers is one SGD step ``p <- p - lr * dL/dp`` of every
    parameter whose layer index (``layer_of``) is below i (W, b, gamma and beta alike),
    with the gradients of the same batch at the current parameters.

    Inputs:
    - model: a model of the project's protocol; measured, never changed (see the module docstring).
    - X, y: the batch (labels for a classifier, targets for ``DeepLinearNet``).
    - lr: the step size of the update, > 0 (the one the model trains with).
    - layers: iterable of 1-based layer indices with a weight ``W{i}`` in ``model.params``.

    Returns a dict of lists aligned with ``layers`` (float64 norms; None where non-finite or,
    for "cos", where G or G' is zero):
    - "layers": the indices; "l2": ``||G - G'||``; "cos": ``<G, G'> / (||G|| ||G'||)``
      (clipped to [-1, 1] against rounding); "grad_norm": ``||G||``.
    Raises ValueError for a layer without W{i} or a bad lr; the model's loss errors pass through.
    """
    lr = _check_lr(lr)
    layers = [int(i) for i in layers]
    missing = [i for i in layers if f"W{i}" not in model.params]
    if missing:
        raise ValueError(f"layers {missing} have no weight in model.params (weights: "
                         f"{sorted((k for k in model.params if k.startswith('W')), key=layer_of)})")
    out = {"layers": layers, "l2": [], "cos": [], "grad_norm": []}
    with _frozen(model, X, y) as evaluate, np.errstate(over="ignore", invalid="ignore"):
        params = dict(model.params)
        _, grads = evaluate(params, shifted=False)
        if grads is None:
            raise NonFiniteError("the loss or its gradient at the current parameters is not finite; "
                                 "the model has diverged, there is no ICS to measure")
        for i in layers:
            G = grads[f"W{i}"]
            earlier = [k for k in params if layer_of(k) < i]
            _, shifted = evaluate(_step(params, grads, lr, earlier))
            if shifted is None:
                out["l2"].append(None)
                out["cos"].append(None)
                out["grad_norm"].append(_finite_or_none(math.sqrt(_dot(G, G))))
                continue
            G2 = shifted[f"W{i}"]
            gg, g2g2, gg2 = _dot(G, G), _dot(G2, G2), _dot(G, G2)
            diff = np.asarray(G, dtype=np.float64) - np.asarray(G2, dtype=np.float64)
            out["l2"].append(_finite_or_none(math.sqrt(_dot(diff, diff))))
            # sqrt(gg * gg) is exactly gg, so G' == G gives cos exactly 1; the product of the
            # square roots where gg * g2g2 overflows
            denom = math.sqrt(gg * g2g2)
            if not math.isfinite(denom):
                denom = math.sqrt(gg) * math.sqrt(g2g2)
            cos = _finite_or_none(gg2 / denom) if denom > 0 else None
            out["cos"].append(None if cos is None else min(1.0, max(-1.0, cos)))
            out["grad_norm"].append(_finite_or_none(math.sqrt(gg)))
    return out


def landscape(model, X, y, lr, multipliers=(0.5, 1, 2, 3, 4)) -> dict:
    """The loss-landscape measures of the paper's Section 3.1 / 3.2 (Figure 4; Figure 10 for the
    DLN; the protocol in Appendix A.2.2), at the current parameters w.

    The paper computes the gradient g at a training step and moves along it, ``w' = w - eta g``,
    for step sizes eta ranging over a multiple of the training step size ([1/2, 4] x for VGG,
    [1/100, 30] x for the DLN), and plots, per training step:
    - the variation of the loss over those points ("loss landscape", Figure 4(a));
    - the l2 change of the gradient, ``||g - g'||`` with g' the gradient at w'
      ("gradient predictiveness", Figure 4(b));
    - the maximum of ``||g - g'|| / ||w - w'||`` over the points ("effective" beta-smoothness,
      Figure 4(c)), where ``||w - w'|| = eta ||g||``.
    g is the gradient of every parameter (``model.params``), concatenated into one vector.

    Inputs:
    - model, X, y: as for ``internal_covariate_shift``.
    - lr: the training step size, > 0; multipliers: the m in eta = m * lr, each > 0.

    Returns a dict (None for any non-finite value; a range or maximum over points of which one
    is non-finite is None):
    - "loss": L(w); "losses": [L(w - eta g)] per multiplier; "steps": the etas;
    - "loss_range": max - min of [L(w)] + losses;
    - "grad_changes": [||g - g'||] per multiplier; "grad_change": their maximum;
    - "beta": max over multipliers of ``||g - g'|| / (eta ||g||)``; "grad_norm": ||g||.
    Raises NonFiniteError when L(w) or g itself is not finite.
    """
    lr = _check_lr(lr)
    multipliers = [float(m) for m in multipliers]
    if not multipliers:
        raise ValueError("multipliers is empty; give the step sizes as multiples of lr, e.g. (0.5, 1, 2)")
    for m in multipliers:
        _check_lr(m, "every multiplier")
    with _frozen(model, X, y) as evaluate, np.errstate(over="ignore", invalid="ignore"):
        params = dict(model.params)
        keys = list(params)
        loss0, g = evaluate(params, shifted=False)
        if g is None:
            raise NonFiniteError("the loss or its gradient at the current parameters is not finite; "
                                 "the model has diverged, there is no landscape to measure")
        gnorm = _norm(g, keys)
        losses, changes, betas, steps = [], [], [], []
        for m in multipliers:
            eta = m * lr
            steps.append(eta)
            loss, g2 = evaluate(_step(params, g, eta, keys))
            losses.append(_finite_or_none(loss))
            if g2 is None:
                changes.append(None)
                betas.append(None)
                continue
            change = math.sqrt(sum(_dot(d, d) for d in (np.asarray(g[k], np.float64) -
                                                         np.asarray(g2[k], np.float64) for k in keys)))
            changes.append(_finite_or_none(change))
            betas.append(_finite_or_none(change / (eta * gnorm)) if gnorm > 0 else None)
    all_losses = [_finite_or_none(loss0)] + losses
    return {
        "loss": all_losses[0], "losses": losses, "steps": steps,
        "loss_range": None if None in all_losses else _finite_or_none(max(all_losses) - min(all_losses)),
        "grad_changes": changes, "grad_change": None if None in changes else max(changes),
        "beta": None if None in betas else max(betas), "grad_norm": _finite_or_none(gnorm),
    }


def activation_percentiles(acts, q=(15, 50, 85)) -> np.ndarray:
    """Per-unit percentiles over the batch of activations ``acts`` (N, D): an array (len(q), D)
    whose row j holds the q[j]-th percentile of each unit (NumPy's linear interpolation).

    The paper's Figure 9 (and Figure 2) shows such bands of single activations over training
    to picture the distributional shift of layer inputs.
    """
    acts = np.asarray(acts)
    if acts.ndim != 2 or acts.shape[0] < 1:
        raise ValueError(f"expected activations of shape (N, D) with N >= 1, got shape {acts.shape}")
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if q.ndim != 1 or np.any(~np.isfinite(q)) or np.any((q < 0) | (q > 100)):
        raise ValueError(f"percentiles q must lie in [0, 100], got {q.tolist()}")
    return np.percentile(acts.astype(np.float64, copy=False), q, axis=0)
