"""Label-free per-gene normalisation, applied to the whole dataset before gene selection.

* ``minmax`` — the paper's: each gene scaled to [0, 1] with its minimum and maximum over all
  samples. Right for one uniform compendium (GTEx, Recount3 built by ``linsig data``).
* ``study-zscore`` — each gene centred and scaled to unit variance *within each group* (study),
  from that group's own samples. Right when studies differ in platform or scale (two-colour log
  ratios next to log2 intensities). A validation study is standardised with its own samples'
  statistics: transductive, but it uses no labels.
* ``none`` — values as they are.

Nothing here sees a label, so permuting the labels cannot change the normalised matrix. Missing
values (NaN) are ignored by every statistic and stay NaN (see :mod:`linsig.data.missing`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from linsig.errors import LinsigInputError

NORMALIZATIONS = ("minmax", "study-zscore", "none")


def check_method(method: str, group: str | None = None) -> str:
    if method not in NORMALIZATIONS:
        raise LinsigInputError(f"normalisation must be one of {', '.join(NORMALIZATIONS)}, not {method!r}")
    if method == "study-zscore" and not group:
        raise LinsigInputError(
            "--normalize study-zscore standardises each gene within each group (study) and needs a group "
            "column: give --group COLUMN (or use --normalize minmax)")
    return method


class ContradictoryNormalization(LinsigInputError):
    """``scale = false`` (``--no-scale``) given with a normalisation other than ``none``."""

    def __init__(self, normalize: str):
        super().__init__(f"scale = false contradicts normalize = {normalize!r}")
        self.normalize = normalize


def resolve_normalization(normalize: str | None, scale: bool = True) -> str:
    """The one normalisation a run uses, from ``normalize`` and the older switch ``scale``.

    Called once, at the edge (``linsig run``'s options, an experiment file's dataset table); below
    it only the validated method travels. ``None`` means the paper's ``minmax`` (``none`` when
    ``scale`` is false). The group ``study-zscore`` needs is checked where it is known
    (:func:`check_method` with the ``--group`` column; an experiment's tasks).
    """
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise LinsigInputError(f"normalisation must be one of {', '.join(NORMALIZATIONS)}, not {normalize!r}")
    if normalize not in (None, "none") and scale is False:
        raise ContradictoryNormalization(normalize)
    return normalize or ("minmax" if scale else "none")


def normalization_key(method: str) -> dict:
    """How an experiment unit's key records the normalisation: ``scale`` for the paper's two
    methods (the only switch before ``normalize`` existed, so old keys stay valid), ``normalize``
    for the others."""
    key = {"scale": method != "none"}
    if method not in ("minmax", "none"):
        key["normalize"] = method
    return key


def normalization_from_key(key: dict) -> str:
    """The method a unit key records (:func:`normalization_key` read back)."""
    return key.get("normalize") or ("minmax" if key.get("scale", True) else "none")


def group_codes(groups, source: str = "dataset", group: str = "group") -> np.ndarray:
    """Integer codes of the groups; every group needs two samples to have a spread."""
    values = pd.Series(np.asarray(groups, dtype=object))
    if values.isna().any():
        raise LinsigInputError(f"{source}: group column {group!r} is empty for {int(values.isna().sum())} samples; "
                               "study-zscore needs every sample's group")
    names, codes = np.unique(values.astype(str).to_numpy(), return_inverse=True)
    sizes = np.bincount(codes)
    if (sizes < 2).any():
        single = names[sizes < 2]
        raise LinsigInputError(
            f"{source}: {single.size} group(s) of {group!r} hold a single sample ({', '.join(map(str, single[:5]))}"
            f"{' …' if single.size > 5 else ''}); study-zscore would set all their values to 0: use "
            "--normalize minmax or a coarser group column")
    return codes


def minmax(X: np.ndarray) -> np.ndarray:
    """Each gene (column) scaled to [0, 1] over all samples, NaN ignored; constant genes become 0."""
    out = np.array(X, dtype=np.float32, copy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN genes stay NaN
        lo = np.nanmin(out, axis=0).astype(np.float64)
        span = np.nanmax(out, axis=0) - lo
    span[~(span > 0)] = 1.0
    # the arithmetic of preprocess.scale_01 (float64 span, float32 steps): identical on complete data
    out -= lo.astype(np.float32)
    out /= span.astype(np.float32)
    return out


def study_zscore(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each gene standardised within each group (mean 0, population SD 1), NaN ignored.

    A gene constant within a group becomes 0 there; a gene missing in every sample of a group
    stays NaN there. Statistics in float64.
    """
    X = np.asarray(X)
    out = np.empty(X.shape, dtype=np.float32)
    for g in np.unique(groups):
        rows = groups == g
        block = X[rows].astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a gene missing in the whole group
            mean = np.nanmean(block, axis=0)
            sd = np.nanstd(block, axis=0)
        sd[~(sd > 0)] = 1.0
        out[rows] = (block - mean) / sd
    return out


def normalize(X: np.ndarray, method: str, groups: np.ndarray | None = None) -> np.ndarray:
    """The normalised float32 matrix (a new array) for a validated ``method``; ``groups`` are
    needed for ``study-zscore``."""
    if method == "minmax":
        return minmax(X)
    if method == "study-zscore":
        return study_zscore(X, np.asarray(groups))
    return np.array(X, dtype=np.float32, copy=True)


def scaled_variance(variance: np.ndarray, span: np.ndarray) -> np.ndarray:
    """The variance each gene would have after 0–1 scaling, from its variance and its span
    (max − min); 0 for constant genes (scikit-learn's MinMaxScaler maps them to 0 too) and for
    genes without a variance (NaN: all missing, or one sample)."""
    span = np.array(span, dtype=np.float64, copy=True)
    span[~(span > 0)] = 1.0
    return np.nan_to_num(variance / span**2, nan=0.0)


def _scaled_variance(X: np.ndarray) -> np.ndarray:
    """Variance (ddof=1) of each gene after 0–1 scaling, NaN ignored; 0 for constant genes."""
    X = np.asarray(X, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        span = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
        var = np.nanvar(X, axis=0, ddof=1)
    return scaled_variance(var, span)


def selection_variance(X: np.ndarray, method: str, groups: np.ndarray | None = None) -> np.ndarray:
    """The per-gene score the ``n_top_genes`` selection ranks on, label-free and NaN-aware.

    For ``minmax`` and ``none`` it is the paper's: the variance after 0–1 scaling over all
    samples. After ``study-zscore`` every gene has unit variance in every study, so genes are
    ranked by the mean over groups of that same 0–1-scaled variance computed within each group:
    the paper's criterion, applied inside each study.
    """
    if method != "study-zscore":
        return _scaled_variance(X)
    groups = np.asarray(groups)
    return np.mean([_scaled_variance(np.asarray(X)[groups == g]) for g in np.unique(groups)], axis=0)
