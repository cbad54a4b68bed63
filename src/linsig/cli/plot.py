"""``linsig plot``: draw the learning-curve figures of a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.cli.options import Bounded
from linsig.system import available_cores


@click.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for the figures [default: RUN_DIR/figures].")
@click.option("--format", "formats", default="png,svg", show_default=True,
              help="Comma-separated image formats (png, svg, pdf).")
@click.option("-j", "--jobs", type=Bounded("jobs"), default=available_cores, show_default="all cores",
              help="Draw figures in this many processes. Rendering is matplotlib's, one figure per process at a time.")
def plot(run_dir: Path, out_dir: Path | None, formats: str, jobs: int) -> None:
    """Draw learning curves (Fig 2-4, S2, S4 style) from RUN_DIR/results.parquet.

    One figure per dataset/task/split/pretraining with a panel per signal mode, plus binary-task
    grids, simulated-data panels and split/pretraining comparisons when the run has them.
    """
    from linsig.plots import plot_run
    from linsig.results import load_results, usable_rows

    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    if not fmts:
        raise click.BadParameter("give at least one format", param_hint="--format")
    df = load_results(run_dir)
    target = out_dir if out_dir is not None else (
        run_dir if run_dir.is_dir() else run_dir.parent) / "figures"
    paths = plot_run(run_dir, target, formats=fmts, jobs=jobs)
    skipped = len(df) - len(usable_rows(df))
    if not paths:
        click.echo(f"No figures: all {len(df)} rows of the results table are skipped.", err=True)
        return
    click.echo(f"Wrote {len(paths)} files to {target}"
               + (f" ({skipped} skipped rows left out)" if skipped else ""))


COMMAND = plot
