"""The simpler non-linear models (rbf_svm, knn, gbdt, rf): scikit-learn conventions and their own promises."""

import warnings
from unittest import mock

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from sklearn.utils.estimator_checks import check_estimator
from threadpoolctl import threadpool_info

from linsig.models.base import Tunable
from linsig.models.nonlinear import (
    BalancedKNN,
    GradientBoostedTrees,
    RandomForest,
    RBFSVM,
    bin_codes,
    quantile_edges,
)

MODELS = [RBFSVM, BalancedKNN, GradientBoostedTrees, RandomForest]
# 500 trees make each of the ~55 estimator checks slow; the forest's logic does not depend on the count
SMALL = {RandomForest: {"n_estimators": 25}}


def small(cls, **params):
    return cls(**{**SMALL.get(cls, {}), **params})


def xor_like(n, seed, n_noise=3, shift=3.0):
    """Two features of the paper's `mixed` non-linear kind (class 1 at ±shift, sign drawn per value)
    and noise features: no line separates the classes, their means are equal."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    X = rng.standard_normal((n, 2 + n_noise))
    signs = rng.choice([-1.0, 1.0], size=(n, 2))
    X[:, :2] += shift * signs * y[:, None]
    return X, y


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_sklearn_estimator_checks(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(small(cls, random_state=0), on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    assert not failed, failed
    assert len(results) > 40


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_params_are_plain_and_clone_keeps_them(cls):
    classes = np.arange(3)
    model = cls(classes=classes, random_state=7, threads=2)
    params = model.get_params()
    assert params["random_state"] == 7 and params["threads"] == 2 and params["classes"] is classes
    copy = clone(model)
    assert copy.get_params().keys() == params.keys()
    assert all(np.array_equal(copy.get_params()[k], v) for k, v in params.items())
    space = model.search_space("full")
    assert space and model.chosen_params().keys() == {k for c in space for k in c}
    copy.set_params(**space[-1])
    assert {k: copy.get_params()[k] for k in space[-1]} == space[-1]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_search_spaces_fast_is_a_subset_of_full(cls):
    model = cls()
    full, fast = model.search_space("full"), model.search_space("fast")
    assert fast and all(c in full for c in fast) and len(fast) <= len(full)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_learns_a_problem_no_line_can_separate(cls):
    X, y = xor_like(300, seed=0)
    X_test, y_test = xor_like(400, seed=1)
    linear = LogisticRegression(class_weight="balanced").fit(X, y)
    assert balanced_accuracy_score(y_test, linear.predict(X_test)) < 0.65
    model = small(cls, random_state=0).fit(X, y)
    assert balanced_accuracy_score(y_test, model.predict(X_test)) >= 0.9


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_fixed_random_state_gives_identical_predictions(cls):
    X, y = xor_like(150, seed=2)
    X_test, _ = xor_like(60, seed=3)
    groups = np.arange(len(y)) // 3
    a = small(cls, random_state=5).fit(X, y, groups=groups)
    b = small(cls, random_state=5).fit(X, y, groups=groups)
    method = "decision_function" if cls is RBFSVM else "predict_proba"
    np.testing.assert_array_equal(getattr(a, method)(X_test), getattr(b, method)(X_test))
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))
    if cls in (RandomForest, GradientBoostedTrees):  # their fits draw random numbers: the seed matters
        c = small(cls, random_state=6).fit(X, y, groups=groups)
        assert not np.array_equal(a.predict_proba(X_test), c.predict_proba(X_test))


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_bad_input_is_refused(cls):
    X, y = xor_like(40, seed=0)
    with pytest.raises(ValueError, match="threads"):
        small(cls, threads=0).fit(X, y)
    with pytest.raises(ValueError, match="not in classes"):
        small(cls, classes=np.arange(1)).fit(X, y)


def test_fit_summary_reports_the_training_length():
    X, y = xor_like(100, seed=10)
    svm = RBFSVM().fit(X, y)
    assert svm.fit_summary()["epochs_trained"] == int(np.max(svm.model_.n_iter_)) > 0
    assert RandomForest(n_estimators=7).fit(X, y).fit_summary() == {
        "epochs_trained": 7, "best_epoch": 7, "diverged": False, "converged": True}
    assert BalancedKNN().fit(X, y).fit_summary()["epochs_trained"] == 0


# -------------------------------------------------------------------------------------- rbf_svm


def test_rbf_svm_gamma_is_a_multiple_of_scikit_learns_scale():
    X, y = xor_like(120, seed=4)
    X_test, _ = xor_like(50, seed=5)
    model = RBFSVM(C=3.0, gamma_factor=1.0).fit(X, y)
    assert model.gamma_ == pytest.approx(1.0 / (X.shape[1] * X.var()))
    reference = SVC(C=3.0, gamma="scale", class_weight="balanced").fit(X, y)
    np.testing.assert_array_equal(model.predict(X_test), reference.predict(X_test))
    np.testing.assert_allclose(model.decision_function(X_test), reference.decision_function(X_test), rtol=1e-6, atol=1e-8)
    assert RBFSVM(gamma_factor=0.1).fit(X, y).gamma_ == pytest.approx(0.1 * model.gamma_)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_rbf_svm_kernel_reuse_matches_one_fit_per_candidate(n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.random((90, 30))
    y = np.arange(90) % n_classes
    X[:, :3] += 0.4 * np.eye(n_classes, 3)[y]
    X_tr, y_tr, X_va, y_va = X[:60], y[:60], X[60:], y[60:]
    model = RBFSVM(classes=np.arange(n_classes))
    candidates = model.search_space("full")
    fast = model.candidate_predictions(X_tr, y_tr, None, X_va, y_va, candidates)
    separate = Tunable.candidate_predictions(model, X_tr, y_tr, None, X_va, y_va, candidates)
    assert [p for p, _ in fast] == candidates
    for (_, a), (_, b) in zip(fast, separate):
        np.testing.assert_array_equal(a, b)
    assert len({tuple(p) for _, p in fast}) > 1  # the candidates really differ on these data


# ------------------------------------------------------------------------------------------ knn


def test_knn_votes_are_weighted_by_inverse_class_frequency():
    # 4 samples of class 0 near the origin, 1 of class 1; the query's 3 nearest are two 0s and the 1.
    X = np.array([[0.0], [0.1], [5.0], [6.0], [0.3]])
    y = np.array([0, 0, 0, 0, 1])
    model = BalancedKNN(n_neighbors=3).fit(X, y)
    np.testing.assert_allclose(model.class_vote_, [5 / (2 * 4), 5 / (2 * 1)])
    # class 0: 2 × 0.625 = 1.25, class 1: 2.5 -> 1/3 and 2/3 (a plain majority vote says class 0)
    np.testing.assert_allclose(model.predict_proba([[0.2]]), [[1 / 3, 2 / 3]], rtol=1e-8)
    assert model.predict([[0.2]])[0] == 1
    assert KNeighborsClassifier(3).fit(X, y).predict([[0.2]])[0] == 0


def test_knn_exact_tie_goes_to_the_class_whose_neighbours_are_nearer():
    X = np.array([[0.0], [0.5], [0.6], [9.0], [9.1], [9.2]])
    y = np.array([1, 0, 0, 1, 0, 0])  # 4 of class 0 (vote 0.75), 2 of class 1 (vote 1.5)
    model = BalancedKNN(n_neighbors=3).fit(X, y)
    assert model.predict([[0.1]])[0] == 1  # neighbours 1 (0.1 away), 0, 0: 1.5 against 1.5
    assert model.predict([[0.55]])[0] == 0  # neighbours 0, 0, 1: the same tie, class 0 nearer
    proba = model.predict_proba([[0.1], [0.55]])
    np.testing.assert_allclose(proba, 0.5, rtol=1e-8)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict([[0.1], [0.55]]))


def test_knn_balanced_votes_beat_majority_votes_on_imbalanced_classes():
    def draw(n0, n1, seed):
        rng = np.random.default_rng(seed)
        X = np.vstack([rng.normal(0.0, 1.0, (n0, 2)), rng.normal(1.5, 1.0, (n1, 2))])
        return X, np.r_[np.zeros(n0, int), np.ones(n1, int)]

    X, y = draw(270, 30, seed=0)
    X_test, y_test = draw(500, 500, seed=1)
    balanced = balanced_accuracy_score(y_test, BalancedKNN(n_neighbors=15).fit(X, y).predict(X_test))
    majority = balanced_accuracy_score(y_test, KNeighborsClassifier(15).fit(X, y).predict(X_test))
    assert balanced > majority + 0.1
    assert balanced > 0.7


@pytest.mark.parametrize("n_classes", [2, 3])
def test_knn_one_query_for_all_k_matches_one_fit_per_candidate(n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.random((80, 6))
    # ten training samples twice (labels drawn independently): distance ties must break the same way
    X_tr, X_va = np.vstack([X[:50], X[:10]]), np.vstack([X[50:], X[:5] + 0.01])
    y_tr, y_va = rng.integers(0, n_classes, 60), rng.integers(0, n_classes, 35)
    model = BalancedKNN()
    candidates = model.search_space("full", len(X_tr))
    assert [c["n_neighbors"] for c in candidates] == [21, 15, 11, 7, 5, 3, 1]  # k ≤ 60 // 2, largest first
    fast = model.candidate_predictions(X_tr, y_tr, None, X_va, y_va, candidates)
    separate = Tunable.candidate_predictions(model, X_tr, y_tr, None, X_va, y_va, candidates)
    assert [p for p, _ in fast] == candidates
    for (_, a), (_, b) in zip(fast, separate):
        np.testing.assert_array_equal(a, b)


def test_knn_search_space_and_fit_respect_the_training_size():
    assert BalancedKNN().search_space("full", 3) == [{"n_neighbors": 1}]
    assert [c["n_neighbors"] for c in BalancedKNN().search_space("fast")] == [31, 15, 7, 3]
    X, y = xor_like(12, seed=0)
    model = BalancedKNN(n_neighbors=31).fit(X, y)
    assert model.n_neighbors_ == 6  # at most half the training samples: a neighbourhood, not a census
    assert model.predict(X).shape == (12,)


# ----------------------------------------------------------------------------------------- gbdt


def test_gbdt_early_stopping_holds_out_whole_groups():
    X, y = xor_like(240, seed=6)
    groups = np.repeat(np.arange(60), 4)
    model = GradientBoostedTrees(random_state=0).fit(X, y, groups=groups)
    fit_groups, held_groups = set(groups[model.fit_idx_]), set(groups[model.holdout_idx_])
    assert held_groups and not fit_groups & held_groups
    assert np.array_equal(np.sort(np.r_[model.fit_idx_, model.holdout_idx_]), np.arange(len(y)))
    assert 0.1 < len(model.holdout_idx_) / len(y) < 0.3
    # the booster was scored on the held-out part after every round and stopped before the cap
    assert len(model.model_.validation_score_) == model.n_iter_ + 1
    assert model.best_iter_ == int(np.argmax(model.model_.validation_score_))
    assert model.n_iter_ < model.max_iter and model.converged_
    summary = model.fit_summary()
    assert summary["epochs_trained"] == model.n_iter_ and summary["best_epoch"] == model.best_iter_
    assert summary["best_epoch"] <= summary["epochs_trained"]


def test_gbdt_without_enough_groups_boosts_a_fixed_number_of_rounds():
    X, y = xor_like(60, seed=7)
    model = GradientBoostedTrees(fallback_iter=40).fit(X, y, groups=np.arange(60) % 3)  # 3 groups < 5
    assert model.holdout_idx_.size == 0 and model.fit_idx_.size == 60
    assert model.n_iter_ == 40 and model.fit_summary()["epochs_trained"] == 40


def test_gbdt_balanced_class_weights_on_both_sides_of_the_holdout():
    X, y = xor_like(200, seed=8)
    with mock.patch.object(HistGradientBoostingClassifier, "fit", autospec=True,
                           side_effect=HistGradientBoostingClassifier.fit) as fit:
        model = GradientBoostedTrees().fit(X, y)
    booster, *_ = fit.call_args.args
    assert booster.class_weight == "balanced"
    y_val, weights = fit.call_args.kwargs["y_val"], fit.call_args.kwargs["sample_weight_val"]
    np.testing.assert_allclose([weights[y_val == c].sum() for c in (0, 1)], len(y_val) / 2)
    assert model.n_iter_ >= 1


def test_gbdt_bins_at_unweighted_quantiles():
    rng = np.random.default_rng(0)
    X = np.c_[rng.random(1000), np.round(rng.random(1000), 1), np.zeros(1000)]
    edges = quantile_edges(X, 255)
    codes = bin_codes(X, edges)
    assert edges.shape == (254, 3)
    counts = np.bincount(codes[:, 0].astype(int))
    assert counts.size == 255 and counts.min() >= 3 and counts.max() <= 5  # ~1000 / 255 a bin
    # few distinct values: one bin each, in order
    assert np.unique(codes[:, 1]).size == 11
    assert np.all(np.diff(codes[np.argsort(X[:, 1]), 1]) >= 0)
    assert np.unique(codes[:, 2]).size == 1
    # NumPy's averaged_inverted_cdf quantiles: the midpoint of two samples on a rank boundary
    for n in (10, 7):
        column = rng.random((n, 2))
        np.testing.assert_allclose(quantile_edges(column, 5),
                                   np.quantile(column, [0.2, 0.4, 0.6, 0.8], axis=0, method="averaged_inverted_cdf"))
    np.testing.assert_allclose(quantile_edges(np.arange(10.0)[:, None], 5)[:, 0], [1.5, 3.5, 5.5, 7.5])


def _binned_by_scikit_learn(model, X, y, X_test):
    """The pipeline before issue 25 (lever 4): codes at the fit part's quantile edges, binned again
    by scikit-learn (one bin per distinct code) — what the booster fitted on pre-binned codes must equal."""
    edges = quantile_edges(X[model.fit_idx_], model.max_bins)
    booster = HistGradientBoostingClassifier(
        learning_rate=model.learning_rate, max_leaf_nodes=model.max_leaf_nodes, min_samples_leaf=model.min_samples_leaf,
        l2_regularization=model.l2_regularization, max_bins=model.max_bins, max_features=model.max_features,
        class_weight="balanced", random_state=model.random_state)
    if model.holdout_idx_.size == 0:
        booster.set_params(max_iter=model.fallback_iter, early_stopping=False).fit(bin_codes(X, edges), y)
    else:
        y_ho = y[model.holdout_idx_]
        booster.set_params(max_iter=model.max_iter, early_stopping=True, scoring="loss",
                           n_iter_no_change=model.n_iter_no_change, tol=model.tol, validation_fraction=None)
        booster.fit(bin_codes(X[model.fit_idx_], edges), y[model.fit_idx_],
                    X_val=bin_codes(X[model.holdout_idx_], edges), y_val=y_ho,
                    sample_weight_val=compute_sample_weight("balanced", y_ho))
    return booster, booster.predict_proba(bin_codes(X_test, edges))


@pytest.mark.parametrize("case", ["continuous", "ties", "few samples", "no holdout", "three classes"])
@pytest.mark.parametrize("max_features", [1.0, 0.2])
def test_gbdt_on_its_own_bins_predicts_as_scikit_learn_binning_the_codes(case, max_features):
    n = 60 if case == "few samples" else 300
    X, y = xor_like(n, seed=11, n_noise=6)
    if case == "ties":
        X[:, 2:] = np.round(X[:, 2:], 1)  # few distinct values, codes with gaps
        X[:, -1] = 0.0  # and a constant feature
    if case == "three classes":
        y = np.where(X[:, 3] > 0.5, 2, y)
    groups = np.arange(n) % 3 if case == "no holdout" else None
    X_test = np.random.default_rng(1).standard_normal((200, X.shape[1])) * 2  # values beyond the training range too
    X_test[:50] = X[:50] + 1e-3
    model = GradientBoostedTrees(max_iter=60, n_iter_no_change=5, max_features=max_features).fit(X, y, groups=groups)
    booster, expected = _binned_by_scikit_learn(model, X, y, X_test)
    assert model.n_iter_ == booster.n_iter_
    np.testing.assert_array_equal(model.predict_proba(X_test), expected)
    np.testing.assert_array_equal(model.predict(X_test), booster.classes_[np.argmax(expected, axis=1)])


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gbdt_candidates_share_one_binning_and_match_one_fit_per_candidate(n_classes):
    X, y = xor_like(240, seed=12)
    y = np.where(X[:, 2] > 1.0, 2, y) if n_classes == 3 else y
    groups = np.arange(240) // 4
    X_tr, y_tr, g_tr, X_va, y_va = X[:180], y[:180], groups[:180], X[180:], y[180:]
    model = GradientBoostedTrees(max_iter=80)
    candidates = model.search_space("full")
    with mock.patch("linsig.models.nonlinear.quantile_edges", side_effect=quantile_edges) as edges:
        shared = model.candidate_predictions(X_tr, y_tr, g_tr, X_va, y_va, candidates)
    assert edges.call_count == 1
    separate = Tunable.candidate_predictions(model, X_tr, y_tr, g_tr, X_va, y_va, candidates)
    assert [p for p, _ in shared] == candidates
    for (_, a), (_, b) in zip(shared, separate):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------- rf


def _sklearn_forest(n_estimators, X, y, seed=0):
    return RandomForestClassifier(n_estimators=n_estimators, max_features=0.1, class_weight="balanced_subsample",
                                  n_jobs=1, random_state=seed).fit(X.astype(np.float32), y)


def test_rf_stops_growing_once_the_out_of_bag_votes_hold_and_keeps_the_first_trees():
    rng = np.random.default_rng(13)
    y = rng.permutation(np.arange(200) % 2)
    X = rng.standard_normal((200, 40))
    X[:, :10] += 4.0 * y[:, None]  # separable on a quarter of the features: the votes settle early
    X_test = np.random.default_rng(2).standard_normal((300, X.shape[1])) * 3
    model = RandomForest(random_state=3).fit(X, y)
    assert model.n_iter_ in (75, 100, 125, 150, 175) and len(model.model_.estimators_) == model.n_iter_
    assert model.fit_summary()["epochs_trained"] == model.n_iter_
    # exactly the forest of that many trees with the same seed (warm_start's trees are its prefix)
    reference = _sklearn_forest(model.n_iter_, X, y, seed=3)
    np.testing.assert_array_equal(model.predict_proba(X_test), reference.predict_proba(X_test.astype(np.float32)))


def test_rf_grows_every_tree_where_the_votes_still_move_or_without_a_plateau():
    rng = np.random.default_rng(14)
    X, y = rng.standard_normal((200, 30)), rng.permutation(np.arange(200) % 2)  # no signal: votes keep flipping
    X_test = rng.standard_normal((100, 30))
    for model in (RandomForest(random_state=1).fit(X, y), RandomForest(random_state=1, plateau_trees=None).fit(X, y)):
        assert model.n_iter_ == 200
        np.testing.assert_array_equal(model.predict_proba(X_test),
                                      _sklearn_forest(200, X, y, seed=1).predict_proba(X_test.astype(np.float32)))


# -------------------------------------------------------------------------------------- threads


def test_threads_bound_the_forest_and_the_booster():
    X, y = xor_like(80, seed=9)
    assert RandomForest(n_estimators=5, threads=2).fit(X, y).model_.n_jobs == 2
    for threads in (1, 2):
        seen = []

        def record(*args, **kwargs):
            seen.append(_openmp_effective_n_threads())
            return original(*args, **kwargs)

        original = HistGradientBoostingClassifier.fit
        with mock.patch.object(HistGradientBoostingClassifier, "fit", autospec=True, side_effect=record):
            GradientBoostedTrees(threads=threads).fit(X, y)
        assert seen == [threads]


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_bound_blas_in_kernel_and_distance_computations(threads):
    if not any(info["user_api"] == "blas" for info in threadpool_info()):
        pytest.skip("no BLAS library found by threadpoolctl")
    X, y = xor_like(60, seed=11)
    from linsig.models import nonlinear

    for name, model in (("rbf_kernel", RBFSVM(threads=threads)), ("pairwise_distances_chunked", BalancedKNN(threads=threads))):
        seen = []
        original = getattr(nonlinear, name)

        def record(*args, _original=original, **kwargs):
            seen.append({info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"})
            return _original(*args, **kwargs)

        with mock.patch.object(nonlinear, name, side_effect=record):
            model.candidate_predictions(X[:40], y[:40], None, X[40:], y[40:], model.search_space("fast", 40))
        assert seen and all(s == {threads} for s in seen), (name, seen)
