"""Figures of a linsig run: learning curves before and after signal removal.

The figures follow Heil, Crawford & Greene (2023):

* :func:`learning_curve_figure` (Fig 3): balanced accuracy against the number of training
  samples, one curve per model, one panel per ``signal`` value (``none`` | ``removed`` ...);
* :func:`binary_tasks_figure` (Fig 2): one small pair of panels per binary task of a dataset;
* :func:`simulated_figure` (Fig 4): the simulated datasets, one row each;
* :func:`split_comparison_figure` (S2 Fig): study-wise vs sample-wise splitting;
* :func:`pretraining_comparison_figure` (S4 Fig): with and without pretraining.

Every learning-curve panel draws, for each model, the raw points (lightly), a local-linear
LOESS fit and its 95% confidence band (:func:`loess_band`), and a dotted horizontal line at the
balanced accuracy of the majority-class predictor (``chance_balanced_accuracy`` = 1/(classes in the
validation fold); older tables without the column fall back to 1/n_classes).
Rows whose ``status`` is not ``ok`` (skipped) are left out of every figure.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state), so that
they can be inspected in tests and made in any process without a display.

The LOESS fit
-------------
:func:`loess_band` is a local-linear regression with tricube weights and a nearest-neighbour
span (``frac``, default 0.75: R's ``loess``/ggplot2's ``geom_smooth`` default, degree 1), i.e.
the estimator of statsmodels' ``lowess`` without its robustness iterations, evaluated on a grid.
Being a linear smoother, its fit at ``x0`` is ``l(x0) @ y``, so the standard error has a closed
form: ``se(x0) = sigma * ||l(x0)||`` with ``sigma^2 = RSS / (n - 2 tr(L) + tr(L'L))`` (Cleveland
& Grosse 1991), and the 95% band is ``fit ± t_{0.975, df} se`` with ``df = n - 2 tr(L) + tr(L'L)``.
Observations that share an ``x`` value (every seed and fold at one training size) are pooled
into sufficient statistics (count, sum y, sum y^2) first, which gives exactly the same fit and
band while the cost depends only on the number of distinct ``x`` values and grid points —
10^5 rows fit in milliseconds.

A curve never leaves what the data support (:func:`curve_band`): per training size, the mean and
its 95% t-interval bound the fit and its band (and [0, 1] bounds a score); with fewer than four
training sizes, or where LOESS would leave that range (a local line resting on a few sizes that
study-wise folds jitter apart can spike from 0 to 1), the curve joins the per-size means instead
and the panel says so.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from linsig.errors import LinsigInputError
from linsig.models import model_order
from linsig.outputs import atomic_write_bytes, file_sha256
from linsig.results import RESULTS_HASH, load_results, load_summary, results_path, usable_rows
from linsig.splits import SPLITTERS
from linsig.wording import SPLIT_LABELS, split_label  # noqa: F401 - SPLIT_LABELS re-exported

log = logging.getLogger(__name__)

FIGURE_INDEX = "index.json"



#: Fixed colours for the paper's models; any other model gets the next free colour of the
#: palette, by sorted name, so that a model has the same colour in every figure of a run.
MODEL_COLORS = {
    "logreg": "#1f77b4",  # blue
    "svm": "#2ca02c",  # green
    "mlp3": "#ff7f0e",  # orange
    "mlp5": "#d62728",  # red
}
_EXTRA_COLORS = (
    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
)

SIGNAL_ORDER = ("none", "removed", "removed_full", "study")
SIGNAL_LABELS = {
    "none": "Before signal removal",
    "removed": "After linear signal removal",
    "removed_full": "After removal on the full dataset",
    "study": "Study signal removed",
}

X_LABEL = "Training samples"
Y_LABEL = "Balanced accuracy"

# --------------------------------------------------------------------------------------------
# Colours and ordering
# --------------------------------------------------------------------------------------------

def model_colors(models: Iterable[str]) -> dict[str, str]:
    """A colour per model: fixed for the paper's models, the palette in name order for others."""
    colors = dict(MODEL_COLORS)
    extra = sorted(set(models) - set(MODEL_COLORS))
    for i, model in enumerate(extra):
        colors[model] = _EXTRA_COLORS[i % len(_EXTRA_COLORS)]
    return colors


def signal_order(signals: Iterable[str]) -> list[str]:
    signals = set(signals)
    return [s for s in SIGNAL_ORDER if s in signals] + sorted(signals - set(SIGNAL_ORDER))


def signal_label(signal: str) -> str:
    return SIGNAL_LABELS.get(signal, f"signal: {signal}")


# --------------------------------------------------------------------------------------------
# LOESS
# --------------------------------------------------------------------------------------------

