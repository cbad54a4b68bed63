"""linsig's linear models against converged scikit-learn references on real multi-study data.

The bundled bladder compendium (5 studies on different platforms, missing values), the folds
``linsig run`` uses (leave-one-study-out after ``study-zscore``, training-fold imputation), and
the references of ``scripts/sklearn_reference.py`` fitted on exactly those folds: a linear
baseline that has not converged would show here as a held-out study where linsig falls below.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from linsig.evaluation import Settings, evaluate
from linsig.runner import build_tasks, prepare_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sklearn_reference.py"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("sklearn_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bladder():
    adata = prepare_dataset("example:bladder", normalize="study-zscore", group="study", missing="impute")
    return build_tasks(adata, "summarystage", "study")[0]


@pytest.mark.filterwarnings("ignore")
def test_linear_models_match_scikit_learn_on_every_held_out_bladder_study(reference, bladder):
    df = evaluate([bladder], Settings(models=("logreg", "svm"), seeds=(0,), fractions=(1.0,), signals=("none",),
                                      device="cpu"), progress=False)
    for model in ("logreg", "svm"):
        ours = df[df.model == model].sort_values("fold").balanced_accuracy.to_numpy()
        theirs = np.array([score for _, score in reference.fold_scores(bladder, model, 5, [0])])
        # seed 0: logreg 0.878 / 0.790 / 0.853 / 0.892 / 0.830 against 0.878 / 0.774 / 0.853 / 0.892 / 0.830
        # (C by pooled balanced accuracy here, by log-loss there); svm equal on every study
        assert ours.shape == theirs.shape == (5,)
        assert np.abs(ours - theirs).max() <= 0.02, (model, ours, theirs)
        assert ours.mean() >= 0.84, (model, ours)


@pytest.mark.filterwarnings("ignore")
def test_candidates_within_noise_of_the_default_cost_nothing_on_ovarian(reference, monkeypatch):
    """Issue 25, item 6, on 3 studies (2 inner studies per search): keeping the model's own
    parameters when the best candidate is within one paired SE of them is never worse on average
    than the best-wins search it replaced, and no worse than scikit-learn's converged reference."""
    import dataclasses

    from linsig.recipes import RECIPES

    monkeypatch.setitem(RECIPES, "before", dataclasses.replace(RECIPES["strong"], name="before", default_within_se=None))
    adata = prepare_dataset("example:ovarian", normalize="study-zscore", group="study", missing="impute")
    task = build_tasks(adata, "summarygrade", "study")[0]
    models = ("logreg", "svm", "knn")
    means = {}
    for recipe in ("before", "strong"):
        df = evaluate([task], Settings(models=models, seeds=(0,), n_folds=3, fractions=(1.0,), signals=("none",),
                                       recipe=recipe, device="cpu"), progress=False)
        means[recipe] = df.groupby("model").balanced_accuracy.mean()
    for model in models:
        theirs = np.mean([score for _, score in reference.fold_scores(task, model, 3, [0])])
        # seed 0, before → after (scikit-learn): logreg 0.643 → 0.643 (0.638), svm 0.662 → 0.661
        # (0.662), knn 0.609 → 0.661 (0.623: k = 3 and 11 at the top of near-equal inner scores gave way to 5)
        assert means["strong"][model] >= means["before"][model] - 0.005, (model, means)
        assert means["strong"][model] >= theirs - 0.02, (model, means["strong"][model], theirs)
    assert means["strong"]["knn"] >= means["before"]["knn"] + 0.03, means
