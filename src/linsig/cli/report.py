"""``linsig report``: one self-contained HTML page with figures, tables and the verdict."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.cli.options import Bounded
from linsig.system import available_cores


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="HTML file to write [default: RUN_DIR/report.html].")
@click.option("-j", "--jobs", type=Bounded("jobs"), default=available_cores, show_default="all cores",
              help="Processes for drawing figures that are missing. Rendering is matplotlib's, one figure per process at a time.")
@click.option("--rope", type=Bounded("rope"), default=0.01, show_default=True,
              help="Region of practical equivalence, in balanced accuracy: differences within ±ROPE count as "
                   "practically none (Bayesian probabilities) and a claim needs a difference beyond it.")
@click.option("--metric", type=click.Choice(["balanced_accuracy", "roc_auc"]), default="balanced_accuracy",
              show_default=True,
              help="What the verdict tests: balanced accuracy (chance: the majority class), or the area under the "
                   "ROC curve (one-vs-rest macro; chance 0.5), which does not depend on where the decision "
                   "threshold falls. The report shows both.")
@click.option("--csv", "csv", is_flag=True,
              help="Also write the results and the verdict as tidy CSV (RUN_DIR/results.csv, RUN_DIR/verdict.csv: "
                   "one row per result / statistic, NA for missing) for R and spreadsheets.")
def report(run_dir: Path, out: Path | None, jobs: int, rope: float, metric: str, csv: bool) -> None:
    """Write a self-contained report.html for RUN_DIR: data and task summary, balanced accuracy
    per model and training size, figures, and plain-word verdicts on (a) whether non-linear
    models beat the linear baseline and (b) whether there is non-linear signal, with the
    statistics behind them (corrected t-tests, Bayesian probabilities, permutation and cross-task
    tests); those are also written as RUN_DIR/verdict.parquet."""
    from linsig.report import write_report
    from linsig.results import incomplete_message, load_summary

    path, v = write_report(run_dir, out, jobs=jobs, rope=rope, with_verdict=True, metric=metric)
    incomplete = incomplete_message(load_summary(run_dir), run_dir)
    if incomplete:  # said where it is seen, not only inside the page's embedded options
        click.echo(f"warning: {incomplete}", err=True)
    click.echo(f"(a) {v.answer_a}\n(b) {v.answer_b}")
    click.echo(f"Wrote {path}")
    if csv:
        from linsig.results import export_csv

        for written in export_csv(run_dir, verdict=v):
            click.echo(f"Wrote {written}")


COMMAND = report
