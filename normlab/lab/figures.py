"""The experiments' figures, drawn with matplotlib (headless) and saved as PNG and SVG.

matplotlib is imported lazily, on the first figure, so ``import normlab``
does not need it. Figures are ``matplotlib.figure.Figure`` objects rendered by
the Agg canvas: no pyplot, no global figure registry, no GUI backend, nothing
to close. Every figure shares one style (``_STYLE``) and one colour per
normalization (``COLORS``), so the same net looks the same in every plot.

Conventions for runs over seeds: a group of runs (one configuration, several
seeds) is drawn as the mean of its finished runs with a min-max band; a
diverged run is drawn on its own, dashed, up to its last finite value, with
an ``x`` there and "diverged" in the legend, so it is visible, not dropped.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["COLORS", "color_for", "new_figure", "save", "band", "sweep", "histories",
           "grouped_bars", "dots_against_bounds"]

COLORS = {"baseline": "#4d4d4d", "batchnorm": "#1f77b4", "layernorm": "#2ca02c", "groupnorm": "#d62728"}
_CYCLE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
_STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "figure.dpi": 100, "savefig.dpi": 130, "savefig.bbox": "tight",
    "svg.hashsalt": "normlab", "svg.fonttype": "none",
}


def _mpl():
    import matplotlib
    matplotlib.rcParams.update(_STYLE)
    return matplotlib


def color_for(label: str, index: int = 0) -> str:
    """The normalization's colour when ``label`` starts with one, else the ``index``-th of a cycle."""
    for key, c in COLORS.items():
        if label.startswith(key):
            return c
    return _CYCLE[index % len(_CYCLE)]


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.6, height: float = 3.4, title: str | None = None,
               width_ratios=None):
    """A Figure with a grid of axes (``axes`` is always a flat list); ``width`` is per column."""
    _mpl()
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, width_ratios=width_ratios).ravel().tolist()
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig, axes


def save(fig, path_stem) -> list[Path]:
    """Write ``path_stem``.png and .svg, each atomically (temporary file renamed into place);
    returns the two paths. Output is reproducible: no dates in the metadata."""
    from .._io import atomic_write
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        path = stem.with_name(stem.name + "." + fmt)
        atomic_write(path, lambda f, fmt=fmt, meta=meta: fig.savefig(f, format=fmt, metadata=meta))
        paths.append(path)
    return paths


def _as_array(values) -> np.ndarray:
    return np.array([np.nan if v is None or not math.isfinite(v) else float(v) for v in values], dtype=float)


def _last_finite(y: np.ndarray):
    idx = np.flatnonzero(np.isfinite(y))
    return (idx[-1], y[idx[-1]]) if idx.size else (None, None)


def band(ax, runs, label: str, color: str, x=None, marker: str | None = None, lw: float = 1.6,
         linestyle: str = "-"):
    """Draw a group of runs: ``runs`` is a list of ``(values, diverged)``.

    The finished runs give a mean line (over the length they share) with a
    min-max band; each diverged run is drawn dashed up to its last finite
    value and marked with an ``x`` there. ``x`` maps an index to an abscissa
    (default 0, 1, 2, ...)."""
    finished = [_as_array(v) for v, d in runs if not d and len(v)]
    diverged = [_as_array(v) for v, d in runs if d]
    xs = (lambda n: np.arange(n)) if x is None else (lambda n: np.asarray(x[:n], dtype=float))
    n_all = len(finished) + len(diverged)
    if finished:
        n = min(len(y) for y in finished)
        Y = np.vstack([y[:n] for y in finished])                      # (runs, points)
        mean = _cols(Y, np.mean)
        seeds = f" (mean, range of {len(finished)} seeds)" if len(finished) > 1 else ""
        ax.plot(xs(n), mean, color=color, lw=lw, marker=marker, ms=4, ls=linestyle, label=label + seeds)
        if len(finished) > 1:
            lo, hi = _cols(Y, np.min), _cols(Y, np.max)
            ax.fill_between(xs(n), lo, hi, color=color, alpha=0.18, lw=0)
    for i, y in enumerate(diverged):
        k, last = _last_finite(y)
        name = f"{label}: diverged ({len(diverged)} of {n_all})" if i == 0 else None
        if k is None:
            continue
        ax.plot(xs(k + 1), y[:k + 1], color=color, lw=1.0, ls="--", alpha=0.8)
        ax.plot(xs(k + 1)[-1:], [last], color=color, marker="x", ms=9, mew=2.2, ls="none", label=name)


def _cols(Y, fn):
    """``fn`` of each column's finite values (NaN where there are none), without NaN warnings."""
    out = np.full(Y.shape[1], np.nan)
    for j in range(Y.shape[1]):
        col = Y[:, j][np.isfinite(Y[:, j])]
        if col.size:
            out[j] = fn(col)
    return out


