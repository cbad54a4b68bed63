"""A self-contained HTML report of a linsig run, and the statistics behind its verdict.

The report answers two questions (Heil, Crawford & Greene 2023):

(a) **Do the non-linear models beat the linear baseline?** :func:`compare_models`.
    Rows with ``signal == "none"``. The linear baseline of a task is the linear model
    (``logreg`` or ``svm``) with the higher mean balanced accuracy over the task; every other
    model that is not linear (``mlp3``, ``mlp5``, ...) is compared with it on the units both
    were scored on: the same ``(seed, fold, train_fraction)``. Pairs that share a ``(seed,
    fold)`` share a validation fold and training subsamples and are therefore correlated, so
    the paired differences are first averaged within each ``(seed, fold)`` cluster, and the
    95% interval is the t-interval over the cluster means (``G`` clusters, ``G - 1`` degrees
    of freedom). The point estimate is the mean of the cluster means.
    Words, with practical margin ``margin`` (default 0.01 balanced accuracy):

    * ``"non-linear models beat the linear baseline"``: interval above 0 and mean > margin;
    * ``"linear baseline beats the non-linear models"``: interval below 0 and mean < -margin;
    * ``"no clear difference"`` otherwise (or with fewer than two clusters).

    Per task the verdict follows the best non-linear model (highest mean difference): it wins
    if that model wins; the linear baseline wins if every non-linear model loses.

(b) **Is there predictive non-linear signal?** :func:`nonlinear_signal_test`.
    Rows with ``signal == "removed"`` (linear signal removed by limma from train and validation
    sets separately). For each model, the excess ``balanced_accuracy - chance_balanced_accuracy``
    (chance = the majority-class predictor's balanced accuracy, 1/(classes in the validation fold)) is averaged per ``(seed, fold)`` over
    all training sizes; a one-sided one-sample t-test over the cluster means tests excess > 0
    (p-value), with a two-sided 95% t-interval for the mean excess. A model is *above chance*
    when p < 0.05 and mean excess > margin, where p is Holm-adjusted over the task's non-linear
    models (one claim, several models tested) and raw for the linear models (their check that
    the removal worked errs on the side of flagging leftover signal). Verdict ``"non-linear signal present"`` when at
    least one non-linear model is above chance, ``"no non-linear signal detected"`` otherwise.
    The linear models must fall to chance (that shows the removal worked); if one stays above
    it, the verdict is ``"inconclusive: linear signal was left after removal"`` whatever the
    non-linear models do. Without any non-linear model the verdict is ``"not tested: no
    non-linear model was run"``.

Both are computed separately for every ``(dataset, task, split, pretraining)``; the one-line
answers summarise the main analysis (study-wise split and no pretraining when present). Skipped rows
(``status != "ok"``) are never used but are counted in the report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from linsig import __version__
from linsig.confounding import confounding_html  # the class × group section (its own module)
from linsig.errors import LinsigInputError
from linsig.outputs import atomic_write_bytes, confined, file_sha256, refuse_overwriting
from linsig.plots import (
    FIGURE_INDEX,
    LINEAR_MODELS,
    load_results,
    load_summary,
    model_order,
    plot_run,
    signal_label,
    signal_order,
    usable_rows,
)
from linsig.results import RESULTS_FILE, RESULTS_HASH, SUMMARY_FILE

MARGIN = 0.01
ALPHA = 0.05
GROUP_KEYS = ["dataset", "task", "split", "pretraining"]
CLUSTER_KEYS = ["seed", "fold"]

BEAT = "non-linear models beat the linear baseline"
LOSE = "linear baseline beats the non-linear models"
TIE = "no clear difference"
SIGNAL = "non-linear signal present"
NO_SIGNAL = "no non-linear signal detected"
INCONCLUSIVE = "inconclusive: linear signal was left after removal"
NOT_TESTED = "not tested: no non-linear model was run"
NOT_RUN = ("could not be answered: the run has no rows with signal 'removed'; run again with "
           "`--signal none,removed` to remove the linear signal and test for non-linear signal")


def is_linear(model: str) -> bool:
    return model in LINEAR_MODELS


def _t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of ``values`` (NaN interval with fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = values.size
    if n == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if n < 2:
        return mean, np.nan, np.nan
    se = float(values.std(ddof=1)) / np.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return mean, mean - half, mean + half


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _one_sided_p(values: np.ndarray) -> float:
    """p-value of a one-sided one-sample t-test of mean(values) > 0."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = values.size
    if n < 2:
        return np.nan
    mean, sd = values.mean(), values.std(ddof=1)
    if sd == 0 or not np.isfinite(sd):
        return 0.0 if mean > 0 else 1.0
    t = mean / (sd / np.sqrt(n))
    return float(stats.t.sf(t, n - 1))


