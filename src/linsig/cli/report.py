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
def report(run_dir: Path, out: Path | None, jobs: int, rope: float) -> None:
    """Write a self-contained report.html for RUN_DIR: data and task summary, balanced accuracy
    per model and training size, figures, and plain-word verdicts on (a) whether non-linear
    models beat the linear baseline and (b) whether there is non-linear signal, with the
    statistics behind them (corrected t-tests, Bayesian probabilities, permutation and cross-task
    tests); those are also written as RUN_DIR/verdict.parquet."""
    from linsig.results import load_summary
    from linsig.report import write_report
    from linsig.results import incomplete_message

    path, v = write_report(run_dir, out, jobs=jobs, rope=rope, with_verdict=True)
    incomplete = incomplete_message(load_summary(run_dir), run_dir)
    if incomplete:  # said where it is seen, not only inside the page's embedded options
        click.echo(f"warning: {incomplete}", err=True)
    click.echo(f"(a) {v.answer_a}\n(b) {v.answer_b}")
    click.echo(f"Wrote {path}")


COMMAND = report
