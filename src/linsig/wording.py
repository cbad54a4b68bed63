"""How the report and the figures name a task's cross-validation split.

A task read without a group column (``--group`` not given) makes each sample its own group: its
"study-wise" folds hold no studies, and calling them study-wise would promise a protection against
study effects that the run did not have. The results table says which case a task is: every
validation sample its own group (``n_val_groups == n_val`` on every row).
"""

from __future__ import annotations

import pandas as pd

from linsig.splits import SPLITTERS
from linsig.splits import split_label as strategy_label

SPLIT_LABELS = {name: splitter.label for name, splitter in SPLITTERS.items()}
#: the split of a task without a group column, study-wise or not: its folds are sample-wise
UNGROUPED = "sample-wise split, no group column"
EACH_SAMPLE = "each sample its own group"
#: summary.json's ``group_key`` of a task without a group column (linsig.tasks.Task.summary)
NO_GROUP_KEY = "(each sample)"


def ungrouped(rows: pd.DataFrame) -> bool:
    """Whether ``rows`` (of one task) come from folds where each sample was its own group."""
    if not {"n_val_groups", "n_val"} <= set(rows.columns) or rows.empty:
        return False
    return bool((rows["n_val_groups"].astype(float) == rows["n_val"].astype(float)).all())


def split_label(split: str, rows: pd.DataFrame | None = None) -> str:
    """``study-wise split``, ``sample-wise split`` — or ``sample-wise split, no group column``
    when ``rows`` show that the groups were the samples themselves."""
    if rows is not None and ungrouped(rows):
        return UNGROUPED
    return strategy_label(split)


def ungrouped_tasks(df: pd.DataFrame) -> set[tuple[str, str, str]]:
    """``(dataset, task, split)`` of every task of ``df`` whose groups were its samples."""
    out = set()
    for (dataset, task, split), sub in df.groupby(["dataset", "task", "split"], sort=False):
        if ungrouped(sub):
            out.add((str(dataset), str(task), str(split)))
    return out


def group_words(n_groups, group_key: str | None, number) -> str:
    """The data table's Groups cell: ``321 (donor)``, or ``128 (each sample its own group)``."""
    if not group_key:
        return number(n_groups)
    if group_key == NO_GROUP_KEY:
        return f"{number(n_groups)} ({EACH_SAMPLE})"
    return f"{number(n_groups)} ({group_key})"