def _groups(df: pd.DataFrame):
    for key, sub in df.groupby(GROUP_KEYS, sort=True):
        yield dict(zip(GROUP_KEYS, key)), sub


def _words(mean: float, lo: float, hi: float, margin: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return TIE
    if lo > 0 and mean > margin:
        return BEAT
    if hi < 0 and mean < -margin:
        return LOSE
    return TIE


# --------------------------------------------------------------------------------------------
# (a) non-linear vs linear
# --------------------------------------------------------------------------------------------

def compare_models(df: pd.DataFrame, margin: float = MARGIN, signal: str = "none") -> dict:
    """Paired comparison of each non-linear model with the best linear model, per task.

    Returns ``{"available": bool, "message": str, "margin": float, "groups": [...]}``; each
    group has the ``dataset``/``task``/``split``/``pretraining`` keys, ``baseline`` (the best
    linear model), ``verdict`` (words) and ``comparisons``: one dict per non-linear model with
    ``model``, ``mean_diff``, ``ci_low``, ``ci_high``, ``n_units`` (paired (seed, fold,
    train_fraction) units), ``n_clusters`` ((seed, fold) clusters), ``mean_model``,
    ``mean_baseline``, ``verdict``.
    """
    df = load_results(df)
    data = usable_rows(df)
    data = data[data["signal"] == signal]
    out = {"available": False, "message": "", "margin": margin, "signal": signal, "groups": []}
    if data.empty:
        out["message"] = f"no usable rows with signal '{signal}'"
        return out
    unit = CLUSTER_KEYS + ["train_fraction"]
    for keys, sub in _groups(data):
        models = model_order(sub["model"].unique())
        linear = [m for m in models if is_linear(m)]
        nonlinear = [m for m in models if not is_linear(m)]
        group = dict(keys, baseline=None, comparisons=[], verdict=TIE, note="")
        if not linear or not nonlinear:
            group["note"] = ("no linear model (logreg/svm) to compare with" if not linear
                             else "no non-linear model to compare")
            out["groups"].append(group)
            continue
        wide = sub.pivot_table(index=unit, columns="model", values="balanced_accuracy",
                               aggfunc="mean")
        baseline = max(linear, key=lambda m: (wide[m].mean(), -linear.index(m)))
        group["baseline"] = baseline
        for model in nonlinear:
            pair = wide[[model, baseline]].dropna()
            diff = (pair[model] - pair[baseline]).rename("diff").reset_index()
            clusters = diff.groupby(CLUSTER_KEYS)["diff"].mean().to_numpy()
            mean, lo, hi = _t_interval(clusters)
            group["comparisons"].append({
                "model": model, "baseline": baseline, "mean_diff": mean, "ci_low": lo,
                "ci_high": hi, "n_units": int(len(diff)), "n_clusters": int(clusters.size),
                "mean_model": float(pair[model].mean()) if len(pair) else np.nan,
                "mean_baseline": float(pair[baseline].mean()) if len(pair) else np.nan,
                "verdict": _words(mean, lo, hi, margin),
            })
        comps = [c for c in group["comparisons"] if np.isfinite(c["mean_diff"])]
        if comps:
            best = max(comps, key=lambda c: c["mean_diff"])
            if best["verdict"] == BEAT:
                group["verdict"] = BEAT
            elif all(c["verdict"] == LOSE for c in comps):
                group["verdict"] = LOSE
        out["groups"].append(group)
    out["available"] = any(g["comparisons"] for g in out["groups"])
    if not out["available"]:
        out["message"] = "no task has both a linear (logreg/svm) and a non-linear model"
    return out


# --------------------------------------------------------------------------------------------
# (b) non-linear signal after removal
# --------------------------------------------------------------------------------------------

def nonlinear_signal_test(df: pd.DataFrame, margin: float = MARGIN, alpha: float = ALPHA,
                          signal: str = "removed") -> dict:
    """Is each model above the majority-class baseline after linear signal removal?

    Returns ``{"available": bool, "message": str, "groups": [...]}``; each group has the
    dataset/task/split/pretraining keys, ``verdict`` (words), ``linear_at_chance`` (True when
    every linear model present is *not* above chance, None without linear models) and
    ``models``: per model ``model``, ``linear``, ``chance``, ``mean``, ``excess`` (mean minus
    chance), ``ci_low``/``ci_high`` (95% t-interval of the excess), ``p_value`` (one-sided,
    excess > 0), ``p_adjusted`` (Holm over the non-linear models; raw for linear ones),
    ``n_clusters``, ``above_chance``.
    """
    df = load_results(df)
    data = usable_rows(df)
    data = data[data["signal"] == signal]
    out = {"available": not data.empty, "message": "", "margin": margin, "alpha": alpha,
           "signal": signal, "groups": []}
    if data.empty:
        out["message"] = NOT_RUN if len(usable_rows(df)) else "could not be answered: no usable rows"
        return out
    data = data.assign(excess=data["balanced_accuracy"] - data["chance_balanced_accuracy"])
    for keys, sub in _groups(data):
        group = dict(keys, models=[], verdict=NO_SIGNAL, linear_at_chance=None)
        for model in model_order(sub["model"].unique()):
            rows = sub[sub["model"] == model]
            clusters = rows.groupby(CLUSTER_KEYS)["excess"].mean().to_numpy()
            mean, lo, hi = _t_interval(clusters)
            group["models"].append({
                "model": model, "linear": is_linear(model),
                "chance": float(rows["chance_balanced_accuracy"].mean()),
                "mean": float(rows["balanced_accuracy"].mean()), "excess": mean,
                "ci_low": lo, "ci_high": hi, "p_value": _one_sided_p(clusters), "n_clusters": int(clusters.size),
            })
        lin = [m for m in group["models"] if m["linear"]]
        nl = [m for m in group["models"] if not m["linear"]]
        # "Some non-linear model is above chance" tests every non-linear model: Holm-adjust their
        # p-values so the claim keeps its 5% error rate. The linear models' check that the removal
        # worked keeps the raw p-values: there, flagging leftover signal too readily is the safe side.
        for m, p_adj in zip(nl, holm([m["p_value"] for m in nl])):
            m["p_adjusted"] = p_adj
        for m in lin:
            m["p_adjusted"] = m["p_value"]
        for m in group["models"]:
            m["above_chance"] = bool(np.isfinite(m["p_adjusted"]) and m["p_adjusted"] < alpha and m["excess"] > margin)
        if lin:
            group["linear_at_chance"] = not any(m["above_chance"] for m in lin)
        if group["linear_at_chance"] is False:  # the removal failed: no accuracy after it means anything
            group["verdict"] = INCONCLUSIVE
        elif not nl:
            group["verdict"] = NOT_TESTED
        elif any(m["above_chance"] for m in nl):
            group["verdict"] = SIGNAL
        out["groups"].append(group)
    return out


# --------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------

def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _group_name(g: dict) -> str:
    name = f"{g['dataset']} / {g['task']} ({g['split']}-wise split"
    return name + (f", {g['pretraining']})" if g["pretraining"] != "none" else ")")


@dataclass
class Verdict:
    """Plain-word answers to (a) and (b), with the numbers behind them."""

    comparison: dict
    signal: dict
    answer_a: str
    answer_b: str
    lines_a: list[str] = field(default_factory=list)
    lines_b: list[str] = field(default_factory=list)
    short_a: list[str] = field(default_factory=list)  # one line per task, without the numbers
    short_b: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = ["(a) Do non-linear models beat the linear baseline? " + self.answer_a + "."]
        parts += ["  - " + line for line in self.lines_a]
        parts += ["(b) Is there predictive non-linear signal? " + self.answer_b + "."]
        parts += ["  - " + line for line in self.lines_b]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text


def _primary(groups: list[dict]) -> list[dict]:
    """The groups of the main analysis: study-wise split and no pretraining when the run has
    them (sample-wise and pretrained runs are sensitivity analyses, listed but not counted)."""
    if any(g["split"] == "study" for g in groups):
        groups = [g for g in groups if g["split"] == "study"]
    if any(g["pretraining"] == "none" for g in groups):
        groups = [g for g in groups if g["pretraining"] == "none"]
    return groups


def _summarise(words: list[str], default: str) -> str:
    distinct = list(dict.fromkeys(words))
    if not distinct:
        return default
    if len(distinct) == 1:
        return distinct[0]
    counts = {w: words.count(w) for w in distinct}
    return "mixed: " + "; ".join(f"{w} in {n} task(s)" for w, n in counts.items())


def verdict(df: pd.DataFrame, margin: float = MARGIN, alpha: float = ALPHA) -> Verdict:
    """The report's verdict on a results table (see the module docstring for the rules)."""
    comp = compare_models(df, margin=margin)
    sig = nonlinear_signal_test(df, margin=margin, alpha=alpha)

    lines_a, short_a, short_b = [], [], []
    for g in comp["groups"]:
        if not g["comparisons"]:
            lines_a.append(f"{_group_name(g)}: not compared ({g['note']}).")
            short_a.append(lines_a[-1])
            continue
        short_a.append(f"{_group_name(g)}: {g['verdict']} (baseline {g['baseline']}).")
        details = ", ".join(
            f"{c['model']} − {c['baseline']} = {_fmt(c['mean_diff'])} "
            f"[95% CI {_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}; {c['n_clusters']} seed×fold "
            f"clusters]" for c in g["comparisons"])
        lines_a.append(f"{_group_name(g)}: {g['verdict']} ({details}).")
    if comp["available"]:
        answer_a = _summarise(
            [g["verdict"] for g in _primary([g for g in comp["groups"] if g["comparisons"]])], TIE)
    else:
        answer_a = f"could not be answered: {comp['message']}"

    lines_b = []
    if sig["available"]:
        for g in sig["groups"]:
            details = ", ".join(
                f"{m['model']} {m['mean']:.3f} (excess over chance {m['chance']:.3f}: "
                f"{_fmt(m['excess'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}], "
                f"one-sided p {_fmt_p(m['p_value'])}"
                f"{'' if m['linear'] or len([x for x in g['models'] if not x['linear']]) < 2 else ', Holm ' + _fmt_p(m['p_adjusted'])}"
                f"{', above chance' if m['above_chance'] else ', at chance'})"
                for m in g["models"])
            if g["linear_at_chance"] is None:
                lin = "no linear model was run, so the removal cannot be checked"
            elif g["linear_at_chance"]:
                lin = "the linear models fell to chance, so the removal worked"
            else:
                above = [m["model"] for m in g["models"] if m["linear"] and m["above_chance"]]
                lin = (f"the linear model(s) {', '.join(above)} stayed above chance, so the "
                       "removal left linear signal and the result is not conclusive")
            lines_b.append(f"{_group_name(g)}: {g['verdict']}; {lin}. After removal: {details}.")
            short_b.append(f"{_group_name(g)}: {g['verdict']}; {lin}.")
        answer_b = _summarise([g["verdict"] for g in _primary(sig["groups"])], NO_SIGNAL)
    else:
        answer_b = sig["message"]
    return Verdict(comp, sig, answer_a, answer_b, lines_a, lines_b, short_a, short_b)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

def fraction_bins(fractions: pd.Series) -> pd.Series:
    """Training-size bins: the fractions themselves when there are at most 10 distinct ones,
    else tenths ``(0, 0.1]``, ``(0.1, 0.2]``, ..., labelled by their upper edge."""
    values = fractions.astype(float).round(6)
    if values.nunique() <= 10:
        return values
    edges = np.round(np.ceil(values * 10 - 1e-9) / 10, 1)
    return edges.clip(lower=0.1)


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean balanced accuracy with a 95% t-interval per (dataset, task, split, pretraining,
    signal, model, training-size bin), over the seeds and folds in the bin.

    Columns: the keys, ``fraction`` (bin), ``n_train`` (mean training samples), ``n``, ``mean``,
    ``ci_low``, ``ci_high``.
    """
    data = usable_rows(df)
    if data.empty:
        return pd.DataFrame(columns=GROUP_KEYS + ["signal", "model", "fraction", "n_train", "n",
                                                  "mean", "ci_low", "ci_high"])
    data = data.assign(fraction=fraction_bins(data["train_fraction"]))
    keys = GROUP_KEYS + ["signal", "model", "fraction"]
    grouped = data.groupby(keys, sort=True)
    agg = grouped.agg(n_train=("n_train", "mean"), n=("balanced_accuracy", "size"),
                      mean=("balanced_accuracy", "mean"), sd=("balanced_accuracy", "std"))
    agg = agg.reset_index()
    tq = stats.t.ppf(0.975, np.maximum(agg["n"] - 1, 1))
    half = np.where(agg["n"] > 1, tq * agg["sd"] / np.sqrt(agg["n"]), np.nan)
    agg["ci_low"] = agg["mean"] - half
    agg["ci_high"] = agg["mean"] + half
    return agg.drop(columns="sd")


def task_summary(df: pd.DataFrame, summary: dict | None) -> list[dict]:
    """One dict per (dataset, task): from summary.json when present, else from the table."""
    tasks = []
    if summary and summary.get("tasks"):
        for t in summary["tasks"]:
            tasks.append({
                "dataset": t.get("dataset", ""), "task": t.get("task", ""),
                "n_samples": t.get("n_samples"), "n_groups": t.get("n_groups"),
                "group_key": t.get("group_key", ""), "label_key": t.get("label_key", ""),
                "n_genes": t.get("n_genes"), "classes": dict(t.get("classes") or {}),
            })
        return tasks
    for (dataset, task), sub in df.groupby(["dataset", "task"], sort=True):
        classes = {}
        if "classes" in sub.columns and sub["classes"].notna().any():
            classes = {c: None for c in str(sub["classes"].dropna().iloc[0]).split("|") if c}
        n = None
        if "n_val" in sub.columns:
            per = sub.groupby(["seed", "fold"])["n_val"].max()
            n_per_seed = per.groupby(level=0).sum()
            n = int(n_per_seed.max()) if len(n_per_seed) else None
        tasks.append({"dataset": dataset, "task": task, "n_samples": n, "n_groups": None,
                      "group_key": "", "label_key": "", "n_genes": None, "classes": classes,
                      "n_classes": int(sub["n_classes"].max())})
    return tasks


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.8em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.verdict{background:#f6f8fa;border-left:4px solid #4a7;padding:.6em 1em;margin:.8em 0}
.verdict.b{border-left-color:#c73}.answer{font-weight:bold;font-size:1.08em}
.muted{color:#666;font-size:.9em}figure{margin:1em 0 2em}figure img{max-width:100%;
border:1px solid #eee}figcaption{font-size:.9em;color:#444}
ul.lines li{margin:.3em 0}code{background:#f3f3f3;padding:0 .2em}
"""

# Marks the page once every image has loaded (used by the browser test and handy when
# debugging a report): body[data-images-ok] = "true" and #load-status shows the counts.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', String(ok));
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-ok', ok === imgs.length ? 'true' : 'false');
  var s = document.getElementById('load-status');
  if (s) { s.textContent = ok + ' of ' + imgs.length + ' figures loaded'; }
});
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _num(x, fmt="{:,}") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    try:
        return fmt.format(x)
    except (ValueError, TypeError):
        return _e(x)


