"""Per-gene 0–1 scaling and selection of the most variable genes (the paper's preprocessing).

:func:`preprocess` also applies the missing-value policy and the other normalisations
(:mod:`linsig.data.missing`, :mod:`linsig.data.normalize`) in that order, before gene selection.

The paper scales every gene to [0, 1] and then keeps the N most variable genes. Both steps need
only per-gene statistics (min, max, sum, sum of squares), so they are written in terms of
:class:`GeneStats`, which can be accumulated over row chunks for compendia that do not fit in
memory and is computed in one pass for in-memory data.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np

from linsig.data.io import dense_matrix
from linsig.data.missing import handle_missing, has_missing
from linsig.data.normalize import check_method, group_codes, scaled_variance, selection_variance
from linsig.data.normalize import normalize as normalize_matrix
from linsig.errors import LinsigInputError


@dataclass
class GeneStats:
    """Per-gene running statistics over samples, mergeable across row chunks.

    Means and variances are merged with Chan et al.'s parallel formula in float64, so that
    streaming over chunks gives the same answer as one pass over all rows.
    """

    n: int
    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations from the mean

    @classmethod
    def empty(cls, n_genes: int) -> "GeneStats":
        return cls(
            n=0,
            minimum=np.full(n_genes, np.inf),
            maximum=np.full(n_genes, -np.inf),
            mean=np.zeros(n_genes),
            m2=np.zeros(n_genes),
        )

    @classmethod
    def of(cls, X: np.ndarray) -> "GeneStats":
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] == 0:
            raise LinsigInputError(f"expected a non-empty samples × genes matrix, got shape {X.shape}")
        mean = X.mean(axis=0, dtype=np.float64)
        # Centre in float64 (a float32 centre loses ~7 digits and would make chunked and
        # one-pass statistics disagree at 1e-7); column blocks bound the float64 copy's memory.
        m2 = np.empty(X.shape[1])
        step = max(1, (1 << 24) // max(X.shape[0], 1))  # ~128 MiB of float64 per block
        for j in range(0, X.shape[1], step):
            centered = X[:, j:j + step].astype(np.float64) - mean[j:j + step]
            m2[j:j + step] = np.einsum("ij,ij->j", centered, centered)
        return cls(
            n=X.shape[0],
            minimum=X.min(axis=0).astype(np.float64),
            maximum=X.max(axis=0).astype(np.float64),
            mean=mean,
            m2=m2,
        )

    def update(self, X: np.ndarray) -> "GeneStats":
        """Merge the statistics of another chunk of rows into these (in place); return self."""
        other = GeneStats.of(X)
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        self.minimum = np.minimum(self.minimum, other.minimum)
        self.maximum = np.maximum(self.maximum, other.maximum)
        self.n = n
        return self

    def scaled_variance(self) -> np.ndarray:
        """Variance (ddof=1) each gene would have after 0–1 scaling; 0 for constant genes."""
        return scaled_variance(self.m2 / max(self.n - 1, 1), self.maximum - self.minimum)

    def scale_span(self) -> np.ndarray:
        span = self.maximum - self.minimum
        # Constant genes map to 0 rather than dividing by zero (sklearn's MinMaxScaler does the same).
        span[span == 0] = 1.0
        return span


def scale_01(X: np.ndarray, stats: GeneStats | None = None) -> np.ndarray:
    """Scale every gene (column) to [0, 1] with its min and max; returns a new float32 array."""
    X = np.asarray(X)
    stats = stats or GeneStats.of(X)
    out = X.astype(np.float32, copy=True)
    out -= stats.minimum.astype(np.float32)
    out /= stats.scale_span().astype(np.float32)
    return out


def top_variable_genes(stats: GeneStats, n_top: int) -> np.ndarray:
    """Indices (sorted ascending) of the ``n_top`` genes with the largest 0–1-scaled variance.

    Ties are broken by column order so that the selection is deterministic.
    """
    return top_genes(stats.scaled_variance(), n_top)


def top_genes(score: np.ndarray, n_top: int) -> np.ndarray:
    """Indices (sorted ascending) of the ``n_top`` largest scores; ties broken by column order."""
    if n_top <= 0:
        raise LinsigInputError(f"n_top must be positive, got {n_top}")
    if n_top >= score.size:
        return np.arange(score.size)
    order = np.argsort(-score, kind="stable")
    return np.sort(order[:n_top])


def preprocess(adata: ad.AnnData, n_top_genes: int | None = 5000, normalize: str = "minmax",
               group: str | None = None, missing: str = "error") -> ad.AnnData:
    """Missing values, then normalisation, then the ``n_top_genes`` most variable genes.

    ``normalize`` is ``minmax`` (the paper's 0–1 scaling; the default), ``study-zscore`` (each
    gene standardised within each group of the ``obs`` column ``group``) or ``none``; see
    :mod:`linsig.data.normalize`. ``missing`` is ``error``,
    ``drop-genes`` or ``impute`` (NaN kept, filled per fold from training samples); see
    :mod:`linsig.data.missing`. No step uses the labels. Returns a new AnnData (float32); ``None``
    keeps all genes. What was done goes to ``uns["linsig"]["preprocessing"]``.
    """
    method = check_method(normalize, group)  # the Python API's edge: the CLI and experiment files resolved theirs
    source = adata.uns.get("linsig", {}).get("source", "the dataset")
    groups = None
    if method == "study-zscore":
        if group not in adata.obs.columns:
            raise LinsigInputError(f"{source}: no group column {group!r} in the sample metadata; columns are: "
                                   f"{', '.join(map(str, adata.obs.columns))}")
        groups = group_codes(adata.obs[group], source, group)
    X = dense_matrix(adata, allow_nan=True)
    complete, missing_info = handle_missing(X, adata.obs_names, adata.var_names, source, missing)
    var = adata.var
    if not complete.all():
        X, var = X[:, complete], var.iloc[np.flatnonzero(complete)]
    if method != "study-zscore" and not has_missing(X):
        # complete data: the paper's one-pass statistics (shared with the chunked compendium builder)
        stats = GeneStats.of(X)
        keep = top_variable_genes(stats, n_top_genes) if n_top_genes else np.arange(X.shape[1])
        if method == "minmax":
            sub = GeneStats(stats.n, stats.minimum[keep], stats.maximum[keep], stats.mean[keep], stats.m2[keep])
            Xout = scale_01(X[:, keep], sub)
        else:
            Xout = X[:, keep].astype(np.float32)
    else:
        Xn = normalize_matrix(X, method, groups)
        keep = top_genes(selection_variance(Xn, method, groups), n_top_genes) if n_top_genes else np.arange(X.shape[1])
        Xout = np.ascontiguousarray(Xn[:, keep])
    out = ad.AnnData(X=Xout, obs=adata.obs.copy(), var=var.iloc[keep].copy())
    out.uns.update({k: v for k, v in adata.uns.items()})
    info = dict(out.uns.get("linsig", {}))
    info["preprocessing"] = {"scale_01": method == "minmax", "normalize": method,
                             "normalize_group": group if groups is not None else None,
                             "n_top_genes": int(len(keep)), "missing": missing_info}
    out.uns["linsig"] = info
    return out