def sweep(ax, xs, groups: dict, ylabel: str, logx: bool = True, logy: bool = False, chance: float | None = None,
          styles: dict | None = None):
    """Values against a swept setting. ``groups`` maps a label to a list, one
    entry per x, of lists over seeds of ``(value, diverged)``; None values are
    runs without a value (diverged before it existed, failed, missing). The
    mean over seeds with values is a line with a min-max band; each x where
    some seed diverged gets an ``x`` (placed at the mean, or on the top edge
    when no seed has a value). ``styles`` maps a label to its line style
    (default solid)."""
    xs = np.asarray(xs, dtype=float)
    for i, (label, per_x) in enumerate(groups.items()):
        color = color_for(label, i)
        mean, lo, hi, div_x, div_y = [], [], [], [], []
        for x, seeds in zip(xs, per_x):
            vals = [v for v, _ in seeds if v is not None and math.isfinite(v)]
            mean.append(np.mean(vals) if vals else np.nan)
            lo.append(min(vals) if vals else np.nan)
            hi.append(max(vals) if vals else np.nan)
            if any(d for _, d in seeds):
                div_x.append(x)
                div_y.append(mean[-1])
        nseeds = max((len(s) for s in per_x), default=0)
        ax.plot(xs, mean, color=color, marker="o", ms=3.5, lw=1.6, ls=(styles or {}).get(label, "-"),
                label=label + (f" (mean of {nseeds} seeds)" if nseeds > 1 else ""))
        if nseeds > 1:
            ax.fill_between(xs, lo, hi, color=color, alpha=0.18, lw=0)
        if div_x:
            top = np.isnan(div_y)
            ax.plot(np.asarray(div_x)[~top], np.asarray(div_y)[~top], "x", color=color, ms=10, mew=2.2,
                    label=f"{label}: a seed diverged")
            if top.any():
                ax.plot(np.asarray(div_x)[top], [1.0] * int(top.sum()), "x", color=color, ms=10, mew=2.2,
                        transform=ax.get_xaxis_transform(), clip_on=False,
                        label=None if (~top).any() else f"{label}: diverged (no value)")
    if chance is not None:
        ax.axhline(chance, color="0.5", lw=0.8, ls=":", label=f"chance ({chance:.2f})")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)


def histories(groups: dict, title: str, stem, chance: float | None = None, styles: dict | None = None) -> list[Path]:
    """The course's three panels: training loss per iteration, train and
    validation accuracy per epoch. ``groups`` maps a label to its RunResults
    (one per seed); ``styles`` a label to its line style (default solid)."""
    fig, (ax_loss, ax_train, ax_val) = new_figure(3, 1, width=4.4, height=3.5, title=title)
    for i, (label, runs) in enumerate(groups.items()):
        c = color_for(label, i)
        div = lambda r: r.status == "diverged"
        ls = (styles or {}).get(label, "-")
        band(ax_loss, [(r.loss_history, div(r)) for r in runs], label, c, lw=0.9, linestyle=ls)
        band(ax_train, [(r.train_acc_history, div(r)) for r in runs], label, c, marker="o", linestyle=ls)
        band(ax_val, [(r.val_acc_history, div(r)) for r in runs], label, c, marker="o", linestyle=ls)
    ax_loss.set(title="Training loss", xlabel="iteration", ylabel="loss")
    ax_train.set(title="Training accuracy", xlabel="epoch", ylabel="accuracy")
    ax_val.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
    _finish_acc_axes([ax_train, ax_val], chance)
    shared_legend(fig, [ax_val, ax_train, ax_loss])
    return save(fig, stem)


def shared_legend(fig, axes) -> None:
    """One legend for the whole figure, below the panels: each label once, drawn as in the first
    of ``axes`` that has it (so markers and "diverged" entries show). Inside a panel a legend with
    a line per group and engine covers the curves it explains."""
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        n = len(handles)
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=n if n <= 4 else -(-n // 2))


def _finish_acc_axes(axes, chance):
    for ax in axes:
        if chance is not None:
            ax.axhline(chance, color="0.5", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.xaxis.get_major_locator().set_params(integer=True)


def grouped_bars(ax, categories, series: dict, ylabel: str, errors: dict | None = None, fmt: str | None = None,
                 colors: list | None = None, hatches: list | None = None):
    """Bars per category, one bar per series (label -> values); optional
    (lo, hi) error ranges per series; ``fmt`` writes each value above its bar;
    ``colors`` overrides the normalization colours; ``hatches`` gives series
    a fill pattern (None: plain)."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(categories))
    for i, (label, values) in enumerate(series.items()):
        vals = _as_array(values)
        pos = x + (i - (n - 1) / 2) * width
        color = colors[i] if colors else color_for(label, i)
        hatch = hatches[i] if hatches else None
        bars = ax.bar(pos, np.nan_to_num(vals), width * 0.95, color=color, label=label, hatch=hatch,
                      edgecolor="white" if hatch else None, linewidth=0)
        if errors and label in errors:
            lo, hi = (_as_array(e) for e in errors[label])
            ax.errorbar(pos, vals, yerr=[vals - lo, hi - vals], fmt="none", ecolor="black", lw=1, capsize=2)
        if fmt:
            for b, v in zip(bars, vals):
                if np.isfinite(v):
                    ax.annotate(format(v, fmt), (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom",
                                fontsize=7.5, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, categories)
    ax.set_ylabel(ylabel)


def dots_against_bounds(rows, title: str, stem) -> list[Path]:
    """Gradient-check errors: one line per check (``rows`` of (label, [(grad, error, bound, ok)])),
    a dot per gradient (green within the bound, red outside), each bound of the line as a black bar
    (a net's weights may have a looser bound than its biases)."""
    fig, (ax,) = new_figure(1, 1, width=7.5, height=max(2.5, 1.2 + 0.24 * len(rows)),
                             title=title)
    seen = set()
    for i, (label, grads) in enumerate(rows):
        y = len(rows) - 1 - i
        for _, err, bound, ok in grads:
            key = "within the course's bound" if ok else "outside the bound"
            ax.plot([max(err, 1e-18)], [y], "o", ms=4.5, alpha=0.85, color="#2ca02c" if ok else "#d62728",
                    label=None if key in seen else key)
            seen.add(key)
        for b in sorted({g[2] for g in grads}):
            ax.plot([b], [y], "|", color="black", ms=11, mew=2,
                    label=None if "bound" in seen else "course's bound")
            seen.add("bound")
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("relative error against finite differences (log scale)")
    ax.grid(axis="y", alpha=0.15)
    fig.legend(loc="outside lower center", ncol=3)
    return save(fig, stem)
