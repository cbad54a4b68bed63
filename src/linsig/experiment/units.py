"""Units of work: an experiment expanded into hashed (dataset, task, split, settings, model, seed, fold).

With ``settings.permutations = N`` the grid also holds, per task and split, N label permutations
× seeds × folds × models units: the same pipeline with linear signal removed on labels permuted
within groups (:mod:`linsig.permutation`), whose rows carry ``permutation = i``.

A unit is one :func:`linsig.evaluation.run_unit` call (or one pretraining repetition). Its key is
the SHA-256 of the canonical JSON of its full specification — dataset source with the SHA-256 of
its files (cached: :mod:`linsig.data.identity`), task, settings, model, seed, fold and the linsig version — so that a finished unit is
found again on a re-run and anything that changes its result gives it a new key.

:func:`compute_unit` is what a worker runs: it loads (and caches, per process) the dataset and
its tasks, computes the rows and never raises: a failure comes back as a payload with the error.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
import traceback
from dataclasses import dataclass
from functools import cached_property

from linsig import __version__
from linsig.errors import LinsigInputError
from linsig.evaluation import Settings, Unit, check_task, run_unit
from linsig.experiment.spec import Experiment
from linsig.permutation import permutation_settings, permuted_task, tag
from linsig.tasks import PRESETS as TASK_PRESETS
from linsig.system import set_threads


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def digest(obj) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def grid_settings(settings: Settings) -> dict:
    """The settings that shape one unit's result (models and seeds are the unit's own)."""
    return {k: v for k, v in settings.to_dict().items() if k not in ("models", "seeds")}


@dataclass(frozen=True)
class WorkUnit:
    dataset_key: str  # NAME of [data.NAME]
    dataset: dict  # canonical source (path + fingerprint, or simulation parameters)
    task: dict  # canonical task spec, as runner.build_tasks takes it
    task_index: int  # which of the tasks that spec builds
    settings: Settings
    model: str
    seed: int
    fold: int
    pretraining: dict | None = None
    permutation: int = 0  # 0: the real labels; i ≥ 1: label permutation i

    def spec(self) -> dict:
        spec = {
            "linsig_version": __version__, "kind": "pretraining" if self.pretraining else "cv",
            "dataset": self.dataset, "task": self.task, "task_index": self.task_index,
            "settings": grid_settings(self.settings), "model": self.model, "seed": self.seed, "fold": self.fold,
            "pretraining": self.pretraining,
        }
        if self.permutation:  # only then: the keys of real-label units stay what they were
            spec["permutation"] = self.permutation
        spec.update(self.settings.training.unit_key())  # a change to how a recipe trains recomputes its units
        return spec

    @cached_property
    def key(self) -> str:
        return digest(self.spec())

    @property
    def device(self) -> str:
        return self.settings.device

    def __call__(self, threads: int | None = None) -> dict:
        """The executors' job protocol (:mod:`linsig.executors`): compute this unit."""
        return compute_unit(self, threads)

    def describe(self) -> str:
        task = self.task.get("preset") or self.task.get("label")
        where = f"repetition={self.seed}" if self.pretraining else f"seed={self.seed} fold={self.fold}"
        if self.permutation:
            where += f" permutation={self.permutation}"
        return (f"{self.dataset_key} {task}#{self.task_index} {self.settings.split} {self.model} {where}")


def n_tasks(task: dict) -> int:
    """How many tasks ``runner.build_tasks`` makes from a task spec (known without the data)."""
    if "preset" in task:
        pairs_of = TASK_PRESETS[task["preset"]].pairs_of
        return math.comb(len(pairs_of), 2) if pairs_of else 1
    if task.get("pairwise_top"):
        return math.comb(len(task["classes"]) if task.get("classes") else task["pairwise_top"], 2)
    return 1


def expand(experiment: Experiment) -> list[WorkUnit]:
    """Every unit of an experiment, grouped by dataset and task (so workers reuse loaded data)."""
    out = []
    for ds in experiment.datasets:
        for task in ds.tasks:
            for index in range(n_tasks(task)):
                for settings in experiment.settings:
                    for seed in settings.seeds:
                        folds = [0] if experiment.pretraining else range(settings.n_folds)
                        for fold in folds:
                            for model in settings.models:
                                out.append(WorkUnit(ds.key, ds.source, task, index, settings, model, seed, fold,
                                                    experiment.pretraining))
                    permuted = permutation_settings(settings)
                    for permutation in range(1, experiment.permutations + 1):
                        for seed in settings.seeds:
                            for fold in range(settings.n_folds):
                                for model in settings.models:
                                    out.append(WorkUnit(ds.key, ds.source, task, index, permuted, model, seed,
                                                        fold, None, permutation))
    keys = [u.key for u in out]
    if len(set(keys)) != len(keys):
        raise LinsigInputError(f"{experiment.origin}: two datasets or tasks describe the same work; remove the duplicate")
    return out


def tuning_plan(settings: Settings, model: str) -> tuple[int, int, int]:
    """``(candidates, inner folds, searches)`` of one unit's tuning (:meth:`linsig.recipes.Recipe.search_cost`)."""
    from linsig.models import make_model

    recipe = settings.training
    estimator = make_model(model, recipe)  # no device: a dry run may plan GPU work on a CPU host
    return recipe.search_cost(estimator, settings.tuning, len(settings.signals))


def tuning_fits(settings: Settings, model: str) -> int:
    candidates_, folds, searches = tuning_plan(settings, model)
    return candidates_ * folds * searches


def reference_fits(settings: Settings, model: str) -> int:
    """Fits of the converged ``logreg`` a unit adds when its recipe checks under-training."""
    from linsig.recipes import STRONG_INNER_FOLDS

    if not settings.training.checks_undertraining(model, settings.models):
        return 0
    return len(settings.signals) * (len(settings.fractions) + STRONG_INNER_FOLDS)


