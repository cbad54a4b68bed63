"""The Recount3 SRA compendium, built from the raw files of a recount3 mirror.

What it does, per the paper's Methods (Recount3 paragraph):

1. reads the project index ``human/data_sources/sra/metadata/sra.recount_project.MD.gz``;
2. for every project, fetches ``gene_sums`` (per-gene base-pair coverage sums, one column per run)
   and the ``recount_pred`` / ``recount_project`` metadata tables;
3. drops runs with more than ``max_sparsity`` (75 %) zero genes and runs whose
   ``pattern.predict.type`` is ``scrna-seq``;
4. converts coverage to TPM with the gene lengths of the annotation GTF (``bp_length``, the GTF
   score column of ``human.gene_sums.G026.gtf.gz``);
5. streams the runs, project by project, into a 0–1-scaled ``.h5ad`` with the ``n_top_genes`` most
   variable genes.

TPM from coverage
-----------------
recount3's ``gene_sums`` are base-pair coverage: the number of aligned bases over the gene's
(disjoint) exons. For a read length ``L``, coverage_g ≈ reads_g × L, so recount3's
``transform_counts`` divides by ``L`` to get read counts. For TPM::

    rate_g = coverage_g / bp_length_g          (∝ reads per base of gene g)
    TPM_g  = rate_g / Σ_h rate_h × 1e6

``L`` is one number per run, so it cancels in the ratio: TPM needs neither the read length nor
the mapped-read count, only the coverage and ``bp_length``.

Resuming and failures
---------------------
Raw files are cached under ``CACHE/raw/`` in the mirror's own layout; each project's filtered TPM
matrix is cached, atomically, as ``CACHE/processed/<project>.<key>.npz`` (``key`` hashes the
filter settings and the gene set, so changing ``max_sparsity`` never reuses stale results).
A second run only downloads and parses projects without a processed file. A project that fails
(download error, or a file that still cannot be parsed after one re-download) is reported at the
end; the others are kept.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from linsig.errors import DownloadError, LinsigInputError
from linsig.outputs import atomic_write

log = logging.getLogger(__name__)

#: Mirrors with the same layout below them (``human/...``), tried in this order.
DEFAULT_BASE_URLS: tuple[str, ...] = (
    "http://duffel.rail.bio/recount3/",
    "https://recount-opendata.s3.amazonaws.com/recount3/release/",
)
ORGANISM = "human"
DATA_SOURCE = "sra"
ANNOTATION = "G026"
GTF_PATH = f"{ORGANISM}/annotations/gene_sums/{ORGANISM}.gene_sums.{ANNOTATION}.gtf.gz"
PROJECT_INDEX_PATH = f"{ORGANISM}/data_sources/{DATA_SOURCE}/metadata/{DATA_SOURCE}.recount_project.MD.gz"
DEFAULT_MAX_SPARSITY = 0.75
DEFAULT_N_TOP_GENES = 5000
SCRNA_TYPE = "scrna-seq"
_CACHE_FORMAT = 1
_GENE_CHUNK = 4096


# ----------------------------------------------------------------------------------------------
# Paths on the mirror
# ----------------------------------------------------------------------------------------------
def _project_dir(kind: str, project: str) -> str:
    if len(project) < 2 or "/" in project:
        raise LinsigInputError(f"not a recount3 project id: {project!r}")
    return f"{ORGANISM}/data_sources/{DATA_SOURCE}/{kind}/{project[-2:]}/{project}"


def gene_sums_path(project: str) -> str:
    """Path of a project's gene_sums file below the mirror's base URL."""
    return f"{_project_dir('gene_sums', project)}/{DATA_SOURCE}.gene_sums.{project}.{ANNOTATION}.gz"


def metadata_path(project: str, table: str) -> str:
    """Path of a project's metadata table (``recount_pred``, ``recount_project``, …)."""
    return f"{_project_dir('metadata', project)}/{DATA_SOURCE}.{table}.{project}.MD.gz"


