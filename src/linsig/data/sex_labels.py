"""Metadata sex labels from Flynn et al. 2021, joined onto the Recount3 compendium.

Flynn E, Chang A, Altman RB. "Large-scale labeling and assessment of sex bias in publicly
available expression data." BMC Bioinformatics 22, 168 (2021). Their table
``combined_human_mouse_meta_v2.csv`` has one row per sample with the columns
``sample_acc, organism, data_type, platform, study_acc, metadata_sex, expr_sex, p_male, present,
num_reads``. For RNA-seq rows ``sample_acc`` is the SRA run accession, which is recount3's
``external_id``. The paper (and greenelab/linear_signal) keep ``organism == "human"``,
``data_type == "rnaseq"`` and ``metadata_sex`` in ``{"male", "female"}`` (the file's other values
are ``unknown`` and ``mixed``); ``expr_sex`` (the expression-based prediction) is not used.

The file sits behind a figshare link that cannot be fetched by a script, so it is passed in by
path; :data:`FLYNN_URL` says where to get it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import anndata as ad
import pandas as pd

from linsig.errors import LinsigInputError
from linsig.outputs import public_mode

log = logging.getLogger(__name__)

#: Where the labels are published (the link given by the paper's code, greenelab/linear_signal).
FLYNN_URL = "https://figshare.com/s/985621c1705043421962"
FLYNN_FILE = "combined_human_mouse_meta_v2.csv"
FLYNN_CITATION = (
    'Flynn, Chang & Altman (2021) "Large-scale labeling and assessment of sex bias in publicly '
    'available expression data", BMC Bioinformatics 22:168'
)
WHERE_TO_GET = (
    f"download {FLYNN_FILE} from the figshare item of {FLYNN_CITATION}: {FLYNN_URL} "
    "(figshare does not allow scripted downloads of it; save it by hand and pass its path)"
)
FLYNN_COLUMNS = ("sample_acc", "organism", "data_type", "metadata_sex")
SEXES = ("male", "female")


def read_flynn_labels(path: str | Path) -> pd.Series:
    """Human RNA-seq ``metadata_sex`` labels (``male``/``female``) indexed by run accession.

    Accessions labelled both male and female (duplicated rows that disagree) are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise LinsigInputError(f"{path}: no such file. The Flynn et al. 2021 sex labels are not bundled: {WHERE_TO_GET}")
    try:
        df = pd.read_csv(path, usecols=lambda c: c in FLYNN_COLUMNS, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise LinsigInputError(f"{path}: cannot be read as the Flynn et al. CSV ({exc})") from exc
    missing = [c for c in FLYNN_COLUMNS if c not in df.columns]
    if missing:
        raise LinsigInputError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {FLYNN_FILE} with columns "
            f"sample_acc, organism, data_type, platform, study_acc, metadata_sex, expr_sex, p_male, present, num_reads"
        )
    norm = {c: df[c].str.strip().str.lower() for c in ("organism", "data_type", "metadata_sex")}
    keep = (norm["organism"] == "human") & (norm["data_type"] == "rnaseq") & norm["metadata_sex"].isin(SEXES)
    labels = pd.Series(norm["metadata_sex"][keep].to_numpy(), index=df["sample_acc"][keep].str.strip().to_numpy())
    labels = labels[labels.index != ""]
    if labels.index.has_duplicates:
        n_sex = labels.groupby(level=0).nunique()
        conflicting = n_sex.index[n_sex > 1]
        if len(conflicting):
            log.warning("%s: %d accession(s) labelled both male and female; left unlabelled (e.g. %s)",
                        path, len(conflicting), conflicting[0])
        labels = labels[~labels.index.isin(conflicting)]
        labels = labels[~labels.index.duplicated()]
    labels.name = "sex"
    return labels


def _sex_column(obs: pd.DataFrame, labels: pd.Series, id_column: str, source) -> pd.Series:
    if id_column in obs.columns:
        ids = obs[id_column].astype(str)
    elif id_column == "obs_names":
        ids = pd.Series(obs.index.astype(str), index=obs.index)
    else:
        raise LinsigInputError(f"{source}: obs has no {id_column!r} column (the SRA run accession) to join on")
    # Categorical (NaN = unlabelled): writes to .h5ad as-is and compares like strings.
    return pd.Series(pd.Categorical(ids.map(labels), categories=list(SEXES)), index=obs.index)


def add_sex_labels(adata: ad.AnnData, flynn_csv: str | Path, id_column: str = "external_id") -> ad.AnnData:
    """Return a copy of ``adata`` with ``obs['sex']`` (``male``/``female``, NaN when unlabelled).

    Joins ``sample_acc`` of the Flynn file on ``obs[id_column]`` (recount3's ``external_id``;
    pass ``"obs_names"`` to join on the index). An existing ``sex`` column is replaced.
    Provenance goes to ``uns['linsig']['sex_labels']``.
    """
    labels = read_flynn_labels(flynn_csv)
    out = adata.copy()
    out.obs["sex"] = _sex_column(out.obs, labels, id_column, "adata")
    info = dict(out.uns.get("linsig", {}))
    info["sex_labels"] = _provenance(flynn_csv, out.obs["sex"])
    out.uns["linsig"] = info
    return out


def _provenance(flynn_csv, sex: pd.Series) -> dict:
    counts = sex.value_counts()
    return {
        "source": FLYNN_URL,
        "file": Path(flynn_csv).name,
        "citation": FLYNN_CITATION,
        "filter": "organism == human, data_type == rnaseq, metadata_sex in {male, female}",
        "n_labeled": int(sex.notna().sum()),
        "n_male": int(counts.get("male", 0)),
        "n_female": int(counts.get("female", 0)),
    }


def add_sex_labels_file(compendium: str | Path, flynn_csv: str | Path, out: str | Path,
                        id_column: str = "external_id") -> dict:
    """Write ``out``: a copy of the ``.h5ad`` ``compendium`` with ``obs['sex']`` added.

    Only ``obs`` and ``uns['linsig']`` are rewritten (the file is copied, ``X`` is never
    loaded), so this works on compendia larger than memory. ``out`` appears atomically and may
    be the input path. Returns the provenance dict (``n_labeled``, ``n_male``, ``n_female``, …).
    """
    import h5py
    from anndata.io import read_elem, write_elem

    compendium, out = Path(compendium), Path(out)
    if not compendium.is_file():
        raise LinsigInputError(f"{compendium}: no such file")
    labels = read_flynn_labels(flynn_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name + ".", suffix=".partial")
    os.close(fd)
    try:
        shutil.copyfile(compendium, tmp)
        try:
            with h5py.File(tmp, "r+") as f:
                obs = read_elem(f["obs"])
                obs["sex"] = _sex_column(obs, labels, id_column, compendium)
                info = _provenance(flynn_csv, obs["sex"])
                write_elem(f, "obs", obs)
                uns = read_elem(f["uns"]) if "uns" in f else {}
                linsig = dict(uns.get("linsig", {}))
                linsig["sex_labels"] = info
                uns["linsig"] = linsig
                write_elem(f, "uns", uns)
        except (OSError, KeyError) as exc:
            raise LinsigInputError(f"{compendium}: cannot be read as an .h5ad file ({exc})") from exc
        public_mode(tmp)  # mkstemp's 0600 is for the temporary file, not the dataset
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return info
