"""How close the dry run's time estimate is to the measured wall time (issue 25: within 2×).

Three small but real grids, each of different models and data sizes (linear and kernel models;
the networks; the tree ensembles), plus optionally the paper recipe. For each: the estimate
(:mod:`linsig.estimate`, calibrated once on this machine, cached), then the grid run with
:func:`linsig.evaluation.evaluate` in this process, timed. Prints a table of estimate, measured
and their ratio, and the machine's load average (other work on the cores slows the run and,
less, the calibration).

    PYTHONPATH=src python benchmarks/bench_estimate.py            # the three grids, ~3 min
    PYTHONPATH=src python benchmarks/bench_estimate.py --paper    # and a paper-recipe grid
    PYTHONPATH=src python benchmarks/bench_estimate.py --fresh    # recalibrate first

Run in a fresh LINSIG_CACHE_DIR (or with --fresh) to include the calibration's own time.
"""

from __future__ import annotations

import argparse
import os
import time

GRIDS = {
    # name: (simulation (samples, features, groups), Settings keywords)
    "linear+kernel 400×800": ((400, 800, 16), dict(models=("logreg", "svm", "rbf_svm", "knn"), seeds=(0, 1), n_folds=3,
                                                    fractions=(0.3, 0.6, 1.0), signals=("none", "removed"))),
    "networks 240×400": ((240, 400, 12), dict(models=("mlp3", "mlp5"), seeds=(0,), n_folds=3, fractions=(0.5, 1.0),
                                              signals=("none",))),
    "trees 300×1000": ((300, 1000, 12), dict(models=("gbdt", "rf"), seeds=(0,), n_folds=3, fractions=(0.5, 1.0),
                                             signals=("none", "removed"))),
}
PAPER = {"paper recipe 200×300": ((200, 300, 10), dict(models=("logreg", "mlp3"), seeds=(0,), n_folds=3,
                                                        fractions=(0.5, 1.0), signals=("none",), recipe="paper",
                                                        tuning="fast"))}


def task_of(samples, features, groups):
    from linsig import tasks
    from linsig.data.preprocess import preprocess
    from linsig.data.simulate import simulate

    adata = preprocess(simulate("mixed", n_samples=samples, n_features=features, n_groups=groups, seed=0),
                       n_top_genes=None)
    return tasks.make_task(adata, label="label", group="group")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", action="store_true", help="also a paper-recipe grid")
    parser.add_argument("--fresh", action="store_true", help="recalibrate (ignore the cache)")
    parser.add_argument("--only", help="run only the grid whose name starts with this")
    args = parser.parse_args()

    from linsig import estimate as E
    from linsig.evaluation import Settings, evaluate, units

    grids = {**GRIDS, **(PAPER if args.paper else {})}
    if args.only:
        grids = {k: v for k, v in grids.items() if k.startswith(args.only)}
    rows = []
    for name, (shape, keywords) in grids.items():
        settings = Settings(device="cpu", **keywords)
        task = task_of(*shape)
        start = time.perf_counter()
        cal = E.calibrate(settings, use_cache=not args.fresh)
        calibration = time.perf_counter() - start
        est = E.estimate([(u.model, E.Shape.of(task), settings) for u in units(settings)], calibration=cal)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        evaluate([task], settings, progress=False)
        measured = time.perf_counter() - start
        load_after = os.getloadavg()[0]
        rows.append((name, len(est.units), est.total, measured, calibration, load_before, load_after))
        print(f"{name}: estimate {est.total:.1f} s, measured {measured:.1f} s, ratio {est.total / measured:.2f} "
              f"(calibration {calibration:.1f} s, load {load_before:.1f} → {load_after:.1f})", flush=True)
    print()
    print(f"| grid | units | estimate (s) | measured (s) | estimate / measured | calibration (s) | load avg before → after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, n, est, measured, cal, l0, l1 in rows:
        print(f"| {name} | {n} | {est:.1f} | {measured:.1f} | {est / measured:.2f} | {cal:.1f} | {l0:.1f} → {l1:.1f} |")
    print(f"\n{os.cpu_count()} CPUs; calibration cache: {E.cache_file()}")


if __name__ == "__main__":
    main()
