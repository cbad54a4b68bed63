"""From input files to tasks: the loading and preprocessing ``linsig run`` does before evaluating."""

from __future__ import annotations

import logging

import anndata as ad

from linsig.data.io import read_dataset
from linsig.data.preprocess import preprocess
from linsig.errors import LinsigInputError
from linsig.tasks import Task, make_task, pairwise_tasks, preset_tasks

log = logging.getLogger(__name__)


def prepare_dataset(path, metadata=None, orientation="auto", n_top_genes: int | None = 5000,
                    scale: bool = True) -> ad.AnnData:
    """Read a dataset and apply the paper's preprocessing unless the file says it is done.

    Compendia built by ``linsig data`` are preprocessed already and stay backed on disk (only
    the rows a task needs get loaded); anything else is loaded and preprocessed in memory.
    """
    adata = read_dataset(path, metadata=metadata, orientation=orientation)
    done = "preprocessing" in adata.uns.get("linsig", {})
    if done or (not n_top_genes and not scale):
        return adata
    if adata.isbacked:
        adata = adata.to_memory()
    return preprocess(adata, n_top_genes=n_top_genes or None, scale=scale)


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
