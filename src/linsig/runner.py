"""From input files to tasks: the loading and preprocessing ``linsig run`` does before evaluating."""

from __future__ import annotations

import logging

import anndata as ad

from linsig.data.examples import resolve
from linsig.data.io import read_dataset
from linsig.data.missing import check_mode as check_missing_mode
from linsig.data.normalize import check_method
from linsig.data.preprocess import preprocess
from linsig.errors import LinsigInputError
from linsig.tasks import PRESETS, Task, make_task, pairwise_tasks, preset_tasks

log = logging.getLogger(__name__)


def prepare_dataset(path, metadata=None, orientation="auto", n_top_genes: int | None = 5000,
                    scale: bool = True, normalize: str | None = None, group: str | None = None,
                    missing: str = "error", na_values=None, layer: str | None = None) -> ad.AnnData:
    """Read a dataset (a path, or ``example:NAME``) and apply the preprocessing unless the file says it is done.

    ``normalize`` (``minmax`` by default, ``none`` with ``scale=False``, or ``study-zscore`` by
    the ``obs`` column ``group``) and ``missing`` (``error``, ``impute``, ``drop-genes``) as in
    :func:`linsig.data.preprocess.preprocess`. ``na_values``: metadata cells that mean missing
    besides an empty one (e.g. ``["NA"]``), see :func:`linsig.data.io.read_dataset`. Compendia built by ``linsig data`` are 0–1 scaled
    already and stay backed on disk (only the rows a task needs get loaded); ``study-zscore``
    loads them and standardises them in memory (of a min-max scaled gene it gives what the raw
    gene would: the z-score ignores any per-gene affine map). Anything else is loaded and
    preprocessed in memory. ``layer``: an ``.h5ad``'s layer (or ``raw``) to use instead of ``X``.
    """
    method = check_method(normalize or ("minmax" if scale else "none"), group)
    check_missing_mode(missing)
    adata = read_dataset(resolve(path), metadata=metadata, orientation=orientation, na_values=na_values)
    if layer:  # --layer NAME | raw: the matrix of the .h5ad to use instead of X
        if not str(path).lower().endswith(".h5ad") and not str(path).startswith("example:"):
            raise LinsigInputError(f"{path}: --layer {layer} applies to .h5ad files only")
        from linsig.data.layers import select_layer

        adata = select_layer(adata, layer, path)
    done = "preprocessing" in adata.uns.get("linsig", {})
    if done and method == "study-zscore":
        if adata.isbacked:
            adata = adata.to_memory()
        return preprocess(adata, n_top_genes=None, normalize=method, group=group, missing=missing)
    if done or (not n_top_genes and method == "none" and missing == "error"):
        return adata
    if adata.isbacked:
        adata = adata.to_memory()
    return preprocess(adata, n_top_genes=n_top_genes or None, normalize=method, group=group, missing=missing)


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
