"""Converged scikit-learn references for linsig's models on a bundled real dataset, same task and folds.

A comparison is only as good as its weakest model, so every linsig model family is checked
against a well-kept scikit-learn counterpart fitted on exactly the folds ``linsig run`` uses
(``linsig.splits.kfold``: group-wise, or sample-wise without ``--group``), with missing values
imputed from training-fold means and every hyperparameter chosen by group-wise inner CV of the
training fold (scikit-learn's ``GridSearchCV`` / ``LogisticRegressionCV`` on linsig's inner folds):

* ``logreg`` — ``LogisticRegressionCV`` (lbfgs to convergence, class-balanced, C by log-loss);
* ``svm`` — ``LinearSVC`` (class-balanced), C by balanced accuracy;
* ``rbf_svm`` — ``SVC(kernel="rbf")`` (class-balanced), C × γ by balanced accuracy;
* ``knn`` — ``KNeighborsClassifier``, k by balanced accuracy;
* ``gbdt`` — ``HistGradientBoostingClassifier`` (class-balanced, scikit-learn's own early stopping);
* ``rf`` — ``RandomForestClassifier`` (500 trees, class-balanced);
* ``mlp`` — ``MLPClassifier`` with the paper's ``mlp3`` shape (d/2, d/4), α by balanced accuracy.

Prints the balanced accuracy per held-out group (leave-one-study-out when the folds equal the
studies) and the mean over all (seed, fold) results, per model.

    python scripts/sklearn_reference.py --data example:bladder --label summarystage --group study \\
        --normalize study-zscore --missing impute --n-folds 5 --seeds 0,1,2 --models logreg
    python scripts/sklearn_reference.py --data example:ovarian --label summarygrade --group study \\
        --normalize study-zscore --missing impute --n-folds 3 --seeds 0
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # a shared 2-core machine: one thread

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC, LinearSVC

from linsig import splits
from linsig.data.missing import impute_fold
from linsig.runner import build_tasks, prepare_dataset
from linsig.recipes import STRONG_INNER_FOLDS as INNER_FOLDS  # the inner folds linsig's own search uses

# scikit-learn ≥ 1.8 asks for these two to be explicit (ridge penalty, new attribute layout)
QUIET = {"l1_ratios": (0.0,), "use_legacy_attributes": False} if "use_legacy_attributes" in \
    LogisticRegressionCV().get_params() else {}


def reference(name: str, n_features: int, inner, seed: int):
    """The scikit-learn model standing for linsig's ``name``, its hyperparameters searched on ``inner``."""
    def grid(model, space):
        return GridSearchCV(model, space, cv=inner, scoring="balanced_accuracy", n_jobs=1)

    if name == "logreg":
        return LogisticRegressionCV(Cs=np.logspace(-4, 2, 13), cv=inner, scoring="neg_log_loss",
                                    class_weight="balanced", max_iter=5000, **QUIET)
    if name == "svm":
        return grid(LinearSVC(class_weight="balanced", max_iter=100_000), {"C": np.logspace(-5, 1, 13)})
    if name == "rbf_svm":
        gamma = 1.0 / n_features  # scikit-learn's "scale" for unit-variance inputs, and decades around it
        return grid(SVC(kernel="rbf", class_weight="balanced"),
                    {"C": np.logspace(-1, 3, 5), "gamma": gamma * np.logspace(-2, 1, 4)})
    if name == "knn":
        return grid(KNeighborsClassifier(), {"n_neighbors": [1, 3, 5, 7, 9, 15, 21]})
    if name == "gbdt":
        return HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
    if name == "rf":
        return RandomForestClassifier(n_estimators=500, class_weight="balanced", random_state=seed, n_jobs=1)
    if name == "mlp":
        shape = (max(1, n_features // 2), max(1, n_features // 4))
        return grid(MLPClassifier(shape, max_iter=500, random_state=seed), {"alpha": np.logspace(-4, 1, 6)})
    raise SystemExit(f"unknown model {name!r}; choose from logreg, svm, rbf_svm, knn, gbdt, rf, mlp")


def fold_scores(task, name: str, n_folds: int, seeds, grouped: bool = True) -> list[tuple[str, float]]:
    """``(held-out group, balanced accuracy)`` of the reference for ``name`` on every (seed, fold) of linsig's folds."""
    split = "study" if grouped else "sample"
    out = []
    for seed in seeds:
        for train, val in splits.kfold(task.y, task.groups if grouped else None, n_folds, split, seed):
            X_tr, X_va = impute_fold(task.X[train], task.X[val])
            g_tr = task.groups[train] if grouped else None
            inner = splits.kfold(task.y[train], g_tr, min(INNER_FOLDS, np.unique(g_tr).size) if grouped else INNER_FOLDS,
                                 split, seed)
            model = reference(name, X_tr.shape[1], inner, seed).fit(X_tr, task.y[train])
            held_out = np.unique(task.groups[val]) if grouped else []
            key = str(task.group_names[held_out[0]]) if len(held_out) == 1 else "-"
            out.append((key, float(balanced_accuracy_score(task.y[val], model.predict(X_va)))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="example:bladder")
    parser.add_argument("--label", default="summarystage")
    parser.add_argument("--group", default="study", help="group column; '' for sample-wise folds")
    parser.add_argument("--normalize", default="study-zscore")
    parser.add_argument("--missing", default="impute")
    parser.add_argument("--n-top-genes", type=int, default=5000)
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seeds", default="0", help="fold seeds, comma-separated")
    parser.add_argument("--models", default="logreg,svm,rbf_svm,knn,gbdt,rf,mlp")
    args = parser.parse_args()
    group = args.group or None
    adata = prepare_dataset(args.data, n_top_genes=args.n_top_genes, normalize=args.normalize,
                            group=group if args.normalize == "study-zscore" else None, missing=args.missing)
    task = build_tasks(adata, args.label, group)[0]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.data} {args.label}: {len(task.y)} samples × {task.X.shape[1]} genes, {args.normalize}, "
          f"{args.n_folds} {'study' if group else 'sample'}-wise folds, seeds {args.seeds}")
    for name in args.models.split(","):
        scores = fold_scores(task, name, args.n_folds, seeds, grouped=group is not None)
        per_group: dict[str, list[float]] = {}
        for key, score in scores:
            per_group.setdefault(key, []).append(score)
        by_group = "  ".join(f"{k} {np.mean(v):.3f}" for k, v in per_group.items())
        print(f"{name:8s} mean {np.mean([s for _, s in scores]):.3f} over {len(scores)} folds | {by_group}", flush=True)


if __name__ == "__main__":
    main()
