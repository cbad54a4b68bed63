"""From input files to tasks: the loading and preprocessing ``linsig run`` does before evaluating."""

from __future__ import annotations

import logging

import anndata as ad

from linsig.data.examples import PREFIX as EXAMPLE_PREFIX
from linsig.data.examples import resolve
from linsig.data.io import check_varies, read_dataset
from linsig.data.missing import check_mode as check_missing_mode
from linsig.data.preprocess import preprocess
from linsig.errors import LinsigInputError
from linsig.tasks import PRESETS, Task, make_task, pairwise_tasks, preset_tasks

log = logging.getLogger(__name__)


def prepare_dataset(path, metadata=None, orientation="auto", n_top_genes: int | None = 5000,
                    normalize: str = "minmax", group: str | None = None,
                    missing: str = "error", na_values=None, layer: str | None = None) -> ad.AnnData:
    """Read a dataset (a path, or ``example:NAME``) and apply the preprocessing unless the file says it is done.

    ``normalize`` is the method the caller resolved (:func:`linsig.data.normalize.resolve_normalization`:
    ``minmax``, ``study-zscore`` within the ``obs`` column ``group``, or ``none``) and ``missing``
    (``error``, ``impute``, ``drop-genes``) as in :func:`linsig.data.preprocess.preprocess`.
    ``na_values``: metadata cells that mean missing besides an empty one (e.g. ``["NA"]``), see
    :func:`linsig.data.io.read_dataset`. Compendia built by ``linsig data`` are 0–1 scaled
    already and stay backed on disk (only the rows a task needs get loaded); ``study-zscore``
    loads them and standardises them in memory (of a min-max scaled gene it gives what the raw
    gene would: the z-score ignores any per-gene affine map). Anything else is loaded and
    preprocessed in memory. ``layer``: an ``.h5ad``'s layer (or ``raw``) to use instead of ``X``.
    """
    check_missing_mode(missing)
    adata = read_dataset(resolve(path), metadata=metadata, orientation=orientation, na_values=na_values)
    if str(path).startswith(EXAMPLE_PREFIX):  # errors name what the user typed, not the file's citation
        info = dict(adata.uns.get("linsig", {}))
        if "source" in info and "provenance" not in info:
            info["provenance"] = info["source"]
        info["source"] = str(path)
        adata.uns["linsig"] = info
    if layer:  # --layer NAME | raw: the matrix of the .h5ad to use instead of X
        if not str(path).lower().endswith(".h5ad") and not str(path).startswith("example:"):
            raise LinsigInputError(f"{path}: --layer {layer} applies to .h5ad files only")
        from linsig.data.layers import select_layer

        adata = select_layer(adata, layer, path)
    source = adata.uns.get("linsig", {}).get("source", path)
    adata = preprocessed(adata, normalize, n_top_genes, group, missing)
    if not adata.isbacked:  # a compendium left on disk was checked when `linsig data` wrote it
        check_varies(adata.X, source)
    return adata


def preprocessed(adata: ad.AnnData, normalize: str, n_top_genes: int | None, group: str | None,
                 missing: str) -> ad.AnnData:
    """``adata`` with the preprocessing a run asks for, unless it was done already (a compendium
    built by ``linsig data``) or nothing is asked; files and in-memory AnnData alike."""
    done = "preprocessing" in adata.uns.get("linsig", {})
    if done and normalize == "study-zscore":
        if adata.isbacked:
            adata = adata.to_memory()
        return preprocess(adata, n_top_genes=None, normalize=normalize, group=group, missing=missing)
    if done or (not n_top_genes and normalize == "none" and missing == "error"):
        return adata
    if adata.isbacked:
        adata = adata.to_memory()
    return preprocess(adata, n_top_genes=n_top_genes or None, normalize=normalize, group=group, missing=missing)


def normalize_group(group: str | None, preset: str | None) -> str | None:
    """The group column ``study-zscore`` standardises within: ``--group``, else the preset's."""
    return group or (PRESETS[preset].group if preset in PRESETS else None)


def build_tasks(adata: ad.AnnData, label: str | None = None, group: str | None = None,
                classes: list[str] | None = None, min_groups: int | None = None,
                pairwise_top: int | None = None, preset: str | None = None) -> list[Task]:
    """The tasks a run asks for: a preset, a pairwise sweep, or one task on a label column."""
    if preset:
        return preset_tasks(adata, preset)
    if not label:
        raise LinsigInputError("give a label column (--label COLUMN) or a task preset (--preset NAME)")
    if pairwise_top:
        return pairwise_tasks(adata, label, group, classes=classes, top_k=pairwise_top)
    return [make_task(adata, label, group, classes=classes, min_groups=min_groups)]
