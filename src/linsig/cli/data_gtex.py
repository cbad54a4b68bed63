"""``linsig data gtex OUT.h5ad``: download GTEx v8 and build the paper's preprocessed dataset."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.data.download import default_cache_dir
from linsig.data.gtex import DEFAULT_MIRRORS, Mirror, build_gtex
from linsig.errors import DownloadError


@click.command("gtex")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where downloads are kept (files go to DIR/gtex_v8/). "
                   "Default: $LINSIG_CACHE_DIR or ~/.cache/linsig.")
@click.option("--base-url", "base_urls", multiple=True, metavar="URL",
              help="A mirror with the current bucket's layout (bulk-gex/v8/rna-seq/…, "
                   "annotations/v8/metadata-files/…). Repeatable; tried in order. Giving any "
                   "--base-url/--legacy-base-url replaces the default Google Cloud buckets.")
@click.option("--legacy-base-url", "legacy_urls", multiple=True, metavar="URL",
              help="A mirror with the legacy gtex_analysis_v8 layout (rna_seq_data/…, "
                   "annotations/…), tried after the --base-url mirrors.")
@click.option("--n-top-genes", type=click.IntRange(min=0), default=5000, show_default=True,
              help="Keep this many most variable genes (0 = all).")
@click.option("--no-scale", is_flag=True, help="Do not 0-1 scale the genes.")
@click.option("--keep-raw", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also keep the unscaled all-genes matrix as an .h5ad here (~3.9 GB for GTEx).")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=256, show_default=True,
              help="Samples per HDF5 chunk of the output.")
@click.option("--compression", type=click.Choice(["none", "gzip", "lzf"]), default="none",
              show_default=True, help="HDF5 compression of the output matrix.")
@click.option("--retries", type=click.IntRange(min=0), default=5, show_default=True,
              help="Retries per file on connection errors, timeouts and 5xx.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds without data before a download attempt times out.")
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")
def gtex(out, cache_dir, base_urls, legacy_urls, n_top_genes, no_scale, keep_raw, chunk_rows, compression,
         retries, timeout, progress):
    """Download GTEx v8 gene TPMs and annotations, write OUT.h5ad (samples × genes, float32).

    Labels in obs: tissue (SMTS), tissue_detail (SMTSD), sex (male/female), donor (GTEX-XXXX),
    age. Genes are 0-1 scaled and the --n-top-genes most variable kept, as in the paper. The
    output is chunked by samples so that `linsig run` loads only the rows a task needs.
    Downloads resume after interruptions; files already in the cache are not fetched again.
    """
    mirrors = [Mirror(u, "current") for u in base_urls] + [Mirror(u, "legacy") for u in legacy_urls]
    try:
        path = _build(out, cache_dir, mirrors, n_top_genes, no_scale, keep_raw, chunk_rows, compression,
                      retries, timeout, progress)
    except DownloadError as exc:  # an expected failure: one clear line, exit status 1
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")


def _build(out, cache_dir, mirrors, n_top_genes, no_scale, keep_raw, chunk_rows, compression, retries,
           timeout, progress) -> Path:
    return build_gtex(
        out,
        cache_dir=cache_dir or default_cache_dir(),
        mirrors=mirrors or list(DEFAULT_MIRRORS),
        n_top_genes=n_top_genes or None,
        scale=not no_scale,
        keep_raw=keep_raw,
        chunk_rows=chunk_rows,
        compression=None if compression == "none" else compression,
        progress=progress,
        retries=retries,
        timeout=timeout,
    )


COMMANDS = [gtex]
