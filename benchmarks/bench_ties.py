"""When candidates cannot be told apart (issue 25, item 6): the strong search before and after its rule.

Before: the best pooled inner balanced accuracy always wins (exact ties to the middle of the
tied candidates). After (the strong recipe now): a best candidate that beats the model's own
parameters by no more than one paired standard error leaves the model those
(:data:`linsig.search.DEFAULT_WITHIN_SE`). Both run on the bundled few-study sets with study-wise
folds (leave-one-study-out), ``study-zscore``, training-fold imputation, full training folds, seed 0,
with ``signal`` none and removed; the scikit-learn reference of ``scripts/sklearn_reference.py``
(the same folds, its own converged search) is given for ``signal = none``.

    python benchmarks/bench_ties.py [--datasets ovarian,bladder] [--models logreg,svm,rbf_svm,knn]
                                    [--signals none,removed] [--no-reference]

Prints one row per (dataset, model, signal): mean outer balanced accuracy before, after, the
reference, and the per-fold choices that changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # a shared 2-core machine: one thread

import numpy as np

from linsig.evaluation import Settings, evaluate
from linsig.recipes import RECIPES
from linsig.runner import build_tasks, prepare_dataset

DATASETS = {"ovarian": ("summarygrade", 3), "bladder": ("summarystage", 5)}
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sklearn_reference.py"
BEFORE = "strong-before-ties"


def _reference_module():
    spec = importlib.util.spec_from_file_location("sklearn_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ovarian,bladder")
    parser.add_argument("--models", default="logreg,svm,rbf_svm,knn")
    parser.add_argument("--signals", default="none,removed")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    # the strong recipe with the rule off: the search as it was at STRONG_REVISION 1
    RECIPES[BEFORE] = dataclasses.replace(RECIPES["strong"], name=BEFORE, default_within_se=None)
    reference = None if args.no_reference else _reference_module()
    models, signals = tuple(args.models.split(",")), tuple(args.signals.split(","))
    print("| dataset | model | signal | before | after | scikit-learn | folds whose choice changed (before → after: held-out score) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.datasets.split(","):
        label, n_folds = DATASETS[name]
        adata = prepare_dataset(f"example:{name}", normalize="study-zscore", group="study", missing="impute")
        task = build_tasks(adata, label, "study")[0]
        frames = {}
        for recipe in (BEFORE, "strong"):
            start = time.perf_counter()
            settings = Settings(models=models, seeds=(0,), n_folds=n_folds, fractions=(1.0,), signals=signals,
                                recipe=recipe, device="cpu")
            frames[recipe] = evaluate([task], settings, progress=False)
            print(f"<!-- {name} {recipe}: {time.perf_counter() - start:.0f} s -->", flush=True)
        for model in models:
            theirs = np.nan
            if reference is not None and "none" in signals:
                theirs = float(np.mean([s for _, s in reference.fold_scores(task, model, n_folds, [0])]))
            for signal in signals:
                rows = {r: f[(f.model == model) & (f.signal == signal)].sort_values("fold") for r, f in frames.items()}
                before, after = rows[BEFORE], rows["strong"]
                changed = [f"fold {b.fold} {b.params} → {a.params}: {b.balanced_accuracy:.3f} → {a.balanced_accuracy:.3f}"
                           for b, a in zip(before.itertuples(), after.itertuples()) if b.params != a.params]
                ref = f"{theirs:.3f}" if signal == "none" and np.isfinite(theirs) else "–"
                print(f"| {name} | {model} | {signal} | {before.balanced_accuracy.mean():.3f} | "
                      f"{after.balanced_accuracy.mean():.3f} | {ref} | {'; '.join(changed) or 'none'} |", flush=True)


if __name__ == "__main__":
    main()
