"""``linsig run``: the paper's benchmark on one dataset."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.cli.options import Bounded, csv_list, grid_options, on_interrupt, settings_errors_as_options
from linsig.confounding import warnings_for as confounding_warnings
from linsig.data.missing import MISSING_MODES
from linsig.data.normalize import NORMALIZATIONS, ContradictoryNormalization, check_method, resolve_normalization
from linsig.evaluation import Settings, check_task, evaluate
from linsig.models import parse_models
from linsig.outputs import ensure_output_dir
from linsig.permutation import check_permutations, evaluate_permutations, with_permutations
from linsig.results import write_run
from linsig.run_guard import guard_outputs, take_over
from linsig.runner import build_tasks, normalize_group, prepare_dataset
from linsig.system import available_cores, default_jobs
from linsig.tasks import PRESETS


def settings_from_options(models, n_folds, seeds, fractions, split, signals, tuning, max_epochs, batch_size,
                          patience, device, lr, weight_decay, threads=1, recipe="strong", precision=None) -> Settings:
    return Settings(
        models=tuple(parse_models(models)), seeds=tuple(seeds), n_folds=n_folds, fractions=tuple(fractions),
        split=split, signals=tuple(signals), recipe=recipe, tuning=tuning, max_epochs=max_epochs,
        batch_size=batch_size, patience=patience, device=device, lr=lr, weight_decay=weight_decay, threads=threads,
        precision=precision,
    )


@click.command("run")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Expression data: .h5ad (samples × genes), CSV/TSV/Parquet with --metadata, or a bundled "
                   "example: example:ALL, example:bladder, example:ovarian.")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path),
              help="Sample metadata table (first column: sample id) for CSV/TSV/Parquet data.")
@click.option("--orientation", type=click.Choice(["auto", "samples-by-genes", "genes-by-samples"]), default="auto",
              show_default=True, help="Layout of a CSV/TSV/Parquet expression table.")
@click.option("--na-values", "na_values", metavar="VALUES", callback=csv_list(str),
              help="Metadata cells that mean missing, comma-separated (e.g. NA for tables written by R); by "
                   "default only an empty cell is, and a label or group that looks like a marker (NA, unknown, …) "
                   "is kept with a warning.")
@click.option("--layer", metavar="NAME",
              help="For .h5ad data: the layer holding the expression values instead of X (e.g. counts), or raw "
                   "for the file's raw matrix. Sparse matrices are read densely, a task's rows at a time.")
@click.option("--label", help="Metadata column with the class labels.")
@click.option("--group", help="Metadata column with the study/donor of each sample (default: each sample its own group).")
@click.option("--classes", callback=csv_list(str), help="Keep only these classes (e.g. a binary pair: Blood,Brain).")
@click.option("--min-groups", type=click.IntRange(1), help="Keep only classes present in at least K groups.")
@click.option("--pairwise-top", type=click.IntRange(2), help="One binary task per pair of the K classes with most groups.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="The paper's task sets (overrides --label).")
@click.option("--n-top-genes", type=click.IntRange(0), default=5000, show_default=True,
              help="Keep the N most variable genes (0: all). Skipped for data preprocessed by linsig data.")
@click.option("--normalize", type=click.Choice(NORMALIZATIONS), default=None,
              help="Per-gene normalisation before gene selection, label-free: minmax (0–1 over all samples, the "
                   "paper's; default), study-zscore (centre and scale each gene within each --group: for studies "
                   "on different platforms/scales), none.")
@click.option("--missing", type=click.Choice(MISSING_MODES), default="error", show_default=True,
              help="Missing (NaN) expression values: error, impute (each gene's mean over the training fold's "
                   "samples, inside every fold) or drop-genes (remove genes with any missing value).")
@click.option("--no-scale", is_flag=True, help="Do not 0–1 scale each gene (= --normalize none).")
@grid_options
@click.option("--permutations", type=Bounded("permutations"), default=0, show_default=True,
              help="Also rerun the grid with linear signal removed on N label permutations (within groups) "
                   "for an exact test of signal after removal; needs --signal …,removed. Costs N × that grid.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (results.parquet, summary.json). Required unless --dry-run.")
@click.option("-j", "--jobs", type=Bounded("jobs"), default=None,
              show_default="$LINSIG_JOBS, or every core at --threads each, as many as memory holds",
              help="Compute units (model × seed × fold, and their label permutations) in this many processes, each with "
                   "--threads threads; "
                   "the results are the same as with one.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--force", is_flag=True,
              help="Replace what OUT holds (an experiment, or another run's results); never an input file.")
@click.option("--dry-run", is_flag=True,
              help="Read the data and print the units, the models that dominate the cost and the estimated wall time "
                   "with --jobs; train nothing and write nothing (the first dry run calibrates this machine for a few "
                   "seconds, cached).")
def run(data_path, metadata, orientation, na_values, layer, label, group, classes, min_groups, pairwise_top, preset,
        n_top_genes, normalize, missing, no_scale, models, recipe, n_folds, seeds, fractions, split, signals, tuning, max_epochs,
        batch_size, patience, device, precision, lr, weight_decay, threads, permutations, out_dir, jobs, quiet, force,
        dry_run):
    """Cross-validate linear and non-linear models on one dataset and write OUT/results.parquet.

    Example: linsig run --data gtex.h5ad --label tissue --group donor --classes Blood,Brain
    --models logreg,svm,mlp3,mlp5 --signal none,removed --out results/

    Pooled studies: linsig run --data example:bladder --label summarystage --group study
    --normalize study-zscore --missing impute --models logreg --out bladder/
    """
    with settings_errors_as_options():  # every parameter checked before any work
        settings = settings_from_options(models, n_folds, seeds, fractions, split, signals, tuning, max_epochs,
                                         batch_size, patience, device, lr, weight_decay, threads, recipe, precision)
    check_permutations(permutations, settings.signals)
    cores = available_cores()
    if jobs is not None and settings.threads * jobs > cores:  # within the bounds, yet only switching between threads
        click.echo(f"warning: --threads {settings.threads} × --jobs {jobs} asks for more threads than the {cores} "
                   "CPU cores available here: training gets slower, not faster", err=True)
    zscore_group = normalize_group(group, preset) if normalize == "study-zscore" else None
    try:  # one validated method from here on
        normalize = resolve_normalization(normalize, scale=not no_scale)
    except ContradictoryNormalization as exc:
        raise click.UsageError(f"--no-scale contradicts --normalize {exc.normalize}") from None
    check_method(normalize, zscore_group)  # study-zscore without a group: refused before any work
    config = {"data": str(data_path), "layer": layer, "label": label, "group": group, "preset": preset, "normalize": normalize,
              "missing": missing, "na_values": list(na_values or ()), **settings.to_dict(),
              "permutations": permutations, "metadata": None if metadata is None else str(metadata),
              "orientation": orientation, "classes": list(classes) if classes else None, "min_groups": min_groups,
              "pairwise_top": pairwise_top, "n_top_genes": n_top_genes}
    if dry_run:  # nothing is written, so --out is neither needed nor touched
        _dry_run(data_path, metadata, orientation, n_top_genes, normalize, zscore_group, missing, na_values, layer,
                 label, group, classes, min_groups, pairwise_top, preset, settings, permutations, jobs)
        return
    if out_dir is None:
        raise click.UsageError("give --out DIR (or --dry-run)")
    guard_outputs(out_dir, "run", [data_path, metadata], config, force=force)  # before any work (linsig.run_guard)
    ensure_output_dir(out_dir)
    on_interrupt(f"nothing was written to {out_dir}; `linsig run` starts over when run again "
                 "(`linsig experiment run` resumes a grid unit by unit)")
    adata = prepare_dataset(data_path, metadata, orientation, n_top_genes=n_top_genes, normalize=normalize,
                            group=zscore_group, missing=missing, na_values=na_values, layer=layer)
    tasks = build_tasks(adata, label, group, list(classes) if classes else None, min_groups, pairwise_top, preset)
    for task in tasks:
        check_task(task, settings)
    jobs = jobs or default_jobs(settings.threads, sum(task.X.nbytes for task in tasks))
    if settings.splitter.grouped and any(task.group_key is None for task in tasks):
        # A silent sample-wise split would inflate accuracy (paper S2); say so, as it may be intended.
        click.echo("warning: no --group, so every sample is its own group and the 'study'-wise folds are "
                   "sample-wise; give --group COLUMN (study, donor, batch) unless the samples are independent",
                   err=True)
    summaries = [t.summary() for t in tasks]
    for warning in confounding_warnings(summaries):  # before training: the table is in summary.json and the report
        click.echo(f"warning: {warning}", err=True)
    results = evaluate(tasks, settings, progress=not quiet, jobs=jobs)
    if permutations:
        results = with_permutations(results, evaluate_permutations(tasks, settings, permutations, progress=not quiet, jobs=jobs))
    config["preprocessing"] = adata.uns.get("linsig", {}).get("preprocessing")
    if force:
        take_over(out_dir, "run")
    path = write_run(out_dir, results, summaries, config)
    ok = (results["status"] == "ok").sum()
    extra = f", {int((results['permutation'] > 0).sum())} of them on permuted labels" if permutations else ""
    click.echo(f"wrote {path} ({len(results)} rows, {ok} trained, {len(results) - ok} skipped{extra})")


def _dry_run(data_path, metadata, orientation, n_top_genes, normalize, zscore_group, missing, na_values, layer,
             label, group, classes, min_groups, pairwise_top, preset, settings, permutations, jobs) -> None:
    """The grid ``linsig run`` would compute and how long it would take; reads the data, writes nothing."""
    from linsig.estimate import plan_lines
    from linsig.permutation import planned_work
    from linsig.terminal import safe_text

    adata = prepare_dataset(data_path, metadata, orientation, n_top_genes=n_top_genes, normalize=normalize,
                            group=zscore_group, missing=missing, na_values=na_values, layer=layer)
    tasks = build_tasks(adata, label, group, list(classes) if classes else None, min_groups, pairwise_top, preset)
    for task in tasks:
        check_task(task, settings)
    work = planned_work(tasks, settings, permutations)
    jobs = jobs or default_jobs(settings.threads, sum(task.X.nbytes for task in tasks))
    for task in tasks:
        click.echo(safe_text(f"task {task.name}: {task.n_samples} samples × {task.X.shape[1]} genes, "
                             f"{task.n_classes} classes"))  # names come from the data
    s = settings
    click.echo(f"units: {len(work)} ({len(tasks)} task(s) × {len(s.models)} models × {len(s.seeds)} seeds × "
               f"{s.n_folds} folds{f', plus {permutations} permutation(s)' if permutations else ''}); each trains "
               f"{len(s.fractions)} fractions × {len(s.signals)} signal modes, plus its search")
    click.echo(f"recipe: {s.recipe}, tuning: {s.tuning}, epochs: {s.max_epochs}, threads: {s.threads}")
    for line in plan_lines(work, jobs=jobs):
        click.echo(line)


COMMAND = run
