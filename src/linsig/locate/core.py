"""Where the non-linear signal is, what form it takes, and whether it adds to the linear signal.

Everything here runs on the benchmark's own folds (:func:`linsig.evaluation._folds`) and on its
own corrected matrices (:class:`linsig.evaluation._SignalData`: missing values imputed from the
training fold, then limma's ``removeBatchEffect`` run on the training and on the validation fold,
each with its own labels). Nothing is ever corrected on the whole data (the paper's S1 figure).

Per binary task (a multiclass task is split one-vs-rest by :func:`binary_tasks`):

1. **Per-gene tests** on the held-out folds after removal, pooled over the folds of the first
   seed (every sample once), comparing the classes within each fold (:func:`gene_tests`): a
   *spread* test (Brown–Forsythe, stratified by fold) and a *shape* test (Kolmogorov–Smirnov on
   values standardised within each class and fold, so a spread difference alone does not count;
   folds combined by Fisher's method). Their Bonferroni-combined p-value gets Benjamini–Hochberg
   q-values over all genes.
2. **Model importance**: per fold a histogram GBDT (scikit-learn) is fitted on the removed
   training fold, restricted to a screen of candidate genes chosen on that training fold only
   (half by the per-gene tests, half by the largest class difference in correlation with any
   other gene, which is how genes acting only in pairs show up), and its permutation importance
   (drop of held-out AUC) is measured on the removed validation fold. The null is the same
   pipeline rerun on labels permuted within groups (:func:`linsig.permutation.permuted_labels`),
   the screen included; a gene's p-value is its importance's rank in the pooled null of every
   gene of every permutation, with BH q-values.
3. **Pairs**: among the ``n_top`` genes ranked first by the two families above (q-value
   ``min(1, 2 · min(q_tests, q_importance))``), every pair is tested: a GBDT on the two genes
   allowed to combine them against an additive one, by held-out log-loss (:func:`pair_tests`),
   with BH q-values over the pairs.
4. **One ranking**: a gene's q-value is ``min(1, 3 · min(q_tests, q_importance, q_pairs))``
   (Bonferroni over the three families; ``q_pairs`` is the q-value of the gene's best pair, 1
   outside the tested pairs), ranked by it, then by the smaller p-value, then by importance.
5. **Form**: on the same folds after removal and the same candidate genes, an additive GBDT
   (``interaction_cst="no_interactions"``: any shape per gene, no combinations) against the
   unconstrained one.
6. **Beyond linear**: on the original data, the linear model alone (the benchmark's ``logreg``,
   tuned by the benchmark's nested CV) against the linear model plus a GBDT fitted to what the
   linear one leaves (the residual ``y − p`` of its out-of-fold probability on the training
   fold), same folds, compared with the corrected repeated k-fold t-test of the verdict
   (:func:`linsig.stats.corrected_t`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from linsig import splits
from linsig.errors import LinsigInputError
from linsig.evaluation import Settings, _folds, _SignalData, check_task, make_estimator
from linsig.recipes import get_recipe
from linsig.metrics import balanced_accuracy
from linsig.models.nonlinear import bin_codes, quantile_edges
from linsig.permutation import permuted_labels
from linsig.stats import corrected_t
from linsig.tasks import Task
from linsig.tuning import tune

ALPHA = 0.05


@dataclass(frozen=True)
class LocateConfig:
    """How hard ``linsig locate`` looks. The defaults keep it within twice one benchmark run."""

    n_candidates: int = 40  # genes each fold's GBDT sees (half per-gene screen, half pair screen)
    n_top: int = 10  # top genes whose pairs are tested
    permutations: int = 19  # permuted-label reruns for the importance null
    n_repeats: int = 3  # column shuffles per gene for permutation importance
    max_iter: int = 100  # boosting rounds of every GBDT
    max_leaf_nodes: int = 7
    learning_rate: float = 0.1
    inner_folds: int = 3  # out-of-fold linear scores for "beyond linear"
    alpha: float = ALPHA

    def __post_init__(self):
        for name in ("n_candidates", "n_top", "n_repeats", "max_iter"):
            if getattr(self, name) < 1:
                raise LinsigInputError(f"locate: {name} must be at least 1, got {getattr(self, name)}")
        if self.n_top < 2:
            raise LinsigInputError(f"locate: n_top must be at least 2 (pairs), got {self.n_top}")
        if self.permutations < 1:
            raise LinsigInputError(f"locate: permutations must be at least 1, got {self.permutations}")
        if self.max_leaf_nodes < 2:
            raise LinsigInputError(f"locate: max_leaf_nodes must be at least 2, got {self.max_leaf_nodes}")
        if self.inner_folds < 2:
            raise LinsigInputError(f"locate: inner_folds must be at least 2, got {self.inner_folds}")


@dataclass
class LocateResult:
    """What :func:`locate` finds for one binary task."""

    task: str
    positive: str  # the class whose samples are ``1``
    genes: pd.DataFrame
    pairs: pd.DataFrame
    form: dict
    beyond_linear: dict
    n_genes_q05: int
    n_permutations: int
    removed: pd.DataFrame = field(repr=False, default=None)  # pooled held-out matrix after removal (top genes)
    labels: np.ndarray = field(repr=False, default=None)  # class name of each row of ``removed``

    def summary(self) -> dict:
        return {"task": self.task, "positive": self.positive, "form": self.form,
                "beyond_linear": self.beyond_linear, "n_genes_q05": self.n_genes_q05,
                "n_pairs_q05": int((self.pairs["q_value"] < ALPHA).sum()) if len(self.pairs) else 0,
                "n_permutations": self.n_permutations}


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------

def binary_tasks(task: Task) -> list[tuple[Task, str]]:
    """The binary tasks to locate: the task itself when binary, else each class against the rest.

    Returns ``(task, positive class)`` pairs; a one-vs-rest copy keeps the samples, groups and
    genes and recodes ``y`` to 1 for the class, 0 for the rest.
    """
    if task.n_classes == 2:
        return [(task, str(task.classes[1]))]
    out = []
    for code, name in enumerate(task.classes):
        y = (task.y == code).astype(np.int64)
        out.append((dataclasses.replace(task, y=y, classes=np.array([f"not {name}", str(name)]),
                                        name=f"{task.name}:{name}-vs-rest", _cache={}), str(name)))
    return out


# --------------------------------------------------------------------------------------------
# Per-gene tests
# --------------------------------------------------------------------------------------------

def _cell_codes(y: np.ndarray, cells: np.ndarray | None) -> np.ndarray:
    """One code per (cell, class): the unit whose mean the removal took out."""
    cells = np.zeros(len(y), dtype=np.int64) if cells is None else np.asarray(cells)
    return np.unique(np.stack([cells, y]), axis=1, return_inverse=True)[1].ravel()


def gene_tests(R: np.ndarray, y: np.ndarray, cells: np.ndarray | None = None) -> pd.DataFrame:
    """Spread and shape tests of every gene (column of ``R``) between classes 0 and 1 of ``y``.

    ``R`` holds data whose class means were removed within each ``cells`` value (each validation
    fold corrected on its own). Both tests compare the classes *within* each cell and combine
    the cells, so a cell (a fold: a study, in leave-one-study-out) whose platform spreads or
    shapes every gene differently cannot pass for a class difference when the classes are
    unevenly spread over the cells:

    * spread: residuals are rescaled by ``sqrt(n/(n-1))`` (removing a mean from n samples shrinks
      their variance by that factor, more in small units), and their absolute deviations from
      their (cell, class) median are regressed on the class with one intercept per cell
      (Brown–Forsythe, stratified); t-test of the class coefficient;
    * shape: residuals standardised within each (cell, class), compared between the classes by
      the two-sample Kolmogorov–Smirnov test (exact for small samples) in each cell; the cells'
      p-values combined by Fisher's method.

    Returns p_spread, p_shape, p_tests (``min(1, 2·min)``), spread_ratio (class-1 over class-0
    mean absolute deviation) and t_spread, one row per gene.
    """
    R = np.asarray(R, dtype=np.float64)
    y = np.asarray(y)
    cells = np.zeros(len(y), dtype=np.int64) if cells is None else np.asarray(cells)
    units = _cell_codes(y, cells)
    D = np.empty_like(R)
    Z = np.empty_like(R)
    for u in np.unique(units):
        rows = units == u
        n = int(rows.sum())
        block = R[rows]
        block = block - block.mean(axis=0)
        if n > 1:
            block = block * math.sqrt(n / (n - 1))
        D[rows] = np.abs(block - np.median(block, axis=0))
        sd = block.std(axis=0, ddof=0)
        Z[rows] = np.divide(block, sd, out=np.zeros_like(block), where=sd > 0)
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    if n1 < 2 or n0 < 2:
        raise LinsigInputError(f"gene tests need at least 2 samples of each class, got {n1} and {n0}")
    # spread: D ~ cell + class, by least squares after removing each cell's means
    c = (y == 1).astype(float)
    Dt, ct = D.copy(), c.copy()
    log_p, n_cells = np.zeros(R.shape[1]), 0
    for cell in np.unique(cells):
        rows = cells == cell
        Dt[rows] -= Dt[rows].mean(axis=0)
        ct[rows] -= ct[rows].mean()
        a, b = rows & (y == 1), rows & (y == 0)
        if a.sum() and b.sum():  # a cell holding both classes: its own shape comparison
            with warnings.catch_warnings():  # "exact calculation unsuccessful": large cells go asymptotic
                warnings.simplefilter("ignore", RuntimeWarning)
                p = stats.ks_2samp(Z[a], Z[b], axis=0, method="auto").pvalue
            log_p += np.log(np.clip(np.nan_to_num(np.asarray(p, dtype=float), nan=1.0), 1e-300, 1.0))
            n_cells += 1
    sxx = float(ct @ ct)
    dof = len(y) - np.unique(cells).size - 1
    if sxx > 0 and dof > 0:
        beta = ct @ Dt / sxx
        resid = Dt - np.outer(ct, beta)
        se = np.sqrt((resid**2).sum(axis=0) / dof / sxx)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, beta / se, 0.0)
        p_spread = np.clip(2 * stats.t.sf(np.abs(t), dof), 0, 1)
    else:
        t, p_spread = np.zeros(R.shape[1]), np.ones(R.shape[1])
    p_shape = stats.chi2.sf(-2 * log_p, 2 * n_cells) if n_cells else np.ones(R.shape[1])
    m1, m0 = D[y == 1].mean(axis=0), D[y == 0].mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(m0 > 0, m1 / m0, 1.0)
    p_tests = np.minimum(1.0, 2 * np.minimum(p_spread, p_shape))
    return pd.DataFrame({"p_spread": p_spread, "p_shape": p_shape, "p_tests": p_tests,
                         "spread_ratio": ratio, "t_spread": t})


def bh(p) -> np.ndarray:
    """Benjamini–Hochberg q-values (step-up, monotone, capped at 1)."""
    p = np.asarray(p, dtype=float)
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    q = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def pair_screen(R: np.ndarray, y: np.ndarray, block: int = 1024) -> np.ndarray:
    """Per gene, the largest class difference of its correlation with any other gene (Fisher z units).

    Genes that act only through a pair (the class decides the sign of their product) have the
    same distribution in each class but opposite correlations; this finds them without a model.
    Computed in blocks of genes, so memory stays at ``block × genes``.
    """
    y = np.asarray(y)
    Zs, scale = [], 0.0
    for c in (0, 1):
        Xc = np.asarray(R[y == c], dtype=np.float32)
        Xc = Xc - Xc.mean(axis=0)
        sd = Xc.std(axis=0)
        Zs.append(np.divide(Xc, sd, out=np.zeros_like(Xc), where=sd > 0) / math.sqrt(max(len(Xc), 1)))
        scale += 1.0 / max(len(Xc) - 3, 1)
    G = R.shape[1]
    best = np.zeros(G)
    for start in range(0, G, block):
        stop = min(start + block, G)
        z = [np.arctanh(np.clip(Z[:, start:stop].T @ Z, -0.999, 0.999)) for Z in Zs]
        diff = np.abs(z[1] - z[0])
        diff[np.arange(stop - start), np.arange(start, stop)] = 0.0
        best[start:stop] = diff.max(axis=1) / math.sqrt(scale)
    return best


def candidates(R: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """The genes a fold's model sees: alternately the next best by per-gene tests and by pair screen."""
    G = R.shape[1]
    if G <= n:
        return np.arange(G)
    by_tests = np.argsort(gene_tests(R, y)["p_tests"].to_numpy(), kind="stable")
    by_pairs = np.argsort(-pair_screen(R, y), kind="stable")
    chosen, seen = [], set()
    for a, b in zip(by_tests, by_pairs):
        for g in (a, b):
            if g not in seen and len(chosen) < n:
                seen.add(g)
                chosen.append(g)
        if len(chosen) >= n:
            break
    return np.sort(np.asarray(chosen))