def _tasks_html(tasks: list[dict]) -> str:
    rows = []
    for t in tasks:
        classes = t["classes"]
        if classes and any(v is not None for v in classes.values()):
            cls = ", ".join(f"{_e(k)} ({_num(v)})" for k, v in
                            sorted(classes.items(), key=lambda kv: -(kv[1] or 0)))
        else:
            cls = ", ".join(_e(k) for k in classes) or "n/a"
        n_classes = len(classes) if classes else t.get("n_classes")
        group = f"{_num(t['n_groups'])}" + (f" ({_e(t['group_key'])})" if t.get("group_key") else "")
        rows.append(
            f"<tr><td class=l>{_e(t['dataset'])}</td><td class=l>{_e(t['task'])}</td>"
            f"<td>{_num(t['n_samples'])}</td><td>{group}</td><td>{_num(t['n_genes'])}</td>"
            f"<td>{_num(n_classes)}</td><td class=l>{cls}</td></tr>")
    return ("<table><tr><th class=l>Dataset</th><th class=l>Task</th><th>Samples</th>"
            "<th>Groups</th><th>Genes</th><th>Classes</th><th class=l>Class counts</th></tr>"
            + "".join(rows) + "</table>")


def _accuracy_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>No usable rows.</p>"
    parts = []
    for keys, sub in table.groupby(GROUP_KEYS + ["signal"], sort=False):
        g = dict(zip(GROUP_KEYS + ["signal"], keys))
        fracs = sorted(sub["fraction"].unique())
        head = "".join(
            f"<th>{f:g}<br><span class=muted>n≈{sub[sub['fraction'] == f]['n_train'].mean():,.0f}"
            f"</span></th>" for f in fracs)
        rows = []
        for model in model_order(sub["model"].unique()):
            m = sub[sub["model"] == model].set_index("fraction")
            cells = []
            for f in fracs:
                if f in m.index:
                    r = m.loc[f]
                    ci = (f"<br><span class=muted>[{r['ci_low']:.3f}, {r['ci_high']:.3f}]</span>"
                          if np.isfinite(r["ci_low"]) else "")
                    cells.append(f"<td>{r['mean']:.3f}{ci}</td>")
                else:
                    cells.append("<td>–</td>")
            rows.append(f"<tr><th class=l>{_e(model)}</th>{''.join(cells)}</tr>")
        parts.append(
            f"<h3>{_e(_group_name(g))} — {_e(signal_label(g['signal']))}</h3>"
            f"<table><tr><th class=l>Model \\ training fraction</th>{head}</tr>"
            + "".join(rows) + "</table>")
    return "\n".join(parts)


