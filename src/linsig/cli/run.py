"""``linsig run``: the paper's benchmark on one dataset."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.cli.options import csv_list, grid_options, settings_errors_as_options
from linsig.evaluation import Settings, check_task, evaluate
from linsig.models import parse_models
from linsig.outputs import ensure_output_dir
from linsig.permutation import check_permutations, evaluate_permutations, with_permutations
from linsig.results import write_run
from linsig.runner import build_tasks, prepare_dataset
from linsig.tasks import PRESETS


def settings_from_options(models, n_folds, seeds, fractions, split, signals, tuning, max_epochs, batch_size,
                          patience, device, lr, weight_decay, threads=1) -> Settings:
    return Settings(
        models=tuple(parse_models(models)), seeds=tuple(seeds), n_folds=n_folds, fractions=tuple(fractions),
        split=split, signals=tuple(signals), tuning=tuning, max_epochs=max_epochs, batch_size=batch_size,
        patience=patience, device=device, lr=lr, weight_decay=weight_decay, threads=threads,
    )


@click.command("run")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Expression data: .h5ad (samples × genes), or CSV/TSV/Parquet with --metadata.")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path),
              help="Sample metadata table (first column: sample id) for CSV/TSV/Parquet data.")
@click.option("--orientation", type=click.Choice(["auto", "samples-by-genes", "genes-by-samples"]), default="auto",
              show_default=True, help="Layout of a CSV/TSV/Parquet expression table.")
@click.option("--label", help="Metadata column with the class labels.")
@click.option("--group", help="Metadata column with the study/donor of each sample (default: each sample its own group).")
@click.option("--classes", callback=csv_list(str), help="Keep only these classes (e.g. a binary pair: Blood,Brain).")
@click.option("--min-groups", type=click.IntRange(1), help="Keep only classes present in at least K groups.")
@click.option("--pairwise-top", type=click.IntRange(2), help="One binary task per pair of the K classes with most groups.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="The paper's task sets (overrides --label).")
@click.option("--n-top-genes", type=click.IntRange(0), default=5000, show_default=True,
              help="Keep the N most variable genes (0: all). Skipped for data preprocessed by linsig data.")
@click.option("--no-scale", is_flag=True, help="Do not 0–1 scale each gene.")
@grid_options
@click.option("--permutations", type=click.IntRange(0), default=0, show_default=True,
              help="Also rerun the grid with linear signal removed on N label permutations (within groups) "
                   "for an exact test of signal after removal; needs --signal …,removed. Costs N × that grid.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (results.parquet, summary.json).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(data_path, metadata, orientation, label, group, classes, min_groups, pairwise_top, preset, n_top_genes,
        no_scale, models, n_folds, seeds, fractions, split, signals, tuning, max_epochs, batch_size, patience,
        device, lr, weight_decay, threads, permutations, out_dir, quiet):
    """Cross-validate linear and non-linear models on one dataset and write OUT/results.parquet.

    Example: linsig run --data gtex.h5ad --label tissue --group donor --classes Blood,Brain
    --models logreg,svm,mlp3,mlp5 --signal none,removed --out results/
    """
    with settings_errors_as_options():  # every parameter checked before any work
        settings = settings_from_options(models, n_folds, seeds, fractions, split, signals, tuning, max_epochs,
                                         batch_size, patience, device, lr, weight_decay, threads)
    check_permutations(permutations, settings.signals)
    ensure_output_dir(out_dir)
    adata = prepare_dataset(data_path, metadata, orientation, n_top_genes=n_top_genes, scale=not no_scale)
    tasks = build_tasks(adata, label, group, list(classes) if classes else None, min_groups, pairwise_top, preset)
    for task in tasks:
        check_task(task, settings)
    if settings.split == "study" and any(task.group_key is None for task in tasks):
        # A silent sample-wise split would inflate accuracy (paper S2); say so, as it may be intended.
        click.echo("warning: no --group, so every sample is its own group and the 'study'-wise folds are "
                   "sample-wise; give --group COLUMN (study, donor, batch) unless the samples are independent",
                   err=True)
    results = evaluate(tasks, settings, progress=not quiet)
    if permutations:
        results = with_permutations(results, evaluate_permutations(tasks, settings, permutations, progress=not quiet))
    config = {"data": str(data_path), "label": label, "group": group, "preset": preset, **settings.to_dict(),
              "permutations": permutations}
    path = write_run(out_dir, results, [t.summary() for t in tasks], config)
    ok = (results["status"] == "ok").sum()
    extra = f", {int((results['permutation'] > 0).sum())} of them on permuted labels" if permutations else ""
    click.echo(f"wrote {path} ({len(results)} rows, {ok} trained, {len(results) - ok} skipped{extra})")


COMMAND = run
