"""The two training recipes (issue 9): strong models at their capacity, the paper's bit for bit."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import check_estimator

import linsig.data.simulate as sim
from linsig import tasks
from linsig.data.preprocess import preprocess
from linsig.diagnostics import MESSAGE, undertrained_sentences, undertraining
from linsig.evaluation import Settings, Unit, evaluate, run_unit
from linsig.models import FAMILIES, LINEAR_MODELS, get_family, is_linear, make_model
from linsig.models.base import Tunable
from linsig.models.linear import LinearSVM, RidgeLogisticRegression
from linsig.recipes import resolve_tuning
from linsig.tuning import tune

from golden import assert_results, assert_scores, one_sample, recorded_here

FIXTURES = Path(__file__).parent / "fixtures" / "paper_recipe"


def _recorded_here() -> bool:
    return recorded_here(json.loads((FIXTURES / "machine.json").read_text()))


def _binary(n=160, d=30, seed=0, shift=0.8, imbalance=0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < imbalance).astype(int)
    X = rng.normal(size=(n, d)) + shift * y[:, None] * (rng.random(d) < 0.3)
    return X, y


# --------------------------------------------------------------------------------------------
# Linear models solved to their optimum
# --------------------------------------------------------------------------------------------

def _balanced_weights(y):
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    return codes, len(y) / (classes.size * counts[codes])


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_logreg_reaches_the_optimum_of_scikit_learns_objective(C):
    X, y = _binary()
    model = RidgeLogisticRegression(C=C).fit(X, y)
    codes, w = _balanced_weights(y)
    sign = np.where(codes == 1, 1.0, -1.0)

    def objective(theta):  # C · Σ w_i log(1 + exp(-y_i f_i)) + ½‖β‖², intercept unpenalised
        beta, b = theta[:-1], theta[-1]
        margin = sign * (X @ beta + b)
        p = -sign / (1 + np.exp(margin))
        grad = np.append(C * (X.T @ (w * p)) + beta, C * np.sum(w * p))
        return C * np.sum(w * np.logaddexp(0, -margin)) + 0.5 * beta @ beta, grad

    best = minimize(objective, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                    options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20000})
    assert model.converged_
    assert model.objective(X, y) == pytest.approx(best.fun, rel=1e-7)
    theta = np.append(model.model_.coef_[0], model.model_.intercept_[0])
    assert objective(theta)[0] == pytest.approx(best.fun, rel=1e-7)


def test_multinomial_logreg_objective_and_path():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    X = rng.normal(size=(150, 12)) + np.eye(3)[y] @ rng.normal(size=(3, 12))
    cold = {C: RidgeLogisticRegression(C=C).fit(X[:100], y[:100]) for C in (0.1, 1.0, 10.0)}
    # the warm-started path of the tuning search ends at the same optima as cold fits
    path = RidgeLogisticRegression().candidate_predictions(X[:100], y[:100], None, X[100:], y[100:],
                                                           [{"C": 0.1}, {"C": 1.0}, {"C": 10.0}])
    for params, pred in path:
        np.testing.assert_array_equal(pred, cold[params["C"]].predict(X[100:]))
    m = cold[1.0]
    assert m.model_.coef_.shape == (3, 12)  # multinomial, not one-vs-rest
    # perturbing the optimum only raises the objective
    base = m.objective(X[:100], y[:100])
    m.model_.coef_ = m.model_.coef_ + 1e-3
    assert m.objective(X[:100], y[:100]) > base


def test_linear_svm_reaches_the_optimum_of_scikit_learns_objective():
    X, y = _binary(n=120, d=10, shift=1.5)
    C = 0.5
    model = LinearSVM(C=C).fit(X, y)
    codes, w = _balanced_weights(y)
    sign = np.where(codes == 1, 1.0, -1.0)

    def objective(theta):  # liblinear: ½(‖β‖² + b²) + C Σ w_i max(0, 1 − y_i f_i)²
        slack = np.maximum(0.0, 1 - sign * (X @ theta[:-1] + theta[-1]))
        grad_f = -2 * C * w * slack * sign
        return (0.5 * theta @ theta + C * np.sum(w * slack**2), theta + np.append(X.T @ grad_f, grad_f.sum()))

    best = minimize(objective, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                    options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20000})
    assert model.converged_
    assert model.objective(X, y) == pytest.approx(best.fun, rel=1e-5)


def test_linear_svm_goes_straight_to_the_primal_where_zero_is_the_optimum(monkeypatch):
    """After linear signal removal the classes' means coincide, so w = 0 is the optimum; the dual's
    coordinate descent cannot tell and ran 1,000 passes per fit (issue 25): the primal is asked first."""
    import linsig.models.linear as linear
    from linsig.signal import remove_linear_signal

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [30, 50])
    X = rng.random((80, 200)) + 0.5 * y[:, None] * (rng.random(200) < 0.2)  # fewer samples than genes
    removed = remove_linear_signal(X, y)
    assert linear._zero_is_optimal(removed, y) and not linear._zero_is_optimal(X, y)
    assert not linear._zero_is_optimal(removed[:60], np.repeat([0, 1, 2], 20))  # several classes: not judged
    duals = []
    real = linear._fit_converged
    monkeypatch.setattr(linear, "_fit_converged", lambda solver, X, y: duals.append(solver.dual) or real(solver, X, y))
    for C in (1e-3, 1.0, 100.0):
        model = LinearSVM(C=C).fit(removed, y)
        # the optimum w = 0: nothing learned, a constant prediction (the majority class)
        assert model.converged_ and model.constant_ == 1 and set(model.predict(removed)) == {1}
        assert model.objective(removed, y) == pytest.approx(model._null_objective(y), rel=1e-6)
    assert duals == [False, False, False]
    duals.clear()
    LinearSVM(C=1.0).fit(X, y)  # a real class difference: the dual first, as before
    assert duals[0] is True


@pytest.mark.parametrize("name", ["logreg", "svm", "mlp3", "mlp5"])
def test_strong_models_are_scikit_learn_estimators(name):
    cls = get_family(name).estimator_class("strong")
    params = {"max_epochs": 5} if name.startswith("mlp") else {}
    expected = {}
    if name.startswith("mlp"):  # same reason as the paper's networks (tests/test_models.py)
        expected = {"check_classifiers_train": "hidden layers of d/2 and d/4 units are 1 unit wide for d = 2 features"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(cls(**params), on_fail=None, expected_failed_checks=expected)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    assert not failed, failed


# --------------------------------------------------------------------------------------------
# One tuning mechanism
# --------------------------------------------------------------------------------------------

def test_every_strong_model_declares_a_search_space():
    for name, family in FAMILIES.items():
        est = make_model(name, "strong")
        full, fast = est.search_space("full"), est.search_space("fast")
        assert full and fast and len(fast) <= len(full), name
        assert all(isinstance(c, dict) and c for c in full), name


def test_batch_norm_makes_centred_inputs_the_same_network_so_mlp5_does_not_search_them():
    from linsig.models.networks import build_network

    torch.manual_seed(0)
    X = torch.rand(32, 40, dtype=torch.float64)
    y = torch.arange(32) % 2
    shifted = X - X.mean(dim=0)
    out, grads = {}, {}
    for arch in ("mlp5", "mlp3"):
        net = build_network(arch, 40, 2, dropout=0.0).double().train()
        for name, inputs in (("given", X), ("centred", shifted)):
            net.zero_grad()
            scores = net(inputs)
            torch.nn.functional.cross_entropy(scores, y).backward()
            out[arch, name], grads[arch, name] = scores.detach(), net[0].weight.grad.clone()
    # batch norm after the first layer removes the constant shift of each unit, forward and backward
    torch.testing.assert_close(out["mlp5", "centred"], out["mlp5", "given"])
    torch.testing.assert_close(grads["mlp5", "centred"], grads["mlp5", "given"])
    assert not torch.allclose(out["mlp3", "centred"], out["mlp3", "given"])
    mlp3, mlp5 = make_model("mlp3", "strong").search_space("full"), make_model("mlp5", "strong").search_space("full")
    assert [c["lr"] for c in mlp3] == [1e-4, 1e-3, 3e-3, 1e-3] and mlp3[-1]["center"] is True
    assert [c["lr"] for c in mlp5] == [3e-4, 1e-3, 3e-3] and not any("center" in c for c in mlp5)
    assert [c["lr"] for c in make_model("mlp5", "strong").search_space("fast")] == [3e-4, 1e-3]


def test_strong_tuning_uses_pooled_balanced_accuracy_and_breaks_ties_in_the_middle():
    X, y = _binary(n=200, d=20, shift=1.0)
    groups = np.arange(200) // 10
    est = RidgeLogisticRegression()
    result = tune(est, X, y, groups, "full", seed=0, recipe="strong")
    assert result.tuned and len(result.trials) == len(est.search_space("full"))
    scores = [t["score"] for t in result.trials]
    tied = [i for i, s in enumerate(scores) if s == max(scores)]
    assert result.params == {"C": result.trials[tied[(len(tied) - 1) // 2]]["C"]} and result.score == max(scores)
    assert tune(est, X, y, groups, "off", recipe="strong").params == {}
    # separable data: every C above a threshold is perfect; the centre of the plateau wins, not
    # its strongly penalised end (which, reused on a small training subset, predicts one class) —
    # for a model whose own C is no candidate; one whose own C is on the plateau keeps it
    Xs, ys = _binary(n=120, d=10, shift=6.0, imbalance=0.5)
    plateau = tune(RidgeLogisticRegression(C=0.5), Xs, ys, np.arange(120) // 6, "full", recipe="strong")
    perfect = [t["C"] for t in plateau.trials if t["score"] == 1.0]
    assert len(perfect) >= 3 and plateau.params["C"] == perfect[(len(perfect) - 1) // 2]
    assert tune(RidgeLogisticRegression(), Xs, ys, np.arange(120) // 6, "full", recipe="strong").params == {"C": 1.0}


class _Scripted(Tunable, BaseEstimator):
    """A model whose inner predictions are written out: sample ``i`` (``X[i, 0] == i``) is predicted
    right by candidate ``C`` exactly when ``i`` is in ``right[C]``."""

    def __init__(self, C=1.0, right=None):
        self.C = C
        self.right = right

    def search_space(self, level, n_samples=None):
        return [{"C": c} for c in sorted(self.right)]

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
        ids = X_va[:, 0].astype(int)
        return [(dict(c), np.where(np.isin(ids, list(self.right[c["C"]])), y_va, 1 - y_va)) for c in candidates]


def _scripted_search(right, C=1.0):
    y = np.tile([0, 1], 100)  # 100 samples a class, pooled over three inner folds of whole groups
    X = np.arange(200, dtype=float)[:, None]
    return tune(_Scripted(C=C, right=right), X, y, np.arange(200) // 10, "full", recipe="strong")


def test_candidates_that_cannot_be_told_apart_leave_the_model_its_own_parameters():
    """Issue 25, item 6: a best candidate within one paired standard error of the default is noise."""
    base = set(range(120))  # the default (C = 1) is right on 60 samples of each class
    # C = 0.01 wins 10 samples the default loses and loses 8 it wins: +2 samples, pooled balanced
    # accuracy +0.01 against a paired standard error of about 0.02, so the default stays
    noisy = (base - set(range(112, 120))) | set(range(120, 130))
    result = _scripted_search({0.01: noisy, 0.1: base - {0, 1}, 1.0: base, 10.0: base - {2, 3}})
    scores = {t["C"]: t["score"] for t in result.trials}
    assert scores[0.01] > scores[1.0] == max(s for c, s in scores.items() if c != 0.01)
    assert result.params == {"C": 1.0} and result.score == scores[1.0]
    # every candidate predicts alike: the default, not the middle of the tie (C = 0.1 of four)
    same = _scripted_search({c: base for c in (0.01, 0.1, 1.0, 10.0)})
    assert same.params == {"C": 1.0}
    # a clearly better candidate wins: 40 samples more, none lost (+0.2 against an SE of about 0.03)
    clear = _scripted_search({0.01: base | set(range(120, 160)), 0.1: base, 1.0: base, 10.0: base})
    assert clear.params == {"C": 0.01}
    # a model whose own parameters are not a candidate keeps the best, ties to the middle
    other = _scripted_search({c: base for c in (0.01, 0.1, 1.0, 10.0)}, C=3.0)
    assert other.params == {"C": 0.1}
    noisy_other = _scripted_search({0.01: noisy, 0.1: base, 1.0: base, 10.0: base}, C=3.0)
    assert noisy_other.params == {"C": 0.01}


class _ScriptedRuns(Tunable, BaseEstimator):
    """Candidates that are runs of their own (like a network's), scored after each of three epochs:
    run ``lr`` predicts sample ``i`` right exactly when ``i`` is in ``right[lr]``; ``calls`` records
    the candidates run on each inner fold."""

    path_axis, smooth_path, separate_runs = "epochs", True, True

    def __init__(self, right=None, calls=None):
        self.right = right
        self.calls = calls

    def search_space(self, level, n_samples=None):
        return [{"lr": lr} for lr in sorted(self.right)]

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
        self.calls.append([c["lr"] for c in candidates])
        ids = X_va[:, 0].astype(int)
        return [({**c, "epochs": e}, np.where(np.isin(ids, list(self.right[c["lr"]])), y_va, 1 - y_va))
                for c in candidates for e in (1, 2, 3)]


def _searched_runs(right, recipe=None):
    """A search of :class:`_ScriptedRuns` over 200 samples in 20 groups: (result, calls)."""
    y, X, groups = np.tile([0, 1], 100), np.arange(200, dtype=float)[:, None], np.arange(200) // 10
    calls = []
    return tune(_ScriptedRuns(right=right, calls=calls), X, y, groups, "full", recipe=recipe or "strong"), calls


def test_racing_stops_running_a_candidate_that_clearly_trails_after_an_inner_fold():
    """Issue 25, lever 2: a run far behind the leader is not repeated on the later inner folds."""
    import dataclasses

    from linsig.recipes import RECIPES
    everything = set(range(200))
    right = {1e-4: set(range(0, 200, 2)) | {1, 3},  # one class only: chance
             1e-3: everything, 3e-3: everything - {0, 57, 111, 170}}  # four samples short: too close to drop
    results, calls = {}, {}
    for name, recipe in {"raced": RECIPES["strong"],
                         "every fold": dataclasses.replace(RECIPES["strong"], race_within_se=None)}.items():
        results[name], calls[name] = _searched_runs(right, recipe)
    # the first candidate runs alone on the first fold (the ceiling's probe: it is not perfect)
    assert calls["every fold"] == [[1e-4], [1e-3, 3e-3]] + [[1e-4, 1e-3, 3e-3]] * 2
    assert results["every fold"].dropped == []
    assert calls["raced"] == [[1e-4], [1e-3, 3e-3], [1e-3, 3e-3], [1e-3, 3e-3]]
    assert results["raced"].dropped == [{"lr": 1e-4}]
    # the same winner and score; the dropped run has no pooled trials
    assert results["raced"].params == results["every fold"].params == {"lr": 1e-3, "epochs": 3}
    assert results["raced"].score == results["every fold"].score == 1.0
    assert {t["lr"] for t in results["raced"].trials} == {1e-3, 3e-3}
    # models whose candidates share one run (a warm-started path) are never raced nor probed
    calls["shared"] = []

    class SharedRun(_ScriptedRuns):
        separate_runs = False
    y, X, groups = np.tile([0, 1], 100), np.arange(200, dtype=float)[:, None], np.arange(200) // 10
    tune(SharedRun(right=right, calls=calls["shared"]), X, y, groups, "full", recipe="strong")
    assert calls["shared"] == [[1e-4, 1e-3, 3e-3]] * 3


def test_a_first_run_perfect_on_every_inner_fold_wins_without_the_others_being_run():
    """Issue 25, lever 2: balanced accuracy cannot exceed 1, so a perfect first run cannot be beaten."""
    from linsig.splits import kfold
    everything = set(range(200))
    perfect, calls = _searched_runs({1e-4: everything, 1e-3: everything, 3e-3: everything - {0}})
    assert calls == [[1e-4]] * 3
    assert perfect.params == {"lr": 1e-4, "epochs": 3} and perfect.score == 1.0
    assert perfect.dropped == [{"lr": 1e-3}, {"lr": 3e-3}] and {t["lr"] for t in perfect.trials} == {1e-4}
    # perfect on the first fold only: every run is made once, and the whole search decides
    folds = kfold(np.tile([0, 1], 100), np.arange(200) // 10, 3, "study", 0)
    missed = int(folds[1][1][0])  # a sample of the second inner fold
    result, calls = _searched_runs({1e-4: everything - {missed}, 1e-3: everything, 3e-3: everything - {0}})
    assert calls == [[1e-4], [1e-4], [1e-3, 3e-3], [1e-3, 3e-3], [1e-4, 1e-3, 3e-3]]
    assert result.params == {"lr": 1e-3, "epochs": 3} and result.score == 1.0 and result.dropped == []
    assert {t["lr"] for t in result.trials} == {1e-4, 1e-3, 3e-3}


def test_a_later_inner_fold_runs_a_network_no_further_than_the_earlier_folds_did(monkeypatch):
    """Issue 25, lever 2: epochs an earlier fold's run never reached cannot be pooled, so a later
    fold's run stops there; the search's choice, score and trials are those of the whole runs."""
    from linsig import search
    from linsig.models.strong_networks import StrongMLP3

    X, y = _binary(n=150, d=12, shift=0.6, imbalance=0.5)
    groups = np.arange(150) // 10

    def searched(capped):
        asked, epochs = [], []

        class Recorded(StrongMLP3):
            def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
                asked.append([c.get("epochs") for c in candidates])
                out = super().candidate_predictions(X_tr, y_tr, g_tr, X_va, y_va, candidates)
                epochs.append(len(out))
                return out
        if not capped:
            monkeypatch.setattr(search, "_up_to_earlier_ends", lambda active, *rest: active)
        result = tune(Recorded(max_epochs=40, patience=3), X, y, groups, "fast", recipe="strong")
        monkeypatch.undo()
        return result, asked, epochs

    capped, asked, epochs = searched(True)
    whole, asked_whole, epochs_whole = searched(False)
    assert all(e is None for call in asked_whole for e in call)
    # a run on a later fold is asked to stop where an earlier fold's run of that candidate did
    assert any(isinstance(e, int) and e < 40 for call in asked for e in call)
    assert sum(epochs) < sum(epochs_whole)  # these runs stop at different epochs on different folds
    assert capped.params == whole.params and capped.score == whole.score and capped.trials == whole.trials


def test_a_search_with_one_candidate_and_no_path_fits_nothing():
    """One candidate leaves nothing to choose: inner fits would only cost time (rf's fast search)."""
    from linsig.models.nonlinear import RandomForest

    X, y = _binary(n=120, d=8)
    calls = []

    def prepare(inner_train, inner_val):
        calls.append(len(inner_train))
        return X[inner_train], X[inner_val]
    forest = RandomForest(n_estimators=5)
    assert forest.search_space("fast") == [{"max_features": 0.1}]
    result = tune(forest, X, y, np.arange(120) // 6, "fast", recipe="strong", prepare=prepare)
    assert calls == [] and result.params == {"max_features": 0.1} and not result.tuned
    assert np.isnan(result.score) and result.trials == []
    from linsig.experiment.units import tuning_fits
    both_modes = dict(models=("rf",), signals=("none", "removed"))
    assert tuning_fits(Settings(tuning="fast", **both_modes), "rf") == 0  # the plan a dry run shows
    assert tuning_fits(Settings(tuning="full", **both_modes), "rf") == 2 * 3 * 2
    # a network's single learning rate still has its training length to choose on the inner folds
    from linsig.models.strong_networks import StrongMLP3

    class OneRate(StrongMLP3):
        learning_rates, centred_candidate = (1e-3,), False
    net = OneRate(max_epochs=4, patience=2)
    assert len(net.search_space("fast")) == 1
    chosen = tune(net, X, y, np.arange(120) // 6, "fast", recipe="strong", prepare=prepare)
    assert len(calls) == 3 and chosen.tuned and "epochs" in chosen.params


def test_strong_tuning_prepares_inner_folds_like_the_outer_ones():
    X, y = _binary(n=120, d=8)
    seen = []

    def prepare(inner_train, inner_val):
        seen.append((len(inner_train), len(inner_val)))
        return X[inner_train] * 0 + 1, X[inner_val] * 0 + 1  # no information left
    result = tune(RidgeLogisticRegression(), X, y, np.arange(120) // 6, "fast", recipe="strong", prepare=prepare)
    assert len(seen) == 3 and sum(v for _, v in seen) == 120
    assert result.score == pytest.approx(0.5)


def test_network_tuning_chooses_the_training_length_on_a_smoothed_curve():
    from linsig.search import _smooth_along

    trials = [{"lr": 1, "epochs": e, "score": s} for e, s in enumerate([0.5, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6], 1)]
    smoothed = _smooth_along(trials, "epochs", 3)
    assert smoothed[1] == pytest.approx((0.5 + 0.9 + 0.5) / 3) and smoothed[6] == pytest.approx(0.6)
    X, y = _binary(n=120, d=40, shift=2.0)  # d/2 and d/4 hidden units: wide enough to learn
    est = make_model("mlp3", "strong", max_epochs=20, patience=3)
    result = tune(est, X, y, np.arange(120) // 6, "fast", recipe="strong")
    assert {"lr", "epochs"} <= set(result.params) <= {"lr", "epochs", "center", "steps_per_epoch"}
    assert 1 <= result.params["epochs"] <= 20 and result.score > 0.8


def test_small_training_sets_get_longer_epochs_fixed_from_the_outer_training_set():
    from linsig.models.strong_networks import StrongMLP3, auto_steps_per_epoch

    # batches of ceil(n / 8): 13 samples at n = 100, so 31 steps visit 400 samples; from ~400 up, 8
    assert [auto_steps_per_epoch(n) for n in (10, 67, 100, 400, 800, 5000)] == [50, 45, 31, 8, 8, 8]
    est = StrongMLP3()
    # the inner runs (67 samples) and the outer fit (100) share the outer set's epoch length
    assert {c["steps_per_epoch"] for c in est.search_space("full", 100)} == {31}
    assert est.set_params(steps_per_epoch=31)._config(67, 5).min_steps_per_epoch == 31
    assert StrongMLP3()._config(67, 5).min_steps_per_epoch == 45  # untuned: from its own data
    assert "steps_per_epoch" not in StrongMLP3(steps_per_epoch=12).search_space("full", 100)[0]


def test_a_schedule_cut_short_cools_down_to_zero():
    from linsig.training import TrainConfig, make_optimizer

    def rates(config, steps):
        optimizer, scheduler = make_optimizer(torch.nn.Linear(2, 2), config, steps)
        out = []
        for _ in range((config.max_epochs + config.cooldown_epochs) * steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return np.array(out)

    common = dict(lr=1.0, optimizer="adamw", schedule="cosine", planned_epochs=100, warmup=0.05)
    cut = rates(TrainConfig(max_epochs=40, **common), 4)
    cooled = rates(TrainConfig(max_epochs=40, cooldown_epochs=8, **common), 4)
    # the same schedule up to the cut (where the cosine is still at ~0.65), then 32 steps falling
    # linearly towards 0 (the last one still a step)
    np.testing.assert_array_equal(cooled[:160], cut)
    assert cut[-1] > 0.6
    tail = cooled[160:]
    assert tail.size == 32 and tail[-1] == pytest.approx(cut[-1] / 33)
    np.testing.assert_allclose(np.diff(tail), -cut[-1] / 33)

    X, y = _binary(n=64, d=8, shift=2.0)
    trained = {kw: make_model("mlp3", "strong", max_epochs=20, **dict(kw)).fit(X, y).train_result_.epochs_trained
               for kw in [(("epochs", 10), ("cooldown", 0.0)), (("epochs", 10),), (("epochs", 20), ("cooldown", 0.2)), ()]}
    # a chosen length of 10 of 20 epochs: 2 more epochs of cool-down by default (none with
    # cooldown=0); the whole schedule needs none
    assert list(trained.values()) == [10, 12, 20, 20]
    assert make_model("mlp5", "strong", max_epochs=20, epochs=10).fit(X, y).train_result_.epochs_trained == 12


def test_recipes_resolve_their_defaults():
    strong, paper = Settings(), Settings(recipe="paper")
    assert (strong.tuning, strong.max_epochs, strong.batch_size, strong.patience) == ("full", 100, None, 20)
    assert (paper.tuning, paper.max_epochs, paper.batch_size, paper.patience, paper.weight_decay) == \
        ("paper", 50, 16, 7, 0.0)
    assert resolve_tuning("strong", "auto") == "full" and resolve_tuning("paper", "fast") == "fast"


# --------------------------------------------------------------------------------------------
# The paper recipe is unchanged
# --------------------------------------------------------------------------------------------

def _golden_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    X = (rng.normal(size=(120, 12)) + y[:, None] * 1.5).astype(np.float32)
    return X, y, np.arange(120) % 10


@pytest.mark.parametrize("name", ["logreg", "svm", "mlp3", "mlp5"])
def test_paper_models_are_bit_for_bit_as_before(name):
    """Scores recorded from the paper's models before the strong recipe existed (commit 6c26233).

    Bit for bit on the recording machine, to float32 precision on any other CPU (tests/golden.py).
    """
    golden = json.loads((FIXTURES / "golden_scores.json").read_text())[name]
    X, y, groups = _golden_data()
    m = make_model(name, "paper", random_state=0, max_epochs=8, lr=3e-3, weight_decay=1e-3).fit(X, y, groups=groups)
    assert_scores(m.decision_function(X[:16]), golden["scores"], exact=_recorded_here(), what=name)
    assert m.n_epochs_ == golden["epochs"] and m.train_result_.best_epoch == golden["best_epoch"]


def test_paper_recipe_results_are_unchanged():
    """The whole paper pipeline (fast tuning, both signal modes, two fractions) against rows recorded before."""
    adata = preprocess(sim.simulate("mixed", n_samples=120, n_features=24, n_groups=12, seed=3), n_top_genes=None)
    task = tasks.make_task(adata, label="label", group="group")
    s = Settings(models=("logreg", "svm", "mlp3", "mlp5"), seeds=(0,), n_folds=3, fractions=(0.5, 1.0),
                 signals=("none", "removed"), tuning="fast", max_epochs=6, device="cpu", recipe="paper")
    df = evaluate([task], s, progress=False)
    golden = pd.read_csv(FIXTURES / "golden_fast.csv", float_precision="round_trip")
    smallest = golden.pop("smallest_val_class")  # how far one sample moves a balanced accuracy
    assert_results(df, golden, exact=_recorded_here(), one_sample_tolerance=one_sample(2, smallest))
    assert set(df.recipe) == {"paper"}


# --------------------------------------------------------------------------------------------
# The under-training check
# --------------------------------------------------------------------------------------------

def test_paper_linear_units_carry_the_converged_reference():
    adata = preprocess(sim.simulate("linear", n_samples=120, n_features=20, n_groups=12, seed=1), n_top_genes=None)
    task = tasks.make_task(adata, label="label", group="group")
    s = Settings(models=("logreg", "mlp3"), seeds=(0,), n_folds=3, fractions=(0.5, 1.0), signals=("none",),
                 recipe="paper", tuning="off", max_epochs=1, lr=1e-6)  # one epoch at a tiny step: far from converged
    rows = pd.DataFrame(run_unit(task, Unit("logreg", 0, 0), s) + run_unit(task, Unit("mlp3", 0, 0), s))
    logreg, mlp3 = rows[rows.model == "logreg"], rows[rows.model == "mlp3"]
    assert logreg.reference_balanced_accuracy.notna().all() and mlp3.reference_balanced_accuracy.isna().all()
    assert (logreg.reference_balanced_accuracy > 0.95).all()  # linear data: the converged model separates it
    flags = undertraining(rows)
    assert set(flags[flags.undertrained].model) == {"logreg", "mlp3"}
    sentences = undertrained_sentences(rows)
    assert len(sentences) == 2 and all(MESSAGE in s for s in sentences)


def test_no_flag_for_models_at_the_reference():
    base = {"dataset": "d", "task": "t", "split": "study", "pretraining": "none", "signal": "none", "seed": 0,
            "train_fraction": 1.0, "status": "ok"}
    rows = []
    for fold in range(3):
        rows.append({**base, "fold": fold, "recipe": "paper", "model": "logreg", "balanced_accuracy": 0.90,
                     "reference_balanced_accuracy": 0.91})
        rows.append({**base, "fold": fold, "recipe": "paper", "model": "mlp3", "balanced_accuracy": 0.85,
                     "reference_balanced_accuracy": np.nan})
    flags = undertraining(pd.DataFrame(rows)).set_index("model")
    assert not flags.loc["logreg", "undertrained"] and flags.loc["mlp3", "undertrained"]
    assert flags.loc["mlp3", "gap"] == pytest.approx(-0.06)
    assert undertraining(pd.DataFrame(rows).drop(columns="reference_balanced_accuracy")).empty


def test_linear_models_are_the_baseline_and_the_rest_non_linear():
    assert LINEAR_MODELS == ("logreg", "svm")
    assert not any(is_linear(m) for m in ("mlp3", "mlp5", "rbf_svm", "knn", "gbdt", "rf"))


def test_report_flags_undertrained_models(tmp_path):
    from linsig.report import render_html, verdict

    base = {"dataset": "d", "task": "t", "split": "study", "pretraining": "none", "signal": "none",
            "train_fraction": 1.0, "status": "ok", "recipe": "paper", "n_classes": 2, "classes": "a|b",
            "chance_balanced_accuracy": 0.5, "n_train": 80, "n_val": 20}
    rows = []
    for seed in (0, 1):
        for fold in range(5):
            rows.append({**base, "seed": seed, "fold": fold, "model": "logreg", "balanced_accuracy": 0.60 + 0.01 * fold,
                         "reference_balanced_accuracy": 0.90})
            rows.append({**base, "seed": seed, "fold": fold, "model": "mlp3", "balanced_accuracy": 0.62 + 0.01 * fold,
                         "reference_balanced_accuracy": np.nan})
    df = pd.DataFrame(rows)
    v = verdict(df)
    assert len(v.undertrained) == 2 and all(MESSAGE in line for line in v.undertrained)
    assert "Under-training check" in v.text
    page = render_html(df, None, [])
    assert 'id="undertrained"' in page and "logreg (paper recipe)" in page


# --------------------------------------------------------------------------------------------
# Per-signal tuning in run_unit
# --------------------------------------------------------------------------------------------

def _grouped_linear_task(n_groups=4, seed=0):
    adata = preprocess(sim.simulate("linear", n_samples=80, n_features=10, n_groups=n_groups, seed=seed),
                       n_top_genes=None)
    return tasks.make_task(adata, label="label", group="group")


def test_a_signal_mode_never_inherits_another_modes_hyperparameters():
    # 4 groups, 2 folds: the study mode's inner folds cannot be corrected (one group a side), so its
    # search falls back to the defaults — it must not train with the none mode's winner
    task = _grouped_linear_task()
    common = dict(models=("logreg",), seeds=(0,), n_folds=2, fractions=(1.0,), device="cpu")
    both = pd.DataFrame(run_unit(task, Unit("logreg", 0, 0), Settings(signals=("none", "study"), **common)))
    alone = pd.DataFrame(run_unit(task, Unit("logreg", 0, 0), Settings(signals=("study",), **common)))
    study = both[both.signal == "study"].reset_index(drop=True)
    cols = ["balanced_accuracy", "params", "tuning_score"]
    pd.testing.assert_frame_equal(study[cols], alone[cols])


def test_strong_tuning_corrects_the_inner_folds_like_the_outer_ones(monkeypatch):
    import linsig.evaluation as evaluation

    calls = []
    real = evaluation.correct

    def spy(signal, X, y, groups):
        calls.append((signal, len(y)))
        return real(signal, X, y, groups)

    monkeypatch.setattr(evaluation, "correct", spy)
    adata = preprocess(sim.simulate("mixed", n_samples=90, n_features=12, seed=0), n_top_genes=None)
    task = tasks.make_task(adata, label="label", group="group")
    s = Settings(models=("logreg",), seeds=(0,), n_folds=3, fractions=(1.0,), signals=("removed",), device="cpu",
                 tuning="fast")
    run_unit(task, Unit("logreg", 0, 0), s)
    sizes = sorted(n for signal, n in calls if signal == "removed")
    # 3 inner training and 3 inner validation parts (of the 60 outer training samples), then the
    # outer training set (60) and validation fold (30): every part corrected with its own labels
    assert len(sizes) == 8 and sum(sizes) == 3 * 60 + 60 + 30


def test_pretraining_skips_the_pretrained_copy_of_a_convex_model():
    from linsig.experiment.pretraining import run_pretraining_unit

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 150)
    adata = preprocess(sim.simulate("linear", n_samples=150, n_features=10, n_groups=15, seed=0), n_top_genes=None)
    adata.obs["label"] = pd.Categorical(np.array(["a", "b", "c"])[y])
    task = tasks.make_task(adata, label="label", group="group")
    s = Settings(models=("logreg",), seeds=(0,), fractions=(1.0,), signals=("none",), device="cpu", tuning="fast")
    rows = pd.DataFrame(run_pretraining_unit(task, "logreg", 0, s))
    scratch, twin = rows[rows.pretraining == "none"], rows[rows.pretraining == "pretrained"]
    assert (scratch.status == "ok").all()
    assert (twin.status == "skipped").all() and twin.skip_reason.str.contains("cannot continue").all()


def test_a_linear_fit_no_better_than_zero_predicts_a_constant():
    """After removal the optimum is w = 0; the solver's tolerance-sized w must not decide anything."""
    from linsig.signal import remove_linear_signal

    adata = preprocess(sim.simulate("mixed", n_samples=300, n_features=400, seed=0), n_top_genes=None)
    X, y = adata.X, adata.obs["label"].to_numpy()
    Xc = remove_linear_signal(X, y)
    for model in (LinearSVM(C=1e-2), RidgeLogisticRegression(C=3.0)):
        fitted = model.fit(Xc, y)
        assert fitted.constant_ is not None and len(set(fitted.predict(Xc))) == 1
        assert model.fit(X, y).constant_ is None  # before removal: a real fit
    X_tr, X_va = remove_linear_signal(X[:200], y[:200]), remove_linear_signal(X[200:], y[200:])
    path = RidgeLogisticRegression().candidate_predictions(X_tr, y[:200], None, X_va, y[200:],
                                                           [{"C": 1.0}, {"C": 100.0}])
    assert all(len(set(pred)) == 1 for _, pred in path)
