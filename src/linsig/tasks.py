"""Classification tasks: which samples, which labels, which groups.

A :class:`Task` is the in-memory input of every later step: a float32 samples × genes matrix, the
integer-coded labels, and the integer-coded groups (study, donor, …) that must never be split
across folds. Tasks are built from an AnnData by choosing a label column and, optionally, the
classes to keep (a binary pair, all classes with at least K groups, or the paper's presets).
"""

from __future__ import annotations

import dataclasses
import itertools
import shlex
from dataclasses import dataclass, field

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from linsig.data.io import missing_markers, validate_matrix  # the same inf check as for tables
from linsig.data.missing import handle_missing
from linsig.errors import LinsigInputError

# The paper's task sets (Heil et al. 2023, Methods; shared/spec/anchor-parameters.md).
GTEX_BINARY_TISSUES = ("Blood", "Brain", "Skin", "Esophagus", "Blood Vessel")
RECOUNT3_BINARY_TISSUES = ("Blood", "Breast", "Stem Cell", "Cervix", "Brain")
RECOUNT3_MULTICLASS_TISSUES = (
    "Blood", "Breast", "Stem Cell", "Cervix", "Brain", "Kidney", "Umbilical Cord", "Lung",
    "Epithelium", "Prostate", "Liver", "Heart", "Skin", "Colon", "Bone Marrow", "Muscle",
    "Tonsil", "Blood Vessel", "Spinal Cord", "Testis", "Placenta",
)
PRETRAINING_TISSUES = ("Blood", "Breast", "Brain", "Kidney", "Lung")


@dataclass(frozen=True)
class TaskPreset:
    """A named set of tasks from the paper: the label/group columns and the classes used."""

    label: str
    group: str
    pairs_of: tuple[str, ...] | None = None  # binary tasks: every pair of these classes
    classes: tuple[str, ...] | None = None  # one multiclass task on these classes (None: all)
    description: str = ""


PRESETS: dict[str, TaskPreset] = {
    "gtex-binary": TaskPreset("tissue", "donor", pairs_of=GTEX_BINARY_TISSUES,
                              description="GTEx: every pair of Blood, Brain, Skin, Esophagus, Blood Vessel (Fig 2A)"),
    "gtex-multiclass": TaskPreset("tissue", "donor", classes=None,
                                  description="GTEx: all 31 tissues (Fig 3A)"),
    "recount3-binary": TaskPreset("tissue", "study", pairs_of=RECOUNT3_BINARY_TISSUES,
                                  description="Recount3: every pair of Blood, Breast, Stem Cell, Cervix, Brain (Fig 2B)"),
    "recount3-multiclass": TaskPreset("tissue", "study", classes=RECOUNT3_MULTICLASS_TISSUES,
                                      description="Recount3: the 21 tissues with at least 10 studies (Fig 3B)"),
    "sex": TaskPreset("sex", "study", classes=("female", "male"),
                      description="Recount3 samples with Flynn et al. metadata sex labels (Fig 3C)"),
    "pretraining": TaskPreset("tissue", "study", pairs_of=PRETRAINING_TISSUES,
                              description="Recount3: every pair of Blood, Breast, Brain, Kidney, Lung "
                                          "(the paper code's transfer pairs)"),
}


@dataclass
class Task:
    """One classification problem, held in memory as arrays.

    Attributes
    ----------
    X : float32 array (n_samples, n_genes), C-contiguous.
    y : int64 array of class codes indexing ``classes``.
    groups : int64 array of group codes (samples of one group never go to two folds).
    """

    name: str
    dataset: str
    label_key: str
    group_key: str | None
    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    groups: np.ndarray
    sample_ids: np.ndarray
    gene_ids: np.ndarray
    group_names: np.ndarray | None = None  # name of each group code (None: codes only)
    preprocessing: dict = field(default_factory=dict)  # normalisation and missing values, for the summary
    # label/group values that look like missing-value markers ("NA"), kept as written: warned about
    markers: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_groups(self) -> int:
        return int(np.unique(self.groups).size)

    def summary(self) -> dict:
        from linsig.confounding import task_confounding

        counts = np.bincount(self.y, minlength=self.n_classes)
        out = {
            "dataset": self.dataset,
            "task": self.name,
            "n_samples": int(self.n_samples),
            "n_groups": self.n_groups,
            "group_key": self.group_key or "(each sample)",
            "label_key": self.label_key,
            "n_genes": int(self.X.shape[1]),
            "classes": {str(c): int(n) for c, n in zip(self.classes, counts)},
        }
        if self.preprocessing:
            out["preprocessing"] = self.preprocessing
        if self.markers:
            out["missing_markers"] = self.markers
        confounding = self.derived("confounding", lambda: task_confounding(self))  # written with every unit
        if confounding is not None:
            out["confounding"] = confounding
        return out

    def derived(self, key, compute):
        """A value computed from this task's data alone (its folds, its whole-data correction), once.

        Kept with the task object, so a copy with other labels (:meth:`with_labels`) starts afresh.
        """
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def with_labels(self, y: np.ndarray) -> Task:
        """A copy of the task with other labels and nothing derived from the old ones."""
        return dataclasses.replace(self, y=y, _cache={})


