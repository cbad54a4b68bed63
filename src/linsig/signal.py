"""Removal of the linear signal associated with labels (limma ``removeBatchEffect`` in NumPy).

The paper (Heil, Crawford & Greene 2023) tests for non-linear signal by regressing out every
*linear* trace of the class labels with R limma's ``removeBatchEffect`` (labels passed as the
``batch``) and checking whether a model can still predict them. This module computes exactly
what limma computes, without R:

    ``remove_linear_signal(X, labels, design, covariates)``
    == ``t(limma::removeBatchEffect(t(X), batch=labels, design=design, covariates=covariates))``

Model (per gene ``g``, on the samples where ``g`` is finite)::

    x_g = D a_g + B b_g + C c_g + e_g,        result_g = x_g - B b_g - C c_g

where ``D`` is the design (an intercept column by default), ``B`` codes the labels as a factor
with sum-to-zero contrasts (``contr.sum``: level ``j < K`` is column ``j``, the last level is
``-1`` in every column) and ``C`` holds the covariates; the coefficients are ordinary least
squares. With the default design, ``B b_g`` for a sample of class ``k`` is the mean of class
``k`` minus the unweighted mean of the class means, so every class ends with the same mean.

See ``docs/signal.md`` for the NA handling, the modes used by ``linsig run`` and benchmarks.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from linsig.errors import LinsigInputError
from linsig.system import available_cores

__all__ = [
    "SIGNAL_MODES",
    "remove_linear_signal",
    "remove_linear_signal_adata",
    "remove_signal_split",
]

#: Values of the ``signal`` column of the results table (see docs/signal.md).
SIGNAL_MODES = ("none", "removed", "removed_full", "study")

# Tolerance R's lm.fit passes to LINPACK dqrdc2 when deciding that a column is aliased.
_LM_FIT_TOL = 1e-7

# Rows per block when streaming over X: a float64 block of ~8 MiB stays cache-friendly while
# keeping BLAS calls large enough to be efficient, and bounds the extra memory to a few blocks.
_BLOCK_BYTES = 8 * 2**20

# Below this many entries threads and BLAS thread limits cost more than they save.
_PARALLEL_MIN_SIZE = 4_000_000
_MAX_WORKERS = 8


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def remove_linear_signal(X, labels, design=None, covariates=None):
    """Remove the linear signal of ``labels`` from every gene, as limma's ``removeBatchEffect``.

    Equivalent to R's ``t(limma::removeBatchEffect(t(X), batch=labels, design=design,
    covariates=covariates))``: each gene is regressed by least squares on
    ``[design, contr.sum(labels), covariates]`` and only the label (and covariate) part of the
    fit is subtracted. One solve serves all genes that share a missingness pattern.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_genes)
        Expression matrix, samples in rows. ``float32`` and ``float64`` are kept; other numeric
        types are computed and returned as ``float64``. Never modified. Non-finite entries
        (NaN, ±inf) are treated as missing, as limma's ``lmFit`` does: each gene is fitted on
        its finite samples only, and missing entries stay missing in the result.
    labels : array-like of shape (n_samples,)
        Class of each sample (strings, integers, a pandas Categorical, ...). Used as a factor:
        levels are the distinct values in sorted order (the categories' order for a
        Categorical; unused categories are dropped). At least two distinct labels; a class may
        hold a single sample.
    design : array-like of shape (n_samples, n_design), optional
        Columns whose effect is *kept* (limma's ``design``). Defaults to an intercept column.
        A 1-D array is one column. Pass the intercept yourself when you give a design.
    covariates : array-like of shape (n_samples, n_covariates), optional
        Numeric covariates whose linear effect is removed along with the labels. A 1-D array is
        one covariate.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_genes)
        The corrected matrix, a new array with the dtype of ``X`` (``float64`` for non-float
        input).

    Raises
    ------
    LinsigInputError
        ``X`` not 2-D or not numeric; ``labels`` of the wrong length, containing missing values
        or with a single distinct value; ``design``/``covariates`` of the wrong number of rows
        or with non-finite values.

    Notes
    -----
    Where the model is rank deficient (a design column aliased with the labels, or a class
    entirely missing for a gene), columns are dropped left to right exactly as R's ``lm.fit``
    does and their coefficients count as zero, as in limma. Which contrast column is dropped
    then depends on the level order, which follows NumPy's sort (R's ``factor`` in the C
    locale).
    """
    X = _check_matrix(X)
    n = X.shape[0]
    codes, levels = _encode_labels(labels, n)
    if len(levels) < 2:
        raise LinsigInputError(
            f"labels have a single distinct value ({levels[0]!r}): there is no label signal to "
            "remove (R limma's removeBatchEffect fails with 'contrasts can be applied only to "
            "factors with 2 or more levels' / 'not enough degrees of freedom')."
        )
    D = _check_side_matrix(design, n, "design") if design is not None else None
    C = _check_side_matrix(covariates, n, "covariates") if covariates is not None else None

    out = np.empty_like(X, order="K")
    if X.shape[1] == 0:
        return out
    model = _Model(codes, levels, D, C)
    if model.simple:
        incomplete = _remove_class_means(X, out, model)
    else:
        W, kept = _batch_projector(model.A, model.n_design)
        dropped = [name for name, k in zip(model.batch_names, kept) if not k]
        if dropped:
            warnings.warn(
                "these label/covariate columns are aliased with the design (or with each other) "
                f"and their signal is not removed, as in limma: {', '.join(dropped)}",
                stacklevel=2,
            )
        incomplete = _remove_complete_fit(X, out, W, model.B[:, kept])
    if incomplete.any():
        _fix_incomplete_genes(X, out, np.flatnonzero(incomplete), model)
    return out


def remove_signal_split(X_train, y_train, X_val, y_val):
    """Remove label signal from a training and a validation split, each with its own labels.

    This is the paper's main setting (``signal="removed"``): limma's ``removeBatchEffect`` is run
    on the training set with the training labels and, separately, on the validation set with
    the validation labels, so no information crosses the split.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_genes)
    y_train : array-like of shape (n_train,)
    X_val : array-like of shape (n_val, n_genes)
    y_val : array-like of shape (n_val,)

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The corrected training and validation matrices (dtype kept, inputs untouched).

    Raises
    ------
    LinsigInputError
        As :func:`remove_linear_signal`, naming the split at fault. A split whose labels have a
        single class raises, as R does (``contr.sum`` cannot code a one-level factor); callers
        skip such folds.
    """
    Xt = _check_matrix(X_train, "X_train")
    Xv = _check_matrix(X_val, "X_val")
    if Xt.shape[1] != Xv.shape[1]:
        raise LinsigInputError(
            f"X_train has {Xt.shape[1]} genes but X_val has {Xv.shape[1]}: both splits must "
            "share the same genes"
        )
    result = []
    for name, X, y in (("training", Xt, y_train), ("validation", Xv, y_val)):
        try:
            result.append(remove_linear_signal(X, y))
        except LinsigInputError as err:
            raise LinsigInputError(f"{name} split: {err}") from err
    return result[0], result[1]


def remove_linear_signal_adata(
    adata,
    label_key: str,
    *,
    design=None,
    covariates=None,
    layer: str | None = None,
    copy: bool = True,
):
    """Remove the linear signal of ``adata.obs[label_key]`` from an AnnData, scanpy-style.

    Parameters
    ----------
    adata : anndata.AnnData
        Samples × genes, with a dense expression matrix in ``X`` (or in ``layers[layer]``).
    label_key : str
        Column of ``adata.obs`` holding the labels whose signal is removed.
    design, covariates : array-like, str or list of str, optional
        As in :func:`remove_linear_signal`; a column name or a list of names of numeric
        ``adata.obs`` columns may be given instead of an array.
    layer : str, optional
        Correct ``adata.layers[layer]`` instead of ``adata.X``.
    copy : bool, default True
        Return a new AnnData (the input is untouched). With ``False``, replace the matrix in
        ``adata`` and return ``None``.

    Returns
    -------
    anndata.AnnData or None
        The corrected AnnData when ``copy`` is true. Its ``uns["linsig"]["signal_removal"]``
        records what was removed.
    """
    if getattr(adata, "isbacked", False):
        raise LinsigInputError(
            "adata is backed on disk: load it first (adata.to_memory()) to remove label signal"
        )
    if label_key not in adata.obs.columns:
        columns = ", ".join(map(str, adata.obs.columns))
        raise LinsigInputError(f"adata.obs has no column {label_key!r} (columns: {columns})")
    if layer is not None and layer not in adata.layers:
        raise LinsigInputError(f"adata.layers has no layer {layer!r}")
    M = adata.X if layer is None else adata.layers[layer]
    if not isinstance(M, np.ndarray):
        raise LinsigInputError(
            f"{'adata.X' if layer is None else f'layer {layer!r}'} is a {type(M).__name__}; a "
            "dense numpy array is needed (the corrected matrix is dense anyway)"
        )
    design_arr = _obs_matrix(adata, design, "design")
    cov_arr = _obs_matrix(adata, covariates, "covariates")
    try:
        corrected = remove_linear_signal(M, adata.obs[label_key], design_arr, cov_arr)
    except LinsigInputError as err:
        raise LinsigInputError(f"removing the signal of adata.obs[{label_key!r}]: {err}") from err

    record = {
        "method": "limma removeBatchEffect (linsig.signal.remove_linear_signal)",
        "label_key": label_key,
        "layer": "X" if layer is None else layer,
        "design": _describe(design, "intercept"),
        "covariates": _describe(covariates, "none"),
    }
    if copy:
        target = _copy_without_matrix(adata, layer)
    else:
        target = adata
    if layer is None:
        target.X = corrected
    else:
        target.layers[layer] = corrected
    prov = target.uns.get("linsig")
    prov = dict(prov) if isinstance(prov, dict) else {}
    prov["signal_removal"] = record
    target.uns["linsig"] = prov
    return target if copy else None


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------
def _check_matrix(X, name: str = "X") -> np.ndarray:
    if hasattr(X, "toarray") and not isinstance(X, np.ndarray):
        raise LinsigInputError(f"{name} is a sparse matrix; pass a dense array (X.toarray())")
    X = np.asarray(X)
    if X.ndim != 2:
        raise LinsigInputError(
            f"{name} must be 2-D (samples × genes); got an array with {X.ndim} dimension(s) "
            f"and shape {X.shape}"
        )
    if X.dtype.kind not in "fiub":
        raise LinsigInputError(f"{name} must be real numbers; got dtype {X.dtype}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X


def _encode_labels(labels, n: int):
    """Return (codes, levels): integer codes 0..K-1 and the factor levels in R's order."""
    if labels is None:
        raise LinsigInputError("labels are required (one per sample)")
    if isinstance(getattr(labels, "dtype", None), pd.CategoricalDtype):
        values = pd.Categorical(labels)
    else:
        values = np.asarray(labels)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values.ravel()
        if values.ndim != 1:
            raise LinsigInputError(
                f"labels must be 1-D (one per sample); got shape {values.shape}"
            )
    if len(values) != n:
        raise LinsigInputError(
            f"labels have length {len(values)} but X has {n} samples (rows); give one label "
            "per sample"
        )
    missing = np.flatnonzero(pd.isna(values))
    if missing.size:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if missing.size > 10 else "")
        raise LinsigInputError(
            f"labels are missing (NaN/None) for {missing.size} sample(s) at position(s) "
            f"{shown}; drop those samples or give them a label"
        )
    if isinstance(values, pd.Categorical):
        values = values.remove_unused_categories()
        return values.codes.astype(np.intp), list(values.categories)
    try:
        levels, codes = np.unique(values, return_inverse=True)
    except TypeError:
        # Mixed types (e.g. str and int): R would have coerced them all to character.
        levels, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.ravel().astype(np.intp), list(levels)


