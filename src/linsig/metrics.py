"""Balanced accuracy without scikit-learn's per-call input validation, and the ROC AUC.

The network search scores every candidate after every epoch (about a thousand calls per unit),
and ``sklearn.metrics.balanced_accuracy_score`` spends ~2 ms a call checking its inputs and
building a confusion matrix: 8 % of an ``mlp5`` unit on the Fig 4 grid. The value is the same:
the mean recall over the classes present in ``y_true`` (predictions of other labels count as
misses), ``adjusted=False``.
"""

from __future__ import annotations

import numpy as np


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean per-class recall over the classes of ``y_true`` (scikit-learn's ``balanced_accuracy_score``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must be 1-d and of one length, got shapes {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("balanced accuracy of an empty set of samples is undefined")
    _, codes, counts = np.unique(y_true, return_inverse=True, return_counts=True)
    hits = np.bincount(codes.ravel(), weights=(y_true == y_pred), minlength=counts.size)
    return float(np.mean(hits / counts))


# --------------------------------------------------------------------------------------------
# Area under the ROC curve: a score that does not depend on where the threshold falls
# --------------------------------------------------------------------------------------------
# Balanced accuracy scores the predicted class, so a batch shift that moves every score of a
# study moves it across the threshold; the AUC only asks whether the scores rank the classes.

#: The metrics the verdict can use (``--metric``): the result column and its chance level
#: (``None``: the row's own ``chance_balanced_accuracy``; an AUC's chance is 0.5 whatever the
#: classes).
VERDICT_METRICS = {"balanced_accuracy": None, "roc_auc": 0.5}
METRIC_NAMES = {"balanced_accuracy": "balanced accuracy", "roc_auc": "ROC AUC"}


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann–Whitney AUC: P(score of a positive > score of a negative), ties counting one half."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true, scores, classes=None) -> float:
    """Area under the ROC curve of continuous ``scores`` for ``y_true``.

    Binary: ``scores`` is one column (the score of ``classes[1]``, as scikit-learn's
    ``decision_function``) or two (``predict_proba``: column 1 is used). Multiclass: one column per
    class of ``classes`` (default ``0..K-1``), one-vs-rest AUC per class present in ``y_true``,
    averaged unweighted (macro; scikit-learn's ``roc_auc_score(multi_class="ovr")``, which refuses
    a validation fold missing a class, where this averages over the classes it holds). NaN when
    ``y_true`` holds a single class.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=float)
    if y_true.ndim != 1 or scores.shape[0] != y_true.size:
        raise ValueError(f"y_true must be 1-d with one score row per sample, got shapes {y_true.shape} and {scores.shape}")
    if not np.all(np.isfinite(scores)):
        return float("nan")  # a diverged network: no ranking to score
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if classes is None:
        classes = np.arange(2 if scores.ndim == 1 else scores.shape[1])
    classes = np.asarray(classes)
    if scores.ndim == 1 or classes.size == 2:
        score = scores if scores.ndim == 1 else scores[:, 1]
        return _binary_auc(y_true == classes[1], score)
    if scores.shape[1] != classes.size:
        raise ValueError(f"{scores.shape[1]} score columns for {classes.size} classes")
    aucs = [_binary_auc(y_true == c, scores[:, k]) for k, c in enumerate(classes) if np.any(y_true == c)]
    aucs = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def continuous_scores(model, X) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, classes)``: a fitted model's continuous scores on ``X`` for :func:`roc_auc`.

    ``predict_proba`` when the model has it, else ``decision_function``; a model that found
    nothing to learn and predicts one class (``constant_``) scores every sample alike, so that its
    AUC is 0.5 rather than that of its solver's noise. A model with neither method is a bug in its
    wrapper: every linsig model must rank samples, so this raises ``TypeError``.
    """
    classes = np.asarray(getattr(model, "classes_", []))
    if getattr(model, "constant_", None) is not None:
        return np.zeros(len(X)), classes
    for method in ("predict_proba", "decision_function"):
        if hasattr(model, method):
            return np.asarray(getattr(model, method)(X), dtype=float), classes
    raise TypeError(f"{type(model).__name__} has neither predict_proba nor decision_function: no ROC AUC")


def verdict_view(df, metric: str = "balanced_accuracy"):
    """The results table as the verdict's statistics read it, scored by ``metric``.

    :mod:`linsig.stats` tests the ``balanced_accuracy`` column against ``chance_balanced_accuracy``;
    for ``roc_auc`` this returns a copy whose ``balanced_accuracy`` is the AUC and whose chance is
    0.5, so that every test, interval and word of the verdict applies unchanged. Raises
    :class:`~linsig.errors.LinsigInputError` for an unknown metric or a table without it (written
    before linsig recorded the AUC).
    """
    from linsig.errors import LinsigInputError

    if metric not in VERDICT_METRICS:
        raise LinsigInputError(f"--metric {metric!r}: choose one of {', '.join(VERDICT_METRICS)}")
    if metric == "balanced_accuracy":
        return df
    values = df[metric].astype(float) if metric in df.columns else None
    if values is None or not np.isfinite(values.to_numpy()).any():
        raise LinsigInputError(f"results table: no {metric} values (column {metric!r} missing or empty; tables "
                               "written before linsig recorded it); rerun, or use --metric balanced_accuracy")
    return df.assign(balanced_accuracy=values, chance_balanced_accuracy=VERDICT_METRICS[metric])
