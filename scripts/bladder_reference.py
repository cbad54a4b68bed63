"""A converged reference for the study-wise bladder benchmark (docs/data.md, "Bundled examples").

scikit-learn's LogisticRegressionCV (lbfgs to convergence, class-balanced, C chosen by the
log-loss over group-wise inner folds of the training studies) on exactly the task and the folds
``linsig run`` uses: the bundled bladder compendium, ``summarystage``, 5 study-wise folds
(= leave-one-study-out), missing values imputed from training-fold means, for each
normalisation. Prints the balanced accuracy per held-out study and the mean over folds.

Run: python scripts/bladder_reference.py [--seeds 0,1,2]
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # a shared 2-core machine: one thread

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import balanced_accuracy_score

from linsig import splits
from linsig.data.missing import impute_fold
from linsig.runner import prepare_dataset
from linsig.tasks import make_task

# scikit-learn ≥ 1.8 asks for these two to be explicit (ridge penalty, new attribute layout)
QUIET = {"l1_ratios": (0.0,), "use_legacy_attributes": False} if "use_legacy_attributes" in \
    LogisticRegressionCV().get_params() else {}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seeds", default="0,1,2", help="fold seeds (group-wise folds: the same studies, reordered)")
args = parser.parse_args()
seeds = [int(s) for s in args.seeds.split(",")]

for method in ("study-zscore", "minmax"):
    adata = prepare_dataset("example:bladder", normalize=method, group="study", missing="impute")
    task = make_task(adata, "summarystage", "study")
    per_study: dict[str, list[float]] = {}
    scores = []
    for seed in seeds:
        for train, val in splits.kfold(task.y, task.groups, 5, "study", seed):
            X_tr, X_va = impute_fold(task.X[train], task.X[val])
            inner = splits.kfold(task.y[train], task.groups[train], 3, "study", seed)
            model = LogisticRegressionCV(Cs=np.logspace(-4, 2, 13), cv=inner, scoring="neg_log_loss",
                                         class_weight="balanced", max_iter=5000, **QUIET)
            model.fit(X_tr, task.y[train])
            score = balanced_accuracy_score(task.y[val], model.predict(X_va))
            study = task.group_names[np.unique(task.groups[val])[0]]
            per_study.setdefault(study, []).append(score)
            scores.append(score)
    print(f"{method}: mean balanced accuracy over {len(scores)} folds {np.mean(scores):.3f}")
    for study, values in per_study.items():
        print(f"  held out {study:28s} n={int(np.sum(np.isin(task.group_names[task.groups], study))):3d} "
              f"{np.mean(values):.3f}")
