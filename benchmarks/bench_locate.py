"""Benchmark ``linsig locate`` at full sizes: cost, planted truth, calibration, real data.

Usage::

    python benchmarks/bench_locate.py cost  [--samples 1000] [--genes 5000]
    python benchmarks/bench_locate.py truth [--samples 1000] [--genes 100]
    python benchmarks/bench_locate.py null  [--replicates 100] [--samples 200] [--genes 50]
    python benchmarks/bench_locate.py real

* ``cost`` — on simulated ``interaction+linear`` data, times one ``linsig run`` of the best
  non-linear model by the issue's reading (``gbdt``, histogram GBDT, with linear signal
  removed, the default seeds 0,1,2 and 5 study-wise folds, full training set) and then
  ``linsig locate`` with its defaults on the same folds, in this process, one thread each.
* ``truth`` — the planted kinds: precision of the planted genes among the top k, planted pairs
  found, form (additive vs combining), "adds to linear" p-values.
* ``null`` — noise and linear-only data, ``--replicates`` each: the share of replicates with any
  gene / pair at q < 0.05 (= their FDR, every gene being null) and with "adds to linear" p < 0.05.
* ``real`` — ALL B- vs T-lineage and bladder invasive vs superficial, as the demo preprocesses
  them: top genes, form, beyond linear.

Prints one JSON object per measurement (docs/locate.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from linsig.data.simulate import simulate
from linsig.evaluation import Settings, evaluate
from linsig.locate import LocateConfig, locate
from linsig.tasks import make_task


def _settings(seeds=(0, 1, 2), folds=5, models=("gbdt",)) -> Settings:
    return Settings(models=models, seeds=tuple(seeds), n_folds=folds, fractions=(1.0,), signals=("removed",))


def _emit(**record) -> None:
    print(json.dumps(record, default=float), flush=True)


def cost(args) -> None:
    import torch

    torch.set_num_threads(1)
    task = make_task(simulate("interaction+linear", args.samples, args.genes, n_groups=50, seed=3), "label", "group")
    settings = _settings()
    start = time.perf_counter()
    results = evaluate([task], settings, progress=False)
    run_s = time.perf_counter() - start
    _emit(what="linsig run gbdt --signal removed", seconds=run_s,
          balanced_accuracy=float(results["balanced_accuracy"].mean()), samples=args.samples, genes=args.genes)
    start = time.perf_counter()
    res = locate(task, settings, LocateConfig(), progress=False)
    loc_s = time.perf_counter() - start
    _emit(what="linsig locate (defaults)", seconds=loc_s, ratio_to_run=loc_s / run_s,
          n_genes_q05=res.n_genes_q05, top10=list(res.genes.head(10)["gene"]))


def _truth_of(res, kind, n_signal) -> dict:
    planted = {f"feature{j}" for j in range(n_signal)}
    top = res.genes["gene"].tolist()
    out = {"kind": kind, "precision_top_k": float(np.mean([g in planted for g in top[:n_signal]])),
           "planted_in_top15": float(np.mean([g in set(top[:15]) for g in planted])),
           "n_genes_q05": res.n_genes_q05, "false_genes_q05": int(
               (~res.genes["gene"].isin(planted) & (res.genes["q_value"] < 0.05)).sum()),
           "form": {k: res.form[k] for k in ("additive", "interaction")},
           "beyond_linear": {k: res.beyond_linear[k] for k in ("linear", "combined", "p_value")}}
    if kind.startswith("interaction"):
        truth = {frozenset((f"feature{a}", f"feature{a + 1}")) for a in range(0, n_signal, 2)}
        found = res.pairs[res.pairs["q_value"] < 0.05]
        got = {frozenset(p) for p in zip(found["gene_a"], found["gene_b"])}
        out.update(planted_pairs_found=len(got & truth), planted_pairs=len(truth), false_pairs=len(got - truth))
    return out


def truth(args) -> None:
    for kind in ("variance", "interaction", "variance+linear", "interaction+linear", "linear"):
        task = make_task(simulate(kind, args.samples, args.genes, n_groups=50, seed=11, shift=0.3), "label", "group")
        start = time.perf_counter()
        res = locate(task, _settings(), LocateConfig(), progress=False)
        _emit(seconds=time.perf_counter() - start, **_truth_of(res, kind, 10))


def null(args) -> None:
    config = LocateConfig(permutations=args.permutations, n_top=args.top)
    for kind in args.kinds.split(","):
        counts = {"genes": 0, "pairs": 0, "adds": 0}
        start = time.perf_counter()
        for r in range(args.replicates):
            task = make_task(simulate(kind, args.samples, args.genes, n_groups=30, seed=10_000 + r, shift=0.5),
                             "label", "group")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = locate(task, _settings(seeds=(0,)), config, progress=False)
            counts["genes"] += res.n_genes_q05 > 0
            counts["pairs"] += bool((res.pairs["q_value"] < 0.05).any())
            counts["adds"] += res.beyond_linear["p_value"] < 0.05
            if (r + 1) % 25 == 0 and r + 1 < args.replicates:  # partial counts, for long runs
                _emit(kind=kind, done=r + 1, **counts, seconds=time.perf_counter() - start)
        _emit(kind=kind, replicates=args.replicates, samples=args.samples, genes=args.genes,
              fdr_genes=counts["genes"] / args.replicates, fdr_pairs=counts["pairs"] / args.replicates,
              adds_to_linear_rejects=counts["adds"] / args.replicates, seconds=time.perf_counter() - start)


def real(args) -> None:
    from linsig.runner import prepare_dataset

    cases = [("ALL", dict(n_top_genes=250), "lineage", None),
             ("bladder", dict(n_top_genes=250, normalize="study-zscore", group="study", missing="impute"),
              "summarystage", "study")]
    for name, prep, label, group in cases:
        adata = prepare_dataset(f"example:{name}", **prep)
        task = make_task(adata, label, group)
        start = time.perf_counter()
        res = locate(task, _settings(seeds=(0, 1, 2)), LocateConfig(), progress=False)
        _emit(dataset=name, task=task.name, seconds=time.perf_counter() - start, n_genes_q05=res.n_genes_q05,
              top_genes=res.genes.head(15)[["gene", "q_value", "form", "spread_ratio"]].to_dict("records"),
              top_pairs=res.pairs.head(5)[["gene_a", "gene_b", "q_value", "gain"]].to_dict("records"),
              form={k: res.form[k] for k in ("additive", "interaction")},
              beyond_linear={k: res.beyond_linear[k] for k in ("linear", "combined", "p_value")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cost", "truth", "null", "real"])
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--genes", type=int, default=None)
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--permutations", type=int, default=19)
    parser.add_argument("--top", type=int, default=10, help="null: top genes whose pairs are tested")
    parser.add_argument("--kinds", default="noise,linear", help="null: the kinds of data without signal after removal")
    args = parser.parse_args()
    defaults = {"cost": (1000, 5000), "truth": (1000, 100), "null": (200, 50), "real": (0, 0)}[args.what]
    args.samples = args.samples or defaults[0]
    args.genes = args.genes or defaults[1]
    {"cost": cost, "truth": truth, "null": null, "real": real}[args.what](args)


if __name__ == "__main__":
    main()
