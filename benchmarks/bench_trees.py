"""Trees at expression width (issue 25, lever 4): per-fit time and held-out balanced accuracy of
linsig's ``rf`` and ``gbdt`` before and after, and of scikit-learn's defaults.

Variants (``--variants``, comma-separated):

* ``rf-before`` / ``gbdt-before`` — ``src/linsig/models/nonlinear.py`` as of commit ``--before``
  (default c8be29f, read with ``git show`` into a temporary module);
* ``rf-after`` / ``gbdt-after`` — the classes of the ``linsig`` on the path;
* ``rf-sklearn`` / ``gbdt-sklearn`` — ``RandomForestClassifier()`` / ``HistGradientBoostingClassifier()``
  with scikit-learn's defaults (``n_jobs=1``; OpenMP bounded to one thread);
* ``NAME:key=value;key=value`` — any of these with parameters set (measuring a lever).

Datasets (``--datasets``): ``mixed:NxD`` (``linsig simulate mixed``, min-max scaled as the
harness does, data seed = the run's seed; one stratified 80/20 split per seed), ``uniform:NxD``
(``bench_recipes.py timings``'s data: uniform features, label = sum of the first 50 > 25), ``all-sex``
and ``all-lineage`` (the bundled ALL, 5,000 most variable probes, stratified 5-fold per seed).
Each is run as given (``none``) and after linear signal removal (``removed``:
``remove_linear_signal`` on the training and the held-out part separately, each with its own
labels). The variants of one (dataset, seed, split, mode) run back to back, so a load change hits
them alike. One thread per fit.

    python benchmarks/bench_trees.py --datasets mixed:1000x5000 --seeds 0,1,2 --out bench-trees/
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from linsig.data.examples import load_example
from linsig.data.preprocess import preprocess
from linsig.data.simulate import simulate
from linsig.models import nonlinear
from linsig.signal import remove_linear_signal

ROOT = Path(__file__).resolve().parent.parent


def old_module(commit: str):
    """``linsig.models.nonlinear`` as of ``commit``, imported under another name."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:src/linsig/models/nonlinear.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "nonlinear_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("nonlinear_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make(variant: str, before, seed: int):
    name, _, rest = variant.partition(":")
    params = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        try:
            params[key] = int(value)
        except ValueError:
            try:
                params[key] = float(value)
            except ValueError:
                params[key] = value
    family, _, version = name.partition("-")
    if version == "sklearn":
        cls = RandomForestClassifier if family == "rf" else HistGradientBoostingClassifier
        extra = {"n_jobs": 1} if family == "rf" else {}
        return cls(random_state=seed, **extra).set_params(**params)
    module = before if version == "before" else nonlinear
    cls = module.RandomForest if family == "rf" else module.GradientBoostedTrees
    return cls(random_state=seed, threads=1).set_params(**params)


def datasets(spec: str, seed: int):
    """(X, y, [(train, test), ...]) of one dataset and seed."""
    kind, _, size = spec.partition(":")
    if kind in ("mixed", "uniform"):
        n, d = (int(v) for v in size.split("x"))
        if kind == "mixed":
            adata = preprocess(simulate("mixed", n_samples=n, n_features=d, seed=seed), n_top_genes=None)
            X, y = np.asarray(adata.X, dtype=np.float32), adata.obs["label"].cat.codes.to_numpy().astype(np.int64)
        else:
            X = np.random.default_rng(seed).random((n, d), dtype=np.float32)
            y = (X[:, :50].sum(1) > 25).astype(np.int64)
        tr, te = train_test_split(np.arange(n), test_size=0.2, stratify=y, random_state=seed)
        return X, y, [(tr, te)]
    label = kind.removeprefix("all-")
    adata = preprocess(load_example("ALL"), n_top_genes=5000)
    labels = adata.obs[label]
    if label == "lineage":
        labels = labels.astype(str)
    keep = labels.notna().to_numpy() & (labels.astype(str) != "nan").to_numpy()
    X = np.asarray(adata.X, dtype=np.float32)[keep]
    y = pd.Categorical(labels[keep].astype(str)).codes.astype(np.int64)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y)
    return X, y, list(folds)


def run(args) -> pd.DataFrame:
    before = old_module(args.before)
    variants = args.variants.split(",")
    rows = []
    for spec in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            X, y, folds = datasets(spec, seed)
            for fold, (tr, te) in enumerate(folds):
                for mode in args.signals.split(","):
                    X_tr, X_te = X[tr], X[te]
                    if mode == "removed":
                        X_tr, X_te = remove_linear_signal(X_tr, y[tr]), remove_linear_signal(X_te, y[te])
                    for variant in variants:
                        model = make(variant, before, seed)
                        with threadpool_limits(1):
                            start = time.perf_counter()
                            model.fit(X_tr, y[tr])
                            seconds = time.perf_counter() - start
                            pred = model.predict(X_te)
                        rows.append({"dataset": spec, "seed": seed, "fold": fold, "signal": mode, "variant": variant,
                                     "n_train": len(tr), "genes": X.shape[1], "seconds": seconds,
                                     "balanced_accuracy": balanced_accuracy_score(y[te], pred),
                                     "iterations": int(getattr(model, "n_iter_", getattr(model, "n_estimators", 0))),
                                     "load": os.getloadavg()[0]})
                        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in rows[-1].items()), flush=True)
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, signal mode and variant: median and fastest fit, the median of the speed-up over
    the same family's ``before`` on the same fit (run back to back), mean and lowest balanced accuracy."""
    df = df.copy()
    df["family"] = df.variant.str.split("-").str[0]
    keys = ["dataset", "seed", "fold", "signal", "family"]
    before = df[df.variant.str.split(":").str[0].str.endswith("-before")].set_index(keys).seconds.rename("before")
    df = df.join(before, on=keys)
    df["speedup"] = df.before / df.seconds
    g = df.groupby(["dataset", "signal", "variant"], sort=False)
    return pd.DataFrame({"fits": g.size(), "seconds_median": g.seconds.median(), "seconds_min": g.seconds.min(),
                         "speedup_median": g.speedup.median(), "balanced_accuracy": g.balanced_accuracy.mean(),
                         "ba_min": g.balanced_accuracy.min(), "load": g.load.mean()}).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="rf-before,rf-after,rf-sklearn,gbdt-before,gbdt-after,gbdt-sklearn")
    parser.add_argument("--datasets", default="mixed:1000x5000,mixed:1000x1000,all-sex,all-lineage")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--signals", default="none,removed")
    parser.add_argument("--before", default="c8be29f", help="commit of the 'before' classes")
    parser.add_argument("--out", default="bench-trees")
    parser.add_argument("--summarise", help="comma-separated fits.csv files of earlier runs: only their summary")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.summarise:
        df = pd.concat([pd.read_csv(path) for path in args.summarise.split(",")], ignore_index=True)
    else:
        df = run(args)
        df.to_csv(out / "fits.csv", index=False)
    table = summary(df)
    table.to_csv(out / "summary.csv", index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    sys.exit(main())
