"""Do the NumPy and torch engines agree? The same nets, the same start, the same batches.

For each case (the seed nets of the experiments, with each normalization),
one NumPy model is built from the seed and a ``TorchModel`` copied from it;
both take ``steps`` updates with normlab's update rule on the same minibatches
(a fresh permutation per epoch, as the Solver draws them). Measured, as
relative differences ``max|a - b| / max|a|`` (the largest entry of the NumPy
side as the scale, so a near-zero entry does not blow the ratio up):

- ``loss``: the largest per-step relative loss difference;
- ``grads``: the gradients of the first step (every parameter at once);
- ``params``: all parameters after the last step;
- ``running``: batch-norm running means and variances after the last step;
- ``eval_out`` / ``train_out``: scores of held-out data in eval mode (running
  statistics) and train mode (batch statistics; dropout masks from the
  same-state generators). ``train_out`` is measured on the fc nets only: the
  conv nets have no dropout, so their per-step losses already are train-mode
  outputs of the same arithmetic (and the report's table has kept that column
  empty for them).

For float32 each engine's per-step loss is also compared with the float64
trajectory (``f32_vs_f64``; both engines against the same float64 losses of
the NumPy engine, relative to them step by step): when the engines differ from
each other about as much as each differs from float64, the gap is float32
rounding amplified by training, not a disagreement of the implementations. The
parameters that drift most in float32 are the biases before batch norm: their
true gradient is 0, and Adam divides their rounding noise by its own size (up
to learning-rate sized steps); batch norm then cancels them, so the outputs do
not see it.

What turns float32 rounding into percent-level loss differences is ReLU: its
gradient jumps where its input crosses 0. When an input of the float64 run lies
within float32 rounding error of 0, a float32 run may see it with the other
sign; from that step on its gradient, and so its trajectory, differs by a
finite amount, and training carries that on (more inputs flip). Whether, and
how early, a float32 run flips such an input is a coin toss of its rounding
path, and any other rounding path (the other engine, another BLAS thread count,
a start 1 ulp away) may toss differently. Measured (seed 0, 100 steps, BLAS on
1 thread as the CLI pins it) on 'fc6 layernorm', where the table shows float32
drifts of 6.6e-6 (NumPy) and 4.5e-2 (torch):

- at step 9 the float64 input of layer 4, unit 79, sample 21 is +2.2e-6
  (inputs are ~0.8 in size). By then float32 has moved the ReLU inputs by
  7.7e-7 median / 7.2e-5 max on the NumPy engine, 6.7e-7 / 3.1e-5 on torch:
  the same size. torch's lands at -3.4e-8 (flipped), NumPy's at +4.1e-6 (not);
  NumPy's first flip comes at step 84, too late to grow past 6.6e-6;
- the float32 start moved by 0 or +-1 ulp per entry (8 random starts per
  engine): NumPy drifts 8.7e-6 to 5.7e-2 (2 of 8 below 1e-3), torch 7.3e-6
  to 5.8e-2 (3 of 8). With 2 BLAS threads the unperturbed NumPy run flips at
  step 9 too: 4.5e-2 on both engines;
- float64 arithmetic throughout, the start moved by 0 or +-1 float64 ulp per
  entry (3 starts): the loss moves by at most 1.4e-14. Moved by a
  float32-sized +-2^-24 per entry (10 starts): 3 runs flip an input and drift
  by >= 1.4e-3 within 30 steps, 7 flip none and drift by <= 4.2e-7. The size
  of the perturbation decides, not the dtype of the arithmetic
  (tests/test_crosscheck.py pins this);
- the NumPy float32 net is float32 throughout: parameters, gradients, layer
  outputs and caches, Adam state (tests/test_models.py). Only the softmax loss
  is evaluated in float64 from the float32 scores (its gradient returned in
  float32), a ~1e-7 effect on the reported loss; torch's cross entropy stays
  in float32;
- the other nets follow the same rule. Batch norm: both engines flip at step 9
  (fc6 batchnorm: float64 input -1.3e-5, float32 errors 1.6e-5 and 2.3e-5)
  and drift alike (8.1e-2, 1.1e-1). 'mlp 512-256': the NumPy run flips at step
  57 and drifts 2.4e-5, torch never flips, 1.6e-7: the asymmetry reversed.
  No norm: no flip, <= 2.5e-6; the conv nets drift <= 2.3e-7.

So two engines drifting very differently in float32 means one run flipped a
ReLU input and the other did not, not that the engines differ (they agree to
1e-9 in float64, and their first-step float32 gradients to ~1e-6).

float64 must agree to ``tolerance`` (default 1e-9) in every measure; float32
is run too and its drift reported, not asserted. Batch-norm nets on the NumPy
side use ``norm_param={'convention': 'torch'}`` (momentum 0.1 on the new
batch, unbiased running variance starting at 1), PyTorch's own convention.

Controls that must FAIL, so the check is shown able to fail: the NumPy net in
the course convention (momentum 0.9 on the old value, biased running variance
starting at 0) against the torch engine given ``momentum=0.9`` literally, i.e.
the momentum convention not mapped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import optim

__all__ = ["Case", "CASES", "CONTROLS", "crosscheck_case", "run_crosscheck", "format_report", "MEASURES"]

MEASURES = ("loss", "grads", "params", "running", "eval_out", "train_out")


@dataclass(frozen=True)
class Case:
    """One net to cross-check. ``model`` is 'fc' or 'cnn'; ``model_kwargs`` go to the NumPy model
    (``dtype`` and ``seed`` are set by the check)."""
    name: str
    model: str
    model_kwargs: dict
    input_shape: tuple
    update_rule: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 50
    num_samples: int = 500
    num_classes: int = 10
    torch_bn_momentum: float | None = None     # None: mapped from the NumPy layer's convention
    expect_fail: bool = False                  # a control: the check must detect the mismatch
    note: str = ""


_SIX = {"hidden_dims": [100] * 5, "weight_scale": 2e-2}          # bn-vs-baseline's net
_TORCH_BN = {"norm_param": {"convention": "torch"}}
_CONV = {"num_filters": 8, "filter_size": 3, "hidden_dim": 32, "weight_scale": 1e-1}

CASES = (
    Case("fc6 no norm", "fc", {**_SIX, "normalization": None}, (784,)),
    Case("fc6 batchnorm", "fc", {**_SIX, "normalization": "batchnorm", **_TORCH_BN}, (784,)),
    Case("fc6 layernorm", "fc", {**_SIX, "normalization": "layernorm"}, (784,)),
    Case("fc6 batchnorm + dropout 0.8, reg 0.01", "fc",
         {**_SIX, "normalization": "batchnorm", "dropout_keep_ratio": 0.8, "reg": 0.01, **_TORCH_BN}, (784,)),
    Case("mlp 512-256 batchnorm, no bias, SGD", "fc",
         {"hidden_dims": [512, 256], "weight_scale": 2.5e-2, "normalization": "batchnorm",
          "bias_before_norm": False, **_TORCH_BN}, (784,), update_rule="sgd", learning_rate=1e-2,
         batch_size=64, num_samples=640),
    Case("conv spatial batchnorm", "cnn", {**_CONV, "normalization": "batchnorm", **_TORCH_BN}, (1, 12, 12),
         batch_size=20, num_samples=200),
    Case("conv groupnorm", "cnn", {**_CONV, "normalization": "groupnorm", "num_groups": 4}, (1, 12, 12),
         batch_size=20, num_samples=200),
)

CONTROLS = (
    Case("control: course momentum 0.9 passed to torch unmapped", "fc",
         {**_SIX, "normalization": "batchnorm", "norm_param": {"convention": "course"}}, (784,),
         torch_bn_momentum=0.9, expect_fail=True,
         note="must fail: 0.9 weights the old value in the course, the new batch in PyTorch"),
)


def _rel(a, b) -> float:
    """max|a - b| / max|a| over arrays (lists of arrays are concatenated); 0 for two empty sets."""
    def flat(v):
        parts = v if isinstance(v, list) else [v]
        return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for x in parts] or [np.zeros(0)])
    a, b = flat(a), flat(b)
    if a.size == 0 and b.size == 0:
        return 0.0
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(a)))
    diff = float(np.max(np.abs(a - b)))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def _build(case: Case, dtype, seed: int):
    from ..models import FullyConnectedNet, ThreeLayerConvNet
    kw = {**case.model_kwargs, "dtype": dtype, "rng_seed": seed, "num_classes": case.num_classes}
    if case.model == "fc":
        return FullyConnectedNet(input_dim=int(np.prod(case.input_shape)), **kw)
    return ThreeLayerConvNet(input_dim=tuple(case.input_shape), **kw)


def _data(case: Case, dtype, seed: int):
    """(X, y, X_eval): the synthetic training set and held-out inputs of ``case``, in ``dtype``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((case.num_samples, *case.input_shape)).astype(dtype)
    y = rng.integers(case.num_classes, size=case.num_samples)
    X_eval = rng.standard_normal((case.batch_size, *case.input_shape)).astype(dtype)
    return X, y, X_eval


