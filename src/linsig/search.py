"""How a search scores its candidates: the two objectives, the paper's search spaces, path smoothing.

These are the mechanics; a recipe (:mod:`linsig.recipes`) decides which of them it uses, and
:func:`linsig.tuning.tune` runs the search. See :mod:`linsig.tuning` for the protocol.

* :func:`by_pooled_balanced_accuracy` — the strong recipe's objective: balanced accuracy of every
  candidate's *pooled* inner out-of-fold predictions, smoothed along a model's path (the
  networks' epochs); a best candidate that beats the model's own parameters by no more than
  ``within_se`` paired standard errors does not replace them (issue 25, item 6), other ties go to
  the middle of the tied candidates (the centre of a plateau), and along a path the longest
  training length within ``PATH_TOLERANCE`` of the best is taken. Models whose candidates are
  runs of their own (the networks) are raced: a run that clearly trails after an inner fold is not
  run on the later ones (``race_within_se``, issue 25, lever 2), a run on a later fold stops where
  the earlier folds' runs of that candidate stopped, and a first candidate perfect on every
  inner fold wins without the others being run (the ceiling).
* :func:`by_mean_loss` — the paper's objective: the mean class-weighted loss over inner folds.
* :data:`PRESETS` / :func:`candidates` — the paper recipe's (lr, weight decay) searches.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from linsig.data.missing import impute_fold
from linsig.errors import LinsigInputError
from linsig.metrics import balanced_accuracy

# Scores along a model's path axis (the networks' epochs) are averaged over a centred window of
# this many points before the winner is picked: on ALL sex the raw per-epoch maximum chose
# spikes (mlp3 outer balanced accuracy 0.873) where the smoothed curve chose the plateau (0.897).
PATH_WINDOW = 9
# Along a smoothed path the longest training length within this much balanced accuracy of the
# best is taken: the outer fit sees half as many samples again as the inner ones, and on a noisy
# plateau the maximum fell early (ALL sex, mlp5: chosen at 28–37 of 100 epochs).
PATH_TOLERANCE = 0.01
# How many standard errors of the paired difference a candidate must beat the model's own
# parameters by to replace them (the one-standard-error rule, anchored at the default rather than
# at the simplest candidate: the simplest is the strongest penalty, the near-constant model this
# rule exists to avoid). Measured on the bundled ovarian and bladder sets (3 and 5 studies,
# docs/performance.md): with one SE knn on ovarian rose from 0.609 to 0.661 and no mean fell by
# more than one held-out sample, except knn after linear removal on bladder (one study 0.790 →
# 0.629); with two SEs svm on ovarian fell from 0.662 to 0.611 (C = 1e-5 there is real).
DEFAULT_WITHIN_SE = 1.0
# Racing (issue 25, lever 2): after each inner fold but the last, a candidate run that trails the
# leading one by more than this many paired standard errors of their pooled balanced accuracy so
# far is not run on the remaining folds (models whose candidates are runs of their own:
# ``Tunable.separate_runs``). Replayed on 36 recorded network searches (docs/performance.md,
# "Racing the networks' search"): three kept every winner and cost 1.3 % more than two, which
# changed one choice among runs at chance; one changed two real choices.
RACE_WITHIN_SE = 3.0
# ... and by more than this much balanced accuracy, whatever the standard error: two runs whose
# best epochs are both perfect on the samples so far have a paired error of 0, while smoothing
# along their curves can still put them apart by a little
RACE_MIN_GAP = 0.02


@dataclass(frozen=True)
class TuningPreset:
    """The paper recipe's search: lr and weight decay, random or on a grid."""

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
    params: dict = field(default_factory=dict)  # the winner ({}: the estimator's own parameters)
    score: float = math.nan  # balanced accuracy (strong) or mean loss (paper) of the winner
    trials: list[dict] = field(default_factory=list)
    tuned: bool = False  # False when the search was off or the data too small for inner folds
    #: candidates not run on every inner fold: raced out after the fold where they trailed clearly,
    #: or never run because the first candidate was perfect on every fold (the ceiling)
    dropped: list[dict] = field(default_factory=list)