def _check_side_matrix(M, n: int, name: str) -> np.ndarray:
    try:
        M = np.asarray(M, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise LinsigInputError(f"{name} must be numeric: {err}") from err
    if M.ndim == 1:
        M = M[:, None]
    if M.ndim != 2:
        raise LinsigInputError(f"{name} must be 1-D or 2-D; got shape {M.shape}")
    if M.shape[0] != n:
        raise LinsigInputError(
            f"{name} has {M.shape[0]} rows but X has {n} samples; give one row per sample"
        )
    bad = np.argwhere(~np.isfinite(M))
    if bad.size:
        r, c = bad[0]
        raise LinsigInputError(
            f"{name} has {len(bad)} non-finite value(s), first at row {r}, column {c} "
            "(R's lm.fit refuses NA/NaN/Inf in the design)"
        )
    return M


def _obs_matrix(adata, spec, name: str):
    if spec is None or not isinstance(spec, (str, list, tuple)):
        return spec
    cols = [spec] if isinstance(spec, str) else list(spec)
    for col in cols:
        if col not in adata.obs.columns:
            raise LinsigInputError(f"{name}: adata.obs has no column {col!r}")
        if not pd.api.types.is_numeric_dtype(adata.obs[col]):
            raise LinsigInputError(
                f"{name}: adata.obs[{col!r}] is not numeric (dtype {adata.obs[col].dtype}); "
                "encode it as numeric columns first"
            )
    return adata.obs[cols].to_numpy(dtype=np.float64)


def _describe(spec, default: str):
    """JSON-like description of a design/covariates argument for the provenance record."""
    if spec is None:
        return default
    if isinstance(spec, str):
        return spec
    if isinstance(spec, (list, tuple)) and all(isinstance(c, str) for c in spec):
        return list(spec)
    return "array"


def _copy_without_matrix(adata, layer):
    """Copy an AnnData except the matrix about to be replaced (saves one copy of X)."""
    import anndata as ad

    layers = {k: _copy.deepcopy(v) for k, v in adata.layers.items() if k != layer}
    X = adata.X if layer is not None else None
    new = ad.AnnData(
        X=None if X is None else (X.copy() if hasattr(X, "copy") else X),
        obs=adata.obs.copy(),
        var=adata.var.copy(),
        uns=_copy.deepcopy(dict(adata.uns)),
        obsm={k: _copy.deepcopy(v) for k, v in adata.obsm.items()},
        varm={k: _copy.deepcopy(v) for k, v in adata.varm.items()},
        obsp={k: _copy.deepcopy(v) for k, v in adata.obsp.items()},
        varp={k: _copy.deepcopy(v) for k, v in adata.varp.items()},
        layers=layers,
        shape=adata.shape if X is None else None,
    )
    return new


# --------------------------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------------------------
class _Model:
    """The regression ``[design, contr.sum(labels), covariates]``, built only when needed.

    With the default design and no covariates (``simple``) the label part of the fit is the
    class mean minus the unweighted mean of the class means, which needs no design matrix at
    all; that keeps ``study`` removal with thousands of groups O(samples × genes).
    """

    def __init__(self, codes, levels, D, C):
        self.codes, self.levels, self.D, self.C = codes, levels, D, C
        self.K = len(levels)
        self.counts = np.bincount(codes, minlength=self.K)
        self.simple = D is None and C is None
        self.n_design = 1 if D is None else D.shape[1]
        self.batch_names = [f"labels{lv}" for lv in levels[:-1]]
        if C is not None:
            self.batch_names += [f"covariate{j + 1}" for j in range(C.shape[1])]

    @functools.cached_property
    def B(self) -> np.ndarray:
        """contr.sum coding of the labels (level j < K is column j, the last level is -1s),
        followed by the covariates: the columns whose fitted part is removed."""
        K, n = self.K, len(self.codes)
        B = np.zeros((n, K - 1 + (0 if self.C is None else self.C.shape[1])))
        last = self.codes == K - 1
        B[~last, self.codes[~last]] = 1.0
        B[last, : K - 1] = -1.0
        if self.C is not None:
            B[:, K - 1 :] = self.C
        return B

    @functools.cached_property
    def A(self) -> np.ndarray:
        D = np.ones((len(self.codes), 1)) if self.D is None else self.D
        return np.hstack([D, self.B])


def _lm_fit_columns(A: np.ndarray) -> np.ndarray:
    """Columns of ``A`` that R's ``lm.fit`` keeps (boolean mask).

    LINPACK ``dqrdc2`` walks the columns left to right and moves to the end any column whose
    norm, after removing the columns already kept, is below ``1e-7`` times its original norm;
    at most ``n_rows`` columns are kept. Aliased columns get ``NA`` coefficients, which
    ``removeBatchEffect`` sets to zero, so reproducing this choice reproduces limma on
    rank-deficient models too.
    """
    n, p = A.shape
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    if n >= p:
        # Householder QR's |R_jj| is that same residual norm as long as no column before j
        # was aliased, so when every column passes, all are kept and no loop is needed.
        R = np.linalg.qr(A, mode="r")
        if np.all(np.abs(np.diag(R)) >= _LM_FIT_TOL * norms):
            return np.ones(p, dtype=bool)
    basis = np.empty((n, min(n, p)))
    rank = 0
    keep = np.zeros(p, dtype=bool)
    for j in range(p):
        if rank >= n:
            break
        v = A[:, j].copy()
        for _ in range(2):  # twice: classical Gram-Schmidt needs re-orthogonalisation
            v -= basis[:, :rank] @ (basis[:, :rank].T @ v)
        r = np.linalg.norm(v)
        if r >= _LM_FIT_TOL * norms[j] and r > 0:
            keep[j] = True
            basis[:, rank] = v / r
            rank += 1
    return keep


def _batch_projector(A: np.ndarray, n_design: int):
    """Least-squares map from a gene's values to its batch coefficients.

    Returns ``W`` of shape (n_kept_batch, n_rows) such that ``W @ y`` are the least-squares
    coefficients of the kept batch columns of ``A`` (columns after the first ``n_design``), and
    the boolean mask of kept batch columns.
    """
    keep = _lm_fit_columns(A)
    Q, R = np.linalg.qr(A[:, keep])
    pinv = solve_triangular(R, Q.T)
    batch_rows = np.flatnonzero(keep) >= n_design
    return np.ascontiguousarray(pinv[batch_rows]), keep[n_design:]


def _row_blocks(n_rows: int, n_cols: int):
    rows = max(1, _BLOCK_BYTES // max(1, 8 * n_cols))
    for start in range(0, n_rows, rows):
        yield slice(start, min(start + rows, n_rows))


def _n_workers(X: np.ndarray) -> int:
    if X.size < _PARALLEL_MIN_SIZE:
        return 1
    cores = available_cores()
    try:
        # Only use cores that are idle (like make -l): measured on a 2-core machine with a
        # load of ~5, two workers were ~1.5x slower than one, while on idle cores they help.
        idle = int(cores - os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        idle = cores
    return max(1, min(cores, idle, _MAX_WORKERS, X.shape[1] // 256))


@contextlib.contextmanager
def _single_threaded_blas():
    """Limit BLAS to one thread: our per-block products are too small to amortise waking
    BLAS threads, and on a busy machine OpenBLAS's spinning threads made them several times
    slower. Parallelism comes from our own threads over gene ranges instead (NumPy releases
    the GIL in the conversions, products and subtractions). The limit is process-wide while
    it lasts, as in scikit-learn."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _over_gene_ranges(X: np.ndarray, work) -> np.ndarray:
    """Run ``work(gene_slice) -> bool mask`` over contiguous gene ranges, in parallel when X is
    large, and concatenate the masks. Each range is streamed in row blocks, so extra memory
    stays at a few blocks per worker."""
    n_workers = _n_workers(X)
    if n_workers == 1 and X.size < _PARALLEL_MIN_SIZE:
        return work(slice(0, X.shape[1]))
    # A few ranges per worker so that one worker stalled on a busy core does not leave the
    # other idle at the end.
    n_tasks = 1 if n_workers == 1 else min(4 * n_workers, max(1, X.shape[1] // 256))
    bounds = np.linspace(0, X.shape[1], n_tasks + 1).astype(int)
    ranges = [slice(bounds[i], bounds[i + 1]) for i in range(n_tasks)]
    with _single_threaded_blas():
        if n_workers == 1:
            return np.concatenate([work(r) for r in ranges])
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            return np.concatenate(list(pool.map(work, ranges)))


def _remove_class_means(X: np.ndarray, out: np.ndarray, model: _Model) -> np.ndarray:
    """Default design, no covariates, all samples: subtract class mean − mean of class means.

    Class sums are accumulated in float64 over row blocks taken in class order, so each block
    reduces to a few contiguous segments (``np.add.reduceat``) whatever the number of classes.
    Returns the mask of genes with a non-finite value (their float64 sums are non-finite; a sum
    that overflowed is flagged too and handled exactly by the missing-value path).
    """
    codes, K = model.codes, model.K
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]

    def work(genes: slice) -> np.ndarray:
        Xg, outg = X[:, genes], out[:, genes]
        sums = np.zeros((K, Xg.shape[1]))
        for rows in _row_blocks(*Xg.shape):
            c = sorted_codes[rows]
            starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
            block = Xg[order[rows]].astype(np.float64, copy=False)
            with np.errstate(over="ignore", invalid="ignore"):
                sums[c[starts]] += np.add.reduceat(block, starts, axis=0)
        incomplete = ~np.isfinite(sums).all(axis=0)
        means = sums / model.counts[:, None]
        with np.errstate(invalid="ignore"):
            offsets = (means - means.mean(axis=0)).astype(X.dtype, copy=False)
        for rows in _row_blocks(*Xg.shape):
            np.subtract(Xg[rows], offsets[codes[rows]], out=outg[rows])
        return incomplete

    return _over_gene_ranges(X, work)


def _remove_complete_fit(X: np.ndarray, out: np.ndarray, W: np.ndarray, Bk: np.ndarray):
    """General model, all samples: ``out = X - Bk @ (W @ X)``; returns incomplete genes.

    The reduction over samples runs in float64 block by block, so float32 input loses nothing
    to accumulation error and no float64 copy of X is ever held. A row of ones is appended to
    ``W``: a gene's float64 sum is non-finite exactly when it has a non-finite value (or the
    sum overflowed), which flags genes for the missing-value path without another pass.
    """
    W1 = np.vstack([W, np.ones((1, W.shape[1]))])

    def work(genes: slice) -> np.ndarray:
        Xg, outg = X[:, genes], out[:, genes]
        acc = np.zeros((W1.shape[0], Xg.shape[1]))
        with np.errstate(over="ignore", invalid="ignore"):
            for rows in _row_blocks(*Xg.shape):
                acc += W1[:, rows] @ Xg[rows].astype(np.float64)
        coef = acc[:-1]
        for rows in _row_blocks(*Xg.shape):
            # Offsets rounded to X's dtype: for float32 the result then errs by about one unit
            # in the last place of max(|x|, |offset|), the precision X itself has.
            offset = (Bk[rows] @ coef).astype(X.dtype, copy=False)
            np.subtract(Xg[rows], offset, out=outg[rows])
        return ~np.isfinite(acc[-1])

    return _over_gene_ranges(X, work)


def _fix_incomplete_genes(X, out, genes, model: _Model):
    """Refit genes with non-finite values on their finite samples, one solve per pattern."""
    finite = np.isfinite(X[:, genes])
    # Group genes by their pattern of finite samples: pack each gene's column to bytes.
    packed = np.ascontiguousarray(np.packbits(finite, axis=0).T)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    codes, K = model.codes, model.K
    for p, col in enumerate(first):
        cols = genes[inverse == p]
        obs = finite[:, col]
        Y = X[:, cols].astype(np.float64)
        if not obs.any():
            # lm.series leaves all coefficients NA (zero): the gene is returned as is.
            out[:, cols] = Y
            continue
        counts = np.bincount(codes[obs], minlength=K)
        if model.simple and counts.all():
            # Every class observed: full rank, closed form. Scaling before summing cannot
            # overflow (the class means are bounded by the data).
            weights = (1.0 / counts)[codes[obs]]
            means = np.zeros((K, len(cols)))
            np.add.at(means, codes[obs], Y[obs] * weights[:, None])
            offset = (means - means.mean(axis=0))[codes]
        else:
            W, kept = _batch_projector(model.A[obs], model.n_design)
            offset = model.B[:, kept] @ (W @ Y[obs])
        # NaN and ±inf entries stay NaN/±inf: x - offset, exactly as limma computes.
        Y -= offset
        out[:, cols] = Y
