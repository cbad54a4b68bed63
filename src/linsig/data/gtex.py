"""GTEx v8: download the gene TPM matrix and annotations, build the paper's preprocessed ``.h5ad``.

Sources (the same relative file names on every mirror of one layout):

================  =====================================================================
layout            relative paths
================  =====================================================================
``current``       ``bulk-gex/v8/rna-seq/<TPM>``, ``annotations/v8/metadata-files/<ANNOT>``
                  on ``https://storage.googleapis.com/adult-gtex/``
``legacy``        ``rna_seq_data/<TPM>``, ``annotations/<ANNOT>``
                  on ``https://storage.googleapis.com/gtex_analysis_v8/``
================  =====================================================================

``<TPM>`` is ``GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz`` (GCT 1.2,
56,200 genes × 17,382 samples, ~1.5 GB gzipped, ~7.8 GB as text); ``<ANNOT>`` are
``GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt`` (``SAMPID``, ``SMTS``, ``SMTSD``, …)
and ``GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt`` (``SUBJID``, ``SEX`` 1=male
2=female, ``AGE``, ``DTHHRDY``).

The GCT is genes × samples; it is parsed streaming, a block of genes at a time, straight to
float32, and handed to :class:`~linsig.data.compendium.CompendiumWriter`, which transposes it
through an on-disk store into the samples × genes output. Labels follow docs/conventions.md:
``tissue`` = ``SMTS``, ``sex`` = ``male``/``female`` from the donor's ``SEX``, ``donor`` =
``GTEX-XXXX`` (the first two dash fields of ``SAMPID``).
"""

from __future__ import annotations

import csv
import gzip
import logging
import sys
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from linsig.data.compendium import CompendiumWriter
from linsig.data.download import default_cache_dir, fetch_first, file_digest
from linsig.errors import DownloadError, LinsigInputError

log = logging.getLogger(__name__)

TPM_FILE = "GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz"
SAMPLES_FILE = "GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt"
SUBJECTS_FILE = "GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt"

#: Relative path of each file on a mirror, per layout.
LAYOUTS: dict[str, dict[str, str]] = {
    "current": {
        "tpm": f"bulk-gex/v8/rna-seq/{TPM_FILE}",
        "samples": f"annotations/v8/metadata-files/{SAMPLES_FILE}",
        "subjects": f"annotations/v8/metadata-files/{SUBJECTS_FILE}",
    },
    "legacy": {
        "tpm": f"rna_seq_data/{TPM_FILE}",
        "samples": f"annotations/{SAMPLES_FILE}",
        "subjects": f"annotations/{SUBJECTS_FILE}",
    },
}

#: sha256 of the public files as reported by a third party (not by GTEx); a mismatch is only
#: logged as a warning, since GTEx does not publish checksums itself.
REPORTED_SHA256 = {
    TPM_FILE: "ec783825ebebb8ba8525b73cb7ff9577162bc0d2e8a7fdc408283b7639c306fb",
    SAMPLES_FILE: "74f6ab4c34ed2648d708a0ae6e6dff324f6c86ea723ae7d1c37d76f5221148f0",
}

EXPECTED_SAMPLES = 17_382
EXPECTED_GENES = 56_200


@dataclass(frozen=True)
class Mirror:
    """A base URL holding the GTEx files in one of :data:`LAYOUTS`."""

    base: str
    layout: str = "current"

    def url(self, key: str) -> str:
        if self.layout not in LAYOUTS:
            raise LinsigInputError(f"unknown GTEx mirror layout {self.layout!r}; use one of {list(LAYOUTS)}")
        return self.base.rstrip("/") + "/" + LAYOUTS[self.layout][key]


DEFAULT_MIRRORS: tuple[Mirror, ...] = (
    Mirror("https://storage.googleapis.com/adult-gtex/", "current"),
    Mirror("https://storage.googleapis.com/gtex_analysis_v8/", "legacy"),
)


class CorruptFileError(DownloadError):
    """A downloaded file is truncated or not valid gzip."""


# ----------------------------------------------------------------------------------------------
# download


