"""Build large expression compendia (GTEx, Recount3) as chunked ``.h5ad`` files in bounded memory.

The paper's preprocessing (0–1 scale every gene, keep the N most variable) needs per-gene
statistics over *all* samples before a single output value can be written. So building is two
passes over a raw on-disk store:

1. **Ingest.** The source is streamed in blocks, either gene blocks (``genes × samples``, as in
   GTEx's GCT) or sample blocks (``samples × genes``, as in Recount3's per-study files). Each
   block goes into a temporary HDF5 store of the raw float32 matrix (samples × all genes) and
   into the per-gene :class:`~linsig.data.preprocess.GeneStats` (Chan's merge across sample
   blocks; gene blocks carry complete statistics for their genes).
2. **Write.** The top-N genes are chosen from the statistics and the raw store is read back in
   row blocks of ``chunk_rows`` samples, scaled and written to ``OUT.partial``, which is
   ``os.replace``-d onto ``OUT`` at the end.

Peak memory is about ``chunk_rows × n_genes_total`` (write pass) or one input block (ingest), not
``n_samples × n_genes``. The output is a regular AnnData file whose ``X`` is a dense float32
HDF5 dataset chunked as ``(chunk_rows, n_genes_kept)``, so ``anndata.read_h5ad(path, backed="r")``
opens it and :func:`read_rows` loads only the row chunks a task needs.

Usage (gene blocks)::

    with CompendiumWriter(out, var=genes, obs=samples, n_top_genes=5000) as w:
        for start, block in gene_blocks:        # block: genes × samples
            w.write_genes(start, block)
        w.finish()
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from anndata.io import read_elem, write_elem
from tqdm.auto import tqdm

from linsig.data.preprocess import GeneStats, top_variable_genes
from linsig.errors import LinsigInputError
from linsig.outputs import public_mode
from linsig.system import pid_alive

log = logging.getLogger(__name__)

_ARRAY_ATTRS = {"encoding-type": "array", "encoding-version": "0.2.0"}
_ANNDATA_ATTRS = {"encoding-type": "anndata", "encoding-version": "0.1.0"}


def _as_var(var: pd.DataFrame | Sequence[str] | int) -> pd.DataFrame | None:
    if isinstance(var, (int, np.integer)):
        return None
    var = var.copy() if isinstance(var, pd.DataFrame) else pd.DataFrame(index=pd.Index(list(var)))
    var.index = var.index.astype(str)
    if not var.index.is_unique:
        dup = var.index[var.index.duplicated()][:5].tolist()
        raise LinsigInputError(f"gene ids must be unique; duplicated: {dup}")
    return var


def _check_block(block: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if block.ndim != 2 or block.shape[1] != shape[1] or block.shape[0] == 0:
        raise LinsigInputError(f"{what}: expected a block of shape (k, {shape[1]}), got {block.shape}")
    if not np.isfinite(block).all():
        raise LinsigInputError(f"{what}: contains NaN or infinite values")
    return block


class CompendiumWriter:
    """Stream a samples × genes matrix to a preprocessed, chunked ``.h5ad`` (see module docs).

    Parameters
    ----------
    out
        The final ``.h5ad``; nothing appears there until :meth:`finish` succeeds.
    var
        Gene ids (or a DataFrame indexed by gene id, whose columns are kept for selected genes),
        or just the number of genes when their ids are only known after streaming (GCT rows):
        then call :meth:`set_var` before :meth:`finish`.
    obs
        Sample metadata indexed by sample id, when the samples are known up front (needed for
        :meth:`write_genes` and :meth:`write_samples`). ``None`` selects append mode:
        :meth:`append_samples` adds sample blocks with their metadata as they come.
    n_top_genes
        Keep this many most variable genes (variance after 0–1 scaling); ``None``/0 keeps all.
    scale
        0–1 scale each kept gene with its min and max over all samples.
    chunk_rows
        Rows per HDF5 chunk of the output (and rows per block of the write pass).
    compression
        HDF5 filter for the output ``X`` (``None``, ``"gzip"``, ``"lzf"``).
    keep_raw
        Also keep the unscaled all-genes matrix as an ``.h5ad`` at this path (it is the
        temporary store, so this costs only its disk space).
    tmp_dir
        Where the raw store lives while building (default: next to ``out``). It takes
        ``4 × n_samples × n_genes`` bytes.
    uns
        Goes to the output's ``uns`` (keep it JSON-like); preprocessing provenance is added to
        ``uns["linsig"]["preprocessing"]``.
    """

    def __init__(
        self,
        out: str | Path,
        var: pd.DataFrame | Sequence[str] | int,
        obs: pd.DataFrame | None = None,
        *,
        n_top_genes: int | None = 5000,
        scale: bool = True,
        chunk_rows: int = 256,
        compression: str | None = None,
        keep_raw: str | Path | None = None,
        tmp_dir: str | Path | None = None,
        uns: dict | None = None,
        progress: bool = True,
        raw_col_chunk: int = 512,
    ):
        self.out = Path(out)
        self.var = _as_var(var)
        self.n_vars = int(var) if self.var is None else len(self.var)
        if n_top_genes is not None and n_top_genes < 0:
            raise LinsigInputError(f"--n-top-genes must be >= 0, got {n_top_genes}")
        self.n_top_genes = n_top_genes or None
        self.scale = scale
        self.chunk_rows = int(chunk_rows)
        self.compression = compression
        self.keep_raw = Path(keep_raw) if keep_raw else None
        self.uns = dict(uns or {})
        self.progress = progress
        self._append = obs is None
        self.obs = None if obs is None else obs.copy()
        self._obs_parts: list[pd.DataFrame] = []
        self.n_obs = 0 if obs is None else len(obs)
        if self.obs is not None:
            self.obs.index = self.obs.index.astype(str)
            if not self.obs.index.is_unique:
                raise LinsigInputError(f"sample ids must be unique; duplicated: "
                                       f"{self.obs.index[self.obs.index.duplicated()][:5].tolist()}")
        self.stats = GeneStats.empty(self.n_vars)
        self._mode: str | None = None  # "genes" or "samples", fixed by the first block
        self._covered = np.zeros(self.n_vars if not self._append else 0, dtype=bool)
        self._rows_covered = np.zeros(self.n_obs, dtype=bool)

        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tmp_dir) if tmp_dir else self.out.parent
        _remove_stranded_raw_stores(self.out, tmp_dir)
        # the pid in the name lets a later build recognise this store as stranded if we are killed
        fd, name = tempfile.mkstemp(prefix=f".{self.out.name}.pid{os.getpid()}.", suffix=".raw.h5", dir=tmp_dir)
        os.close(fd)
        self._raw_path = Path(name)
        # A chunk cache that holds one output row block of the raw store keeps both gene-block
        # writes and row-block reads at one disk access per chunk.
        cache = max(self.chunk_rows * self.n_vars * 4 * 2, 1 << 24)
        self._raw = h5py.File(self._raw_path, "w", rdcc_nbytes=cache, rdcc_nslots=100_003)
        col_chunk = max(1, min(raw_col_chunk, self.n_vars))
        self._X = self._raw.create_dataset(
            "X",
            shape=(self.n_obs, self.n_vars),
            maxshape=(None, self.n_vars),
            dtype="float32",
            chunks=(max(1, min(self.chunk_rows, self.n_obs or self.chunk_rows)), col_chunk),
        )
        self._finished = False

    # context manager: clean up temporaries on error ------------------------------------------
    def __enter__(self) -> "CompendiumWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Remove temporary files (called by ``with``; safe to call twice)."""
        if self._raw.id.valid:
            self._raw.close()
        if self._raw_path.exists():
            self._raw_path.unlink()
        partial = self.out.with_name(self.out.name + ".partial")
        if not self._finished and partial.exists():
            partial.unlink()

    def set_var(self, var: pd.DataFrame | Sequence[str]) -> None:
        """Gene ids (and annotations) when they were not known at construction."""
        var = _as_var(var)
        if var is None or len(var) != self.n_vars:
            raise LinsigInputError(f"expected {self.n_vars} genes, got {var if var is None else len(var)}")
        self.var = var

    # ingest ---------------------------------------------------------------------------------
    def _set_mode(self, mode: str) -> None:
        if self._mode not in (None, mode):
            raise LinsigInputError("cannot mix gene blocks and sample blocks in one compendium")
        self._mode = mode

    def write_genes(self, start: int, block: np.ndarray) -> None:
        """Write a ``genes × samples`` block for genes ``start … start+k-1`` (all samples)."""
        if self._append:
            raise LinsigInputError("write_genes needs the samples (obs) up front")
        self._set_mode("genes")
        block = _check_block(block, (0, self.n_obs), f"genes {start}…")
        stop = start + block.shape[0]
        if start < 0 or stop > self.n_vars:
            raise LinsigInputError(f"gene block {start}:{stop} outside 0:{self.n_vars}")
        rows = np.ascontiguousarray(block.T)  # samples × genes, the store's orientation
        # A gene block holds every sample of its genes: its statistics are already complete.
        s = GeneStats.of(rows)
        self.stats.minimum[start:stop] = s.minimum
        self.stats.maximum[start:stop] = s.maximum
        self.stats.mean[start:stop] = s.mean
        self.stats.m2[start:stop] = s.m2
        self.stats.n = self.n_obs
        self._X[:, start:stop] = rows
        self._covered[start:stop] = True

    def write_samples(self, start: int, block: np.ndarray) -> None:
        """Write a ``samples × genes`` block for samples ``start … start+k-1`` of ``obs``."""
        if self._append:
            raise LinsigInputError("write_samples needs obs up front; use append_samples")
        self._set_mode("samples")
        block = _check_block(block, (0, self.n_vars), f"samples {start}…")
        stop = start + block.shape[0]
        if start < 0 or stop > self.n_obs:
            raise LinsigInputError(f"sample block {start}:{stop} outside 0:{self.n_obs}")
        if self._rows_covered[start:stop].any():
            raise LinsigInputError(f"samples {start}:{stop} written twice")
        self.stats.update(block)  # Chan's merge: streaming equals one pass
        self._X[start:stop] = block
        self._rows_covered[start:stop] = True

    def append_samples(self, block: np.ndarray, obs: pd.DataFrame) -> None:
        """Append a ``samples × genes`` block and its metadata (append mode, ``obs=None``)."""
        if not self._append:
            raise LinsigInputError("append_samples is for writers created with obs=None")
        self._set_mode("samples")
        block = _check_block(block, (0, self.n_vars), f"samples {self.n_obs}…")
        if len(obs) != block.shape[0]:
            raise LinsigInputError(f"{len(obs)} obs rows for a block of {block.shape[0]} samples")
        self.stats.update(block)
        start = self.n_obs
        self._X.resize(start + block.shape[0], axis=0)
        self._X[start:] = block
        self._obs_parts.append(obs)
        self.n_obs += block.shape[0]

    # write ----------------------------------------------------------------------------------
    def _final_obs(self) -> pd.DataFrame:
        if not self._append:
            return self.obs
        obs = pd.concat(self._obs_parts) if self._obs_parts else pd.DataFrame(index=pd.Index([]))
        obs.index = obs.index.astype(str)
        if not obs.index.is_unique:
            raise LinsigInputError(f"sample ids must be unique; duplicated: "
                                   f"{obs.index[obs.index.duplicated()][:5].tolist()}")
        return obs

    def _check_complete(self) -> None:
        if self.n_obs == 0:
            raise LinsigInputError(f"{self.out}: no samples were written")
        if self._mode == "genes" and not self._covered.all():
            missing = np.flatnonzero(~self._covered)
            raise LinsigInputError(f"{self.out}: {missing.size} genes never written "
                                   f"(first: {self.var.index[missing[0]]})")
        if self._mode == "samples" and not self._append and not self._rows_covered.all():
            missing = np.flatnonzero(~self._rows_covered)
            raise LinsigInputError(f"{self.out}: {missing.size} samples never written "
                                   f"(first: {self.obs.index[missing[0]]})")
        if self._mode is None:
            raise LinsigInputError(f"{self.out}: no data were written")

    def selected_genes(self) -> np.ndarray:
        """Indices (ascending) of the genes that go to the output."""
        if self.n_top_genes is None:
            return np.arange(self.n_vars)
        return top_variable_genes(self.stats, self.n_top_genes)

    def finish(self) -> Path:
        """Select genes, scale, write the chunked ``.h5ad`` atomically; return its path."""
        self._check_complete()
        if self.var is None:
            raise LinsigInputError(f"{self.out}: gene ids were never given (call set_var)")
        obs = self._final_obs()
        keep = self.selected_genes()
        uns = dict(self.uns)
        info = dict(uns.get("linsig", {}))
        info["preprocessing"] = {
            "scale_01": bool(self.scale),
            "n_top_genes": int(keep.size),
            "n_genes_total": int(self.n_vars),
            "gene_selection": "largest variance after 0-1 scaling (ddof=1), ties by gene order",
        }
        uns["linsig"] = info
        partial = self.out.with_name(self.out.name + ".partial")
        skeleton = ad.AnnData(obs=obs, var=self.var.iloc[keep].copy(), uns=uns)
        skeleton.write_h5ad(partial)  # obs/var/uns in anndata's own encoding; X added below
        with h5py.File(partial, "r+") as f:
            if "X" in f:
                del f["X"]
            X = f.create_dataset(
                "X",
                shape=(self.n_obs, keep.size),
                dtype="float32",
                chunks=(max(1, min(self.chunk_rows, self.n_obs)), max(1, keep.size)),
                compression=self.compression,
            )
            X.attrs.update(_ARRAY_ATTRS)
            self._copy_rows(X, keep)
        if self.keep_raw is not None:
            self._finish_raw(obs, uns)
        os.replace(partial, self.out)
        self._finished = True
        self.close()
        log.info("wrote %s: %d samples × %d genes", self.out, self.n_obs, keep.size)
        return self.out

    def _copy_rows(self, X: h5py.Dataset, keep: np.ndarray) -> None:
        """Read the raw store in row blocks, keep/scale the selected genes, write them to ``X``."""
        lo = self.stats.minimum[keep].astype(np.float32)
        span = self.stats.scale_span()[keep].astype(np.float32)
        all_genes = keep.size == self.n_vars
        bar = tqdm(total=self.n_obs, unit="samples", desc="writing", file=sys.stderr,
                   disable=not self.progress, leave=False)
        for r0 in range(0, self.n_obs, self.chunk_rows):
            r1 = min(r0 + self.chunk_rows, self.n_obs)
            rows = self._X[r0:r1]  # all genes: contiguous chunk reads, then select in memory
            sub = rows if all_genes else rows[:, keep]
            if self.scale:  # same float32 arithmetic as preprocess.scale_01
                sub -= lo
                sub /= span
            X[r0:r1] = sub
            bar.update(r1 - r0)
        bar.close()

    def _finish_raw(self, obs: pd.DataFrame, uns: dict) -> None:
        """Turn the raw store into an all-genes unscaled ``.h5ad`` at ``keep_raw``."""
        raw_uns = dict(uns)
        raw_uns["linsig"] = dict(uns["linsig"])
        raw_uns["linsig"]["preprocessing"] = {"scale_01": False, "n_top_genes": int(self.n_vars),
                                              "n_genes_total": int(self.n_vars)}
        f = self._raw
        f.attrs.update(_ANNDATA_ATTRS)
        self._X.attrs.update(_ARRAY_ATTRS)
        write_elem(f, "obs", obs)
        write_elem(f, "var", self.var)
        write_elem(f, "uns", raw_uns)
        for name in ("obsm", "varm", "obsp", "varp", "layers"):
            write_elem(f, name, {})
        f.close()
        self.keep_raw.parent.mkdir(parents=True, exist_ok=True)
        # across file systems move() copies: into a .partial, so a cut copy never looks finished
        partial = self.keep_raw.with_name(self.keep_raw.name + ".partial")
        public_mode(self._raw_path)  # made by mkstemp (0600): published, it is a dataset like any other
        shutil.move(self._raw_path, partial)
        os.replace(partial, self.keep_raw)


