"""Hyperparameters chosen by nested, group-aware cross-validation: one routine for every model.

Inside an outer training fold the samples are split again into inner folds by the run's splitter
(group-wise for study-wise runs); every candidate is fitted on all but one inner fold and scored
on the held-out one. The recipe (:mod:`linsig.recipes`) decides *what* is searched and *which*
objective picks the winner (:mod:`linsig.search` holds the objectives):

* **strong** — each model declares its own search space (:meth:`linsig.models.base.Tunable.search_space`,
  e.g. the penalty path of ``logreg``, ``C × γ`` of ``rbf_svm``, learning rate × training length of
  the networks) and the winner is the candidate with the highest balanced accuracy of the
  *pooled* inner out-of-fold predictions — the metric the outer folds report, the same for every
  model, and stabler than the mean of per-fold scores when a fold holds few samples or misses a
  class. A best candidate within one paired standard error of the model's own parameters leaves
  it those; other ties go to the middle of the tied candidates (the centre of a plateau), except
  that a network's first candidate perfect on every inner fold wins at once (the ceiling, see
  :mod:`linsig.search`). The inner folds are prepared like the outer
  ones (``prepare``: for ``signal = removed`` each inner training and validation part is corrected
  with its own labels), so hyperparameters are chosen on the data the model is trained on.
* **paper** — the paper's protocol (shared/spec/anchor-parameters.md): ``lr`` and ``weight_decay``
  from 25 random trials log-uniform in [1e-6, 10] (plain random search over Optuna's space), the
  mean class-weighted loss over 4 inner folds, chosen once on the *uncorrected* training data and
  reused for every signal mode and training size. The trap: after linear signal removal the
  best learning rate is often far smaller than on the raw data (``mlp3`` on the mixed simulation
  falls to chance), so the paper recipe under-reports non-linear signal; see ``docs/method.md``.

Levels: ``paper`` (above), ``fast`` (paper recipe: a 3 × 2 grid over 3 inner folds; strong recipe:
each model's smaller space), ``full`` (strong: each model's full space), ``off`` (the model's own
parameters, no search).
"""

from __future__ import annotations

import numpy as np

from linsig import splits
from linsig.errors import LinsigInputError
from linsig.recipes import Recipe, get_recipe
from linsig.search import TuningResult
from linsig.splits import Splitter, get_splitter


def tune(estimator, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, level: str, seed: int = 0,
         split: str | Splitter = "study", recipe: str | Recipe = "paper", prepare=None) -> TuningResult:
    """Choose the hyperparameters of ``estimator`` by inner cross-validation on (X, y).

    ``prepare(inner_train_idx, inner_val_idx)`` returns the two inner matrices as the model will
    see them (e.g. corrected for a signal mode), or ``None`` to skip an inner fold that cannot be
    prepared; without it the rows of ``X`` are used as they are. Returns the estimator's own
    parameters (``params == {}``) when the level is ``off`` or the data are too small for inner folds,
    and a search's only candidate, unscored, when it has nothing to choose.
    """
    recipe, splitter = get_recipe(recipe), get_splitter(split)
    plan, n_folds = recipe.search_plan(estimator, level, seed, len(y))
    default = TuningResult()
    if not plan:
        return default
    if recipe.nothing_to_choose(estimator, plan):
        return TuningResult(params=dict(plan[0]))
    groups = splitter.groups_for(groups)
    n_inner = min(n_folds, splitter.n_units(len(y), groups))
    if n_inner < 2 or np.unique(y).size < 2:
        return default
    try:
        folds = splits.kfold(y, groups, n_inner, splitter, seed)
    except LinsigInputError:
        return default
    return recipe.choose(estimator, X, y, groups, plan, folds, prepare) or default
