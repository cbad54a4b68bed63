"""Calibration of the verdict's tests: false-claim rates under a known null and power.

Usage::

    python benchmarks/bench_calibration.py tables   [--replicates 200] [--n 1000,2000] [--plant 0.05]
    python benchmarks/bench_calibration.py pipeline [--replicates 40] [--jobs 2]
    python benchmarks/bench_calibration.py permutations [--replicates 100] [--permutations 20] [--jobs 2]

``tables``: results tables with linsig's real fold structure and cheap models (tests/nulls.py;
the fast version runs in tests/test_stats.py): per scenario and dataset size, the share of
replicates in which the verdict claims "beats" / "non-linear signal present" with the plain
t-test of linsig 0.1 and with the corrected tests, and the share in which a planted difference
is found.

``pipeline``: the measurement of issue 11 with the real pipeline: `linsig simulate noise`
datasets (200 × 100, 20 groups), logreg and mlp3, 2 seeds × 5 folds, linear signal removed,
paper recipe without tuning; per replicate the verdict (b) with the plain and the corrected test.

``permutations``: the permutation test end to end (`linsig run --permutations N` in-process):
on `linsig simulate noise` replicates the share of p >= 0.05, and on `mixed` replicates the
share of p < 0.05, for mlp3 after removal (300 × 20, 3 folds, one seed, lr 0.003, 15 epochs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def tables(args) -> None:
    from nulls import claim_rates, null_tables, planted

    print("| scenario | question | n | replicates | false claim, plain | false claim, corrected | any claim, plain "
          "| any claim, corrected | power, plain | power, corrected |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.n:
        for scenario, question in (("copies", "a"), ("halves", "a"), ("noise", "b")):
            null = null_tables(scenario, args.replicates, n=n)
            shifted = planted(null, args.plant)
            out = {}
            for corrected in (False, True):
                out[corrected] = claim_rates(null, question, corrected) + (claim_rates(shifted, question, corrected)[0],)
            print(f"| {scenario} | {question} | {n} | {args.replicates} | {out[False][0]:.3f} | {out[True][0]:.3f} | "
                  f"{out[False][1]:.3f} | {out[True][1]:.3f} | {out[False][2]:.3f} | {out[True][2]:.3f} |", flush=True)


def _pipeline_replicate(r: int) -> pd.DataFrame:
    import torch

    torch.set_num_threads(1)
    from linsig.data.preprocess import preprocess
    from linsig.data.simulate import simulate
    from linsig.evaluation import Settings, evaluate
    from linsig.runner import build_tasks

    adata = preprocess(simulate("noise", 200, 100, n_groups=20, seed=1000 + r), n_top_genes=None)
    (task,) = build_tasks(adata, "label", "group")
    task.dataset = f"rep{r:03d}"
    settings = Settings(models=("logreg", "mlp3"), seeds=(0, 1), n_folds=5, fractions=(1.0,), signals=("removed",),
                        tuning="off")
    return evaluate([task], settings, progress=False)


def pipeline(args) -> None:
    start = time.time()
    with ProcessPoolExecutor(args.jobs) as pool:
        df = pd.concat(pool.map(_pipeline_replicate, range(args.replicates)), ignore_index=True)
    from linsig import stats

    for corrected in (False, True):
        res = stats.nonlinear_signal_test(df, corrected=corrected)
        models = [m for g in res["groups"] for m in g["models"]]
        signal = sum(g["verdict"] == stats.SIGNAL for g in res["groups"])
        left = sum(g["verdict"] == stats.INCONCLUSIVE for g in res["groups"])
        print(f"{'corrected' if corrected else 'plain'} t-test: {sum(m['above_chance'] for m in models)} of "
              f"{len(models)} per-model tests above chance; 'non-linear signal present' in {signal} of "
              f"{len(res['groups'])} datasets; 'linear signal left' in {left}")
    print(f"({args.replicates} replicates in {time.time() - start:.0f} s)")


def _permutation_replicate(job: tuple[str, int, int]) -> dict:
    import torch

    torch.set_num_threads(1)
    from linsig.data.preprocess import preprocess
    from linsig.data.simulate import simulate
    from linsig.evaluation import Settings, evaluate
    from linsig.permutation import evaluate_permutations, with_permutations
    from linsig.runner import build_tasks
    from linsig.stats import permutation_test

    kind, r, n_perm = job
    adata = preprocess(simulate(kind, 300, 20, seed=2000 + r), n_top_genes=None)
    tasks = build_tasks(adata, "label", "group")
    settings = Settings(models=("mlp3",), seeds=(0,), n_folds=3, fractions=(1.0,), signals=("none", "removed"),
                        tuning="off", lr=0.003, max_epochs=15)
    df = with_permutations(evaluate(tasks, settings, progress=False),
                           evaluate_permutations(tasks, settings, n_perm, progress=False))
    (row,) = permutation_test(df).to_dict("records")
    return {"kind": kind, "replicate": r, "p": row["p_permutation"], "observed": row["observed"]}


def permutations(args) -> None:
    start = time.time()
    jobs = [("noise", r, args.permutations) for r in range(args.replicates)]
    jobs += [("mixed", r, args.permutations) for r in range(args.mixed)]
    with ProcessPoolExecutor(args.jobs) as pool:
        res = pd.DataFrame(list(pool.map(_permutation_replicate, jobs)))
    noise, mixed = res[res.kind == "noise"], res[res.kind == "mixed"]
    print(f"noise: p >= 0.05 in {(noise.p >= 0.05).sum()} of {len(noise)} replicates "
          f"({(noise.p >= 0.05).mean():.3f}); {args.permutations} permutations each")
    if len(mixed):
        print(f"mixed: p < 0.05 in {(mixed.p < 0.05).sum()} of {len(mixed)} replicates "
              f"(mean excess after removal {mixed.observed.mean():+.3f})")
    print(f"({len(jobs)} replicates in {time.time() - start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tables")
    t.add_argument("--replicates", type=int, default=200)
    t.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 2000])
    t.add_argument("--plant", type=float, default=0.05)
    p = sub.add_parser("pipeline")
    p.add_argument("--replicates", type=int, default=40)
    p.add_argument("--jobs", type=int, default=2)
    q = sub.add_parser("permutations")
    q.add_argument("--replicates", type=int, default=100)
    q.add_argument("--mixed", type=int, default=10)
    q.add_argument("--permutations", type=int, default=20)
    q.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    {"tables": tables, "pipeline": pipeline, "permutations": permutations}[args.what](args)


if __name__ == "__main__":
    main()