# --------------------------------------------------------------------------------------------
# Models on the removed folds
# --------------------------------------------------------------------------------------------

class Binned(BaseEstimator):
    """A histogram GBDT fitted on quantile bin codes computed without weights.

    scikit-learn bins features at *weighted* quantiles when a fit has sample weights (here: the
    balanced class weights), one slow percentile call per threshold — 3–4 s per fit of 100
    genes, more than the boosting. Unweighted quantile codes (as ``linsig.models`` ``gbdt``
    does) give the same trees' freedom at a hundredth of the cost.
    """

    def __init__(self, estimator=None, max_bins: int = 64):
        self.estimator = estimator
        self.max_bins = max_bins

    def fit(self, X, y, sample_weight=None):
        X = np.asarray(X, dtype=np.float64)
        self.edges_ = quantile_edges(X, self.max_bins)
        self.model_ = clone(self.estimator).fit(bin_codes(X, self.edges_), y, sample_weight=sample_weight)
        return self

    def _codes(self, X):
        return bin_codes(np.asarray(X, dtype=np.float64), self.edges_)

    def decision_function(self, X):
        return self.model_.decision_function(self._codes(X))

    def predict(self, X):
        return self.model_.predict(self._codes(X))

    def predict_proba(self, X):
        return self.model_.predict_proba(self._codes(X))


