"""How long a grid will take: a cost model of every model family and its search, scaled by a
short calibration of this machine.

The cost of one unit (task × model × seed × fold) is what :func:`linsig.evaluation.run_unit`
does: per signal mode, the recipe's search (``Recipe.search_cost``: candidate runs × inner folds,
on the inner training parts) and one fit per training fraction, plus, where the recipe checks
under-training, the converged ``logreg``'s own search and fits. Each fit costs
``a + b · work(n, d, classes)`` seconds, where ``work`` is the family's complexity:

* ``logreg``, ``svm`` (strong): ``n · d · c`` (solver passes over the data; c = 1 for two classes,
  else the number of classes);
* networks: epochs × steps × (3 · batch · parameters + optimiser and per-step overhead), with the
  paper's layers d → d/2 → d/4 (``mlp5``: d/2, d/2, d/2, d/4), the recipe's batch size, steps and
  epoch budget, times the share of it their runs last (:data:`EFFORT`: early stopping);
* ``rbf_svm``: ``n² · d`` (the kernel); ``knn``: ``n_train · n_val · d`` (the neighbour query);
* ``gbdt``: ``(n · d)^½`` (histograms cost n · d per round, but early stopping ends runs on larger
  data sooner); ``rf``: ``trees · n · log₂ n · features per split`` (200 trees: the whole forest,
  as calibrated; :data:`EFFORT` holds the share it grows before its out-of-bag votes hold).

Per signal mode a family spends a measured share of that (:data:`EFFORT`: the networks stop
early on the data as given, solvers work harder after linear signal removal).

The constants ``a`` (per fit) and ``b`` (per unit of work) of each family, recipe and tuning
level are *calibrated*: real fits and real searches of the estimator the run would train, on
synthetic data of two sizes, with the run's thread count (networks for one epoch: their work is
linear in the epochs). They are cached in ``<cache dir>/estimate/calibration.json``
(``$LINSIG_CACHE_DIR``, default ``~/.cache/linsig``), keyed by a fingerprint of the machine (CPU
model, torch version, threads, device) and of the cost model, so a second dry run is instant.

Wall time with ``--jobs J`` (or J Dask workers) is the schedule of the units, in the order they
are submitted, on min(J, cores) workers (:func:`wall_seconds`).

Measured accuracy: ``benchmarks/bench_estimate.py`` and ``docs/performance.md``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from linsig.models import TorchClassifier, get_family, make_model
from linsig.recipes import STRONG_INNER_FOLDS, get_recipe

#: Bumped whenever the cost formulas change: calibrations of an older model are not reused.
COST_MODEL_VERSION = 7  # 7: a network is timed on its second fit of a shape (the first builds kernels)
#: Synthetic calibration sizes (samples, genes): small enough for well under a second per fit,
#: far enough apart to separate the per-fit constant from the per-work one.
CALIBRATION_SIZES = ((96, 64), (256, 640))
#: The networks' sizes: as many samples as a real outer fold (full batches of 128) and wide enough
#: that the matrix products run near the speed they reach at expression width (calibrated at
#: 256–1,024 genes and batches of 16 the networks of 1,000 × 5,000 came out ~8× too slow).
NETWORK_SIZES = ((1024, 512), (1024, 2048))
#: Schedule length of the networks while calibrating (their work is linear in it).
CALIBRATION_EPOCHS = 1
#: Networks are costed at their whole epoch budget times this effort: runs stop early (no
#: progress for ``patience`` epochs, or five perfect epochs).
#: How much of its calibrated cost a family spends per signal mode: ``(as given, after linear
#: signal removal)``, on both its search and its fits. Measured with bench_estimate.py's data (the
#: mixed simulation, 240–400 samples): the strong networks stopped after 6–9 of 100 epochs on the
#: data as given (perfect inner scores) and after ~25–70 once the linear signal was removed (the
#: non-linear signal is learnt after a plateau); the linear SVM's solver needed ~5× the time after
#: removal (until issue 25; below), gbdt 1.8×, rf 1.25×. The forest is calibrated whole (200 trees) and stops growing once
#: its out-of-bag votes hold (issue 25, lever 4): 75–100 trees on that simulation in both modes, all
#: 200 on data whose votes keep moving; 0.6 / 0.75 keeps both ends within 2× (0.4–1.0 of the trees,
#: times 1.25 after removal). gbdt's splits on 20 % of the features (same issue) sped the
#: early-stopped units of that simulation up 1.8× (300 × 1,000: 29.0 → 16.1 s) but the calibration's
#: long run (169 rounds) only 1.2×: its factors are scaled by 0.7 (1.0, 1.8 → 0.7, 1.25).
#: The paper recipe's networks ran most of their 50 epochs. Easy
#: data as given are what most runs see first; harder data (no perfect fold) run the networks
#: longer, up to the whole budget: their figure is then low by up to ~5×.
#: mlp5 after removal: 0.3 since its batch norm's statistics are re-estimated before scoring
#: (issue 25, item 3): its inner runs now see their real scores and stop; on the issue's grid
#: (1,000 × 5,000, seed 0, fold 0, fp32, idle calibration) the search ran 0.24 and the fits 0.05
#: of their budget, where 0.7 had estimated the unit at 3.95× its measured CPU time; 0.2 since
#: its search is raced (lever 2: the same grid unit, search 0.21 of the budget before the raced
#: share, fits 0.06). The linear SVM after removal: 0.5 since it asks the primal solver first where
#: w = 0 is the optimum (the dual's 1,000 wasted passes were the 5×): on that unit 10 s after
#: removal against 21 s as given. The networks as given: 0.1 (was 0.15): their runs stopped after
#: 5–8 of 100 epochs on the issue grid's unit (search 0.053, fits 0.057 of the budget) and on the
#: whole default grid at 1,000 × 1,000 (0.07–0.08); bench_estimate's networks grid 1.44 → 0.90.
EFFORT = {"mlp3": (0.1, 0.7), "mlp5": (0.1, 0.2), "svm": (1.0, 0.5), "gbdt": (0.7, 1.25), "rf": (0.6, 0.75)}
PAPER_EFFORT = (0.9, 0.9)
#: ... but a strong network's run lasts at least this many epochs (five perfect epochs after the
#: first good one: 6–9 measured) or its whole schedule if shorter (the demo's 16 epochs).
MIN_RUN_EPOCHS = 8
#: A search's run costs this share of a fit on the same data, for the families whose search is
#: not timed: gbdt's candidates (3–31 leaves) and rf's ("sqrt" features: a third of the default
#: 10 % at 1,000 genes) are cheaper than the default fit (measured on 300 × 1,000: 0.35, 0.5).
SEARCH_RUN_SHARE = {"gbdt": 0.35, "rf": 0.5}
#: Signal modes whose data have the linear signal removed (harder to fit, see EFFORT).
REMOVAL_MODES = ("removed", "removed_full")
#: The share of an unraced search that a raced one costs after linear signal removal (issue 25,
#: lever 2: candidate runs that clearly trail after an inner fold are not run on the later folds;
#: models with ``separate_runs``, recipes with ``race_within_se``). On the data as given the
#: networks' candidates all reach perfect inner scores and none is dropped. Replayed on recorded
#: searches after removal (docs/performance.md, "Racing the networks' search"): 0.48–0.50 on the
#: issue's 1,000 × 5,000 grid, 0.58–0.73 on 800 × 3,000, 1.0 on ALL and bladder (no run dropped).
RACED_SHARE = 0.6
#: On the data as given the same models' searches end at the ceiling (issue 25, lever 2): the first
#: candidate runs alone while it is perfect on every inner fold, and wins there. The as-given
#: effort above describes runs that turn perfect within a few epochs, the regime in which that
#: happens, so such a search is costed as that one candidate's runs (``CEILING_RUNS`` of its
#: candidate runs). Measured on the issue grid's unit (1,000 × 5,000): `mlp3` 13 s instead of 50,
#: `mlp5` 33 instead of 92; on ALL sex and bladder no first run was perfect (docs/performance.md).
CEILING_RUNS = 1
#: Families whose search is costed from their calibrated fits (candidate runs × inner folds)
#: rather than timed: a timed search of theirs would cost seconds of the calibration.
FITS_FOR_SEARCH = ("mlp3", "mlp5", "gbdt", "rf")
#: Per-step cost of a network besides its matrix products (Python, optimiser bookkeeping), in
#: multiply-add equivalents: ~1 ms per step at 250–400 genes (measured, strong mlp3, 1 thread), at
#: the ~16 G multiply-adds/s of one core on wide layers.
STEP_OVERHEAD = 1.6e7
#: Seconds a spawned worker process takes to start (import torch, receive the tasks).
WORKER_START = 3.0
#: Constants used for the progress bar's weights when no calibration is cached: the strong
#: recipe's full search as calibrated on a 2-core AMD EPYC, 1 thread (only their ratios matter there).
DEFAULT_CONSTANTS = {
    "logreg": (0.005, 1e-7, 0.12, 4.7e-7), "svm": (0.001, 2e-7, 0.005, 1.2e-7),
    "mlp3": (0.0, 4.7e-11, 0.0, 4.7e-11), "mlp5": (0.017, 4.7e-11, 0.017, 4.7e-11),
    "rbf_svm": (0.015, 2.8e-10, 0.003, 5.6e-11), "knn": (0.0, 1e-9, 0.008, 1.7e-10),
    "gbdt": (0.0, 0.0043, 0.0, 0.0043), "rf": (0.79, 1.8e-8, 0.79, 1.8e-8),
}


# -- the shape of the work ---------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """What the cost model needs of a task: its samples, genes and classes."""

    n_samples: int
    n_features: int
    n_classes: int = 2

    @classmethod
    def of(cls, task) -> "Shape":
        return cls(int(task.X.shape[0]), int(task.X.shape[1]), int(task.n_classes))


def _outputs(n_classes: int) -> int:
    return 1 if n_classes <= 2 else n_classes


def _network_work(model: str, recipe, n: int, d: int, k: int, epochs: int, batch_size, n_outer: int) -> float:
    """Epochs × steps × (forward + backward + optimiser + overhead) of one network run on n samples."""
    from linsig.models.networks import hidden_sizes

    if model in ("logreg", "svm"):  # the paper recipe's linear models are one-layer networks
        sizes = ()
    else:
        sizes = hidden_sizes(model, d)
    widths = (d,) + tuple(sizes) + (max(k, 2) if model in ("mlp3", "mlp5") else _outputs(k),)
    params = sum(a * b for a, b in zip(widths, widths[1:]))
    if batch_size:  # fixed (the paper's 16): one pass over the samples per epoch
        batch = int(batch_size)
        steps = max(1, math.ceil(n / batch))
    else:  # the strong recipe's batches from the data and epochs of a fixed number of steps
        from linsig.models.strong_networks import auto_batch_size, auto_steps_per_epoch

        batch = auto_batch_size(n)
        steps = max(auto_steps_per_epoch(n_outer), math.ceil(n / batch))
    return float(epochs) * steps * (3.0 * batch * params + 4.0 * params + STEP_OVERHEAD)


def fit_work(model: str, settings, n: int, d: int, k: int, n_val: int, n_outer: int | None = None,
             epochs: int | None = None) -> float:
    """The family's complexity measure of one fit on ``n`` samples (see the module's docstring)."""
    recipe = settings.training
    n, d = max(int(n), 2), max(int(d), 1)
    c = _outputs(k)
    if issubclass(get_family(model).estimator_class(recipe.estimators), TorchClassifier):  # the paper's torch loop
        return _network_work(model, recipe, n, d, k, epochs or settings.max_epochs,
                             settings.batch_size or 16, n_outer or n)
    if model in ("mlp3", "mlp5"):
        return _network_work(model, recipe, n, d, k, epochs or settings.max_epochs,
                             settings.batch_size, n_outer or n)
    if model in ("logreg", "svm"):
        return float(n) * d * c
    if model == "rbf_svm":
        return float(n) * n * d
    if model == "knn":
        return float(n) * max(n_val, 1) * d
    if model == "gbdt":
        # histograms cost n · d per round, but early stopping ends runs on larger data sooner:
        # fits measured 3.2 s at 256 × 640 and 8.9 s at 1,000 × 5,000 (issue 25), ~ (n · d)^0.5
        return math.sqrt(float(n) * d) * c
    if model == "rf":
        return 200.0 * n * math.log2(n + 1) * max(1.0, 0.1 * d)  # the whole forest; EFFORT: the trees grown
    return float(n) * d  # a family without its own formula: linear in the data


# -- calibration -------------------------------------------------------------------------------

def fingerprint(threads: int = 1, device: str = "cpu", precision: str = "fp32") -> dict:
    """What makes timings of this machine comparable: CPU model, torch version, threads, device,
    the networks' arithmetic (bf16 steps are ~1.6× faster at 5,000 genes)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "torch": torch.__version__, "threads": int(threads), "device": device,
            "precision": precision, "cost_model": COST_MODEL_VERSION}