def _batches(case: Case, steps: int, seed: int):
    """The minibatch indices of each step: a fresh permutation per epoch, as the Solver draws them."""
    batch_rng = np.random.default_rng(seed + 1)
    per_epoch = case.num_samples // case.batch_size
    order = None
    for step in range(steps):
        if step % per_epoch == 0:
            order = batch_rng.permutation(case.num_samples)
        yield order[(step % per_epoch) * case.batch_size:(step % per_epoch + 1) * case.batch_size]


def crosscheck_case(case: Case, dtype=np.float64, steps: int = 100, seed: int = 0) -> dict:
    """Train ``case`` on both engines for ``steps`` updates; the relative differences (see module doc)."""
    from .pytorch import TorchModel
    X, y, X_eval = _data(case, dtype, seed)
    np_model = _build(case, dtype, seed)
    t_model = TorchModel(np_model, bn_momentum=case.torch_bn_momentum)
    update = optim.UPDATE_RULES[case.update_rule][0]
    configs = [{k: {"learning_rate": case.learning_rate} for k in np_model.params} for _ in range(2)]
    loss_diffs, losses, t_losses, grads_rel = [], [], [], None
    for idx in _batches(case, steps, seed):
        outs = [m.loss(X[idx], y[idx]) for m in (np_model, t_model)]
        (l_np, g_np), (l_t, g_t) = outs
        if grads_rel is None:
            keys = sorted(g_np)
            grads_rel = _rel([g_np[k] for k in keys], [g_t[k] for k in keys])
        losses.append(float(l_np))
        t_losses.append(float(l_t))
        loss_diffs.append(abs(l_np - l_t) / abs(l_np) if l_np != 0 else abs(l_t))
        for m, g, cfgs in ((np_model, g_np, configs[0]), (t_model, g_t, configs[1])):
            for k in m.params:
                m.params[k], cfgs[k] = update(m.params[k], g[k], cfgs[k])

    keys = sorted(np_model.params)
    st_np, st_t = np_model.state_arrays(), t_model.state_arrays()
    st_keys = sorted(set(st_np) | set(st_t))
    missing = [k for k in st_keys if k not in st_np or k not in st_t]
    running = (float("inf") if missing else _rel([st_np[k] for k in st_keys], [st_t[k] for k in st_keys]))
    eval_out = _rel(np_model.loss(X_eval), t_model.loss(X_eval))
    train_out = _rel(np_model.scores(X_eval, "train"), t_model.scores(X_eval, "train")) if case.model == "fc" else None
    per_param = {k: _rel(np_model.params[k], t_model.params[k]) for k in keys}
    measures = {"loss": max(loss_diffs) if loss_diffs else 0.0, "grads": grads_rel or 0.0,
                "params": _rel([np_model.params[k] for k in keys], [t_model.params[k] for k in keys]),
                "running": running if st_keys else None, "eval_out": eval_out, "train_out": train_out}
    return {"case": case.name, "dtype": np.dtype(dtype).name, "steps": steps,
            "update_rule": case.update_rule, "expect_fail": case.expect_fail, "note": case.note,
            "measures": measures,
            "max": max(v for v in measures.values() if v is not None),
            "worst_param": max(per_param, key=per_param.get) if per_param else None,
            "per_param": per_param,
            "loss_diff_per_step": loss_diffs, "loss_per_step": losses, "torch_loss_per_step": t_losses}