def _gbdt(config: LocateConfig, seed: int, additive: bool = False, max_iter: int | None = None) -> Binned:
    return Binned(HistGradientBoostingClassifier(
        max_iter=max_iter or config.max_iter, learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes, min_samples_leaf=5, l2_regularization=1.0, early_stopping=False,
        class_weight="balanced", interaction_cst="no_interactions" if additive else None, random_state=seed))


def _auc(y, scores) -> np.ndarray:
    """ROC AUC of each row of ``scores`` (Mann–Whitney, ties counted half)."""
    scores = np.atleast_2d(scores)
    pos = np.asarray(y) == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if not n1 or not n0:
        return np.full(len(scores), 0.5)
    ranks = stats.rankdata(scores, axis=1)
    return (ranks[:, pos].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def permutation_importance(model, X: np.ndarray, y: np.ndarray, repeats: int, seed: int) -> np.ndarray:
    """Drop of AUC when each column of ``X`` is shuffled (mean over ``repeats`` shuffles)."""
    rng = np.random.default_rng([seed, 31337])
    base = _auc(y, model.decision_function(X))[0]
    n, k = X.shape
    stacked = np.repeat(X[None], k * repeats, axis=0)  # one predict call for every shuffle
    for j in range(k):
        for r in range(repeats):
            stacked[j * repeats + r, :, j] = X[rng.permutation(n), j]
    scores = model.decision_function(stacked.reshape(-1, k)).reshape(k * repeats, n)
    drops = (base - _auc(y, scores)).reshape(k, repeats)
    return drops.mean(axis=1)


def pair_tests(folds: list[tuple], pairs: list[tuple[int, int]], config: LocateConfig, seed: int) -> pd.DataFrame:
    """Does a pair act together? Per pair, on each fold's removed data: a GBDT on the two genes
    allowed to combine them against one that is not (additive), compared by held-out log-loss.

    ``folds`` holds ``(X_train, y_train, X_val, y_val)`` per fold (removed data; columns indexed
    by ``pairs``). The per-sample log-loss differences (additive − combining) of every
    validation fold are pooled and tested one-sided with Student's t: given the fitted models
    the held-out samples are independent, so this tests whether the combining model predicts
    new samples better. Two genes that each carry signal on their own (a spread difference) are
    no pair: the additive model captures them, and the difference is ≤ 0.
    """
    diffs = [[] for _ in pairs]
    ba = np.zeros((len(pairs), 2))
    for X_tr, y_tr, X_va, y_va in folds:
        for k, (a, b) in enumerate(pairs):
            cols = [a, b]
            loss = []
            for additive in (True, False):
                model = _gbdt(config, seed, additive=additive, max_iter=max(10, config.max_iter // 2))
                model.fit(X_tr[:, cols], y_tr)
                p = np.clip(model.predict_proba(X_va[:, cols])[:, 1], 1e-6, 1 - 1e-6)
                loss.append(-(y_va * np.log(p) + (1 - y_va) * np.log(1 - p)))
                ba[k, int(not additive)] += balanced_accuracy(y_va, (p > 0.5).astype(int)) / len(folds)
            diffs[k].append(loss[0] - loss[1])
    rows = []
    for k in range(len(pairs)):
        d = np.concatenate(diffs[k]) if diffs[k] else np.zeros(0)
        p = float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue) if d.size > 1 and d.std() > 0 else 1.0
        rows.append({"gain": float(d.mean()) if d.size else 0.0, "p_value": p if np.isfinite(p) else 1.0,
                     "ba_additive": ba[k, 0], "ba_combining": ba[k, 1]})
    return pd.DataFrame(rows, columns=["gain", "p_value", "ba_additive", "ba_combining"])


def _fold_data(task: Task, y: np.ndarray, train: np.ndarray, val: np.ndarray):
    """The benchmark's removed matrices of one fold, for labels ``y`` (real or permuted)."""
    t = task if y is task.y else dataclasses.replace(task, y=y, _cache={})
    data = _SignalData(t, "removed", train, val)
    return data.subset(train), data.validation


def _usable(y: np.ndarray, train: np.ndarray, val: np.ndarray) -> bool:
    # as the benchmark, which skips a fold whose training or validation set holds one class
    return np.unique(y[train]).size > 1 and np.unique(y[val]).size > 1


def _scan(task: Task, y: np.ndarray, folds: list, config: LocateConfig, seed: int, keep: bool = False):
    """One pass of the importance pipeline for labels ``y``.

    Returns the per-gene importance (mean over the usable folds; 0 in a fold that did not screen
    the gene in) and, with ``keep`` (real labels), per fold its removed matrices, candidates and
    the form models' balanced accuracies.
    """
    importance = np.zeros(task.X.shape[1])
    kept, used = [], 0
    for fold, (train, val) in enumerate(folds):
        if not _usable(y, train, val):
            continue
        used += 1
        y_tr, y_va = y[train], y[val]
        X_tr, X_va = _fold_data(task, y, train, val)
        cand = candidates(X_tr, y_tr, config.n_candidates)
        model = _gbdt(config, seed).fit(X_tr[:, cand], y_tr)
        importance[cand] += permutation_importance(model, X_va[:, cand], y_va, config.n_repeats, seed + fold)
        if keep:
            additive = _gbdt(config, seed, additive=True).fit(X_tr[:, cand], y_tr)
            kept.append({"X_tr": X_tr, "y_tr": y_tr, "X_va": X_va, "y_va": y_va, "cand": cand,
                         "form": {"seed": seed, "fold": fold, "n_train": len(train), "n_val": len(val),
                                  "interaction": balanced_accuracy(y_va, model.predict(X_va[:, cand])),
                                  "additive": balanced_accuracy(y_va, additive.predict(X_va[:, cand]))}})
    return importance / max(used, 1), kept


def _pooled_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """``(1 + #{null ≥ obs}) / (1 + #null)`` against the pooled null; no evidence (≤ 0) is p = 1."""
    null = np.sort(np.asarray(null, dtype=float).ravel())
    above = null.size - np.searchsorted(null, observed, side="left")
    p = (1.0 + above) / (1.0 + null.size)
    return np.where(observed > 0, p, 1.0)


# Beyond linear
# --------------------------------------------------------------------------------------------

def beyond_linear(task: Task, settings: Settings, config: LocateConfig, genes=None, progress=None) -> dict:
    """The linear model alone against linear + a GBDT fitted to what it leaves, on the original data.

    Per (seed, fold) of ``settings``: ``logreg`` (strong recipe, C by the benchmark's nested CV
    on the training fold) gives validation probabilities ``p``; out-of-fold probabilities on the
    training fold (``inner_folds`` group-wise folds) give the residuals ``y − p_oof``, to which a
    GBDT regressor on ``genes`` (default: all) is fitted with balanced class weights; the combined
    prediction is ``p + f(x) > 1/2``. The per-fold differences of balanced accuracy are tested
    one-sided (combined > linear) with the corrected repeated k-fold t-test.
    """
    y = task.y
    genes = np.arange(task.X.shape[1]) if genes is None else np.asarray(genes)
    rows = []
    for seed in settings.seeds:
        for fold, (train, val) in enumerate(_folds(task, settings, seed)):
            if progress is not None:
                progress()
            if np.unique(y[train]).size < 2 or np.unique(y[val]).size < 2:
                continue
            data = _SignalData(task, "none", train, val)
            X_tr, X_va = data.subset(train), data.validation
            # the converged linear model (the strong recipe's logreg), whatever recipe the settings name
            linear_recipe = get_recipe("strong")
            linear = make_estimator("logreg", settings, seed, 2, recipe=linear_recipe)
            groups = task.groups[train]
            tuned = tune(linear, X_tr, y[train], groups, settings.tuning, seed, settings.splitter, recipe=linear_recipe)
            linear.set_params(**tuned.params)
            p_oof = _out_of_fold(linear, X_tr, y[train], groups, settings, seed, config.inner_folds)
            fitted = clone(linear).fit(X_tr, y[train])
            p_va = fitted.predict_proba(X_va)[:, 1]
            counts = np.bincount(y[train], minlength=2)
            weight = len(train) / (2.0 * counts[y[train]])
            booster = Binned(HistGradientBoostingRegressor(
                max_iter=config.max_iter, learning_rate=config.learning_rate,
                max_leaf_nodes=config.max_leaf_nodes, min_samples_leaf=5, l2_regularization=1.0,
                early_stopping=False, random_state=seed))
            booster.fit(X_tr[:, genes], y[train] - p_oof, sample_weight=weight)
            combined = p_va + booster.predict(X_va[:, genes])
            rows.append({"seed": seed, "fold": fold, "n_train": len(train), "n_val": len(val),
                         "linear": balanced_accuracy(y[val], (p_va > 0.5).astype(int)),
                         "combined": balanced_accuracy(y[val], (combined > 0.5).astype(int))})
    table = pd.DataFrame(rows)
    if table.empty:
        return {"linear": math.nan, "combined": math.nan, "difference": math.nan, "p_value": 1.0,
                "n_folds": 0, "folds": []}
    ratio = float((table["n_val"] / table["n_train"]).mean())
    t = corrected_t(table["combined"] - table["linear"], ratio)
    p = t.p_greater()
    return {"linear": float(table["linear"].mean()), "combined": float(table["combined"].mean()),
            "difference": t.mean, "se": t.se, "p_value": 1.0 if not np.isfinite(p) else float(p),
            "n_folds": int(len(table)), "folds": table.to_dict("records")}


def _out_of_fold(linear, X: np.ndarray, y: np.ndarray, groups: np.ndarray, settings: Settings, seed: int,
                 n_inner: int) -> np.ndarray:
    """Probabilities of class 1 for every training sample from a fit that did not see it."""
    n_inner = min(n_inner, np.unique(groups).size)
    try:
        inner = splits.kfold(y, groups, n_inner, settings.split, seed)
    except LinsigInputError:  # too few groups or samples for inner folds
        inner = splits.kfold(y, None, max(2, min(n_inner, int(np.bincount(y).min()))), "sample", seed)
    p = np.full(len(y), float(np.mean(y)))
    for tr, va in inner:
        if np.unique(y[tr]).size < 2:
            continue
        p[va] = clone(linear).fit(X[tr], y[tr]).predict_proba(X[va])[:, 1]
    return p


# --------------------------------------------------------------------------------------------
# The whole analysis
# --------------------------------------------------------------------------------------------
def locate(task: Task, settings: Settings, config: LocateConfig = LocateConfig(), progress: bool = True,
           positive: str | None = None) -> LocateResult:
    """Locate the non-linear signal of a binary ``task`` (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    from linsig.progress import progress_bar

    if task.n_classes != 2:
        raise LinsigInputError(f"task {task.name!r} has {task.n_classes} classes; locate one binary task at "
                               "a time (binary_tasks splits a multiclass task one-vs-rest)")
    check_task(task, settings)
    seed = settings.seeds[0]
    folds = _folds(task, settings, seed)
    n_steps = 2 + config.permutations + len(settings.seeds) * settings.n_folds
    with threadpool_limits(settings.threads), progress_bar(total=n_steps, desc=f"linsig locate {task.name}",
                                                            unit="step", disable=not progress) as bar:
        importance, kept = _scan(task, task.y, folds, config, seed, keep=True)
        bar.update()
        null = []
        for b in range(1, config.permutations + 1):  # the same pipeline on labels permuted within groups
            null.append(_scan(task, permuted_labels(task.y, task.groups, b), folds, config, seed)[0])
            bar.update()

        # per-gene tests on the held-out folds of the first seed, pooled: each sample once
        R = np.zeros(task.X.shape, dtype=np.float64)
        cells = np.full(task.n_samples, -1, dtype=np.int64)
        for fold, (train, val) in enumerate(folds):
            if _usable(task.y, train, val):
                R[val] = _fold_data(task, task.y, train, val)[1]
                cells[val] = fold
        scored = cells >= 0
        tests = gene_tests(R[scored], task.y[scored], cells[scored])
        p_imp = _pooled_p(importance, np.concatenate(null))
        q_tests, q_imp = bh(tests["p_tests"]), bh(p_imp)
        genes = pd.DataFrame({"gene": task.gene_ids.astype(str), "q_value": np.minimum(1.0, 2 * np.minimum(q_tests, q_imp)),
                              "q_tests": q_tests, "q_importance": q_imp, "p_spread": tests["p_spread"],
                              "p_shape": tests["p_shape"], "p_tests": tests["p_tests"], "p_importance": p_imp,
                              "importance": importance, "spread_ratio": tests["spread_ratio"]})
        genes["_p"] = np.minimum(genes["p_tests"], genes["p_importance"])
        order = genes.sort_values(["q_value", "_p", "importance"], ascending=[True, True, False], kind="stable").index
        genes = genes.loc[order].drop(columns="_p").reset_index(drop=True)

        top = order.to_numpy()[:min(config.n_top, len(order))]
        local = {int(g): i for i, g in enumerate(top)}
        pairs = [(local[int(a)], local[int(b)]) for i, a in enumerate(top) for b in top[i + 1:]]
        pair_df = pair_tests([(k["X_tr"][:, top], k["y_tr"], k["X_va"][:, top], k["y_va"]) for k in kept],
                             pairs, config, seed)
        bar.update()
        pair_df.insert(0, "gene_a", [str(task.gene_ids[top[a]]) for a, _ in pairs])
        pair_df.insert(1, "gene_b", [str(task.gene_ids[top[b]]) for _, b in pairs])
        pair_df["q_value"] = bh(pair_df["p_value"])
        pair_df = pair_df.sort_values(["q_value", "p_value", "gain"], ascending=[True, True, False],
                                      kind="stable").reset_index(drop=True)
        pair_df.insert(2, "rank", np.arange(1, len(pair_df) + 1))
        # a gene in a pair that acts together has evidence too: its best pair's q-value is the third
        # family of the gene's q-value (Bonferroni over the three)
        q_pair = pd.concat([pair_df[["gene_a", "q_value"]].rename(columns={"gene_a": "gene"}),
                            pair_df[["gene_b", "q_value"]].rename(columns={"gene_b": "gene"})]).groupby("gene")["q_value"].min()
        genes["q_pairs"] = genes["gene"].map(q_pair).fillna(1.0).to_numpy()
        genes["q_value"] = np.minimum(1.0, 3 * genes[["q_tests", "q_importance", "q_pairs"]].min(axis=1))
        genes["_p"] = np.minimum(genes["p_tests"], genes["p_importance"])
        genes = genes.sort_values(["q_value", "_p", "importance"], ascending=[True, True, False],
                                  kind="stable").drop(columns="_p").reset_index(drop=True)
        in_pair = set(pair_df.loc[pair_df["q_value"] < config.alpha, ["gene_a", "gene_b"]].to_numpy().ravel())
        genes["form"] = [_gene_form(r, r.gene in in_pair, config.alpha) for r in genes.itertuples()]
        genes.insert(1, "rank", np.arange(1, len(genes) + 1))

        screened = np.unique(np.concatenate([k["cand"] for k in kept])) if kept else None
        beyond = beyond_linear(task, settings, config, screened, progress=bar.update)

    form_df = pd.DataFrame([k["form"] for k in kept])
    form = {"additive": float(form_df["additive"].mean()) if len(form_df) else math.nan,
            "interaction": float(form_df["interaction"].mean()) if len(form_df) else math.nan,
            "n_genes": int(config.n_candidates), "folds": form_df.to_dict("records")}
    show = genes["gene"].head(max(config.n_top, 6)).tolist()
    index = {g: i for i, g in enumerate(task.gene_ids.astype(str))}
    removed = pd.DataFrame(R[scored][:, [index[g] for g in show]], columns=show, index=task.sample_ids[scored])
    return LocateResult(task=task.name, positive=positive or str(task.classes[1]), genes=genes, pairs=pair_df,
                        form=form, beyond_linear=beyond, n_genes_q05=int((genes["q_value"] < config.alpha).sum()),
                        n_permutations=config.permutations, removed=removed,
                        labels=task.classes[task.y[scored]].astype(str))


def _gene_form(row, in_pair: bool, alpha: float) -> str:
    """``spread``/``shape`` when the per-gene tests carry evidence; ``interaction`` when only the
    model does, or the gene is in a significant pair; ``none`` without evidence."""
    if row.q_value >= alpha:
        return "none"
    if row.q_tests < alpha and not in_pair:
        return "spread" if row.p_spread <= row.p_shape else "shape"
    return "interaction"
