"""Cross-validated evaluation: the grid of (model, seed, fold, training size, signal mode).

The unit of work is one (task, model, seed, fold). Its hyperparameters are tuned by nested
group-wise CV on the outer training fold — by the ``strong`` recipe once per signal mode, on that
mode's own (corrected) data; by the ``paper`` recipe once on the uncorrected data, as the paper
did — then the model is trained and scored for every training-set fraction and signal mode.
Whenever the paper recipe trains a linear model, the converged (strong) ``logreg`` is also fitted
on the same splits (``reference_balanced_accuracy``): the report flags models that fall clearly
below it as under-trained. :func:`run_unit` computes one unit and is what the experiment runners
distribute; :func:`evaluate` runs a whole grid in this process.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import InitVar, asdict, dataclass, fields

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score

from linsig import splits
from linsig.data.missing import impute_fold, impute_from_rows
from linsig.errors import LinsigInputError
from linsig.metrics import balanced_accuracy, continuous_scores, roc_auc
from linsig.models import DEFAULT_MODELS, is_linear, make_model
from linsig.recipes import get_recipe
from linsig.tasks import Task
from linsig.training import deterministic_kernels, resolve_device
from linsig.tuning import tune

from linsig.signal import SIGNAL_MODES as SIGNALS  # one list of modes, owned by the signal module
from linsig.system import keep_freed_memory
from linsig.validation import check_settings

RESULT_COLUMNS = (
    "dataset", "task", "model", "seed", "fold", "split", "signal", "pretraining", "train_fraction",
    "n_train", "n_val", "n_train_groups", "n_val_groups", "n_classes", "classes",
    "balanced_accuracy", "roc_auc", "accuracy", "chance_balanced_accuracy", "majority_accuracy",
    "recipe", "lr", "weight_decay", "params", "tuning", "tuning_score", "epochs_trained", "best_epoch", "diverged",
    "converged", "reference_balanced_accuracy", "fit_seconds", "tune_seconds", "device", "status", "skip_reason",
)


@dataclass(frozen=True)
class Settings:
    """Everything about a run except the data: the grid and the training recipe."""

    models: tuple[str, ...] = DEFAULT_MODELS
    seeds: tuple[int, ...] = (0, 1, 2)
    n_folds: int = 5
    fractions: tuple[float, ...] = splits.DEFAULT_FRACTIONS
    split: str = "study"
    signals: tuple[str, ...] = ("none",)
    # "strong" (every model at its capacity) or "paper" (the paper's exact training); see linsig.recipes
    recipe: str = "strong"
    # None / "auto": the recipe's default (strong: full search, ≤ 100 epochs, batch from the data,
    # patience 10; paper: 25 random trials, 50 epochs, batch 16, patience 7). Set on construction.
    tuning: str = "auto"
    max_epochs: int | None = None
    batch_size: int | None = None
    patience: int | None = None
    device: str = "auto"
    lr: float | None = None  # used when tuning is off (None: each model's default)
    weight_decay: float | None = None  # used when tuning is off (None: paper 0, strong the model's default)
    # Threads per training. One by default: mini-batches of 16 gain little from a second
    # thread, oversubscribed CPUs lose 10–40× (measured, see docs/performance.md), and a fixed
    # count keeps results identical bit for bit across machines. Parallelise over units instead.
    threads: int = 1
    # The command line's names, accepted as well (Settings(folds=3, epochs=20, signal=["none", "removed"])):
    # they set n_folds, max_epochs and signals and are not stored under their own name.
    folds: InitVar[int | None] = None
    epochs: InitVar[int | None] = None
    signal: InitVar[tuple[str, ...] | str | None] = None

    def __post_init__(self, folds=None, epochs=None, signal=None):
        _apply_cli_names(self, folds=folds, epochs=epochs, signal=signal)
        check_settings(self)  # every field, before any work (linsig.validation)
        recipe = get_recipe(self.recipe)
        from linsig.recipes import resolve_tuning

        resolved = {"tuning": resolve_tuning(self.recipe, self.tuning),
                    "max_epochs": self.max_epochs or recipe.max_epochs,
                    "batch_size": self.batch_size or recipe.batch_size,
                    "patience": self.patience or recipe.patience,
                    "weight_decay": 0.0 if self.weight_decay is None and self.recipe == "paper" else self.weight_decay}
        for name, value in resolved.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: Settings field of each command-line name that differs from it (--folds, --epochs, --signal)
CLI_NAMES = {"folds": "n_folds", "epochs": "max_epochs", "signal": "signals"}


def _apply_cli_names(settings: Settings, **given) -> None:
    """Set the fields named by their command-line names; a field given twice must agree."""
    defaults = {f.name: f.default for f in fields(Settings)}
    for cli, value in given.items():
        if value is None:
            continue
        name = CLI_NAMES[cli]
        if name == "signals":
            value = (value,) if isinstance(value, str) else tuple(value)
        current = getattr(settings, name)
        if current != defaults[name] and current != value:
            raise LinsigInputError(f"Settings: {cli}={value!r} and {name}={current!r} name the same setting; give one")
        object.__setattr__(settings, name, value)


@dataclass(frozen=True)
class Unit:
    model: str
    seed: int
    fold: int


def units(settings: Settings) -> list[Unit]:
    return [Unit(m, s, f) for s in settings.seeds for f in range(settings.n_folds) for m in settings.models]


def check_task(task: Task, settings: Settings) -> None:
    """Fail early, with a clear message, on a task that cannot be cross-validated."""
    if settings.split == "study" and task.n_groups < settings.n_folds:
        raise LinsigInputError(
            f"task {task.name!r}: only {task.n_groups} groups ({task.group_key or 'samples'}) for "
            f"{settings.n_folds}-fold group-wise cross-validation; use fewer folds or --split sample"
        )
    if task.n_samples < settings.n_folds:
        raise LinsigInputError(f"task {task.name!r}: {task.n_samples} samples for {settings.n_folds} folds")
    splits.check_class_sizes(task.y, settings.n_folds, f"task {task.name!r} (label {task.label_key!r}): ")


def _folds(task: Task, settings: Settings, seed: int):
    key = ("folds", settings.split, settings.n_folds, seed)
    if key not in task._cache:
        groups = task.groups if settings.split == "study" else None
        task._cache[key] = splits.kfold(task.y, groups, settings.n_folds, settings.split, seed)
    return task._cache[key]


def removed_full(task: Task) -> np.ndarray:
    """The whole labelled matrix corrected at once (the paper's S1 failure mode), cached on the task."""
    if "removed_full" not in task._cache:
        from linsig.signal import remove_linear_signal

        # the deliberately leaky mode transforms the whole task at once: so does its imputation
        task._cache["removed_full"] = remove_linear_signal(impute_from_rows(task.X, slice(None)), task.y)
    return task._cache["removed_full"]


def correct(signal: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """One set corrected for a signal mode: its own labels (``removed``) or groups (``study``)."""
    if signal in ("none", "removed_full"):
        return X
    from linsig.signal import remove_linear_signal

    return remove_linear_signal(X, y if signal == "removed" else groups)


def skip_reason(signal: str, y_tr, y_va, g_tr, g_va, train_name: str = "training") -> str:
    """Why a (training set, validation set) pair cannot be scored for ``signal``; "" when it can."""
    if np.unique(y_tr).size < 2:
        return f"{train_name} set holds one class"
    if np.unique(y_va).size < 2:
        return "validation set holds one class"
    if signal == "study":
        for name, g in ((train_name, g_tr), ("validation", g_va)):
            n_groups = np.unique(g).size
            if n_groups < 2:
                return f"{name} set holds one group: no study effect to remove"
            if n_groups == len(g):
                return f"every {name} sample is its own group: removing the study effect would erase the data"
    return ""


def run_unit(task: Task, unit: Unit, settings: Settings) -> list[dict]:
    """Tune, then train and score ``unit.model`` for every fraction and signal mode."""
    import torch
    from threadpoolctl import threadpool_limits

    keep_freed_memory()  # reuse freed gradient buffers instead of faulting them in at every step
    deterministic_kernels()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with threadpool_limits(settings.threads):  # BLAS/OpenMP of scikit-learn's solvers too
            return _run_unit(task, unit, settings)
    finally:
        torch.set_num_threads(previous_threads)


def make_estimator(model: str, settings: Settings, seed: int, n_classes: int, recipe: str | None = None, **params):
    """The estimator a unit trains: the run's recipe, the unit's seed, the task's full label set.

    Every model takes from the run's training setup what it uses (epochs and batch size for the
    networks, threads for the tree ensembles, nothing of it for the convex solvers).
    """
    base = dict(max_epochs=settings.max_epochs, batch_size=settings.batch_size, patience=settings.patience,
                device=str(resolve_device(settings.device)), random_state=seed, classes=np.arange(n_classes),
                threads=settings.threads)
    if settings.lr is not None or (recipe or settings.recipe) == "paper":
        base["lr"] = settings.lr
    if settings.weight_decay is not None:
        base["weight_decay"] = settings.weight_decay
    return make_model(model, recipe or settings.recipe, **{**base, **params})


def chance_balanced_accuracy(y_va: np.ndarray) -> float:
    """Balanced accuracy of any constant predictor on ``y_va``.

    scikit-learn averages recall over the classes present in ``y_va`` only, so a constant
    prediction scores 1/(classes in the validation set) when it names one of them, not 1/(task's
    classes): a multiclass fold that misses a class has a higher floor.
    """
    return 1.0 / max(np.unique(y_va).size, 1)


def score(model, X_va: np.ndarray, y_va: np.ndarray) -> dict:
    """Metrics and training summary of a fitted model on the held-out set, as result-row fields."""
    pred = model.predict(X_va)
    params = model.chosen_params()
    return {"balanced_accuracy": float(balanced_accuracy(y_va, pred)), "roc_auc": roc_auc(y_va, *continuous_scores(model, X_va)),
            "accuracy": float(accuracy_score(y_va, pred)),
            # diverged: the loss went non-finite (scores come from the best earlier epoch, or broken weights)
            **model.fit_summary(),
            "lr": float(params.get("lr", math.nan)), "weight_decay": float(params.get("weight_decay", math.nan)),
            "params": json.dumps(params, sort_keys=True)}


class _SignalData:
    """The matrices one signal mode trains and scores on, corrected lazily and once each.

    Missing values (``--missing impute``) are filled with gene means of the outer training fold
    before any correction (limma cannot take NaN), and, for tuning, of each inner training part:
    no validation value ever enters a fill.
    """

    def __init__(self, task: Task, signal: str, train_idx: np.ndarray, val_idx: np.ndarray):
        self.task, self.signal, self.val_idx = task, signal, val_idx
        self.raw = removed_full(task) if signal == "removed_full" else task.X
        self.X = impute_from_rows(self.raw, train_idx)
        self._val = None

    def subset(self, idx: np.ndarray) -> np.ndarray:
        return correct(self.signal, self.X[idx], self.task.y[idx], self.task.groups[idx])

    @property
    def validation(self) -> np.ndarray:
        if self._val is None:  # the same for every fraction: correct it once
            self._val = self.subset(self.val_idx)
        return self._val

    def inner(self, train_idx: np.ndarray):
        """``prepare`` for tuning on ``train_idx``: inner folds corrected like the outer ones."""
        y, g = self.task.y, self.task.groups

        def prepare(inner_train, inner_val):
            tr, va = train_idx[inner_train], train_idx[inner_val]
            if skip_reason(self.signal, y[tr], y[va], g[tr], g[va]):
                return None
            X_tr, X_va = impute_fold(self.raw[tr], self.raw[va])  # NaN ← inner-training means only
            return correct(self.signal, X_tr, y[tr], g[tr]), correct(self.signal, X_va, y[va], g[va])

        return prepare


def _tune(estimator, data: _SignalData, train_idx, split: str, level: str, seed: int, recipe: str):
    """Nested CV on the outer training fold; the strong recipe tunes on ``data``'s own corrected folds."""
    task = data.task
    groups = task.groups[train_idx] if split == "study" else None
    start = time.perf_counter()
    if recipe == "paper":  # the paper's protocol: uncorrected data, whatever the signal mode
        result = tune(estimator, task.X[train_idx], task.y[train_idx], groups, level, seed, split, recipe="paper")
    else:
        result = tune(estimator, data.X[train_idx], task.y[train_idx], groups, level, seed, split, recipe="strong",
                      prepare=data.inner(train_idx))
    return result, time.perf_counter() - start


def _reference(task, unit, settings, data, train_idx, subsets, y_va):
    """Balanced accuracy of the converged ``logreg`` on the unit's splits, per fraction (lazily tuned)."""
    estimator = make_estimator("logreg", settings, unit.seed, task.n_classes, recipe="strong")
    tuned, _ = _tune(estimator, data, train_idx, settings.split, "full", unit.seed, "strong")
    estimator.set_params(**tuned.params)
    out = {}
    for fraction, idx in subsets.items():
        if skip_reason(data.signal, task.y[idx], y_va, task.groups[idx], task.groups[data.val_idx]):
            continue
        model = clone(estimator).fit(data.subset(idx), task.y[idx])
        out[fraction] = float(balanced_accuracy(y_va, model.predict(data.validation)))
    return out


def _run_unit(task: Task, unit: Unit, settings: Settings) -> list[dict]:
    device = str(resolve_device(settings.device))
    folds = _folds(task, settings, unit.seed)
    train_idx, val_idx = folds[unit.fold]
    K = task.n_classes
    recipe = settings.recipe
    estimator = make_estimator(unit.model, settings, unit.seed, K)
    study_groups = task.groups if settings.split == "study" else None
    subsets = splits.subsample(train_idx, settings.fractions, unit.seed, unit.fold)
    y_va, g_va = task.y[val_idx], task.groups[val_idx]
    # The paper recipe's linear models are checked against the converged logreg on the same
    # splits; once per (seed, fold): in the logreg unit, or the svm unit when the run has no logreg.
    check_undertraining = recipe == "paper" and is_linear(unit.model) and (
        unit.model == "logreg" or "logreg" not in settings.models)
    paper_tuning = None
    rows = []
    for signal in settings.signals:
        data = _SignalData(task, signal, train_idx, val_idx)
        tuned, tune_seconds, reference, trained = None, 0.0, None, None
        for fraction, idx in subsets.items():
            y_tr, g_tr = task.y[idx], task.groups[idx]
            counts = np.bincount(y_tr, minlength=K)
            row = {
                "dataset": task.dataset, "task": task.name, "model": unit.model, "seed": unit.seed,
                "fold": unit.fold, "split": settings.split, "signal": signal, "pretraining": "none",
                "train_fraction": fraction, "n_train": len(idx), "n_val": len(val_idx),
                "n_train_groups": int(np.unique(g_tr).size), "n_val_groups": int(np.unique(g_va).size),
                "n_classes": K, "classes": "|".join(map(str, task.classes)),
                "balanced_accuracy": np.nan, "roc_auc": np.nan, "accuracy": np.nan, "chance_balanced_accuracy": chance_balanced_accuracy(y_va),
                "majority_accuracy": float(np.mean(y_va == counts.argmax())),
                "recipe": recipe, "lr": np.nan, "weight_decay": np.nan, "params": "", "tuning": settings.tuning,
                "tuning_score": np.nan, "epochs_trained": 0, "best_epoch": 0, "diverged": False, "converged": True,
                "reference_balanced_accuracy": np.nan, "fit_seconds": 0.0, "tune_seconds": 0.0, "device": device,
                "status": "ok", "skip_reason": "",
            }
            reason = skip_reason(signal, y_tr, y_va, g_tr, g_va)
            if reason:
                row.update(status="skipped", skip_reason=reason)
                rows.append(row)
                continue
            if tuned is None:  # tuned only when some fraction trains: a skipped mode costs nothing
                if recipe == "paper":
                    if paper_tuning is None:  # once per unit, on uncorrected data (the paper's protocol)
                        paper_tuning = _tune(estimator, data, train_idx, settings.split, settings.tuning, unit.seed, recipe)
                        tuned, tune_seconds = paper_tuning
                    else:  # its time is counted on the first signal mode's rows
                        tuned, tune_seconds = paper_tuning[0], 0.0
                else:
                    tuned, tune_seconds = _tune(estimator, data, train_idx, settings.split, settings.tuning, unit.seed,
                                                recipe)
                # a fresh copy per signal mode: a mode whose search fell back to the defaults must
                # not inherit the previous mode's winner
                trained = clone(estimator).set_params(**tuned.params)
            start = time.perf_counter()
            model = trained.fit(data.subset(idx), y_tr, groups=None if study_groups is None else g_tr)
            row["fit_seconds"] = time.perf_counter() - start
            row.update(score(model, data.validation, y_va), tuning_score=tuned.score, tune_seconds=tune_seconds)
            if check_undertraining:
                if reference is None:
                    reference = _reference(task, unit, settings, data, train_idx, subsets, y_va)
                row["reference_balanced_accuracy"] = reference.get(fraction, np.nan)
            rows.append(row)
    return rows


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows → the results table with its columns in the documented order and types."""
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    df = df[[c for c in RESULT_COLUMNS if c in df.columns] + extra]
    for col in ("seed", "fold", "n_train", "n_val", "n_train_groups", "n_val_groups", "n_classes", "epochs_trained", "best_epoch"):
        if col in df:
            df[col] = df[col].astype("int64")
    return df


def evaluate(tasks: list[Task], settings: Settings, progress: bool = True, jobs: int = 1) -> pd.DataFrame:
    """Run the whole grid for every task; return the results table.

    ``jobs > 1`` computes units in that many spawned processes (each loads the tasks once). Every
    unit seeds its own generators and uses ``settings.threads`` threads, so the table is the same
    as with one process, row for row.
    """
    from linsig.progress import progress_bar

    for task in tasks:
        check_task(task, settings)
    work = [(i, unit) for i, task in enumerate(tasks) for unit in units(settings)]
    with progress_bar(total=len(work), desc="linsig run", unit="unit", disable=not progress) as bar:
        per_unit = run_units(tasks, work, settings, jobs, bar)
    return results_frame([row for unit_rows in per_unit for row in unit_rows])


def run_units(tasks: list[Task], work: list[tuple[int, Unit]], settings: Settings, jobs: int = 1, bar=None,
              task_label=None) -> list[list[dict]]:
    """The rows of every ``(task index, unit)`` in ``work``, in its order: here, or in ``jobs``
    spawned processes (each loads ``tasks`` once). In one process the progress bar names the
    unit after ``task_label(task_index)`` (default: the task's name)."""
    if jobs > 1 and len(work) > 1:
        return _in_processes(tasks, work, settings, jobs, bar)
    out = []
    for i, unit in work:
        if bar is not None:
            task = task_label(i) if task_label else tasks[i].name
            bar.set_postfix_str(f"{task} {unit.model} seed={unit.seed} fold={unit.fold}", refresh=False)
        out.append(run_unit(tasks[i], unit, settings))
        if bar is not None:
            bar.update()
    return out


_WORKER_TASKS: list[Task] = []


def _load_worker_tasks(tasks: list[Task]) -> None:
    from linsig.system import exit_with_parent

    _WORKER_TASKS[:] = tasks
    exit_with_parent()


def _run_worker_unit(index: int, unit: Unit, settings: Settings) -> list[dict]:
    return run_unit(_WORKER_TASKS[index], unit, settings)


def _in_processes(tasks: list[Task], work: list[tuple[int, Unit]], settings: Settings, jobs: int, bar) -> list[list[dict]]:
    """Every unit's rows, computed by ``jobs`` spawned processes, in the order of ``work``."""
    import concurrent.futures as cf
    import multiprocessing

    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(work)), mp_context=multiprocessing.get_context("spawn"),
                                initializer=_load_worker_tasks, initargs=(tasks,)) as pool:
        futures = [pool.submit(_run_worker_unit, i, unit, settings) for i, unit in work]
        for future in cf.as_completed(futures):
            if future.exception() is not None:  # a failed unit stops the run, as it would in one process
                raise future.exception()
            if bar is not None:
                bar.update()
        return [future.result() for future in futures]
