"""Cross-validation splits: group-wise (study/donor) or sample-wise, and training-set subsampling.

Group-wise folds are the paper's main setting: all samples of a study (or donor) land in one
fold, so a model is never scored on a study it has seen. Sample-wise folds are kept to show how
much they inflate accuracy (the paper's S2 figure).

A split strategy is a :class:`Splitter`, registered in :data:`SPLITTERS` under the name used on
the command line and in the results' ``split`` column. Everything that depends on the strategy
(outer folds, the inner folds of a search, which groups early stopping and the searches respect,
the checks before a run, labels in figures) asks the splitter; nothing else compares split
names. A new strategy (e.g. leave-one-study-out) is one subclass added to ``SPLITTERS``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, KFold, StratifiedGroupKFold, StratifiedKFold

from linsig.errors import LinsigInputError, LinsigWarning

DEFAULT_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def _check_groups(groups: np.ndarray, n_folds: int) -> None:
    n_groups = np.unique(groups).size
    if n_groups < n_folds:
        raise LinsigInputError(
            f"only {n_groups} groups for {n_folds}-fold group-wise cross-validation; "
            "use fewer folds or --split sample"
        )


def _class_name(value, classes):
    """The label as written (a task's ``y`` holds class indices into ``classes``)."""
    if classes is not None and isinstance(value, (int, np.integer)) and 0 <= value < len(classes):
        return str(classes[value])
    return str(value)


def check_class_sizes(y: np.ndarray, n_folds: int, where: str = "", classes=None) -> None:
    """Refuse labels whose every class has fewer samples than the folds.

    No split can then hold a class out in each fold (scikit-learn's stratified splitters raise
    a ValueError); it is usually a continuous or id-like column given as the label.
    """
    names, inverse = np.unique(np.asarray(y), return_inverse=True)
    counts = np.bincount(inverse)
    if counts.size and counts.max() < n_folds:
        raise LinsigInputError(
            f"{where}every class has fewer samples than the {n_folds} folds ({counts.size} classes, the largest "
            f"with {counts.max()}): a continuous or id-like column? use fewer folds or another label"
        )
    rare = [(names[i], int(n)) for i, n in enumerate(counts) if n < n_folds]
    if rare and where:  # said once per task (check_task), in place of scikit-learn's warning per split
        shown = ", ".join(f"{_class_name(name, classes)!r} ({n})" for name, n in rare[:5])
        warnings.warn(f"{where}class(es) with fewer samples than the {n_folds} folds: {shown}; such a class "
                      "is missing from the validation part of some folds (and their scores) — fewer folds, or "
                      "--classes without it, keeps it in every fold", LinsigWarning, stacklevel=2)


class Splitter:
    """How samples are split into folds. Subclasses set ``name`` and ``grouped`` and make folds."""

    name: str = ""
    #: folds keep every group whole: searches, early stopping and checks then respect the groups
    grouped: bool = False
    label: str = ""  # how figures and the report name it

    def folds(self, y: np.ndarray, groups: np.ndarray | None, n_folds: int, seed: int) -> list:
        raise NotImplementedError

    def groups_for(self, groups: np.ndarray | None) -> np.ndarray | None:
        """The groups that later splits of these folds must respect (None: samples are independent)."""
        return groups if self.grouped else None

    def n_units(self, n_samples: int, groups: np.ndarray | None) -> int:
        """How many independent units (groups or samples) there are to spread over folds."""
        return np.unique(groups).size if self.grouped and groups is not None else n_samples

    def check(self, n_samples: int, n_groups: int, n_folds: int, where: str = "", group_name: str = "") -> None:
        """Refuse, before any work, data too small for ``n_folds`` of this split."""
        if n_samples < n_folds:
            raise LinsigInputError(f"{where}{n_samples} samples for {n_folds} folds")


class GroupSplitter(Splitter):
    """Study-wise (donor-wise) folds: each group in one fold, classes balanced as the groups allow."""

    name, grouped, label = "study", True, "study-wise split"

    def folds(self, y, groups, n_folds, seed):
        if groups is None:
            raise LinsigInputError("group-wise splitting needs groups (--group COLUMN), or use --split sample")
        _check_groups(groups, n_folds)
        check_class_sizes(y, n_folds)
        return _group_folds(y, groups, n_folds, seed)

    def check(self, n_samples, n_groups, n_folds, where="", group_name=""):
        if n_groups < n_folds:
            raise LinsigInputError(
                f"{where}only {n_groups} groups ({group_name or 'samples'}) for {n_folds}-fold group-wise "
                "cross-validation; use fewer folds or --split sample")
        super().check(n_samples, n_groups, n_folds, where, group_name)


class SampleSplitter(Splitter):
    """Stratified sample-wise folds (the paper's S2 comparison: they inflate accuracy)."""

    name, grouped, label = "sample", False, "sample-wise split"

    def folds(self, y, groups, n_folds, seed):
        if len(y) < n_folds:
            raise LinsigInputError(f"only {len(y)} samples for {n_folds}-fold cross-validation")
        if np.bincount(np.unique(y, return_inverse=True)[1]).max() >= n_folds:
            with warnings.catch_warnings():
                # a class rarer than the folds cannot be in every fold; it is spread as far as it goes
                warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
                splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
                return list(splitter.split(np.zeros(len(y)), y))
        # every class rarer than the folds: nothing to stratify
        return list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y))))


SPLITTERS: dict[str, Splitter] = {s.name: s for s in (GroupSplitter(), SampleSplitter())}
SPLITS = tuple(SPLITTERS)


