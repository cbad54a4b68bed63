"""The strong recipe's linear models: solved to their optimum by scikit-learn's convex solvers.

* ``logreg`` — L2-penalised (ridge) multinomial logistic regression, L-BFGS to a tight tolerance,
  balanced class weights. Its objective is scikit-learn's:
  ``C · Σ_i w_i · log-loss_i + ½‖W‖²`` (intercept not penalised), ``w_i`` = n / (k · n_class).
  The penalty is searched on a log grid; the inner folds walk the grid from the strongest penalty
  up, each fit warm-started from the previous optimum, so the whole path costs little more than
  one fit.
* ``svm`` — L2-penalised linear SVM (squared hinge, liblinear's coordinate descent),
  ``C · Σ_i w_i · max(0, 1 − y_i f_i)² + ½‖w‖²``, one-vs-rest for several classes.

Both are pure functions of the data once ``C`` is fixed: a converged convex fit has no seed.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from linsig.models.base import Tunable, full_label_set

# A fit within this relative distance of the best w = 0 objective has learned nothing.
NULL_TOLERANCE = 1e-6
# Half-decades: fine enough that the optimum's accuracy is flat between neighbours (measured on
# ALL sex and the simulations), wide enough for 0–1 scaled data of 1,000 to 20,000 genes.
LOGREG_C = tuple(float(c) for c in np.logspace(-3, 4, 15))
SVM_C = tuple(float(c) for c in np.logspace(-5, 2, 15))


def _fit_converged(solver, X, y) -> bool:
    """Fit ``solver``; whether it met its tolerance (scikit-learn warns instead of saying)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        solver.fit(X, y)
    return not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def _zero_is_optimal(X, y, rtol: float = 1e-6) -> bool:
    """Whether w = 0 (with a zero intercept) minimises the binary balanced squared-hinge objective.

    At w = 0 every margin is 0, so the objective's gradient is ``−2C · Σ c_i y_i (x_i, 1)``: the
    difference of the two classes' means, each class weighted to the same total (the balanced
    weights). It vanishes where the class means coincide — on every training matrix after linear
    signal removal, which equalises them — and a convex objective with a zero gradient is at its
    optimum. liblinear's dual coordinate descent cannot tell: on the issue-25 grid after removal
    (533 × 5,000) it ran its 1,000 passes without converging, ~5 s, at every C ≥ 0.01, where the
    primal Newton solver stops at once (0–1 iterations, 0.1 s) at that optimum. Binary problems
    only (one-vs-rest sub-problems of several classes keep a gradient there).
    """
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if classes.size != 2:
        return False
    signs = np.where(codes == 1, 1.0, -1.0) / counts[codes]  # the balanced weights, up to a constant
    gradient = np.append(signs @ X, signs.sum())
    scale = np.append(np.abs(X).mean(axis=0), 1.0)  # per coordinate, the mean |x| (the intercept's: 1)
    return bool(np.all(np.abs(gradient) <= rtol * (scale + 1e-12)))


