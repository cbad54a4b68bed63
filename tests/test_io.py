"""Reading expression + metadata, and every bad input the issue lists."""

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.confounding import run_warnings, warnings_for
from linsig.data.io import read_dataset, read_expression_table
from linsig.errors import LinsigInputError
from linsig.experiment.driver import run_experiment
from linsig.executors import InProcessExecutor
from linsig.experiment.spec import load_experiment
from linsig.experiment.units import load_tasks
from linsig.tasks import make_task


def _tables(tmp_path, n=12, g=5, sep="\t", suffix=".tsv"):
    rng = np.random.default_rng(0)
    samples = [f"S{i}" for i in range(n)]
    genes = [f"G{j}" for j in range(g)]
    expr = pd.DataFrame(rng.normal(size=(n, g)), index=pd.Index(samples, name="sample"), columns=genes)
    meta = pd.DataFrame({"label": ["a", "b"] * (n // 2), "study": [f"st{i % 6}" for i in range(n)]},
                        index=pd.Index(samples, name="sample"))
    ep, mp = tmp_path / f"expr{suffix}", tmp_path / "meta.tsv"
    expr.to_csv(ep, sep=sep)
    meta.to_csv(mp, sep="\t")
    return expr, meta, ep, mp


def test_reads_samples_by_genes_csv(tmp_path):
    expr, meta, ep, mp = _tables(tmp_path, sep=",", suffix=".csv")
    adata = read_dataset(ep, metadata=mp)
    assert adata.shape == (12, 5)
    assert adata.X.dtype == np.float32
    np.testing.assert_allclose(adata.X, expr.to_numpy(np.float32))
    assert list(adata.obs["label"][:2]) == ["a", "b"]


def test_reads_genes_by_samples_and_parquet(tmp_path):
    expr, meta, _, mp = _tables(tmp_path)
    tsv = tmp_path / "t.tsv.gz"
    expr.T.to_csv(tsv, sep="\t")
    adata = read_dataset(tsv, metadata=mp)  # orientation found from the metadata ids
    np.testing.assert_allclose(adata.X, expr.to_numpy(np.float32))
    pq = tmp_path / "e.parquet"
    expr.reset_index().to_parquet(pq)
    assert read_dataset(pq, metadata=mp).obs_names.tolist() == expr.index.tolist()


def test_metadata_order_does_not_matter(tmp_path):
    expr, meta, ep, _ = _tables(tmp_path)
    shuffled = meta.iloc[::-1]
    adata = read_expression_table(ep, shuffled)
    assert adata.obs["label"].tolist() == meta["label"].tolist()


def test_inf_names_sample(tmp_path):
    expr, meta, ep, mp = _tables(tmp_path)
    expr.iloc[3, 2] = np.inf
    expr.to_csv(ep, sep="\t")
    with pytest.raises(LinsigInputError, match=r"expr\.tsv.*infinite.*S3.*G2"):
        read_dataset(ep, metadata=mp)


def test_nan_is_read_and_refused_by_the_default_missing_policy(tmp_path):
    from linsig.runner import prepare_dataset

    expr, meta, ep, mp = _tables(tmp_path)
    expr.iloc[3, 2] = np.nan
    expr.to_csv(ep, sep="\t")
    assert np.isnan(read_dataset(ep, metadata=mp).X).sum() == 1  # reading keeps NaN: --missing decides
    with pytest.raises(LinsigInputError, match=r"expr\.tsv: 1 missing \(NaN\) expression values in 1 samples "
                                               r"and 1 genes \(e\.g\. samples S3; genes G2\); choose --missing impute"):
        prepare_dataset(ep, mp)
    with pytest.raises(LinsigInputError, match=r"samples S3; genes G2.*--missing drop-genes"):
        make_task(read_dataset(ep, metadata=mp), "label", "study")  # the Python API checks too


def test_non_numeric_column(tmp_path):
    expr, meta, ep, mp = _tables(tmp_path)
    expr["G9"] = "high"
    expr.to_csv(ep, sep="\t")
    with pytest.raises(LinsigInputError, match="non-numeric.*G9"):
        read_dataset(ep, metadata=mp)


def test_duplicated_sample_ids(tmp_path):
    expr, meta, ep, mp = _tables(tmp_path)
    expr.index = ["S0"] + list(expr.index[1:-1]) + ["S0"]
    expr.to_csv(ep, sep="\t")
    with pytest.raises(LinsigInputError, match="duplicated sample ids: S0"):
        read_dataset(ep, metadata=mp)


def test_samples_missing_from_metadata(tmp_path):
    expr, meta, ep, mp = _tables(tmp_path)
    meta.drop(index=["S4", "S7"]).to_csv(mp, sep="\t")
    with pytest.raises(LinsigInputError, match=r"meta\.tsv: 2 of 12 samples.*missing.*S4, S7"):
        read_dataset(ep, metadata=mp)


def test_empty_file(tmp_path):
    _, _, ep, mp = _tables(tmp_path)
    ep.write_text("")
    with pytest.raises(LinsigInputError, match="expr.tsv: the file is empty"):
        read_dataset(ep, metadata=mp)
    header_only = tmp_path / "h.tsv"
    header_only.write_text("sample\tG1\tG2\n")
    with pytest.raises(LinsigInputError, match="h.tsv"):
        read_dataset(header_only, metadata=mp)


def test_table_needs_metadata(tmp_path):
    _, _, ep, _ = _tables(tmp_path)
    with pytest.raises(LinsigInputError, match="metadata"):
        read_dataset(ep)


def test_label_with_one_class(tmp_path):
    expr, meta, ep, mp = _tables(tmp_path)
    meta["label"] = "a"
    meta.to_csv(mp, sep="\t")
    with pytest.raises(LinsigInputError, match="label column 'label' has one class \\('a'\\)"):
        make_task(read_dataset(ep, metadata=mp), "label", "study")


def test_missing_label_column(tmp_path):
    _, _, ep, mp = _tables(tmp_path)
    with pytest.raises(LinsigInputError, match="no label column 'tissue'.*label, study"):
        make_task(read_dataset(ep, metadata=mp), "tissue")


def _run(args):
    return CliRunner().invoke(main, args)


def test_cli_errors_are_one_line_and_nothing_written(tmp_path):
    expr, meta, ep, mp = _tables(tmp_path)
    out = tmp_path / "out"
    # 6 studies cannot make 10 group-wise folds
    res = _run(["run", "--data", str(ep), "--metadata", str(mp), "--label", "label", "--group", "study",
                "--folds", "10", "--models", "logreg", "--out", str(out)])
    assert res.exit_code == 1
    assert "only 6 groups" in res.output and "10-fold" in res.output
    assert "Traceback" not in res.output
    assert not (out / "results.parquet").exists()
    expr.iloc[0, 0] = np.nan
    expr.to_csv(ep, sep="\t")
    res = _run(["run", "--data", str(ep), "--metadata", str(mp), "--label", "label", "--out", str(out)])
    assert res.exit_code == 1 and "1 missing (NaN) expression values" in res.output and "--missing impute" in res.output
    assert not out.exists() or not any(out.iterdir())


def _h5ad(tmp_path, X, name="d.h5ad"):
    import anndata as ad

    obs = pd.DataFrame({"y": ["a", "b"] * (X.shape[0] // 2)}, index=[f"s{i}" for i in range(X.shape[0])])
    path = tmp_path / name
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(X.shape[1])])).write_h5ad(path)
    return path


def test_sparse_h5ad_is_preprocessed_like_dense(tmp_path):
    from scipy import sparse

    from linsig.runner import prepare_dataset

    X = np.random.default_rng(0).random((12, 20)).astype(np.float32)
    X[X < 0.5] = 0
    dense = prepare_dataset(_h5ad(tmp_path, X, "dense.h5ad"), n_top_genes=8)
    sparse_ = prepare_dataset(_h5ad(tmp_path, sparse.csr_matrix(X), "sparse.h5ad"), n_top_genes=8)
    assert list(sparse_.var_names) == list(dense.var_names)
    np.testing.assert_array_equal(sparse_.X, dense.X)


def test_nan_in_h5ad_is_an_error_not_a_dropped_gene(tmp_path):
    from linsig.runner import prepare_dataset

    X = np.random.default_rng(0).random((12, 20)).astype(np.float32)
    X[3, 5] = np.nan
    with pytest.raises(LinsigInputError, match=r"d\.h5ad: 1 missing \(NaN\) expression values .*samples s3; genes g5"):
        prepare_dataset(_h5ad(tmp_path, X), n_top_genes=10)


def test_h5ad_with_metadata_table(tmp_path):
    X = np.random.default_rng(0).random((6, 4)).astype(np.float32)
    path = _h5ad(tmp_path, X)
    meta = pd.DataFrame({"y": ["c", "d", "c", "d", "c", "d"], "batch": list("xxyyzz")},
                        index=[f"s{i}" for i in range(6)][::-1])
    meta.to_csv(tmp_path / "meta.csv")
    adata = read_dataset(path, metadata=tmp_path / "meta.csv")
    # the metadata's columns replace the file's own (the user passed it to supply them), row order kept
    assert list(adata.obs["y"]) == ["d", "c", "d", "c", "d", "c"] and list(adata.obs["batch"]) == list("zzyyxx")
    pd.concat([meta, meta.iloc[:1]]).to_csv(tmp_path / "dup.csv")
    with pytest.raises(LinsigInputError, match=r"dup\.csv: duplicated sample ids: s5"):
        read_dataset(path, metadata=tmp_path / "dup.csv")


# --- metadata cells that mean missing: --na-values, and a warning for labels that look like them ----

BLADDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "curated_bladder"
TINY_RUN = ["--missing", "impute", "--n-top-genes", "20", "--models", "logreg", "--tuning", "off", "--epochs", "1",
            "--seeds", "0", "--folds", "2", "--fractions", "1.0", "--quiet"]


@pytest.mark.skipif(not BLADDER.is_dir(), reason="shared curated_bladder tables not available")
def test_bladder_tables_from_r_need_na_values(tmp_path):
    """meta.tsv, exported from R, writes an empty field as NA: a silent third class "NA" without
    --na-values (now a warning naming column, marker, count and option); dropped with it."""
    base = ["run", "--data", str(BLADDER / "expr.tsv.gz"), "--metadata", str(BLADDER / "meta.tsv"),
            "--label", "summarystage", "--group", "study", *TINY_RUN]
    res = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "plain")])
    assert res.exit_code == 0, res.output
    warning = ("warning: task 'summarystage:multiclass': label column 'summarystage' holds 'NA' in 5 sample(s), "
               "kept as a class; if it marks a missing value, give --na-values NA")
    assert warning in res.output
    task = json.loads((tmp_path / "plain" / "summary.json").read_text())["tasks"][0]
    assert task["classes"] == {"NA": 5, "invasive": 104, "superficial": 91}
    assert [(m["role"], m["column"], m["value"], m["n_samples"]) for m in task["missing_markers"]] == [
        ("label", "summarystage", "NA", 5)]

    res = CliRunner().invoke(main, [*base, "--na-values", "NA", "--out", str(tmp_path / "na")])
    assert res.exit_code == 0, res.output
    assert "--na-values" not in res.output
    summary = json.loads((tmp_path / "na" / "summary.json").read_text())
    task = summary["tasks"][0]
    assert task["task"] == "summarystage" and task["classes"] == {"invasive": 104, "superficial": 91}
    assert task["n_samples"] == 195 and "missing_markers" not in task
    assert task["preprocessing"]["na_values"] == {
        "values": ["NA"], "cells": {"summarystage": 5, "gender": 59, "summarygrade": 120}}
    assert summary["config"]["na_values"] == ["NA"]