def get_splitter(split: str | Splitter) -> Splitter:
    """The splitter named ``split`` (a :class:`Splitter` is returned as it is)."""
    if isinstance(split, Splitter):
        return split
    if split not in SPLITTERS:
        raise LinsigInputError(f"split must be one of {', '.join(SPLITTERS)}, not {split!r}")
    return SPLITTERS[split]


def is_grouped(split: str) -> bool:
    """Whether results recorded under the split name ``split`` came from group-wise folds."""
    splitter = SPLITTERS.get(split)
    return bool(splitter and splitter.grouped)


def split_label(split: str) -> str:
    splitter = SPLITTERS.get(split)
    return splitter.label if splitter else f"{split} split"


def kfold(y: np.ndarray, groups: np.ndarray | None, n_folds: int = 5, split: str | Splitter = "study", seed: int = 0):
    """Return ``n_folds`` ``(train_idx, val_idx)`` pairs, deterministic for a seed.

    ``split="study"`` keeps every group in one fold and balances classes across folds as well
    as the groups allow (scikit-learn's ``StratifiedGroupKFold``); ``split="sample"`` is
    stratified sample-wise K-fold.
    """
    y = np.asarray(y)
    if n_folds < 2:
        raise LinsigInputError(f"need at least 2 folds, got {n_folds}")
    folds = get_splitter(split).folds(y, groups, n_folds, seed)
    return [(np.sort(tr), np.sort(va)) for tr, va in folds]


def _group_folds(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list:
    """Stratified group folds with no empty fold.

    ``StratifiedGroupKFold`` balances class proportions greedily and, with as many groups as folds
    and single-class groups of uneven size, can leave a fold empty (e.g. group sizes 52/54/32/10/21,
    seed 0). Such a split is redrawn with derived seeds, then falls back to size-balanced
    ``GroupKFold``; the first draw is kept whenever it is valid, so ordinary splits are unchanged.
    """
    X = np.zeros(len(y))
    for attempt in range(10):
        state = seed if attempt == 0 else int(np.random.default_rng([seed, attempt]).integers(2**31 - 1))
        with warnings.catch_warnings():  # a class rarer than the folds: check_class_sizes says it once
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            folds = list(StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=state).split(X, y, groups))
        if all(len(val) for _, val in folds):
            return folds
    return list(GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(X, y, groups))


def subsample(train_idx: np.ndarray, fractions, seed: int, fold: int) -> dict[float, np.ndarray]:
    """Training subsets for each fraction, nested: a smaller subset is a prefix of a larger one.

    Nesting makes a learning curve compare like with like (more data only adds samples), and one
    random permutation per (seed, fold) makes it deterministic.
    """
    fractions = sorted({float(f) for f in fractions})
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        raise LinsigInputError(f"training fractions must be in (0, 1], got {fractions}")
    rng = np.random.default_rng([seed, fold, 7919])
    order = rng.permutation(train_idx)
    out = {}
    for f in fractions:
        n = max(1, int(round(f * len(train_idx))))
        out[f] = np.sort(order[:n])
    return out


def holdout(y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int,
            min_groups: int = 5) -> tuple[np.ndarray, np.ndarray] | None:
    """Split training data again for early stopping: ~``fraction`` of the groups held out.

    Returns ``None`` when the data are too small to hold anything out (fewer than ``min_groups``
    groups, or no draw leaves two classes on both sides): training then runs without early
    stopping, as in the paper's code for tiny training sets.
    """
    n = len(y)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if np.unique(groups).size < min_groups or fraction <= 0:
        return None
    # A tune set of one class makes its loss blind to the other classes and early stopping
    # erratic; try a few group draws for one holding at least two classes.
    splitter = GroupShuffleSplit(n_splits=10, test_size=fraction, random_state=seed)
    for fit_idx, tune_idx in splitter.split(np.zeros(n), y, groups):
        if len(tune_idx) and np.unique(y[fit_idx]).size >= 2 and np.unique(y[tune_idx]).size >= 2:
            return np.sort(fit_idx), np.sort(tune_idx)
    return None


def three_way_split(groups: np.ndarray, proportions=(0.4, 0.4, 0.2), seed: int = 0):
    """Pretraining, training and validation indices; every group in one set, ~``proportions`` of the samples.

    Groups are shuffled (deterministically for ``seed``) and laid end to end; a group goes to the
    set its midpoint falls in. Each set gets at least one group.
    """
    groups = np.asarray(groups)
    uniq, codes, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if uniq.size < 3:
        raise LinsigInputError(f"only {uniq.size} groups: pretraining needs at least 3 (pretraining, training, validation)")
    order = np.random.default_rng([seed, 40402]).permutation(uniq.size)
    props = np.asarray(proportions, dtype=float) / np.sum(proportions)
    ends = np.cumsum(sizes[order])
    mid = (ends - sizes[order] / 2) / ends[-1]
    assignment = np.empty(uniq.size, dtype=np.int64)
    assignment[order] = np.minimum(np.searchsorted(np.cumsum(props), mid), 2)
    if np.unique(assignment).size < 3:  # one huge group swallowed a set: split by group counts
        bounds = np.maximum(1, np.round(np.cumsum(props)[:2] * uniq.size)).astype(int)
        bounds[1] = min(max(bounds[1], bounds[0] + 1), uniq.size - 1)
        assignment[order] = np.searchsorted(bounds, np.arange(uniq.size), side="right")
    sample_set = assignment[codes]
    return tuple(np.flatnonzero(sample_set == i) for i in range(3))