def trainings(unit: WorkUnit) -> int:
    """Model fits of one unit (upper bound: skipped fractions and tiny tuning sets train less)."""
    s = unit.settings
    grid = len(s.fractions) * len(s.signals)
    extra = tuning_fits(s, unit.model) + reference_fits(s, unit.model)
    if unit.pretraining:  # two copies per fraction, plus one pretraining fit per signal
        return 2 * grid + len(s.signals) + extra
    return grid + extra


def unit_shapes(units, load_files: bool = True) -> list:
    """The :class:`linsig.estimate.Shape` of each unit's task (``None`` where it cannot be known).

    A simulation's shape is in its parameters; a file's is read (with ``load_files``: the dry run
    reads the data, as ``linsig run --dry-run`` does; the runner does not, and weighs those units
    at a nominal 1,000 × 5,000). A dataset that cannot be read gives ``None``.
    """
    from linsig.estimate import Shape

    shapes: dict = {}
    out = []
    for unit in units:
        key = (digest(unit.dataset), digest(unit.task), unit.task_index)
        if key not in shapes:
            source = unit.dataset
            if "simulate" in source:
                shapes[key] = Shape(int(source.get("samples", 1000)), int(source.get("features", 5000)), 2)
            elif load_files:
                try:
                    shapes[key] = Shape.of(load_tasks(source, unit.task)[unit.task_index])
                except Exception:  # missing or unreadable: the dry run says it cannot estimate it
                    shapes[key] = None
            else:
                shapes[key] = _stored_shape(source) or Shape(1000, 5000, 2)
        out.append(shapes[key])
    return out


def _stored_shape(source: dict):
    """An ``.h5ad``'s samples × genes (at most ``n_top_genes``) from its header, without loading it:
    the runner's progress weights, where a task's exact size is not worth reading the data for."""
    from linsig.estimate import Shape

    path = str(source.get("path", ""))
    if not path.endswith(".h5ad"):
        return None
    try:
        import h5py

        with h5py.File(path, "r") as fh:
            x = fh["X"]
            n, d = (x.shape if isinstance(x, h5py.Dataset) else tuple(x.attrs["shape"]))[:2]
    except Exception:  # unreadable here: the caller's nominal size
        return None
    top = source.get("n_top_genes")
    return Shape(int(n), int(min(d, top) if top else d), 2)


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------

_CACHE: dict = {"dataset": None, "adata": None, "tasks": {}}


def load_adata(source: dict):
    """The AnnData a dataset source describes (simulated deterministically in the worker)."""
    if "simulate" in source:
        from linsig.data.simulate import simulate

        from linsig.data.preprocess import preprocess

        adata = simulate(source["simulate"], n_samples=source.get("samples", 1000),
                         n_features=source.get("features", 5000), n_groups=source.get("groups"),
                         shift=source.get("shift", 6.0), class_balance=source.get("balance", 0.5),
                         seed=source.get("seed", 0))
        # The same 0–1 scaling `linsig run` applies to a simulated .h5ad, all features kept.
        return preprocess(adata, n_top_genes=None)
    from linsig.data.normalize import normalization_from_key
    from linsig.runner import prepare_dataset

    return prepare_dataset(source["path"], source.get("metadata"), source.get("orientation", "auto"),
                           n_top_genes=source.get("n_top_genes"), normalize=normalization_from_key(source),
                           group=source.get("normalize_group"),
                           missing=source.get("missing", "error"), na_values=source.get("na_values"))


def load_tasks(source: dict, task: dict) -> list:
    """The tasks of ``task`` on ``source``; cached in this process for the dataset last used."""
    from linsig.runner import build_tasks

    dkey = digest(source)
    if _CACHE["dataset"] != dkey:
        _CACHE.update(dataset=None, adata=None, tasks={})
        _CACHE["adata"] = load_adata(source)
        _CACHE["dataset"] = dkey
    tkey = digest(task)
    if tkey not in _CACHE["tasks"]:
        tasks = build_tasks(_CACHE["adata"], **task)
        if source.get("name"):
            for t in tasks:
                t.dataset = source["name"]
        _CACHE["tasks"][tkey] = tasks
    return _CACHE["tasks"][tkey]


def compute_unit(unit: WorkUnit, threads: int | None = None) -> dict:
    """Compute one unit; return ``{key, status, rows, error, traceback, task, seconds, host, pid}``."""
    set_threads(getattr(unit.settings, "threads", None) or threads)  # the pretrained copy trains outside run_unit
    start = time.time()
    payload = {"key": unit.key, "host": socket.gethostname(), "pid": os.getpid(), "started": start,
               "rows": [], "error": "", "traceback": "", "task": None}
    try:
        tasks = load_tasks(unit.dataset, unit.task)
        if unit.task_index >= len(tasks):
            raise LinsigInputError(f"{unit.dataset_key}: the task spec {unit.task} makes only {len(tasks)} task(s)")
        task = tasks[unit.task_index]
        payload["task"] = task.summary()
        if unit.pretraining:
            from linsig.experiment.pretraining import run_pretraining_unit

            rows = run_pretraining_unit(task, unit.model, unit.seed, unit.settings, unit.pretraining["proportions"])
        else:
            if unit.permutation:
                task = permuted_task(task, unit.permutation)
            check_task(task, unit.settings)
            rows = run_unit(task, Unit(unit.model, unit.seed, unit.fold), unit.settings)
            if unit.permutation:
                rows = tag(rows, unit.permutation)
        payload.update(status="done", rows=rows)
    except Exception as exc:  # recorded with the unit; the other units go on
        payload.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    payload["finished"] = time.time()
    payload["seconds"] = payload["finished"] - start
    return payload