def _comparison_table(comp: dict) -> str:
    rows = []
    for g in comp["groups"]:
        for c in g["comparisons"]:
            rows.append(
                f"<tr><td class=l>{_e(_group_name(g))}</td><td class=l>{_e(c['model'])}</td>"
                f"<td class=l>{_e(c['baseline'])}</td><td>{c['mean_model']:.3f}</td>"
                f"<td>{c['mean_baseline']:.3f}</td><td>{_fmt(c['mean_diff'])}</td>"
                f"<td>[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]</td><td>{c['n_units']}</td>"
                f"<td>{c['n_clusters']}</td><td class=l>{_e(c['verdict'])}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th class=l>Task</th><th class=l>Model</th><th class=l>Linear baseline"
            "</th><th>Mean BA</th><th>Baseline BA</th><th>Difference</th><th>95% CI</th>"
            "<th>Pairs</th><th>Seed×fold clusters</th><th class=l>Words</th></tr>"
            + "".join(rows) + "</table>")


def _signal_table(sig: dict) -> str:
    rows = []
    for g in sig["groups"]:
        for m in g["models"]:
            rows.append(
                f"<tr><td class=l>{_e(_group_name(g))}</td><td class=l>{_e(m['model'])}"
                f"{' (linear)' if m['linear'] else ''}</td><td>{m['mean']:.3f}</td>"
                f"<td>{m['chance']:.3f}</td><td>{_fmt(m['excess'])}</td>"
                f"<td>[{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]</td>"
                f"<td>{_fmt_p(m['p_value'])}</td><td>{_fmt_p(m['p_adjusted'])}</td><td>{m['n_clusters']}</td>"
                f"<td class=l>{'above chance' if m['above_chance'] else 'at chance'}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th class=l>Task</th><th class=l>Model</th><th>Mean BA after removal"
            "</th><th>Chance</th><th>Excess</th><th>95% CI</th><th>One-sided p</th><th>p (Holm, non-linear)</th>"
            "<th>Seed×fold clusters</th><th class=l>Result</th></tr>" + "".join(rows)
            + "</table>")


