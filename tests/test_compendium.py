"""Streaming compendium writer and backed row reads (linsig.data.compendium)."""

from __future__ import annotations

import os

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from linsig.data.compendium import CompendiumWriter, read_rows
from linsig.data.preprocess import GeneStats, preprocess
from linsig.errors import LinsigInputError

N_OBS, N_VARS = 203, 57


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = (rng.lognormal(0, 1.5, size=(N_OBS, N_VARS)) * (rng.random((N_OBS, N_VARS)) > 0.2)).astype(np.float32)
    X[:, 11] = 3.0  # a constant gene
    obs = pd.DataFrame({"tissue": rng.choice(["Blood", "Brain"], N_OBS)}, index=[f"S{i}" for i in range(N_OBS)])
    var = pd.DataFrame({"gene_name": [f"G{j}" for j in range(N_VARS)]}, index=[f"ENSG{j}" for j in range(N_VARS)])
    return X, obs, var


def _expected(X, obs, var, n_top):
    return preprocess(ad.AnnData(X=X, obs=obs, var=var), n_top_genes=n_top)


@pytest.mark.parametrize("sizes", [[N_OBS], [1, 50, 152], [17] * 11 + [16]])
def test_streaming_stats_equal_one_pass(data, sizes):
    X = data[0].astype(np.float64) * 1e3 + 5e4  # large offset: a naive sum-of-squares would drift
    one = GeneStats.of(X)
    streamed = GeneStats.empty(N_VARS)
    for block in np.split(X, np.cumsum(sizes)[:-1]):
        streamed.update(block)
    assert streamed.n == one.n
    for field in ("minimum", "maximum"):
        np.testing.assert_array_equal(getattr(streamed, field), getattr(one, field))
    np.testing.assert_allclose(streamed.mean, one.mean, rtol=1e-10)
    np.testing.assert_allclose(streamed.m2, one.m2, rtol=1e-10, atol=1e-10 * one.m2.max())
    np.testing.assert_allclose(streamed.scaled_variance(), one.scaled_variance(), rtol=1e-10, atol=1e-12)


def _write(out, X, obs, var, mode, **kw):
    with CompendiumWriter(out, var=var, obs=None if mode == "append" else obs, progress=False, **kw) as w:
        if mode == "genes":
            for g0 in range(0, N_VARS, 10):
                w.write_genes(g0, X[:, g0:g0 + 10].T)
        elif mode == "samples":
            for r0 in reversed(range(0, N_OBS, 40)):  # any order
                w.write_samples(r0, X[r0:r0 + 40])
        else:
            for r0 in range(0, N_OBS, 40):
                w.append_samples(X[r0:r0 + 40], obs.iloc[r0:r0 + 40])
        return w.finish(), w


