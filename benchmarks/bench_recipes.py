"""The two training recipes side by side, and what each model family costs per unit.

``grid`` — the simulated Fig 4 grid (mixed, linear, noise; ``logreg``, ``svm``, ``mlp3``, ``mlp5``;
before and after linear signal removal; the paper's ten training fractions), each recipe with its
own default tuning (paper: 25 random trials × 4 inner folds, once per unit; strong: each model's
full search, 3 inner folds, once per signal mode). Prints wall time and mean balanced accuracy per
recipe, dataset, signal and model, and the overall speed-up. The paper's grid is 3 seeds × 5 folds
at 5,000 features; ``--features``, ``--seeds`` and ``--folds-run`` shrink it to what a machine can
do in the time at hand (every unit of one recipe is timed the same way, one torch thread each).

    python benchmarks/bench_recipes.py grid --features 400 --seeds 0 --folds-run 0,1 --out bench-grid/

``timings`` — seconds per fit (scikit-learn models) and per epoch (networks) of every strong model
family at the paper's width (5,000 genes) for 1,000 and 10,000 samples, and the fits a unit makes
(``linsig.experiment.units.tuning_plan``), so a grid can be budgeted.

    python benchmarks/bench_recipes.py timings [--samples 1000,10000] [--genes 5000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from linsig.data.preprocess import preprocess
from linsig.data.simulate import simulate
from linsig.evaluation import Settings, Unit, make_estimator, run_unit
from linsig.results import results_frame
from linsig.experiment.units import reference_fits, tuning_plan
from linsig.models import FAMILIES
from linsig.system import keep_freed_memory
from linsig.tasks import make_task

FIG4 = {"mixed": 1.0, "linear": 0.5, "noise": 0.5}  # features relative to --features (the paper: 5000, 2500, 2500)
MODELS = ("logreg", "svm", "mlp3", "mlp5")


def _task(kind: str, samples: int, features: int):
    adata = preprocess(simulate(kind, n_samples=samples, n_features=features, seed=0), n_top_genes=None)
    adata.uns["linsig"]["dataset"] = f"sim-{kind}"
    return make_task(adata, "label", "group")


def grid(args) -> None:
    torch.set_num_threads(1)
    keep_freed_memory()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    folds = [int(f) for f in args.folds_run.split(",")]
    rows, timing = [], []
    tasks = {kind: _task(kind, args.samples, max(2, int(round(args.features * FIG4[kind]))))
             for kind in args.datasets.split(",")}
    # recipe by recipe, so that a run cut short still holds one recipe's whole grid
    for recipe in args.recipes.split(","):
        for task in tasks.values():
            settings = Settings(models=MODELS, seeds=seeds, recipe=recipe, signals=("none", "removed"),
                                device=args.device)
            for seed in seeds:
                for fold in folds:
                    for model in MODELS:
                        start = time.perf_counter()
                        unit_rows = run_unit(task, Unit(model, seed, fold), settings)
                        if args.device == "cuda":
                            torch.cuda.synchronize()
                        seconds = time.perf_counter() - start
                        rows += unit_rows
                        timing.append({"dataset": task.dataset, "recipe": recipe, "model": model, "seed": seed,
                                       "fold": fold, "seconds": seconds})
                        print(f"{task.dataset:11s} {recipe:6s} {model:6s} seed {seed} fold {fold}: {seconds:7.1f} s, "
                              f"balanced accuracy {np.nanmean([r['balanced_accuracy'] for r in unit_rows]):.3f}",
                              flush=True)
    results = results_frame(rows)
    times = pd.DataFrame(timing)
    results.to_parquet(out / "results.parquet")
    times.to_csv(out / "unit_seconds.csv", index=False)
    report(results, times, args, out)


def report(results: pd.DataFrame, times: pd.DataFrame, args, out: Path) -> None:
    ok = results[results.status == "ok"]
    accuracy = ok.pivot_table(index=["dataset", "signal", "model"], columns="recipe", values="balanced_accuracy",
                              aggfunc="mean").round(3)
    seconds = times.pivot_table(index=["dataset", "model"], columns="recipe", values="seconds", aggfunc="sum").round(1)
    total = times.groupby("recipe")["seconds"].sum()
    lines = [f"# bench_recipes grid: {args.samples} samples, features {args.features} (mixed) / "
             f"{int(args.features * 0.5)} (linear, noise), seeds {args.seeds}, folds {args.folds_run}, "
             f"datasets {args.datasets}, device {args.device}", "",
             "## Mean balanced accuracy (all fractions)", "", "```\n" + accuracy.to_string() + "\n```", "",
             "## Wall time per dataset and model (s, sum over units)", "", "```\n" + seconds.to_string() + "\n```", "",
             "## Total", ""]
    lines += [f"- {recipe}: {s:,.0f} s" for recipe, s in total.items()]
    if {"paper", "strong"} <= set(total.index):
        lines.append(f"- speed-up of strong over paper: {total['paper'] / total['strong']:.1f}×")
        mean = ok.groupby("recipe")["balanced_accuracy"].mean()
        lines.append(f"- mean balanced accuracy: paper {mean['paper']:.3f}, strong {mean['strong']:.3f}")
    text = "\n".join(lines)
    (out / "report.md").write_text(text + "\n")
    print(text)


def timings(args) -> None:
    torch.set_num_threads(1)
    keep_freed_memory()
    rows = []
    if args.device == "cuda":  # the CUDA context and cuBLAS start on first use, not in a timed fit
        warm = make_estimator("mlp5", Settings(models=("mlp5",), seeds=(0,), device="cuda"), 0, 2)
        warm.set_params(max_epochs=1, epochs=1).fit(np.random.default_rng(0).random((64, 32), dtype=np.float32),
                                                   np.arange(64) % 2)
    for n in (int(s) for s in args.samples.split(",")):
        rng = np.random.default_rng(0)
        X = rng.random((n, args.genes), dtype=np.float32)
        y = (X[:, :50].sum(1) > 25).astype(np.int64)
        for model in args.models.split(","):
            settings = Settings(models=(model,), seeds=(0,), signals=("none", "removed"), device=args.device)
            estimator = make_estimator(model, settings, 0, 2)
            candidates, folds, searches = tuning_plan(settings, model)
            if model.startswith("mlp"):
                estimator.set_params(max_epochs=args.epochs, epochs=args.epochs)
            start = time.perf_counter()
            estimator.fit(X, y)
            if args.device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            per = "epoch" if model.startswith("mlp") else "fit"
            if per == "epoch":
                seconds /= args.epochs
            rows.append({"samples": n, "genes": args.genes, "model": model, f"seconds_per": per, "seconds": seconds,
                         "search_runs_per_unit": candidates * folds * searches,
                         "fits_per_unit": len(settings.fractions) * len(settings.signals) + reference_fits(settings, model)})
            print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    print(df.to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grid", help="both recipes on the simulated Fig 4 grid")
    g.add_argument("--samples", type=int, default=1000)
    g.add_argument("--features", type=int, default=5000, help="features of the mixed data (linear, noise: half)")
    g.add_argument("--seeds", default="0,1,2")
    g.add_argument("--folds-run", default="0,1,2,3,4", help="which of the 5 outer folds to run")
    g.add_argument("--recipes", default="paper,strong")
    g.add_argument("--datasets", default=",".join(FIG4), help="which simulated datasets (mixed, linear, noise)")
    g.add_argument("--device", default="cpu", help="cpu or cuda (every unit on this device)")
    g.add_argument("--out", default="bench-recipes")
    t = sub.add_parser("timings", help="seconds per fit / epoch of every strong model family")
    t.add_argument("--samples", default="1000,10000")
    t.add_argument("--genes", type=int, default=5000)
    t.add_argument("--models", default=",".join(FAMILIES))
    t.add_argument("--epochs", type=int, default=2, help="epochs timed per network")
    t.add_argument("--device", default="cpu")
    args = parser.parse_args()
    {"grid": grid, "timings": timings}[args.command](args)


if __name__ == "__main__":
    main()
