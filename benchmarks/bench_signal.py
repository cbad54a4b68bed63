"""Benchmark linsig.signal.remove_linear_signal against R limma's removeBatchEffect.

Usage::

    python benchmarks/bench_signal.py [--samples 20000] [--genes 5000] [--classes 10]
                                      [--repeats 3] [--no-r]

Times the NumPy implementation on a float32 samples × genes matrix, reports its peak extra
memory relative to the input (tracemalloc, which sees NumPy's allocations, and the growth of
the process's peak RSS), then times R limma on the same matrix (only the removeBatchEffect
call, with R's system.time), checks the two agree and prints the speed ratio.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

import linsig.signal as signal_module
from linsig.signal import remove_linear_signal

R_SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "r" / "remove_batch_effect.R"


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _write_bin(path: Path, X: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.array(X.shape, dtype="<i4").tofile(fh)
        np.ascontiguousarray(X, dtype=X.dtype.newbyteorder("<")).tofile(fh)


def _read_bin(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        n, g = np.fromfile(fh, dtype="<i4", count=2)
        return np.fromfile(fh, dtype="<f8", count=n * g).reshape(n, g)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--genes", type=int, default=5_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-r", action="store_true", help="skip the R limma timing")
    parser.add_argument("--max-workers", type=int, default=None,
                        help="cap linsig's worker threads (default: one per available core)")
    args = parser.parse_args(argv)
    if args.max_workers is not None:
        signal_module._MAX_WORKERS = args.max_workers

    rng = np.random.default_rng(args.seed)
    labels = rng.integers(0, args.classes, args.samples)
    shifts = rng.normal(0, 2, (args.classes, args.genes)).astype(np.float32)
    # Filled block by block so that no input-sized temporary raises the peak RSS before the
    # measurement starts.
    X = np.empty((args.samples, args.genes), dtype=np.float32)
    for start in range(0, args.samples, 1000):
        rows = slice(start, start + 1000)
        X[rows] = rng.standard_normal((len(labels[rows]), args.genes), dtype=np.float32)
        X[rows] += shifts[labels[rows]]
    size_mib = X.nbytes / 2**20
    print(f"input: {args.samples} samples x {args.genes} genes float32 ({size_mib:.0f} MiB), "
          f"{args.classes} classes; cpu cores available: {len(os.sched_getaffinity(0))}, "
          f"linsig workers: {signal_module._n_workers(X)}; load average "
          f"{os.getloadavg()[0]:.1f}")

    # Peak RSS growth first, while the process has not yet allocated any output-sized array.
    gc.collect()
    rss_before = _maxrss_bytes()
    t0 = time.perf_counter()
    out = remove_linear_signal(X, labels)
    first = time.perf_counter() - t0
    rss_delta = _maxrss_bytes() - rss_before
    del out
    gc.collect()

    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = remove_linear_signal(X, labels)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del out
        gc.collect()

    tracemalloc.start()
    out = remove_linear_signal(X, labels)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    best = min(times) if times else first
    print(f"linsig remove_linear_signal: first call {first:.3f} s, best of {len(times)} "
          f"{best:.3f} s, median {np.median(times) if times else first:.3f} s; CPU time per call "
          f"(all threads) min {min(cpu, default=float('nan')):.3f} s")
    print(f"peak extra memory (tracemalloc, output included): {peak / 2**20:.0f} MiB = "
          f"{peak / X.nbytes:.2f}x input")
    print(f"peak RSS growth during first call: {rss_delta / 2**20:.0f} MiB = "
          f"{rss_delta / X.nbytes:.2f}x input")

    if args.no_r:
        return 0
    if shutil.which("Rscript") is None:
        print("R: Rscript not found, skipping the limma timing")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_signal_") as tmp:
        tmp = Path(tmp)
        _write_bin(tmp / "x.bin", X)
        (tmp / "batch.tsv").write_text("".join(f"{lab}\n" for lab in labels))
        proc = subprocess.run(
            ["Rscript", str(R_SCRIPT), str(tmp / "x.bin"), str(tmp / "out.bin"),
             str(tmp / "batch.tsv"), "--float32", "--time"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            print(f"R failed:\n{proc.stderr}")
            return 1
        r_seconds = float(proc.stdout.split("removeBatchEffect_seconds=")[1].split()[0])
        ref = _read_bin(tmp / "out.bin")
    diff = float(np.max(np.abs(out - ref)))
    print(f"R limma removeBatchEffect (float64, system.time of the call): {r_seconds:.3f} s")
    print(f"max |linsig - limma| = {diff:.3g} (float32 output; input max |x| = "
          f"{float(np.max(np.abs(X))):.3g})")
    print(f"speed ratio R / linsig (best): {r_seconds / best:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