def cache_file() -> Path:
    from linsig.data.download import default_cache_dir

    return default_cache_dir() / "estimate" / "calibration.json"


def _cache_key(fp: dict, model: str, recipe: str, tuning: str, batch_size) -> str:
    return json.dumps({**fp, "model": model, "recipe": recipe, "tuning": tuning, "batch": batch_size},
                      sort_keys=True)


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # missing or damaged: calibrate again
        return {}


def _write_cache(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the next dry run its calibration
        pass


def _synthetic(n: int, d: int, seed: int = 0):
    """A learnable two-class problem with 12 groups: a shift on a tenth of the genes, in 0–1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.random((n, d), dtype=np.float32)
    X[:, : max(1, d // 10)] += 0.3 * y[:, None].astype(np.float32)
    X /= X.max(axis=0, keepdims=True)
    groups = np.arange(n) % 12
    return np.ascontiguousarray(X, dtype=np.float32), y, groups


def _solve(points: list[tuple[float, float]]) -> tuple[float, float]:
    """``(a, b)`` of ``t = a + b · w`` through two (work, seconds) points, both non-negative."""
    (w1, t1), (w2, t2) = points
    b = (t2 - t1) / (w2 - w1) if w2 > w1 else 0.0
    if b <= 0:  # noise swamped the difference: all of it per unit of work
        return 0.0, t2 / w2
    a = t1 - b * w1
    if a < 0:
        return 0.0, t2 / w2
    return a, b


def _calibrate_one(model: str, settings, recipe, device: str) -> tuple[float, float, float, float]:
    """Time real fits and a real search of ``model`` at two sizes: ``(a_fit, b_fit, a_run, b_run)``."""
    import torch
    from threadpoolctl import threadpool_limits

    from linsig.tuning import tune

    threads = int(getattr(settings, "threads", 1) or 1)
    level = settings.tuning
    fit_points, run_points = [], []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            network = issubclass(get_family(model).estimator_class(recipe.estimators), TorchClassifier) \
                or model in ("mlp3", "mlp5")
            timed_search = model not in FITS_FOR_SEARCH and not network
            for n, d in (NETWORK_SIZES if network else CALIBRATION_SIZES):
                X, y, g = _synthetic(n, d)
                params = dict(max_epochs=CALIBRATION_EPOCHS, batch_size=settings.batch_size, patience=settings.patience,
                              device=device, random_state=0, classes=np.arange(2), threads=threads,
                              precision=_precision(settings, device), **recipe.optimiser_params(None, recipe.default_weight_decay(None)))
                estimator = make_model(model, recipe, **params)
                if "plateau_trees" in estimator.get_params():  # the whole forest: EFFORT holds the share grown
                    estimator.set_params(plateau_trees=None)
                n_val = n // 4
                fit_w = fit_work(model, settings, n - n_val, d, 2, n_val, n, CALIBRATION_EPOCHS)
                best = math.inf
                # the faster of two: load only ever slows a fit down, and a network's first fit of a
                # shape also builds its kernels (bf16: oneDNN compiles one per shape, ~10× a step)
                for _ in range(2 if timed_search or network else 1):
                    start = time.perf_counter()
                    estimator.fit(X[n_val:], y[n_val:]).predict(X[:n_val])
                    best = min(best, time.perf_counter() - start)
                fit_points.append((fit_w, best))
                runs, folds, _ = recipe.search_cost(estimator, level, 1)
                if runs and timed_search:
                    start = time.perf_counter()
                    tune(estimator, X, y, g, level, 0, settings.splitter, recipe)
                    seconds = time.perf_counter() - start
                    n_inner = n * (folds - 1) // folds
                    run_w = fit_work(model, settings, n_inner, d, 2, n - n_inner, n, CALIBRATION_EPOCHS)
                    run_points.append((run_w, seconds / (runs * folds)))
    finally:
        torch.set_num_threads(previous)
    a_fit, b_fit = _solve(fit_points)
    a_run, b_run = _solve(run_points) if run_points else (a_fit, b_fit)
    return a_fit, b_fit, a_run, b_run


def _reference_recipe(settings):
    return get_recipe(settings.training.reference) if settings.training.reference else None


def _needed(settings) -> list[tuple[str, object, str]]:
    """``(model, recipe, tuning level)`` of every family a grid trains, the reference included."""
    recipe = settings.training
    out = [(m, recipe, settings.tuning) for m in settings.models]
    ref = _reference_recipe(settings)
    if ref is not None and any(recipe.checks_undertraining(m, settings.models) for m in settings.models):
        out.append(("logreg", ref, ref.tunings[0]))
    return out


@dataclass
class Calibration:
    """The calibrated constants ``(a_fit, b_fit, a_run, b_run)`` per (model, recipe), and how they were got."""

    constants: dict = field(default_factory=dict)
    seconds: float = 0.0  # spent calibrating now (0: all from the cache)
    cached: bool = True
    path: Path | None = None
    fingerprint: dict = field(default_factory=dict)

    def of(self, model: str, recipe_name: str) -> tuple[float, float, float, float]:
        return self.constants.get((model, recipe_name)) or DEFAULT_CONSTANTS.get(model, (0.01, 1e-8, 0.01, 1e-8))


def _device(settings) -> str:
    if getattr(settings, "device", "cpu") == "cpu":
        return "cpu"
    from linsig.training import resolve_device

    return str(resolve_device(settings.device))


def _precision(settings, device: str) -> str:
    """The networks' resolved arithmetic on this machine (``fp32`` for settings that do not say)."""
    from linsig.training import resolve_precision

    return resolve_precision(getattr(settings, "precision", None) or "fp32", device)


def calibrate(settings, use_cache: bool = True, run: bool = True, path: Path | None = None) -> Calibration:
    """The constants of every family ``settings`` trains: from the cache, else measured now (and cached).

    ``run=False``: never measure (families not in the cache get :data:`DEFAULT_CONSTANTS`, fine
    for relative weights, not for seconds).
    """
    path = path or cache_file()
    device = _device(settings)
    fp = fingerprint(getattr(settings, "threads", 1) or 1, device, _precision(settings, device))
    cache = _read_cache(path) if use_cache else {}
    out = Calibration(path=path, fingerprint=fp)
    changed = False
    start = time.perf_counter()
    for model, recipe, level in _needed(settings):
        view = settings if recipe is settings.training else _RefSettings(settings, recipe, level)
        key = _cache_key(fp, model, recipe.name, level, view.batch_size)
        if key in cache:
            out.constants[(model, recipe.name)] = tuple(cache[key])
        elif run:
            consts = _calibrate_one(model, view, recipe, device)
            out.constants[(model, recipe.name)] = consts
            cache[key] = list(consts)
            changed = True
            out.cached = False
    out.seconds = time.perf_counter() - start if changed else 0.0
    if changed:
        _write_cache(path, cache)
    return out


@dataclass(frozen=True)
class _RefSettings:
    """The run's settings with another recipe's defaults (to calibrate the reference ``logreg``)."""

    base: object
    recipe: object
    tuning: str

    @property
    def training(self):
        return self.recipe

    @property
    def max_epochs(self):
        return self.recipe.max_epochs

    @property
    def batch_size(self):
        return self.recipe.batch_size

    @property
    def patience(self):
        return self.recipe.patience

    def __getattr__(self, name):
        return getattr(self.base, name)


# -- the estimate --------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitCost:
    model: str
    search: float  # seconds
    fits: float  # seconds

    @property
    def seconds(self) -> float:
        return self.search + self.fits


def _effort(model: str, recipe, signal: str, max_epochs: int | None = None) -> float:
    paper = issubclass(get_family(model).estimator_class(recipe.estimators), TorchClassifier)
    none, removed = PAPER_EFFORT if paper else EFFORT.get(model, (1.0, 1.0))
    share = removed if signal in REMOVAL_MODES else none
    if model in ("mlp3", "mlp5") and not paper and max_epochs:  # epochs counted: at least MIN_RUN_EPOCHS
        share = min(1.0, max(share, MIN_RUN_EPOCHS / max_epochs))
    return share


def _search_and_fits(model, settings, recipe, level, shape: Shape, constants, fractions) -> tuple[float, float]:
    """Seconds of one search and of the fits of every fraction, at effort 1 (one signal mode), and the
    search's candidate runs."""
    view = settings if recipe is settings.training else _RefSettings(settings, recipe, level)
    a_fit, b_fit, a_run, b_run = constants
    folds = int(settings.n_folds)
    n, d, k = shape.n_samples, shape.n_features, shape.n_classes
    n_train = max(2, n * (folds - 1) // folds)
    n_val = max(1, n - n_train)
    estimator = make_model(model, recipe)
    runs, inner, _ = recipe.search_cost(estimator, level, 1)
    search = 0.0
    if runs:
        n_inner = max(2, n_train * (inner - 1) // inner)
        w = fit_work(model, view, n_inner, d, k, n_train - n_inner, n_train)
        search = runs * inner * (a_run + b_run * w) * SEARCH_RUN_SHARE.get(model, 1.0)
    fits = 0.0
    for fraction in fractions:
        m = max(2, int(round(fraction * n_train)))
        fits += a_fit + b_fit * fit_work(model, view, m, d, k, n_val, n_train)
    return search, fits, runs


def unit_cost(model: str, shape: Shape, settings, calibration: Calibration) -> UnitCost:
    """Estimated seconds of one unit of ``model`` on a task of ``shape`` (one process, calibrated threads)."""
    recipe = settings.training
    one_search, fits, runs = _search_and_fits(model, settings, recipe, settings.tuning, shape,
                                        calibration.of(model, recipe.name), settings.fractions)
    reference = recipe.checks_undertraining(model, settings.models)
    if reference:
        ref = _reference_recipe(settings)
        ref_search, ref_fits, _ = _search_and_fits("logreg", settings, ref, ref.tunings[0], shape,
                                                calibration.of("logreg", ref.name), settings.fractions)
    search = fit = 0.0
    separate = getattr(recipe.estimator_class(model), "separate_runs", False)
    raced = recipe.race_within_se is not None and separate
    for i, signal in enumerate(settings.signals):
        effort = _effort(model, recipe, signal, settings.max_epochs)
        if recipe.tunes_per_signal:
            if signal in REMOVAL_MODES:
                share = RACED_SHARE if raced else 1.0
            else:
                share = min(1.0, CEILING_RUNS / runs) if separate and runs else 1.0
            search += one_search * effort * share
        elif i == 0:  # one search per unit, on the data as given
            search += one_search * _effort(model, recipe, "none", settings.max_epochs)
        fit += fits * effort
        if reference:  # the converged logreg's own search and fits, per signal mode
            search += ref_search
            fit += ref_fits
    return UnitCost(model, search, fit)


def wall_seconds(costs, workers: int, start: float = 0.0) -> float:
    """Wall time of ``costs`` (seconds, in submission order) on ``workers`` processes that each take
    the next unit when free (what the process pool and the Dask runner do)."""
    workers = max(1, int(workers))
    if workers == 1:
        return float(sum(costs))
    import heapq

    free = [start] * workers
    heapq.heapify(free)
    end = 0.0
    for cost in costs:
        t = heapq.heappop(free) + cost
        end = max(end, t)
        heapq.heappush(free, t)
    return end


@dataclass
class Estimate:
    """The estimated cost of a grid: one :class:`UnitCost` per unit, in submission order."""

    units: list[UnitCost]
    calibration: Calibration
    cores: int

    @property
    def total(self) -> float:
        return sum(u.seconds for u in self.units)

    def by_model(self) -> list[tuple[str, int, float]]:
        """``(model, units, seconds)``, most expensive first."""
        out: dict[str, list] = {}
        for u in self.units:
            row = out.setdefault(u.model, [0, 0.0])
            row[0] += 1
            row[1] += u.seconds
        return sorted(((m, n, s) for m, (n, s) in out.items()), key=lambda r: -r[2])

    def wall(self, workers: int = 1) -> float:
        """Estimated wall seconds with ``workers`` processes on this machine (at most its cores run at once)."""
        effective = max(1, min(int(workers), self.cores))
        costs = [u.seconds for u in self.units]
        if effective == 1:
            return float(sum(costs))
        return wall_seconds(costs, effective, WORKER_START)

    def lines(self, jobs: int = 1, dask_workers: int | None = None, scheduler: str | None = None) -> list[str]:
        """The dry run's report: units, the models that dominate, and the wall time."""
        total = self.total
        out = [f"estimated compute: {format_seconds(total)} in one process "
               f"({'calibration cached' if self.calibration.cached else f'calibrated now in {self.calibration.seconds:.1f} s'}"
               f", {self.calibration.fingerprint.get('threads', 1)} thread(s) per training)"]
        for model, n, seconds in self.by_model():
            share = seconds / total if total else 0.0
            out.append(f"  {model:8s} {n:6d} units  {format_seconds(seconds):>10s}  {share:6.1%}")
        if scheduler:
            out.append(f"estimated wall time on the Dask cluster {scheduler}, by its number of workers "
                       f"(each as fast as this machine's cores):")
            for w in (1, 4, 16, 64):
                out.append(f"  {w:3d} worker(s): {format_seconds(wall_seconds([u.seconds for u in self.units], w))}")
        elif dask_workers:
            out.append(f"estimated wall time with --dask-local {dask_workers}: {format_seconds(self.wall(dask_workers))}"
                       + self._cores_note(dask_workers))
        else:
            out.append(f"estimated wall time with --jobs {jobs}: {format_seconds(self.wall(jobs))}"
                       + self._cores_note(jobs))
            if jobs < self.cores:
                out.append(f"  (with --jobs {self.cores}, this machine's cores: {format_seconds(self.wall(self.cores))})")
        out.append("  (within a factor of 2 of the measured time on the benchmark's grids; networks on data they "
                   "cannot separate within a few epochs run longer: docs/performance.md)")
        return out

    def _cores_note(self, workers: int) -> str:
        return f" (this machine has {self.cores} cores: only {self.cores} run at once)" if workers > self.cores else ""


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def estimate(work, settings_of=None, calibration: Calibration | None = None, calibrate_now: bool = True) -> Estimate:
    """The estimate of ``work``: ``(model, Shape, settings)`` triples in submission order.

    Units of the same model, shape and settings are costed once.
    """
    from linsig.system import available_cores

    calibrations: dict = {}
    memo: dict = {}
    out = []
    for model, shape, settings in work:
        skey = id(settings)
        if calibration is not None:
            cal = calibration
        elif skey not in calibrations:
            calibrations[skey] = calibrate(settings, run=calibrate_now)
            cal = calibrations[skey]
        else:
            cal = calibrations[skey]
        key = (model, shape, skey)
        if key not in memo:
            memo[key] = unit_cost(model, shape, settings, cal)
        out.append(memo[key])
    if calibration is None:
        calibration = _merged(list(calibrations.values()))
    return Estimate(out, calibration, available_cores())


def _merged(calibrations: list[Calibration]) -> Calibration:
    if not calibrations:
        return Calibration()
    out = Calibration(path=calibrations[0].path, fingerprint=calibrations[0].fingerprint)
    for c in calibrations:
        out.constants.update(c.constants)
        out.seconds += c.seconds
        out.cached = out.cached and c.cached
    return out


def unit_weights(work, settings, calibrate_now: bool = False) -> list[float]:
    """Relative costs of ``(model, Shape)`` pairs under ``settings``, for the progress bar.

    Uses the cached calibration when there is one and never calibrates (a run must not wait
    for it); without a cache, the built-in constants give the families' rough ratios.
    """
    try:
        est = estimate([(m, s, settings) for m, s in work], calibrate_now=calibrate_now)
        weights = [max(u.seconds, 1e-6) for u in est.units]
    except Exception:  # an estimate is never worth failing a run for: count units instead
        return [1.0] * len(work)
    return weights


def plan_lines(work, jobs: int = 1, dask_workers: int | None = None, scheduler: str | None = None) -> list[str]:
    """The dry run's estimate of ``work`` (``(model, Shape, settings)`` in submission order), as printed lines."""
    return estimate(work).lines(jobs, dask_workers, scheduler)
