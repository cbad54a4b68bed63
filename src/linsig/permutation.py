"""Label permutations: the null distribution of "above chance after removal" (``--permutations N``).

Permutation ``i`` (1 … N) is a copy of a task whose labels are shuffled, reproducibly for ``i``;
the unchanged pipeline (:func:`linsig.evaluation.run_unit`, linear signal removed) then runs on
it over the same seeds, folds, training sizes and models as the real labels, and its rows carry
``permutation = i``. :func:`linsig.stats.permutation_test` compares the real labels' statistic
with the N permuted ones (as scikit-learn's ``permutation_test_score`` does), which gives a
p-value that needs no assumption about how cross-validation estimates are correlated.

Labels are permuted within groups (studies), so that a study keeps its mix of classes: with
study effects in the data, a plain permutation would break the study–label association the
real labels have and make the null too easy to beat. A group holding a single class (every
group of a simulated dataset, where each sample is its own group, and single-tissue studies)
has nothing to shuffle inside, so such groups swap their labels as whole groups among
themselves.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from linsig.errors import LinsigInputError
from linsig.evaluation import Settings, run_units, units
from linsig.results import results_frame
from linsig.tasks import Task

#: The signal mode a permutation reruns: the test is of signal left after linear removal.
PERMUTATION_SIGNALS = ("removed",)
_SEED = 0x5EED  # mixed with the permutation index: permutation i is the same for every run


def permuted_labels(y: np.ndarray, groups: np.ndarray, index: int) -> np.ndarray:
    """Labels of permutation ``index`` (≥ 1): shuffled within each group holding more than one
    class; single-class groups exchange their class as whole groups."""
    if index < 1:
        raise LinsigInputError(f"permutation index must be at least 1, got {index}")
    y = np.asarray(y)
    groups = np.asarray(groups)
    rng = np.random.default_rng([_SEED, int(index)])
    out = y.copy()
    codes, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=codes.size))[:-1]
    members = np.split(order, bounds)
    single = []
    for idx in members:
        if np.unique(y[idx]).size > 1:
            out[idx] = y[idx][rng.permutation(idx.size)]
        else:
            single.append(idx)
    if len(single) > 1:
        classes = np.array([y[idx[0]] for idx in single])
        for idx, cls in zip(single, classes[rng.permutation(len(single))]):
            out[idx] = cls
    return out


def permuted_task(task: Task, index: int) -> Task:
    """A copy of ``task`` with the labels of permutation ``index`` and an empty cache (its folds
    are stratified on the permuted labels, as a rerun of the pipeline would)."""
    y = permuted_labels(task.y, task.groups, index)
    return task.with_labels(y)


def permutation_settings(settings: Settings) -> Settings:
    """The settings a permutation runs with: the run's own, linear signal removed only."""
    return dataclasses.replace(settings, signals=PERMUTATION_SIGNALS)


def check_permutations(n: int, signals, where: str = "--permutations") -> None:
    """Permutations test signal after removal: they need ``removed`` among the run's signals."""
    from linsig.validation import BOUNDS

    if isinstance(n, int) and n < 0:
        raise LinsigInputError(f"{where}: the number of permutations cannot be negative ({n})")
    if not BOUNDS["permutations"].contains(n):  # checked before the plan: 1e9 would fill memory first
        raise LinsigInputError(f"{where}: the number of permutations must be {BOUNDS['permutations'].describe()}, "
                               f"got {n!r}")
    if n and not set(PERMUTATION_SIGNALS) <= set(signals):
        raise LinsigInputError(f"{where}: permutations test the signal left after removal; add 'removed' "
                               f"to the signal modes (e.g. --signal none,removed)")


def tag(rows: list[dict], index: int) -> list[dict]:
    """Mark result rows as those of permutation ``index``."""
    for row in rows:
        row["permutation"] = int(index)
    return rows


def evaluate_permutations(tasks: list[Task], settings: Settings, n: int, progress: bool = True,
                          jobs: int = 1) -> pd.DataFrame:
    """Rerun the grid with linear signal removed on ``n`` label permutations of every task
    (``linsig run --permutations N``), here or in ``jobs`` processes like :func:`evaluate`;
    experiments distribute them as units."""
    from linsig.estimate import Shape, unit_weights
    from linsig.progress import CostProgress

    check_permutations(n, settings.signals)
    psettings = permutation_settings(settings)
    # permuted copies share the expression matrix: only the labels differ
    permuted = [(index, permuted_task(task, index)) for task in tasks for index in range(1, n + 1)]
    work = [(i, unit) for i in range(len(permuted)) for unit in units(psettings)]

    def task_label(i):
        index, task = permuted[i]
        return f"{task.name} permutation={index}"

    weights = (unit_weights([(unit.model, Shape.of(permuted[i][1])) for i, unit in work], psettings) if progress
               else [1.0] * len(work))
    with CostProgress(weights, desc="linsig permutations", disable=not progress,
                      kinds=[unit.model for _, unit in work]) as bar:
        per_unit = run_units([task for _, task in permuted], work, psettings, jobs, bar, task_label)
    return results_frame([row for (i, _), unit_rows in zip(work, per_unit) for row in tag(unit_rows, permuted[i][0])])


def planned_work(tasks, settings: Settings, permutations: int = 0) -> list:
    """``(model, Shape, settings)`` of every unit ``linsig run`` computes, in its order: the grid,
    then its label permutations (what :mod:`linsig.estimate` costs for a dry run)."""
    from linsig.estimate import Shape

    work = [(u.model, Shape.of(task), settings) for task in tasks for u in units(settings)]
    if permutations:
        psettings = permutation_settings(settings)
        work += [(u.model, Shape.of(task), psettings) for task in tasks for _ in range(permutations)
                 for u in units(psettings)]
    return work


def with_permutations(results: pd.DataFrame, permuted: pd.DataFrame) -> pd.DataFrame:
    """The real rows (``permutation`` 0) followed by the permutation rows, one table."""
    real = results.assign(permutation=0)
    if permuted.empty:
        return real
    out = pd.concat([real, permuted], ignore_index=True)
    out["permutation"] = out["permutation"].astype("int64")
    return out
