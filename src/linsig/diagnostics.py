"""Checks on the models behind a comparison: is any of them clearly below what its class reaches?

A comparison of linear and non-linear models is only as good as its weakest model. Whenever a
run trains a linear model with the ``paper`` recipe, every such unit also fits the converged
ridge logistic regression (the strong recipe's ``logreg``) on the same folds, training subsets and
signal modes, and stores its balanced accuracy as ``reference_balanced_accuracy``.
:func:`undertraining` compares every model of the run with that reference on the splits both were
scored on: a model more than ``margin`` below it is *under-trained* — a linear model cannot do
worse than the optimum of a linear model, and a network that contains linear models can do as
well — so a verdict about it is about its optimiser, not its model class.
"""

from __future__ import annotations

import pandas as pd

MARGIN = 0.02
MESSAGE = "under-trained: the comparison with this model is not about its model class"
SPLIT_KEYS = ["dataset", "task", "split", "pretraining", "signal", "seed", "fold", "train_fraction"]
MODEL_KEYS = ["dataset", "task", "split", "pretraining", "signal", "recipe", "model"]
COLUMNS = MODEL_KEYS + ["balanced_accuracy", "reference_balanced_accuracy", "gap", "n_matched", "undertrained"]


def undertraining(df: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """One row per (dataset, task, split, pretraining, signal, recipe, model) that has a reference.

    ``gap`` is the model's mean balanced accuracy minus the reference's, both over the splits
    they share; ``undertrained`` is ``gap < -margin``. Empty when the run has no reference.
    """
    if "reference_balanced_accuracy" not in df.columns:
        return pd.DataFrame(columns=COLUMNS)
    df = df[df["status"] == "ok"] if "status" in df.columns else df
    df = df.assign(**{k: df[k] if k in df.columns else "none" for k in ("pretraining", "recipe")})
    reference = (df.dropna(subset=["reference_balanced_accuracy"])
                 .groupby(SPLIT_KEYS, as_index=False)["reference_balanced_accuracy"].mean())
    if reference.empty:
        return pd.DataFrame(columns=COLUMNS)
    matched = df.drop(columns="reference_balanced_accuracy").merge(reference, on=SPLIT_KEYS, how="inner")
    matched = matched.dropna(subset=["balanced_accuracy"])
    out = (matched.groupby(MODEL_KEYS, as_index=False)
           .agg(balanced_accuracy=("balanced_accuracy", "mean"),
                reference_balanced_accuracy=("reference_balanced_accuracy", "mean"),
                n_matched=("balanced_accuracy", "size")))
    out["gap"] = out["balanced_accuracy"] - out["reference_balanced_accuracy"]
    out["undertrained"] = out["gap"] < -margin
    return out[COLUMNS].sort_values(MODEL_KEYS, ignore_index=True)


def undertrained_sentences(df: pd.DataFrame, margin: float = MARGIN) -> list[str]:
    """Plain-language flags, one per under-trained (model, task, signal)."""
    table = undertraining(df, margin)
    out = []
    for row in table[table["undertrained"]].itertuples(index=False):
        out.append(f"{row.model} ({row.recipe} recipe) on {row.dataset} / {row.task}, signal {row.signal}: "
                   f"balanced accuracy {row.balanced_accuracy:.3f}, {-row.gap:.3f} below the converged logistic "
                   f"regression ({row.reference_balanced_accuracy:.3f}) on the same splits — {MESSAGE}")
    return out
