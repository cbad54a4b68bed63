"""Cross-validated evaluation: the grid of (model, seed, fold, training size, signal mode).

The unit of work is one (task, model, seed, fold): hyperparameters are tuned once on the outer
training fold (uncorrected data, as in the paper), then the model is trained and scored for every
training-set fraction and every signal mode. :func:`run_unit` computes one unit and is what the
experiment runners distribute; :func:`evaluate` runs a whole grid in this process.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from linsig import splits
from linsig.errors import LinsigInputError
from linsig.models import make_model, parse_models
from linsig.tasks import Task
from linsig.training import resolve_device
from linsig.tuning import get_preset, tune

from linsig.signal import SIGNAL_MODES as SIGNALS  # one list of modes, owned by the signal module
from linsig.system import keep_freed_memory
from linsig.validation import check_settings

RESULT_COLUMNS = (
    "dataset", "task", "model", "seed", "fold", "split", "signal", "pretraining", "train_fraction",
    "n_train", "n_val", "n_train_groups", "n_val_groups", "n_classes", "classes",
    "balanced_accuracy", "accuracy", "chance_balanced_accuracy", "majority_accuracy",
    "lr", "weight_decay", "tuning", "epochs_trained", "best_epoch", "diverged", "fit_seconds", "device",
    "status", "skip_reason",
)


@dataclass(frozen=True)
class Settings:
    """Everything about a run except the data: the grid and the training recipe."""

    models: tuple[str, ...] = ("logreg", "svm", "mlp3", "mlp5")
    seeds: tuple[int, ...] = (0, 1, 2)
    n_folds: int = 5
    fractions: tuple[float, ...] = splits.DEFAULT_FRACTIONS
    split: str = "study"
    signals: tuple[str, ...] = ("none",)
    tuning: str = "fast"
    max_epochs: int = 50
    batch_size: int = 16
    patience: int = 7
    device: str = "auto"
    lr: float | None = None  # used when tuning is off (None: each model's default)
    weight_decay: float = 0.0
    # Threads per training. One by default: mini-batches of 16 gain little from a second
    # thread, oversubscribed CPUs lose 10–40× (measured, see docs/performance.md), and a fixed
    # count keeps results identical bit for bit across machines. Parallelise over units instead.
    threads: int = 1

    def __post_init__(self):
        check_settings(self)  # every field, before any work (linsig.validation)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


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

        task._cache["removed_full"] = remove_linear_signal(task.X, task.y)
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
    """Tune once, then train and score ``unit.model`` for every fraction and signal mode."""
    import torch

    keep_freed_memory()  # reuse freed gradient buffers instead of faulting them in at every step
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _run_unit(task, unit, settings)
    finally:
        torch.set_num_threads(previous_threads)


def make_estimator(model: str, settings: Settings, seed: int, n_classes: int, **params):
    """The estimator a unit trains: the run's recipe, the unit's seed, the task's full label set."""
    base = dict(max_epochs=settings.max_epochs, batch_size=settings.batch_size, patience=settings.patience,
                device=str(resolve_device(settings.device)), random_state=seed, classes=np.arange(n_classes),
                lr=settings.lr, weight_decay=settings.weight_decay)
    return make_model(model, **{**base, **params})


def chance_balanced_accuracy(y_va: np.ndarray) -> float:
    """Balanced accuracy of any constant predictor on ``y_va``.

    scikit-learn averages recall over the classes present in ``y_va`` only, so a constant
    prediction scores 1/(classes in the validation set) when it names one of them, not 1/(task's
    classes): a multiclass fold that misses a class has a higher floor.
    """
    return 1.0 / max(np.unique(y_va).size, 1)


