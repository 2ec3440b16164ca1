"""Helpers the pitfalls recipes share: the step-wise task, per-condition means over seeds, the
checks' comparisons (None when not measured), population statistics (PreciseBN) and a bar figure.

A condition's number is the mean over its seeds and is measured only when every seed's run
finished and produced it (a missing, failed or diverged seed makes it None, so the checks that
use it are "not measured")."""
from __future__ import annotations

import math

import numpy as np

from ...lab import figures
from ..summarize import fmt, spread

__all__ = ["task", "final_acc", "measured", "condition_mean", "seed_values", "ge", "gt", "sub", "text",
           "population_stats", "eval_normalized", "seed_bars", "bn_configs"]


def task(steps: int, batch: int, lr: float, update_rule: str, eval_every: int, measure: dict | None = None) -> dict:
    """A step-wise task (``normlab.lab.tasks``) evaluated on the test set every ``eval_every`` steps;
    ``measure``: ``{"fn": "normlab.experiments.pitfalls.<module>:<function>", "kwargs": {...}}``."""
    out = {"kind": "steps", "steps": steps, "batch_size": batch, "update_rule": update_rule,
           "optim_config": {"learning_rate": lr}, "eval_every": eval_every, "eval_set": "test"}
    if measure is not None:
        out["measure"] = measure
    return out


def final_acc(r):
    """The test accuracy (eval mode) after the last step of a finished run, else None."""
    return r.val_acc_history[-1] if r.status == "finished" and r.val_acc_history else None


def measured(r, key: str):
    """``extras['measure'][key]`` of a finished run, else None."""
    if r.status != "finished":
        return None
    value = (r.extras.get("measure") or {}).get(key)
    return None if isinstance(value, float) and not math.isfinite(value) else value


def seed_values(rs, seeds, value) -> list:
    """``value(result)`` per seed, in the order of ``seeds`` (None for a seed without a run)."""
    by_seed = {s.seed: r for s, r in rs}
    return [value(by_seed[s]) if s in by_seed else None for s in seeds]


def condition_mean(rs, seeds, value) -> float | None:
    """Mean over seeds of ``value(result)``, or None unless every seed has one."""
    vals = seed_values(rs, seeds, value)
    return None if any(v is None for v in vals) else float(sum(vals) / len(vals))


def per_seed(rs, seeds, of=final_acc) -> list | None:
    """``of(result)`` for each seed in order, or None unless every seed has a finished run with a value."""
    vals = seed_values(rs, seeds, lambda r: of(r) if r.status == "finished" else None)
    return None if any(v is None for v in vals) else vals


def mean_or_none(vals):
    return None if vals is None else float(np.mean(vals))


def curves(ax, rs, label: str, color: str, of=lambda r: r.val_acc_history, x=None):
    """The runs' curves ``of(result)`` (finished and diverged) as a mean with a min-max band."""
    results = [r for r in rs.results if r.status in ("finished", "diverged")]
    if results:
        xs = x or (lambda r: r.extras.get("eval_steps", list(range(len(of(r))))))
        figures.band(ax, [(of(r), r.status == "diverged") for r in results], label, color,
                     x=max((xs(r) for r in results), key=len), marker="o")


def bn_runs(name: str, cfg, conditions, tag: str, measure_fn: str) -> list:
    """One step-wise run per (label, norm_param) of ``conditions`` and seed of an fc batch-norm net:
    ``cfg``'s hidden_dims, weight_scale, num_train, num_test, num_epochs, batch_size, learning_rate,
    update_rule, dataset and seeds; the accuracy every epoch; ``measure_fn`` after training;
    tagged ``{tag: label}``."""
    from ...lab.runs import RunSpec
    per_epoch = cfg.num_train // cfg.batch_size
    measure = {"fn": measure_fn, "kwargs": {}}
    return [RunSpec(experiment=name, name=f"{label}/seed={s}", model="fc", dataset=cfg.dataset,
                    num_train=cfg.num_train, num_test=cfg.num_test, seed=s, tags={tag: label},
                    model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": "batchnorm",
                                  "weight_scale": cfg.weight_scale, "norm_param": param},
                    task=task(cfg.num_epochs * per_epoch, cfg.batch_size, cfg.learning_rate, cfg.update_rule,
                              per_epoch, measure))
            for label, param in conditions for s in cfg.seeds]


def ge(a, b):
    return None if a is None or b is None else bool(a >= b)


