"""Pooled multi-study data: bundled compendia, label-free normalisation, missing values, confounding guard."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.confounding import assess, class_by_group, confounding_html, warnings_for
from linsig.data.examples import example_path, load_example
from linsig.data.missing import handle_missing, impute_fold, impute_from_rows
from linsig.data.normalize import minmax, selection_variance, study_zscore
from linsig.data.preprocess import GeneStats, scale_01
from linsig.errors import LinsigInputError
from linsig.evaluation import Settings, Unit, run_unit
from linsig.runner import prepare_dataset
from linsig.tasks import make_task


def _pooled(tmp_path, n_per=12, genes=8, nan_cells=(), name="expr.tsv"):
    """Three 'studies' on different scales (one of log ratios), labels balanced within each."""
    rng = np.random.default_rng(0)
    blocks, ids, studies = [], [], []
    for s, (shift, scale) in enumerate([(0.0, 1.0), (8.0, 2.0), (-3.0, 0.3)]):
        blocks.append(shift + scale * rng.normal(size=(n_per, genes)))
        ids += [f"s{s}_{i}" for i in range(n_per)]
        studies += [f"study{s}"] * n_per
    expr = pd.DataFrame(np.vstack(blocks), index=pd.Index(ids, name="sample"),
                        columns=[f"g{j}" for j in range(genes)])
    for r, c in nan_cells:
        expr.iloc[r, c] = np.nan
    meta = pd.DataFrame({"label": ["a", "b"] * (len(ids) // 2), "study": studies}, index=expr.index)
    ep, mp = tmp_path / name, tmp_path / f"meta_{name}"
    expr.to_csv(ep, sep="\t")
    meta.to_csv(mp, sep="\t")
    return expr, meta, ep, mp


# ------------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("method", ["minmax", "study-zscore"])
def test_normalisation_is_label_free(tmp_path, method):
    expr, meta, ep, mp = _pooled(tmp_path, nan_cells=[(2, 1), (30, 4)])
    a = prepare_dataset(ep, mp, n_top_genes=5, normalize=method, group="study", missing="impute")
    permuted = meta.assign(label=np.random.default_rng(1).permutation(meta["label"].to_numpy()))
    assert not permuted["label"].equals(meta["label"])
    permuted.to_csv(mp, sep="\t")
    b = prepare_dataset(ep, mp, n_top_genes=5, normalize=method, group="study", missing="impute")
    assert list(a.var_names) == list(b.var_names)
    np.testing.assert_array_equal(a.X, b.X)  # NaN in the same places, every other value identical


def test_study_zscore_standardises_each_study_ignoring_nan():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (10, 4)), rng.normal(8, 3, (6, 4))]).astype(np.float32)
    X[:, 3] = 5.0  # constant gene
    X[1, 0] = np.nan
    groups = np.array([0] * 10 + [1] * 6)
    Z = study_zscore(X, groups)
    for g in (0, 1):
        block = Z[groups == g].astype(np.float64)
        np.testing.assert_allclose(np.nanmean(block[:, :3], axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(np.nanstd(block[:, :3], axis=0), 1, atol=1e-5)
    assert np.isnan(Z[1, 0]) and np.isnan(Z).sum() == 1
    np.testing.assert_array_equal(Z[:, 3], 0)
    # each study's values depend on that study's samples only (a validation study on its own statistics)
    X2 = X.copy()
    X2[groups == 1] *= 10
    np.testing.assert_array_equal(study_zscore(X2, groups)[groups == 0], Z[groups == 0])


def test_minmax_matches_the_paper_scaling_on_complete_data():
    X = np.random.default_rng(0).normal(size=(20, 7)).astype(np.float32)
    np.testing.assert_array_equal(minmax(X), scale_01(X, GeneStats.of(X)))
    X[3, 2] = np.nan
    out = minmax(X)
    assert np.isnan(out[3, 2]) and np.nanmin(out) == 0 and np.nanmax(out) == 1


def test_gene_selection_after_study_zscore_ranks_within_study_spread():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1], 30)
    X = rng.normal(size=(60, 3))
    X[:, 0] += np.where(groups == 1, 100, 0)  # a huge study offset only, no spread within studies
    X[:30, 1] = rng.choice([0.0, 1.0], 30)
    X[30:, 1] = rng.choice([0.0, 1.0], 30)  # bimodal within each study: the most spread after 0–1 scaling
    Z = study_zscore(X, groups)
    assert np.argmax(selection_variance(Z, "study-zscore", groups)) == 1
    assert np.argmax(selection_variance(X, "minmax")) == 0  # pooled scaling sees the study offset


def test_study_zscore_needs_a_group_and_groups_of_two(tmp_path):
    _, meta, ep, mp = _pooled(tmp_path)
    res = CliRunner().invoke(main, ["run", "--data", str(ep), "--metadata", str(mp), "--label", "label",
                                    "--normalize", "study-zscore", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "study-zscore" in res.output and "give --group COLUMN" in res.output
    meta.iloc[0, meta.columns.get_loc("study")] = "lonely"
    meta.to_csv(mp, sep="\t")
    with pytest.raises(LinsigInputError, match=r"1 group\(s\) of 'study' hold a single sample \(lonely\)"):
        prepare_dataset(ep, mp, normalize="study-zscore", group="study")


# ------------------------------------------------------------------------------- missing values

def test_missing_error_message_names_count_and_options():
    X = np.ones((4, 3), dtype=np.float32)
    X[0, 1] = X[2, 1] = X[3, 2] = np.nan
    with pytest.raises(LinsigInputError) as err:
        handle_missing(X, ["a", "b", "c", "d"], ["x", "y", "z"], "data.tsv", "error")
    assert str(err.value) == (
        "data.tsv: 3 missing (NaN) expression values in 3 samples and 2 genes (e.g. samples a, c, d; genes y, z); "
        "choose --missing impute (fill each gene from the training fold's mean) or --missing drop-genes "
        "(remove the 2 genes with a missing value)")


def test_bundled_bladder_with_default_policy_is_refused():  # named as typed: example:bladder (issue 26)
    with pytest.raises(LinsigInputError, match=r"example:bladder: 37,113 missing \(NaN\) expression values in 80 "
                                               r"samples and 2,924 genes.*--missing impute.*--missing drop-genes"):
        prepare_dataset("example:bladder", normalize="study-zscore", group="study")


def test_drop_genes_removes_incomplete_genes_before_selection(tmp_path):
    _, _, ep, mp = _pooled(tmp_path, nan_cells=[(2, 1), (30, 4)])
    a = prepare_dataset(ep, mp, n_top_genes=None, missing="drop-genes")
    assert list(a.var_names) == ["g0", "g2", "g3", "g5", "g6", "g7"] and not np.isnan(a.X).any()
    assert a.uns["linsig"]["preprocessing"]["missing"]["n_genes_dropped"] == 2


def test_impute_uses_training_values_only():
    rng = np.random.default_rng(0)
    X_tr = rng.normal(size=(10, 4)).astype(np.float32)
    X_va = rng.normal(size=(5, 4)).astype(np.float32)
    X_tr[0, 1] = X_va[0, 1] = X_va[2, 3] = np.nan
    X_tr[:, 2] = np.nan  # no training value at all: a constant, not a validation statistic
    tr, va = impute_fold(X_tr, X_va)
    means = np.nanmean(X_tr[:, [1, 3]], axis=0)
    assert tr[0, 1] == pytest.approx(means[0]) and va[0, 1] == pytest.approx(means[0])
    assert va[2, 3] == pytest.approx(means[1])
    np.testing.assert_array_equal(tr[:, 2], 0)
    # validation values are never used: changing them changes no filled value
    X_va2 = X_va * 1000
    tr2, va2 = impute_fold(X_tr, X_va2)
    np.testing.assert_array_equal(tr2, tr)
    assert va2[0, 1] == va[0, 1] and va2[2, 3] == va[2, 3]
    assert not np.isnan(tr).any() and not np.isnan(va).any() and np.isnan(X_tr[0, 1])  # copies, inputs untouched
    # the same through the row-index form the evaluation uses
    X = np.vstack([X_tr, X_va])
    filled = impute_from_rows(X, np.arange(10))
    np.testing.assert_array_equal(filled[:10], tr)
    np.testing.assert_array_equal(filled[10:], va)
    complete = np.ones((3, 2), dtype=np.float32)
    assert impute_from_rows(complete, [0]) is complete  # nothing to fill: no copy


def _nan_task(seed=0):
    """A task on 6 studies with missing values and a row id in gene 0 (never missing)."""
    rng = np.random.default_rng(seed)
    n, p = 60, 6
    X = rng.normal(size=(n, p)).astype(np.float32)
    y = np.tile([0, 1], n // 2)
    X[:, 1] += 2.0 * y  # a linear signal
    X[:, 0] = np.arange(n)
    X[rng.random((n, p)) < 0.1] = np.nan
    X[:, 0] = np.arange(n)
    import anndata as ad

    obs = pd.DataFrame({"y": np.where(y == 1, "b", "a"), "study": [f"st{i % 6}" for i in range(n)]},
                       index=[f"s{i}" for i in range(n)])
    adata = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(p)]))
    return make_task(adata, "y", "study", missing="impute")


@pytest.mark.parametrize("recipe", ["strong", "paper"])
def test_evaluation_and_tuning_impute_from_training_rows(monkeypatch, recipe):
    import linsig.evaluation as evaluation
    import linsig.search as tuning  # the objectives that impute inner folds live in linsig.search

    task = _nan_task()
    assert np.isnan(task.X).any() and task.preprocessing["missing"]["mode"] == "impute"
    seen = {"outer": [], "inner": []}
    real_rows, real_fold = evaluation.impute_from_rows, tuning.impute_fold

    def spy_rows(X, rows):
        seen["outer"].append(rows)
        return real_rows(X, rows)

    def spy_fold(X_tr, X_va):
        if np.array_equal(X_tr[:, 0], np.round(X_tr[:, 0])):  # column 0 holds row ids (removed_full shifts them)
            seen["inner"].append((set(X_tr[:, 0].astype(int)), set(X_va[:, 0].astype(int))))
        return real_fold(X_tr, X_va)

    monkeypatch.setattr(evaluation, "impute_from_rows", spy_rows)
    monkeypatch.setattr(tuning, "impute_fold", spy_fold)
    monkeypatch.setattr(evaluation, "impute_fold", spy_fold)  # the strong recipe prepares inner folds there
    settings = Settings(models=("logreg",), seeds=(0,), n_folds=3, fractions=(1.0,), tuning="fast",
                        signals=("none", "removed", "study", "removed_full"), max_epochs=5, recipe=recipe)
    rows = run_unit(task, Unit("logreg", 0, 1), settings)
    train_idx, val_idx = evaluation._folds(task, settings, 0)[1]
    outer = [r for r in seen["outer"] if not isinstance(r, slice)]
    assert outer and all(set(r) == set(train_idx) for r in outer)  # statistics from the training fold only
    assert seen["inner"] and all(not tr & va for tr, va in seen["inner"])  # inner folds: disjoint rows
    assert all(ids <= set(train_idx) for tr, va in seen["inner"] for ids in (tr, va))
    # imputation came before linear signal removal (which cannot take NaN): every mode was scored
    assert {r["signal"] for r in rows if r["status"] == "ok"} == {"none", "removed", "study", "removed_full"}
    assert all(np.isfinite(r["balanced_accuracy"]) for r in rows if r["status"] == "ok")


def test_cli_run_with_missing_values_records_what_was_done(tmp_path):
    _, _, ep, mp = _pooled(tmp_path, nan_cells=[(2, 1), (30, 4), (31, 4)])
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "--data", str(ep), "--metadata", str(mp), "--label", "label",
                                    "--group", "study", "--normalize", "study-zscore", "--missing", "impute",
                                    "--models", "logreg", "--folds", "3", "--seeds", "0", "--fractions", "1",
                                    "--tuning", "off", "--epochs", "3", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    prep = summary["tasks"][0]["preprocessing"]
    assert prep["normalize"] == "study-zscore" and prep["normalize_group"] == "study"
    assert prep["missing"]["mode"] == "impute" and prep["missing"]["n_missing"] == 3
    assert summary["config"]["normalize"] == "study-zscore" and summary["config"]["missing"] == "impute"
    assert (pd.read_parquet(out / "results.parquet")["status"] == "ok").all()


# ------------------------------------------------------------------------------- confounding guard

def test_guard_fires_on_a_group_confounded_table_only():
    classes = ["a", "b"]
    # every study holds one class (the label is the study)
    y = np.array([0] * 10 + [1] * 10 + [0] * 8 + [1] * 6)
    g = np.array([0] * 10 + [1] * 10 + [2] * 8 + [3] * 6)
    table = class_by_group(y, g, classes, np.array(["s1", "s2", "s3", "s4"]))
    assert table.loc["s3"].tolist() == [8, 0]
    confounded = assess(table)
    assert confounded["confounded"] and confounded["n_single_class_groups"] == 4
    # balanced: every study holds both classes
    y_bal = np.tile([0, 1], 17)
    assert not assess(class_by_group(y_bal, g, classes))["confounded"]
    # most samples sit in single-class studies even though most studies are mixed
    y_big = np.array([0] * 40 + [0, 1] * 3 + [0, 1] * 3 + [1, 0] * 3)
    g_big = np.array([0] * 40 + [1] * 6 + [2] * 6 + [3] * 6)
    assert assess(class_by_group(y_big, g_big, classes))["confounded"]
    # one sample per group (no group column, or independent samples): nothing to say
    assert not assess(class_by_group(np.tile([0, 1], 10), np.arange(20), classes))["confounded"]


def test_guard_in_run_output_summary_and_report(tmp_path):
    _, meta, ep, mp = _pooled(tmp_path)
    meta["label"] = np.where(meta["study"] == "study1", "b", "a")  # study0 and study2 only 'a', study1 only 'b'
    meta.to_csv(mp, sep="\t")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, [
        "run", "--data", str(ep), "--metadata", str(mp), "--label", "label", "--group", "study", "--models",
        "logreg", "--folds", "3", "--seeds", "0", "--fractions", "1", "--tuning", "off", "--epochs", "2",
        "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "warning: task 'label': 3 of 3 groups (study) hold a single class" in res.stderr
    task = json.loads((out / "summary.json").read_text())["tasks"][0]
    c = task["confounding"]
    assert c["confounded"] and c["table"]["groups"] == ["study0", "study1", "study2"]
    assert c["table"]["counts"] == [[12, 0], [0, 12], [12, 0]]
    assert warnings_for([task]) == [c["message"]]
    html = confounding_html([task])
    assert "Warning: group-confounded" in html and "<td class=l>study1</td><td>0</td><td>12</td>" in html
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert "Class × group balance" in (out / "report.html").read_text()


def test_balanced_task_has_no_warning(tmp_path):
    _, _, ep, mp = _pooled(tmp_path)
    task = make_task(prepare_dataset(ep, mp), "label", "study")
    summary = task.summary()
    assert summary["confounding"]["confounded"] is False and not warnings_for([summary])
    assert "Warning" not in confounding_html([summary]) and "study2" in confounding_html([summary])
    assert "confounding" not in make_task(prepare_dataset(ep, mp), "label").summary()  # no group column


# ------------------------------------------------------------------------------- bundled data

def test_bundled_multi_study_examples():
    bladder = load_example("bladder")
    assert bladder.shape == (200, 3319) and int(np.isnan(bladder.X).sum()) == 37_113
    counts = pd.crosstab(bladder.obs["study"], bladder.obs["summarystage"])
    assert counts.loc["GSE1827_eset"].tolist() == [53, 27] and counts.to_numpy().sum() == 195
    ovarian = load_example("ovarian")
    assert ovarian.shape == (321, 1620) and int(np.isnan(ovarian.X).sum()) == 841
    assert ovarian.obs["summarygrade"].value_counts().to_dict() == {"high": 194, "low": 78}
    assert example_path("bladder").stat().st_size < 3_000_000
    with pytest.raises(LinsigInputError, match="unknown example 'kidney'; available: ALL, bladder, ovarian"):
        example_path("kidney")


def test_bladder_task_from_the_python_api():
    from linsig.data.preprocess import preprocess

    adata = preprocess(load_example("bladder"), n_top_genes=500, normalize="study-zscore", group="study",
                       missing="impute")
    task = make_task(adata, "summarystage", "study")  # the recorded policy lets NaN through
    assert task.X.shape == (195, 500) and task.n_groups == 5 and np.isnan(task.X).any()
    assert task.summary()["confounding"]["confounded"] is False


def test_experiment_file_normalize_and_missing(tmp_path):
    from linsig.experiment.spec import load_experiment

    def load(extra, tasks='[{ label = "summarystage", group = "study" }]'):
        path = tmp_path / "e.toml"
        path.write_text(f'[data.b]\nexample = "bladder"\n{extra}\ntasks = {tasks}\n[settings]\nmodels = ["logreg"]\n')
        return load_experiment(path)

    src = load('normalize = "study-zscore"\nmissing = "impute"').datasets[0].source
    assert src["normalize"] == "study-zscore" and src["normalize_group"] == "study" and src["missing"] == "impute"
    assert "normalize" not in load('normalize = "minmax"').datasets[0].source  # defaults keep unit keys
    with pytest.raises(LinsigInputError, match=r"data\.b\.normalize: study-zscore standardises within the tasks' group"):
        load('normalize = "study-zscore"', tasks='[{ label = "summarystage" }]')
    with pytest.raises(LinsigInputError, match=r"data\.b\.missing: must be one of error, impute, drop-genes"):
        load('missing = "zero"')


# ------------------------------------------------------------------------------- progress lines

def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tmp_path):
    import io

    from linsig.progress import LineProgress, progress_bar

    stream = io.StringIO()
    bar = progress_bar(total=200, desc="linsig run", unit="unit", file=stream)
    assert isinstance(bar, LineProgress)
    for _ in range(200):
        bar.update()
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 22  # a line per twentieth at most (plus the first), not one per unit
    assert lines[0].startswith("linsig run:   0% 0/200") and lines[-1].startswith("linsig run: 100% 200/200")
