"""A self-contained HTML report of a linsig run, with the verdict and the statistics behind it.

The report answers two questions (Heil, Crawford & Greene 2023) per analysis group (dataset,
task, split, pretraining, and recipe when the table has it):

(a) **Do the non-linear models beat the linear baseline?** Rows with ``signal == "none"``; each
    non-linear model against the better of logreg/svm, with the corrected repeated k-fold
    t-test and the Bayesian correlated t-test (P(non-linear better), P(practically equivalent),
    P(linear better) with a ROPE of ±0.01 balanced accuracy); "no clear difference" also states
    the smallest difference the run could have detected. Leave-one-study-out runs add the
    analysis per held-out study.
(b) **Is there predictive non-linear signal?** Rows with ``signal == "removed"``; each model's
    excess over chance, tested with the corrected t-test, or with the permutation test when the
    run holds permutation rows (``--permutations N``).

Runs with several tasks add the cross-task view: mean ranks, Wilcoxon signed-rank and sign
tests over tasks, and a critical-difference diagram. All statistics come from
:mod:`linsig.stats` (methods, assumptions and references are documented there and in
docs/report.md); this module only words and renders them, and writes them as
``verdict.parquet`` beside ``results.parquet``. The one-line answers summarise the main
analysis (study-wise split and no pretraining when present). Skipped rows (``status != "ok"``)
are never used but are counted in the report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from linsig import __version__
from linsig.confounding import confounding_html  # the class × group section (its own module)
from linsig.diagnostics import MARGIN as UNDERTRAINING_MARGIN
from linsig.diagnostics import undertrained_sentences
from linsig.errors import LinsigInputError
from linsig.outputs import confined, file_sha256, refuse_overwriting, write_set
from linsig.metrics import METRIC_NAMES, verdict_view
from linsig.models import is_linear, model_order
from linsig.overview import glance_rows, overview_png
from linsig.plots import FIGURE_INDEX, plot_run, signal_label, signal_order
from linsig.results import (
    RESULTS_FILE,
    RESULTS_HASH,
    SUMMARY_FILE,
    incomplete_message,
    load_results,
    load_summary,
    permutation_rows,
    usable_rows,
)
from linsig.splits import is_grouped
from linsig.validation import check_bound
from linsig.wording import UNGROUPED, group_words, ungrouped_tasks
from linsig.stats import (  # noqa: F401 - re-exported: the verdict's words and tests live in stats
    ALPHA,
    BEAT,
    INCONCLUSIVE,
    LOSE,
    NO_SIGNAL,
    NOT_RUN,
    NOT_TESTED,
    ROPE,
    SIGNAL,
    TIE,
    compare_models,
    cross_task,
    group_keys,
    holm,
    nonlinear_signal_test,
    per_study,
    verdict_table,
)

VERDICT_FILE = "verdict.parquet"


# --------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------

def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _fmt_prob(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    # 0.995 would print as 1.00: a probability is never "certain" from a finite run
    return "> 0.99" if p > 0.99 else ("< 0.01" if p < 0.01 else f"{p:.2f}")


def _group_name(g: dict) -> str:
    # "ungrouped": set by verdict() on tasks whose groups were the samples (no group column)
    name = f"{g['dataset']} / {g['task']} ({UNGROUPED if g.get('ungrouped') else g['split'] + '-wise split'}"
    if g.get("recipe"):
        name += f", {g['recipe']} recipe"
    return name + (f", {g['pretraining']})" if g["pretraining"] != "none" else ")")


def _stratum_name(s: dict) -> str:
    parts = [f"{s['split']}-wise split"]
    if s.get("recipe"):
        parts.append(f"{s['recipe']} recipe")
    if s["pretraining"] != "none":
        parts.append(s["pretraining"])
    return ", ".join(parts)


def _likeliest(c: dict) -> str:
    """The most probable of the three Bayesian outcomes of a comparison, in words."""
    options = [(c["prob_nonlinear_better"], f"{c['model']} better"),
               (c["prob_equivalent"], "practically equivalent"),
               (c["prob_linear_better"], f"{c['baseline']} better")]
    prob, words = max(options, key=lambda o: o[0] if np.isfinite(o[0]) else -1)
    return f"{words}, probability {_fmt_prob(prob)}" if np.isfinite(prob) else "no posterior (one split)"


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
    studies: dict = field(default_factory=dict)  # (a) per held-out study (leave-one-study-out runs)
    across: dict = field(default_factory=dict)  # the cross-task view
    lines_across: list[str] = field(default_factory=list)
    lines_studies: list[str] = field(default_factory=list)
    undertrained: list[str] = field(default_factory=list)  # models clearly below the converged logreg
    metric: str = "balanced_accuracy"  # what the tests scored (--metric)

    @property
    def table(self) -> pd.DataFrame:
        """The statistics as one tidy table (what ``verdict.parquet`` holds)."""
        return verdict_table(self.comparison, self.signal, self.across, self.studies)

    @property
    def text(self) -> str:
        parts = ["(a) Do non-linear models beat the linear baseline? " + self.answer_a + "."]
        parts += ["  - " + line for line in self.lines_a + self.lines_studies]
        parts += ["(b) Is there predictive non-linear signal? " + self.answer_b + "."]
        parts += ["  - " + line for line in self.lines_b]
        if self.lines_across:
            parts += ["Across tasks:"] + ["  - " + line for line in self.lines_across]
        if self.undertrained:
            parts += ["Under-training check:"] + ["  - " + line for line in self.undertrained]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text


def _primary(groups: list[dict]) -> list[dict]:
    """The groups of the main analysis: study-wise split and no pretraining when the run has
    them (sample-wise and pretrained runs are sensitivity analyses, listed but not counted)."""
    if any(is_grouped(g["split"]) for g in groups):
        groups = [g for g in groups if is_grouped(g["split"])]
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


def _lines_a(comp: dict) -> tuple[list[str], list[str]]:
    lines, short = [], []
    for g in comp["groups"]:
        if not g["comparisons"]:
            lines.append(f"{_group_name(g)}: not compared ({g['note']}).")
            short.append(lines[-1])
            continue
        best = max(g["comparisons"], key=lambda c: c["mean_diff"] if np.isfinite(c["mean_diff"]) else -np.inf)
        detect = ""
        if g["verdict"] == TIE and np.isfinite(best["detectable"]):
            detect = (f"; the run could have detected a difference of about ±{best['detectable']:.3f} "
                      f"(80% power)")
        short.append(f"{_group_name(g)}: {g['verdict']} (baseline {g['baseline']}; {best['model']}: "
                     f"{_likeliest(best)}{detect}).")
        details = "; ".join(
            f"{c['model']} − {c['baseline']} = {_fmt(c['mean_diff'])} [95% CI {_fmt(c['ci_low'])}, "
            f"{_fmt(c['ci_high'])}], corrected p {_fmt_p(c['p_value'])}"
            + (f" (Holm {_fmt_p(c['p_adjusted'])})" if len(g["comparisons"]) > 1 else "")
            + f", P({c['model']} better) {_fmt_prob(c['prob_nonlinear_better'])}, P(practically "
              f"equivalent) {_fmt_prob(c['prob_equivalent'])}, P({c['baseline']} better) "
              f"{_fmt_prob(c['prob_linear_better'])}, detectable ±{c['detectable']:.3f}, "
              f"{c['n_clusters']} seed×fold splits"
            for c in g["comparisons"])
        lines.append(f"{_group_name(g)}: {g['verdict']} ({details}).")
    return lines, short


def _lines_b(sig: dict) -> tuple[list[str], list[str]]:
    lines, short = [], []
    for g in sig["groups"]:
        n_nl = len([x for x in g["models"] if not x["linear"]])

        def p_words(m):
            if m["test"] == "permutation":
                text = f"permutation p {_fmt_p(m['p_permutation'])} ({m['n_permutations']} permutations)"
            else:
                text = f"corrected one-sided p {_fmt_p(m['p_value'])}"
            if not m["linear"] and n_nl > 1:
                text += f", Holm {_fmt_p(m['p_adjusted'])}"
            return text

        details = ", ".join(
            f"{m['model']} {m['mean']:.3f} (excess over chance {m['chance']:.3f}: {_fmt(m['excess'])} "
            f"[{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}], {p_words(m)}, P(excess > {sig['rope']:g}) "
            f"{_fmt_prob(m['prob_above'])}{', above chance' if m['above_chance'] else ', at chance'})"
            for m in g["models"])
        if g["linear_at_chance"] is None:
            lin = "no linear model was run, so the removal cannot be checked"
        elif g["linear_at_chance"]:
            lin = "the linear models fell to chance, so the removal worked"
        else:
            above = [m["model"] for m in g["models"] if m["linear"] and m["above_chance"]]
            lin = (f"the linear model(s) {', '.join(above)} stayed above chance, so the "
                   "removal left linear signal and the result is not conclusive")
        nl = [m for m in g["models"] if not m["linear"]]
        extra = ""
        if nl and g["verdict"] == SIGNAL:
            best = max(nl, key=lambda m: m["excess"])
            extra = (f"; {best['model']} is above chance by {_fmt(best['excess'])}, "
                     f"P(excess > {sig['rope']:g}) {_fmt_prob(best['prob_above'])}")
        elif nl and g["verdict"] == NO_SIGNAL:
            smallest = min(m["detectable"] for m in nl)
            if np.isfinite(smallest):
                extra = f"; the run could have detected an excess of about {smallest:.3f} (80% power)"
        lines.append(f"{_group_name(g)}: {g['verdict']}; {lin}. After removal: {details}.")
        short.append(f"{_group_name(g)}: {g['verdict']}; {lin}{extra}.")
    return lines, short


def _lines_studies(studies: dict) -> list[str]:
    lines = []
    for g in studies.get("groups", []):
        details = "; ".join(
            f"{c['model']} better than {g['baseline']} in {c['wins']} of {c['n_studies']} held-out studies "
            f"(worse in {c['losses']}), median difference {_fmt(c['median_diff'])}, sign test p "
            f"{_fmt_p(c['p_sign'])}, Wilcoxon p {_fmt_p(c['p_wilcoxon'])}"
            for c in g["comparisons"])
        lines.append(f"{_group_name(g)}, per held-out study: {details}.")
    return lines


def _lines_across(across: dict) -> list[str]:
    lines = []
    for s in across.get("strata", []):
        ranks = ", ".join(f"{m} {r:.2f}" for m, r in sorted(s["mean_ranks"].items(), key=lambda kv: kv[1]))
        text = (f"{_stratum_name(s)}, {s['n_tasks']} tasks: mean ranks {ranks} (1 = best; Nemenyi "
                f"critical difference {s['cd']:.2f}")
        if np.isfinite(s["friedman_p"]):
            text += f"; Friedman p {_fmt_p(s['friedman_p'])}"
        text += ")"
        for c in s["comparisons"]:
            text += (f"; {c['model']} vs the linear baseline: better in {c['wins']}, tied in {c['ties']}, "
                     f"worse in {c['losses']} of {c['n_tasks']} tasks, Wilcoxon p {_fmt_p(c['p_wilcoxon'])}"
                     f" (Holm {_fmt_p(c['p_adjusted'])}), sign test p {_fmt_p(c['p_sign'])}")
        if s["n_tasks"] < 6 and s["comparisons"]:
            text += "; with fewer than 6 tasks no two-sided Wilcoxon test can reach p < 0.05"
        if s["dropped"]:
            text += f"; not ranked (not run on every task): {', '.join(s['dropped'])}"
        lines.append(text + ".")
    return lines


def _clip(lo: float, hi: float, low: float, high: float) -> tuple[float, float]:
    """A t-interval cut to the values its quantity can take (NaN stays NaN): a balanced accuracy
    lies in [0, 1], so a mean's interval does, a difference of two in [−1, 1], an excess over
    chance c in [−c, 1 − c]."""
    return (float(np.clip(lo, low, high)) if np.isfinite(lo) else lo,
            float(np.clip(hi, low, high)) if np.isfinite(hi) else hi)


def _annotate(df: pd.DataFrame, comp: dict, sig: dict, studies: dict) -> None:
    """Bound every interval to what its quantity can take, and mark the groups of tasks
    without a group column (``ungrouped``: worded "each sample its own group", not study-wise)."""
    bare = ungrouped_tasks(usable_rows(df))
    for result in (comp, sig, studies):
        for g in result.get("groups", []):
            g["ungrouped"] = (str(g["dataset"]), str(g["task"]), str(g["split"])) in bare
    for g in comp.get("groups", []) + studies.get("groups", []):
        for c in g["comparisons"]:
            c["ci_low"], c["ci_high"] = _clip(c["ci_low"], c["ci_high"], -1.0, 1.0)
    for g in sig.get("groups", []):
        for m in g["models"]:
            m["ci_low"], m["ci_high"] = _clip(m["ci_low"], m["ci_high"], -m["chance"], 1.0 - m["chance"])


def verdict(df: pd.DataFrame, rope: float = ROPE, alpha: float = ALPHA,
            metric: str = "balanced_accuracy") -> Verdict:
    """The report's verdict on a results table (rules: :mod:`linsig.stats`, docs/report.md),
    scored by ``metric`` (``balanced_accuracy`` or ``roc_auc``: chance 0.5, see
    :func:`linsig.metrics.verdict_view`)."""
    check_bound("rope", rope)
    df = load_results(df)
    scored = verdict_view(df, metric)
    comp = compare_models(scored, rope=rope, alpha=alpha)
    sig = nonlinear_signal_test(scored, rope=rope, alpha=alpha)
    studies = per_study(scored, alpha=alpha)
    across = cross_task(scored, alpha=alpha)
    _annotate(df, comp, sig, studies)
    lines_a, short_a = _lines_a(comp)
    if comp["available"]:
        answer_a = _summarise(
            [g["verdict"] for g in _primary([g for g in comp["groups"] if g["comparisons"]])], TIE)
    else:
        answer_a = f"could not be answered: {comp['message']}"
    lines_b, short_b = _lines_b(sig) if sig["available"] else ([], [])
    answer_b = _summarise([g["verdict"] for g in _primary(sig["groups"])], NO_SIGNAL) \
        if sig["available"] else sig["message"]
    return Verdict(comp, sig, answer_a, answer_b, lines_a, lines_b, short_a, short_b, studies=studies,
                   across=across, lines_across=_lines_across(across), lines_studies=_lines_studies(studies),
                   undertrained=undertrained_sentences(_real_label_rows(df)), metric=metric)


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
    ``ci_low``, ``ci_high`` (cut to [0, 1]) and, when the table records it, ``roc_auc`` (its mean).
    """
    data = usable_rows(df)
    if data.empty:
        return pd.DataFrame(columns=group_keys(df) + ["signal", "model", "fraction", "n_train", "n",
                                                      "mean", "ci_low", "ci_high"])
    data = data.assign(fraction=fraction_bins(data["train_fraction"]))
    keys = group_keys(data) + ["signal", "model", "fraction"]
    grouped = data.groupby(keys, sort=True)
    agg = grouped.agg(n_train=("n_train", "mean"), n=("balanced_accuracy", "size"),
                      mean=("balanced_accuracy", "mean"), sd=("balanced_accuracy", "std"),
                      **({"roc_auc": ("roc_auc", "mean")} if "roc_auc" in data.columns else {}))
    agg = agg.reset_index()
    tq = _scipy_stats.t.ppf(0.975, np.maximum(agg["n"] - 1, 1))
    half = np.where(agg["n"] > 1, tq * agg["sd"] / np.sqrt(agg["n"]), np.nan)
    # a balanced accuracy lies in [0, 1]: so does any interval for its mean (0.99 ± 0.02 is [0.97, 1])
    agg["ci_low"] = np.clip(agg["mean"] - half, 0.0, 1.0)
    agg["ci_high"] = np.clip(agg["mean"] + half, 0.0, 1.0)
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
.verdict.b{border-left-color:#c73}.verdict.x{border-left-color:#57a}.verdict.warn{border-left-color:#d22;background:#fff4f2}.answer{font-weight:bold;font-size:1.08em}
.muted{color:#666;font-size:.9em}figure{margin:1em 0 2em}figure img{max-width:100%;
border:1px solid #eee}figcaption{font-size:.9em;color:#444}
ul.lines li{margin:.3em 0}code{background:#f3f3f3;padding:0 .2em}
.scroll{overflow-x:auto;max-width:100%}td.n{white-space:nowrap}td:nth-child(1){min-width:10em}
pre{white-space:pre-wrap;overflow-wrap:anywhere;max-width:100%}
.lead{font-size:1.1em;margin:.4em 0 .6em}table.glance{width:100%;font-size:.95em}
table.glance td{text-align:left}.w{font-weight:bold}.w.yes{color:#176f2c}.w.no{color:#a12a1a}
.w.none{color:#444}.w.warn{color:#a15c00}.num{font-variant-numeric:tabular-nums;color:#333}span.n{white-space:nowrap}
.auc{color:#5a5a9a;font-size:.9em}#overview img{max-width:100%}
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
  // Layout, for the browser test: the page must not scroll sideways; a table wider than its
  // place must scroll inside its own box (div.scroll), never push the page wider.
  var b = document.body, view = document.documentElement.clientWidth;
  b.setAttribute('data-viewport', String(view));
  b.setAttribute('data-page-width', String(document.documentElement.scrollWidth));
  var spill = 0, scrolling = 0;
  Array.prototype.forEach.call(document.querySelectorAll('table'), function (t) {
    var box = t.parentElement, wide = t.getBoundingClientRect().width > box.clientWidth + 1;
    if (wide && box.classList.contains('scroll')) { scrolling += 1; }
    else if (wide || t.getBoundingClientRect().right > view + 1) { spill += 1; }
  });
  b.setAttribute('data-tables-spilling', String(spill));
  b.setAttribute('data-tables-scrolling', String(scrolling));
  var g = document.getElementById('glance-table'), o = document.getElementById('overview');
  if (g) {
    b.setAttribute('data-glance-top', String(Math.round(g.getBoundingClientRect().top)));
    b.setAttribute('data-glance-fits', String(g.getBoundingClientRect().width <= g.parentElement.clientWidth + 1));
  }
  if (o) { b.setAttribute('data-overview-top', String(Math.round(o.getBoundingClientRect().top))); }
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
        group = group_words(t["n_groups"], _e(t.get("group_key")), _num)
        rows.append(
            f"<tr><td class=l>{_e(t['dataset'])}</td><td class=l>{_e(t['task'])}</td>"
            f"<td>{_num(t['n_samples'])}</td><td>{group}</td><td>{_num(t['n_genes'])}</td>"
            f"<td>{_num(n_classes)}</td><td class=l>{cls}</td></tr>")
    return ("<table><tr><th class=l>Dataset</th><th class=l>Task</th><th>Samples</th>"
            "<th>Groups</th><th>Genes</th><th>Classes</th><th class=l>Class counts</th></tr>"
            + "".join(rows) + "</table>")


def _accuracy_html(table: pd.DataFrame, bare: set | frozenset = frozenset()) -> str:
    if table.empty:
        return "<p>No usable rows.</p>"
    parts = []
    keys_of = group_keys(table) + ["signal"]
    for keys, sub in table.groupby(keys_of, sort=False):
        g = dict(zip(keys_of, keys))
        g["ungrouped"] = (str(g["dataset"]), str(g["task"]), str(g["split"])) in bare
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
                    auc = (f"<br><span class=auc>AUC {r['roc_auc']:.3f}</span>"
                           if "roc_auc" in m.columns and np.isfinite(r["roc_auc"]) else "")
                    cells.append(f"<td>{r['mean']:.3f}{ci}{auc}</td>")
                else:
                    cells.append("<td>–</td>")
            rows.append(f"<tr><th class=l>{_e(model)}</th>{''.join(cells)}</tr>")
        parts.append(
            f"<h3>{_e(_group_name(g))} — {_e(signal_label(g['signal']))}</h3>"
            f"<div class=scroll><table><tr><th class=l>Model \\ training fraction</th>{head}</tr>"
            + "".join(rows) + "</table></div>")
    return "\n".join(parts)


def _table(head: list[str], rows: list[str]) -> str:
    if not rows:
        return ""
    cells = "".join(f"<th class=l>{h[1:]}</th>" if h.startswith("<") else f"<th>{h}</th>" for h in head)
    return f"<div class=scroll><table><tr>{cells}</tr>" + "".join(rows) + "</table></div>"


def _comparison_table(comp: dict, abbr: str = "BA") -> str:
    rows = []
    for g in comp["groups"]:
        for c in g["comparisons"]:
            rows.append(
                f"<tr><td class=l>{_e(_group_name(g))}</td><td class=l>{_e(c['model'])}</td>"
                f"<td class=l>{_e(c['baseline'])}</td><td>{c['mean_model']:.3f}</td>"
                f"<td>{c['mean_baseline']:.3f}</td><td class=n>{_fmt(c['mean_diff'])}<br><span class=muted>"
                f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]</span></td><td>{_fmt_p(c['p_value'])}<br>"
                f"<span class=muted>Holm {_fmt_p(c['p_adjusted'])}</span></td>"
                f"<td class=n>{_fmt_prob(c['prob_nonlinear_better'])} / {_fmt_prob(c['prob_equivalent'])} / "
                f"{_fmt_prob(c['prob_linear_better'])}</td><td>±{c['detectable']:.3f}</td><td>{c['n_clusters']}</td>"
                f"<td class=l>{_e(c['verdict'])}</td></tr>")
    return _table(["<Task", "<Model", "<Linear baseline", f"Mean {abbr}", f"Baseline {abbr}", "Difference [95% CI]",
                   "p (corrected)", "P(non-linear better / practically equivalent / linear better)",
                   "Detectable (80% power)", "Seed×fold splits", "<Words"], rows)


def _studies_table(studies: dict) -> str:
    rows = []
    for g in studies.get("groups", []):
        for c in g["comparisons"]:
            rows.append(
                f"<tr><td class=l>{_e(_group_name(g))}</td><td class=l>{_e(c['model'])}</td>"
                f"<td class=l>{_e(g['baseline'])}</td><td>{c['n_studies']}</td><td>{c['wins']}</td>"
                f"<td>{c['ties']}</td><td>{c['losses']}</td><td>{_fmt(c['median_diff'])}</td>"
                f"<td>[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]</td><td>{_fmt_p(c['p_sign'])}</td>"
                f"<td>{_fmt_p(c['p_wilcoxon'])}</td><td>{_fmt_p(c['p_adjusted'])}</td></tr>")
    return _table(["<Task", "<Model", "<Linear baseline", "Held-out studies", "Better", "Tied", "Worse",
                   "Median difference", "95% CI (corrected t)", "Sign test p", "Wilcoxon p",
                   "p (Holm, sign test)"], rows)


def _signal_table(sig: dict, abbr: str = "BA") -> str:
    rows = []
    for g in sig["groups"]:
        for m in g["models"]:
            perm = (f"{_fmt_p(m['p_permutation'])} ({m['n_permutations']})" if m["n_permutations"] else "–")
            rows.append(
                f"<tr><td class=l>{_e(_group_name(g))}</td><td class=l>{_e(m['model'])}"
                f"{' (linear)' if m['linear'] else ''}</td><td>{m['mean']:.3f}</td>"
                f"<td>{m['chance']:.3f}</td><td class=n>{_fmt(m['excess'])}<br><span class=muted>"
                f"[{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]</span></td>"
                f"<td>{_fmt_p(m['p_value'])}</td><td>{perm}</td><td>{_fmt_p(m['p_adjusted'])}</td>"
                f"<td>{_fmt_prob(m['prob_above'])}</td><td>{m['detectable']:.3f}</td><td>{m['n_clusters']}</td>"
                f"<td class=l>{'above chance' if m['above_chance'] else 'at chance'}</td></tr>")
    return _table(["<Task", "<Model", f"Mean {abbr} after removal", "Chance", "Excess [95% CI]",
                   "p (corrected t, one-sided)", "p (permutations)", "p (decision; Holm over non-linear)",
                   f"P(excess > {sig['rope']:g})", "Detectable excess", "Seed×fold splits", "<Result"], rows)


def _across_html(across: dict, lines: list[str], figures: list[str]) -> str:
    if not across.get("available"):
        return ""
    parts = ["<ul class=lines>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>"]
    for s in across["strata"]:
        head = ["<Task"] + s["models"]
        rows = [f"<tr><td class=l>{_e(t)}</td>" + "".join(
            f"<td>{v:.3f}</td>" for v in s["scores"].iloc[i].to_numpy()) + "</tr>"
            for i, t in enumerate(s["tasks"])]
        rows.append("<tr><th class=l>Mean rank</th>" + "".join(
            f"<th>{s['mean_ranks'][m]:.2f}</th>" for m in s["models"]) + "</tr>")
        parts.append(f"<h3>{_e(_stratum_name(s))}: mean balanced accuracy before removal</h3>" + _table(head, rows))
        comp_rows = [
            f"<tr><td class=l>{_e(c['model'])}</td><td>{c['n_tasks']}</td><td>{c['wins']}</td><td>{c['ties']}</td>"
            f"<td>{c['losses']}</td><td>{_fmt(c['mean_diff'])}</td><td>{_fmt_p(c['p_wilcoxon'])}</td>"
            f"<td>{_fmt_p(c['p_adjusted'])}</td><td>{_fmt_p(c['p_sign'])}</td></tr>" for c in s["comparisons"]]
        parts.append(_table(["<Non-linear model", "Tasks", "Better", "Tied", "Worse", "Mean difference",
                             "Wilcoxon p", "Wilcoxon p (Holm)", "Sign test p"], comp_rows))
    parts += figures
    return "\n".join(parts)


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


def _real_label_rows(df: pd.DataFrame) -> pd.DataFrame:
    if "permutation" not in df.columns:
        return df
    return df[df["permutation"].fillna(0).astype("int64") == 0]


def _undertrained_html(sentences: list[str]) -> str:
    if not sentences:
        return ""
    items = "".join(f"<li>{_e(s)}</li>" for s in sentences)
    return f"""<div class="verdict warn" id="undertrained"><div class=answer>Under-training check</div>
<ul class=lines>{items}</ul>
<p class=muted>Runs with paper-recipe linear models also fit the converged ridge logistic
regression (the strong recipe's <code>logreg</code>) on the same folds and training subsets. Before
signal removal, a model more than {UNDERTRAINING_MARGIN:g} balanced accuracy below it on the splits
both were scored on (and whose 95% interval over (seed, fold) splits stays below it) is flagged: its
model class reaches at least that far (a network can represent the linear model), so the gap is its
optimiser's, not its class's (<code>--recipe strong</code> trains every model to its capacity).</p></div>"""


def _abbr(metric: str) -> str:
    return {"balanced_accuracy": "BA", "roc_auc": "AUC"}.get(metric, metric)


def _interval(x: dict | None) -> str:
    if not x or x.get("model") is None or not np.isfinite(x.get("estimate", np.nan)):
        return ""
    return f"{_fmt(x['estimate'])} <span class=n>[{_fmt(x['ci_low'])}, {_fmt(x['ci_high'])}]</span>"


_WORD_CLASS = {BEAT: "yes", SIGNAL: "yes", LOSE: "no", TIE: "none", NO_SIGNAL: "none", INCONCLUSIVE: "warn",
               NOT_TESTED: "none"}


def _incomplete_html(summary: dict | None, source: str) -> str:
    message = incomplete_message(summary, source)
    if message is None:
        return ""
    return f'<div class="verdict warn" id="incomplete"><div class=answer>{_e(message[0].upper() + message[1:])}.</div></div>'


def _glance_html(v: Verdict, rope: float) -> str:
    """The first screen: one line per task answering (a) and (b), then the forest plot."""
    rows = []
    for r in glance_rows(v.comparison, v.signal):
        cells = []
        for q, x in (("a", r["a"]), ("b", r["b"])):
            if x is None:
                missing = "not asked (no rows before removal)" if q == "a" else (
                    "not asked: run with <code>--signal none,removed</code>")
                cells.append(f"<td class=l><span class=muted>{missing}</span></td>")
                continue
            number = _interval(x)
            if number:
                what = (f"{_e(x['model'])} − {_e(x['baseline'])}" if q == "a" else
                        f"{_e(x['model'])} above chance")
                number = f"<br><span class=num>{what}: {number}</span>"
            cls = _WORD_CLASS.get(x["words"], "none")
            cells.append(f"<td class=l><b class='w {cls}'>{_e(x['words'])}</b>{number}</td>")
        rows.append(f"<tr><td class=l>{_e(_group_name(r['group']))}</td>{''.join(cells)}</tr>")
    if not rows:
        return ("<section id=at-a-glance><h2>The answer at a glance</h2><p>No task could be analysed: "
                f"{_e(v.answer_a)}.</p></section>")
    name = METRIC_NAMES.get(v.metric, v.metric)
    png = overview_png(v.comparison, v.signal, rope, name, name=_group_name)
    figure = ""
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        figure = (f"<figure id=overview><img alt=\"Overview: per task, non-linear minus linear and excess over "
                  f"chance after removal, with 95% intervals\" src=\"data:image/png;base64,{data}\"><figcaption>"
                  f"<b>Overview.</b> Left: each non-linear model's mean {name} minus the task's better linear "
                  f"model, before signal removal. Right: each non-linear model's {name} above chance after the "
                  f"linear signal is removed. Points: means over (seed, fold) splits; bars: 95% intervals "
                  f"(corrected repeated k-fold t); grey: the region of practical equivalence ±{rope:g}. A bar "
                  f"clear of 0 and of the grey region to the right answers yes.</figcaption></figure>")
    metric_note = "" if v.metric == "balanced_accuracy" else (
        f" Scored by <b>{name}</b> (<code>--metric {v.metric}</code>; chance 0.5).")
    return f"""<section id=at-a-glance>
<h2>The answer at a glance</h2>
<p class=lead>(a) Do non-linear models beat the linear baseline? <b>{_e(v.answer_a)}</b>.<br>
(b) Is there non-linear signal once the linear signal is removed? <b>{_e(v.answer_b)}</b>.</p>
<div class=scroll><table class=glance id=glance-table><tr><th class=l>Task</th><th class=l>(a) Non-linear vs
linear baseline (best non-linear model, 95% interval)</th><th class=l>(b) Non-linear signal after
removal (best non-linear model, 95% interval)</th></tr>{''.join(rows)}</table></div>
<p class=muted>One line per task.{metric_note} The statistics behind each answer follow under
<a href="#verdict">Verdict in detail</a>.</p>
{figure}
</section>"""


def render_html(df: pd.DataFrame, summary: dict | None, figures: list[tuple[dict, bytes]],
                source: str = "", rope: float = ROPE, alpha: float = ALPHA,
                result: Verdict | None = None, metric: str = "balanced_accuracy", extra_html: str = "") -> str:
    """The report page as a string; ``figures`` are ``(index entry, PNG bytes)`` pairs;
    ``result`` is the :func:`verdict` of ``df`` when the caller has it already (else it is
    computed with ``metric``); ``extra_html`` (e.g. ``linsig locate``'s section) goes after the verdict."""
    df = load_results(df)
    v = result if result is not None else verdict(df, rope=rope, alpha=alpha, metric=metric)
    real = _real_label_rows(df)
    total = len(df)
    ok = len(usable_rows(df))
    skipped = len(real) - ok
    reasons = ""
    if skipped and "skip_reason" in df.columns:
        counts = real.loc[~real.index.isin(usable_rows(df).index), "skip_reason"].replace(
            "", "unspecified").value_counts()
        reasons = " (" + "; ".join(f"{_e(r)}: {n}" for r, n in counts.items()) + ")"
    n_perm_rows = total - len(real)
    perm_text = ""
    if n_perm_rows:
        n_perms = df.loc[df["permutation"] > 0, "permutation"].nunique()
        perm_text = (f" Plus {n_perm_rows:,} rows of {n_perms} label permutations "
                     f"({len(permutation_rows(df)):,} scored), used by the permutation test only.")
    version = (summary or {}).get("linsig_version", "an unknown version (no summary.json)")
    config = (summary or {}).get("config")
    config_html = ""
    if config:
        config_html = ("<details><summary>Run options</summary><pre>"
                       + _e(json.dumps(config, indent=1, default=str)) + "</pre></details>")
    signals = ", ".join(signal_order(df["signal"].unique()))
    models = ", ".join(model_order(df["model"].unique()))

    fig_html, cd_html = [], []
    for entry, png in figures:
        data = base64.b64encode(png).decode("ascii")
        (cd_html if entry.get("kind") == "critical_difference" else fig_html).append(
            f"<figure id=\"fig-{_e(entry['name'])}\"><img alt=\"{_e(entry['title'])}\" "
            f"src=\"data:image/png;base64,{data}\"><figcaption><b>{_e(entry['title'])}.</b> "
            f"{_e(entry.get('caption', ''))}</figcaption></figure>")

    lines_a = "".join(f"<li>{_e(x)}</li>" for x in v.short_a + v.lines_studies)
    lines_b = "".join(f"<li>{_e(x)}</li>" for x in v.short_b)
    studies = ""
    if v.studies.get("available"):
        studies = ("<h3>Per held-out study</h3>" + _studies_table(v.studies)
                   + "<p class=muted>Leave-one-study-out folds: each held-out study of the first seed is one "
                     "replicate (difference averaged over training sizes). Sign test and Wilcoxon "
                     "signed-rank test over studies (exact, no normality assumed); the CI is the "
                     "corrected t-interval over studies.</p>")
    across = _across_html(v.across, v.lines_across, cd_html)
    across_html = ""
    if across:
        across_html = f"""<div class="verdict x" id="verdict-across"><div class=answer>Across tasks</div>
{across}
<p class=muted>Per task, each model's mean balanced accuracy before removal; ranks within a task
(1 = best, ties share the mean rank) averaged over tasks. The Friedman test asks whether the
models' ranks differ at all; two models whose mean ranks differ by less than the Nemenyi critical
difference (CD) cannot be told apart at α = {alpha:g} (Demšar 2006). Each non-linear model is
compared with the task's better linear model by a two-sided Wilcoxon signed-rank test over tasks
(tasks as independent replicates; Holm-adjusted over the non-linear models) and a sign test.</p></div>"""
    perm_note = ("; the permutation p-value replaces the t-test where the run holds label permutations "
                 "(<code>--permutations N</code>): (1 + permutations scoring at least the real labels) / "
                 "(N + 1)" if v.signal.get("permutations") else
                 "; <code>--permutations N</code> adds an exact permutation test")
    metric_name = METRIC_NAMES.get(v.metric, v.metric)
    chance_words = ("balanced accuracy minus chance (the majority-class predictor: 1/classes in the validation "
                    "fold)" if v.metric == "balanced_accuracy" else f"{metric_name} minus chance (0.5)")
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

{_incomplete_html(summary, source)}
{_glance_html(v, rope)}

<h2 id="verdict">Verdict in detail</h2>
<div class="verdict a" id="verdict-a"><div class=answer>(a) Do the non-linear models beat the
linear baseline? <span class=words>{_e(v.answer_a)}</span>.</div><ul class=lines>{lines_a}</ul>
{_comparison_table(v.comparison, _abbr(v.metric))}
{studies}
<p class=muted>Paired on (seed, fold, training fraction) with signal <code>none</code>; baseline =
the better of logreg/svm on the task. Differences are averaged within each (seed, fold) split and
tested with the corrected repeated k-fold t-test (Nadeau &amp; Bengio 2003; Bouckaert &amp; Frank
2004): the variance of the split means is scaled by 1/J + n<sub>val</sub>/n<sub>train</sub> instead
of 1/J, because splits share training samples; the 95% CI uses the same standard error. p-values are
two-sided and Holm-adjusted over a task's non-linear models. "Beat" needs p (Holm) &lt; {alpha:g} and a
difference above {rope:g}; "loses" p (Holm) &lt; {alpha:g} and a difference below −{rope:g}. The
probabilities come from the Bayesian correlated t-test (Corani &amp; Benavoli 2015) with a region of
practical equivalence of ±{rope:g} {metric_name} (<code>--rope</code>). "Detectable" is the
smallest true difference the run would declare with 80% probability.</p></div>
<div class="verdict b" id="verdict-b"><div class=answer>(b) Is there predictive non-linear
signal? <span class=words>{_e(v.answer_b)}</span>.</div><ul class=lines>{lines_b}</ul>
{_signal_table(v.signal, _abbr(v.metric)) if v.signal['available'] else ''}
<p class=muted>After removing the linear signal (signal <code>removed</code>), each model's
{chance_words} is averaged per (seed, fold) split; one-sided corrected repeated k-fold t-test of excess &gt; 0
with its 95% interval{perm_note}. "Above chance" needs p &lt; {alpha:g} and an excess above
{rope:g}; the p-values of the non-linear models of a task are Holm-adjusted (several models are
tested for one claim). Non-linear signal is present when a non-linear model is above chance;
linear models should fall to chance (a check that the removal worked).</p></div>
{across_html}
{_undertrained_html(v.undertrained)}
{extra_html}

<h2>Data and tasks</h2>
<div class=scroll>{_tasks_html(task_summary(real, summary))}</div>
<p>{len(real):,} result rows: {ok:,} used, {skipped:,} skipped{reasons}. Models: {_e(models)}.
Signal modes: {_e(signals)}.{perm_text}</p>
{config_html}
{confounding_html((summary or {}).get("tasks"))}

<h2>Figures</h2>
<p class=muted>x: training samples; y: balanced accuracy; lines: LOESS (local-linear, span
0.75) fit per model with a 95% confidence band; points: single (seed, fold, size) results;
dotted line: majority-class baseline (1/n_classes).</p>
{''.join(fig_html) or '<p>No figures (no usable rows).</p>'}

<h2>Balanced accuracy by training size</h2>
<p class=muted>Mean over seeds and folds, with a 95% t-interval (cut to [0, 1], the range of a balanced
accuracy), per model and training-fraction bin (column header: fraction, and the mean number of
training samples); below it the mean ROC AUC of the same rows, where the table records it.</p>
{_accuracy_html(accuracy_table(df), ungrouped_tasks(usable_rows(df)))}
<script>{_SCRIPT}</script>
</body></html>
"""


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 figures_dir: str | os.PathLike | None = None, rope: float = ROPE,
                 alpha: float = ALPHA, figure_formats=("png", "svg"), jobs: int = 1,
                 with_verdict: bool = False, metric: str = "balanced_accuracy") -> Path | tuple[Path, Verdict]:
    """Write ``report.html`` (default ``RUN_DIR/report.html``) and ``RUN_DIR/verdict.parquet``.

    Figures come from ``figures_dir`` (default ``RUN_DIR/figures``) and are made with
    :func:`linsig.plots.plot_run` (in ``figure_formats``, PNG always, ``jobs`` processes) unless
    its ``index.json`` was drawn from these very results (same SHA-256) and lists only PNGs inside
    that folder. The page embeds them as base64 PNG, needs no network, and records the results'
    SHA-256 in ``<meta name="linsig-results-sha256">``. ``verdict.parquet`` holds the verdict's
    statistics (:func:`linsig.stats.verdict_table`) beside ``results.parquet``, with the same hash
    in its schema metadata; page and table are written as one set. Returns the path of the page
    (and the :class:`Verdict` with ``with_verdict=True``). Raises :class:`LinsigInputError` when
    the results table is missing or empty, or when ``out`` is not an ``.html`` path or is one of
    the report's inputs.
    """
    check_bound("rope", rope)  # NaN would pass a plain range check and print "P(excess > nan)"
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
    result = verdict(df, rope=rope, alpha=alpha, metric=metric)
    results_hash = file_sha256(results_path)
    from linsig.locate.report import section_html  # the locate files of the run folder, if any

    page = render_html(df, summary, figures, source=str(run_dir), rope=rope, alpha=alpha, result=result,
                       extra_html=section_html(run_dir))
    write_set([(run_dir / VERDICT_FILE, _verdict_bytes(result.table, results_hash)),
               (out, _stamp(page, results_hash).encode("utf-8"))])
    return (out, result) if with_verdict else out


def _verdict_bytes(table: pd.DataFrame, results_hash: str) -> bytes:
    """``verdict.parquet`` naming, in its schema metadata, the results it was computed from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), RESULTS_HASH.encode(): results_hash.encode()})
    buffer = io.BytesIO()
    pq.write_table(arrow, buffer)
    return buffer.getvalue()


def _stamp(page: str, results_hash: str) -> str:
    """Record in the page's head which results (SHA-256 of ``results.parquet``) it shows."""
    meta = f'<meta name="linsig-results-sha256" content="{results_hash}">'
    head = re.search(r"<head[^>]*>", page)
    if head is None:
        raise ValueError("the report page has no <head>")
    return page[:head.end()] + meta + page[head.end():]


__all__ = [
    "BEAT", "LOSE", "TIE", "SIGNAL", "NO_SIGNAL", "INCONCLUSIVE", "NOT_RUN", "NOT_TESTED", "VERDICT_FILE",
    "Verdict", "accuracy_table", "compare_models", "fraction_bins", "holm", "is_linear", "nonlinear_signal_test",
    "render_html", "task_summary", "verdict", "write_report",
]


def report_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, rope: float = ROPE,
               metric: str = "balanced_accuracy", jobs: int = 1, csv: bool = False) -> Verdict:
    """``linsig report`` as a function: write ``report.html`` (default ``RUN_DIR/report.html``) and
    ``verdict.parquet``; with ``csv=True`` also the tidy CSV files of :func:`linsig.results.export_csv`.

    Returns the :class:`Verdict`: ``answer_a``, ``answer_b``, ``text`` (the plain-word verdict) and
    ``table`` (its statistics as a DataFrame); ``v.path`` is the page written.
    """
    from linsig.results import export_csv

    path, result = write_report(run_dir, out, rope=rope, jobs=jobs, with_verdict=True, metric=metric)
    result.path = path
    if csv:
        result.csv = export_csv(run_dir, verdict=result)
    return result


class _CallableModule(__import__("types").ModuleType):
    """``linsig.report(run_dir, ...)`` calls :func:`report_run`: the name is both this module
    (``from linsig.report import write_report``) and the notebook function, whichever is
    imported first, so the module answers the call itself."""

    def __call__(self, run_dir, *args, **kwargs):
        return report_run(run_dir, *args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
