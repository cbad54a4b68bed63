"""Issue 28: the area under the ROC curve in every result row, beside balanced accuracy in the
report, and usable by the verdict (``--metric roc_auc``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from linsig.cli import main
from linsig.errors import LinsigInputError
from linsig.metrics import continuous_scores, roc_auc
from linsig.models import FAMILIES, make_model
from linsig.plots import synthetic_results
from linsig.report import BEAT, TIE, verdict, write_report


def test_roc_auc_matches_scikit_learn_binary_and_one_vs_rest_macro():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(0, 1, 200)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    proba = np.column_stack([1 - s, s])
    assert roc_auc(y, proba) == pytest.approx(roc_auc_score(y, s))
    y3 = rng.integers(0, 3, 300)
    logits = np.eye(3)[y3] + rng.normal(0, 1, (300, 3))
    p3 = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert roc_auc(y3, p3) == pytest.approx(roc_auc_score(y3, p3, multi_class="ovr", average="macro"))
    assert roc_auc(y, np.zeros(200)) == 0.5  # a constant score ranks nothing
    assert np.isnan(roc_auc(np.zeros(5, int), np.arange(5.0)))  # one class: undefined
    # a validation fold missing a class: the mean over the classes it holds
    two = y3 < 2
    assert roc_auc(y3[two], p3[two]) == pytest.approx(np.mean([
        roc_auc_score(y3[two] == c, p3[two][:, c]) for c in (0, 1)]))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_every_model_gives_a_continuous_score(n_classes):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 8))
    y = np.arange(90) % n_classes
    X[:, 0] += 2 * y
    for name, family in FAMILIES.items():
        for recipe in ("strong", "paper") if family.paper else ("strong",):
            model = make_model(name, recipe, classes=np.arange(n_classes), max_epochs=3, random_state=0)
            model.fit(X[:60], y[:60])
            scores, classes = continuous_scores(model, X[60:])
            auc = roc_auc(y[60:], scores, classes)
            assert 0.0 <= auc <= 1.0, (name, recipe)


def test_a_model_without_a_score_is_refused():
    class Hard:
        classes_ = np.array([0, 1])

        def predict(self, X):
            return np.zeros(len(X))

    with pytest.raises(TypeError, match="neither predict_proba nor decision_function"):
        continuous_scores(Hard(), np.zeros((3, 2)))


def test_run_records_roc_auc_in_every_row(tmp_path):
    runner = CliRunner()
    data = tmp_path / "sim.h5ad"
    assert runner.invoke(main, ["simulate", "mixed", str(data), "--samples", "90", "--features", "20",
                                "--groups", "9"]).exit_code == 0
    res = runner.invoke(main, ["run", "--data", str(data), "--label", "label", "--group", "group",
                               "--models", "logreg,mlp3", "--folds", "3", "--seeds", "0", "--fractions", "0.5,1",
                               "--epochs", "3", "--tuning", "off", "--signal", "none,removed", "--quiet",
                               "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert "roc_auc" in df.columns
    columns = list(df.columns)
    assert columns.index("roc_auc") == columns.index("balanced_accuracy") + 1
    ok = df[df["status"] == "ok"]
    assert len(ok) and ok["roc_auc"].between(0, 1).all()
    page = write_report(tmp_path / "run").read_text()
    assert "AUC 0." in page  # beside balanced accuracy in the by-size tables


def _auc_only_win() -> pd.DataFrame:
    """Balanced accuracy tied; the networks rank the classes better (AUC)."""
    df = synthetic_results({("gtex", "sex", 2): {
        "none": {"logreg": 0.85, "svm": 0.85, "mlp3": 0.85, "mlp5": 0.85},
        "removed": {"logreg": 0.5, "svm": 0.5, "mlp3": 0.5, "mlp5": 0.5}}}, learning=0.0)
    bump = df["model"].isin(["mlp3", "mlp5"]) * 0.08
    return df.assign(roc_auc=np.clip(df["balanced_accuracy"] + 0.05 + bump, 0, 1))


def test_verdict_by_roc_auc_and_default_unchanged(tmp_path):
    df = _auc_only_win()
    assert verdict(df).answer_a == TIE  # default: balanced accuracy
    v = verdict(df, metric="roc_auc")
    assert v.answer_a == BEAT and v.metric == "roc_auc"
    assert all(m["chance"] == 0.5 for g in v.signal["groups"] for m in g["models"])
    df.to_parquet(tmp_path / "results.parquet")
    res = CliRunner().invoke(main, ["report", str(tmp_path), "--metric", "roc_auc"])
    assert res.exit_code == 0, res.output
    assert BEAT in res.output
    page = (tmp_path / "report.html").read_text()
    assert "--metric roc_auc" in page and "Mean AUC" in page and "ROC AUC minus chance (0.5)" in page
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 0 and TIE in res.output


def test_roc_auc_verdict_on_a_table_without_it_is_a_clear_error():
    df = synthetic_results()
    with pytest.raises(LinsigInputError, match="roc_auc"):
        verdict(df, metric="roc_auc")
