"""Every model at its capacity (issue 9): the strong recipe's numbers on real and simulated data.

The bundled ALL arrays are tested at the issue's size (top 1,000 genes, sample-wise folds: one
study, each sample its own group); the simulations at a reduced size the suite can afford (the
paper's 1,000 × 5,000 is measured by ``benchmarks/bench_recipes.py`` and ``docs/method.md``).
"""

import json

import numpy as np
import pandas as pd
import pytest

from linsig import tasks
from linsig.data.examples import load_example
from linsig.data.preprocess import preprocess
from linsig.data.simulate import simulate
from linsig.evaluation import Settings, evaluate

# Units in two processes (the same rows as one, tests/test_run.py): these are the suite's longest tests.
JOBS = 2


@pytest.fixture(scope="module")
def all_data():
    return preprocess(load_example("ALL"), n_top_genes=1000)


def _all_sex_accuracy(adata, label, models, **settings):
    task = tasks.make_task(adata, label, None)
    s = Settings(models=models, seeds=(0,), n_folds=5, fractions=(1.0,), split="sample", signals=("none",),
                 device="cpu", **settings)
    df = evaluate([task], s, progress=False, jobs=JOBS)
    assert (df.status == "ok").all()
    return df.groupby("model").balanced_accuracy.mean()


def test_all_sex_linear_models_converge_and_simple_non_linear_models_follow(all_data):
    acc = _all_sex_accuracy(all_data, "sex", ("logreg", "svm", "rbf_svm", "gbdt"))
    # the paper recipe reaches 0.60 (untuned) / 0.75 (fast) with logreg here; scikit-learn's converged models 0.89–0.96
    assert acc["logreg"] >= 0.86 and acc["svm"] >= 0.88
    assert acc["rbf_svm"] >= 0.90 and acc["gbdt"] >= 0.90


@pytest.mark.slow
def test_all_sex_networks_reach_the_converged_linear_baseline():
    # A regression guard on the 250 most variable probes, not the bar's evidence (that is 20 seeds
    # on 1,000 probes in docs/method.md: mlp5 0.032 below logreg). Seed 0: logreg, mlp3 and mlp5
    # all 0.952, the same score on every fold; 277 s against 721 s on 1,000 probes
    # (0.909 / 0.909 / 0.922), the suite's longest test.
    data = preprocess(load_example("ALL"), n_top_genes=250)
    acc = _all_sex_accuracy(data, "sex", ("logreg", "mlp3", "mlp5"))
    assert acc["mlp3"] >= acc["logreg"] - 0.03, acc.to_dict()
    assert acc["mlp5"] >= acc["logreg"] - 0.03, acc.to_dict()


@pytest.mark.slow
def test_all_lineage_every_model_is_near_perfect(all_data):
    acc = _all_sex_accuracy(all_data, "lineage", ("logreg", "svm", "mlp3", "mlp5", "rbf_svm", "knn", "gbdt", "rf"),
                            tuning="fast")
    assert (acc >= 0.95).all(), acc.to_dict()


def _simulated(kind, samples=400, features=200):
    adata = preprocess(simulate(kind, n_samples=samples, n_features=features, seed=0), n_top_genes=None)
    return tasks.make_task(adata, "label", "group")  # each sample its own study, as the paper


@pytest.mark.slow
def test_after_removal_only_non_linear_models_find_the_mixed_signal():
    s = Settings(models=("logreg", "svm", "mlp3", "mlp5", "rbf_svm", "gbdt"), seeds=(0,), n_folds=5,
                 fractions=(1.0,), signals=("removed",), device="cpu")
    df = evaluate([_simulated("mixed")], s, progress=False, jobs=JOBS)
    acc = df.groupby("model").balanced_accuracy.mean()
    for model in ("mlp3", "mlp5", "rbf_svm", "gbdt"):
        assert acc[model] >= 0.95, acc.to_dict()
    for model in ("logreg", "svm"):
        assert abs(acc[model] - 0.5) <= 0.05, acc.to_dict()


def test_after_removal_nothing_is_left_in_linear_data():
    s = Settings(models=("logreg", "svm", "rbf_svm", "knn", "gbdt"), seeds=(0,), n_folds=5, fractions=(1.0,),
                 signals=("removed",), device="cpu", tuning="fast")
    # the paper's 1,000 samples: each corrected set's own class means pull a sample away from its
    # class-mates by 1/(class size), which distance-based models read as a (below-chance) signal
    df = evaluate([_simulated("linear", samples=1000, features=100)], s, progress=False, jobs=JOBS)
    acc = df.groupby("model").balanced_accuracy.mean()
    assert (abs(acc - 0.5) <= 0.06).all(), acc.to_dict()


@pytest.mark.slow
def test_after_removal_networks_find_nothing_in_linear_data():
    s = Settings(models=("mlp3", "mlp5"), seeds=(0,), n_folds=5, fractions=(1.0,), signals=("removed",),
                 device="cpu", tuning="fast")
    df = evaluate([_simulated("linear", features=100)], s, progress=False, jobs=JOBS)
    acc = df.groupby("model").balanced_accuracy.mean()
    assert (abs(acc - 0.5) <= 0.06).all(), acc.to_dict()


def test_paper_recipe_strands_mlp3_after_removal_where_the_strong_recipe_does_not():
    """The trap of tuning on uncorrected data (issue 9): reproduced at small size."""
    task = _simulated("mixed", samples=300, features=100)
    common = dict(models=("mlp3",), seeds=(0,), n_folds=3, fractions=(1.0,), signals=("none", "removed"), device="cpu")
    paper = evaluate([task], Settings(recipe="paper", tuning="fast", **common), progress=False)
    lr = paper.groupby("signal").lr.first()
    assert lr["none"] == lr["removed"]  # one choice, made on the uncorrected data
    strong = evaluate([task], Settings(tuning="fast", **common), progress=False)
    params = strong.params.map(json.loads)
    assert all({"lr", "epochs"} <= set(p) for p in params)  # chosen for each signal mode on its own data
    removed = strong[strong.signal == "removed"].balanced_accuracy.mean()
    assert removed >= paper[paper.signal == "removed"].balanced_accuracy.mean()
    assert np.isfinite(strong.tuning_score).all()