def download_gtex(cache_dir: str | Path | None = None, mirrors: Sequence[Mirror] | None = None,
                  **fetch_kwargs) -> dict[str, Path]:
    """Fetch the three GTEx files into ``cache_dir/gtex_v8/`` (skipping ones already there).

    Each file is tried on every mirror in order (see :func:`linsig.data.download.fetch_first`).
    Returns ``{"tpm": path, "samples": path, "subjects": path}``.
    """
    folder = Path(cache_dir or default_cache_dir()) / "gtex_v8"
    mirrors = list(mirrors or DEFAULT_MIRRORS)
    paths = {}
    for key in ("samples", "subjects", "tpm"):  # small files first: fail fast on a bad mirror
        name = Path(LAYOUTS["current"][key]).name
        paths[key] = fetch_first([m.url(key) for m in mirrors], folder / name, check=_format_check(key),
                                 **fetch_kwargs)
    return paths


def _format_check(key: str):
    """What a downloaded (or cached) GTEx file must pass to be kept: its header, its columns."""
    if key == "tpm":
        return read_gct_header
    return lambda path: _read_tsv(Path(path), ANNOTATION_COLUMNS[key])


# ----------------------------------------------------------------------------------------------
# GCT


@dataclass
class GctHeader:
    """The first three lines of a GCT 1.2 file."""

    n_genes: int
    samples: list[str]


@contextmanager
def _decompression_errors(path: Path):
    """Turn gzip's low-level errors into a message that names the file and says what to do."""
    try:
        yield
    except EOFError as exc:
        raise CorruptFileError(f"{path}: the gzip stream ends early (truncated download?): {exc}") from exc
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptFileError(f"{path}: not a valid gzip file (corrupt download?): {exc}") from exc


def _open(path: Path):
    """Binary line reader; gzip if the file starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_header(fh, path: Path) -> GctHeader:
    version = fh.readline().rstrip(b"\r\n")
    if version != b"#1.2":
        raise LinsigInputError(f"{path}: not a GCT 1.2 file: line 1 is {version[:40]!r}, expected '#1.2'")
    dims = fh.readline().rstrip(b"\r\n").split(b"\t")
    try:
        n_genes, n_samples = (int(x) for x in dims[:2])
    except ValueError:
        raise LinsigInputError(f"{path}: GCT line 2 must be '<n_genes>\\t<n_samples>', got {dims!r}") from None
    header = fh.readline().rstrip(b"\r\n").decode().split("\t")
    if header[:2] != ["Name", "Description"]:
        raise LinsigInputError(f"{path}: GCT line 3 must start with 'Name\\tDescription', got {header[:2]}")
    samples = header[2:]
    if len(samples) != n_samples:
        raise LinsigInputError(f"{path}: line 2 announces {n_samples} samples but the header has {len(samples)}")
    return GctHeader(n_genes=n_genes, samples=samples)


def read_gct_header(path: str | Path) -> GctHeader:
    """Read and validate the GCT 1.2 header (version line, dimensions, column names)."""
    path = Path(path)
    with _decompression_errors(path), _open(path) as fh:
        return _read_header(fh, path)


def _floats(text: bytes) -> np.ndarray | None:
    """Tab-separated numbers as float32, or ``None`` if some text is not a number.

    numpy < 2.3 warns and stops at the first bad token, newer numpy raises: handle both.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.float32, sep="\t")
        except (ValueError, DeprecationWarning):
            return None


def _parse_block(lines: list[bytes], n_samples: int, path: Path, first_line: int):
    """Names, descriptions and a ``genes × samples`` float32 block from GCT data lines."""
    names, descs, values = [], [], []
    for line in lines:
        parts = line.rstrip(b"\r\n").split(b"\t", 2)
        if len(parts) < 3:
            raise LinsigInputError(f"{path}: line {first_line + len(names)} has fewer than 3 fields")
        names.append(parts[0].decode())
        descs.append(parts[1].decode())
        values.append(parts[2])
    # Counting tabs per row catches a short row followed by a long one, which the joined parse
    # below would silently misalign; bytes.count is cheap next to parsing.
    bad_width = any(v.count(b"\t") != n_samples - 1 for v in values)
    # One C-level parse per block (not per line): most of the time goes to strtod anyway.
    block = None if bad_width else _floats(b"\t".join(values))
    if block is None or block.size != len(lines) * n_samples:
        for i, v in enumerate(values):  # find the culprit only when something is wrong
            row = _floats(v)
            if row is None or row.size != n_samples:
                what = "unparsable values" if row is None else f"{row.size} values"
                raise LinsigInputError(f"{path}: line {first_line + i} ({names[i]}) has {what}, "
                                       f"expected {n_samples} numbers")
        raise LinsigInputError(f"{path}: lines {first_line}…: values do not parse as numbers")
    return names, descs, block.reshape(len(lines), n_samples)


