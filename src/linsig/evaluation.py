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
from linsig.models import DEFAULT_MODELS, make_model
from linsig.recipes import Recipe, get_recipe
from linsig.results import result_row, results_frame
from linsig.splits import Splitter, get_splitter
from linsig.tasks import Task
from linsig.training import deterministic_kernels, resolve_device
from linsig.tuning import tune

from linsig.system import keep_freed_memory
from linsig.validation import check_settings


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
    # The networks' arithmetic: "fp32", "bf16" (bfloat16 matrix products, float32 weights) or
    # "auto" (bf16 where the hardware is fast at it, resolved on the machine that trains).
    # None: the recipe's default (fp32 for both: bit for bit as before, the same on every CPU).
    precision: str | None = None
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
        recipe = self.training
        resolved = {"tuning": recipe.resolve_tuning(self.tuning),
                    "max_epochs": self.max_epochs or recipe.max_epochs,
                    "batch_size": self.batch_size or recipe.batch_size,
                    "patience": self.patience or recipe.patience,
                    "weight_decay": recipe.default_weight_decay(self.weight_decay),
                    "precision": self.precision or recipe.precision}
        for name, value in resolved.items():
            object.__setattr__(self, name, value)

    @property
    def training(self) -> Recipe:
        """The recipe object: every decision that depends on ``recipe`` is asked of it."""
        return get_recipe(self.recipe)

    @property
    def splitter(self) -> Splitter:
        """The split strategy: every decision that depends on ``split`` is asked of it."""
        return get_splitter(self.split)

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
    settings.splitter.check(task.n_samples, task.n_groups, settings.n_folds, f"task {task.name!r}: ", task.group_key)
    splits.check_class_sizes(task.y, settings.n_folds, f"task {task.name!r} (label {task.label_key!r}): ",
                             getattr(task, "classes", None))


def _folds(task: Task, settings: Settings, seed: int):
    splitter = settings.splitter
    return task.derived(("folds", splitter.name, settings.n_folds, seed), lambda: splits.kfold(
        task.y, splitter.groups_for(task.groups), settings.n_folds, splitter, seed))


def removed_full(task: Task) -> np.ndarray:
    """The whole labelled matrix corrected at once (the paper's S1 failure mode), cached on the task."""
    from linsig.signal import remove_linear_signal

    # the deliberately leaky mode transforms the whole task at once: so does its imputation
    return task.derived("removed_full", lambda: remove_linear_signal(impute_from_rows(task.X, slice(None)), task.y))


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


def run_unit(task: Task, unit: Unit, settings: Settings, folds: list | None = None) -> list[dict]:
    """Tune, then train and score ``unit.model`` for every fraction and signal mode.

    ``folds``: the ``(train, validation)`` pairs to use instead of the settings' own splits
    (pretraining's single split); ``unit.fold`` indexes them.
    """
    import torch
    from threadpoolctl import threadpool_limits

    keep_freed_memory()  # reuse freed gradient buffers instead of faulting them in at every step
    deterministic_kernels()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with threadpool_limits(settings.threads):  # BLAS/OpenMP of scikit-learn's solvers too
            return _run_unit(task, unit, settings, folds)
    finally:
        torch.set_num_threads(previous_threads)


def make_estimator(model: str, settings: Settings, seed: int, n_classes: int, recipe: Recipe | None = None, **params):
    """The estimator a unit trains: the run's recipe (or ``recipe``), the unit's seed, the task's full label set.

    Every model takes from the run's training setup what it uses (epochs and batch size for the
    networks, threads for the tree ensembles, nothing of it for the convex solvers).
    """
    recipe = recipe or settings.training
    base = dict(max_epochs=settings.max_epochs, batch_size=settings.batch_size, patience=settings.patience,
                device=str(resolve_device(settings.device)), random_state=seed, classes=np.arange(n_classes),
                threads=settings.threads, precision=settings.precision, **recipe.optimiser_params(settings.lr, settings.weight_decay))
    return make_model(model, recipe, **{**base, **params})


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