def _figures(results_path: Path, fig_dir: Path, formats=("png", "svg"), jobs: int = 1) -> list[tuple[dict, Path]]:
    """``(index entry, PNG path)`` of every figure drawn from the results at ``results_path``.

    The index of ``fig_dir`` is used only when it names these results (their SHA-256) and every
    PNG it lists is a file inside ``fig_dir``; otherwise (figures of an earlier run into the same
    folder, a missing file, a path out of the folder) the figures are drawn again.
    """
    index_path = fig_dir / FIGURE_INDEX
    results_hash = file_sha256(results_path)

    def current() -> list[tuple[dict, Path]] | None:
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(index, dict) or index.get(RESULTS_HASH) != results_hash:
            return None
        figures = index.get("figures")
        if not isinstance(figures, list):
            return None
        found = []
        for entry in figures:
            files = entry.get("files") if isinstance(entry, dict) else None
            png = confined(fig_dir, files.get("png")) if isinstance(files, dict) else None
            if png is None:
                return None
            found.append((entry, png))
        return found

    figures = current()
    if figures is None:
        formats = ("png",) + tuple(f for f in formats if f != "png")
        plot_run(results_path, fig_dir, formats=formats, jobs=jobs)
        figures = current()
        if figures is None:
            raise LinsigInputError(f"{index_path}: the figures just drawn cannot be read back")
    return figures


