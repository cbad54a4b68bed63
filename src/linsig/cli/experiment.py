"""``linsig experiment``: run declarative experiment files (and the paper's presets) resumably."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.cli.options import Bounded, grid_options, on_interrupt
from linsig.terminal import safe_text

# grid_options parameter -> settings key of an experiment file
_GRID_KEYS = {"models": "models", "recipe": "recipe", "n_folds": "folds", "seeds": "seeds", "fractions": "fractions", "split": "split",
              "signals": "signals", "tuning": "tuning", "max_epochs": "epochs", "batch_size": "batch_size",
              "patience": "patience", "device": "device", "precision": "precision", "lr": "lr", "weight_decay": "weight_decay",
              "threads": "threads"}


@click.group("experiment")
def experiment() -> None:
    """Declarative experiments: a TOML/YAML file (or a shipped preset) expanded into units of
    work that run resumably, in parallel or on a Dask cluster. See docs/experiments.md."""


def _given(ctx: click.Context, param: str) -> bool:
    return ctx.get_parameter_source(param) not in (None, click.core.ParameterSource.DEFAULT)


def _overrides(ctx: click.Context, assignments) -> dict:
    """Grid options given on the command line (not defaults) and --set KEY=VALUE, in that order."""
    from linsig.experiment.spec import parse_assignments

    from linsig.experiment.spec import SETTINGS_KEYS

    out = {}
    for param, key in _GRID_KEYS.items():
        if key in SETTINGS_KEYS and param in ctx.params and _given(ctx, param):
            value = ctx.params[param]
            out[f"settings.{key}"] = list(value) if isinstance(value, tuple) else value
    out.update(parse_assignments(assignments))
    return out


def experiment_inputs(exp) -> list[str]:
    """The files an experiment reads: its own file and every dataset's data and metadata."""
    return [exp.origin] + [ds.source[k] for ds in exp.datasets for k in ("path", "metadata") if k in ds.source]


def _dry_run(exp, jobs: int = 1, scheduler: str | None = None, dask_local: int | None = None) -> None:
    from linsig.experiment.units import canonical_json, expand, trainings, tuning_plan

    units = expand(exp)
    total = sum(trainings(u) for u in units)
    s = exp.settings[0]
    n_tasks = len({(u.dataset_key, canonical_json(u.task), u.task_index) for u in units})
    click.echo(f"experiment {exp.name} ({exp.origin})")
    click.echo(f"datasets: {len(exp.datasets)}, tasks: {n_tasks}, split modes: "
               f"{', '.join(x.split for x in exp.settings)}, models: {', '.join(s.models)}, seeds: {len(s.seeds)}, "
               + ("pretraining repetitions" if exp.pretraining else f"folds: {s.n_folds}"))
    click.echo(f"units: {len(units)}")
    per_unit = len(s.fractions) * len(s.signals)
    copies = "2 copies × " if exp.pretraining else ""
    extra = f" + {len(s.signals)} pretraining fits" if exp.pretraining else ""
    click.echo(f"recipe: {s.recipe}, tuning: {s.tuning}")
    click.echo(f"trainings: {total} (per unit: {copies}{len(s.fractions)} fractions × {len(s.signals)} signals"
               f" = {per_unit * (2 if exp.pretraining else 1)}{extra}, plus tuning)")
    for model in s.models:
        n, folds, searches = tuning_plan(s, model)
        if n:
            click.echo(f"  tuning {model}: {n} candidate runs × {folds} inner folds × {searches} search(es) per unit")
        elif folds:
            click.echo(f"  tuning {model}: one candidate, nothing to search")
    _estimate(units, jobs, scheduler, dask_local)


def _estimate(units, jobs, scheduler, dask_local) -> None:
    """The estimated wall time (linsig.estimate), for the units whose data size can be known."""
    from linsig.estimate import plan_lines
    from linsig.experiment.units import unit_shapes

    shapes = unit_shapes(units)
    work = [(u.model, shape, u.settings) for u, shape in zip(units, shapes) if shape is not None]
    if len(work) < len(units):
        missing = sorted({u.dataset_key for u, shape in zip(units, shapes) if shape is None})
        click.echo(f"no estimate for {len(units) - len(work)} units: their data cannot be read here "
                   f"({', '.join(missing)})")
    if work:
        for line in plan_lines(work, jobs=jobs, dask_workers=dask_local, scheduler=scheduler):
            click.echo(line)


@experiment.command("run")
@click.argument("source")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Experiment directory (units/, results.parquet, summary.json). Required unless --dry-run.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override the file: a dotted key (settings.epochs=3, data.gtex=/path/gtex.h5ad) or a "
                   "variable used as ${NAME} (GTEX_H5AD=/path). Repeatable.")