def run_crosscheck(steps: int = 100, seed: int = 0, tolerance: float = 1e-9, cases=None,
                   controls=None, float32: bool = True) -> dict:
    """Every case in float64 (asserted against ``tolerance``) and float32 (measured), then the controls
    (``cases`` / ``controls``: default ``CASES`` / ``CONTROLS``).

    Returns a JSON-able dict: ``rows`` (one per case and dtype), ``ok`` (every float64 case within
    tolerance and every control outside it), ``float64_max`` and ``float32_max``.
    """
    cases = CASES if cases is None else cases
    controls = CONTROLS if controls is None else controls
    rows = []
    for case in cases:
        ref = None
        for dtype in (np.float64, np.float32) if float32 else (np.float64,):
            r = crosscheck_case(case, dtype, steps, seed)
            r["asserted"] = dtype == np.float64
            r["ok"] = (r["max"] <= tolerance) if r["asserted"] else None
            if dtype == np.float64:
                ref = np.asarray(r["loss_per_step"])
            else:   # each float32 engine against the float64 trajectory: is the gap float32's own error?
                r["f32_vs_f64"] = {e: float(np.max(np.abs(np.asarray(r[k]) - ref) / np.abs(ref)))
                                   for e, k in (("numpy", "loss_per_step"), ("torch", "torch_loss_per_step"))}
            rows.append(r)
    for case in controls:
        r = crosscheck_case(case, np.float64, steps, seed)
        r["asserted"] = True
        r["ok"] = not r["max"] <= tolerance        # a control passes when the check catches it
        rows.append(r)
    f64 = [r["max"] for r in rows if r["dtype"] == "float64" and not r["expect_fail"]]
    f32 = [r["max"] for r in rows if r["dtype"] == "float32"]
    return {"steps": steps, "seed": seed, "tolerance": tolerance, "rows": rows,
            "ok": all(r["ok"] for r in rows if r["asserted"]),
            "float64_max": max(f64) if f64 else None, "float32_max": max(f32) if f32 else None}


