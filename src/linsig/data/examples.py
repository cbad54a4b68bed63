"""Small example datasets shipped inside the package (provenance and licences: docs/data.md).

Each is an ``.h5ad`` loadable by name: :func:`load_example` in Python, ``--data example:NAME`` on
the command line and ``example = "NAME"`` in experiment files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import anndata as ad

from linsig.errors import LinsigInputError

EXAMPLES = {"ALL": "ALL.h5ad", "bladder": "bladder.h5ad", "ovarian": "ovarian.h5ad"}
PREFIX = "example:"


def example_path(name: str = "ALL") -> Path:
    """Path of a bundled example ``.h5ad``.

    ``ALL``: 128 acute lymphoblastic leukemia arrays × 12,625 probes (Bioconductor ``ALL``,
    Chiaretti et al. 2004; RMA log2). ``obs`` has ``sex`` (male/female, 3 missing), ``lineage``
    (B/T), ``BT``, ``mol_biol``, ``age`` and ``sample_group`` (one group per sample: it is one study).

    ``bladder``: 200 bladder tumours × 3,319 genes from 5 studies (curatedBladderData). ``obs``:
    ``study``, ``summarystage`` (invasive/superficial; 5 healthy samples missing), ``gender``,
    ``summarygrade``, ``sample_type``. Study GSE1827 holds two-colour log ratios with 14 % missing
    values, the others log2 intensities: use ``--normalize study-zscore --missing impute``.

    ``ovarian``: 321 ovarian tumours × 1,620 genes from 3 studies (curatedOvarianData). ``obs``:
    ``study``, ``summarygrade`` (high/low; 49 missing), ``summarystage``, ``histological_type``,
    ``sample_type``. Two two-colour studies (log ratios, 841 missing values) and one of log2
    intensities.
    """
    if name not in EXAMPLES:
        raise LinsigInputError(f"unknown example {name!r}; available: {', '.join(EXAMPLES)}")
    return Path(str(resources.files("linsig.data") / "example" / EXAMPLES[name]))


def resolve(path) -> Path:
    """``example:NAME`` → the bundled file's path; any other path unchanged."""
    text = str(path)
    return example_path(text[len(PREFIX):]) if text.startswith(PREFIX) else Path(path)


def load_example(name: str = "ALL") -> ad.AnnData:
    """Load a bundled example into memory (values as stored; missing values are NaN)."""
    return ad.read_h5ad(example_path(name))