def get_preset(name: str) -> TuningPreset:
    if name not in PRESETS:
        raise LinsigInputError(f"unknown tuning preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def candidates(preset: TuningPreset, seed: int) -> list[dict]:
    """The (lr, weight_decay) pairs a paper preset tries, deterministic for a seed."""
    if preset.search == "grid":
        return [{"lr": lr, "weight_decay": wd} for lr in preset.lr_grid for wd in preset.weight_decay_grid]
    if preset.search == "random":
        rng = np.random.default_rng([seed, 104729])
        lo, hi = math.log(preset.low), math.log(preset.high)
        draws = np.exp(rng.uniform(lo, hi, size=(preset.n_trials, 2)))
        return [{"lr": float(a), "weight_decay": float(b)} for a, b in draws]
    return []


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def by_mean_loss(estimator, X, y, groups, plan, folds) -> TuningResult | None:
    """The paper's objective: the mean class-weighted loss over inner folds, lowest wins."""
    best = TuningResult(score=math.inf, tuned=True)
    trials = []
    for params in plan:
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
            best = TuningResult(params=dict(params), score=score, tuned=True)
    best.trials = trials
    return best if math.isfinite(best.score) else None


def by_pooled_balanced_accuracy(estimator, X, y, groups, plan, folds, prepare,
                                within_se: float | None = None, race_within_se: float | None = None) -> TuningResult | None:
    """The strong objective: balanced accuracy of every candidate's pooled out-of-fold predictions.

    ``within_se``: the model's own parameters (:meth:`~linsig.models.base.Tunable.default_candidate`)
    win unless the best candidate beats them by more than this many standard errors of the paired
    difference (None: the best always wins). ``race_within_se``: for a model whose candidates are
    runs of their own (``separate_runs``), a candidate trailing the leader by more than this many
    paired standard errors after an inner fold is not run on the later folds (None: every
    candidate runs on every fold).

    For such models the first candidate of ``plan`` (the preferred one) is run first, fold by
    fold, for as long as it is perfect: balanced accuracy cannot exceed 1, so a run perfect on
    every inner fold cannot be beaten, only tied, and it wins without the others being run (the
    ceiling). Once it is not perfect on a fold, every candidate runs as described above, and the
    runs already made are reused: the choice is the one the whole search makes.
    """
    separate = getattr(estimator, "separate_runs", False)
    races = race_within_se is not None and separate
    # a run of its own needs to go no further along its path than every earlier fold's run went:
    # later points cannot be pooled (below), so a later fold asks each run only for those
    axis = getattr(estimator, "path_axis", None) if separate else None

    def outputs_on(position, pool, candidates):
        """The candidates' inner predictions on fold ``position`` (None: the fold cannot be used)."""
        inner_train, inner_val = folds[position]
        if np.unique(y[inner_train]).size < 2:
            return None
        # NaN ← inner-training means only; a caller's ``prepare`` does its own filling
        prepared = impute_fold(X[inner_train], X[inner_val]) if prepare is None else prepare(inner_train, inner_val)
        if prepared is None:
            return None
        X_tr, X_va = prepared
        g_tr = None if groups is None else groups[inner_train]
        requested = _up_to_earlier_ends(candidates, pool, axis)
        return estimator.candidate_predictions(X_tr, y[inner_train], g_tr, X_va, y[inner_val], requested)

    probed: dict[int, list] = {}  # fold → the first candidate's outputs there
    if axis is not None and len(plan) > 1:
        probe = _Pool()
        for position in range(len(folds)):
            outputs = outputs_on(position, probe, plan[:1])
            if outputs is None:
                continue
            probed[position] = outputs
            probe.add(outputs, y[folds[position][1]])
            if _best_pooled(estimator, probe) < 1.0 - 1e-12:
                break
        else:
            if probe.truth:  # perfect on every fold: the ceiling
                return _choose(estimator, plan, probe, within_se, dropped=list(plan[1:]))

    pool, active, dropped = _Pool(), list(plan), []
    for position in range(len(folds)):
        if position in probed and active[:1] == plan[:1]:
            rest = outputs_on(position, pool, active[1:]) if len(active) > 1 else []
            outputs = None if rest is None else probed[position] + rest
        else:
            outputs = outputs_on(position, pool, active)
        if outputs is None:
            continue
        pool.add(outputs, y[folds[position][1]])
        if races and len(active) > 1 and position < len(folds) - 1:
            kept = _race(estimator, active, pool, race_within_se)
            dropped += [params for params in active if params not in kept]
            active = kept
    return _choose(estimator, plan, pool, within_se, dropped)


@dataclass
class _Pool:
    """Inner predictions pooled over the folds so far: per candidate (by key), one array a fold."""

    truth: list = field(default_factory=list)  # each fold's labels
    predictions: dict = field(default_factory=dict)
    order: list = field(default_factory=list)  # (key, params) in the order the first fold produced them

    def add(self, outputs, y_va) -> None:
        for params, pred in outputs:
            key = _key(params)
            if key not in self.predictions:
                if self.truth:  # a candidate the earlier folds did not produce cannot be pooled
                    continue
                self.predictions[key] = []
                self.order.append((key, params))
            self.predictions[key].append(np.asarray(pred))
        self.truth.append(y_va)


def _best_pooled(estimator, pool: _Pool) -> float:
    smoothed = _pooled_scores(estimator, pool)[4]
    return float(np.nanmax(smoothed)) if len(smoothed) and np.isfinite(smoothed).any() else -math.inf


def _choose(estimator, plan, pool: _Pool, within_se, dropped) -> TuningResult | None:
    """The final choice among the candidates every fold of ``pool`` produced."""
    if not pool.truth:
        return None
    y_pooled, complete, pooled, trials, smoothed, axis = _pooled_scores(estimator, pool)
    if not trials or not np.isfinite(smoothed).any():
        return None
    # Ties (a plateau of equally good candidates, common on separable data) go to the middle of
    # the plateau in declared order: its strongly regularised end, reused on a training subset
    # ten times smaller, left the linear SVM predicting one class (C = 1e-5 on 16 samples).
    tied = np.flatnonzero(smoothed >= np.nanmax(smoothed) - 1e-12)
    winner = int(tied[(len(tied) - 1) // 2])
    if within_se is not None and axis is None:
        winner = _default_unless_beaten(estimator, plan, complete, pooled, y_pooled, smoothed, winner, within_se)
    if axis is not None:
        winner = _longest_near_best(trials, smoothed, winner, axis, PATH_TOLERANCE)
    return TuningResult(params={k: v for k, v in trials[winner].items() if k != "score"},
                        score=float(smoothed[winner]), trials=trials, tuned=True, dropped=dropped)


def _up_to_earlier_ends(active: list[dict], pool: _Pool, axis: str | None) -> list[dict]:
    """``active``, each candidate with the furthest point along ``axis`` that every earlier fold produced.

    A candidate carrying a value on its path axis asks its run to stop there
    (:meth:`~linsig.models.base.Tunable.candidate_predictions`); the points it would produce
    beyond it were never produced on an earlier fold, so they could not be pooled and would not
    be scored. The points it does produce are those of the whole run: the same choice, less work.
    """
    if axis is None or not pool.truth:
        return active
    ends: dict[str, object] = {}
    for key, params in pool.order:
        if len(pool.predictions[key]) == len(pool.truth) and axis in params:
            path = _path_key(params, axis)
            ends[path] = params[axis] if path not in ends else max(ends[path], params[axis])
    return [{**params, axis: ends[_key(params)]} if _key(params) in ends else params for params in active]


def _pooled_scores(estimator, pool: _Pool):
    """Every candidate scored on the predictions of all inner folds so far, pooled.

    Returns ``(y_pooled, complete, pooled, trials, smoothed, axis)``: the pooled labels, the
    ``(key, params)`` of the candidates every fold produced, their pooled predictions, their
    trials (params and balanced accuracy), the scores smoothed along the model's path axis, and
    that axis (None where the model does not smooth a path).
    """
    y_pooled = np.concatenate(pool.truth)
    complete = [(key, params) for key, params in pool.order if len(pool.predictions[key]) == len(pool.truth)]
    pooled = [np.concatenate(pool.predictions[key]) for key, _ in complete]
    trials = [{**params, "score": float(balanced_accuracy(y_pooled, pred))} for (_, params), pred in zip(complete, pooled)]
    axis = estimator.path_axis if getattr(estimator, "smooth_path", False) else None
    return y_pooled, complete, pooled, trials, np.asarray(_smooth_along(trials, axis, PATH_WINDOW)), axis


def _race(estimator, active: list[dict], pool: _Pool, within_se: float) -> list[dict]:
    """The candidates of ``active`` worth running on the next inner fold.

    Each candidate (a path: one network run, scored after every epoch) is represented by its best
    point on the pooled predictions so far, smoothed along the path as the final choice is. The
    leader's best is an optimistic maximum, and a fold is a third of the samples: the margin is
    in paired standard errors, so a candidate is dropped only where the gap is well outside what
    those samples can tell apart, and runs that are close all go on to the next fold.
    """
    y_pooled, _, pooled, trials, smoothed, axis = _pooled_scores(estimator, pool)
    if not trials:
        return active
    best: dict[str, int] = {}  # a candidate's key → the index of its best point
    for i, trial in enumerate(trials):
        path = _path_key(trial, axis)  # without a path axis: the candidate's own parameters
        if path not in best or smoothed[i] > smoothed[best[path]]:
            best[path] = i
    leader = max(best.values(), key=lambda i: smoothed[i])
    kept = []
    for params in active:
        mine = best.get(_key(params))
        if mine is None:  # nothing scored on every fold so far: not judged
            kept.append(params)
            continue
        margin = max(within_se * paired_standard_error(y_pooled, pooled[leader], pooled[mine]), RACE_MIN_GAP)
        if smoothed[leader] - smoothed[mine] <= margin + 1e-12:
            kept.append(params)
    return kept


def _default_unless_beaten(estimator, plan, complete, pooled, y_pooled, scores, best: int, within_se: float) -> int:
    """The trial of the model's own parameters, unless ``best`` beats it by more than ``within_se`` paired SEs.

    On few studies every candidate's pooled score is near chance and the maximum is whichever
    candidate the noise favoured, often an end of the grid (ovarian, 2 inner studies: knn k = 3
    at 0.692 against the default k = 5 at 0.663, held-out 0.537 against 0.621). The noise is the
    paired one because every candidate is scored on the same pooled samples: what they share
    (which samples are hard) cancels, and only the samples where their predictions differ count.
    An unpaired binomial error (≈ 0.04 per score on those sets) would call nearly every
    difference noise, also where a candidate is really better (ovarian svm C = 1e-5: held-out
    0.671 against 0.542 for the default).
    """
    own = getattr(estimator, "default_candidate", lambda plan: None)(plan)
    if own is None:
        return best
    keys = [key for key, _ in complete]
    if _key(own) not in keys:
        return best
    default = keys.index(_key(own))
    if default == best:
        return best
    margin = within_se * paired_standard_error(y_pooled, pooled[best], pooled[default])
    return default if scores[best] - scores[default] <= margin + 1e-12 else best


def paired_standard_error(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of ``balanced_accuracy(y, a) − balanced_accuracy(y, b)`` on the same samples.

    The difference is the mean over classes of the mean per-sample difference in correctness
    (1, 0 or −1) within each class; its variance the per-class sample variances over the class
    sizes, summed and divided by the number of classes squared.
    """
    y, a, b = np.asarray(y), np.asarray(a), np.asarray(b)
    classes = np.unique(y)
    var = 0.0
    for c in classes:
        members = y == c
        d = (a[members] == y[members]).astype(float) - (b[members] == y[members]).astype(float)
        if d.size > 1:
            var += d.var(ddof=1) / d.size
    return float(np.sqrt(var) / classes.size)


def _longest_near_best(trials: list[dict], scores: np.ndarray, best: int, axis: str, tolerance: float) -> int:
    """On the winner's path, the furthest point scoring within ``tolerance`` of the winner."""
    winner = _path_key(trials[best], axis)
    path = [i for i, t in enumerate(trials) if _path_key(t, axis) == winner]
    near = [i for i in path if scores[i] >= scores[best] - tolerance]
    return max(near, key=lambda i: trials[i][axis])


def _path_key(trial: dict, axis: str | None) -> str:
    """The path a trial lies on: its parameters other than ``axis`` (and its score); with no axis, all of them."""
    return _key({k: v for k, v in trial.items() if k not in (axis, "score")})


def _smooth_along(trials: list[dict], axis: str | None, window: int) -> list[float]:
    """Each trial's score averaged with its neighbours along ``axis`` (same other parameters)."""
    scores = [t["score"] for t in trials]
    if axis is None or window <= 1:
        return scores
    paths: dict[str, list[int]] = {}
    for i, t in enumerate(trials):
        if axis in t:
            paths.setdefault(_path_key(t, axis), []).append(i)
    out = list(scores)
    half = window // 2
    for members in paths.values():
        members.sort(key=lambda i: trials[i][axis])
        values = np.array([scores[i] for i in members])
        for pos, i in enumerate(members):
            out[i] = float(values[max(0, pos - half): pos + half + 1].mean())
    return out