@pytest.mark.parametrize("mode", ["genes", "samples", "append"])
def test_writer_output_equals_in_memory_preprocess(tmp_path, data, mode):
    X, obs, var = data
    out, w = _write(tmp_path / "c.h5ad", X, obs, var, mode, n_top_genes=20, chunk_rows=32, raw_col_chunk=10)
    got = ad.read_h5ad(out)
    exp = _expected(X, obs, var, 20)
    assert got.X.dtype == np.float32
    np.testing.assert_array_equal(got.X, exp.X)
    assert list(got.var_names) == list(exp.var_names)
    assert list(got.var["gene_name"]) == list(exp.var["gene_name"])
    assert list(got.obs_names) == list(obs.index) and list(got.obs["tissue"]) == list(obs["tissue"])
    assert got.uns["linsig"]["preprocessing"]["n_top_genes"] == 20
    # gene-block statistics are per gene, sample-block ones merged: both equal one pass
    one = GeneStats.of(X)
    np.testing.assert_allclose(w.stats.scaled_variance(), one.scaled_variance(), rtol=1e-10, atol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5ad"]  # temporaries gone


def test_all_genes_unscaled_and_keep_raw(tmp_path, data):
    X, obs, var = data
    out, _ = _write(tmp_path / "c.h5ad", X, obs, var, "genes", n_top_genes=None, scale=False,
                    keep_raw=tmp_path / "raw" / "all.h5ad", compression="gzip")
    np.testing.assert_array_equal(ad.read_h5ad(out).X, X)
    raw = ad.read_h5ad(tmp_path / "raw" / "all.h5ad")
    np.testing.assert_array_equal(raw.X, X)
    assert list(raw.var_names) == list(var.index) and list(raw.obs_names) == list(obs.index)


def test_backed_file_is_chunked_by_rows(tmp_path, data):
    X, obs, var = data
    out, _ = _write(tmp_path / "c.h5ad", X, obs, var, "genes", n_top_genes=20, chunk_rows=32)
    exp = _expected(X, obs, var, 20)
    with h5py.File(out) as f:
        assert f["X"].chunks == (32, 20)
    backed = ad.read_h5ad(out, backed="r")
    rows = [5, 64, 200]
    np.testing.assert_array_equal(backed[rows].to_memory().X, exp.X[rows])
    np.testing.assert_array_equal(backed.X[rows], exp.X[rows])
    backed.file.close()


@pytest.mark.filterwarnings("ignore:Observation names are not unique")  # row 3 is asked for twice
def test_read_rows_loads_only_requested_rows(tmp_path, data, monkeypatch):
    X, obs, var = data
    out, _ = _write(tmp_path / "c.h5ad", X, obs, var, "genes", n_top_genes=20, chunk_rows=16)
    exp = _expected(X, obs, var, 20)
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name == "/X":
            reads.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    want = [150, 3, 151, 3]
    sub = read_rows(out, want)
    np.testing.assert_array_equal(sub.X, exp.X[want])
    assert list(sub.obs_names) == [f"S{i}" for i in want]
    assert list(sub.obs["tissue"]) == list(obs["tissue"].iloc[want])
    rows_read = sum(k.stop - k.start for k in reads)
    assert rows_read == 3  # rows 3, 150 and 151 only: nothing else left the file
    # masks and ids select the same rows
    mask = np.zeros(N_OBS, bool)
    mask[[7, 8, 100]] = True
    np.testing.assert_array_equal(read_rows(out, mask).X, exp.X[mask])
    np.testing.assert_array_equal(read_rows(out, ["S100", "S7"]).X, exp.X[[100, 7]])
    with pytest.raises(LinsigInputError, match="not in the file"):
        read_rows(out, ["nope"])


def test_incomplete_input_leaves_no_output(tmp_path, data):
    X, obs, var = data
    out = tmp_path / "c.h5ad"
    with pytest.raises(LinsigInputError, match="genes never written"):
        with CompendiumWriter(out, var=var, obs=obs, progress=False) as w:
            w.write_genes(0, X[:, :10].T)
            w.finish()
    assert list(tmp_path.iterdir()) == []


def test_raw_store_of_a_killed_build_is_removed_by_the_next(tmp_path, data):
    import subprocess
    import sys

    X, obs, var = data
    out = tmp_path / "c.h5ad"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stranded = tmp_path / f".c.h5ad.pid{dead}.abc123.raw.h5"  # what a SIGKILLed build leaves
    stranded.write_bytes(b"x" * 1000)
    live = tmp_path / f".c.h5ad.pid{os.getpid()}.def456.raw.h5"  # a build still running
    live.write_bytes(b"y")
    _write(out, X, obs, var, "genes")
    assert not stranded.exists() and live.exists()


def test_non_finite_values_rejected(tmp_path, data):
    X, obs, var = data
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(LinsigInputError, match="NaN"):
        with CompendiumWriter(tmp_path / "c.h5ad", var=var, obs=obs, progress=False) as w:
            w.write_samples(0, bad)
    assert list(tmp_path.iterdir()) == []