def render_html(df: pd.DataFrame, summary: dict | None, figures: list[tuple[dict, bytes]],
                source: str = "", margin: float = MARGIN, alpha: float = ALPHA) -> str:
    """The report page as a string; ``figures`` are ``(index entry, PNG bytes)`` pairs."""
    v = verdict(df, margin=margin, alpha=alpha)
    total = len(df)
    ok = len(usable_rows(df))
    skipped = total - ok
    reasons = ""
    if skipped and "skip_reason" in df.columns:
        counts = df.loc[~df.index.isin(usable_rows(df).index), "skip_reason"].replace(
            "", "unspecified").value_counts()
        reasons = " (" + "; ".join(f"{_e(r)}: {n}" for r, n in counts.items()) + ")"
    version = (summary or {}).get("linsig_version", "an unknown version (no summary.json)")
    config = (summary or {}).get("config")
    config_html = ""
    if config:
        config_html = ("<details><summary>Run options</summary><pre>"
                       + _e(json.dumps(config, indent=1, default=str)) + "</pre></details>")
    signals = ", ".join(signal_order(df["signal"].unique()))
    models = ", ".join(model_order(df["model"].unique()))

    fig_html = []
    for entry, png in figures:
        data = base64.b64encode(png).decode("ascii")
        fig_html.append(
            f"<figure id=\"fig-{_e(entry['name'])}\"><img alt=\"{_e(entry['title'])}\" "
            f"src=\"data:image/png;base64,{data}\"><figcaption><b>{_e(entry['title'])}.</b> "
            f"{_e(entry.get('caption', ''))}</figcaption></figure>")

    lines_a = "".join(f"<li>{_e(x)}</li>" for x in v.short_a)
    lines_b = "".join(f"<li>{_e(x)}</li>" for x in v.short_b)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>linsig report{(' — ' + _e(source)) if source else ''}</title>
