"""Which matrix of an ``.h5ad`` holds the expression: ``X``, a named layer, or ``raw``.

Single-cell and many bulk AnnData files keep several matrices: normalised values in ``X``,
counts in ``layers["counts"]``, the unfiltered matrix in ``raw``. ``--layer NAME`` picks one; the
chosen matrix becomes ``X`` (sparse or dense: tasks load their rows densely).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad

from linsig.errors import LinsigInputError

RAW = "raw"


def select_layer(adata: ad.AnnData, layer: str | None, source: str | Path) -> ad.AnnData:
    """``adata`` with ``X`` replaced by ``layers[layer]`` (or ``raw.X`` for ``"raw"``); unchanged for
    ``None``. Raises :class:`LinsigInputError` naming the file and the layers it has."""
    if not layer:
        return adata
    if adata.isbacked:
        adata = adata.to_memory()
    uns = dict(adata.uns)
    uns["linsig"] = {**dict(adata.uns.get("linsig", {})), "layer": layer}
    if layer == RAW:
        if adata.raw is None:
            raise LinsigInputError(f"{source}: --layer raw, but the file has no raw matrix "
                                   f"(layers: {', '.join(adata.layers.keys()) or 'none'})")
        raw = adata.raw
        return ad.AnnData(X=raw.X, obs=adata.obs.copy(), var=raw.var.copy(), uns=uns)
    if layer not in adata.layers:
        have = ", ".join(list(adata.layers.keys()) + ([RAW] if adata.raw is not None else [])) or "none"
        raise LinsigInputError(f"{source}: no layer {layer!r} (it has: {have}; X is the default)")
    return ad.AnnData(X=adata.layers[layer], obs=adata.obs.copy(), var=adata.var.copy(), uns=uns)