def _tune(estimator, data: _SignalData, train_idx, splitter: Splitter, level: str, seed: int, recipe: Recipe):
    """Nested CV on the outer training fold, on what the recipe searches: ``data``'s own corrected
    folds when it tunes per signal mode, the uncorrected data (the paper's protocol) otherwise."""
    task = data.task
    groups = splitter.groups_for(task.groups[train_idx])
    start = time.perf_counter()
    if recipe.tunes_per_signal:
        result = tune(estimator, data.X[train_idx], task.y[train_idx], groups, level, seed, splitter, recipe,
                      prepare=data.inner(train_idx))
    else:
        result = tune(estimator, task.X[train_idx], task.y[train_idx], groups, level, seed, splitter, recipe)
    return result, time.perf_counter() - start


def _reference(task, unit, settings, data, train_idx, subsets, y_va):
    """Balanced accuracy of the converged ``logreg`` on the unit's splits, per fraction (lazily tuned)."""
    recipe = get_recipe(settings.training.reference)
    estimator = make_estimator("logreg", settings, unit.seed, task.n_classes, recipe=recipe)
    tuned, _ = _tune(estimator, data, train_idx, settings.splitter, recipe.tunings[0], unit.seed, recipe)
    estimator.set_params(**tuned.params)
    out = {}
    for fraction, idx in subsets.items():
        if skip_reason(data.signal, task.y[idx], y_va, task.groups[idx], task.groups[data.val_idx]):
            continue
        model = clone(estimator).fit(data.subset(idx), task.y[idx])
        out[fraction] = float(balanced_accuracy(y_va, model.predict(data.validation)))
    return out


def _run_unit(task: Task, unit: Unit, settings: Settings, folds: list | None = None) -> list[dict]:
    device = str(resolve_device(settings.device))
    train_idx, val_idx = (folds or _folds(task, settings, unit.seed))[unit.fold]
    K = task.n_classes
    recipe, splitter = settings.training, settings.splitter
    estimator = make_estimator(unit.model, settings, unit.seed, K)
    fit_groups = splitter.groups_for(task.groups)  # early stopping holds out whole groups in group-wise runs
    subsets = splits.subsample(train_idx, settings.fractions, unit.seed, unit.fold)
    y_va, g_va = task.y[val_idx], task.groups[val_idx]
    check_undertraining = recipe.checks_undertraining(unit.model, settings.models)
    unit_tuning = None  # a recipe that tunes once per unit: its search, reused by every signal mode
    rows = []
    for signal in settings.signals:
        data = _SignalData(task, signal, train_idx, val_idx)
        tuned, tune_seconds, reference, trained = None, 0.0, None, None
        for fraction, idx in subsets.items():
            y_tr, g_tr = task.y[idx], task.groups[idx]
            counts = np.bincount(y_tr, minlength=K)
            row = result_row(
                dataset=task.dataset, task=task.name, model=unit.model, seed=unit.seed, fold=unit.fold,
                split=settings.split, signal=signal, train_fraction=fraction, n_train=len(idx), n_val=len(val_idx),
                n_train_groups=int(np.unique(g_tr).size), n_val_groups=int(np.unique(g_va).size), n_classes=K,
                classes="|".join(map(str, task.classes)), chance_balanced_accuracy=chance_balanced_accuracy(y_va),
                majority_accuracy=float(np.mean(y_va == counts.argmax())), recipe=settings.recipe,
                tuning=settings.tuning, device=device)
            reason = skip_reason(signal, y_tr, y_va, g_tr, g_va)
            if reason:
                row.update(status="skipped", skip_reason=reason)
                rows.append(row)
                continue
            if tuned is None:  # tuned only when some fraction trains: a skipped mode costs nothing
                if recipe.tunes_per_signal:
                    tuned, tune_seconds = _tune(estimator, data, train_idx, splitter, settings.tuning, unit.seed, recipe)
                elif unit_tuning is None:
                    unit_tuning = _tune(estimator, data, train_idx, splitter, settings.tuning, unit.seed, recipe)
                    tuned, tune_seconds = unit_tuning
                else:  # its time is counted on the first signal mode's rows
                    tuned, tune_seconds = unit_tuning[0], 0.0
                # a fresh copy per signal mode: a mode whose search fell back to the defaults must
                # not inherit the previous mode's winner
                trained = clone(estimator).set_params(**tuned.params)
            start = time.perf_counter()
            model = trained.fit(data.subset(idx), y_tr, groups=None if fit_groups is None else g_tr)
            row["fit_seconds"] = time.perf_counter() - start
            row.update(score(model, data.validation, y_va), tuning_score=tuned.score, tune_seconds=tune_seconds)
            if check_undertraining:
                if reference is None:
                    reference = _reference(task, unit, settings, data, train_idx, subsets, y_va)
                row["reference_balanced_accuracy"] = reference.get(fraction, np.nan)
            rows.append(row)
    return rows