def _column(obs: pd.DataFrame, key: str, role: str, source: str) -> pd.Series:
    if key not in obs.columns:
        raise LinsigInputError(
            f"{source}: no {role} column {key!r} in the sample metadata; columns are: {', '.join(map(str, obs.columns))}"
        )
    return obs[key]


def marker_warnings(task_name: str, role: str, column: str, values: pd.Series) -> list[dict]:
    """One record (with its warning) per value of a task's label or group column that looks like a
    missing-value marker: whether ``NA`` is a class or an empty field only the user knows, so it
    is kept, and said."""
    kept = "kept as a class" if role == "label" else "kept as one group"
    return [{"role": role, "column": str(column), "value": value, "n_samples": n,
             "message": f"task {task_name!r}: {role} column {column!r} holds {value!r} in {n} sample(s), {kept}; "
                        f"if it marks a missing value, give --na-values {shlex.quote(value)} (experiment files: "
                        f"na_values in the dataset's table)"}
            for value, n in missing_markers(values).items()]


def _load_rows(adata: ad.AnnData, rows: np.ndarray) -> np.ndarray:
    """Load only ``rows`` (sorted positions) of X as a dense float32 array (works on backed files)."""
    if adata.isbacked and isinstance(adata.X, h5py.Dataset):
        from linsig.data.compendium import read_dense_rows  # chunk-wise reads of a backed compendium

        X = read_dense_rows(adata.X, rows)
    else:
        X = adata.X[rows]
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.ascontiguousarray(np.asarray(X, dtype=np.float32))


