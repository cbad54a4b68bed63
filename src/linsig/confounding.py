"""Confounding guard: is the label tied to the group (study) so that folds cannot separate them?

Before training linsig counts each class in each group. When most groups — or the groups
holding most samples — contain a single class, a study effect (platform, lab, batch) and the
label move together: group-wise folds still keep studies apart, but an accuracy may come from
study differences that happen to track the label, and removing the study effect (signal mode
``study``) removes the label with it. The guard only warns; it changes no result.

Groups of a single sample hold one class by necessity and are left out of the count (data
without a group column make every sample its own group, so the guard is silent there).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

MAX_STORED_GROUPS = 200  # larger tables (GTEx donors, Recount3 studies) keep only the counts
MAX_SHOWN_GROUPS = 30  # rows of the table drawn in the report


def class_by_group(y: np.ndarray, groups: np.ndarray, classes, group_names=None) -> pd.DataFrame:
    """Samples per (group, class): groups as rows (named when ``group_names`` is given), classes as columns."""
    y, groups = np.asarray(y), np.asarray(groups)
    codes, inverse = np.unique(groups, return_inverse=True)
    counts = np.zeros((codes.size, len(classes)), dtype=np.int64)
    np.add.at(counts, (inverse, y), 1)
    index = [str(group_names[c]) for c in codes] if group_names is not None else [str(c) for c in codes]
    return pd.DataFrame(counts, index=pd.Index(index, name="group"), columns=[str(c) for c in classes])


def assess(table: pd.DataFrame) -> dict:
    """Counts of single-class groups and whether they make the task group-confounded.

    Confounded when, among groups of two or more samples (at least two such groups), more than
    half hold a single class or more than half of their samples sit in single-class groups.
    """
    sizes = table.sum(axis=1)
    multi = sizes >= 2
    single = (table > 0).sum(axis=1) == 1
    n_groups, n_single = int(multi.sum()), int((multi & single).sum())
    n_samples, n_single_samples = int(sizes[multi].sum()), int(sizes[multi & single].sum())
    confounded = n_groups >= 2 and (n_single > n_groups / 2 or n_single_samples > n_samples / 2)
    return {"confounded": bool(confounded), "n_groups": n_groups, "n_single_class_groups": n_single,
            "n_samples": n_samples, "n_samples_in_single_class_groups": n_single_samples}


def message(task_name: str, group_key: str, result: dict) -> str:
    """The warning for a confounded task (empty when it is not)."""
    if not result["confounded"]:
        return ""
    share = result["n_samples_in_single_class_groups"] / max(result["n_samples"], 1)
    return (f"task {task_name!r}: {result['n_single_class_groups']} of {result['n_groups']} groups ({group_key}) hold "
            f"a single class ({share:.0%} of their samples), so group-wise folds cannot separate the group from "
            "the label: accuracy may reflect study/batch differences that track the label, and signal mode "
            "'study' removes the label with the group")


def task_confounding(task) -> dict | None:
    """The guard's record for a :class:`~linsig.tasks.Task`; None without a group column or
    when every group is a single sample (nothing to count)."""
    if task.group_key is None:
        return None
    table = class_by_group(task.y, task.groups, task.classes, task.group_names)
    result = assess(table)
    if result["n_groups"] == 0:
        return None
    result["message"] = message(task.name, task.group_key, result)
    if len(table) <= MAX_STORED_GROUPS:
        result["table"] = {"groups": table.index.tolist(), "classes": table.columns.tolist(),
                           "counts": table.to_numpy().tolist()}
    return result


def warnings_for(task_summaries) -> list[str]:
    """The warnings recorded in task summaries (``Task.summary()`` dicts, as in summary.json): labels
    or groups that look like missing-value markers (:func:`linsig.tasks.marker_warnings`), then
    the guard's."""
    out = []
    for t in task_summaries or ():
        messages = [m.get("message") for m in t.get("missing_markers") or ()]
        for msg in messages + [(t.get("confounding") or {}).get("message")]:
            if msg and msg not in out:
                out.append(msg)
    return out


def run_warnings(run_dir) -> list[str]:
    """The warnings recorded in a run directory's summary.json (experiments, the demo)."""
    from linsig.results import load_summary

    return warnings_for((load_summary(run_dir) or {}).get("tasks"))


def confounding_html(task_summaries) -> str:
    """The report's "Class × group balance" section: one line and table per task with groups."""
    parts = []
    for t in task_summaries or ():
        c = t.get("confounding")
        if not c:
            continue
        name = f"{html.escape(str(t.get('dataset', '')))} · {html.escape(str(t.get('task', '')))}"
        head = (f"{c['n_single_class_groups']} of {c['n_groups']} groups "
                f"({html.escape(str(t.get('group_key', '')))}) hold a single class")
        if c["confounded"]:
            head = f"<b>Warning: group-confounded.</b> {head}. {html.escape(c['message'])}"
        parts.append(f"<h3>{name}</h3><p class=confounding>{head}.</p>")
        table = c.get("table")
        if table and len(table["groups"]) <= MAX_SHOWN_GROUPS:
            header = "".join(f"<th>{html.escape(str(k))}</th>" for k in table["classes"])
            rows = "".join(
                f"<tr><td class=l>{html.escape(str(g))}</td>" + "".join(f"<td>{n:,}</td>" for n in counts) + "</tr>"
                for g, counts in zip(table["groups"], table["counts"]))
            parts.append(f"<table class=class-by-group><tr><th class=l>group</th>{header}</tr>{rows}</table>")
        else:
            where = ("summary.json" if table else
                     f"the counts in summary.json (tables of more than {MAX_STORED_GROUPS} groups are not stored)")
            n = len(table["groups"]) if table else c["n_groups"]
            parts.append(f"<p class=muted>Class × group table of {n:,} groups: see {where}.</p>")
    if not parts:
        return ""
    return ("<h2 id=confounding>Class × group balance</h2><p class=muted>Samples of each class per group, counted "
            "before training (groups of one sample are not counted). When most groups hold a single class, "
            "group-wise folds cannot separate the group (study, batch) from the label.</p>" + "".join(parts))
