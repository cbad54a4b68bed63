"""``linsig locate``: where the signal left after linear removal is, what form it has, and
whether it adds to the linear signal."""

from __future__ import annotations

import time
from pathlib import Path

import click

from linsig.cli.options import data_options, fold_options, settings_errors_as_options


@click.command("locate")
@data_options
@fold_options
@click.option("--permutations", type=click.IntRange(1), default=19, show_default=True,
              help="Label permutations (within groups) for the null of the model importance; the smallest "
                   "importance p-value is 1/(1 + N × genes).")
@click.option("--top", "n_top", type=click.IntRange(2), default=10, show_default=True,
              help="Top genes whose pairs are tested (N·(N−1)/2 pairs).")
@click.option("--candidates", "n_candidates", type=click.IntRange(1), default=40, show_default=True,
              help="Genes each fold's GBDT sees, screened on the training fold (half by per-gene tests, half by "
                   "class differences in correlation).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: genes.parquet, pairs.parquet, locate.json, figures/.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def locate_command(data_path, metadata, orientation, na_values, label, group, classes, n_top_genes, normalize,
                   missing, n_folds, seeds, split, threads, permutations, n_top, n_candidates, out_dir, quiet):
    """Locate the non-linear signal: which genes, which pairs, what form, and whether it adds to linear.

    Linear signal is removed inside each fold exactly as `linsig run --signal removed` does (train
    and validation each corrected with their own labels). Per gene: spread and shape tests after
    removal and a GBDT's permutation importance against permuted labels, one ranking with
    Benjamini–Hochberg q-values; pairs among the top genes (combining vs additive model);
    additive vs combining model after removal; and, on the original data, logreg against logreg
    plus a GBDT fitted to what it leaves (corrected repeated k-fold t-test). A multiclass task is
    located one class against the rest (or give a pair with --classes).

    Example: linsig locate --data example:ALL --label lineage --classes B,T --n-top-genes 250
    --out all-locate/
    """
    from linsig.evaluation import Settings
    from linsig.locate import LocateConfig, binary_tasks, locate, write_outputs
    from linsig.outputs import ensure_output_dir
    from linsig.runner import prepare_dataset
    from linsig.data.normalize import check_method
    from linsig.tasks import make_task

    with settings_errors_as_options():  # checked before any work, as `linsig run` does
        settings = Settings(models=("gbdt",), seeds=tuple(seeds), n_folds=n_folds, fractions=(1.0,), split=split,
                            signals=("removed",), threads=threads)
    config = LocateConfig(n_candidates=n_candidates, n_top=n_top, permutations=permutations)
    normalize = normalize or "minmax"
    zscore_group = group if normalize == "study-zscore" else None
    check_method(normalize, zscore_group)
    ensure_output_dir(out_dir)
    start = time.perf_counter()
    adata = prepare_dataset(data_path, metadata, orientation, n_top_genes=n_top_genes, normalize=normalize,
                            group=zscore_group, missing=missing, na_values=na_values)
    task = make_task(adata, label, group, classes=list(classes) if classes else None)
    results = [locate(t, settings, config, progress=not quiet, positive=positive)
               for t, positive in binary_tasks(task)]
    path = write_outputs(out_dir, results, {
        "data": str(data_path), "label": label, "group": group, "classes": list(classes or ()),
        "normalize": normalize, "missing": missing, "n_top_genes": n_top_genes, "split": split,
        "folds": n_folds, "seeds": list(seeds), "permutations": permutations, "top": n_top,
        "candidates": n_candidates, "seconds": round(time.perf_counter() - start, 1)})
    for r in results:
        bl = r.beyond_linear
        click.echo(f"{r.task}: {r.n_genes_q05} genes and {int((r.pairs['q_value'] < 0.05).sum())} pairs at q < 0.05; "
                   f"form additive {r.form['additive']:.3f} vs combining {r.form['interaction']:.3f}; "
                   f"linear {bl['linear']:.3f} vs linear + non-linear {bl['combined']:.3f} (p = {bl['p_value']:.3g})")
        top = r.genes.head(5)
        click.echo("  top genes: " + ", ".join(f"{g} ({f}, q={q:.2g})" for g, f, q in
                                               zip(top["gene"], top["form"], top["q_value"])))
    click.echo(f"wrote {path}, {out_dir / 'genes.parquet'}, {out_dir / 'pairs.parquet'} and figures in "
               f"{time.perf_counter() - start:.0f} s")


COMMAND = locate_command
