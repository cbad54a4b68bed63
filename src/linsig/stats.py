"""The statistics behind the report's verdict: pure functions on the results table.

Every function takes a results table (``results.parquet`` as a DataFrame, or a run directory)
and returns plain data; :mod:`linsig.report` only renders what they return, and
:func:`verdict_table` lays them out as the ``verdict.parquet`` table. The tests are:

* :func:`corrected_t` — the **corrected repeated k-fold t-test** (Nadeau & Bengio 2003,
  "Inference for the generalization error", Mach Learn 52:239; in its repeated-k-fold form,
  Bouckaert & Frank 2004, "Evaluating the replicability of significance tests for comparing
  learning algorithms", PAKDD). The J = seeds × folds estimates of a cross-validation are not
  independent: training sets overlap and seeds re-split the same samples, so the plain
  t-test's variance ``s²/J`` is far too small and shrinks with every seed added. The
  corrected variance is ``s² (1/J + n_val/n_train)``, with J − 1 degrees of freedom.
* :func:`bayes_correlated` — the **Bayesian correlated t-test** (Corani & Benavoli 2015, "A
  Bayesian approach for comparing cross-validated algorithms on multiple data sets", Mach Learn
  100:285; Benavoli et al. 2017, JMLR 18:77): the posterior of the mean difference is a Student
  t with the same location, scale and degrees of freedom; with a region of practical
  equivalence (ROPE, default ±0.01 balanced accuracy) it gives P(left), P(equivalent),
  P(right).
* :func:`compare_models` — question (a), each non-linear model against the best linear model.
* :func:`nonlinear_signal_test` — question (b), excess over chance after linear signal removal,
  with :func:`permutation_test` (labels permuted within groups and the pipeline rerun;
  ``(1 + #{T_perm ≥ T_obs}) / (N + 1)``, as scikit-learn's ``permutation_test_score``; Ojala &
  Garriga 2010, JMLR 11:1833) when the run holds permutation rows.
* :func:`per_study` — the analysis per held-out study for leave-one-study-out runs: studies are
  the units, with a sign test and a Wilcoxon signed-rank test over them.
* :func:`cross_task` — across tasks (Demšar 2006, "Statistical comparisons of classifiers over
  multiple data sets", JMLR 7:1): mean ranks, the Friedman test (Iman–Davenport F), the
  Nemenyi critical difference, and per non-linear model a Wilcoxon signed-rank and a sign test
  against the linear baseline over tasks.

Rows used: ``status == "ok"`` with a finite balanced accuracy and real labels (``permutation``
absent or 0). Results are computed per analysis group: ``dataset``, ``task``, ``split``,
``pretraining`` and, when the table has it, ``recipe`` (:func:`group_keys`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from linsig.models import is_linear, model_order
from linsig.results import load_results, permutation_rows, usable_rows
from linsig.splits import is_grouped

ALPHA = 0.05
ROPE = 0.01
POWER = 0.8
BASE_GROUP_KEYS = ("dataset", "task", "split", "pretraining")
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


def group_keys(df: pd.DataFrame) -> list[str]:
    """The keys of one analysis: dataset, task, split, pretraining, and recipe when present."""
    return list(BASE_GROUP_KEYS) + (["recipe"] if "recipe" in df.columns else [])


def _prepare(df) -> pd.DataFrame:
    df = load_results(df)
    if "recipe" in df.columns:
        df = df.assign(recipe=df["recipe"].fillna("").astype(str))
    return df


# --------------------------------------------------------------------------------------------
# Core tests
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorrectedT:
    """A corrected repeated k-fold t statistic for the mean of ``n`` correlated CV estimates.

    ``se = sd · sqrt(1/n + ratio)`` with ``ratio = n_val/n_train`` (``ratio = 0`` is the plain
    one-sample t-test); ``df = n - 1``.
    """

    mean: float
    sd: float
    n: int
    ratio: float

    @property
    def df(self) -> int:
        return self.n - 1

    @property
    def se(self) -> float:
        if self.n < 2:
            return np.nan
        return self.sd * math.sqrt(1.0 / self.n + self.ratio)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        if self.n < 2 or not np.isfinite(self.se):
            return np.nan, np.nan
        half = float(stats.t.ppf(0.5 + level / 2, self.df)) * self.se
        return self.mean - half, self.mean + half

    def p_greater(self) -> float:
        """One-sided p-value of mean > 0."""
        if self.n < 2 or not np.isfinite(self.mean):
            return np.nan
        if self.se == 0:
            return 0.0 if self.mean > 0 else 1.0
        return float(stats.t.sf(self.mean / self.se, self.df))

    def p_two_sided(self) -> float:
        if self.n < 2 or not np.isfinite(self.mean):
            return np.nan
        if self.se == 0:
            return 0.0 if self.mean != 0 else 1.0
        return float(2 * stats.t.sf(abs(self.mean) / self.se, self.df))

    def detectable(self, alpha: float = ALPHA, power: float = POWER, rope: float = 0.0,
                   two_sided: bool = True) -> float:
        """The smallest true difference this design finds with probability ``power``.

        A claim needs the estimate beyond ``max(t_crit · se, rope)``; the estimate is t
        distributed around the true difference, so ``power`` is reached at that threshold plus
        ``t_power · se`` (Cohen's minimum detectable effect with the corrected standard error).
        """
        if self.n < 2 or not np.isfinite(self.se):
            return np.nan
        crit = float(stats.t.ppf(1 - alpha / (2 if two_sided else 1), self.df)) * self.se
        return max(crit, rope) + float(stats.t.ppf(power, self.df)) * self.se


def corrected_t(values, ratio: float = 0.0) -> CorrectedT:
    """The corrected repeated k-fold t statistic of ``values`` (one estimate per seed × fold).

    Nadeau & Bengio (2003) and Bouckaert & Frank (2004): with J = seeds × folds estimates of a
    k-fold cross-validation repeated over seeds, ``t = mean / (sd · sqrt(1/J + n_val/n_train))``
    on J − 1 degrees of freedom. ``ratio`` is ``n_val/n_train``; 0 gives the plain t-test.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = int(values.size)
    mean = float(values.mean()) if n else np.nan
    sd = float(values.std(ddof=1)) if n > 1 else np.nan
    if sd < 1e-12:  # identical values: rounding leaves ~1e-17, which would read as certainty by t
        sd = 0.0
    return CorrectedT(mean, sd, n, float(ratio))


def bayes_correlated(t: CorrectedT, rope: float = ROPE) -> tuple[float, float, float]:
    """Posterior probabilities ``(P(mean < -rope), P(|mean| <= rope), P(mean > rope))``.

    Corani & Benavoli (2015): under a flat prior, the posterior of the mean of correlated
    cross-validation estimates is Student t with ``n - 1`` degrees of freedom, location the
    sample mean and scale ``sd · sqrt(1/n + ρ/(1-ρ))`` with ``ρ = n_val / (n_val + n_train)``,
    i.e. the corrected t-test's standard error.
    """
    if t.n < 2 or not np.isfinite(t.mean):
        return np.nan, np.nan, np.nan
    if not t.se > 0:
        left = float(t.mean < -rope)
        right = float(t.mean > rope)
        return left, 1.0 - left - right, right
    left = float(stats.t.cdf((-rope - t.mean) / t.se, t.df))
    right = float(stats.t.sf((rope - t.mean) / t.se, t.df))
    return left, max(0.0, 1.0 - left - right), right


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


def sign_test(diffs) -> float:
    """Two-sided exact sign test of the non-zero ``diffs`` (NaN without any)."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d) & (d != 0)]
    if d.size == 0:
        return np.nan
    return float(stats.binomtest(int((d > 0).sum()), int(d.size), 0.5).pvalue)


def wilcoxon_test(diffs) -> float:
    """Two-sided Wilcoxon signed-rank test of ``diffs`` (zeros dropped; exact for small n)."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d) & (d != 0)]
    if d.size == 0:
        return np.nan
    return float(stats.wilcoxon(d).pvalue)


# --------------------------------------------------------------------------------------------
# Cluster means
# --------------------------------------------------------------------------------------------

def _split_ratio(rows: pd.DataFrame) -> float:
    """``n_val / n_train`` of the cross-validation split itself (before training-size subsampling).

    The correction is about how much the outer training folds overlap, so it uses the full outer
    training fold: ``n_train / train_fraction`` on the rows of the largest fraction, averaged over
    them; tables without ``n_val`` fall back to k-fold's ``1/(k-1)``.
    """
    if {"n_val", "n_train", "train_fraction"} <= set(rows.columns) and len(rows):
        fraction = rows["train_fraction"].astype(float)
        top = rows[fraction == fraction.max()]
        ratio = (top["n_val"].astype(float) * top["train_fraction"].astype(float)
                 / top["n_train"].astype(float)).to_numpy()
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        if ratio.size:
            return float(ratio.mean())
    k = rows["fold"].nunique()
    return 1.0 / (k - 1) if k > 1 else np.nan


def _clusters(values: pd.Series, rows: pd.DataFrame) -> np.ndarray:
    """Means of ``values`` per (seed, fold): one estimate per train/validation split."""
    return values.groupby([rows[k] for k in CLUSTER_KEYS]).mean().to_numpy()


def _groups(df: pd.DataFrame):
    keys = group_keys(df)
    for key, sub in df.groupby(keys, sort=True):
        yield dict(zip(keys, key)), sub


def _real(df: pd.DataFrame, signal: str) -> pd.DataFrame:
    data = usable_rows(df)
    return data[data["signal"] == signal]


# --------------------------------------------------------------------------------------------
# (a) non-linear vs linear
# --------------------------------------------------------------------------------------------

def _words(p_adjusted: float, mean: float, rope: float, alpha: float) -> str:
    if not (np.isfinite(p_adjusted) and p_adjusted < alpha):
        return TIE
    if mean > rope:
        return BEAT
    if mean < -rope:
        return LOSE
    return TIE


def compare_models(df, rope: float = ROPE, alpha: float = ALPHA, signal: str = "none",
                   corrected: bool = True) -> dict:
    """Question (a): each non-linear model against the best linear model, per analysis group.

    The baseline of a group is the linear model (logreg/svm) with the higher mean balanced
    accuracy. Each non-linear model is paired with it on the (seed, fold, train_fraction) units
    both were scored on; paired differences are averaged per (seed, fold) and tested with the
    corrected repeated k-fold t-test (two-sided; ``corrected=False``: the plain t-test of linsig
    0.1, kept for calibration comparisons). p-values are Holm-adjusted over the group's
    non-linear models; a model beats (loses to) the baseline when the adjusted p < ``alpha``
    and the mean difference is above ``rope`` (below ``-rope``). The group beats the baseline
    when any non-linear model does, loses when every one loses.

    Returns ``{"available", "message", "rope", "alpha", "signal", "groups": [...]}``; a group has
    its keys, ``baseline``, ``verdict``, ``note`` and ``comparisons``: per non-linear model
    ``model``, ``baseline``, ``mean_model``, ``mean_baseline``, ``mean_diff``, ``se``, ``df``,
    ``ratio``, ``ci_low``/``ci_high`` (95%), ``p_value``, ``p_adjusted``, ``prob_linear_better``,
    ``prob_equivalent``, ``prob_nonlinear_better`` (Bayesian correlated t-test with the ROPE),
    ``detectable`` (smallest difference found with 80% probability), ``n_units``,
    ``n_clusters``, ``verdict``.
    """
    df = _prepare(df)
    data = _real(df, signal)
    out = {"available": False, "message": "", "rope": rope, "alpha": alpha, "signal": signal,
           "groups": []}
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
        wide = sub.groupby(unit + ["model"])["balanced_accuracy"].mean().unstack("model")
        baseline = max(linear, key=lambda m: (wide[m].mean(), -linear.index(m)))
        group["baseline"] = baseline
        # the split (n_val, outer n_train) is the same for every model of the group
        ratio = _split_ratio(sub) if corrected else 0.0
        for model in nonlinear:
            pair = wide[[model, baseline]].dropna()
            diff = pair[model] - pair[baseline]
            cl = diff.groupby(level=CLUSTER_KEYS).mean().to_numpy()
            t = corrected_t(cl, ratio)
            lo, hi = t.interval()
            left, rope_p, right = bayes_correlated(t, rope)
            group["comparisons"].append({
                "model": model, "baseline": baseline,
                "mean_model": float(pair[model].mean()) if len(pair) else np.nan,
                "mean_baseline": float(pair[baseline].mean()) if len(pair) else np.nan,
                "mean_diff": t.mean, "se": t.se, "df": t.df, "ratio": t.ratio,
                "ci_low": lo, "ci_high": hi, "p_value": t.p_two_sided(),
                "prob_linear_better": left, "prob_equivalent": rope_p, "prob_nonlinear_better": right,
                "detectable": t.detectable(alpha, POWER, rope, two_sided=True),
                "n_units": int(len(diff)), "n_clusters": int(t.n),
            })
        comps = group["comparisons"]
        for c, p_adj in zip(comps, holm([c["p_value"] for c in comps])):
            c["p_adjusted"] = p_adj
            c["verdict"] = _words(p_adj, c["mean_diff"], rope, alpha)
        tested = [c for c in comps if np.isfinite(c["mean_diff"])]
        if any(c["verdict"] == BEAT for c in tested):
            group["verdict"] = BEAT
        elif tested and all(c["verdict"] == LOSE for c in tested):
            group["verdict"] = LOSE
        out["groups"].append(group)
    out["available"] = any(g["comparisons"] for g in out["groups"])
    if not out["available"]:
        out["message"] = "no task has both a linear (logreg/svm) and a non-linear model"
    return out


# --------------------------------------------------------------------------------------------
# (b) non-linear signal after removal
# --------------------------------------------------------------------------------------------

def _excess(rows: pd.DataFrame) -> pd.Series:
    return rows["balanced_accuracy"].astype(float) - rows["chance_balanced_accuracy"].astype(float)


def permutation_test(df, signal: str = "removed") -> pd.DataFrame:
    """Empirical p-values of "above chance" from the run's permutation rows.

    The statistic is a model's mean excess ``balanced_accuracy - chance_balanced_accuracy`` over
    all its usable rows with ``signal`` (every seed, fold and training size), computed on the
    real labels and on each permutation (labels permuted within groups, the same pipeline rerun:
    ``--permutations N``). A permutation counts when it covers as many (seed, fold) splits as the
    real run. ``p = (1 + #{T_perm >= T_obs}) / (N + 1)`` (Phipson & Smyth 2010: never 0), as
    scikit-learn's ``permutation_test_score``. Under the null of no label information the
    p-value is exact: P(p <= a) <= a.

    Returns one row per analysis group and model with ``observed``, ``n_permutations``,
    ``n_exceeding`` and ``p_permutation``; empty when the table holds no permutation rows.
    """
    df = _prepare(df)
    keys = group_keys(df) + ["model"]
    columns = keys + ["observed", "n_permutations", "n_exceeding", "p_permutation"]
    perm = permutation_rows(df)
    perm = perm[perm["signal"] == signal]
    real = _real(df, signal)
    if perm.empty or real.empty:
        return pd.DataFrame(columns=columns)

    def stat(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        rows = rows.assign(excess=_excess(rows), split_id=rows["seed"].astype(str) + ":" + rows["fold"].astype(str))
        return rows.groupby(by).agg(stat=("excess", "mean"), n_splits=("split_id", "nunique"))

    obs = stat(real, keys).rename(columns={"stat": "observed"})
    per = stat(perm, keys + ["permutation"]).reset_index().merge(obs.reset_index(), on=keys, suffixes=("", "_real"))
    per = per[per["n_splits"] >= per["n_splits_real"]]
    # a tolerance keeps ties (identical rows under a permutation that changes nothing) counted
    per["exceeds"] = per["stat"] >= per["observed"] - 1e-12
    counts = per.groupby(keys).agg(n_permutations=("stat", "size"), n_exceeding=("exceeds", "sum"))
    res = obs[["observed"]].join(counts, how="inner").reset_index()
    res["n_permutations"] = res["n_permutations"].astype(int)
    res["n_exceeding"] = res["n_exceeding"].astype(int)
    res["p_permutation"] = (1 + res["n_exceeding"]) / (res["n_permutations"] + 1)
    return res[columns]


def nonlinear_signal_test(df, rope: float = ROPE, alpha: float = ALPHA, signal: str = "removed",
                          corrected: bool = True) -> dict:
    """Question (b): is each model above the majority-class baseline after linear signal removal?

    Per model, the excess ``balanced_accuracy - chance_balanced_accuracy`` is averaged per
    (seed, fold) over all training sizes and tested one-sided (excess > 0) with the corrected
    repeated k-fold t-test; when the run has permutation rows, the permutation p-value
    (:func:`permutation_test`) decides instead. Decision p-values of the non-linear models are
    Holm-adjusted (one claim, several models tested); linear models keep theirs (their check
    that the removal worked errs on the side of flagging leftover signal). A model is above
    chance when its (adjusted) p < ``alpha`` and its mean excess > ``rope``. Verdict: SIGNAL when
    a non-linear model is above chance; INCONCLUSIVE when a linear model is; NOT_TESTED without
    a non-linear model.

    Returns ``{"available", "message", "rope", "alpha", "signal", "permutations", "groups"}``;
    a group has its keys, ``verdict``, ``linear_at_chance`` and ``models``: per model ``model``,
    ``linear``, ``chance``, ``mean``, ``excess``, ``se``, ``df``, ``ratio``, ``ci_low``/``ci_high``,
    ``p_value`` (corrected t, one-sided), ``p_permutation`` and ``n_permutations`` (NaN / 0
    without permutations), ``test`` (which p decided), ``p_adjusted``, ``prob_below``,
    ``prob_at_chance``, ``prob_above`` (posterior of the excess against ±rope), ``detectable``
    (smallest excess found with 80% probability), ``n_clusters``, ``above_chance``.
    """
    df = _prepare(df)
    data = _real(df, signal)
    out = {"available": not data.empty, "message": "", "rope": rope, "alpha": alpha,
           "signal": signal, "permutations": 0, "groups": []}
    if data.empty:
        out["message"] = NOT_RUN if len(usable_rows(df)) else "could not be answered: no usable rows"
        return out
    perm = permutation_test(df, signal)
    keys = group_keys(df)
    perm_by = {tuple(r[k] for k in keys + ["model"]): r for r in perm.to_dict("records")}
    out["permutations"] = int(perm["n_permutations"].max()) if len(perm) else 0
    data = data.assign(excess=_excess(data))
    for gkeys, sub in _groups(data):
        group = dict(gkeys, models=[], verdict=NO_SIGNAL, linear_at_chance=None)
        ratio = _split_ratio(sub) if corrected else 0.0
        for model in model_order(sub["model"].unique()):
            rows = sub[sub["model"] == model]
            t = corrected_t(_clusters(rows["excess"], rows), ratio)
            lo, hi = t.interval()
            below, at, above = bayes_correlated(t, rope)
            p = perm_by.get(tuple(gkeys[k] for k in keys) + (model,))
            group["models"].append({
                "model": model, "linear": is_linear(model),
                "chance": float(rows["chance_balanced_accuracy"].mean()),
                "mean": float(rows["balanced_accuracy"].mean()), "excess": t.mean, "se": t.se,
                "df": t.df, "ratio": t.ratio, "ci_low": lo, "ci_high": hi, "p_value": t.p_greater(),
                "p_permutation": float(p["p_permutation"]) if p else np.nan,
                "n_permutations": int(p["n_permutations"]) if p else 0,
                "test": "permutation" if p else ("corrected t" if corrected else "plain t"),
                "prob_below": below, "prob_at_chance": at, "prob_above": above,
                "detectable": t.detectable(alpha, POWER, rope, two_sided=False),
                "n_clusters": int(t.n),
            })
        lin = [m for m in group["models"] if m["linear"]]
        nl = [m for m in group["models"] if not m["linear"]]
        decide = lambda m: m["p_permutation"] if m["test"] == "permutation" else m["p_value"]  # noqa: E731
        for m, p_adj in zip(nl, holm([decide(m) for m in nl])):
            m["p_adjusted"] = p_adj
        for m in lin:
            m["p_adjusted"] = decide(m)
        for m in group["models"]:
            m["above_chance"] = bool(np.isfinite(m["p_adjusted"]) and m["p_adjusted"] < alpha
                                     and m["excess"] > rope)
        if lin:
            group["linear_at_chance"] = not any(m["above_chance"] for m in lin)
        if group["linear_at_chance"] is False:
            group["verdict"] = INCONCLUSIVE
        elif not nl:
            group["verdict"] = NOT_TESTED
        elif any(m["above_chance"] for m in nl):
            group["verdict"] = SIGNAL
        out["groups"].append(group)
    return out


# --------------------------------------------------------------------------------------------
# Per held-out study
# --------------------------------------------------------------------------------------------

def per_study(df, alpha: float = ALPHA, signal: str = "none") -> dict:
    """Question (a) with held-out studies as the units (leave-one-study-out runs).

    Where groups are studies, what a user wants to know is how a model does on a *new study*,
    and studies differ; so the replicates are the held-out studies, not the folds. A run whose
    study-wise folds each hold exactly one study (``--folds`` = number of studies) scores every
    study on its own. Per task and non-linear model, the difference to the linear baseline is
    averaged over training sizes within each held-out study of the first seed (further seeds
    re-shuffle which fold holds which study, and the table does not name the study), then
    tested over studies with the exact sign test and the Wilcoxon signed-rank test (no normality
    assumed; studies treated as exchangeable) and the corrected t-test (training sets of the
    studies overlap). p-values are Holm-adjusted over the task's non-linear models (sign test).

    Returns ``{"available", "message", "groups"}``; a group has its keys, ``baseline``,
    ``n_studies`` and ``comparisons``: ``model``, ``n_studies``, ``wins``, ``ties``, ``losses``,
    ``median_diff``, ``mean_diff``, ``ci_low``/``ci_high``, ``p_sign``, ``p_wilcoxon``,
    ``p_corrected``, ``p_adjusted``.
    """
    df = _prepare(df)
    data = _real(df, signal)
    data = data[data["split"].map(is_grouped).astype(bool)]
    out = {"available": False, "message": "", "alpha": alpha, "groups": []}
    if data.empty:
        out["message"] = "no study-wise rows"
        return out
    if "n_val_groups" not in data.columns:
        out["message"] = "the table does not record how many studies each validation fold holds"
        return out
    loso = data.groupby(group_keys(data))["n_val_groups"].transform("max") == 1
    # every sample its own group is leave-one-out, not leave-one-study-out
    if "n_val" in data.columns:
        loso &= data.groupby(group_keys(data))["n_val"].transform("max") > 1
    data = data[loso]
    if data.empty:
        out["message"] = ("needs one study per validation fold (leave-one-study-out: --folds equal "
                          "to the number of studies)")
        return out
    comp = compare_models(data, alpha=alpha, signal=signal)
    unit = CLUSTER_KEYS + ["train_fraction"]
    for g in comp["groups"]:
        if not g["comparisons"]:
            continue
        keys = {k: g[k] for k in group_keys(data)}
        sub = data
        for k, v in keys.items():
            sub = sub[sub[k] == v]
        sub = sub[sub["seed"] == sub["seed"].min()]
        wide = sub.groupby(unit + ["model"])["balanced_accuracy"].mean().unstack("model")
        group = dict(keys, baseline=g["baseline"], comparisons=[], n_studies=0)
        ratio = _split_ratio(sub)
        for c in g["comparisons"]:
            pair = wide[[c["model"], g["baseline"]]].dropna()
            per = (pair[c["model"]] - pair[g["baseline"]]).groupby(level="fold").mean().to_numpy()
            t = corrected_t(per, ratio)
            lo, hi = t.interval()
            group["comparisons"].append({
                "model": c["model"], "n_studies": int(per.size), "wins": int((per > 0).sum()),
                "ties": int((per == 0).sum()), "losses": int((per < 0).sum()),
                "median_diff": float(np.median(per)) if per.size else np.nan, "mean_diff": t.mean,
                "ci_low": lo, "ci_high": hi, "p_sign": sign_test(per), "p_wilcoxon": wilcoxon_test(per),
                "p_corrected": t.p_two_sided(),
            })
            group["n_studies"] = max(group["n_studies"], int(per.size))
        for c, p_adj in zip(group["comparisons"], holm([c["p_sign"] for c in group["comparisons"]])):
            c["p_adjusted"] = p_adj
        out["groups"].append(group)
    out["available"] = bool(out["groups"])
    if not out["available"]:
        out["message"] = "no leave-one-study-out task has both a linear and a non-linear model"
    return out


# --------------------------------------------------------------------------------------------
# Across tasks
# --------------------------------------------------------------------------------------------

def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi critical difference of mean ranks: ``q_α sqrt(k (k + 1) / (6 n))`` (Demšar 2006),
    with ``q_α`` the studentized range quantile over √2 (2.569 for k = 4 at α = 0.05)."""
    if k < 2 or n < 1:
        return np.nan
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6.0 * n))


def friedman(scores: pd.DataFrame) -> tuple[float, float]:
    """Friedman's chi² over a tasks × models table of scores and the Iman–Davenport F p-value
    (Demšar 2006 recommends the F form; the chi² is conservative). NaN with < 3 models or < 2 tasks."""
    n, k = scores.shape
    if k < 3 or n < 2:
        return np.nan, np.nan
    ranks = scores.rank(axis=1, ascending=False)
    r = ranks.mean(axis=0).to_numpy()
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(r ** 2) - k * (k + 1) ** 2 / 4)
    denom = n * (k - 1) - chi2
    if denom <= 0:
        return float(chi2), 0.0
    f = (n - 1) * chi2 / denom
    return float(chi2), float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))


def cross_task(df, alpha: float = ALPHA, signal: str = "none") -> dict:
    """The view across tasks that a general conclusion rests on (Demšar 2006).

    Tasks are the (dataset, task) pairs of one stratum (split, pretraining, recipe); each task's
    score of a model is its mean balanced accuracy with ``signal`` (over seeds, folds and
    training sizes). Only models run on every task of the stratum are ranked (rank 1 = best,
    ties share the mean rank). Per stratum: ``mean_ranks``, the Friedman test, the Nemenyi
    critical difference ``cd`` (two models whose mean ranks differ by less are not
    distinguishable), and per non-linear model against the task's best linear model: wins,
    ties, losses, mean difference, a two-sided Wilcoxon signed-rank test over tasks (the
    recommended test for two classifiers over data sets; it needs ≥ 6 tasks to reach p < 0.05)
    and a sign test, Holm-adjusted over the non-linear models (Wilcoxon).

    Returns ``{"available", "message", "strata": [...]}``; a stratum has ``split``,
    ``pretraining`` (and ``recipe``), ``tasks`` (list of "dataset / task"), ``models``,
    ``scores`` (tasks × models DataFrame), ``mean_ranks`` (dict), ``friedman_chi2``,
    ``friedman_p``, ``cd``, ``dropped`` (models not run on every task) and ``comparisons``.
    """
    df = _prepare(df)
    data = _real(df, signal)
    out = {"available": False, "message": "", "alpha": alpha, "signal": signal, "strata": []}
    if data.empty:
        out["message"] = f"no usable rows with signal '{signal}'"
        return out
    strata_keys = [k for k in group_keys(data) if k not in ("dataset", "task")]
    for skeys, sub in data.groupby(strata_keys, sort=True):
        stratum = dict(zip(strata_keys, skeys if isinstance(skeys, tuple) else (skeys,)))
        means = sub.groupby(["dataset", "task", "model"])["balanced_accuracy"].mean().unstack("model")
        if len(means) < 2:
            continue
        complete = [m for m in model_order(means.columns) if means[m].notna().all()]
        dropped = [m for m in model_order(means.columns) if m not in complete]
        scores = means[complete]
        if scores.shape[1] < 2:
            continue
        ranks = scores.rank(axis=1, ascending=False)
        chi2, p_f = friedman(scores)
        linear = [m for m in complete if is_linear(m)]
        comparisons = []
        if linear:
            baseline = scores[linear].max(axis=1)
            for model in [m for m in complete if not is_linear(m)]:
                d = (scores[model] - baseline).to_numpy()
                comparisons.append({
                    "model": model, "n_tasks": int(d.size), "wins": int((d > 0).sum()),
                    "ties": int((d == 0).sum()), "losses": int((d < 0).sum()),
                    "mean_diff": float(d.mean()), "p_wilcoxon": wilcoxon_test(d), "p_sign": sign_test(d),
                })
            for c, p_adj in zip(comparisons, holm([c["p_wilcoxon"] for c in comparisons])):
                c["p_adjusted"] = p_adj
        stratum.update(
            tasks=[f"{d} / {t}" for d, t in scores.index], models=complete, scores=scores,
            mean_ranks={m: float(ranks[m].mean()) for m in complete}, friedman_chi2=chi2,
            friedman_p=p_f, cd=nemenyi_cd(len(complete), len(scores), alpha), dropped=dropped,
            comparisons=comparisons, n_tasks=int(len(scores)))
        out["strata"].append(stratum)
    out["available"] = bool(out["strata"])
    if not out["available"]:
        out["message"] = "fewer than two tasks with at least two models in common"
    return out


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

VERDICT_COLUMNS = (
    "question", "dataset", "task", "split", "pretraining", "model", "baseline", "linear",
    "estimate", "mean_model", "mean_baseline", "ci_low", "ci_high", "se", "df", "ratio", "n_clusters",
    "p_value", "p_permutation", "n_permutations", "p_adjusted", "test", "prob_less", "prob_equivalent",
    "prob_greater", "rope", "detectable", "result", "task_verdict", "mean_rank", "cd", "n_tasks",
    "wins", "ties", "losses", "p_sign", "p_wilcoxon",
)


def verdict_table(comparison: dict, signal: dict, across: dict | None = None,
                  studies: dict | None = None) -> pd.DataFrame:
    """The statistics of the verdict as one tidy table (``verdict.parquet``).

    One row per (question, analysis group, model). ``question``: ``a`` (model vs linear
    baseline: ``estimate`` = mean difference, ``prob_greater`` = P(non-linear better)), ``b``
    (after removal: ``estimate`` = mean excess over chance, ``prob_greater`` = P(excess > rope)),
    ``a per study`` (leave-one-study-out: studies as units) and ``a across tasks`` (one row per
    model and stratum: ``mean_rank``, ``cd``; non-linear models also their wins/ties/losses and
    tests against the baseline). ``result`` is the model's words, ``task_verdict`` the group's.
    """
    rows = []
    extra_keys = ["recipe"] if any("recipe" in g for d in (comparison, signal) for g in d.get("groups", [])) else []
    keys = list(BASE_GROUP_KEYS) + extra_keys
    for g in comparison.get("groups", []):
        for c in g["comparisons"]:
            rows.append({**{k: g.get(k) for k in keys}, "question": "a", "model": c["model"],
                         "baseline": c["baseline"], "linear": False, "estimate": c["mean_diff"],
                         "mean_model": c["mean_model"], "mean_baseline": c["mean_baseline"],
                         "ci_low": c["ci_low"], "ci_high": c["ci_high"], "se": c["se"], "df": c["df"],
                         "ratio": c["ratio"], "n_clusters": c["n_clusters"], "p_value": c["p_value"],
                         "p_adjusted": c["p_adjusted"], "test": "corrected t",
                         "prob_less": c["prob_linear_better"], "prob_equivalent": c["prob_equivalent"],
                         "prob_greater": c["prob_nonlinear_better"], "rope": comparison["rope"],
                         "detectable": c["detectable"], "result": c["verdict"], "task_verdict": g["verdict"]})
    for g in signal.get("groups", []):
        for m in g["models"]:
            rows.append({**{k: g.get(k) for k in keys}, "question": "b", "model": m["model"],
                         "linear": m["linear"], "estimate": m["excess"], "mean_model": m["mean"],
                         "mean_baseline": m["chance"], "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                         "se": m["se"], "df": m["df"], "ratio": m["ratio"], "n_clusters": m["n_clusters"],
                         "p_value": m["p_value"], "p_permutation": m["p_permutation"],
                         "n_permutations": m["n_permutations"], "p_adjusted": m["p_adjusted"],
                         "test": m["test"], "prob_less": m["prob_below"], "prob_equivalent": m["prob_at_chance"],
                         "prob_greater": m["prob_above"], "rope": signal["rope"], "detectable": m["detectable"],
                         "result": "above chance" if m["above_chance"] else "at chance",
                         "task_verdict": g["verdict"]})
    for g in (studies or {}).get("groups", []):
        for c in g["comparisons"]:
            rows.append({**{k: g.get(k) for k in keys}, "question": "a per study", "model": c["model"],
                         "baseline": g["baseline"], "linear": False, "estimate": c["mean_diff"],
                         "ci_low": c["ci_low"], "ci_high": c["ci_high"], "p_value": c["p_corrected"],
                         "p_sign": c["p_sign"], "p_wilcoxon": c["p_wilcoxon"], "p_adjusted": c["p_adjusted"],
                         "test": "sign test", "n_tasks": c["n_studies"], "wins": c["wins"], "ties": c["ties"],
                         "losses": c["losses"]})
    for s in (across or {}).get("strata", []):
        by = {c["model"]: c for c in s["comparisons"]}
        for model in s["models"]:
            c = by.get(model, {})
            rows.append({**{k: s.get(k, "") for k in keys}, "dataset": "", "task": "",
                         "question": "a across tasks", "model": model, "linear": is_linear(model),
                         "mean_rank": s["mean_ranks"][model], "cd": s["cd"], "n_tasks": s["n_tasks"],
                         "estimate": c.get("mean_diff", np.nan), "wins": c.get("wins"), "ties": c.get("ties"),
                         "losses": c.get("losses"), "p_sign": c.get("p_sign", np.nan),
                         "p_wilcoxon": c.get("p_wilcoxon", np.nan), "p_adjusted": c.get("p_adjusted", np.nan),
                         "test": "Wilcoxon signed-rank" if c else ""})
    columns = list(VERDICT_COLUMNS[:5]) + extra_keys + list(VERDICT_COLUMNS[5:])
    table = pd.DataFrame(rows, columns=columns)
    for col in ("n_clusters", "n_permutations", "n_tasks", "wins", "ties", "losses", "df"):
        table[col] = pd.array(table[col], dtype="Int64")
    table["linear"] = table["linear"].astype("boolean")
    return table


__all__ = [
    "ALPHA", "BEAT", "CorrectedT", "INCONCLUSIVE", "LOSE", "NOT_RUN", "NOT_TESTED", "NO_SIGNAL",
    "ROPE", "SIGNAL", "TIE", "bayes_correlated", "compare_models", "corrected_t", "cross_task",
    "friedman", "group_keys", "holm", "is_linear", "nemenyi_cd", "nonlinear_signal_test",
    "per_study", "permutation_test", "sign_test", "verdict_table", "wilcoxon_test",
]