def _coded_tables(tmp_path):
    ids = [f"{i:03d}" for i in range(16)]
    expr = pd.DataFrame(np.random.default_rng(0).normal(size=(16, 4)), index=pd.Index(ids, name="id"),
                        columns=[f"g{j}" for j in range(4)])
    meta = pd.DataFrame({"code": ["1", "01", "NA", "na"] * 4,
                         "stage": ["early", "late", "NA", "Unknown"] * 4,
                         "study": ["s1", "s2", "s3", "N/A"] * 4}, index=pd.Index(ids, name="id"))
    expr.to_csv(tmp_path / "expr.csv")
    meta.to_csv(tmp_path / "meta.csv")
    return tmp_path / "expr.csv", tmp_path / "meta.csv"


def test_marker_like_labels_are_kept_with_a_warning(tmp_path):
    expr, meta = _coded_tables(tmp_path)
    adata = read_dataset(expr, metadata=meta)
    assert list(adata.obs_names[:2]) == ["000", "001"]  # ids stay text
    task = make_task(adata, "code", "study")
    assert list(task.classes) == ["01", "1", "NA", "na"] and task.n_samples == 16  # nothing dropped unasked
    found = {(m["role"], m["column"], m["value"], m["n_samples"]) for m in task.markers}
    # markers are recognised case-insensitively and named as written, group columns too
    assert found == {("label", "code", "NA", 4), ("label", "code", "na", 4), ("group", "study", "N/A", 4)}
    messages = warnings_for([task.summary()])
    assert any("group column 'study' holds 'N/A' in 4 sample(s), kept as one group" in m
               and "--na-values N/A" in m for m in messages)
    # only values in the task's own samples count: a pair of ordinary classes (in ordinary studies) is silent
    assert make_task(adata, "code", "study", classes=["1", "01"]).markers == []


