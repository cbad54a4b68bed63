"""Checks on the models behind a comparison: is any of them clearly below what its class reaches?

A comparison of linear and non-linear models is only as good as its weakest model. Whenever a
run trains a linear model with the ``paper`` recipe, the unit also fits the converged ridge
logistic regression (the strong recipe's ``logreg``) on the same folds, training subsets and signal
modes, and stores its balanced accuracy as ``reference_balanced_accuracy``. :func:`undertraining`
compares every model of the run with that reference on the splits both were scored on, before
signal removal (question (a) of the verdict; after removal the reference sits at chance and a
gap is noise): a model clearly more than ``margin`` below a converged linear model on the same
data — the mean gap below ``-margin`` *and* its 95% interval over (seed, fold) splits below 0 — is
*under-trained*. Its model class reaches at least that far (a network can represent the linear
model; the linear SVM solves almost the same problem), so a verdict about it is about its
optimiser, not its model class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MARGIN = 0.02
MESSAGE = "under-trained: the comparison with this model is not about its model class"
SPLIT_KEYS = ["dataset", "task", "split", "pretraining", "signal", "seed", "fold", "train_fraction"]
MODEL_KEYS = ["dataset", "task", "split", "pretraining", "signal", "recipe", "model"]
COLUMNS = MODEL_KEYS + ["balanced_accuracy", "reference_balanced_accuracy", "gap", "gap_ci_high", "n_matched",
                        "undertrained"]


def undertraining(df: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """One row per (dataset, task, split, pretraining, recipe, model) that has a reference (signal ``none``).

    ``gap`` is the model's mean balanced accuracy minus the reference's over the splits they
    share, ``gap_ci_high`` the upper end of its 95% t-interval over (seed, fold) splits;
    ``undertrained`` is ``gap < -margin`` and ``gap_ci_high < 0``. Empty without a reference.
    """
    if "reference_balanced_accuracy" not in df.columns:
        return pd.DataFrame(columns=COLUMNS)
    df = df[df["status"] == "ok"] if "status" in df.columns else df
    df = df[df["signal"] == "none"]
    df = df.assign(**{k: df[k] if k in df.columns else "none" for k in ("pretraining", "recipe")})
    reference = (df.dropna(subset=["reference_balanced_accuracy"])
                 .groupby(SPLIT_KEYS, as_index=False)["reference_balanced_accuracy"].mean())
    if reference.empty:
        return pd.DataFrame(columns=COLUMNS)
    matched = df.drop(columns="reference_balanced_accuracy").merge(reference, on=SPLIT_KEYS, how="inner")
    matched = matched.dropna(subset=["balanced_accuracy"])
    matched = matched.assign(gap=matched["balanced_accuracy"] - matched["reference_balanced_accuracy"])
    out = (matched.groupby(MODEL_KEYS, as_index=False)
           .agg(balanced_accuracy=("balanced_accuracy", "mean"),
                reference_balanced_accuracy=("reference_balanced_accuracy", "mean"),
                n_matched=("balanced_accuracy", "size")))
    out["gap"] = out["balanced_accuracy"] - out["reference_balanced_accuracy"]
    splits = matched.groupby(MODEL_KEYS + ["seed", "fold"])["gap"].mean()  # one value per (seed, fold)
    out["gap_ci_high"] = [_upper(splits.xs(tuple(key), level=MODEL_KEYS)) for key in out[MODEL_KEYS].itertuples(index=False)]
    out["undertrained"] = (out["gap"] < -margin) & (out["gap_ci_high"] < 0)
    return out[COLUMNS].sort_values(MODEL_KEYS, ignore_index=True)


def _upper(gaps: pd.Series) -> float:
    """Upper end of the two-sided 95% t-interval of the mean (the mean itself with one split)."""
    values = gaps.to_numpy(dtype=float)
    if values.size < 2 or np.std(values, ddof=1) == 0:
        return float(np.mean(values))
    half = stats.t.ppf(0.975, values.size - 1) * np.std(values, ddof=1) / np.sqrt(values.size)
    return float(np.mean(values) + half)


def undertrained_sentences(df: pd.DataFrame, margin: float = MARGIN) -> list[str]:
    """Plain-language flags, one per under-trained (model, task, signal)."""
    table = undertraining(df, margin)
    out = []
    for row in table[table["undertrained"]].itertuples(index=False):
        out.append(f"{row.model} ({row.recipe} recipe) on {row.dataset} / {row.task}: balanced accuracy "
                   f"{row.balanced_accuracy:.3f}, {-row.gap:.3f} below the converged logistic regression "
                   f"({row.reference_balanced_accuracy:.3f}) on the same splits — {MESSAGE}")
    return out