def _loess(
    x: np.ndarray,
    y: np.ndarray,
    grid: np.ndarray,
    frac: float = 0.75,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unguarded local-linear LOESS of :func:`loess_band` (see the module docstring)."""
    nan = np.full(grid.shape, np.nan)
    n = x.size
    if n == 0:
        return nan, nan.copy(), nan.copy()

    # Pool ties: the smoother only needs count, sum y and sum y^2 per distinct x.
    ux, inverse = np.unique(x, return_inverse=True)
    counts = np.bincount(inverse).astype(float)
    sums = np.bincount(inverse, weights=y)
    sumsq = np.bincount(inverse, weights=y * y)
    alpha = 1.0 - level

    if ux.size == 1:
        mean = sums[0] / n
        if n > 1:
            sd = np.sqrt(max(sumsq[0] - n * mean * mean, 0.0) / (n - 1))
            half = stats.t.ppf(1 - alpha / 2, n - 1) * sd / np.sqrt(n)
        else:
            half = np.nan
        fit = np.full(grid.shape, mean)
        return fit, fit - half, fit + half

    k = min(n, max(int(np.ceil(frac * n)), 2))

    def weights_at(points: np.ndarray) -> np.ndarray:
        """Per-observation smoother weights l(x0) for each point, as a (points, ux) matrix."""
        d = ux[None, :] - points[:, None]
        dist = np.abs(d)
        order = np.argsort(dist, axis=1)
        cum = np.cumsum(counts[order], axis=1)
        kth = np.argmax(cum >= k, axis=1)
        h = np.take_along_axis(dist, order, axis=1)[np.arange(points.size), kth]
        span = ux[-1] - ux[0]
        # With few distinct x values (a learning curve of three sizes) the k nearest points can
        # all sit at one x, leaving the local line resting on a neighbour of ~0 weight: an
        # unbounded extrapolation spike. Keep the second-nearest distinct x well inside the window.
        second = np.sort(dist, axis=1)[:, 1]
        h = np.maximum(h, 1.5 * second)
        h = np.maximum(h, 1e-9 * max(span, 1.0)) * (1 + 1e-6)
        u = np.clip(dist / h[:, None], 0.0, 1.0)
        w = (1 - u**3) ** 3 * counts[None, :]  # total kernel weight of each distinct x
        s0 = w.sum(axis=1)
        s1 = (w * d).sum(axis=1)
        s2 = (w * d * d).sum(axis=1)
        det = s0 * s2 - s1 * s1
        linear = det > 1e-10 * np.maximum(s0 * s2, 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = w * (s2[:, None] - d * s1[:, None]) / det[:, None]
            lc = w / s0[:, None]
        # per distinct x, the weight each single observation there gets:
        return np.where(linear[:, None], ll, lc) / counts[None, :]

    lg = weights_at(grid)
    fit = lg @ sums
    norm = np.sqrt((lg * lg) @ counts)

    # Residual scale from the fit at the data (distinct x values).
    lx = weights_at(ux)
    fx = lx @ sums
    rss = float(np.sum(sumsq - 2 * fx * sums + counts * fx * fx))
    tr_l = float(np.sum(counts * np.diag(lx)))
    tr_ll = float(np.sum(counts * ((lx * lx) @ counts)))
    df_res = n - 2 * tr_l + tr_ll
    if df_res <= 0.5:
        return fit, nan, nan.copy()
    sigma = np.sqrt(max(rss, 0.0) / df_res)
    half = stats.t.ppf(1 - alpha / 2, df_res) * sigma * norm
    return fit, fit - half, fit + half



class CurveBand(NamedTuple):
    """A learning curve on a grid: ``fit`` with its pointwise band ``lower``–``upper``.

    ``method`` says what drew it: ``"loess"`` (the LOESS smoother), ``"means"`` (straight lines
    through the per-size means and their 95% t-intervals: the fallback) or ``"mean"`` (a single
    training size); ``note`` says why it fell back ("" for LOESS).
    """

    fit: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    method: str
    note: str


#: LOESS needs this many distinct training sizes; with fewer, a local line rests on one or two
#: sizes and the smoother is a straight line through noise (or, with sizes jittered per fold,
#: an unbounded extrapolation spike), so the curve joins the per-size means instead.
MIN_LOESS_SIZES = 4
#: Without the training fractions, sorted distinct ``x`` values count as one training size while
#: each is within 18 % of the previous one and within 35 % of the size's smallest: study-wise
#: folds give one fraction slightly different sample counts per fold (ALL: 24–28 for 26, 96–108
#: for 102), while fractions 25 % or more apart stay apart (of the paper's ten fractions 0.1–1.0,
#: 0.6–0.8 and 0.9–1.0 count as one size each; plots pass the fractions and need no guess).
SIZE_GAP, SIZE_WIDTH = 0.18, 0.35


def _size_labels(x: np.ndarray, sizes: np.ndarray | None) -> np.ndarray:
    """One label per observation naming its training size: ``sizes`` when given (the training
    fraction), else ``x`` grouped by :data:`SIZE_GAP` and :data:`SIZE_WIDTH`."""
    if sizes is not None:
        return np.unique(sizes, return_inverse=True)[1]
    ux, inverse = np.unique(x, return_inverse=True)
    labels = np.empty(ux.size, dtype=int)
    label, start, previous = -1, None, None
    for i, value in enumerate(ux):
        scale = max(abs(previous), 1e-12) if previous is not None else 0.0
        if start is None or value - previous > SIZE_GAP * scale or value - start > SIZE_WIDTH * max(abs(start), 1e-12):
            label, start = label + 1, value
        labels[i], previous = label, value
    return labels[inverse]


def _size_means(x, y, labels, level):
    """Per training size: mean x, mean y and the half-width of the t-interval of the mean (NaN
    with one observation), ordered by x."""
    xs, ms, hs = [], [], []
    for lab in np.unique(labels):
        yy = y[labels == lab]
        xs.append(float(x[labels == lab].mean()))
        ms.append(float(yy.mean()))
        if yy.size > 1:
            hs.append(float(stats.t.ppf(0.5 + level / 2, yy.size - 1) * yy.std(ddof=1) / np.sqrt(yy.size)))
        else:
            hs.append(np.nan)
    order = np.argsort(xs)
    return np.asarray(xs)[order], np.asarray(ms)[order], np.asarray(hs)[order]


def curve_band(
    x: Sequence[float],
    y: Sequence[float],
    grid: Sequence[float] | None = None,
    sizes: Sequence | None = None,
    frac: float = 0.75,
    level: float = 0.95,
    bounds: tuple[float, float] | str | None = "auto",
) -> CurveBand:
    """A learning curve that never misleads: LOESS where it is trustworthy, the per-size means
    where it is not, and never outside what the data support.

    ``sizes`` labels each observation's training size (the training fraction; default: nearly
    equal ``x`` values, see :data:`SIZE_GAP`). Per size, the mean and its ``level`` t-interval bound the
    curve: the fit and band stay within ``[min(mean − interval), max(mean + interval)]`` over the
    sizes, and within ``bounds`` (``"auto"``: [0, 1] when every ``y`` is, as for a balanced
    accuracy or an AUC; ``None``: none). LOESS (:func:`_loess`) is used with at least
    :data:`MIN_LOESS_SIZES` sizes and when its fit stays in that range; otherwise the curve joins
    the per-size means (band: their intervals), and ``method``/``note`` say so.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError("x and y must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    labels_in = None if sizes is None else np.asarray(sizes).ravel()
    if labels_in is not None and labels_in.shape != x.shape:
        raise ValueError("sizes must have one label per observation")
    x, y = x[keep], y[keep]
    if grid is None:
        grid = np.linspace(x.min(), x.max(), 100) if x.size else np.array([])
    grid = np.asarray(grid, dtype=float).ravel()
    nan = np.full(grid.shape, np.nan)
    if x.size == 0:
        return CurveBand(nan, nan.copy(), nan.copy(), "none", "no data")
    if isinstance(bounds, str):
        bounds = (0.0, 1.0) if (y.min() >= 0.0 and y.max() <= 1.0) else None
    labels = _size_labels(x, None if labels_in is None else labels_in[keep])
    xs, ms, hs = _size_means(x, y, labels, level)
    h0 = np.nan_to_num(hs, nan=0.0)
    lo_env, hi_env = float(np.min(ms - h0)), float(np.max(ms + h0))
    if bounds is not None:
        lo_env, hi_env = max(lo_env, bounds[0]), min(hi_env, bounds[1])
    tol = 1e-9 * max(1.0, abs(hi_env - lo_env))

    if xs.size == 1:
        method, note = "mean", "one training size: its mean and 95% interval"
        fit = np.full(grid.shape, ms[0])
        lower, upper = fit - hs[0], fit + hs[0]
    else:
        method, note = "loess", ""
        if xs.size < MIN_LOESS_SIZES:
            note = f"{xs.size} training sizes (LOESS needs {MIN_LOESS_SIZES}): per-size means joined"
        else:
            fit, lower, upper = _loess(x, y, grid, frac, level)
            if not (np.all(np.isfinite(fit)) and np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
                note = "LOESS had no band here: per-size means joined"
            elif fit.min() < lo_env - tol or fit.max() > hi_env + tol:
                note = "LOESS left the range of the per-size means: per-size means joined"
        if note:
            method = "means"
            fit = np.interp(grid, xs, ms)
            lower, upper = np.interp(grid, xs, ms - hs), np.interp(grid, xs, ms + hs)
    fit = np.clip(fit, lo_env, hi_env)
    with np.errstate(invalid="ignore"):
        lower = np.minimum(np.clip(lower, lo_env, hi_env), fit)
        upper = np.maximum(np.clip(upper, lo_env, hi_env), fit)
    if note:
        log.debug("learning curve: %s", note)
    return CurveBand(fit, lower, upper, method, note)


def loess_band(
    x: Sequence[float],
    y: Sequence[float],
    grid: Sequence[float] | None = None,
    frac: float = 0.75,
    level: float = 0.95,
    sizes: Sequence | None = None,
    bounds: tuple[float, float] | str | None = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local-linear LOESS fit of ``y`` on ``x`` at ``grid`` with a pointwise confidence band.

    Tricube weights over the nearest ``ceil(frac * n)`` observations (degree-1 loess, no
    robustness iterations); the band is ``fit ± t se`` with the analytic standard error of a
    linear smoother (see the module docstring). Returns ``(fit, lower, upper)`` arrays shaped
    like ``grid`` (default: 100 points from min to max of ``x``). Non-finite pairs are dropped.
    With a single distinct ``x`` the fit is the mean and the band the t-interval of the mean.

    Guarded as :func:`curve_band` (which also says when and why it fell back): with fewer than
    four distinct sizes, or where LOESS would leave the range of the per-size means ± their
    intervals, the curve joins the per-size means; fit and band never leave that range, nor
    [0, 1] when every ``y`` lies in it.
    """
    c = curve_band(x, y, grid, sizes=sizes, frac=frac, level=level, bounds=bounds)
    return c.fit, c.lower, c.upper


# --------------------------------------------------------------------------------------------
# Panels and figures
# --------------------------------------------------------------------------------------------

def _dataset_task_title(df: pd.DataFrame) -> str:
    datasets = ", ".join(sorted(df["dataset"].unique()))
    tasks = ", ".join(sorted(df["task"].unique()))
    return f"{datasets}: {tasks}"


def draw_learning_curve(
    ax,
    df: pd.DataFrame,
    colors: dict[str, str] | None = None,
    title: str | None = None,
    frac: float = 0.75,
    points: bool = True,
    labels: bool = True,
) -> None:
    """Draw one learning-curve panel on ``ax`` from the (usable) rows ``df``.

    Per model: a light scatter of the raw points, the curve (``label`` = model name,
    ``gid`` = ``"loess:<model>"``) and its 95% band (``gid`` = ``"band:<model>"``), both from
    :func:`curve_band` (LOESS, or the per-size means joined where LOESS cannot be trusted: a note
    on the panel, ``gid`` = ``"curve-fallback"``, names the models and why); then the dotted
    majority-class baseline (``gid`` = ``"baseline"``) at ``chance_balanced_accuracy``.
    """
    df = usable_rows(df)
    models = model_order(df["model"].unique())
    colors = colors or model_colors(models)
    if len(df):
        lo, hi = float(df["n_train"].min()), float(df["n_train"].max())
        grid = np.linspace(lo, hi, 80) if hi > lo else np.array([lo])
    fallbacks: list[tuple[str, str]] = []
    for model in models:
        sub = df[df["model"] == model]
        x = sub["n_train"].to_numpy(dtype=float)
        y = sub["balanced_accuracy"].to_numpy(dtype=float)
        color = colors.get(model, "#333333")
        if points:
            ax.scatter(x, y, s=6, alpha=0.25, color=color, linewidths=0, rasterized=True,
                       label=f"_points {model}", gid=f"points:{model}").set_in_layout(False)
        mgrid = grid[(grid >= x.min()) & (grid <= x.max())] if x.size else grid
        if mgrid.size == 0:
            mgrid = np.array([x.min()])
        # sizes by training fraction: study-wise folds jitter the sample count of one fraction
        sizes = sub["train_fraction"].to_numpy() if "train_fraction" in sub else None
        curve = curve_band(x, y, mgrid, sizes=sizes, frac=frac, bounds=(0.0, 1.0))
        fit, lower, upper = curve.fit, curve.lower, curve.upper
        if curve.method == "means":
            fallbacks.append((model, curve.note))
        if mgrid.size == 1:  # a single training size: draw a short segment and a bar
            width = max(1.0, 0.02 * max(abs(mgrid[0]), 1.0))
            mgrid = np.array([mgrid[0] - width, mgrid[0] + width])
            fit, lower, upper = (np.repeat(a, 2) for a in (fit, lower, upper))
        ax.plot(mgrid, fit, color=color, lw=2, label=model, gid=f"loess:{model}")[0] \
            .set_in_layout(False)
        band_ok = np.isfinite(lower) & np.isfinite(upper)
        ax.fill_between(mgrid, np.where(band_ok, lower, fit), np.where(band_ok, upper, fit),
                        color=color, alpha=0.2, linewidth=0, label=f"_band {model}",
                        gid=f"band:{model}").set_in_layout(False)
    if fallbacks:
        # the reader must know a line is not a smoother: say which models and why, on the panel
        notes = list(dict.fromkeys(note for _, note in fallbacks))
        who = "all models" if len(fallbacks) == len(models) else ", ".join(m for m, _ in fallbacks)
        ax.text(0.02, 0.02, f"{who}: {'; '.join(notes)}", transform=ax.transAxes, ha="left", va="bottom",
                fontsize=6.5, color="#555555", wrap=True, gid="curve-fallback").set_in_layout(False)
    chance = df["chance_balanced_accuracy"].dropna()
    if len(chance):
        # a fold missing a class has a higher floor (1/classes present): draw the panel's mean floor
        ax.axhline(float(chance.mean()), color="black", linestyle=":", lw=1.2,
                   label="Majority-class baseline", gid="baseline").set_in_layout(False)
    ax.set_ylim(0, 1)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    if title is not None:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if not len(df):
        ax.text(0.5, 0.5, "no usable results", transform=ax.transAxes, ha="center",
                va="center", color="grey")


def _grid_figure(
    df: pd.DataFrame,
    rows: list[tuple[str, pd.DataFrame]],
    suptitle: str,
    panel_width: float = 4.2,
    panel_height: float = 3.3,
    frac: float = 0.75,
) -> Figure:
    """A figure with one row per ``(row label, rows)`` and one column per signal value."""
    df = usable_rows(df)
    signals = signal_order(df["signal"].unique()) or ["none"]
    colors = model_colors(df["model"].unique())
    nrows, ncols = max(len(rows), 1), len(signals)
    fig = Figure(figsize=(panel_width * ncols + 1.4, panel_height * nrows + 0.8),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for r, (row_label, row_df) in enumerate(rows):
        for c, signal in enumerate(signals):
            title = signal_label(signal) if not row_label else f"{row_label}\n{signal_label(signal)}"
            draw_learning_curve(axes[r, c], row_df[row_df["signal"] == signal], colors,
                                title=title, frac=frac)
    fig.suptitle(suptitle)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    by_label = dict(zip(labels, handles))
    for ax in axes.flat:  # gather every model, even if absent from the first panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            by_label.setdefault(lab, h)
    ordered = [m for m in model_order(set(by_label) - {"Majority-class baseline"})]
    if "Majority-class baseline" in by_label:
        ordered.append("Majority-class baseline")
    fig.legend([by_label[k] for k in ordered], ordered, loc="outside right upper",
               fontsize=9, frameon=False)
    return fig


def learning_curve_figure(df: pd.DataFrame, title: str | None = None, frac: float = 0.75) -> Figure:
    """Fig 3: one panel per ``signal`` value (before | after removal), one curve per model.

    ``df`` holds the rows of one (dataset, task, split, pretraining); skipped rows are ignored.
    """
    df = usable_rows(df)
    if title is None:
        title = _dataset_task_title(df)
        extra = []
        if "split" in df and df["split"].nunique() == 1:
            extra.append(split_label(df["split"].iloc[0], df))
        if "pretraining" in df and df["pretraining"].nunique() == 1 and df["pretraining"].iloc[0] != "none":
            extra.append(df["pretraining"].iloc[0])
        if extra:
            title += f" ({', '.join(extra)})"
    return _grid_figure(df, [("", df)], title, frac=frac)


def _short_task(task: str) -> str:
    return task.split(":", 1)[1] if ":" in task else task


def binary_tasks_figure(df: pd.DataFrame, title: str | None = None, frac: float = 0.75) -> Figure:
    """Fig 2: a small panel per binary task (``n_classes == 2``) and signal value, in a grid.

    Each task gets adjacent panels for its signal values (before | after removal); tasks fill
    the grid row by row.
    """
    df = usable_rows(df)
    df = df[df["n_classes"] == 2]
    tasks = sorted(df["task"].unique())
    signals = signal_order(df["signal"].unique()) or ["none"]
    colors = model_colors(df["model"].unique())
    n_sig = len(signals)
    task_cols = max(1, int(np.ceil(np.sqrt(len(tasks) * 1.0))))
    if n_sig > 1:
        task_cols = max(1, min(task_cols, 3))
    nrows = max(1, int(np.ceil(len(tasks) / task_cols)))
    ncols = task_cols * n_sig
    fig = Figure(figsize=(2.9 * ncols + 1.4, 2.6 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    short = {"none": "before", "removed": "after removal"}
    for i, task in enumerate(tasks):
        r, tc = divmod(i, task_cols)
        for j, signal in enumerate(signals):
            ax = axes[r, tc * n_sig + j]
            sub = df[(df["task"] == task) & (df["signal"] == signal)]
            draw_learning_curve(ax, sub, colors, title=f"{_short_task(task)}\n{short.get(signal, signal)}",
                                frac=frac)
            ax.title.set_fontsize(8)
            ax.xaxis.label.set_fontsize(8)
            ax.yaxis.label.set_fontsize(8)
            ax.tick_params(labelsize=7)
    for k in range(len(tasks) * n_sig, nrows * ncols):
        axes.flat[k].set_visible(False)
    if title is None:
        title = f"{', '.join(sorted(df['dataset'].unique()))}: binary tasks"
    fig.suptitle(title)
    models = model_order(df["model"].unique())
    handles = []
    for model in models:
        for h, lab in zip(*axes.flat[0].get_legend_handles_labels()):
            if lab == model:
                handles.append((h, lab))
    if not handles:
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab in models and lab not in [x[1] for x in handles]:
                    handles.append((h, lab))
    if handles:
        fig.legend([h for h, _ in handles], [lab for _, lab in handles],
                   loc="outside right upper", fontsize=9, frameon=False)
    return fig


def simulated_figure(df: pd.DataFrame, title: str | None = None, frac: float = 0.75) -> Figure:
    """Fig 4: one row per simulated (dataset, task), one column per signal value.

    The dotted line is the majority-class baseline (balanced accuracy 1/n_classes).
    """
    df = usable_rows(df)
    rows = [(f"{d}: {t}", g) for (d, t), g in df.groupby(["dataset", "task"], sort=True)]
    return _grid_figure(df, rows, title or "Simulated data", frac=frac)


def split_comparison_figure(df: pd.DataFrame, title: str | None = None, frac: float = 0.75) -> Figure:
    """S2 Fig: one row per ``split`` value (study-wise, sample-wise), one column per signal."""
    df = usable_rows(df)
    order = [s for s in SPLITTERS if s in set(df["split"])]
    order += sorted(set(df["split"]) - set(order))
    rows = [(SPLIT_LABELS.get(s, f"{s} split").capitalize(), df[df["split"] == s]) for s in order]
    return _grid_figure(df, rows, title or f"{_dataset_task_title(df)}: study-wise vs sample-wise split",
                        frac=frac)


def pretraining_comparison_figure(df: pd.DataFrame, title: str | None = None,
                                  frac: float = 0.75) -> Figure:
    """S4 Fig: one row per ``pretraining`` value (none, pretrained), one column per signal."""
    df = usable_rows(df)
    order = [p for p in ("none", "pretrained") if p in set(df["pretraining"])]
    order += sorted(set(df["pretraining"]) - set(order))
    names = {"none": "Without pretraining", "pretrained": "With pretraining"}
    rows = [(names.get(p, p), df[df["pretraining"] == p]) for p in order]
    return _grid_figure(df, rows, title or f"{_dataset_task_title(df)}: pretraining", frac=frac)


def _cliques(ranked: list[tuple[str, float]], cd: float) -> list[tuple[int, int]]:
    """Maximal runs (first, last index) of rank-sorted models whose mean ranks span less than
    ``cd``: the groups a critical-difference diagram joins with a bar."""
    runs = []
    for i in range(len(ranked)):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][1] - ranked[i][1] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in runs):
            runs.append((i, j))
    return runs


def draw_critical_difference(ax, mean_ranks: dict[str, float], cd: float, n_tasks: int,
                             colors: dict[str, str] | None = None) -> None:
    """A Demšar (2006) critical-difference diagram on ``ax``.

    The axis runs from rank 1 (best, left) to k; each model hangs from its mean rank, the better
    half labelled on the left, the rest on the right. A bar (``gid`` = ``"clique"``) joins
    models whose mean ranks differ by less than the Nemenyi critical difference ``cd``, i.e.
    that the test cannot tell apart; the ``CD`` segment (``gid`` = ``"cd"``) shows its length.
    """
    ranked = sorted(mean_ranks.items(), key=lambda kv: (kv[1], kv[0]))
    k = len(ranked)
    colors = colors or model_colors(mean_ranks)
    half = (k + 1) // 2
    # room for the labels outside the rank axis (text is not part of the constrained layout)
    room = 0.35 + 0.09 * max(len(f"{m} (0.00)") for m in mean_ranks)
    ax.set_xlim(0.5 - room, k + 0.5 + room)
    rows = max(half, k - half)
    ax.set_ylim(-(rows + 1.2), 2.2)
    ax.axis("off")
    ax.plot([1, k], [0, 0], color="black", lw=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.18], color="black", lw=1)
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize=9)
    if np.isfinite(cd):
        end = min(1 + cd, k + 0.7)
        ax.plot([1, end], [1.5, 1.5], color="black", lw=1.5, gid="cd")
        for x in (1, end):
            ax.plot([x, x], [1.38, 1.62], color="black", lw=1.5)
        ax.text((1 + end) / 2, 1.7, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for i, (model, rank) in enumerate(ranked):
        left = i < half
        depth = -(i + 1) if left else -(k - i)
        x_text = 0.6 if left else k + 0.4
        color = colors.get(model, "#333333")
        ax.plot([rank, rank, x_text], [0, depth, depth], color=color, lw=1.2, gid=f"rank:{model}")
        ax.text(x_text + (-0.05 if left else 0.05), depth, f"{model} ({rank:.2f})",
                ha="right" if left else "left", va="center", fontsize=9, color=color)
    if np.isfinite(cd):
        for n, (a, b) in enumerate(_cliques(ranked, cd)):
            y = -0.35 - 0.22 * n
            ax.plot([ranked[a][1] - 0.05, ranked[b][1] + 0.05], [y, y], color="black", lw=3.5,
                    solid_capstyle="round", gid="clique")
    ax.set_title(f"Mean rank over {n_tasks} tasks (1 = best)", fontsize=10)


def critical_difference_figure(df: pd.DataFrame, title: str | None = None, alpha: float = 0.05) -> Figure:
    """Across tasks: Demšar's critical-difference diagram of the models' mean ranks (rows with
    signal ``none``; the first stratum of :func:`linsig.stats.cross_task`)."""
    from linsig.stats import cross_task

    result = cross_task(df, alpha=alpha)
    if not result["available"]:
        raise LinsigInputError(f"no critical-difference diagram: {result['message']}")
    s = result["strata"][0]
    k = len(s["models"])
    fig = Figure(figsize=(max(6.5, 1.1 * k + 4.5), 1.6 + 0.42 * ((k + 1) // 2)), layout="constrained")
    ax = fig.subplots()
    draw_critical_difference(ax, s["mean_ranks"], s["cd"], s["n_tasks"])
    fig.suptitle(title or "Models ranked across tasks")
    return fig


# --------------------------------------------------------------------------------------------
# A whole run
# --------------------------------------------------------------------------------------------

def _slug(*parts: str) -> str:
    text = "__".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def is_simulated(dataset: str, summary: dict | None = None) -> bool:
    """Whether a dataset is simulated: its name starts with ``sim``, or its summary entry uses
    the simulated data's ``label``/``group`` keys."""
    if dataset.lower().startswith("sim") or "simulat" in dataset.lower():
        return True
    for task in (summary or {}).get("tasks", []) or []:
        if task.get("dataset") == dataset and task.get("label_key") == "label" \
                and task.get("group_key") == "group":
            return True
    return False


def figure_specs(df: pd.DataFrame, summary: dict | None = None) -> list[dict]:
    """The figures :func:`plot_run` makes for ``df``: dicts with ``name``, ``kind``, ``title``,
    ``caption``, ``maker`` (the figure function), ``data`` (its rows) and a ``make`` callable
    returning the :class:`Figure`.

    Results of several training recipes (``recipe`` column) get one set of figures each: a model
    name means a different training in each, so their curves must not share an axis.
    """
    if "recipe" in df.columns and df["recipe"].nunique() > 1:
        specs = []
        for recipe, sub in df.groupby("recipe", sort=True):
            for spec in _figure_specs(sub, summary):
                if spec["kind"] == "critical_difference":  # stratified by recipe already
                    specs.append(spec)
                    continue
                spec["name"] = f"{spec['name']}__{_slug(str(recipe))}"
                spec["title"] = f"{spec['title']}, {recipe} recipe"
                spec["make"] = (lambda m=spec["maker"], s=spec["data"], t=spec["title"]: m(s, title=t))
                specs.append(spec)
        return specs
    return _figure_specs(df, summary)


def _figure_specs(df: pd.DataFrame, summary: dict | None = None) -> list[dict]:
    df = usable_rows(df)
    specs: list[dict] = []
    if df.empty:
        return specs

    def add(kind, name, title, caption, maker, sub):
        specs.append({"kind": kind, "name": name, "title": title, "caption": caption,
                      "maker": maker, "data": sub,
                      "make": (lambda m=maker, s=sub, t=title: m(s, title=t))})

    keys = ["dataset", "task", "split", "pretraining"]
    for (dataset, task, split, pre), sub in df.groupby(keys, sort=True):
        title = f"{dataset}: {task} ({split_label(split, sub)}"
        title += ", pretrained)" if pre != "none" else ")"
        add("learning_curve", _slug("learning_curve", dataset, task, split, pre), title,
            "Balanced accuracy against training samples, one LOESS curve (95% band) per model "
            f"(with fewer than {MIN_LOESS_SIZES} training sizes, or where LOESS would leave the per-size "
            "means' 95% intervals, a line through the per-size means, as the panel notes); "
            "panels by signal removal; dotted line: majority-class baseline.",
            learning_curve_figure, sub)

    for (dataset, split, pre), sub in df[df["n_classes"] == 2].groupby(
            ["dataset", "split", "pretraining"], sort=True):
        if sub["task"].nunique() >= 2:
            title = f"{dataset}: binary tasks ({split_label(split, sub)}"
            title += ", pretrained)" if pre != "none" else ")"
            add("binary_tasks", _slug("binary_tasks", dataset, split, pre), title,
                "One pair of panels per binary task (Fig 2 style): before | after signal removal.",
                binary_tasks_figure, sub)

    sim = df[df["dataset"].map(lambda d: is_simulated(d, summary)).astype(bool)]
    for (split, pre), sub in sim.groupby(["split", "pretraining"], sort=True):
        title = f"Simulated data ({split_label(split, sub)})"
        add("simulated", _slug("simulated", split, pre), title,
            "Simulated datasets (Fig 4 style); dotted line: majority-class predictor "
            "(balanced accuracy 1/n_classes).", simulated_figure, sub)

    for (dataset, task, pre), sub in df.groupby(["dataset", "task", "pretraining"], sort=True):
        if {"study", "sample"} <= set(sub["split"]):
            add("split_comparison", _slug("split_comparison", dataset, task, pre),
                f"{dataset}: {task}: study-wise vs sample-wise split",
                "S2 style: the same task with study-wise (top) and sample-wise (bottom) "
                "cross-validation; sample-wise splitting can leak study effects.",
                split_comparison_figure, sub)

    for (dataset, task, split), sub in df.groupby(["dataset", "task", "split"], sort=True):
        if {"none", "pretrained"} <= set(sub["pretraining"]):
            add("pretraining_comparison", _slug("pretraining_comparison", dataset, task, split),
                f"{dataset}: {task}: with and without pretraining",
                "S4 style: models trained from scratch (top) and pretrained then fine-tuned "
                "(bottom).", pretraining_comparison_figure, sub)

    from linsig.stats import cross_task, group_keys

    strata = [k for k in group_keys(df) if k not in ("dataset", "task")]
    before = df[df["signal"] == "none"]
    for skeys, sub in before.groupby(strata, sort=True, dropna=False):
        result = cross_task(sub)
        if not result["available"]:
            continue
        s = result["strata"][0]
        parts = [SPLIT_LABELS.get(s["split"], s["split"] + " split")]
        parts += [p for p in (s["pretraining"] if s["pretraining"] != "none" else "", s.get("recipe", "")) if p]
        add("critical_difference", _slug("critical_difference", *skeys),
            f"Models ranked across {s['n_tasks']} tasks ({', '.join(parts)})",
            "Mean rank of each model's balanced accuracy before signal removal over the tasks "
            "(1 = best). Models joined by a bar are not distinguishable by the Nemenyi test at "
            "α = 0.05: their mean ranks differ by less than the critical difference CD (Demšar 2006).",
            critical_difference_figure, sub)
    return specs


def _save(fig: Figure, path: Path, fmt: str, dpi: int) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _render(job: tuple) -> dict[str, str]:
    """Build one figure and save it in every format (module level: runs in worker processes)."""
    maker, data, title, name, out_dir, formats, dpi = job
    fig = maker(data, title=title)
    files = {}
    for i, fmt in enumerate(formats):
        path = Path(out_dir) / f"{name}.{fmt}"
        _save(fig, path, fmt, dpi)
        files[fmt] = path.name
        if i == 0:  # the layout is settled: keep it instead of solving it again per format
            fig.set_layout_engine("none")
    return files


def plot_run(
    run: str | os.PathLike | pd.DataFrame,
    out_dir: str | os.PathLike | None = None,
    formats: Sequence[str] = ("png", "svg"),
    dpi: int = 110,
    jobs: int = 1,
) -> list[Path]:
    """Write every figure of a run (see :func:`figure_specs`) as ``formats`` into ``out_dir``.

    ``run`` is a run directory, a ``results.parquet`` path or a results DataFrame; ``out_dir``
    defaults to ``RUN/figures`` (required for a DataFrame). Also writes ``out_dir/index.json``
    (figure names, kinds, titles, captions, files) that :func:`linsig.report.write_report`
    reads. ``jobs > 1`` draws figures in that many worker processes (matplotlib's cost is per
    figure, ~0.3-0.6 s per figure and format on one core). Returns the image paths written.
    """
    df = load_results(run)
    summary = None if isinstance(run, pd.DataFrame) else load_summary(run)
    results_hash = None if isinstance(run, pd.DataFrame) else file_sha256(results_path(run))
    if out_dir is None:
        if isinstance(run, pd.DataFrame):
            raise ValueError("out_dir is required when plotting a DataFrame")
        base = Path(run)
        out_dir = (base if base.is_dir() else base.parent) / "figures"
    out_dir = Path(out_dir)
    formats = [f.strip().lower().lstrip(".") for f in formats if f.strip()]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise LinsigInputError(f"unknown figure format(s) {', '.join(bad)} (use png, svg, pdf)")
    out_dir.mkdir(parents=True, exist_ok=True)
    n_skipped = len(df) - len(usable_rows(df))
    if n_skipped:
        log.info("leaving out %d skipped/NaN rows of %d", n_skipped, len(df))
    specs = figure_specs(df, summary)
    if not specs:
        log.warning("no usable (status ok) rows: no figures to draw")
    jobs_args = [(s["maker"], s["data"], s["title"], s["name"], str(out_dir), tuple(formats), dpi)
                 for s in specs]
    jobs = min(max(int(jobs or 1), 1), max(len(specs), 1))
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_render, jobs_args))
    else:
        results = [_render(a) for a in jobs_args]
    written: list[Path] = []
    index = []
    for spec, files in zip(specs, results):
        written += [out_dir / f for f in files.values()]
        index.append({k: spec[k] for k in ("name", "kind", "title", "caption")} | {"files": files})
    # the index names the results it was drawn from, so that a report never shows stale figures
    atomic_write_bytes(out_dir / FIGURE_INDEX,
                       json.dumps({RESULTS_HASH: results_hash, "figures": index}, indent=1).encode())
    return written


# --------------------------------------------------------------------------------------------
# Synthetic results (tests, benchmarks, docs)
# --------------------------------------------------------------------------------------------

def synthetic_results(
    levels: dict | None = None,
    seeds: int = 3,
    folds: int = 5,
    fractions: Sequence[float] | int = 10,
    n_samples: int = 1000,
    noise: float = 0.02,
    cluster_sd: float = 0.01,
    learning: float = 0.3,
    split: str = "study",
    pretraining: str = "none",
    seed: int = 0,
) -> pd.DataFrame:
    """A results table with known means, in the ``results.parquet`` schema.

    ``levels`` maps ``(dataset, task, n_classes)`` to ``{signal: {model: level}}``: the
    balanced accuracy a model reaches with all the training data. At fraction ``f`` the expected
    value is ``level - learning * (level - chance) * (1 - f)`` (``learning=0``: flat curves whose
    mean is exactly ``level``). Noise: a per-(seed, fold) effect shared by all models of a
    task and signal (sd ``cluster_sd``) plus per-row noise (sd ``noise``); values are clipped to
    [0, 1].
    """
    rng = np.random.default_rng(seed)
    if levels is None:
        levels = {("sim", "label", 2): {
            "none": {"logreg": 0.9, "svm": 0.89, "mlp3": 0.92, "mlp5": 0.93},
            "removed": {"logreg": 0.5, "svm": 0.5, "mlp3": 0.75, "mlp5": 0.78}}}
    if isinstance(fractions, int):
        fractions = np.round(np.linspace(0.1, 1.0, fractions), 4)
    fractions = np.asarray(fractions, dtype=float)
    frames = []
    for (dataset, task, n_classes), by_signal in levels.items():
        chance = 1.0 / n_classes
        classes = "|".join(f"c{i}" for i in range(n_classes))
        for signal, by_model in by_signal.items():
            models = list(by_model)
            s, f, fr, m = np.meshgrid(np.arange(seeds), np.arange(folds), fractions,
                                      np.arange(len(models)), indexing="ij")
            s, f, fr, m = s.ravel(), f.ravel(), fr.ravel(), m.ravel()
            lv = np.array([by_model[k] for k in models])[m]
            mean = lv - learning * (lv - chance) * (1 - fr)
            cluster = rng.normal(0, cluster_sd, size=(seeds, folds))[s, f]
            ba = np.clip(mean + cluster + rng.normal(0, noise, size=mean.size), 0, 1)
            fold_train = n_samples * (folds - 1) / folds * (1 + 0.05 * (f - (folds - 1) / 2) / folds)
            n_train = np.maximum(np.round(fr * fold_train), 1).astype(int)
            frames.append(pd.DataFrame({
                "dataset": dataset, "task": task, "model": np.array(models)[m],
                "seed": s, "fold": f, "split": split, "signal": signal,
                "pretraining": pretraining, "train_fraction": fr, "n_train": n_train,
                "n_val": n_samples // folds, "n_train_groups": n_train,
                "n_val_groups": n_samples // folds, "n_classes": n_classes, "classes": classes,
                "balanced_accuracy": ba,
                "accuracy": ba, "chance_balanced_accuracy": chance, "majority_accuracy": chance,
                "status": "ok", "skip_reason": "",
            }))
    return pd.concat(frames, ignore_index=True)
