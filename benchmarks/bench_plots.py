"""Time ``linsig.plots.plot_run`` and ``linsig.report.write_report`` on synthetic result tables.

    .venv/bin/python benchmarks/bench_plots.py [--out DIR] [--scenario dense|wide|both]

Scenarios (both about 10^5 rows, in the ``results.parquet`` schema):

* ``dense``: 6 tasks (GTEx and Recount3 multiclass, sex, three simulated datasets) x 2 splits
  x 2 signals x 4 models x 21 seeds x 5 folds x 10 fractions = 100,800 rows, 20 figures:
  many points per panel, few figures.
* ``wide``: 25 tasks (20 binary tissue pairs, multiclass, sex, 3 simulated) x 2 splits x
  2 signals x 4 models x 5 seeds x 5 folds x 10 fractions = 100,000 rows, 82 figures.

Prints a Markdown table; ``--out`` keeps the run directories (figures, report.html).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from linsig.plots import figure_specs, loess_band, plot_run, synthetic_results
from linsig.results import load_results, usable_rows
from linsig.report import verdict, write_report

MODELS_NONE = {"logreg": 0.90, "svm": 0.89, "mlp3": 0.86, "mlp5": 0.88}
MODELS_REMOVED = {"logreg": None, "svm": None, "mlp3": 0.55, "mlp5": 0.6}  # None: chance


def levels_for(name: str, task: str, n_classes: int) -> dict:
    chance = 1 / n_classes
    removed = {m: (chance if v is None else chance + (1 - chance) * (v - 0.5) * 1.5)
               for m, v in MODELS_REMOVED.items()}
    if name == "sim_linear":
        removed = {m: chance for m in MODELS_REMOVED}
    if name == "sim_noise":
        return {(name, task, n_classes): {"none": {m: chance for m in MODELS_NONE},
                                          "removed": {m: chance for m in MODELS_NONE}}}
    return {(name, task, n_classes): {"none": dict(MODELS_NONE), "removed": removed}}


def scenario(kind: str) -> pd.DataFrame:
    tasks = [("gtex", "tissue:multiclass", 31), ("recount3", "tissue:multiclass", 21),
             ("recount3", "sex", 2), ("sim_mixed", "label", 2), ("sim_linear", "label", 2),
             ("sim_noise", "label", 2)]
    seeds = 21
    if kind == "wide":
        tissues = ["Blood", "Brain", "Lung", "Skin", "Muscle", "Heart", "Liver"]
        pairs = list(itertools.combinations(tissues, 2))[:20]
        tasks = [("gtex", f"tissue:{a}-vs-{b}", 2) for a, b in pairs] + \
            [("gtex", "tissue:multiclass", 31), ("recount3", "sex", 2)] + tasks[3:]
        seeds = 5
    levels = {}
    for t in tasks:
        levels.update(levels_for(*t))
    frames = [synthetic_results(levels, seeds=seeds, split=split, n_samples=2000, seed=i)
              for i, split in enumerate(("study", "sample"))]
    return pd.concat(frames, ignore_index=True)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench(kind: str, root: Path, jobs: int = 1) -> dict:
    run = root / kind
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    df = scenario(kind)
    df.to_parquet(run / "results.parquet")
    out = {"scenario": kind, "rows": len(df), "jobs": jobs}

    data, out["load_s"] = timed(lambda: load_results(run))
    ok = usable_rows(data)

    def all_loess():
        n = 0
        for _, sub in ok.groupby(["dataset", "task", "split", "pretraining", "signal", "model"]):
            x = sub["n_train"].to_numpy(float)
            loess_band(x, sub["balanced_accuracy"].to_numpy(float), np.linspace(x.min(), x.max(), 80))
            n += 1
        return n

    out["curves"], out["loess_s"] = timed(all_loess)
    out["figures"] = len(figure_specs(data))
    _, out["verdict_s"] = timed(lambda: verdict(data))
    paths, out["plot_png_svg_s"] = timed(lambda: plot_run(run, formats=("png", "svg"), jobs=jobs))
    out["files"] = len(paths)
    _, out["report_with_figures_s"] = timed(lambda: write_report(run))
    shutil.rmtree(run / "figures")
    report, out["report_from_scratch_s"] = timed(lambda: write_report(run, jobs=jobs))
    out["report_mb"] = report.stat().st_size / 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="keep run directories here")
    parser.add_argument("--scenario", choices=("dense", "wide", "both"), default="both")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1],
                        help="worker processes for the figures (several values: one row each)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="linsig-bench-"))
    kinds = ("dense", "wide") if args.scenario == "both" else (args.scenario,)
    rows = [bench(kind, root, jobs) for kind in kinds for jobs in args.jobs]
    cols = ["scenario", "rows", "jobs", "curves", "figures", "files", "load_s", "loess_s", "verdict_s",
            "plot_png_svg_s", "report_with_figures_s", "report_from_scratch_s", "report_mb"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c])
                                for c in cols) + " |")
    if args.out is None:
        shutil.rmtree(root)
    else:
        print(f"run directories kept in {root}")


if __name__ == "__main__":
    main()
