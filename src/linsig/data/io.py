"""Read expression data and sample metadata into a validated AnnData.

Accepted inputs:

* ``.h5ad`` — samples × genes, labels and groups in ``obs`` (opened backed, so that only the rows
  a task needs are ever loaded);
* ``.csv``/``.tsv``/``.txt`` (optionally ``.gz``) and ``.parquet`` — an expression table whose first
  column (or index) holds ids, either samples × genes or genes × samples, plus a metadata table
  keyed by sample id.

Everything that can be wrong with a user's table raises :class:`~linsig.errors.LinsigInputError`
naming the file, column or sample at fault.

Metadata are text: only an empty cell is missing, unless the user names the strings that mean
missing (``na_values``; ``--na-values``). A label or group that merely *looks* like a marker
(``NA``, ``unknown``, …; :data:`MISSING_MARKERS`) is kept and :func:`linsig.tasks.make_task`
warns about it, because whether ``NA`` is a class or an empty field only the user knows.
"""

from __future__ import annotations

import logging
import lzma
import warnings
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import pandas as pd

from linsig.errors import LinsigInputError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".parquet": None}

# Values of a label or group column that usually stand for a missing field (R writes NA, pandas
# NaN, databases NULL/None, spreadsheets #N/A, curators "." "-" "?" "unknown"): compared
# case-insensitively to the whole cell. They are warned about, never dropped unasked.
MISSING_MARKERS = ("NA", "N/A", "#N/A", "NaN", "null", "None", ".", "-", "?", "missing", "unknown")
_MARKERS = frozenset(m.lower() for m in MISSING_MARKERS)


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zip"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _preview(items, limit: int = 5) -> str:
    items = [str(i) for i in items]
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def read_table(path: str | Path, text: bool = False) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet table whose first column (or stored index) holds row ids.

    Ids are text, exactly as written (``000`` stays ``000``, it does not join ``0``), and
    repeated column names stay repeated (pandas would rename the second ``g0`` to ``g0.1``) so
    that the caller can refuse them. ``text``: every column is text too and only an empty cell
    is missing — what a metadata table needs, where ``01`` and ``1`` are two labels and ``NA``
    is a label, not a missing value.
    """
    path = Path(path)
    if not path.exists():
        raise LinsigInputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LinsigInputError(f"{path}: the file is empty")
    suffix = _suffix(path)
    if suffix not in TABLE_SUFFIXES:
        raise LinsigInputError(
            f"{path}: unknown table format {suffix!r}; use .csv, .tsv, .txt or .parquet (optionally .gz)"
        )
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
            if isinstance(df.index, pd.RangeIndex) and df.shape[1] > 0 and not pd.api.types.is_numeric_dtype(df.iloc[:, 0]):
                df = df.set_index(df.columns[0])
        else:
            sep = TABLE_SUFFIXES[suffix]
            # ({0: str} is the id column; a plain dtype=str leaves pandas parsing the ids as numbers)
            options = (dict(dtype=defaultdict(lambda: str, {0: str}), keep_default_na=False, na_values=[""]) if text
                       else dict(dtype={0: str}))
            df = pd.read_csv(path, sep=sep, index_col=0, low_memory=False, **options)
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
            names = header.tolist()[len(header) - df.shape[1]:]  # a header may lack the id column's name
            if len(names) == df.shape[1]:
                df.columns = pd.Index(names, dtype=object)
    except (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise LinsigInputError(f"{path}: the compressed file is truncated or corrupt ({exc})") from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as exc:
        raise LinsigInputError(f"{path}: cannot be read as a {suffix[1:]} table ({exc})") from exc
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise LinsigInputError(f"{path}: the table has no data rows or no data columns{_delimiter_hint(path, suffix)}")
    empty = pd.isna(df.index) | (df.index.map(lambda v: str(v).strip()) == "")
    if empty.any():  # pandas would make it the id "nan"
        line = int(np.argmax(empty)) + 2  # 1-based, after the header
        what = "sample id" if text else "id"
        raise LinsigInputError(f"{path}: line {line} has an empty {what} in the first column (every row needs its id)")
    df.index = df.index.map(str)
    df.columns = df.columns.map(str)
    return df


def _delimiter_hint(path: Path, suffix: str) -> str:
    """Why a text table read as one column may have: another delimiter than its name says."""
    if suffix == ".parquet":
        return ""
    try:
        first = pd.read_csv(path, sep="\x00", header=None, nrows=1, dtype=str, engine="python").iloc[0, 0]
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    expected = TABLE_SUFFIXES[suffix]
    names = {",": "comma", "\t": "tab", ";": "';'", "|": "'|'"}
    for sep, name in names.items():
        if sep != expected and sep in str(first):
            want = {",": ".csv", "\t": ".tsv"}.get(sep, "a comma- (.csv) or tab-separated (.tsv) table")
            return (f"; its first line looks {name}-separated, but a {suffix} file is read as "
                    f"{names[expected]}-separated: save it as {want}")
    return ""


def check_na_values(na_values) -> tuple[str, ...]:
    """``na_values`` as a tuple of strings: a comma-separated string or a list (``None``: none)."""
    if na_values is None:
        return ()
    items = na_values.split(",") if isinstance(na_values, str) else list(na_values)
    if not all(isinstance(v, str) for v in items):
        raise LinsigInputError(f"na_values must be strings (the cells that mean missing), got {na_values!r}")
    return tuple(dict.fromkeys(v.strip() for v in items if v.strip()))


def mark_missing(obs: pd.DataFrame, na_values, source: Path | str) -> tuple[pd.DataFrame, dict]:
    """``obs`` with every cell equal to one of ``na_values`` missing, and the count per column.

    The comparison is to the text of the whole cell, case-sensitive (``NA`` is not ``na``), as
    R's ``na.strings``; ids (the index) are never touched. Returns ``(obs, record)`` with
    ``record = {"values": [...], "cells": {column: n}}`` for the run's summary.
    """
    values = check_na_values(na_values)
    record = {"values": list(values), "cells": {}}
    if not values:
        return obs, record
    obs = obs.copy()
    for column in obs.columns:
        col = obs[column]
        hit = col.notna() & col.astype(str).isin(values)
        if hit.any():
            col = col.mask(hit)
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.cat.remove_unused_categories()
            obs[column] = col
            record["cells"][str(column)] = int(hit.sum())
    if not record["cells"]:
        log.warning("%s: no metadata cell equals any of the na_values %s", source, ", ".join(map(repr, values)))
    return obs, record


def missing_markers(values: pd.Series) -> dict[str, int]:
    """Values (as written) of ``values`` that look like missing-value markers → how many cells hold each."""
    text = values.dropna().astype(str)
    counts = text[text.str.lower().isin(_MARKERS)].value_counts()
    return {str(k): int(n) for k, n in counts.items()}


def _check_unique(ids: pd.Index, what: str, source: Path | str) -> None:
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise LinsigInputError(f"{source}: duplicated {what} ids: {_preview(dup)}")


def validate_matrix(X: np.ndarray, sample_ids, gene_ids, source: Path | str, allow_nan: bool = False) -> None:
    """NaN/inf anywhere is an error naming the first samples and genes affected.

    ``allow_nan``: only ±inf is an error; missing values (NaN) are left to the ``--missing``
    policy (:mod:`linsig.data.missing`), which decides later whether they are an error.
    """
    bad = np.isinf(X) if allow_nan else ~np.isfinite(X)
    if bad.any():
        rows, cols = np.nonzero(bad)
        samples = pd.unique(np.asarray(sample_ids)[rows])
        genes = pd.unique(np.asarray(gene_ids)[cols])
        what = "infinite" if allow_nan else "NaN/inf"
        raise LinsigInputError(
            f"{source}: {int(bad.sum())} {what} expression values, e.g. in samples {_preview(samples)} "
            f"(genes {_preview(genes)}); impute or drop them first"
        )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def to_float32(X, sample_ids, gene_ids, source: Path | str) -> np.ndarray:
    """``X`` as float32, refusing finite values beyond float32's range (±3.4e38), named as such.

    Cast blindly, 1e300 becomes inf (with numpy's overflow warning) and is then reported as an
    "infinite value" the file does not hold.
    """
    X = np.asarray(X)
    if X.dtype.kind == "f" and X.dtype.itemsize > 4:
        with np.errstate(invalid="ignore"):
            big = np.isfinite(X) & (np.abs(X) > _FLOAT32_MAX)
        if big.any():
            rows, cols = np.nonzero(big)
            samples = pd.unique(np.asarray(sample_ids)[rows])
            genes = pd.unique(np.asarray(gene_ids)[cols])
            raise LinsigInputError(
                f"{source}: {int(big.sum())} expression values beyond float32's range (±3.4e38; linsig computes in "
                f"float32), e.g. {X[rows[0], cols[0]]:g} in samples {_preview(samples)} (genes {_preview(genes)}); "
                "rescale the data (e.g. log-transform) or fix the values")
    return X.astype(np.float32, copy=False)


def dense_matrix(adata: ad.AnnData, allow_nan: bool = False) -> np.ndarray:
    """``adata.X`` as a dense float32 array (sparse and integer matrices too), checked for NaN/inf
    (only inf with ``allow_nan``)."""
    from scipy import sparse

    source = adata.uns.get("linsig", {}).get("source", "the dataset")
    X = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    if X.ndim != 2 or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise LinsigInputError(f"{source}: X must be a numeric samples × genes matrix, got {X.dtype} of shape {X.shape}")
    X = to_float32(X, adata.obs_names, adata.var_names, source)
    validate_matrix(X, adata.obs_names, adata.var_names, source, allow_nan=allow_nan)
    return X


def _numeric_matrix(df: pd.DataFrame, source: Path) -> np.ndarray:
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise LinsigInputError(
            f"{source}: non-numeric expression columns: {_preview(non_numeric)} "
            "(the first column must hold the ids; all other columns numbers)"
        )
    return to_float32(df.to_numpy(dtype=np.float64), df.index, df.columns, source)


def read_expression_table(
    path: str | Path,
    metadata: str | Path | pd.DataFrame,
    orientation: str = "auto",
    na_values=None,
) -> ad.AnnData:
    """Read an expression table plus a metadata table keyed by sample id into AnnData.

    Parameters
    ----------
    path
        CSV/TSV/Parquet expression table; first column (or index) holds ids.
    metadata
        Table (path or DataFrame) whose first column (or index) holds sample ids.
    orientation
        ``"samples-by-genes"``, ``"genes-by-samples"`` or ``"auto"``: the axis whose ids are
        found in the metadata is the sample axis.
    na_values
        Metadata cells that mean missing (e.g. ``["NA"]`` for tables written by R), besides an
        empty cell; see :func:`mark_missing`.
    """
    path = Path(path)
    expr = read_table(path)
    meta_source = metadata if isinstance(metadata, pd.DataFrame) else Path(metadata)
    meta = metadata.copy() if isinstance(metadata, pd.DataFrame) else read_table(metadata, text=True)
    meta.index = meta.index.map(str)
    _check_unique(meta.index, "sample", meta_source)

    if orientation == "auto":
        rows_found = expr.index.isin(meta.index).mean()
        cols_found = expr.columns.isin(meta.index).mean()
        if rows_found == cols_found > 0:  # nothing to tell the axes apart by: do not guess
            raise LinsigInputError(
                f"{path}: as many row ids as column ids are sample ids of {meta_source}; give the layout "
                "(--orientation samples-by-genes or genes-by-samples)"
            )
        orientation = "genes-by-samples" if cols_found > rows_found else "samples-by-genes"
    if orientation == "genes-by-samples":
        _check_unique(expr.columns, "sample", path)
        _check_unique(expr.index, "gene", path)
        non_numeric = [c for c in expr.columns if not pd.api.types.is_numeric_dtype(expr[c])]
        if non_numeric:
            raise LinsigInputError(f"{path}: non-numeric values in sample columns: {_preview(non_numeric)}")
        X = to_float32(expr.to_numpy(dtype=np.float64), expr.index, expr.columns, path).T
        samples, genes = expr.columns, expr.index
    elif orientation == "samples-by-genes":
        _check_unique(expr.index, "sample", path)
        _check_unique(expr.columns, "gene", path)
        X = _numeric_matrix(expr, path)
        samples, genes = expr.index, expr.columns
    else:
        raise LinsigInputError(f"orientation must be auto, samples-by-genes or genes-by-samples, not {orientation!r}")

    missing = samples[~samples.isin(meta.index)]
    if len(missing):
        raise LinsigInputError(
            f"{meta_source}: {len(missing)} of {len(samples)} samples of {path} are missing from the "
            f"metadata: {_preview(missing)}"
        )
    validate_matrix(X, samples, genes, path, allow_nan=True)  # NaN: the --missing policy decides
    obs = meta.loc[samples].copy()
    obs.index.name = None
    adata = ad.AnnData(X=np.ascontiguousarray(X), obs=obs, var=pd.DataFrame(index=pd.Index(genes, name=None)))
    adata.uns["linsig"] = {"dataset": path.name.split(".")[0], "source": str(path)}
    return _with_na_values(adata, na_values, meta_source)


def _with_na_values(adata: ad.AnnData, na_values, source) -> ad.AnnData:
    """The one place ``na_values`` apply: the sample metadata of the dataset as read."""
    if not check_na_values(na_values):
        return adata
    adata.obs, record = mark_missing(adata.obs, na_values, source)
    adata.uns["linsig"] = {**adata.uns.get("linsig", {}), "na_values": record}
    return adata


def read_h5ad(path: str | Path, backed: bool = True) -> ad.AnnData:
    """Open an ``.h5ad`` (backed by default: rows are read only when a task asks for them)."""
    path = Path(path)
    if not path.exists():
        raise LinsigInputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LinsigInputError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            # anndata's own warning about repeated names; the check below names them, as an error
            warnings.filterwarnings("ignore", message=r".* names are not unique", category=UserWarning)
            adata = ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as exc:  # h5py/anndata raise many types for a corrupt file
        raise LinsigInputError(f"{path}: not a readable .h5ad file ({exc})") from exc
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise LinsigInputError(f"{path}: the dataset has no samples or no genes")
    if _no_matrix(adata):
        layers = list(adata.layers.keys()) if adata.layers is not None else []
        where = (f"the data are in layer(s) {', '.join(map(repr, layers))}: put the one to analyse in X "
                 f"(adata.X = adata.layers[{layers[0]!r}]; adata.write_h5ad(…))" if layers
                 else "it holds no expression values")
        raise LinsigInputError(f"{path}: no expression matrix X; {where}")
    _check_unique(adata.obs_names, "sample", path)
    _check_unique(adata.var_names, "gene", path)
    info = dict(adata.uns.get("linsig", {}))
    info.setdefault("dataset", path.name.split(".")[0])
    info.setdefault("source", str(path))
    adata.uns["linsig"] = info
    return adata


def _no_matrix(adata: ad.AnnData) -> bool:
    """Whether an AnnData has no ``X`` (written with its data in layers only)."""
    if adata.isbacked:
        try:
            return "X" not in adata.file._file  # backed: asking for X would be a bare KeyError
        except Exception:  # noqa: BLE001 - let reading X later say what is wrong
            return False
    return adata.X is None


def check_varies(X, source) -> None:
    """Refuse a matrix whose every value is the same: no gene varies, no model can learn."""
    if sp.issparse(X):  # stored values and the implicit zeros
        values = X.data if X.nnz == np.prod(X.shape) else np.append(X.data, 0.0)
    else:
        values = np.asarray(X).ravel()
    if values.size and np.all(values == values[0]):
        raise LinsigInputError(f"{source}: every expression value is the same ({values[0]:g}): the matrix is "
                               "constant, no gene varies and every model would score chance; are the data in "
                               "a layer rather than X, or was X zeroed?")


def read_dataset(
    path: str | Path,
    metadata: str | Path | None = None,
    orientation: str = "auto",
    backed: bool = True,
    na_values=None,
) -> ad.AnnData:
    """Read any supported input: ``.h5ad`` alone, or an expression table plus ``metadata``.

    ``na_values`` (strings, or one comma-separated string): metadata cells — of the table, or of
    the ``.h5ad``'s own ``obs`` — that mean missing, besides an empty cell; see :func:`mark_missing`.
    """
    path = Path(path)
    if _suffix(path) == ".h5ad":
        if metadata is not None:
            adata = read_h5ad(path, backed=False)
            meta = read_table(metadata, text=True)
            _check_unique(meta.index, "sample", metadata)
            missing = adata.obs_names[~adata.obs_names.isin(meta.index)]
            if len(missing):
                raise LinsigInputError(f"{metadata}: samples of {path} missing from the metadata: {_preview(missing)}")
            overlap = adata.obs.columns.intersection(meta.columns)
            if len(overlap):
                # the user passed the table to supply these columns: it wins over the file's own
                log.warning("%s: columns %s replace those of %s", metadata, _preview(overlap), path)
            adata.obs = adata.obs.drop(columns=overlap).join(meta.loc[adata.obs_names])
            return _with_na_values(adata, na_values, metadata)
        return _with_na_values(read_h5ad(path, backed=backed), na_values, path)
    if metadata is None:
        raise LinsigInputError(f"{path}: an expression table needs a metadata table (--metadata) with the labels")
    return read_expression_table(path, metadata, orientation=orientation, na_values=na_values)