def project_paths(project: str) -> dict[str, str]:
    return {
        "gene_sums": gene_sums_path(project),
        "recount_pred": metadata_path(project, "recount_pred"),
        "recount_project": metadata_path(project, "recount_project"),
    }


def _join_url(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + rel.lstrip("/")


# ----------------------------------------------------------------------------------------------
# Parsers (all errors are LinsigInputError naming the file)
# ----------------------------------------------------------------------------------------------
_READ_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError, OSError)


def read_metadata_table(path: str | Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """Read a recount3 ``.MD.gz`` table (tab-separated, ``NA`` for missing) as strings."""
    path = Path(path)
    try:
        df = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, na_values=["NA", ""],
            compression="gzip" if path.suffix == ".gz" else None, quoting=3,
        )
    except pd.errors.EmptyDataError as exc:
        raise LinsigInputError(f"{path}: the metadata table is empty (no header)") from exc
    except (pd.errors.ParserError, ValueError, *_READ_ERRORS) as exc:
        raise LinsigInputError(f"{path}: cannot be read as a recount3 metadata table ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise LinsigInputError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def read_project_index(path: str | Path) -> pd.DataFrame:
    """The SRA project index: one row per run, with ``project`` and ``external_id``."""
    return read_metadata_table(path, required=("external_id", "project"))


def projects_in_index(index: pd.DataFrame) -> list[str]:
    """Project ids in order of first appearance."""
    return list(pd.unique(index["project"].dropna()))


@dataclass
class GeneAnnotation:
    """Genes of the annotation GTF in file order, with their ``bp_length``."""

    gene_ids: pd.Index
    bp_length: np.ndarray  # float64, > 0
    var: pd.DataFrame  # gene_name, gene_type, bp_length; index = gene_ids
    source: str = "the annotation GTF"

    def key(self) -> str:
        h = hashlib.sha1()
        h.update("\n".join(self.gene_ids).encode())
        h.update(self.bp_length.astype(np.float64).tobytes())
        return h.hexdigest()[:12]


def _gtf_attr(attrs: str, name: str) -> str | None:
    tag = f'{name} "'
    i = attrs.find(tag)
    if i < 0:
        return None
    j = attrs.find('"', i + len(tag))
    return attrs[i + len(tag): j] if j > 0 else None


def read_gene_annotation(path: str | Path) -> GeneAnnotation:
    """Parse the gene_sums GTF: ``gene`` rows, ``gene_id`` attribute, score column = ``bp_length``."""
    path = Path(path)
    ids: list[str] = []
    lengths: list[float] = []
    names: list[str | None] = []
    types: list[str | None] = []
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip() or line.startswith("#"):
                    continue
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 9:
                    raise LinsigInputError(
                        f"{path}, line {lineno}: expected 9 tab-separated GTF columns, got {len(fields)}"
                    )
                if fields[2] != "gene":
                    continue
                gene_id = _gtf_attr(fields[8], "gene_id")
                if not gene_id:
                    raise LinsigInputError(f"{path}, line {lineno}: gene row without a gene_id attribute")
                try:
                    length = float(fields[5])
                except ValueError:
                    length = float("nan")
                if not np.isfinite(length) or length <= 0:
                    raise LinsigInputError(
                        f"{path}, line {lineno}: gene {gene_id} has no positive bp_length in the score "
                        f"column (got {fields[5]!r})"
                    )
                ids.append(gene_id)
                lengths.append(length)
                names.append(_gtf_attr(fields[8], "gene_name"))
                types.append(_gtf_attr(fields[8], "gene_type"))
    except _READ_ERRORS as exc:
        raise LinsigInputError(f"{path}: cannot be read as a gzipped GTF ({exc})") from exc
    if not ids:
        raise LinsigInputError(f"{path}: no 'gene' rows found in the GTF")
    index = pd.Index(ids, name="gene_id")
    if index.has_duplicates:
        dup = index[index.duplicated()].unique()[:5]
        raise LinsigInputError(f"{path}: duplicated gene_id(s) {', '.join(dup)}")
    bp = np.asarray(lengths, dtype=np.float64)
    var = pd.DataFrame({"gene_name": names, "gene_type": types, "bp_length": bp.astype(np.int64)}, index=index)
    return GeneAnnotation(gene_ids=index, bp_length=bp, var=var, source=str(path))


@dataclass
class CoverageTPM:
    """TPM (runs × genes, float32, genes in annotation order) computed from one gene_sums file."""

    runs: list[str]
    tpm: np.ndarray
    zero_fraction: np.ndarray  # per run, over the annotation's genes


def _gene_sums_header(path: Path) -> tuple[int, list[str]]:
    """Number of lines before the column header, and the run ids of the header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            n_skip = 0
            for line in fh:
                if line.startswith("##"):
                    n_skip += 1
                    continue
                header = line.rstrip("\n").split("\t")
                break
            else:
                raise LinsigInputError(f"{path}: no column header (expected a 'gene_id' line after the '##' lines)")
    except _READ_ERRORS as exc:
        raise LinsigInputError(f"{path}: cannot be read as a gzipped gene_sums table ({exc})") from exc
    if header[0] != "gene_id":
        raise LinsigInputError(
            f"{path}: malformed gene_sums header: the first column is {header[0][:40]!r}, expected 'gene_id'"
        )
    runs = header[1:]
    if not runs or any(not r for r in runs):
        raise LinsigInputError(f"{path}: malformed gene_sums header: no (or empty) run columns")
    if len(set(runs)) != len(runs):
        dup = pd.Index(runs)[pd.Index(runs).duplicated()].unique()[:5]
        raise LinsigInputError(f"{path}: duplicated run column(s) {', '.join(dup)}")
    return n_skip, runs


def gene_sums_to_tpm(path: str | Path, annotation: GeneAnnotation) -> CoverageTPM:
    """Read a gene_sums file in row chunks and return TPM for every run, genes in annotation order.

    The gene sets must match exactly: a gene without a GTF ``bp_length`` has no TPM, and a GTF
    gene missing from the file would change the TPM denominator of this project only. Memory:
    one float32 genes × runs array for the project (plus one row chunk).
    """
    path = Path(path)
    n_skip, runs = _gene_sums_header(path)
    n_genes, n_runs = len(annotation.gene_ids), len(runs)
    rate = np.zeros((n_genes, n_runs), dtype=np.float32)
    seen = np.zeros(n_genes, dtype=bool)
    totals = np.zeros(n_runs, dtype=np.float64)
    zeros = np.zeros(n_runs, dtype=np.int64)
    n_unannotated = 0
    unknown_genes: list[str] = []
    dtypes = {"gene_id": str, **{r: np.float64 for r in runs}}
    try:
        reader = pd.read_csv(
            path, sep="\t", skiprows=n_skip, header=0, dtype=dtypes, chunksize=_GENE_CHUNK,
            compression="gzip" if path.suffix == ".gz" else None, na_filter=True, engine="c",
        )
        for chunk in reader:
            if chunk.shape[1] != n_runs + 1:
                raise LinsigInputError(f"{path}: rows have {chunk.shape[1]} columns, header has {n_runs + 1}")
            genes = chunk["gene_id"].to_numpy()
            pos = annotation.gene_ids.get_indexer(genes)
            if (pos < 0).any():
                unknown_genes.extend(genes[pos < 0][: max(0, 5 - len(unknown_genes))])
                n_unannotated += int((pos < 0).sum())
                continue
            vals = chunk.iloc[:, 1:].to_numpy(dtype=np.float64)
            if not np.isfinite(vals).all() or (vals < 0).any():
                bad = np.nonzero(~(np.isfinite(vals) & (vals >= 0)).all(axis=1))[0][0]
                gene = genes[bad]
                raise LinsigInputError(f"{path}: gene {gene} has a missing, negative or non-finite coverage sum")
            if seen[pos].any() or len(np.unique(pos)) != len(pos):
                dup = annotation.gene_ids[pos[seen[pos]]] if seen[pos].any() else pd.Index(
                    annotation.gene_ids[pos]).value_counts().index[:1]
                raise LinsigInputError(f"{path}: gene {dup[0]} appears more than once")
            seen[pos] = True
            r = vals / annotation.bp_length[pos, None]
            totals += r.sum(axis=0)
            zeros += (vals == 0).sum(axis=0)
            rate[pos] = r
    except LinsigInputError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, *_READ_ERRORS) as exc:
        raise LinsigInputError(f"{path}: cannot be parsed as a gene_sums table ({type(exc).__name__}: {exc})") from exc
    if n_unannotated:
        more = f" … and {n_unannotated - len(unknown_genes)} more" if n_unannotated > len(unknown_genes) else ""
        raise LinsigInputError(
            f"{path}: {n_unannotated} gene(s) have no entry (no bp_length) in the annotation GTF "
            f"{annotation.source}: {', '.join(unknown_genes)}{more}"
        )
    if not seen.all():
        missing = annotation.gene_ids[~seen]
        more = f" … and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise LinsigInputError(
            f"{path}: {len(missing)} gene(s) of the annotation GTF {annotation.source} are missing from this "
            f"gene_sums file: "
            f"{', '.join(missing[:5])}{more}"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(totals > 0, 1e6 / totals, np.nan)
    rate *= scale[None, :].astype(np.float32)  # in place: one genes × runs array per project
    tpm = rate.T  # runs × genes (a Fortran-ordered view)
    return CoverageTPM(runs=runs, tpm=tpm, zero_fraction=zeros / n_genes)


# ----------------------------------------------------------------------------------------------
# One project: metadata join + filters
# ----------------------------------------------------------------------------------------------
@dataclass
class ProjectResult:
    project: str
    tpm: np.ndarray  # kept runs × genes, float32
    obs: pd.DataFrame  # index = external_id; tissue, study, external_id, sample_acc, predict_type
    n_runs: int
    n_sparse: int
    n_scrna: int
    n_no_coverage: int

    @property
    def n_kept(self) -> int:
        return self.tpm.shape[0]


def process_project(
    project: str,
    gene_sums_file: str | Path,
    recount_pred_file: str | Path,
    recount_project_file: str | Path | None,
    annotation: GeneAnnotation,
    max_sparsity: float = DEFAULT_MAX_SPARSITY,
) -> ProjectResult:
    """TPM + filters + labels for one project's local files."""
    cov = gene_sums_to_tpm(gene_sums_file, annotation)
    pred = read_metadata_table(recount_pred_file, required=("external_id", "curated.tissue", "pattern.predict.type"))
    pred = pred.drop_duplicates("external_id").set_index("external_id")
    runs = pd.Index(cov.runs)
    if recount_project_file is not None:
        proj = read_metadata_table(recount_project_file, required=("external_id",))
        unknown = runs.difference(pd.Index(proj["external_id"].dropna()))
        if len(unknown):
            log.warning("%s: %d run(s) of the gene_sums file are not listed in %s (e.g. %s)",
                        project, len(unknown), recount_project_file, unknown[0])
    pred = pred.reindex(runs)
    predict_type = pred["pattern.predict.type"].astype("string").str.lower()
    is_scrna = (predict_type == SCRNA_TYPE).fillna(False).to_numpy(dtype=bool)
    is_sparse = cov.zero_fraction > max_sparsity
    no_cov = ~np.isfinite(cov.tpm[:, 0]) if cov.tpm.shape[1] else np.zeros(len(runs), bool)
    keep = ~(is_scrna | is_sparse | no_cov)
    obs = pd.DataFrame(
        {
            "tissue": pred["curated.tissue"].to_numpy(dtype=object),
            "study": project,
            "external_id": runs.to_numpy(dtype=object),
            "sample_acc": (pred["sample_acc"] if "sample_acc" in pred else pd.Series(np.nan, index=runs)).to_numpy(dtype=object),
            "predict_type": pred["pattern.predict.type"].to_numpy(dtype=object),
        },
        index=pd.Index(runs, name=None),
    )
    return ProjectResult(
        project=project,
        tpm=np.ascontiguousarray(cov.tpm[keep]),
        obs=obs[keep],
        n_runs=len(runs),
        n_sparse=int((is_sparse & ~is_scrna).sum()),
        n_scrna=int(is_scrna.sum()),
        n_no_coverage=int((no_cov & ~is_sparse & ~is_scrna).sum()),
    )


# ----------------------------------------------------------------------------------------------
# Per-project processed cache (atomic .npz)
# ----------------------------------------------------------------------------------------------
_OBS_COLUMNS = ("tissue", "study", "external_id", "sample_acc", "predict_type")


def processed_key(annotation: GeneAnnotation, max_sparsity: float) -> str:
    h = hashlib.sha1(f"{_CACHE_FORMAT}|{ANNOTATION}|{max_sparsity!r}|{annotation.key()}".encode())
    return h.hexdigest()[:10]


def processed_path(cache_dir: Path, project: str, key: str) -> Path:
    return Path(cache_dir) / "processed" / f"{project}.{key}.npz"


def save_processed(path: Path, result: ProjectResult) -> None:
    arrays = {"X": result.tpm.astype(np.float32, copy=False)}
    for col in _OBS_COLUMNS:
        values = result.obs[col]
        arrays[f"obs_{col}"] = values.fillna("").astype(str).to_numpy(dtype=str)
        arrays[f"obs_{col}_na"] = values.isna().to_numpy(dtype=bool)
    meta = {k: getattr(result, k) for k in ("project", "n_runs", "n_sparse", "n_scrna", "n_no_coverage")}
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def load_processed(path: Path) -> ProjectResult:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        cols = {}
        for col in _OBS_COLUMNS:
            vals = z[f"obs_{col}"].astype(object)
            vals[z[f"obs_{col}_na"]] = np.nan
            cols[col] = vals
        obs = pd.DataFrame(cols, index=pd.Index(cols["external_id"].astype(str)))
        return ProjectResult(tpm=z["X"], obs=obs, **meta)


# ----------------------------------------------------------------------------------------------
# Downloading + building
# ----------------------------------------------------------------------------------------------
@dataclass
class Mirror:
    """Fetches files below one of several equivalent base URLs into ``cache_dir/raw/<path>``."""

    base_urls: Sequence[str] = DEFAULT_BASE_URLS
    cache_dir: Path = Path(".")
    fetch_kwargs: dict = field(default_factory=dict)

    def local(self, rel: str) -> Path:
        return Path(self.cache_dir) / "raw" / rel

    def get(self, rel: str, refresh: bool = False) -> Path:
        from linsig.data import download

        dest = self.local(rel)
        if refresh:
            dest.unlink(missing_ok=True)
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        urls = [_join_url(b, rel) for b in self.base_urls]
        kwargs = {"progress": False, **self.fetch_kwargs}
        return Path(download.fetch_first(urls, dest, **kwargs))


@dataclass
class BuildReport:
    projects: list[str]
    done: list[str]
    failed: dict[str, str]  # project -> error message
    from_cache: list[str]
    n_runs: int = 0
    n_sparse: int = 0
    n_scrna: int = 0
    n_no_coverage: int = 0
    n_samples: int = 0
    n_labeled: int = 0
    written: Path | None = None


def fetch_and_process_project(
    project: str, mirror: Mirror, annotation: GeneAnnotation, max_sparsity: float, keep_raw: bool = False
) -> ProjectResult:
    """Download (cached) and process one project; re-download once if a file cannot be parsed."""
    paths = project_paths(project)
    for attempt in (0, 1):
        local = {name: mirror.get(rel, refresh=attempt > 0) for name, rel in paths.items() if name != "recount_project"}
        try:
            # recount_project only cross-checks the run list: its loss must not cost the project
            local["recount_project"] = mirror.get(paths["recount_project"], refresh=attempt > 0)
        except DownloadError as exc:
            log.warning("%s: skipping the recount_project cross-check (%s)", project, exc)
            local["recount_project"] = None
        try:
            result = process_project(
                project, local["gene_sums"], local["recount_pred"], local["recount_project"], annotation, max_sparsity
            )
            break
        except LinsigInputError as exc:
            if attempt == 0:
                log.warning("%s: %s; downloading the project's files again", project, exc)
                continue
            raise
    if not keep_raw:
        for p in local.values():
            if p is not None:
                Path(p).unlink(missing_ok=True)
    return result


def _read_with_refetch(mirror: Mirror, rel: str, parse):
    """Parse a cached mirror file; if that fails, download it again once and re-parse."""
    try:
        return parse(mirror.get(rel))
    except LinsigInputError as exc:
        log.warning("%s; downloading it again", exc)
        return parse(mirror.get(rel, refresh=True))


def build_recount3(
    out: str | Path | None,
    *,
    cache_dir: str | Path,
    base_urls: Sequence[str] = DEFAULT_BASE_URLS,
    projects: Iterable[str] | None = None,
    jobs: int = 4,
    n_top_genes: int | None = DEFAULT_N_TOP_GENES,
    max_sparsity: float = DEFAULT_MAX_SPARSITY,
    allow_missing: bool = False,
    keep_raw: bool = False,
    progress: bool = True,
    fetch_kwargs: dict | None = None,
) -> BuildReport:
    """Build the Recount3 SRA compendium into ``out`` (``.h5ad``); returns a :class:`BuildReport`.

    Projects are fetched and processed by ``jobs`` threads; each finished project is cached at
    once, so an interrupted or partly failed build resumes where it stopped. If any project
    failed, ``out`` is written only with ``allow_missing`` (recording the failures in
    ``uns['linsig']['failed_projects']``); otherwise nothing is written and the caller reports
    the failures. ``out=None`` only fills the cache.
    """
    if not 0 <= max_sparsity <= 1:
        raise LinsigInputError(f"max_sparsity must be within [0, 1], got {max_sparsity}")
    if jobs < 1:
        raise LinsigInputError(f"jobs must be at least 1, got {jobs}")
    cache_dir = Path(cache_dir)
    mirror = Mirror(base_urls=tuple(base_urls), cache_dir=cache_dir, fetch_kwargs=dict(fetch_kwargs or {}))

    annotation = _read_with_refetch(mirror, GTF_PATH, read_gene_annotation)
    index = _read_with_refetch(mirror, PROJECT_INDEX_PATH, read_project_index)
    available = projects_in_index(index)
    if projects is None:
        wanted = available
    else:
        wanted = list(dict.fromkeys(p.strip() for p in projects if p.strip()))
        known = set(available)
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise LinsigInputError(
                f"{mirror.local(PROJECT_INDEX_PATH)}: project(s) not in the recount3 SRA index: {', '.join(unknown[:10])}"
            )
    if not wanted:
        raise LinsigInputError("no projects to build")

    key = processed_key(annotation, max_sparsity)
    report = BuildReport(projects=wanted, done=[], failed={}, from_cache=[])
    todo = []
    for p in wanted:
        if processed_path(cache_dir, p, key).exists():
            report.from_cache.append(p)
        else:
            todo.append(p)

    def work(p: str) -> str:
        result = fetch_and_process_project(p, mirror, annotation, max_sparsity, keep_raw=keep_raw)
        save_processed(processed_path(cache_dir, p, key), result)
        return p

    if todo:
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(max_workers=jobs) as pool, tqdm(
            total=len(todo), desc="recount3 projects", unit="project", disable=not progress
        ) as bar:
            futures = {pool.submit(work, p): p for p in todo}
            for fut in as_completed(futures):
                p = futures[fut]
                try:
                    fut.result()
                except (DownloadError, LinsigInputError, OSError) as exc:
                    report.failed[p] = f"{type(exc).__name__}: {exc}"
                    log.error("project %s failed: %s", p, exc)
                except Exception as exc:  # unexpected: still keep the other projects, but show where
                    report.failed[p] = f"{type(exc).__name__}: {exc}"
                    log.exception("project %s failed unexpectedly", p)
                bar.update(1)
    report.done = [p for p in wanted if p not in report.failed]

    if out is None or (report.failed and not allow_missing):
        return report
    if not report.done:
        raise LinsigInputError("every requested project failed; nothing to write")
    _assemble(out, report, annotation, cache_dir, key, list(base_urls), n_top_genes, max_sparsity, progress)
    return report


def _iter_results(report: BuildReport, cache_dir: Path, key: str):
    seen: set[str] = set()
    for p in report.done:
        res = load_processed(processed_path(cache_dir, p, key))
        report.n_runs += res.n_runs
        report.n_sparse += res.n_sparse
        report.n_scrna += res.n_scrna
        report.n_no_coverage += res.n_no_coverage
        dup = np.fromiter((run in seen for run in res.obs.index), dtype=bool, count=len(res.obs))
        if dup.any():
            log.warning("%s: %d run(s) already seen in an earlier project; keeping the first", p, int(dup.sum()))
            res.obs, res.tpm = res.obs[~dup], res.tpm[~dup]
        seen.update(res.obs.index)
        yield res


def _assemble(out, report: BuildReport, annotation: GeneAnnotation, cache_dir: Path, key: str,
              base_urls: list[str], n_top_genes: int | None, max_sparsity: float, progress: bool = True) -> None:
    """Stream the cached projects, one at a time and in index order, into the output ``.h5ad``."""
    from linsig.data.compendium import CompendiumWriter

    out = Path(out)
    n_samples = n_labeled = 0
    with CompendiumWriter(out, var=annotation.var, obs=None, n_top_genes=n_top_genes, progress=progress) as writer:
        for res in _iter_results(report, cache_dir, key):
            if res.n_kept:
                writer.append_samples(res.tpm, _clean_obs(res.obs))
                n_samples += res.n_kept
                n_labeled += int(res.obs["tissue"].notna().sum())
        if not n_samples:
            raise LinsigInputError("no samples left after the sparsity and scRNA-seq filters")
        report.n_samples, report.n_labeled = n_samples, n_labeled
        info = _provenance(report, base_urls, max_sparsity)
        info["n_samples"], info["n_tissue_labeled"] = n_samples, n_labeled
        writer.uns["linsig"] = info
        writer.finish()
    report.written = out


def _clean_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """String columns as object (str or NaN); an all-NaN column as an empty categorical.

    anndata writes object columns of strings (NaN allowed) as categoricals, but cannot write an
    object column holding only NaN; an empty categorical writes, and concatenates with the
    string columns of other projects.
    """
    obs = obs.copy()
    for col in obs.columns:
        values = obs[col].astype(object).where(obs[col].notna(), np.nan)
        obs[col] = pd.Categorical(values, categories=[]) if values.isna().all() else values
    obs.index = obs.index.astype(str)
    return obs


def _provenance(report: BuildReport, base_urls: list[str], max_sparsity: float) -> dict:
    return {
        "dataset": "recount3",
        "source": {"base_urls": list(base_urls), "organism": ORGANISM, "data_source": DATA_SOURCE,
                   "annotation": ANNOTATION, "gtf": GTF_PATH},
        "projects": list(report.done),
        "failed_projects": sorted(report.failed),
        "filters": {
            "max_sparsity": float(max_sparsity),
            "drop_predict_type": SCRNA_TYPE,
            "n_runs": int(report.n_runs),
            "n_dropped_sparse": int(report.n_sparse),
            "n_dropped_scrna": int(report.n_scrna),
            "n_dropped_no_coverage": int(report.n_no_coverage),
        },
        "expression": "TPM from gene_sums coverage / GTF bp_length (read length cancels)",
    }
