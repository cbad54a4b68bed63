"""Results tables under a known null, built with linsig's real fold structure and cheap models.

Used by tests/test_stats.py (calibration of the verdict's tests) and benchmarks/bench_calibration.py.
Every replicate is a fresh dataset from one population, cross-validated exactly as linsig does
(``splits.kfold`` study-wise folds over seeds, ``splits.subsample`` training sizes) and scored
with balanced accuracy; replicates become datasets ``rep000``, ``rep001``, … of one table. The
labels and groups are the same in every replicate (only the expression values are redrawn), so
the folds are computed once.

Scenarios (the models keep linsig's names so that the verdict code treats them as it would):

* ``copies`` — question (a) with no difference: ``logreg`` and ``mlp3`` are two copies of one
  stochastic model (nearest centroid on a random half of the features) that differ only in
  their seed; data with linear signal on every feature.
* ``halves`` — question (a), a harder null: ``logreg`` uses the first half of the features,
  ``mlp3`` the second; both halves carry the same signal, so the models are equally good in the
  population while one dataset can favour either (a data-set-level effect that every fold and
  seed shares: what the plain t-test ignores).
* ``noise`` — question (b): pure noise, linear signal removed fold-wise as ``linsig run`` does
  (:func:`linsig.signal.remove_linear_signal`), ``logreg`` = nearest centroid, ``mlp3`` = a
  quadratic (class-variance) Gaussian classifier; nothing can be above chance.

``plant`` adds a known difference to ``mlp3``'s balanced accuracy (its power to be detected).
``permutations`` adds, per replicate, that many label permutations (``linsig.permutation``) of
the ``noise`` scenario with the ``permutation`` column set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linsig import splits
from linsig.permutation import permuted_labels
from linsig.signal import remove_linear_signal

SCENARIOS = ("copies", "halves", "noise")


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return 0.5 * (np.mean(pred[y == 0] == 0) + np.mean(pred[y == 1] == 1))


def _centroid(X_tr, y_tr, X_va) -> np.ndarray:
    m0, m1 = X_tr[y_tr == 0].mean(0), X_tr[y_tr == 1].mean(0)
    return (X_va @ (m1 - m0) > 0.5 * (m1 @ m1 - m0 @ m0)).astype(int)


def _quadratic(X_tr, y_tr, X_va) -> np.ndarray:
    ll = []
    for c in (0, 1):
        Z = X_tr[y_tr == c]
        mean, var = Z.mean(0), Z.var(0) + 1e-6
        ll.append(-0.5 * (((X_va - mean) ** 2) / var + np.log(var)).sum(1))
    return (ll[1] > ll[0]).astype(int)


def design(n: int, n_groups: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels and groups holding both classes (round-robin, as ``linsig simulate``)."""
    y = np.random.default_rng([seed, 1]).permutation(np.arange(n) % 2)
    groups = np.empty(n, dtype=np.int64)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        groups[idx] = np.arange(idx.size) % n_groups
    return y, groups


def null_tables(scenario: str, replicates: int, n: int = 2000, p: int = 40, n_groups: int | None = None,
                seeds: int = 3, folds: int = 5, fractions=(0.5, 1.0), shift: float = 0.25,
                plant: float = 0.0, permutations: int = 0, seed: int = 0) -> pd.DataFrame:
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}")
    n_groups = n_groups or n // 10
    y0, groups = design(n, n_groups, seed)
    labelings = [(0, y0)] + [(i, permuted_labels(y0, groups, i)) for i in range(1, permutations + 1)]
    plans = {}
    for perm, y in labelings:
        plans[perm] = [(s, f, va, sub) for s in range(seeds)
                       for f, (tr, va) in enumerate(splits.kfold(y, groups, folds, "study", s))
                       for sub in [splits.subsample(tr, fractions, s, f)]]
    rows = []
    for r in range(replicates):
        rng = np.random.default_rng([seed, 2, r])
        X = rng.standard_normal((n, p))
        if scenario != "noise":
            X[y0 == 1] += shift
        for perm, y in labelings:
            for s, f, va, sub in plans[perm]:
                if scenario == "copies":
                    subsets = [np.random.default_rng([seed, 3, r, s, c]).permutation(p)[: p // 2] for c in (0, 1)]
                elif scenario == "halves":
                    subsets = [np.arange(p // 2), np.arange(p // 2, p)]
                X_va = X[va]
                if scenario == "noise":
                    X_va = remove_linear_signal(X_va, y[va])
                for fraction, idx in sub.items():
                    if scenario == "noise":
                        X_tr = remove_linear_signal(X[idx], y[idx])
                        scores = {"logreg": _balanced_accuracy(y[va], _centroid(X_tr, y[idx], X_va)),
                                  "mlp3": _balanced_accuracy(y[va], _quadratic(X_tr, y[idx], X_va))}
                    else:
                        scores = {model: _balanced_accuracy(y[va], _centroid(X[idx][:, cols], y[idx], X_va[:, cols]))
                                  for model, cols in zip(("logreg", "mlp3"), subsets)}
                    for model, ba in scores.items():
                        rows.append((f"rep{r:03d}", model, s, f, fraction, len(idx), len(va), perm,
                                     ba + (plant if model == "mlp3" else 0.0)))
    df = pd.DataFrame(rows, columns=["dataset", "model", "seed", "fold", "train_fraction", "n_train", "n_val",
                                     "permutation", "balanced_accuracy"])
    df = df.assign(task="label", split="study", signal="removed" if scenario == "noise" else "none",
                   pretraining="none", n_classes=2, chance_balanced_accuracy=0.5, status="ok")
    if not permutations:
        df = df.drop(columns="permutation")
    return df


def claim_rates(df: pd.DataFrame, question: str, corrected: bool = True) -> tuple[float, float]:
    """Over the replicates of ``df``: (share of the claim the verdict makes — "beats" for question
    ``a``, "non-linear signal present" for ``b`` — , share of any claim: either direction in (a),
    any model above chance in (b)). ``corrected=False``: linsig 0.1's plain t-test."""
    from linsig import stats

    if question == "a":
        groups = stats.compare_models(df, corrected=corrected)["groups"]
        return (float(np.mean([g["verdict"] == stats.BEAT for g in groups])),
                float(np.mean([g["verdict"] != stats.TIE for g in groups])))
    groups = stats.nonlinear_signal_test(df, corrected=corrected)["groups"]
    return (float(np.mean([g["verdict"] == stats.SIGNAL for g in groups])),
            float(np.mean([m["above_chance"] for g in groups for m in g["models"]])))


def planted(df: pd.DataFrame, difference: float) -> pd.DataFrame:
    """``df`` with ``difference`` added to the non-linear model's (``mlp3``) balanced accuracy."""
    return df.assign(balanced_accuracy=df["balanced_accuracy"] + np.where(df["model"] == "mlp3", difference, 0.0))
