"""``linsig demo``: the main job on embedded data, end to end, in minutes on a laptop."""

from __future__ import annotations

import time
from pathlib import Path

import click
import pandas as pd

from linsig.data.examples import load_example
from linsig.data.preprocess import preprocess
from linsig.data.simulate import simulate
from linsig.evaluation import Settings, evaluate
from linsig.results import write_run
from linsig.tasks import make_task

# Sized so that the whole demo runs in well under 10 minutes on 2 CPU cores while keeping the
# paper's design: 5-fold CV, all four models, signal removal, learning-curve sizes.
DEMO_FRACTIONS = (0.25, 0.5, 1.0)


def demo_tasks(sim_samples: int, sim_features: int, all_genes: int):
    """The simulated "mixed" task and the ALL leukemia sex and B-vs-T lineage tasks."""
    sim = preprocess(simulate("mixed", n_samples=sim_samples, n_features=sim_features, seed=0), n_top_genes=None)
    all_data = preprocess(load_example("ALL"), n_top_genes=all_genes)
    return (
        [make_task(sim, "label", "group", name="mixed:class-0-vs-1")],
        [make_task(all_data, "sex", None, name="sex"), make_task(all_data, "lineage", None, name="lineage:B-vs-T")],
    )


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("linsig-demo"),
              show_default=True, help="Output directory.")
@click.option("--models", default="logreg,svm,mlp3,mlp5", show_default=True, help="Comma-separated models.")
@click.option("--sim-samples", type=click.IntRange(50), default=400, show_default=True,
              help="Samples of the simulated 'mixed' dataset.")
@click.option("--sim-features", type=click.IntRange(10), default=400, show_default=True,
              help="Features of the simulated 'mixed' dataset.")
@click.option("--all-genes", type=click.IntRange(10), default=1000, show_default=True,
              help="Most variable probes kept from the ALL leukemia arrays.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--epochs", type=click.IntRange(1), default=50, show_default=True, help="Maximum epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(out_dir, models, sim_samples, sim_features, all_genes, seeds, epochs, device, quiet):
    """Run linsig's main job on embedded data and write results, figures and a report.

    Two datasets, all four models, 5-fold CV, three training-set sizes, before and after linear
    signal removal: (1) the paper's simulated "mixed" data (half linear, half non-linear
    features), where only the neural networks should survive signal removal; (2) the bundled
    ALL leukemia arrays (128 patients; one study, so folds are sample-wise), predicting sex and
    B- vs T-cell lineage. Writes OUT/results.parquet, OUT/figures/ and OUT/report.html.
    """
    start = time.perf_counter()
    seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    common = dict(models=tuple(m.strip() for m in models.split(",") if m.strip()), seeds=seed_list, n_folds=5,
                  fractions=DEMO_FRACTIONS, signals=("none", "removed"), tuning="off", max_epochs=epochs, device=device)
    sim_tasks, all_tasks = demo_tasks(sim_samples, sim_features, all_genes)
    # Simulated samples are each their own study (as in the paper); ALL is one study, so its
    # folds are stratified sample-wise.
    sim_settings = Settings(split="study", **common)
    all_settings = Settings(split="sample", **common)
    results = pd.concat(
        [evaluate(sim_tasks, sim_settings, progress=not quiet), evaluate(all_tasks, all_settings, progress=not quiet)],
        ignore_index=True,
    )
    config = {"command": "demo", "simulated": sim_settings.to_dict(), "ALL": all_settings.to_dict(),
              "sim_samples": sim_samples, "sim_features": sim_features, "all_genes": all_genes}
    write_run(out_dir, results, [t.summary() for t in sim_tasks + all_tasks], config)
    from linsig.report import write_report

    report = write_report(out_dir)
    minutes = (time.perf_counter() - start) / 60
    click.echo(f"wrote {out_dir / 'results.parquet'}, {out_dir / 'figures'} and {report} in {minutes:.1f} min")
    summary = (results[results.status == "ok"].groupby(["task", "signal", "model"])["balanced_accuracy"].mean()
               .unstack("model").round(3))
    click.echo("mean balanced accuracy (all folds and sizes):")
    click.echo(summary.to_string())


COMMAND = demo