class _ConvexLinear(Tunable, ClassifierMixin, BaseEstimator):
    """A scikit-learn linear solver with balanced class weights, fitted to convergence."""

    grid: tuple[float, ...] = ()

    def _solver(self, C: float, warm: bool):
        raise NotImplementedError

    def _solve(self, X, y) -> bool:
        """Fit ``model_``; whether it converged."""
        return _fit_converged(self.model_, X, y)

    def fit(self, X, y, groups=None):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        full_label_set(self, y)  # labels outside ``classes`` are an error; a fit predicts the classes it saw
        self.model_ = self._solver(float(self.C), warm=False)
        self.converged_ = self._solve(X, y)
        self.n_iter_ = int(np.max(self.model_.n_iter_))
        self.classes_ = self.model_.classes_
        # When the optimum is w = 0 (after linear signal removal no class-mean difference is left)
        # the solver stops at coefficients of the size of its tolerance, whose signs are noise. Not
        # harmless noise: with the classes' common mean far from 0 and one class more spread out,
        # such a w puts the tight class on one side and splits the other (mixed simulation, 5,000
        # genes, after removal: SVM 0.59 balanced accuracy from |w| = 8e-6, objective 8.000000
        # against 8 for w = 0). A fit that does not beat the best constant model predicts a constant.
        self.constant_ = self._constant_if_null(X, y)
        return self

    def _constant_if_null(self, X, y):
        """The most frequent class when the fit is no better than w = 0, else None."""
        null = self._null_objective(y)
        if null is None or self.objective(X, y) < null * (1 - NULL_TOLERANCE):
            return None
        classes, counts = np.unique(y, return_counts=True)
        return classes[np.argmax(counts)]

    def _null_objective(self, y) -> float | None:
        """The objective of the best model with w = 0 (None where it is not written out)."""
        return None

    def decision_function(self, X):
        check_is_fitted(self, "model_")
        return self.model_.decision_function(validate_data(self, X, dtype=np.float64, reset=False))

    def predict(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if self.constant_ is not None:  # nothing learned: a constant prediction, not solver noise
            return np.full(len(X), self.constant_, dtype=self.classes_.dtype)
        return self.model_.predict(X)

    def search_space(self, level: str, n_samples: int | None = None) -> list[dict]:
        grid = self.grid if level == "full" else self.grid[::2]
        return [{"C": c} for c in grid]  # ascending C: from the strongest penalty

    def objective(self, X, y) -> float:
        """The penalised objective scikit-learn minimises, at the fitted coefficients."""
        raise NotImplementedError


class RidgeLogisticRegression(_ConvexLinear):
    """Ridge multinomial logistic regression solved to convergence (L-BFGS), balanced class weights.

    Parameters
    ----------
    C : float
        Inverse penalty strength, as scikit-learn's ``LogisticRegression``.
    tol, max_iter : float, int
        Convergence criterion of L-BFGS (tighter than scikit-learn's default 1e-4).
    classes : array-like or None
        Accepted for the common model interface; a fit predicts the classes it saw.
    random_state : int
        Unused (a convex optimum has no seed); kept for the common interface.

    There is no ``warm_start``: the optimum of a strictly convex problem does not depend on where
    the solver starts, so "pretraining" cannot change it (the S4 experiment skips the pretrained
    copy of these models, with that reason).
    """

    grid = LOGREG_C
    path_axis = "C"

    def __init__(self, C=1.0, tol=1e-6, max_iter=5000, classes=None, random_state=0):
        self.C = C
        self.tol = tol
        self.max_iter = max_iter
        self.classes = classes
        self.random_state = random_state

    def _solver(self, C, warm):
        return LogisticRegression(C=C, tol=self.tol, max_iter=self.max_iter, class_weight="balanced",
                                  solver="lbfgs", warm_start=warm)

    def predict_proba(self, X):
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(validate_data(self, X, dtype=np.float64, reset=False))

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
        # One solver walks the path: each C starts from the previous optimum (warm start), so the
        # many weakly penalised fits, slow from zero on separable data, take a few iterations each.
        order = sorted(range(len(candidates)), key=lambda i: candidates[i]["C"])
        solver = self._solver(candidates[order[0]]["C"], warm=True)
        X_tr, X_va = np.asarray(X_tr, dtype=np.float64), np.asarray(X_va, dtype=np.float64)
        out: list = [None] * len(candidates)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for i in order:
                solver.set_params(C=candidates[i]["C"]).fit(X_tr, y_tr)
                fitted = self.__class__(**{**self.get_params(), "C": candidates[i]["C"]})
                fitted.model_ = solver  # the path's current optimum, judged like a fit's
                constant = fitted._constant_if_null(X_tr, y_tr)
                pred = solver.predict(X_va) if constant is None else np.full(len(X_va), constant, dtype=solver.classes_.dtype)
                out[i] = (dict(candidates[i]), pred)
        return out

    def _null_objective(self, y) -> float:
        # balanced weights give every class the same total weight: uniform probabilities are best
        classes = np.unique(y)
        return float(self.C * len(y) * np.log(classes.size))

    def objective(self, X, y) -> float:
        check_is_fitted(self, "model_")
        X = np.asarray(X, dtype=np.float64)
        classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        w = len(y) / (classes.size * counts[codes])
        coef, intercept = self.model_.coef_, self.model_.intercept_
        scores = X @ coef.T + intercept
        if classes.size == 2:  # one coefficient vector: the binomial loss
            margin = np.where(codes == 1, 1.0, -1.0) * scores[:, 0]
            loss = np.logaddexp(0.0, -margin)
        else:
            loss = np.logaddexp.reduce(scores, axis=1) - scores[np.arange(len(y)), codes]
        return float(self.C * np.sum(w * loss) + 0.5 * np.sum(coef**2))


class LinearSVM(_ConvexLinear):
    """L2-penalised linear SVM (squared hinge, liblinear) solved to convergence, balanced class weights.

    Parameters as :class:`RidgeLogisticRegression`; ``C`` as scikit-learn's ``LinearSVC``.
    """

    grid = SVM_C

    def __init__(self, C=1.0, tol=1e-5, max_iter=50000, classes=None, random_state=0):
        self.C = C
        self.tol = tol
        self.max_iter = max_iter
        self.classes = classes
        self.random_state = random_state

    # Coordinate descent on the dual is fastest on separable data with fewer samples than genes,
    # but after linear signal removal it stalls: on ALL sex it hit 50,000 iterations (6.7 s) for
    # C ≥ 10 where liblinear's primal Newton solver converged in 2 steps (0.01 s). Same problem,
    # same optimum: the dual gets this many iterations, then the primal solves it. With more
    # samples than genes the primal goes first (scikit-learn's dual="auto" rule).
    DUAL_ITERATIONS = 1000

    def _solver(self, C, warm):
        return LinearSVC(C=C, tol=self.tol, max_iter=self.max_iter, class_weight="balanced", dual=True,
                         random_state=0)

    def _solve(self, X, y) -> bool:
        if X.shape[0] <= X.shape[1] and not _zero_is_optimal(X, y):
            self.model_.set_params(dual=True, max_iter=min(self.DUAL_ITERATIONS, self.max_iter))
            if _fit_converged(self.model_, X, y):
                return True
        self.model_.set_params(dual=False, max_iter=self.max_iter)
        return _fit_converged(self.model_, X, y)

    def _null_objective(self, y) -> float | None:
        # binary, balanced: w = 0, b = 0 puts every margin at 0, a squared hinge of 1 each
        return float(self.C * len(y)) if np.unique(y).size == 2 else None

    def objective(self, X, y) -> float:
        """Binary problems: liblinear penalises the intercept too (``intercept_scaling=1``)."""
        check_is_fitted(self, "model_")
        X = np.asarray(X, dtype=np.float64)
        classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        if classes.size != 2:
            raise ValueError("the objective is written out for binary problems only")
        w = len(y) / (classes.size * counts[codes])
        coef, intercept = self.model_.coef_[0], self.model_.intercept_[0]
        margin = np.where(codes == 1, 1.0, -1.0) * (X @ coef + intercept)
        return float(self.C * np.sum(w * np.maximum(0.0, 1.0 - margin) ** 2) + 0.5 * (coef @ coef + intercept**2))
