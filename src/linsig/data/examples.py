"""Small example datasets shipped inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import anndata as ad

EXAMPLES = {"ALL": "ALL.h5ad"}


def example_path(name: str = "ALL") -> Path:
    """Path of a bundled example ``.h5ad``.

    ``ALL``: 128 acute lymphoblastic leukemia arrays × 12,625 probes (Bioconductor ``ALL``,
    Chiaretti et al. 2004; RMA log2). ``obs`` has ``sex`` (male/female, 3 missing), ``lineage``
    (B/T), ``BT``, ``mol_biol``, ``age`` and ``sample_group`` (one group per sample: it is one study).
    """
    if name not in EXAMPLES:
        raise KeyError(f"unknown example {name!r}; available: {', '.join(EXAMPLES)}")
    return Path(str(resources.files("linsig.data") / "example" / EXAMPLES[name]))


def load_example(name: str = "ALL") -> ad.AnnData:
    """Load a bundled example into memory."""
    return ad.read_h5ad(example_path(name))