def _e(v) -> str:
    return "n/a" if v is None else f"{v:.1e}"


def format_report(report: dict) -> str:
    """A fixed-width table of the rows, then one verdict line."""
    head = ["case", "dtype", *MEASURES, "verdict"]
    cells = [head]
    for r in report["rows"]:
        verdict = (f"measured (loss vs float64: numpy {_e(r['f32_vs_f64']['numpy'])}, "
                   f"torch {_e(r['f32_vs_f64']['torch'])})" if r["ok"] is None else
                   ("caught (control)" if r["ok"] else "NOT CAUGHT") if r["expect_fail"] else
                   ("ok" if r["ok"] else "FAIL"))
        cells.append([r["case"], r["dtype"], *(_e(r["measures"][m]) for m in MEASURES), verdict])
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    uneven = [r for r in report["rows"] if _uneven(r.get("f32_vs_f64"))]
    lines.append(f"float64: largest relative difference {_e(report['float64_max'])} "
                 f"(tolerance {report['tolerance']:g}) after {report['steps']} steps; "
                 f"float32 drift {_e(report['float32_max'])} (measured, not asserted). "
                 + ("The engines agree." if report["ok"] else "MISMATCH."))
    if uneven:
        lines.append("float32 drifts from float64 above 1e-4 that differ more than tenfold between the engines ("
                     + "; ".join(f"{r['case']}: numpy {_e(r['f32_vs_f64']['numpy'])}, "
                                 f"torch {_e(r['f32_vs_f64']['torch'])}" for r in uneven)
                     + "): one run's rounding flipped the sign of a ReLU input that float64 puts within float32 "
                     "error of 0 and the other's did not; which run flips changes with a 1-ulp change of the "
                     "start or the BLAS thread count, so it is not an engine difference (normlab.engines.crosscheck "
                     "docstring).")
    return "\n".join(lines)


def _uneven(f32_vs_f64, ratio: float = 10.0, floor: float = 1e-4) -> bool:
    """True when one engine's float32 drift exceeds ``floor`` and ``ratio`` times the other's."""
    if not f32_vs_f64:
        return False
    lo, hi = sorted(f32_vs_f64.values())
    return hi > floor and hi > ratio * lo
