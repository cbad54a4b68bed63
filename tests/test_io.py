"""Reading expression + metadata, and every bad input the issue lists."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.data.io import read_dataset, read_expression_table
from linsig.errors import LinsigInputError
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