def test_na_values_make_exactly_those_cells_missing(tmp_path):
    expr, meta = _coded_tables(tmp_path)
    adata = read_dataset(expr, metadata=meta, na_values="NA,Unknown")  # a comma-separated string, or a list
    assert adata.uns["linsig"]["na_values"] == {"values": ["NA", "Unknown"], "cells": {"code": 4, "stage": 8}}
    task = make_task(adata, "code")
    assert list(task.classes) == ["01", "1", "na"] and task.n_samples == 12  # case-sensitive: "na" stays
    assert list(task.sample_ids[:3]) == ["000", "001", "003"]
    task = make_task(adata, "stage")
    assert list(task.classes) == ["early", "late"] and task.n_samples == 8 and not task.markers
    assert task.summary()["preprocessing"]["na_values"]["values"] == ["NA", "Unknown"]
    # a group made missing is refused, not guessed
    with pytest.raises(LinsigInputError, match="group column 'study' is empty for labelled samples 003"):
        make_task(read_dataset(expr, metadata=meta, na_values=["N/A"]), "stage", "study")


@pytest.mark.parametrize("backed", [True, False])
def test_na_values_apply_to_h5ad_obs(tmp_path, backed):
    obs = pd.DataFrame({"y": pd.Categorical(["a", "b", "NA", "b"] * 3), "code": ["01", "1"] * 6},
                       index=[f"{i:03d}" for i in range(12)])
    path = tmp_path / "d.h5ad"
    ad.AnnData(np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32), obs=obs).write_h5ad(path)
    task = make_task(read_dataset(path, backed=backed), "y")
    assert list(task.classes) == ["NA", "a", "b"] and [m["value"] for m in task.markers] == ["NA"]
    adata = read_dataset(path, backed=backed, na_values=["NA"])
    task = make_task(adata, "y")
    assert list(task.classes) == ["a", "b"] and task.n_samples == 9 and not task.markers
    assert sorted(make_task(adata, "code").classes) == ["01", "1"]


