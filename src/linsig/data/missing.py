"""Missing expression values: refuse them, drop the genes that have them, or impute per fold.

Pooled studies often have missing values (two-colour arrays lose spots). Three policies
(``--missing``):

* ``error`` (default) — stop with a message that counts the missing values and names the options;
* ``drop-genes`` — remove every gene with a missing value before normalisation and gene selection;
* ``impute`` — keep NaN through normalisation and gene selection (both NaN-aware), and fill each
  gene's missing values inside every cross-validation fold with that gene's mean over the
  *training* samples of the fold (:func:`impute_fold`, :func:`impute_from_rows`). Validation
  values never enter the statistics, and the same holds for the inner folds of tuning.

Imputation comes before linear signal removal, which cannot take NaN.
"""

from __future__ import annotations

import numpy as np

from linsig.data.io import _preview  # the same "a, b, … and N more" as the reading errors
from linsig.errors import LinsigInputError

MISSING_MODES = ("error", "impute", "drop-genes")


def check_mode(mode: str) -> str:
    if mode not in MISSING_MODES:
        raise LinsigInputError(f"missing-value mode must be one of {', '.join(MISSING_MODES)}, not {mode!r}")
    return mode


def has_missing(X: np.ndarray) -> bool:
    """Whether ``X`` holds a NaN, without a boolean copy of a large matrix.

    A float64 sum is NaN exactly when an entry is NaN (inputs hold no inf: they are checked on
    reading), and numpy sums in buffered blocks.
    """
    X = np.asarray(X)
    return X.size > 0 and bool(np.isnan(np.sum(X, dtype=np.float64)))


def handle_missing(X: np.ndarray, sample_ids, gene_ids, source, mode: str = "error") -> tuple[np.ndarray, dict]:
    """Apply ``mode`` to a samples × genes matrix; return the genes to keep and a summary.

    ``error`` raises :class:`LinsigInputError` when ``X`` holds NaN; ``drop-genes`` keeps only
    complete genes; ``impute`` keeps every gene (NaN is filled later, per fold). The summary
    (``mode``, ``n_missing``, ``n_samples_with_missing``, ``n_genes_with_missing``,
    ``n_genes_dropped``) goes to the run's summary.
    """
    check_mode(mode)
    X = np.asarray(X)
    keep = np.ones(X.shape[1], dtype=bool)
    info = {"mode": mode, "n_missing": 0, "n_samples_with_missing": 0, "n_genes_with_missing": 0, "n_genes_dropped": 0}
    if not has_missing(X):
        return keep, info
    nan = np.isnan(X)
    gene_nan = nan.any(axis=0)
    sample_nan = nan.any(axis=1)
    info.update(n_missing=int(nan.sum()), n_samples_with_missing=int(sample_nan.sum()),
                n_genes_with_missing=int(gene_nan.sum()))
    if mode == "error":
        n_genes = int(gene_nan.sum())
        raise LinsigInputError(
            f"{source}: {info['n_missing']:,} missing (NaN) expression values in {info['n_samples_with_missing']:,} "
            f"samples and {n_genes:,} genes (e.g. samples {_preview(np.asarray(sample_ids)[sample_nan])}; genes "
            f"{_preview(np.asarray(gene_ids)[gene_nan])}); choose --missing impute (fill each gene from the "
            f"training fold's mean) or --missing drop-genes (remove the {n_genes:,} genes with a missing value)"
        )
    if mode == "drop-genes":
        keep = ~gene_nan
        info["n_genes_dropped"] = int(gene_nan.sum())
        if not keep.any():
            raise LinsigInputError(f"{source}: every gene has a missing value; --missing drop-genes would drop them "
                                   f"all (use --missing impute)")
    return keep, info


def training_means(X_tr: np.ndarray) -> np.ndarray:
    """Per-gene means over the training rows, ignoring NaN; 0 for a gene missing in every row.

    A gene with no training value carries no information the model could learn, so a constant
    (0) is as good as any and uses nothing outside the training rows.
    """
    X_tr = np.asarray(X_tr)
    n = (~np.isnan(X_tr)).sum(axis=0)
    total = np.nansum(X_tr, axis=0, dtype=np.float64)
    return np.divide(total, n, out=np.zeros(X_tr.shape[1]), where=n > 0)


def _fill(X: np.ndarray, means: np.ndarray) -> np.ndarray:
    if not has_missing(X):
        return X
    out = np.array(X, dtype=np.float32, copy=True)
    rows, cols = np.nonzero(np.isnan(out))
    out[rows, cols] = means[cols]
    return out


def impute_fold(X_tr: np.ndarray, X_va: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN in a training and a validation matrix with the training matrix's gene means.

    Returns the inputs themselves when they hold no NaN, else filled float32 copies.
    """
    if not (has_missing(X_tr) or has_missing(X_va)):
        return X_tr, X_va
    means = training_means(X_tr)
    return _fill(X_tr, means), _fill(X_va, means)


def impute_from_rows(X: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    """``X`` with every NaN filled by the gene's mean over ``train_rows`` only (a fold's training set).

    Rows outside ``train_rows`` (the validation fold) are filled too, with the training means;
    their own values never enter the statistics. Returns ``X`` itself when it holds no NaN.
    """
    if not has_missing(X):
        return X
    return _fill(X, training_means(np.asarray(X)[train_rows]))
