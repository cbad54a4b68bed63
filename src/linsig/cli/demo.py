"""``linsig demo``: the main job on embedded data, end to end, in minutes on a laptop."""

from __future__ import annotations

import time
from pathlib import Path

import click
import pandas as pd

from linsig.cli.options import Bounded, csv_list, on_interrupt, precision_option, settings_errors_as_options
from linsig.terminal import safe_text
from linsig.validation import check_bound
from linsig.outputs import ensure_output_dir
from linsig.system import available_cores


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("linsig-demo"),
              show_default=True, help="Output directory (an interrupted demo resumes where it stopped).")
@click.option("--jobs", type=Bounded("jobs"), default=lambda: min(2, available_cores()), show_default="2, or the cores available if fewer",
              help="Worker processes (one torch thread each).")
@click.option("--seeds", default=None, callback=csv_list(int), help="Comma-separated seeds (default: 0).")
@click.option("--epochs", type=Bounded("max_epochs"), default=None, help="Length of the network's schedule (default: the `demo` experiment's settings.epochs).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Where to train (default: auto).")
@precision_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--force", is_flag=True, help="Run even if --out holds the results of `linsig run` (they are replaced).")
def demo(out_dir, jobs, seeds, epochs, device, precision, quiet, force):
    """Run linsig's main job on embedded data and write results, figures and a report.

    Three datasets; the linear models (logreg, svm), the paper's three-layer network (mlp3) and the
    simpler non-linear models (rbf_svm, knn, gbdt, rf), each trained to its capacity (strong recipe,
    hyperparameters by nested CV per signal mode); 5-fold CV, three training-set sizes, before and
    after linear signal removal: (1) the paper's simulated "mixed" data (1000 samples; half linear,
    half non-linear features), where only non-linear models should survive signal removal; (2) the
    bundled ALL leukemia arrays (128 patients of one study, 250 most variable probes), predicting
    sex and B- vs T-cell lineage; (3) the bundled bladder compendium (195 tumours, 5 studies on
    different platforms, standardised within each study, missing values imputed per fold),
    predicting invasive vs superficial stage with leave-one-study-out folds. It is the shipped
    experiment `demo` (`linsig experiment show demo`). Then `linsig locate` on ALL lineage: which
    probes carry the signal left after removal (OUT/locate/). Writes OUT/results.parquet,
    OUT/figures/, OUT/locate/ and OUT/report.html.
    """
    from linsig.cli.experiment import experiment_inputs
    from linsig.confounding import run_warnings
    from linsig.run_guard import guard_outputs
    from linsig.experiment.driver import run_experiment
    from linsig.executors import make_executor
    from linsig.experiment.spec import load_experiment
    from linsig.report import write_report

    start = time.perf_counter()
    with settings_errors_as_options():  # named as the options they are, not as keys of the demo's preset
        for seed in seeds or ():
            check_bound("seeds", seed)
    overrides = {}
    if seeds:
        overrides["settings.seeds"] = list(seeds)
    if epochs:
        overrides["settings.epochs"] = epochs
    if device:
        overrides["settings.device"] = device
    if precision:
        overrides["settings.precision"] = precision
    experiment = load_experiment("demo", overrides)
    guard_outputs(out_dir, "experiment", experiment_inputs(experiment), force=force)
    ensure_output_dir(out_dir)
    on_interrupt(f"finished units are kept in {out_dir}; run the same `linsig demo` command again to resume")
    report = run_experiment(experiment, out_dir, make_executor(jobs), progress=not quiet)
    if report.failed:
        for unit, error in report.failures:
            click.echo(safe_text(f"failed: {unit}: {error}"), err=True)
        raise click.ClickException(f"{report.failed} of {report.total} units failed; rerun to retry them")
    for warning in run_warnings(out_dir):
        click.echo(safe_text(f"warning: {warning}"), err=True)
    from linsig.locate import locate_demo_task  # where ALL lineage's signal after removal lies (OUT/locate/)

    locate_demo_task(out_dir, experiment.settings[0].seeds, progress=not quiet)
    html = write_report(out_dir)
    results = pd.read_parquet(out_dir / "results.parquet")
    minutes = (time.perf_counter() - start) / 60
    click.echo(f"wrote {out_dir / 'results.parquet'}, {out_dir / 'figures'} and {html} in {minutes:.1f} min")
    table = (results[results.status == "ok"].groupby(["dataset", "task", "signal", "model"])["balanced_accuracy"]
             .mean().unstack("model").round(3))
    click.echo("mean balanced accuracy over folds and training sizes:")
    click.echo(table.to_string())


COMMAND = demo
