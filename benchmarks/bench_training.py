"""Time the shared training loop at the paper's scale (5,000 genes, batch 16).

Prints milliseconds per optimiser step and seconds per epoch for each model, for 1 and 2 CPU
threads (and CUDA when present), and extrapolates the paper's per-(task, model, seed, signal)
cost: 5 folds × (25 trials × 4 inner fits + 10 sizes) trainings.

    python benchmarks/bench_training.py [--samples 800] [--genes 5000] [--epochs 2] [--heap]

``--heap`` instead compares, per model on 1 thread, glibc's default malloc with the setting
linsig's runners use (:func:`linsig.system.keep_freed_memory`), each in a fresh process
(the setting is process-wide).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from linsig.models import PAPER_MODELS, make_model


def time_fit(name: str, X, y, epochs: int, threads: int, device: str) -> float:
    torch.set_num_threads(threads)
    model = make_model(name, "paper", max_epochs=epochs, validation_fraction=0, device=device, random_state=0)
    model.fit(X[:64], y[:64])  # warm-up: allocator, kernels
    start = time.perf_counter()
    model.fit(X, y)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=800)
    parser.add_argument("--genes", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", default=",".join(PAPER_MODELS))
    parser.add_argument("--heap", action="store_true", help="compare malloc settings (see above)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: time one model in this process
    args = parser.parse_args()
    if args.heap:
        return compare_heap(args)
    rng = np.random.default_rng(0)
    if args.one:
        X = rng.random((args.samples, args.genes), dtype=np.float32)
        y = rng.integers(0, 2, args.samples)
        print(json.dumps({"seconds_per_epoch": time_fit(args.one, X, y, args.epochs, 1, "cpu")}))
        return
    X = rng.random((args.samples, args.genes), dtype=np.float32)
    y = rng.integers(0, 2, args.samples)
    steps = int(np.ceil(args.samples / 16))
    configs = [("cpu", 1), ("cpu", 2)] + ([("cuda", 1)] if torch.cuda.is_available() else [])
    print(f"{args.samples} samples × {args.genes} genes, batch 16, {steps} steps/epoch")
    print(f"{'model':8} {'device':6} {'threads':>7} {'ms/step':>9} {'s/epoch':>9} {'paper grid/unit':>16}")
    for name in args.models.split(","):
        for device, threads in configs:
            per_epoch = time_fit(name, X, y, args.epochs, threads, device)
            # paper: 5 folds × (100 tuning fits + 10 sizes), ~25 epochs each on average (early stopping),
            # average training size ~ 0.55 of the full fold
            grid_hours = 5 * (100 + 10 * 0.55) * 25 * per_epoch / 3600
            print(f"{name:8} {device:6} {threads:7d} {1000 * per_epoch / steps:9.2f} {per_epoch:9.2f} {grid_hours:14.1f} h")


def compare_heap(args) -> None:
    steps = int(np.ceil(args.samples / 16))
    print(f"{args.samples} samples × {args.genes} genes, batch 16, 1 thread, ms per step")
    print(f"{'model':8} {'default malloc':>15} {'freed memory kept':>18} {'speed-up':>9}")
    for name in args.models.split(","):
        ms = {}
        for label, setting in (("default", "0"), ("kept", "1")):
            code = ("import runpy, sys; from linsig.system import keep_freed_memory; keep_freed_memory(); "
                    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
            cmd = [sys.executable, "-c", code, __file__, "--one", name, "--samples", str(args.samples),
                   "--genes", str(args.genes), "--epochs", str(args.epochs)]
            env = {**os.environ, "LINSIG_KEEP_FREED_MEMORY": setting, "OMP_NUM_THREADS": "1"}
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            ms[label] = 1000 * json.loads(out.splitlines()[-1])["seconds_per_epoch"] / steps
        print(f"{name:8} {ms['default']:15.1f} {ms['kept']:18.1f} {ms['default'] / ms['kept']:8.2f}x")


if __name__ == "__main__":
    main()