<style>{_CSS}</style></head>
<body data-images-ok="pending">
<h1>linsig report</h1>
<p class=muted>Run {_e(source)} · results written by linsig {_e(version)} · report by linsig
{_e(__version__)} on {now} · <span id="load-status">figures not yet loaded</span></p>

<h2>Verdict</h2>
<div class="verdict a" id="verdict-a"><div class=answer>(a) Do the non-linear models beat the
linear baseline? <span class=words>{_e(v.answer_a)}</span>.</div><ul class=lines>{lines_a}</ul>
{_comparison_table(v.comparison)}
<p class=muted>Paired on (seed, fold, training fraction) with signal <code>none</code>; baseline =
the better of logreg/svm on the task. Differences are averaged within each (seed, fold) and the
95% CI is a t-interval over those cluster means. "Beat" needs the CI above 0 and a mean
difference above {margin:g}; "loses" the CI below 0 and a mean below −{margin:g}.</p></div>
<div class="verdict b" id="verdict-b"><div class=answer>(b) Is there predictive non-linear
signal? <span class=words>{_e(v.answer_b)}</span>.</div><ul class=lines>{lines_b}</ul>
{_signal_table(v.signal) if v.signal['available'] else ''}
<p class=muted>After removing the linear signal (signal <code>removed</code>), each model's
balanced accuracy minus chance (the majority-class predictor: 1/classes in the validation fold)
is averaged per (seed, fold); one-sided t-test of excess &gt; 0 over those means, with a 95%
t-interval. "Above chance" needs p &lt; {alpha:g} and an excess above {margin:g}; the p-values of
the non-linear models of a task are Holm-adjusted (several models are tested for one claim). Non-linear signal is present when a
non-linear model is above chance; linear models should fall to chance (a check that the removal
worked).</p></div>