def make_task(
    adata: ad.AnnData,
    label: str,
    group: str | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    min_groups: int | None = None,
    name: str | None = None,
    missing: str | None = None,
) -> Task:
    """Build a task from ``adata``.

    Parameters
    ----------
    label
        ``obs`` column with the class of each sample; samples with a missing label are dropped.
        Labels (and groups) that look like missing-value markers (``NA``, ``unknown``, …) are
        kept and recorded with a warning (``Task.markers``); read the data with ``na_values`` to
        make them missing.
    group
        ``obs`` column with the study/donor of each sample; ``None`` makes each sample its own group.
    classes
        Keep only these classes (e.g. a binary pair); ``None`` keeps all.
    min_groups
        Keep only classes present in at least this many groups (the paper's "≥ 10 studies").
    missing
        Missing values in the task's rows: ``error``, ``drop-genes`` or ``impute`` (kept as NaN
        and filled per fold from training samples). Default: the policy :func:`preprocess
        <linsig.data.preprocess.preprocess>` recorded in ``uns``, else ``error``.
    """
    source = str(adata.uns.get("linsig", {}).get("source", "dataset")) if "linsig" in adata.uns else "dataset"
    dataset = str(adata.uns.get("linsig", {}).get("dataset", "dataset")) if "linsig" in adata.uns else "dataset"
    labels = _column(adata.obs, label, "label", source)
    keep = labels.notna().to_numpy()
    labels_str = labels.astype(object).where(labels.notna(), None).astype(str)
    groups = _column(adata.obs, group, "group", source).astype(str) if group else pd.Series(adata.obs_names, index=adata.obs_names)
    if group:
        missing_group = adata.obs[group].isna().to_numpy() & keep
        if missing_group.any():
            raise LinsigInputError(
                f"{source}: group column {group!r} is empty for labelled samples "
                f"{', '.join(map(str, adata.obs_names[missing_group][:5]))}"
            )
    if classes is not None:
        classes = [str(c) for c in classes]
        present = set(labels_str[keep])
        absent = [c for c in classes if c not in present]
        if absent:
            raise LinsigInputError(
                f"{source}: class(es) {', '.join(absent)} not found in label column {label!r}; "
                f"it has: {', '.join(sorted(present)[:30])}"
            )
        keep &= labels_str.isin(classes).to_numpy()
    if min_groups:
        per_class = pd.DataFrame({"y": labels_str[keep], "g": groups[keep]}).groupby("y")["g"].nunique()
        ok = per_class.index[per_class >= min_groups]
        keep &= labels_str.isin(ok).to_numpy()
    kept_labels = labels_str[keep]
    uniq = np.array(sorted(kept_labels.unique()))
    if uniq.size < 2:
        what = f"one class ({str(uniq[0])!r})" if uniq.size == 1 else "no classes"
        raise LinsigInputError(
            f"{source}: label column {label!r} has {what} after filtering; a classification task needs at least two"
        )
    rows = np.flatnonzero(keep)
    y = np.searchsorted(uniq, kept_labels.to_numpy()).astype(np.int64)
    group_names, group_codes = np.unique(groups.to_numpy()[rows], return_inverse=True)
    X = _load_rows(adata, rows)
    validate_matrix(X, adata.obs_names[rows], adata.var_names, source, allow_nan=True)
    preprocessing = dict(adata.uns.get("linsig", {}).get("preprocessing", {})) if "linsig" in adata.uns else {}
    recorded = preprocessing.get("missing", {}).get("mode") if isinstance(preprocessing.get("missing"), dict) else None
    genes, (complete, missing_info) = np.asarray(adata.var_names), handle_missing(
        X, adata.obs_names[rows], adata.var_names, source, missing or recorded or "error")
    if not complete.all():
        X, genes = np.ascontiguousarray(X[:, complete]), genes[complete]
    na_values = adata.uns["linsig"].get("na_values") if "linsig" in adata.uns else None
    if na_values:  # what read_dataset(na_values=…) made missing, dataset-wide
        preprocessing["na_values"] = dict(na_values)
    if recorded:  # the dataset-wide record of preprocess(), plus what this task's rows hold
        preprocessing["missing"] = {**preprocessing["missing"], "n_missing_in_task": missing_info["n_missing"]}
    elif missing or missing_info["n_missing"]:
        preprocessing["missing"] = missing_info
    if name is None:
        name = f"{label}:{uniq[0]}-vs-{uniq[1]}" if uniq.size == 2 and classes is not None else (
            label if uniq.size == 2 else f"{label}:multiclass")
    markers = marker_warnings(name, "label", label, kept_labels)
    if group:
        markers += marker_warnings(name, "group", group, adata.obs[group][keep])
    return Task(
        name=name, dataset=dataset, label_key=label, group_key=group, X=X, y=y, classes=uniq,
        groups=group_codes.astype(np.int64), sample_ids=np.asarray(adata.obs_names[rows]),
        gene_ids=genes, group_names=group_names.astype(str) if group else None, preprocessing=preprocessing,
        markers=markers,
    )


def top_classes(adata: ad.AnnData, label: str, group: str | None, k: int) -> list[str]:
    """The ``k`` classes present in the most groups (ties: most samples, then name)."""
    obs = adata.obs
    labels = _column(obs, label, "label", "dataset").dropna().astype(str)
    groups = obs.loc[labels.index, group].astype(str) if group else pd.Series(labels.index, index=labels.index)
    table = pd.DataFrame({"y": labels, "g": groups})
    stats = table.groupby("y").agg(n_groups=("g", "nunique"), n=("g", "size")).reset_index()
    stats = stats.sort_values(["n_groups", "n", "y"], ascending=[False, False, True])
    return stats["y"].head(k).tolist()


def pairwise_tasks(
    adata: ad.AnnData,
    label: str,
    group: str | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    top_k: int = 5,
) -> list[Task]:
    """One binary task per pair of ``classes`` (default: the ``top_k`` classes with most groups)."""
    classes = list(classes) if classes else top_classes(adata, label, group, top_k)
    return [make_task(adata, label, group, classes=[a, b]) for a, b in itertools.combinations(classes, 2)]


def preset_tasks(adata: ad.AnnData, preset: str) -> list[Task]:
    """The tasks of one of the paper's presets (see :data:`PRESETS`)."""
    if preset not in PRESETS:
        raise LinsigInputError(f"unknown task preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    if p.pairs_of:
        return pairwise_tasks(adata, p.label, p.group, classes=p.pairs_of)
    return [make_task(adata, p.label, p.group, classes=p.classes, name=f"{p.label}:{preset}")]