def iter_gct_blocks(path: str | Path, chunk_genes: int = 512) -> Iterator[tuple[int, list[str], list[str], np.ndarray]]:
    """Stream a GCT 1.2 file as ``(start, names, descriptions, block)`` with ``block`` float32
    ``genes × samples``; memory holds one block. Validates the header and the row count."""
    path = Path(path)
    with _decompression_errors(path), _open(path) as fh:
        header = _read_header(fh, path)
        start, lines = 0, []
        for line in fh:
            if not line.strip():
                continue
            lines.append(line)
            if len(lines) == chunk_genes:
                yield _block(start, lines, header, path)
                start, lines = start + len(lines), []
        if lines:
            yield _block(start, lines, header, path)
            start += len(lines)
    if start != header.n_genes:
        raise LinsigInputError(f"{path}: line 2 announces {header.n_genes} genes but the file has {start} "
                               f"gene rows (truncated file?)")


def _block(start: int, lines: list[bytes], header: GctHeader, path: Path):
    if start + len(lines) > header.n_genes:
        raise LinsigInputError(f"{path}: more gene rows than the {header.n_genes} announced on line 2")
    return (start, *_parse_block(lines, len(header.samples), path, start + 4))


# ----------------------------------------------------------------------------------------------
# annotations


#: The columns linsig reads from each annotation file.
ANNOTATION_COLUMNS = {"samples": ("SAMPID", "SMTS", "SMTSD"), "subjects": ("SUBJID", "SEX", "AGE")}


