"""The issue-25 grid on a stratified sample of units, at two states of the code (wall time and accuracy).

The grid: the mixed simulation (1,000 samples × 5,000 genes, 20 studies, 0–1 scaled), the
README's models (``logreg,svm,mlp3,mlp5,rbf_svm,gbdt,rf``), 5 study-wise folds, the ten
training fractions, both signal modes, strong recipe with its default (full) search. A unit is
one (model, seed, fold) and covers every fraction × signal mode, so one unit per model is a
sample stratified over model × fraction × signal mode.

    # the data, once (the same file for both trees)
    PYTHONPATH=src python benchmarks/bench_grid.py data grid.h5ad
    # each unit in a fresh process, sequentially, with the given tree's linsig
    python benchmarks/bench_grid.py run --tree /path/to/old/checkout/src --label before --data grid.h5ad --out bench/
    python benchmarks/bench_grid.py run --tree src --label now --data grid.h5ad --out bench/
    # wall time, mean balanced accuracy over matched rows, networks against trees per fraction after removal
    python benchmarks/bench_grid.py compare bench/before bench/now

``--samples/--features`` shrink the grid (e.g. 1,000 × 1,000) where the full width does not fit the
time at hand; ``compare`` says what it compares. Run on an idle machine: a neighbour's load
slows the small steps of one side more than the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("logreg", "svm", "mlp3", "mlp5", "rbf_svm", "gbdt", "rf")
NETWORKS, TREES = ("mlp3", "mlp5"), ("gbdt", "rf")


def make_data(args) -> None:
    from linsig.data import simulate as sim
    from linsig.data.preprocess import preprocess

    adata = sim.simulate("mixed", n_samples=args.samples, n_features=args.features, n_groups=args.groups, seed=0)
    adata = preprocess(adata, n_top_genes=None)  # 0–1 scaled once: both trees read the same values
    adata.write_h5ad(args.out)
    print(f"wrote {args.out}: {adata.n_obs} × {adata.n_vars}, {args.groups} studies")


def one_unit(args) -> None:
    """Runs inside a fresh process: one unit with whatever linsig PYTHONPATH gives."""
    import anndata as ad

    import linsig
    from linsig.evaluation import Settings, Unit, run_unit
    from linsig.tasks import make_task

    task = make_task(ad.read_h5ad(args.data), "label", "group")
    extra = {"precision": args.precision} if args.precision else {}  # older trees have no such setting
    settings = Settings(models=tuple(args.models.split(",")), seeds=(args.seed,), n_folds=5,
                        signals=("none", "removed"), **extra)
    start, cpu = time.perf_counter(), time.process_time()
    rows = run_unit(task, Unit(args.model, args.seed, args.fold), settings)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    Path(args.out).write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "linsig": str(Path(linsig.__file__).parent),
                                          "rows": rows}, default=str))


def run(args) -> None:
    out = Path(args.out) / args.label
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(args.tree).resolve())}
    for model in args.models.split(","):
        for seed, fold in args.units:
            target = out / f"{model}-s{seed}-f{fold}.json"
            if target.exists():
                print(f"{args.label} {model} seed {seed} fold {fold}: done before", flush=True)
                continue
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "unit", "--data", args.data, "--model", model,
                            "--models", args.models, "--seed", str(seed), "--fold", str(fold), "--out", str(target)]
                           + (["--precision", args.precision] if args.precision else []),
                           env=env, check=True)
            with open("/proc/loadavg") as fh:
                load = fh.read().split()[0]
            print(f"{args.label} {model} seed {seed} fold {fold}: {time.perf_counter() - start:.1f} s "
                  f"(load {load})", flush=True)


def _load(folder: Path):
    import pandas as pd

    frames, seconds = [], {}
    for f in sorted(folder.glob("*.json")):
        got = json.loads(f.read_text())
        frames.append(pd.DataFrame(got["rows"]))
        seconds[f.stem] = (got["seconds"], got.get("cpu_seconds", float("nan")))
    return pd.concat(frames, ignore_index=True), seconds


def compare(args) -> None:
    before, t_before = _load(Path(args.before))
    now, t_now = _load(Path(args.now))
    common = sorted(set(t_before) & set(t_now))
    print("unit                 wall before (s)   now (s)   ratio   CPU before (s)   now (s)   ratio")
    totals = [sum(t[u][i] for u in common) for t in (t_before, t_now) for i in (0, 1)]
    for unit, (wb, cb, wn, cn) in [(u, (*t_before[u], *t_now[u])) for u in common] + [("all", totals)]:
        print(f"{unit:20} {wb:15.1f} {wn:9.1f} {wb / wn:6.2f}×  {cb:15.1f} {cn:9.1f} {cb / cn:6.2f}×")
    key = ["model", "seed", "fold", "signal", "train_fraction"]
    ok = lambda df: df[df.status == "ok"].set_index(key)["balanced_accuracy"]
    joined = ok(before).to_frame("before").join(ok(now).to_frame("now"), how="inner")
    print(f"\nmean balanced accuracy over {len(joined)} matched rows: before {joined.before.mean():.4f}, "
          f"now {joined.now.mean():.4f} ({joined.now.mean() - joined.before.mean():+.4f})")
    by_model = joined.groupby(level="model").mean()
    print(by_model.round(3).to_string())
    removed = joined.xs("removed", level="signal")
    table = removed.groupby(level=["train_fraction", "model"]).mean().unstack("model")
    for label in ("before", "now"):
        cols = [m for m in NETWORKS + TREES if m in table[label].columns]
        print(f"\nafter removal, {label}: balanced accuracy per fraction")
        print(table[label][cols].round(3).to_string())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data")
    d.add_argument("out")
    d.add_argument("--samples", type=int, default=1000)
    d.add_argument("--features", type=int, default=5000)
    d.add_argument("--groups", type=int, default=20)
    u = sub.add_parser("unit")
    for name in ("--data", "--model", "--models", "--out"):
        u.add_argument(name, required=True)
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--fold", type=int, default=0)
    u.add_argument("--precision", default=None)
    r = sub.add_parser("run")
    r.add_argument("--tree", required=True, help="the src/ folder of the checkout to measure")
    r.add_argument("--label", required=True)
    r.add_argument("--data", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--models", default=",".join(MODELS))
    r.add_argument("--precision", default=None, help="--precision of the run (default: the tree's own default)")
    r.add_argument("--units", type=lambda s: [tuple(map(int, u.split(":"))) for u in s.split(",")], default=[(0, 0)],
                   help="seed:fold pairs, comma-separated (default 0:0)")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("now")
    args = p.parse_args()
    {"data": make_data, "unit": one_unit, "run": run, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
