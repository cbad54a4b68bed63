"""The simpler non-linear models: RBF-kernel SVM, nearest neighbours, boosted trees, random forest.

They answer the paper's open question — would a simpler non-linear model do as well as a
network? — inside the same harness (same folds, subsets, signal modes and result rows). Each is a
scikit-learn classifier with the :class:`~linsig.models.base.Tunable` protocol, balanced class
weights (the harness scores balanced accuracy) and a ``threads`` bound on the CPU threads it uses.

* ``rbf_svm`` — :class:`RBFSVM`: ``SVC(kernel="rbf")``; ``gamma`` is ``gamma_factor`` times
  scikit-learn's ``"scale"`` value. The kernel matrix is computed with BLAS and handed to libsvm:
  at 5,000 genes ~10× faster a fit than libsvm's own row-by-row kernel, ~40× over a C grid that
  reuses it.
* ``knn`` — :class:`BalancedKNN`: Euclidean k nearest neighbours, votes weighted by inverse
  training class frequency.
* ``gbdt`` — :class:`GradientBoostedTrees`: ``HistGradientBoostingClassifier`` early-stopped on a
  group-wise held-out part of the training data, on features it bins once (a search's candidates
  share the bins), each split considering 20 % of them.
* ``rf`` — :class:`RandomForest`: up to 200 trees, balanced bootstrap class weights; stops
  growing once its out-of-bag votes hold.
"""

from __future__ import annotations

import functools
import numbers
import typing
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics.pairwise import pairwise_distances_chunked, rbf_kernel
from sklearn.svm import SVC
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from linsig import splits
from linsig.models.base import Tunable, full_label_set

# Measured on ALL sex (0–1 scaled, top 1,000 genes, sample-wise 5 folds): scikit-learn's defaults
# (gamma="scale", i.e. factor 1, C 1) reach 0.66 balanced accuracy; gamma_factor 0.1 with C 10 and
# 0.01 with C 100 reach 0.95, C 1 stays at 0.50–0.66 and factor 1 at ≤ 0.71 whatever C. Every cell with
# gamma_factor ≤ 0.1 and C · gamma_factor ≥ 1 scores 0.93–0.95: the grid crosses that band at each C ≥ 10.
SVM_C = (1.0, 10.0, 100.0, 1000.0)
SVM_GAMMA_FACTOR = (0.01, 0.1, 1.0)
# Odd k: two classes of equal vote weight cannot tie.
KNN_K = (31, 21, 15, 11, 7, 5, 3, 1)
TIE_BREAK = 1e-9
# Above this many training samples the n × n kernel matrix would take over 1.8 GB; libsvm then
# computes kernel rows itself (~10× slower at 5,000 genes, in its 200 MB cache).
MAX_KERNEL_SAMPLES = 15_000


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def _seed(random_state) -> int:
    """An integer seed for code that takes one (``splits.holdout``), from any sklearn random_state."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class _Classifier(Tunable, ClassifierMixin, BaseEstimator):
    """Shared input checks: features as floats, labels a classification target within ``classes``."""

    def _validate_training(self, X, y, dtype=np.float64):
        X, y = validate_data(self, X, y, dtype=dtype, order="C")
        check_classification_targets(y)
        full_label_set(self, y)
        _check_threads(self.threads)
        return X, y

    def _validate_query(self, X, dtype=np.float64):
        check_is_fitted(self)
        return validate_data(self, X, dtype=dtype, order="C", reset=False)


# ---------------------------------------------------------------------------------------- rbf_svm


def scale_gamma(X: np.ndarray) -> float:
    """scikit-learn's ``gamma="scale"``: 1 / (n_features · X.var()), 1 where X is constant."""
    var = float(X.var())
    return 1.0 / (X.shape[1] * var) if var != 0 else 1.0