@click.option("--jobs", "-j", type=Bounded("jobs"), default=1, show_default=True,
              help="Local worker processes (1: run in this process).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="Run on an existing Dask cluster.")
@click.option("--dask-local", type=Bounded("jobs"), metavar="N", help="Start a Dask LocalCluster of N worker processes.")
@click.option("--lock-timeout", type=Bounded("lock_timeout"), default=300.0, show_default=True,
              help="Seconds without a heartbeat after which another runner's claim on a unit is stale.")
@click.option("--dry-run", is_flag=True,
              help="Print the number of units and trainings, the models that dominate the cost and the estimated wall "
                   "time with --jobs (or per Dask worker); run nothing (reads the data files to know their size).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--force", is_flag=True,
              help="Run even if --out holds the results of `linsig run` (they are replaced); never over an input file.")
@grid_options
@click.pass_context
def run(ctx, source, out_dir, assignments, jobs, scheduler, dask_local, lock_timeout, dry_run, quiet, force, **grid):
    """Run the experiment SOURCE (a .toml/.yaml file or a preset name from `linsig experiment list`).

    Finished units are skipped, so an interrupted run continues where it stopped; several runners
    may share one --out directory. The grid options below (--models … --threads), when given,
    override the file's [settings] (e.g. --epochs 5 --tuning off for a quick pass); the defaults
    they show are linsig run's and do not apply here: the file's settings do.

    Example: linsig experiment run fig4-simulated --out fig4/ && linsig plot fig4/
    """
    from linsig.experiment.spec import load_experiment

    exp = load_experiment(source, _overrides(ctx, assignments), check_files=not dry_run)
    if dry_run:
        _dry_run(exp, jobs, scheduler, dask_local)
        return
    if out_dir is None:
        raise click.UsageError("give --out DIR (or --dry-run)")
    from linsig.confounding import run_warnings
    from linsig.outputs import ensure_output_dir
    from linsig.run_guard import guard_outputs

    from linsig.experiment.driver import run_experiment
    from linsig.executors import make_executor

    guard_outputs(out_dir, "experiment", experiment_inputs(exp), force=force)  # before any work
    # Worker processes train with one torch thread unless --threads says otherwise.
    threads = grid.get("threads") if _given(ctx, "threads") else None
    # The cluster before the folder: a scheduler that cannot be reached leaves no empty --out behind.
    executor = make_executor(jobs, scheduler, dask_local, threads)
    try:
        ensure_output_dir(out_dir, "experiment folder")
    except BaseException:
        executor.close(cancel=True)
        raise
    on_interrupt(f"finished units are kept in {out_dir}; run the same `linsig experiment run` command again to "
                 "resume (only the units that were in flight are computed again)")
    if not quiet:
        click.echo(f"running {exp.name} on {executor.name} into {out_dir}", err=True)
    report = run_experiment(exp, out_dir, executor, progress=not quiet, lock_timeout=lock_timeout)
    click.echo(f"{report.total} units: {report.done} done ({report.computed} computed now, {report.done_before} "
               f"before, {report.by_others} by other runners), {report.failed} failed; wrote {report.results}")
    for unit, error in report.failures[:20]:
        click.echo(safe_text(f"  failed: {unit}: {error}"), err=True)  # another runner's text, maybe
    for warning in run_warnings(out_dir):  # the confounding guard, counted by the workers before training
        click.echo(safe_text(f"warning: {warning}"), err=True)
    if report.failed:
        ctx.exit(1)


@experiment.command("status")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--combine", is_flag=True, help="Also rebuild results.parquet and summary.json from the unit files.")
@click.option("--lock-timeout", type=Bounded("lock_timeout"), default=300.0, show_default=True,
              help="Seconds without a heartbeat after which a claim counts as stale (pending).")
def status(out_dir, combine, lock_timeout):
    """Counts of done/failed/running/pending units in OUT_DIR, and the failed units' errors."""
    from linsig.experiment.status import experiment_status
    from linsig.experiment.store import UnitStore

    for line in experiment_status(out_dir, lock_timeout).lines():
        click.echo(line)
    if combine:
        path, df = UnitStore(out_dir).combine()
        click.echo(f"wrote {path} ({len(df)} rows)")


@experiment.command("list")
def list_presets():
    """The shipped experiment presets (the paper's figures), runnable by name."""
    from linsig.experiment.spec import preset_names, preset_path, read_document

    for name in preset_names():
        doc = read_document(preset_path(name))
        click.echo(f"{name:24s} {str(doc.get('description', '')).strip().splitlines()[0] if doc.get('description') else ''}")


@experiment.command("show")
@click.argument("name")
def show(name):
    """Print a preset's experiment file (a starting point for your own)."""
    from linsig.experiment.spec import preset_path

    click.echo(preset_path(name).read_text(), nl=False)


COMMAND = experiment