def gt(a, b):
    return None if a is None or b is None else bool(a > b)


def sub(a, b):
    return None if a is None or b is None else a - b


def text(v, digits: int = 3) -> str:
    return "not measured" if v is None else fmt(v, digits)


def bn_configs(model) -> list:
    """The ``BatchNormConfig`` of each batch-norm layer of a net (its ``bn_params`` dicts)."""
    from ...nn.norm.batchnorm import BatchNormConfig
    keys = ("eps", "momentum", "convention", "batch_variance")
    return [BatchNormConfig(**{k: p[k] for k in keys if k in p}) for p in model.bn_params]


def population_stats(model, X, chunk: int = 2048) -> list[tuple[np.ndarray, np.ndarray]]:
    """PreciseBN's target (Wu & Johnson 2021), exactly: each batch-norm layer's input mean and
    biased variance over all of ``X`` (float64), layer by layer, the layers below normalized with
    the population statistics already found. For a ``FullyConnectedNet`` with batch norm, ReLU
    and no dropout (affine - batchnorm - relu per hidden layer). Returns ``[(mean, var)]``, (D_i,) each."""
    if model.use_dropout or model.activation != "relu":
        raise ValueError("population_stats needs a ReLU net without dropout")
    out, h = [], np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    for i, config in enumerate(bn_configs(model), start=1):
        W = model.params[f"W{i}"].astype(np.float64)
        b = model.params.get(f"b{i}")
        a = h @ W + (0.0 if b is None else b.astype(np.float64))        # (N, D_i): the layer's input
        mean = a.mean(axis=0)
        var = ((a - mean) ** 2).mean(axis=0)    # mean of squared deviations: E[a^2] - E[a]^2 cancels badly
        out.append((mean, var))
        g, beta = model.params[f"gamma{i}"].astype(np.float64), model.params[f"beta{i}"].astype(np.float64)
        h = np.maximum(g * (a - mean) / np.sqrt(var + config.eps) + beta, 0.0)
    return out


def seed_bars(ax, labels: list, values: list, ylabel: str, colors: list | None = None, digits: int = 3):
    """One bar per condition: the mean over seeds with a min-max error bar, each seed a dot and the
    mean written above; ``values[i]`` the per-seed values of ``labels[i]`` (None: not measured,
    drawn as an empty slot labelled so)."""
    x = np.arange(len(labels))
    for i, vals in enumerate(values):
        color = colors[i] if colors else figures.color_for(labels[i], i)
        sp = spread(vals)
        if sp.mean is None:
            if vals:    # an empty list draws nothing: the caller labels that slot
                ax.annotate("not measured", (i, 0), ha="center", va="bottom", fontsize=8, rotation=90)
            continue
        ax.bar(i, sp.mean, 0.6, color=color, alpha=0.75, linewidth=0)
        ax.errorbar(i, sp.mean, yerr=[[sp.mean - sp.lo], [sp.hi - sp.mean]], fmt="none", ecolor="black", lw=1,
                    capsize=3)
        dots = [v for v in vals if v is not None]
        ax.plot([i + 0.18] * len(dots), dots, "o", color="black", ms=3, zorder=3)
        ax.annotate(fmt(sp.mean, digits), (i, sp.hi), ha="center", va="bottom", fontsize=8, xytext=(0, 3),
                    textcoords="offset points")
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)


def eval_normalized(model, X) -> list[np.ndarray]:
    """Each batch-norm layer's normalized input in eval mode, ``(a - running_mean) / sqrt(running_var
    + eps)`` before gamma and beta (float64, (N, D_i) each), for the nets of :func:`population_stats`:
    the eval-mode forward of ``FullyConnectedNet``, written out so the scale is not gamma's."""
    if model.use_dropout or model.activation != "relu":
        raise ValueError("eval_normalized needs a ReLU net without dropout")
    out, h = [], np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    for i, (config, p) in enumerate(zip(bn_configs(model), model.bn_params), start=1):
        b = model.params.get(f"b{i}")
        a = h @ model.params[f"W{i}"].astype(np.float64) + (0.0 if b is None else b.astype(np.float64))
        x_hat = (a - p["running_mean"]) / np.sqrt(p["running_var"].astype(np.float64) + config.eps)
        out.append(x_hat)
        h = np.maximum(model.params[f"gamma{i}"] * x_hat + model.params[f"beta{i}"], 0.0)
    return out
