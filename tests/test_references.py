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
