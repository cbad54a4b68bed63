"""The report's first screen: one line per task answering both questions, and one forest plot.

A reader wants the answer before the statistics behind it. Per analysis group (dataset, task,
split, pretraining, recipe) :func:`glance_rows` pairs the two answers of the verdict:

(a) do non-linear models beat the linear baseline? — the group's words and its best non-linear
    model's difference to the baseline with the 95% interval (signal ``none``);
(b) is there non-linear signal after removal? — the group's words and its best non-linear
    model's excess over chance with the 95% interval (signal ``removed``).

:func:`overview_figure` draws the same numbers for every non-linear model as a forest plot:
left, the difference to the linear baseline; right, the excess over chance after removal; each
a point with its 95% interval, a line at 0 and the region of practical equivalence shaded. Both
read the dicts of :func:`linsig.stats.compare_models` and :func:`linsig.stats.nonlinear_signal_test`
and compute nothing new.
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
from matplotlib.figure import Figure

from linsig.plots import model_colors, model_order

KEYS = ("dataset", "task", "split", "pretraining", "recipe")


def _key(g: dict) -> tuple:
    return tuple(str(g.get(k, "")) for k in KEYS)


def _finite(x) -> bool:
    return x is not None and np.isfinite(x)


def glance_rows(comparison: dict, signal: dict) -> list[dict]:
    """One dict per analysis group, in the verdict's order: ``group`` (the group dict of either
    question), ``a`` and ``b`` (``None`` when the question was not asked of it): ``words``,
    ``model``, ``estimate``, ``ci_low``, ``ci_high`` (and ``baseline`` for (a))."""
    rows: dict[tuple, dict] = {}
    for g in comparison.get("groups", []):
        row = rows.setdefault(_key(g), {"group": g, "a": None, "b": None})
        if not g["comparisons"]:
            row["a"] = {"words": f"not compared ({g['note']})", "model": None}
            continue
        # the model that decided the group's words (e.g. the one that beats), then the largest difference
        best = max(g["comparisons"], key=lambda c: (c.get("verdict") == g["verdict"],
                                                    c["mean_diff"] if _finite(c["mean_diff"]) else -np.inf))
        row["a"] = {"words": g["verdict"], "model": best["model"], "baseline": g["baseline"],
                    "estimate": best["mean_diff"], "ci_low": best["ci_low"], "ci_high": best["ci_high"]}
    for g in signal.get("groups", []):
        row = rows.setdefault(_key(g), {"group": g, "a": None, "b": None})
        nonlinear = [m for m in g["models"] if not m["linear"]]
        if not nonlinear:
            row["b"] = {"words": g["verdict"], "model": None}
            continue
        best = max(nonlinear, key=lambda m: (bool(m.get("above_chance")), m["excess"] if _finite(m["excess"]) else -np.inf))
        row["b"] = {"words": g["verdict"], "model": best["model"], "estimate": best["excess"],
                    "ci_low": best["ci_low"], "ci_high": best["ci_high"]}
    return list(rows.values())


def _points(comparison: dict, signal: dict, name=None) -> tuple[list[str], list[tuple], list[tuple]]:
    """Row labels (one per group, by ``name(group)``) and the (row, model, estimate, low, high)
    points of each panel."""
    rows = glance_rows(comparison, signal)
    name = name or (lambda g: f"{g['dataset']} / {g['task']}")
    by_key = {_key(r["group"]): i for i, r in enumerate(rows)}
    labels, left, right = [name(r["group"]) for r in rows], [], []
    for g in comparison.get("groups", []):
        for c in g["comparisons"]:
            left.append((by_key[_key(g)], c["model"], c["mean_diff"], c["ci_low"], c["ci_high"]))
    for g in signal.get("groups", []):
        for m in g["models"]:
            if not m["linear"]:
                right.append((by_key[_key(g)], m["model"], m["excess"], m["ci_low"], m["ci_high"]))
    return labels, left, right


def overview_figure(comparison: dict, signal: dict, rope: float = 0.01, metric_name: str = "balanced accuracy",
                    name=None) -> Figure | None:
    """The forest plot of the first screen (rows labelled by ``name(group)``); ``None`` when
    neither question has a number."""
    labels, left, right = _points(comparison, signal, name)
    if not left and not right:
        return None
    models = model_order({p[1] for p in left + right})
    colors = model_colors(models)
    n_rows = len(labels)
    fig = Figure(figsize=(9.0, 1.3 + 0.42 * n_rows * max(1, min(len(models), 3)) ** 0.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    panels = [(axes[0], left, f"(a) Non-linear − linear baseline\n{metric_name}, before removal"),
              (axes[1], right, f"(b) Excess over chance\n{metric_name}, after linear signal removal")]
    offsets = {m: (i - (len(models) - 1) / 2) * (0.6 / max(len(models), 1)) for i, m in enumerate(models)}
    for ax, points, title in panels:
        ax.axvspan(-rope, rope, color="#dddddd", alpha=0.6, lw=0, gid="rope")
        ax.axvline(0, color="black", lw=0.9)
        for row, model, est, lo, hi in points:
            if not _finite(est):
                continue
            y = row + offsets[model]
            if _finite(lo) and _finite(hi):
                ax.plot([lo, hi], [y, y], color=colors[model], lw=1.8, gid=f"interval:{model}:{row}")
            ax.plot([est], [y], "o", color=colors[model], ms=5, label=model, gid=f"estimate:{model}:{row}")
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
        if not points:
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="grey")
    # long task names wrap: the panels keep their width on a narrow page
    axes[0].set_yticks(range(n_rows), [textwrap.fill(lab, 34) for lab in labels], fontsize=8)
    axes[0].set_ylim(n_rows - 0.5, -0.5)
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend([handles[m] for m in models if m in handles], [m for m in models if m in handles],
                   loc="outside lower center", ncols=min(len(handles), 6), fontsize=8, frameon=False)
    return fig


def overview_png(comparison: dict, signal: dict, rope: float = 0.01, metric_name: str = "balanced accuracy",
                 name=None, dpi: int = 110) -> bytes | None:
    """:func:`overview_figure` as PNG bytes (``None`` when there is nothing to draw)."""
    fig = overview_figure(comparison, signal, rope, metric_name, name)
    if fig is None:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
