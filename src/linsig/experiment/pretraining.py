"""The S4 experiment: does pretraining on other studies help, and more for non-linear models?

Per repetition (seed) the task's groups (studies) are split ~40/40/20 into pretraining, training
and validation sets, each group in exactly one set. Two copies of each model start from the same
initial weights (same ``random_state``: the estimator seeds torch right before ``build_network``):

* ``pretraining = "none"``: trained on the training set only — exactly :func:`run_unit` with the
  one (training, validation) split as its only fold (so tuning, subsampling, signal removal,
  skipping and the row layout are the standard ones);
* ``pretraining = "pretrained"``: trained on the pretraining set, then (``warm_start=True``, the
  same hyperparameters) on the same training subset.

Both are scored on the validation set; training-set fractions subsample the training set only.
Signal removal corrects each of the three sets with its own labels (``removed``) or groups
(``study``); ``removed_full`` corrects the whole task first.
"""

from __future__ import annotations

import copy
import json
import time

import numpy as np

from linsig import splits
from linsig.data.missing import impute_from_rows
from linsig.evaluation import Settings, Unit, correct, make_estimator, removed_full, run_unit, score, skip_reason
from linsig.splits import three_way_split
from linsig.tasks import Task

FOLD = 0  # a repetition has one (training, validation) split: fold 0


def run_pretraining_unit(task: Task, model: str, seed: int, settings: Settings, proportions=(0.4, 0.4, 0.2)) -> list[dict]:
    """Rows of one repetition: for every signal and fraction, the scratch and the pretrained copy."""
    fit_groups = settings.splitter.groups_for(task.groups)  # what early stopping must keep whole
    groups = np.arange(task.n_samples) if fit_groups is None else fit_groups
    pre, train, val = three_way_split(groups, proportions, seed)
    # only models with a warm start (the networks) continue from pretrained weights: a convex
    # optimum does not depend on where its solver starts, and the others refit from scratch
    can_pretrain = "warm_start" in make_estimator(model, settings, seed, task.n_classes).get_params()
    # The scratch copy: the standard unit on a single fold (training set → validation set).
    scratch_rows = run_unit(task, Unit(model, seed, FOLD), settings, folds=[(train, val)])
    subsets = splits.subsample(train, settings.fractions, seed, FOLD)
    y, g = task.y, task.groups
    out = []
    for signal in settings.signals:
        # filled from the training set's means, like the scratch copy: both copies see the same validation data
        X = removed_full(task) if signal == "removed_full" else impute_from_rows(task.X, train)
        X_va = correct(signal, X[val], y[val], g[val]) if any(
            r["signal"] == signal and r["status"] == "ok" for r in scratch_rows) else None
        pretrained = None
        # e.g. every pretraining study holds one class: the twin cannot be pretrained, the scratch copy still counts
        pre_reason = skip_reason(signal, y[pre], y[val], g[pre], g[val], train_name="pretraining") or (
            "" if can_pretrain else f"{model} cannot continue training from pretrained weights")
        for row in (r for r in scratch_rows if r["signal"] == signal):
            twin = dict(row, pretraining="pretrained", n_pretrain=len(pre), fit_seconds=0.0)
            row["n_pretrain"] = 0
            out += [row, twin]
            if row["status"] != "ok":
                continue
            if pre_reason:
                twin.update(status="skipped", skip_reason=pre_reason, balanced_accuracy=np.nan, roc_auc=np.nan, accuracy=np.nan,
                            epochs_trained=0, best_epoch=0)
                continue
            idx = subsets[row["train_fraction"]]
            X_tr = correct(signal, X[idx], y[idx], g[idx])
            if pretrained is None:  # same factory, seed and classes as the scratch copy: same initial weights
                pretrained = make_estimator(model, settings, seed, task.n_classes, **json.loads(row["params"]),
                                            warm_start=True)
                X_pre = correct(signal, X[pre], y[pre], g[pre])
                pretrained.fit(X_pre, y[pre], groups=None if fit_groups is None else g[pre])
            start = time.perf_counter()
            tuned = copy.deepcopy(pretrained).fit(X_tr, y[idx], groups=None if fit_groups is None else g[idx])
            twin["fit_seconds"] = time.perf_counter() - start
            twin.update(score(tuned, X_va, y[val]))
    return out
