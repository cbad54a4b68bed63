"""``linsig report``: one self-contained HTML page with figures, tables and the verdict."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.system import available_cores


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="HTML file to write [default: RUN_DIR/report.html].")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=available_cores, show_default="all cores",
              help="Processes for drawing figures that are missing. Rendering is matplotlib's, one figure per process at a time.")
def report(run_dir: Path, out: Path | None, jobs: int) -> None:
    """Write a self-contained report.html for RUN_DIR: data and task summary, balanced accuracy
    per model and training size, figures, and plain-word verdicts on (a) whether non-linear
    models beat the linear baseline and (b) whether there is non-linear signal."""
    from linsig.report import verdict, write_report
    from linsig.plots import load_results

    path = write_report(run_dir, out, jobs=jobs)
    v = verdict(load_results(run_dir))
    click.echo(f"(a) {v.answer_a}\n(b) {v.answer_b}")
    click.echo(f"Wrote {path}")


COMMAND = report