def _read_tsv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The given columns of a GTEx annotation TSV, as strings; errors name file and column."""
    try:
        # GTEx annotation files are plain TSV without quoting; free-text fields may hold quotes.
        df = pd.read_csv(path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LinsigInputError(f"{path}: cannot read as a tab-separated table: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LinsigInputError(f"{path}: missing column(s) {missing}; found {list(df.columns)[:10]}")
    return df[list(columns)]


def donor_of(sample_id: str) -> str:
    """``GTEX-1117F-0226-SM-5GZZ7`` → ``GTEX-1117F`` (the first two dash-separated fields)."""
    return "-".join(sample_id.split("-")[:2])


_SEX = {"1": "male", "2": "female"}


def gtex_obs(sample_ids: Sequence[str], samples_path: str | Path, subjects_path: str | Path) -> pd.DataFrame:
    """Sample metadata for ``sample_ids`` (in order): ``tissue``, ``tissue_detail``, ``sex``,
    ``donor``, ``age``; indexed by ``SAMPID``."""
    samples_path, subjects_path = Path(samples_path), Path(subjects_path)
    attrs = _read_tsv(samples_path, ANNOTATION_COLUMNS["samples"]).drop_duplicates("SAMPID").set_index("SAMPID")
    subj = _read_tsv(subjects_path, ANNOTATION_COLUMNS["subjects"]).drop_duplicates("SUBJID").set_index("SUBJID")
    ids = pd.Index(list(sample_ids), name=None)
    unknown = ids.difference(attrs.index)
    if len(unknown):
        raise LinsigInputError(f"{samples_path}: {len(unknown)} sample(s) of the expression file are not "
                               f"in SAMPID, e.g. {list(unknown[:3])}")
    donors = pd.Index([donor_of(s) for s in ids])
    unknown = donors.difference(subj.index)
    if len(unknown):
        raise LinsigInputError(f"{subjects_path}: donor(s) {list(unknown[:3])} not in SUBJID")
    sex_code = subj.loc[donors, "SEX"].str.strip().to_numpy()
    bad = [(d, c) for d, c in zip(donors, sex_code) if c not in _SEX]
    if bad:
        raise LinsigInputError(f"{subjects_path}: column SEX must be 1 or 2; donor {bad[0][0]} has {bad[0][1]!r}")
    obs = pd.DataFrame(
        {
            "tissue": attrs.loc[ids, "SMTS"].to_numpy(),
            "tissue_detail": attrs.loc[ids, "SMTSD"].to_numpy(),
            "sex": [_SEX[c] for c in sex_code],
            "donor": donors.to_numpy(),
            "age": subj.loc[donors, "AGE"].to_numpy(),
        },
        index=ids,
    )
    empty = obs.index[obs["tissue"].str.strip() == ""]
    if len(empty):
        raise LinsigInputError(f"{samples_path}: SMTS is empty for sample(s) {list(empty[:3])}")
    return obs.astype("category")


# ----------------------------------------------------------------------------------------------
# build


def build_gtex_from_files(
    out: str | Path,
    tpm: str | Path,
    samples: str | Path,
    subjects: str | Path,
    *,
    n_top_genes: int | None = 5000,
    scale: bool = True,
    keep_raw: str | Path | None = None,
    chunk_rows: int = 256,
    chunk_genes: int = 512,
    compression: str | None = None,
    progress: bool = True,
    tmp_dir: str | Path | None = None,
    uns: dict | None = None,
) -> Path:
    """Build the GTEx ``.h5ad`` from local copies of the three files (see :func:`build_gtex`)."""
    tpm, samples, subjects = Path(tpm), Path(samples), Path(subjects)
    header = read_gct_header(tpm)
    obs = gtex_obs(header.samples, samples, subjects)
    if len(obs) != EXPECTED_SAMPLES or header.n_genes != EXPECTED_GENES:
        log.info("%s: %d genes × %d samples (the full GTEx v8 release has %d × %d)",
                 tpm, header.n_genes, len(obs), EXPECTED_GENES, EXPECTED_SAMPLES)
    info = {"dataset": "gtex_v8", **(uns or {})}
    names: list[str] = []
    descs: list[str] = []
    bar = tqdm(total=header.n_genes, unit="genes", desc=f"parsing {tpm.name}", file=sys.stderr,
               disable=not progress, leave=False)
    with CompendiumWriter(out, var=header.n_genes, obs=obs, n_top_genes=n_top_genes, scale=scale,
                          chunk_rows=chunk_rows, compression=compression, keep_raw=keep_raw,
                          tmp_dir=tmp_dir, uns={"linsig": info}, progress=progress,
                          raw_col_chunk=chunk_genes) as writer:
        for start, block_names, block_descs, block in iter_gct_blocks(tpm, chunk_genes):
            writer.write_genes(start, block)
            names += block_names
            descs += block_descs
            bar.update(block.shape[0])
        bar.close()
        writer.set_var(pd.DataFrame({"gene_name": descs}, index=pd.Index(names)))
        return writer.finish()


def build_gtex(
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
    mirrors: Sequence[Mirror] | None = None,
    n_top_genes: int | None = 5000,
    scale: bool = True,
    keep_raw: str | Path | None = None,
    chunk_rows: int = 256,
    chunk_genes: int = 512,
    compression: str | None = None,
    progress: bool = True,
    **fetch_kwargs,
) -> Path:
    """Download GTEx v8 (if not cached) and write the preprocessed chunked ``.h5ad`` to ``out``.

    ``mirrors`` defaults to :data:`DEFAULT_MIRRORS` (current bucket, then the legacy one).
    ``fetch_kwargs`` go to :func:`linsig.data.download.fetch` (``retries``, ``timeout``, …).
    Provenance (URLs tried, file sizes and sha256) goes to ``uns["linsig"]``. A cached TPM file
    that turns out truncated or corrupt is deleted so that the next run downloads it again.
    """
    mirrors = list(mirrors or DEFAULT_MIRRORS)
    paths = download_gtex(cache_dir, mirrors, progress=progress, **fetch_kwargs)
    sources = {}  # a dict of dicts, not a list of dicts: .h5ad cannot store the latter
    for key, path in paths.items():
        digest = file_digest(path, "sha256")
        if mirrors == list(DEFAULT_MIRRORS) and path.name in REPORTED_SHA256 and digest != REPORTED_SHA256[path.name]:
            log.warning("%s: sha256 %s differs from the value reported for the public file (%s)",
                        path, digest, REPORTED_SHA256[path.name])
        sources[key] = {"file": path.name, "urls": [m.url(key) for m in mirrors],
                        "bytes": int(path.stat().st_size), "sha256": digest}
    try:
        return build_gtex_from_files(
            out, paths["tpm"], paths["samples"], paths["subjects"], n_top_genes=n_top_genes, scale=scale,
            keep_raw=keep_raw, chunk_rows=chunk_rows, chunk_genes=chunk_genes, compression=compression,
            progress=progress, uns={"sources": sources},
        )
    except CorruptFileError as exc:
        paths["tpm"].unlink(missing_ok=True)
        raise CorruptFileError(f"{exc}; deleted the cached copy, run again to download it afresh") from exc
