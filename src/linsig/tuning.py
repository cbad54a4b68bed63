"""Learning rate and weight decay chosen by nested, group-aware cross-validation.

Inside each outer training fold, the training samples are split again into inner group-wise
folds; every candidate (lr, weight decay) is fitted on all but one inner fold and scored on the
held-out one by its class-weighted loss; the candidate with the lowest mean loss wins and is
reused for every training-set size of that outer fold (as in the paper's code).

Presets:

* ``paper`` — 25 random trials, lr and weight decay each log-uniform in [1e-6, 10], 4 inner folds
  (the paper used Optuna's default TPE sampler; plain random search over the same space is what
  we do, so results match in distribution, not trial by trial);
* ``fast`` — a 3 × 2 grid (lr 1e-4, 1e-3, 1e-2; weight decay 1e-6, 1e-3) over 3 inner folds, for
  laptops;
* ``off`` — no tuning: each model's default lr and no weight decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from linsig import splits
from linsig.data.missing import impute_fold
from linsig.errors import LinsigInputError


@dataclass(frozen=True)
class TuningPreset:
    name: str
    search: str  # "random", "grid" or "off"
    n_trials: int = 0
    low: float = 1e-6
    high: float = 10.0
    lr_grid: tuple[float, ...] = ()
    weight_decay_grid: tuple[float, ...] = ()
    inner_folds: int = 4


PRESETS = {
    "paper": TuningPreset("paper", "random", n_trials=25, low=1e-6, high=10.0, inner_folds=4),
    "fast": TuningPreset("fast", "grid", lr_grid=(1e-4, 1e-3, 1e-2), weight_decay_grid=(1e-6, 1e-3), inner_folds=3),
    "off": TuningPreset("off", "off"),
}


@dataclass
class TuningResult:
    lr: float | None
    weight_decay: float
    score: float = math.nan
    trials: list[dict] = field(default_factory=list)


def get_preset(name: str) -> TuningPreset:
    if name not in PRESETS:
        raise LinsigInputError(f"unknown tuning preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def candidates(preset: TuningPreset, seed: int) -> list[dict]:
    """The (lr, weight_decay) pairs a preset tries, deterministic for a seed."""
    if preset.search == "grid":
        return [{"lr": lr, "weight_decay": wd} for lr in preset.lr_grid for wd in preset.weight_decay_grid]
    if preset.search == "random":
        rng = np.random.default_rng([seed, 104729])
        lo, hi = math.log(preset.low), math.log(preset.high)
        draws = np.exp(rng.uniform(lo, hi, size=(preset.n_trials, 2)))
        return [{"lr": float(a), "weight_decay": float(b)} for a, b in draws]
    return []


def tune(estimator, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, preset: str | TuningPreset,
         seed: int = 0, split: str = "study") -> TuningResult:
    """Choose ``lr`` and ``weight_decay`` for ``estimator`` by inner cross-validation on (X, y).

    Returns the estimator's defaults (``lr=None``) when the preset is ``off`` or the training
    data are too small for inner folds.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    default = TuningResult(lr=estimator.get_params().get("lr"), weight_decay=estimator.get_params().get("weight_decay", 0.0))
    if preset.search == "off":
        return default
    n_groups = len(y) if groups is None or split == "sample" else np.unique(groups).size
    n_inner = min(preset.inner_folds, n_groups)
    if n_inner < 2 or np.unique(y).size < 2:
        return default
    try:
        folds = splits.kfold(y, groups if split == "study" else None, n_inner, split, seed)
    except LinsigInputError:
        return default
    best = TuningResult(lr=None, weight_decay=0.0, score=math.inf)
    trials = []
    for params in candidates(preset, seed):
        losses = []
        for inner_train, inner_val in folds:
            if np.unique(y[inner_train]).size < 2:
                continue
            model = clone(estimator).set_params(**params)
            X_in, X_iv = impute_fold(X[inner_train], X[inner_val])  # NaN ← inner-training means only
            model.fit(X_in, y[inner_train], groups=None if groups is None else groups[inner_train])
            loss = model.loss_score(X_iv, y[inner_val])
            losses.append(loss if math.isfinite(loss) else math.inf)
        score = float(np.mean(losses)) if losses else math.inf
        trials.append({**params, "score": score})
        if score < best.score:
            best = TuningResult(lr=params["lr"], weight_decay=params["weight_decay"], score=score)
    if not math.isfinite(best.score):
        default.trials = trials
        return default
    best.trials = trials
    return best