def test_experiment_na_values_key(tmp_path):
    expr, meta = _coded_tables(tmp_path)
    text = f"""
[data.coded]
path = "{expr}"
metadata = "{meta}"
tasks = [{{label = "stage"}}]
EXTRA
[settings]
models = ["logreg"]
seeds = [0]
folds = 2
fractions = [1.0]
tuning = "off"
epochs = 1
device = "cpu"
"""
    (tmp_path / "plain.toml").write_text(text.replace("EXTRA", ""))
    (tmp_path / "na.toml").write_text(text.replace("EXTRA", 'na_values = ["NA", "Unknown"]'))
    (tmp_path / "bad.toml").write_text(text.replace("EXTRA", "na_values = [[1]]"))
    assert "na_values" not in load_experiment(tmp_path / "plain.toml").datasets[0].source  # unit keys unchanged
    source = load_experiment(tmp_path / "na.toml").datasets[0].source
    assert source["na_values"] == ["NA", "Unknown"]
    assert list(load_tasks(source, {"label": "stage"})[0].classes) == ["early", "late"]
    with pytest.raises(LinsigInputError, match=r"data\.coded\.na_values"):
        load_experiment(tmp_path / "bad.toml")
    # without the key the experiment prints the warning the way it prints the confounding guard's
    out = tmp_path / "out"
    run_experiment(load_experiment(tmp_path / "plain.toml"), out, InProcessExecutor(threads=1), progress=False)
    assert any("label column 'stage' holds 'NA' in 4 sample(s)" in w for w in run_warnings(out))
    assert any("label column 'stage' holds 'Unknown' in 4 sample(s)" in w for w in run_warnings(out))
