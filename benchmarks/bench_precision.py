"""bf16 against fp32 for the networks (issue 25, lever 1): step speed and accuracy over seeds.

    PYTHONPATH=src python benchmarks/bench_precision.py steps      # ms per training step
    PYTHONPATH=src python benchmarks/bench_precision.py accuracy   # balanced accuracy over seeds

``steps`` times linsig's training loop (``linsig.training.train``: the strong recipe's AdamW
step at batches of ⌈n/8⌉, the paper's Adam step at batches of 16 with clipping) on a built
network, after a warm-up on the same shapes, fp32 and bf16 alternating, one thread, freed memory
kept as in a run (best of ``--repeats``). ``accuracy`` runs real units on the same folds in both
precisions (by default untuned, the recipe's own learning rate over the whole schedule, so that
only the arithmetic differs) and prints the balanced accuracy per seed.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def steps(args) -> None:
    import torch

    from linsig.models.networks import build_network
    from linsig.system import keep_freed_memory
    from linsig.training import TrainConfig, train

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    print(f"{'recipe':7} {'model':5} {'genes':>6} {'batch':>5}  fp32 ms/step  bf16 ms/step  speed-up")
    for d in args.genes:
        X = torch.rand(args.samples, d)
        y = torch.arange(args.samples) % 2
        for recipe in args.recipes:
            # the recipes' own steps: strong AdamW at batches of n/8 (packed dropout masks), the
            # paper's Adam at batches of 16 with the gradient norm clipped to 0.01 (nn.Dropout)
            batch = 16 if recipe == "paper" else min(128, max(8, math.ceil(args.samples / 8)))
            steps_per_epoch = math.ceil(args.samples / batch)
            for model in args.models:
                best = {}
                for _ in range(args.repeats):
                    for precision in ("fp32", "bf16"):
                        torch.manual_seed(0)
                        net = build_network(model, d, 2, 0.5, packed_dropout=recipe == "strong")
                        if recipe == "paper":
                            config = TrainConfig(lr=1e-5, max_epochs=args.epochs, batch_size=batch, patience=10**6,
                                                 clip_grad_norm=0.01, precision=precision)
                        else:
                            config = TrainConfig(lr=1e-3, weight_decay=1.0, max_epochs=args.epochs, batch_size=batch,
                                                 clip_grad_norm=None, optimizer="adamw", schedule="cosine",
                                                 planned_epochs=100, precision=precision)
                        train(net, X[:batch * 2], y[:batch * 2], 2, config)  # kernels built for these shapes
                        start = time.perf_counter()
                        train(net, X, y, 2, config)
                        ms = 1000 * (time.perf_counter() - start) / (args.epochs * steps_per_epoch)
                        best[precision] = min(best.get(precision, math.inf), ms)
                print(f"{recipe:7} {model:5} {d:6d} {batch:5d}  {best['fp32']:12.1f}  {best['bf16']:12.1f}  "
                      f"{best['fp32'] / best['bf16']:7.2f}×", flush=True)


def accuracy(args) -> None:
    import anndata as ad

    from linsig.data import simulate as sim
    from linsig.data.examples import load_example
    from linsig.data.preprocess import preprocess
    from linsig.evaluation import Settings, Unit, run_unit
    from linsig.tasks import make_task

    datasets = {}
    if "mixed" in args.datasets:
        adata = preprocess(sim.simulate("mixed", n_samples=args.samples, n_features=args.features, n_groups=12, seed=0),
                           n_top_genes=None)
        datasets["mixed"] = (make_task(adata, "label", "group"), ("none", "removed"))
    if "ALL-sex" in args.datasets:
        adata = preprocess(load_example("ALL"), n_top_genes=args.features)
        datasets["ALL-sex"] = (make_task(adata, "sex", None), ("none", "removed"))
    print("dataset  recipe  model  signal   seed  fold  fp32   bf16   (balanced accuracy, fraction 1.0)")
    summary: dict = {}
    for name, (task, signals) in datasets.items():
        for recipe in args.recipes:
            for model in args.models:
                for seed in range(args.seeds):
                    for fold in args.folds:
                        got = {}
                        for precision in ("fp32", "bf16"):
                            s = Settings(models=(model,), seeds=(seed,), n_folds=5, fractions=(1.0,), signals=signals,
                                         recipe=recipe, tuning=args.tuning, max_epochs=args.epochs, precision=precision)
                            start = time.perf_counter()
                            rows = run_unit(task, Unit(model, seed, fold), s)
                            got[precision] = ({r["signal"]: r["balanced_accuracy"] for r in rows}, time.perf_counter() - start)
                        for signal in signals:
                            a, b = got["fp32"][0][signal], got["bf16"][0][signal]
                            summary.setdefault((name, recipe, model, signal), []).append((a, b))
                            print(f"{name:8} {recipe:7} {model:5} {signal:8} {seed:4d} {fold:5d}  {a:.3f}  {b:.3f}", flush=True)
                        print(f"   unit seconds fp32 {got['fp32'][1]:.1f}  bf16 {got['bf16'][1]:.1f}", flush=True)
    print("\nmean over seeds × folds (fp32 → bf16, mean paired difference ± its standard error):")
    for key, pairs in summary.items():
        a, b = np.array(pairs).T
        diff = b - a
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
        print(f"  {' '.join(key):40} {a.mean():.3f} → {b.mean():.3f}  ({diff.mean():+.3f} ± {se:.3f}, n={len(diff)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("steps")
    st.add_argument("--genes", type=int, nargs="+", default=[1000, 5000])
    st.add_argument("--samples", type=int, default=1000)
    st.add_argument("--models", nargs="+", default=["mlp3", "mlp5"])
    st.add_argument("--recipes", nargs="+", default=["strong", "paper"])
    st.add_argument("--epochs", type=int, default=1)
    st.add_argument("--repeats", type=int, default=2)
    st.add_argument("--threads", type=int, default=1)
    ac = sub.add_parser("accuracy")
    ac.add_argument("--datasets", nargs="+", default=["ALL-sex", "mixed"])
    ac.add_argument("--samples", type=int, default=400)
    ac.add_argument("--features", type=int, default=1000)
    ac.add_argument("--models", nargs="+", default=["mlp3", "mlp5"])
    ac.add_argument("--recipes", nargs="+", default=["strong", "paper"])
    ac.add_argument("--seeds", type=int, default=5)
    ac.add_argument("--folds", type=int, nargs="+", default=[0])
    ac.add_argument("--tuning", default="off", help="off (default): the recipe's own parameters, so only the "
                    "arithmetic differs; fast/full: each precision runs its own search")
    ac.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    steps(args) if args.command == "steps" else accuracy(args)


if __name__ == "__main__":
    main()