<h2>Data and tasks</h2>
{_tasks_html(task_summary(df, summary))}
<p>{total:,} result rows: {ok:,} used, {skipped:,} skipped{reasons}. Models: {_e(models)}.
Signal modes: {_e(signals)}.</p>
{config_html}
{confounding_html((summary or {}).get("tasks"))}

<h2>Figures</h2>
<p class=muted>x: training samples; y: balanced accuracy; lines: LOESS (local-linear, span
0.75) fit per model with a 95% confidence band; points: single (seed, fold, size) results;
dotted line: majority-class baseline (1/n_classes).</p>
{''.join(fig_html) or '<p>No figures (no usable rows).</p>'}

<h2>Balanced accuracy by training size</h2>
<p class=muted>Mean over seeds and folds, with a 95% t-interval, per model and training-fraction
bin (column header: fraction, and the mean number of training samples).</p>
{_accuracy_html(accuracy_table(df))}
<script>{_SCRIPT}</script>
</body></html>
"""


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 figures_dir: str | os.PathLike | None = None, margin: float = MARGIN,
                 alpha: float = ALPHA, figure_formats=("png", "svg"), jobs: int = 1) -> Path:
    """Write ``report.html`` (default ``RUN_DIR/report.html``) for a run directory.

    Figures come from ``figures_dir`` (default ``RUN_DIR/figures``) and are made with
    :func:`linsig.plots.plot_run` (in ``figure_formats``, PNG always, ``jobs`` processes) unless
    its ``index.json`` was drawn from these very results (same SHA-256) and lists only PNGs inside
    that folder. The page embeds them as base64 PNG, needs no network, and records the results'
    SHA-256 in ``<meta name="linsig-results-sha256">``. Returns the path written. Raises
    :class:`LinsigInputError` when the results table is missing or empty, or when ``out`` is not
    an ``.html`` path or is one of the report's inputs.
    """
    run_dir = Path(run_dir)
    results_path = run_dir if run_dir.suffix == ".parquet" else run_dir / RESULTS_FILE
    run_dir = results_path.parent
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise LinsigInputError(f"{out}: the report is an HTML page; give a path ending in .html")
    refuse_overwriting(out, [results_path, run_dir / SUMMARY_FILE], "report")
    df = load_results(results_path)
    summary = load_summary(run_dir)
    fig_dir = Path(figures_dir) if figures_dir is not None else run_dir / "figures"
    figures = [(entry, png.read_bytes()) for entry, png in _figures(results_path, fig_dir, figure_formats, jobs)]
    page = render_html(df, summary, figures, source=str(run_dir), margin=margin, alpha=alpha)
    atomic_write_bytes(out, _stamp(page, file_sha256(results_path)).encode("utf-8"))
    return out


def _stamp(page: str, results_hash: str) -> str:
    """Record in the page's head which results (SHA-256 of ``results.parquet``) it shows."""
    meta = f'<meta name="linsig-results-sha256" content="{results_hash}">'
    head = re.search(r"<head[^>]*>", page)
    if head is None:
        raise ValueError("the report page has no <head>")
    return page[:head.end()] + meta + page[head.end():]


__all__ = [
    "BEAT", "LOSE", "TIE", "SIGNAL", "NO_SIGNAL", "INCONCLUSIVE", "NOT_TESTED", "Verdict", "accuracy_table", "compare_models",
    "fraction_bins", "nonlinear_signal_test", "render_html", "task_summary", "verdict",
    "write_report",
]