class RBFSVM(_Classifier):
    """Support vector machine with a Gaussian (RBF) kernel and balanced class weights.

    Parameters
    ----------
    C : float
        Inverse penalty strength, as scikit-learn's ``SVC``.
    gamma_factor : float
        Kernel width as a multiple of scikit-learn's ``gamma="scale"`` (1 / (n_features · X.var()),
        computed on the training data). Factor 1, scikit-learn's default, is too narrow a kernel
        for ALL sex (0.66–0.71 balanced accuracy whatever C, against 0.95 at 0.1 with C 10).
    tol : float
        libsvm's stopping tolerance.
    classes : array-like or None
        The task's full label set, to validate labels; a fit predicts the classes it saw.
    random_state : int
        Unused (libsvm's solution has no seed without probability estimates); kept for the
        common interface.
    threads : int
        Bound on the BLAS threads computing the kernel matrix (libsvm itself is single-threaded).

    The fitted model keeps the training samples (the kernel of new samples is computed against
    them), and fitting needs the n × n kernel matrix: 0.5 GB at 8,000 training samples.
    """

    def __init__(self, C=10.0, gamma_factor=0.1, tol=1e-3, classes=None, random_state=0, threads=1):
        self.C = C
        self.gamma_factor = gamma_factor
        self.tol = tol
        self.classes = classes
        self.random_state = random_state
        self.threads = threads

    def _svc(self, C: float, gamma: float, n_samples: int) -> SVC:
        # A callable kernel makes scikit-learn compute K(X, X_train) with BLAS and pass libsvm the
        # precomputed matrix; candidate_predictions reuses that matrix across C with the same call.
        kernel = functools.partial(rbf_kernel, gamma=gamma) if n_samples <= MAX_KERNEL_SAMPLES else "rbf"
        return SVC(kernel=kernel, C=C, gamma=gamma, tol=self.tol, class_weight="balanced",
                   random_state=self.random_state)

    def fit(self, X, y, groups=None):
        X, y = self._validate_training(X, y)
        if not self.C > 0 or not self.gamma_factor > 0:
            raise ValueError(f"C and gamma_factor must be positive, got C={self.C!r}, gamma_factor={self.gamma_factor!r}")
        self.gamma_ = float(self.gamma_factor) * scale_gamma(X)
        self.model_ = self._svc(float(self.C), self.gamma_, len(X))
        with threadpool_limits(self.threads):
            self.model_.fit(X, y)
        self.classes_ = self.model_.classes_
        self.n_iter_ = int(np.max(self.model_.n_iter_))  # libsvm's SMO iterations, reported as epochs
        self.converged_ = True  # libsvm runs to its tolerance (no iteration cap)
        return self

    def decision_function(self, X):
        X = self._validate_query(X)
        with threadpool_limits(self.threads):
            return self.model_.decision_function(X)

    def predict(self, X):
        X = self._validate_query(X)
        with threadpool_limits(self.threads):
            return self.model_.predict(X)

    def search_space(self, level: str, n_samples: int | None = None) -> list[dict]:
        # Smallest C first (strongest penalty), then the widest kernel: from the smoothest.
        if level == "full":
            return [{"C": c, "gamma_factor": g} for c in SVM_C for g in SVM_GAMMA_FACTOR]
        return [{"C": c, "gamma_factor": g} for c in (10.0, 100.0) for g in (0.01, 0.1)]

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
        X_tr = np.ascontiguousarray(X_tr, dtype=np.float64)
        X_va = np.ascontiguousarray(X_va, dtype=np.float64)
        if len(X_tr) > MAX_KERNEL_SAMPLES:
            return super().candidate_predictions(X_tr, y_tr, g_tr, X_va, y_va, candidates)
        out: list = [None] * len(candidates)
        by_gamma: dict[float, list[int]] = {}
        for i, params in enumerate(candidates):
            p = {**self.get_params(), **params}
            by_gamma.setdefault(float(p["gamma_factor"]), []).append(i)
        base = scale_gamma(X_tr)
        with threadpool_limits(self.threads):
            for factor, members in by_gamma.items():
                gamma = factor * base
                # exactly the matrices fit/predict compute: rbf_kernel(X, X_train) on the same arrays
                K_tr, K_va = rbf_kernel(X_tr, X_tr, gamma=gamma), rbf_kernel(X_va, X_tr, gamma=gamma)
                for i in members:
                    C = float({**self.get_params(), **candidates[i]}["C"])
                    svc = SVC(kernel="precomputed", C=C, tol=self.tol, class_weight="balanced",
                              random_state=self.random_state).fit(K_tr, y_tr)
                    out[i] = (dict(candidates[i]), svc.predict(K_va))
        return out


