"""``linsig data recount3`` and ``linsig data sex-labels``."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.data import recount3 as r3
from linsig.data import sex_labels as sl
from linsig.errors import DownloadError, LinsigInputError


def _default_cache_dir() -> Path:
    from linsig.data.download import default_cache_dir

    return default_cache_dir() / "recount3"


@click.command("recount3")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--base-url", "base_urls", multiple=True, metavar="URL",
              help="recount3 mirror (the folder holding human/...); repeat for fallbacks. "
                   f"Default: {r3.DEFAULT_BASE_URLS[0]}, then {r3.DEFAULT_BASE_URLS[1]}")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Downloads and per-project results (resumable). Default: $LINSIG_CACHE_DIR/recount3 "
                   "or ~/.cache/linsig/recount3.")
@click.option("--projects", default=None, metavar="P1,P2",
              help="Comma-separated project ids (default: every project of the SRA index).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Projects downloaded and processed at once.")
@click.option("--n-top-genes", type=click.IntRange(min=0), default=r3.DEFAULT_N_TOP_GENES, show_default=True,
              help="Keep the N most variable genes (0: all).")
@click.option("--max-sparsity", type=click.FloatRange(0, 1), default=r3.DEFAULT_MAX_SPARSITY, show_default=True,
              help="Drop runs with a larger fraction of zero genes.")
@click.option("--allow-missing", is_flag=True,
              help="If some projects fail, still write OUT from the others (listed in "
                   "uns['linsig']['failed_projects']). Default: write nothing and exit 1.")
@click.option("--keep-raw", is_flag=True, help="Keep the downloaded raw files of processed projects.")
@click.option("--retries", type=click.IntRange(min=0), default=5, show_default=True,
              help="Download retries per file (on timeouts and 5xx).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds without data before a retry.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def recount3_command(out, base_urls, cache_dir, projects, jobs, n_top_genes, max_sparsity, allow_missing,
                     keep_raw, retries, timeout, progress):
    """Build the Recount3 SRA compendium (TPM, 0–1 scaled, most variable genes) into OUT (.h5ad).

    Downloads the per-project gene_sums and recount_pred/recount_project metadata from a recount3
    mirror, drops runs with more than --max-sparsity zeros and runs predicted 'scrna-seq', converts
    coverage to TPM with the G026 GTF's bp_length, and labels runs with recount_pred
    curated.tissue (obs 'tissue'), project (obs 'study') and run accession (obs 'external_id').
    Re-running resumes: finished projects are cached.
    """
    try:
        report = _build(out, base_urls, cache_dir, projects, jobs, n_top_genes, max_sparsity, allow_missing,
                        keep_raw, retries, timeout, progress)
    except DownloadError as exc:  # the project index or the GTF: nothing can be built without them
        raise click.ClickException(str(exc)) from exc
    _report(report, out, max_sparsity)


def _build(out, base_urls, cache_dir, projects, jobs, n_top_genes, max_sparsity, allow_missing, keep_raw,
           retries, timeout, progress) -> r3.BuildReport:
    return r3.build_recount3(
        out,
        cache_dir=cache_dir or _default_cache_dir(),
        base_urls=base_urls or r3.DEFAULT_BASE_URLS,
        projects=projects.split(",") if projects else None,
        jobs=jobs,
        n_top_genes=n_top_genes or None,
        max_sparsity=max_sparsity,
        allow_missing=allow_missing,
        keep_raw=keep_raw,
        progress=progress,
        fetch_kwargs={"retries": retries, "timeout": timeout},
    )


def _report(report: r3.BuildReport, out: Path, max_sparsity: float) -> None:
    n_ok = len(report.done)
    click.echo(f"recount3: {n_ok} of {len(report.projects)} project(s) ready "
               f"({len(report.from_cache)} from the cache)", err=True)
    failures = "\n".join(f"  {p}: {msg}" for p, msg in sorted(report.failed.items()))
    if report.written is not None:
        click.echo(
            f"recount3: {report.n_runs} runs; dropped {report.n_sparse} (> {max_sparsity:g} zeros), "
            f"{report.n_scrna} (scrna-seq), {report.n_no_coverage} (no coverage); wrote {report.n_samples} "
            f"samples ({report.n_labeled} with a tissue label) to {report.written}", err=True)
        if report.failed:
            click.echo(f"Warning: {len(report.failed)} project(s) failed and are missing from {out}:\n{failures}",
                       err=True)
    elif report.failed:
        raise click.ClickException(
            f"{len(report.failed)} project(s) failed:\n{failures}\n"
            f"{out} was not written; the {n_ok} finished project(s) are cached, so re-running retries "
            "only the failed ones (or pass --allow-missing to write without them)."
        )


@click.command("sex-labels", short_help="Add Flynn et al. 2021 metadata sex labels to a compendium.")
@click.argument("flynn_csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--compendium", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The Recount3 compendium (.h5ad) built by 'linsig data recount3'.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the labelled copy (.h5ad; may be the --compendium path).")
@click.option("--id-column", default="external_id", show_default=True,
              help="obs column holding the SRA run accession ('obs_names' for the index).")
def sex_labels_command(flynn_csv, compendium, out, id_column):
    """Add Flynn et al. 2021 metadata sex labels (obs 'sex') to a Recount3 compendium.

    FLYNN_CSV is combined_human_mouse_meta_v2.csv from the figshare item of Flynn, Chang &
    Altman (2021), "Large-scale labeling and assessment of sex bias in publicly available
    expression data": https://figshare.com/s/985621c1705043421962 — figshare does not allow a
    scripted download, so save it by hand. Human RNA-seq rows with metadata_sex male/female are
    joined on the run accession (sample_acc = recount3 external_id).
    """
    if not flynn_csv.is_file():
        raise LinsigInputError(f"{flynn_csv}: no such file. {sl.WHERE_TO_GET[0].upper()}{sl.WHERE_TO_GET[1:]}")
    info = sl.add_sex_labels_file(compendium, flynn_csv, out, id_column=id_column)
    click.echo(f"sex-labels: {info['n_labeled']} compendium sample(s) labelled "
               f"({info['n_male']} male, {info['n_female']} female); wrote {out}", err=True)


COMMANDS = [recount3_command, sex_labels_command]