def score(model, X_va: np.ndarray, y_va: np.ndarray) -> dict:
    """Metrics and training length of a fitted model on the held-out set, as result-row fields."""
    pred = model.predict(X_va)
    return {"balanced_accuracy": float(balanced_accuracy_score(y_va, pred)), "accuracy": float(accuracy_score(y_va, pred)),
            "epochs_trained": int(model.train_result_.epochs_trained), "best_epoch": int(model.train_result_.best_epoch),
            # the loss went non-finite: scores come from the best earlier epoch, or from broken weights without one
            "diverged": bool(model.train_result_.diverged)}


def _run_unit(task: Task, unit: Unit, settings: Settings) -> list[dict]:
    device = str(resolve_device(settings.device))
    folds = _folds(task, settings, unit.seed)
    train_idx, val_idx = folds[unit.fold]
    K = task.n_classes
    estimator = make_estimator(unit.model, settings, unit.seed, K)
    study_groups = task.groups if settings.split == "study" else None
    tuned = tune(estimator, task.X[train_idx], task.y[train_idx],
                 None if study_groups is None else study_groups[train_idx], settings.tuning, unit.seed, settings.split)
    estimator.set_params(lr=tuned.lr, weight_decay=tuned.weight_decay)
    lr_used = estimator.default_lr if tuned.lr is None else tuned.lr
    subsets = splits.subsample(train_idx, settings.fractions, unit.seed, unit.fold)
    y_va, g_va = task.y[val_idx], task.groups[val_idx]
    rows = []
    for signal in settings.signals:
        X_base = removed_full(task) if signal == "removed_full" else task.X
        X_va = None  # the validation fold is the same for every fraction: correct it once, when needed
        for fraction, idx in subsets.items():
            y_tr, g_tr = task.y[idx], task.groups[idx]
            counts = np.bincount(y_tr, minlength=K)
            row = {
                "dataset": task.dataset, "task": task.name, "model": unit.model, "seed": unit.seed,
                "fold": unit.fold, "split": settings.split, "signal": signal, "pretraining": "none",
                "train_fraction": fraction, "n_train": len(idx), "n_val": len(val_idx),
                "n_train_groups": int(np.unique(g_tr).size), "n_val_groups": int(np.unique(g_va).size),
                "n_classes": K, "classes": "|".join(map(str, task.classes)),
                "balanced_accuracy": np.nan, "accuracy": np.nan, "chance_balanced_accuracy": chance_balanced_accuracy(y_va),
                "majority_accuracy": float(np.mean(y_va == counts.argmax())),
                "lr": float(lr_used), "weight_decay": float(tuned.weight_decay), "tuning": settings.tuning,
                "epochs_trained": 0, "best_epoch": 0, "diverged": False, "fit_seconds": 0.0, "device": device,
                "status": "ok", "skip_reason": "",
            }
            reason = skip_reason(signal, y_tr, y_va, g_tr, g_va)
            if reason:
                row.update(status="skipped", skip_reason=reason)
                rows.append(row)
                continue
            if X_va is None:
                X_va = correct(signal, X_base[val_idx], y_va, g_va)
            X_tr = correct(signal, X_base[idx], y_tr, g_tr)
            start = time.perf_counter()
            model = estimator.fit(X_tr, y_tr, groups=None if study_groups is None else g_tr)
            row["fit_seconds"] = time.perf_counter() - start
            row.update(score(model, X_va, y_va))
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


def evaluate(tasks: list[Task], settings: Settings, progress: bool = True) -> pd.DataFrame:
    """Run the whole grid for every task in this process; return the results table."""
    from tqdm.auto import tqdm

    for task in tasks:
        check_task(task, settings)
    work = [(task, unit) for task in tasks for unit in units(settings)]
    rows: list[dict] = []
    with tqdm(total=len(work), desc="linsig run", unit="unit", disable=not progress) as bar:
        for task, unit in work:
            bar.set_postfix_str(f"{task.name} {unit.model} seed={unit.seed} fold={unit.fold}", refresh=False)
            rows.extend(run_unit(task, unit, settings))
            bar.update()
    return results_frame(rows)