# -------------------------------------------------------------------------------------------- knn


class BalancedKNN(_Classifier):
    """k nearest neighbours (Euclidean) with votes weighted by inverse training class frequency.

    A neighbour of class c votes ``n / (n_classes · n_c)``, so each class has the same total vote
    over the training set. With plain majority votes a minority class is outvoted wherever it
    is not locally dominant, and the prediction drifts to the majority as k grows; balanced votes
    keep the decision at "which class is over-represented here relative to its overall share".
    Exact ties (e.g. two neighbours of one class against one of a class half as frequent) go to
    the class whose neighbours rank nearer: a neighbour's vote is scaled by ``1 + 1e-9 · (k − rank) / k``,
    so ``predict`` stays the argmax of ``predict_proba``.

    Parameters
    ----------
    n_neighbors : int
        k; a training set smaller than k uses all its samples.
    classes : array-like or None
        The task's full label set, to validate labels; a fit predicts the classes it saw.
    random_state : int
        Unused (the neighbour search is exact and deterministic; distance ties are broken by
        training order); kept for the common interface.
    threads : int
        Bound on the BLAS threads computing distances.
    """

    path_axis = "n_neighbors"  # one neighbour query scores every k

    def __init__(self, n_neighbors=5, classes=None, random_state=0, threads=1):
        self.n_neighbors = n_neighbors
        self.classes = classes
        self.random_state = random_state
        self.threads = threads

    def fit(self, X, y, groups=None):
        X, y = self._validate_training(X, y, dtype=[np.float64, np.float32])  # distances are summed in float64
        if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, numbers.Integral) or self.n_neighbors < 1:
            raise ValueError(f"n_neighbors must be a positive integer, got {self.n_neighbors!r}")
        self.classes_, self._codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        self.class_vote_ = len(y) / (self.classes_.size * counts)
        self._X = X
        # k is tuned on the whole outer training fold and reused on its small subsets: at most half
        # the training samples, or every sample would vote (k = 31 on 12 samples)
        self.n_neighbors_ = min(int(self.n_neighbors), max(1, -(-len(X) // 2)))
        self.n_iter_ = 0
        return self

    def _neighbours(self, X, k: int) -> np.ndarray:
        """Indices of the k nearest training samples of each row, nearest first, ties by training order."""

        def nearest(D, start):
            return np.argsort(D, axis=1, kind="stable")[:, :k]

        with threadpool_limits(self.threads):
            return np.vstack(list(pairwise_distances_chunked(X, self._X, reduce_func=nearest, metric="euclidean")))

    def _proba(self, neighbours: np.ndarray) -> np.ndarray:
        k = neighbours.shape[1]
        codes = self._codes[neighbours]
        # The tie-break: nearer ranks weigh 1e-9 more, far below any real difference of balanced votes.
        weight = self.class_vote_[codes] * (1.0 + TIE_BREAK * (k - np.arange(k)) / k)
        votes = np.zeros((len(neighbours), self.classes_.size))
        np.add.at(votes, (np.arange(len(neighbours))[:, None], codes), weight)
        return votes / votes.sum(axis=1, keepdims=True)

    def _decide(self, neighbours: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self._proba(neighbours), axis=1)]

    def _validate_query(self, X, dtype=(np.float64, np.float32)):
        return super()._validate_query(X, dtype=list(dtype))

    def predict(self, X):
        return self._decide(self._neighbours(self._validate_query(X), self.n_neighbors_))

    def predict_proba(self, X):
        return self._proba(self._neighbours(self._validate_query(X), self.n_neighbors_))

    def search_space(self, level: str, n_samples: int | None = None) -> list[dict]:
        """Largest k first: from the smoothest boundary.

        ``n_samples`` (the data being tuned) caps k at half of it: an inner training fold holds
        2/3–3/4 of those samples, and a neighbourhood of more than half the data is no longer local.
        """
        grid = KNN_K if level == "full" else KNN_K[::2]
        if n_samples is not None:
            kept = [k for k in grid if k <= max(1, n_samples // 2)]
            grid = kept or [1]
        return [{"n_neighbors": k} for k in grid]

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
        # One neighbour query for the largest k: the k nearest are a prefix of the sorted list.
        model = clone(self).set_params(**candidates[0]).fit(X_tr, y_tr)
        X_va = model._validate_query(X_va)
        ks = [min(int({**self.get_params(), **c}["n_neighbors"]), len(model._X)) for c in candidates]
        neighbours = model._neighbours(X_va, max(ks))
        return [(dict(c), model._decide(neighbours[:, :k])) for c, k in zip(candidates, ks)]


# ------------------------------------------------------------------------------------------- gbdt


def quantile_edges(X: np.ndarray, max_bins: int) -> np.ndarray:
    """Per-feature bin thresholds at the unweighted quantiles k / max_bins, shape (max_bins − 1, n_features).

    NumPy's "averaged_inverted_cdf" quantiles (scikit-learn's choice for unweighted binning), from
    one sort of each column.
    """
    n = len(X)
    ranked = np.sort(X, axis=0)
    position = np.arange(1, max_bins) * n / max_bins  # 1-based rank of each quantile
    lo = np.clip(np.ceil(position).astype(np.int64) - 1, 0, n - 1)
    # on a rank boundary the quantile is the midpoint of the two order statistics around it
    hi = np.where(position == np.floor(position), np.minimum(lo + 1, n - 1), lo)
    return 0.5 * (ranked[lo] + ranked[hi])


def bin_codes(X: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: i where edges[i − 1] < x ≤ edges[i], as scikit-learn's binner maps it."""
    codes = np.empty(X.shape, dtype=np.float32)
    for j in range(X.shape[1]):
        codes[:, j] = np.searchsorted(edges[:, j], X[:, j], side="left")
    return codes


def booster_bins(X: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The thresholds scikit-learn's binner would end up with, given the codes of ``X`` at ``edges``,
    and the bins of ``X`` at them: ``(thresholds, bins)``.

    Handed codes, ``HistGradientBoostingClassifier`` bins them again: one bin per distinct code of
    its training data, with thresholds at the midpoints between consecutive distinct codes. A value
    whose code is ``c`` lies at or below the midpoint ``t`` exactly when ``x ≤ edges[⌊t⌋]``, so these
    thresholds (one per midpoint, padded with +inf to the shape of ``edges``) give each value the
    bin scikit-learn would give its code: the values of ``X`` fill bins 0 … k − 1 of each feature.
    """
    codes = bin_codes(X, edges).astype(np.intp)  # in [0, n_codes)
    n_codes, n_features = edges.shape[0] + 1, edges.shape[1]
    columns = np.arange(n_features)
    present = np.zeros((n_codes, n_features), dtype=bool)
    present[codes, columns] = True
    # the distinct codes of each feature, ascending, then n_codes as padding
    distinct = np.sort(np.where(present, np.arange(n_codes)[:, None], n_codes), axis=0)
    valid = distinct[1:] < n_codes  # a midpoint between two distinct codes
    middle = np.minimum((distinct[:-1] + distinct[1:]) // 2, n_codes - 2)
    flat = (columns * edges.shape[0]).astype(np.intp)  # row starts in the transposed tables
    thresholds = np.where(valid, np.take(np.ascontiguousarray(edges.T).ravel(), middle + flat), np.inf)
    # a training value's bin: the rank of its code among the feature's distinct codes (one gather
    # from a table per feature, instead of a second search)
    rank = np.cumsum(present, axis=0, dtype=np.int16) - 1
    index = codes.astype(np.intp, copy=False) + columns * n_codes
    return thresholds, np.take(np.ascontiguousarray(rank.T, dtype=np.float32).ravel(), index)


class _PrebinnedBooster(HistGradientBoostingClassifier):
    """``HistGradientBoostingClassifier`` on features that are already bin indices 0 … k − 1.

    scikit-learn would find each feature's distinct values and map every value to its bin again
    (2–2.5 s of a 9 s fit at 1,000 × 5,000, one Python call per feature); given bins, its thresholds
    are the midpoints ``b + 0.5``, and the codes are the binned matrix as they are. Everything else
    (growing, early stopping, prediction on the codes) is scikit-learn's own.
    """

    def _bin_data(self, X, *args, is_training_data, **kwargs):
        binned = np.asfortranarray(X, dtype=np.uint8)  # exact: the codes are integers below max_bins
        if not is_training_data:
            return np.ascontiguousarray(binned)  # as scikit-learn hands validation data on
        mapper = self._bin_mapper
        n_bins = binned.max(axis=0).astype(np.uint32) + 1 if len(binned) else np.ones(X.shape[1], np.uint32)
        mapper.is_categorical_ = np.zeros(X.shape[1], dtype=np.uint8)
        mapper.missing_values_bin_idx_ = mapper.n_bins - 1
        mapper.bin_thresholds_ = [np.arange(k - 1, dtype=np.float64) + 0.5 for k in n_bins]
        mapper.n_bins_non_missing_ = n_bins
        return binned


class _Binned(typing.NamedTuple):
    """A training set as the booster sees it: holdout split and codes at the fit part's bins."""

    y: np.ndarray
    fit_idx: np.ndarray
    holdout_idx: np.ndarray
    early_stopping: bool
    edges: np.ndarray
    fit_codes: np.ndarray
    holdout_codes: np.ndarray


class GradientBoostedTrees(_Classifier):
    """Histogram gradient-boosted trees (scikit-learn), balanced class weights, early-stopped group-wise.

    A ``validation_fraction`` of the training *groups* (``splits.holdout``: each sample its own
    group when ``groups`` is None) is held out; boosting stops once the class-weighted log-loss on
    it has not improved for ``n_iter_no_change`` iterations (at most ``max_iter``), and the model
    of that fit is kept, its last ``n_iter_no_change`` rounds included (refitting on all training
    data for the best round count scored no better on ALL sex: 0.92–0.96 either way, at twice
    the cost). scikit-learn's own early stopping splits sample-wise, which lets samples
    of one study on both sides judge each other. When nothing can be held out (fewer than 5
    groups, no draw with two classes on each side, or the fit part missing a class), the model
    boosts a fixed ``fallback_iter`` rounds on all the data instead.

    Features are binned here (:func:`quantile_edges`, unweighted quantiles of the fit part), not
    by scikit-learn: balanced class weights are sample weights, and scikit-learn 1.9 bins weighted
    data with one Python-level weighted percentile per threshold and feature: 210–290 s of binning
    for one fit at 1,000 × 5,000, where the whole fit now takes 3–6 s. Given at most ``max_bins`` distinct values per feature it
    keeps them as its bins, so the trees split at unweighted quantiles, as scikit-learn's binning
    without weights does (up to rounding of a quantile that falls exactly between two samples).
    The booster is handed those bins as they are (:func:`booster_bins`, :class:`_PrebinnedBooster`)
    instead of codes that scikit-learn would bin once more (one bin per distinct code): the same
    trees and predictions, 2–2.5 s less per fit at 1,000 × 5,000; a search's candidates share one
    holdout and one binning (:meth:`candidate_predictions`).

    Parameters
    ----------
    max_leaf_nodes, min_samples_leaf, l2_regularization, learning_rate, max_bins :
        As ``HistGradientBoostingClassifier``.
    max_iter, n_iter_no_change, validation_fraction : int, int, float
        Early stopping: iteration cap, patience, share of groups held out.
    tol : float
        An improvement of the held-out log-loss smaller than this does not count. scikit-learn's
        1e-7 lets separable data boost to the cap while the loss creeps towards 0 without changing
        a prediction: on `mixed` after removal (300 × 1,000) 1e-3 stopped after 110–130 rounds
        instead of 500, at the same accuracy (1.00), and changed nothing on ALL sex.
    fallback_iter : int
        Boosting rounds when nothing can be held out.
    max_features : float
        Share of the features each split considers (scikit-learn's per-split feature subsampling).
        Finding splits over all 5,000 genes was most of a fit; 0.2 made fits of 800 samples (1,000 and
        5,000 genes) 1.3–3.6× faster than 1.0, at the same held-out balanced accuracy on `mixed`, the same
        or higher on ALL, 1–5 of 200 samples lower on one split of uniform noise data
        (``benchmarks/bench_trees.py``, docs/performance.md). It boosts more rounds, so small training
        sets can take longer (200 samples × 1,000 genes: 0.8–1.0 s against 0.6 s). 1.0 is the
        booster before issue 25.
    classes, random_state, threads :
        The common interface; ``threads`` bounds the OpenMP threads of fit and predict.
    """

    def __init__(self, max_leaf_nodes=7, min_samples_leaf=5, l2_regularization=1.0, learning_rate=0.1, max_bins=255,
                 max_iter=500, n_iter_no_change=15, tol=1e-3, validation_fraction=0.2, fallback_iter=100,
                 max_features=0.2, classes=None, random_state=0, threads=1):
        self.max_features = max_features
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.learning_rate = learning_rate
        self.max_bins = max_bins
        self.max_iter = max_iter
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.fallback_iter = fallback_iter
        self.classes = classes
        self.random_state = random_state
        self.threads = threads

    def _booster(self, **params) -> HistGradientBoostingClassifier:
        return _PrebinnedBooster(
            learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, max_bins=self.max_bins, max_features=self.max_features,
            class_weight="balanced",
            random_state=self.random_state, **params)

    def _prepare(self, X, y, groups):
        """The group-wise holdout and the features binned at the fit part's quantiles (:class:`_Binned`):
        what every candidate of a search shares."""
        X, y = self._validate_training(X, y, dtype=[np.float64, np.float32])
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(y):
                raise ValueError(f"groups has {len(groups)} entries for {len(y)} samples")
        split = splits.holdout(y, groups, self.validation_fraction, _seed(self.random_state))
        if split is not None and np.unique(y[split[0]]).size < np.unique(y).size:
            split = None  # the booster would not know a class only the held-out part has
        if split is None:
            fit_idx, holdout_idx = np.arange(len(y)), np.array([], dtype=np.int64)
        else:
            fit_idx, holdout_idx = split
        X_fit = X[fit_idx]
        edges, fit_codes = booster_bins(X_fit, quantile_edges(X_fit, int(self.max_bins)))
        return _Binned(y, fit_idx, holdout_idx, split is not None, edges, fit_codes, bin_codes(X[holdout_idx], edges))

    def fit(self, X, y, groups=None):
        return self._fit_binned(self._prepare(X, y, groups))

    def _fit_binned(self, data: "_Binned"):
        self.fit_idx_, self.holdout_idx_, self.bin_edges_ = data.fit_idx, data.holdout_idx, data.edges
        y = data.y
        with threadpool_limits(self.threads, user_api="openmp"):
            if not data.early_stopping:
                self.model_ = self._booster(max_iter=self.fallback_iter, early_stopping=False)
                self.model_.fit(data.fit_codes, y)
                self.best_iter_ = self.model_.n_iter_
            else:
                self.model_ = self._booster(max_iter=self.max_iter, early_stopping=True, scoring="loss",
                                            n_iter_no_change=self.n_iter_no_change, tol=self.tol,
                                            validation_fraction=None)
                y_ho = y[data.holdout_idx]
                # the held-out loss weighted like the training loss, so a minority class counts as much
                self.model_.fit(data.fit_codes, y[data.fit_idx], X_val=data.holdout_codes, y_val=y_ho,
                                sample_weight_val=compute_sample_weight("balanced", y_ho))
                # validation_score_[i]: score after i iterations (0 = the constant start)
                self.best_iter_ = int(np.argmax(self.model_.validation_score_))
        self.classes_ = self.model_.classes_
        self.n_iter_ = int(self.model_.n_iter_)
        self.converged_ = not data.early_stopping or self.n_iter_ < self.max_iter
        return self

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
        # Every candidate holds out the same groups and bins at the same quantiles: bin once.
        first = clone(self)
        data = first._prepare(X_tr, y_tr, g_tr)
        seen = {k: v for k, v in vars(first).items() if k in ("n_features_in_", "feature_names_in_")}
        out = []
        for params in candidates:
            model = clone(self).set_params(**params)
            vars(model).update(seen)  # what the validation of the training data recorded
            out.append((dict(params), model._fit_binned(data).predict(X_va)))
        return out

    def _call(self, method: str, X):
        X = bin_codes(self._validate_query(X, dtype=[np.float64, np.float32]), self.bin_edges_)
        with threadpool_limits(self.threads, user_api="openmp"):
            return getattr(self.model_, method)(X)

    def predict(self, X):
        return self._call("predict", X)

    def predict_proba(self, X):
        return self._call("predict_proba", X)

    def decision_function(self, X):
        return self._call("decision_function", X)

    def search_space(self, level: str, n_samples: int | None = None) -> list[dict]:
        # Fewest, largest leaves first. On ALL sex l2_regularization 1 was as good as or better than 0
        # for every tree size (0.95–0.965), and min_samples_leaf 3 without it the worst (0.927).
        full = [{"max_leaf_nodes": 3, "min_samples_leaf": 10, "l2_regularization": 1.0},
                {"max_leaf_nodes": 7, "min_samples_leaf": 5, "l2_regularization": 1.0},
                {"max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0}]  # scikit-learn's defaults
        return full if level == "full" else full[:2]

    def fit_summary(self) -> dict:
        return {"epochs_trained": int(getattr(self, "n_iter_", 0)), "best_epoch": int(getattr(self, "best_iter_", 0)),
                "diverged": False, "converged": bool(getattr(self, "converged_", True))}


# --------------------------------------------------------------------------------------------- rf


class RandomForest(_Classifier):
    """Random forest of up to ``n_estimators`` trees with class weights balanced within each bootstrap.

    Trees are grown ``plateau_step`` at a time (scikit-learn's ``warm_start``: the first k trees
    are exactly those of a forest of k trees with the same seed), and growing stops once the forest's
    out-of-bag prediction of every training sample (its class by the trees that did not see it) has not
    changed over the last ``plateau_trees`` trees: more trees would average the same votes. On
    separable data (`mixed` at 1,000 × 5,000 as given and after linear signal removal) that is 75 trees
    instead of 200; where the votes still move (noisy or hard data) the forest grows all of them.

    Parameters
    ----------
    max_features : "sqrt", int or float
        Features tried per split, as ``RandomForestClassifier``. The default 0.1 (10 % of the
        genes) beat scikit-learn's "sqrt" on ALL sex (0.95 against 0.85 balanced accuracy; 0.05:
        0.92, 0.2: 0.95); it costs ~6× the time of "sqrt" at 5,000 genes (106 s against 17 s for
        one fit of 1,000 samples on one thread).
    n_estimators, min_samples_leaf :
        As ``RandomForestClassifier``. At most 200 trees: the forest's cost is linear in them and its
        accuracy has levelled off well before (scikit-learn's default is 100).
    plateau_trees, plateau_step : int or None, int
        Stop once the out-of-bag predictions held for ``plateau_trees`` trees (checked every
        ``plateau_step``); ``None`` grows all ``n_estimators``.
    classes, random_state, threads :
        The common interface; ``threads`` is the forest's ``n_jobs``.
    """

    def __init__(self, max_features=0.1, n_estimators=200, min_samples_leaf=1, plateau_trees=50, plateau_step=25,
                 classes=None, random_state=0, threads=1):
        self.max_features = max_features
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.plateau_trees = plateau_trees
        self.plateau_step = plateau_step
        self.classes = classes
        self.random_state = random_state
        self.threads = threads

    def fit(self, X, y, groups=None):
        X, y = self._validate_training(X, y, dtype=np.float32)  # the trees' own dtype: no second copy
        total = int(self.n_estimators)
        step = total if self.plateau_trees is None else max(1, min(int(self.plateau_step), total))
        self.model_ = RandomForestClassifier(
            n_estimators=step, max_features=self.max_features, min_samples_leaf=self.min_samples_leaf,
            class_weight="balanced_subsample", n_jobs=self.threads, random_state=self.random_state,
            warm_start=True)
        votes = None
        last = held = None  # the out-of-bag classes, and since how many trees they held
        with warnings.catch_warnings():
            # the same data each round: the bootstraps' class weights are what one fit would draw
            warnings.filterwarnings("ignore", message="class_weight presets", category=UserWarning)
            while True:
                grown = len(getattr(self.model_, "estimators_", ()))
                self.model_.set_params(n_estimators=min(total, grown + step)).fit(X, y)
                if self.plateau_trees is None or len(self.model_.estimators_) >= total:
                    break
                votes = self._add_oob_votes(X, votes, grown)
                now = np.where(votes.any(axis=1), np.argmax(votes, axis=1), -1)
                if last is None or not np.array_equal(now, last):
                    last, held = now, len(self.model_.estimators_)
                elif len(self.model_.estimators_) - held >= int(self.plateau_trees):
                    break
        self.classes_ = self.model_.classes_
        self.n_iter_ = len(self.model_.estimators_)  # trees, reported as epochs
        return self

    def _add_oob_votes(self, X, votes, start: int) -> np.ndarray:
        """Out-of-bag class probabilities summed over the trees from ``start`` on, added to ``votes``."""
        forest = self.model_
        if votes is None:
            votes = np.zeros((len(X), forest.n_classes_))
        for tree, in_bag in zip(forest.estimators_[start:], forest.estimators_samples_[start:]):
            out = np.ones(len(X), dtype=bool)
            out[in_bag] = False
            if out.any():
                votes[out] += tree.predict_proba(X[out], check_input=False)
        return votes

    def predict(self, X):
        X = self._validate_query(X, dtype=np.float32)
        return self.model_.predict(X)

    def predict_proba(self, X):
        X = self._validate_query(X, dtype=np.float32)
        return self.model_.predict_proba(X)

    def search_space(self, level: str, n_samples: int | None = None) -> list[dict]:
        # Fewer features per split = more randomised trees = the more regularised forest first;
        # "fast" keeps the one that measured best (see max_features).
        return [{"max_features": "sqrt"}, {"max_features": 0.1}] if level == "full" else [{"max_features": 0.1}]