def evaluate(tasks: list[Task], settings: Settings, progress: bool = True, jobs: int = 1) -> pd.DataFrame:
    """Run the whole grid for every task; return the results table.

    ``jobs > 1`` computes units in that many spawned processes (each loads the tasks once). Every
    unit seeds its own generators and uses ``settings.threads`` threads, so the table is the same
    as with one process, row for row.
    """
    from linsig.estimate import Shape, unit_weights
    from linsig.progress import CostProgress

    for task in tasks:
        check_task(task, settings)
    work = [(i, unit) for i, task in enumerate(tasks) for unit in units(settings)]
    # the ETA weighs units by their estimated cost (from a cached calibration; never calibrates here)
    weights = unit_weights([(unit.model, Shape.of(tasks[i])) for i, unit in work], settings) if progress else [1.0] * len(work)
    with CostProgress(weights, desc="linsig run", disable=not progress, kinds=[unit.model for _, unit in work]) as bar:
        per_unit = run_units(tasks, work, settings, jobs, bar)
    return results_frame([row for unit_rows in per_unit for row in unit_rows])


def run_units(tasks: list[Task], work: list[tuple[int, Unit]], settings: Settings, jobs: int = 1, bar=None,
              task_label=None) -> list[list[dict]]:
    """The rows of every ``(task index, unit)`` in ``work``, in its order: here, or in ``jobs``
    spawned processes (each receives ``tasks`` once), through :mod:`linsig.executors`. In one
    process the progress bar names the unit after ``task_label(task_index)`` (default: the task's name)."""
    from linsig.executors import make_executor, run_jobs

    jobs = min(jobs, len(work)) if len(work) > 1 else 1
    executor = make_executor(jobs, context=(tasks,))

    def before(position):
        if hasattr(bar, "start"):  # a CostProgress: the unit's time corrects the estimate of the rest
            bar.start(position)
        if bar is not None and jobs == 1:
            i, unit = work[position]
            task = task_label(i) if task_label else tasks[i].name
            bar.set_postfix_str(f"{task} {unit.model} seed={unit.seed} fold={unit.fold}", refresh=False)

    def done(position, rows):
        if bar is not None:
            if hasattr(bar, "advance"):  # a CostProgress: advance by this unit's estimated cost
                bar.advance(position)
            else:
                bar.update()

    return run_jobs(executor, [GridJob(i, unit, settings) for i, unit in work], done, before)


@dataclass(frozen=True)
class GridJob:
    """An executor job: one unit of the tasks the engine was given as its context."""

    task_index: int
    unit: Unit
    settings: Settings

    @property
    def device(self) -> str:
        return self.settings.device

    def __call__(self, threads: int | None = None) -> list[dict]:
        from linsig.executors import worker_context

        (tasks,) = worker_context()
        return run_unit(tasks[self.task_index], self.unit, self.settings)