def _remove_stranded_raw_stores(out: Path, tmp_dir: Path) -> None:
    """Delete raw stores of ``out`` left by builds that were killed (their pid is gone).

    A raw store holds the whole unscaled matrix (GB for GTEx, far more for Recount3); one
    stranded per killed build would fill the disk. Stores of live builds are left alone.
    """
    for path in Path(tmp_dir).glob(f".{out.name}.pid*.raw.h5"):
        match = re.match(rf"\.{re.escape(out.name)}\.pid(\d+)\.", path.name)
        if match and not pid_alive(int(match.group(1))):
            log.info("removing %s, left by a build that was killed", path)
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# reading


def _row_indices(obs_names: pd.Index, rows) -> np.ndarray:
    """Integer row positions from a boolean mask, integer positions, a slice or sample ids."""
    n = len(obs_names)
    if isinstance(rows, slice):
        return np.arange(n)[rows]
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise LinsigInputError(f"boolean row mask has length {arr.size}, the file has {n} samples")
        return np.flatnonzero(arr)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise LinsigInputError(f"row index out of range for {n} samples")
        return np.where(arr < 0, arr + n, arr).astype(np.int64)
    idx = obs_names.get_indexer(arr.astype(str))
    if (idx < 0).any():
        missing = arr[idx < 0][:5].tolist()
        raise LinsigInputError(f"samples not in the file: {missing}")
    return idx.astype(np.int64)


def read_dense_rows(X: h5py.Dataset, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` (any order, repeats allowed) of a 2-D dataset, reading chunk by chunk.

    h5py's fancy indexing issues one selection per row; reading the span of wanted rows inside
    each row chunk touches the same chunks with far fewer calls.
    """
    out = np.empty((idx.size, X.shape[1]), dtype=X.dtype)
    if idx.size == 0:
        return out
    chunk = X.chunks[0] if X.chunks else 1024
    uniq, inverse = np.unique(idx, return_inverse=True)
    block_of = uniq // chunk
    got = np.empty((uniq.size, X.shape[1]), dtype=X.dtype)
    for b in np.unique(block_of):
        sel = np.flatnonzero(block_of == b)
        lo, hi = uniq[sel[0]], uniq[sel[-1]] + 1
        got[sel] = X[lo:hi][uniq[sel] - lo]
    out[:] = got[inverse]
    return out


def read_rows(path: str | Path, obs_mask_or_index) -> ad.AnnData:
    """Load only some samples of a (backed, chunked) ``.h5ad`` into memory.

    ``obs_mask_or_index`` is a boolean mask over samples, integer positions, a slice, or sample
    ids; rows come back in that order. Returns an in-memory AnnData with ``X``, ``obs``, ``var``
    and ``uns`` (other slots are not loaded). Only the HDF5 chunks holding the requested rows are
    read, so a task on a few thousand samples of a large compendium loads just those.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise LinsigInputError(f"{path}: cannot open as .h5ad ({exc})") from exc
    with f:
        obs = read_elem(f["obs"])
        var = read_elem(f["var"])
        uns = read_elem(f["uns"]) if "uns" in f else {}
        idx = _row_indices(obs.index, obs_mask_or_index)
        if isinstance(f.get("X"), h5py.Dataset):
            X = read_dense_rows(f["X"], idx)
            return ad.AnnData(X=X, obs=obs.iloc[idx].copy(), var=var, uns=uns)
    # Sparse or unusual X: let anndata do the indexing (it needs ascending positions).
    backed = ad.read_h5ad(path, backed="r")
    try:
        order = np.argsort(idx, kind="stable")
        sub = backed[idx[order]].to_memory()
        return sub[np.argsort(order)].copy()
    finally:
        backed.file.close()
