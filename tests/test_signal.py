"""Tests for linsig.signal: parity with R limma's removeBatchEffect, validation and properties.

The parity tests run the real R limma (tests/r/remove_batch_effect.R). They skip when Rscript or
limma is missing, unless the environment variable CI is set: CI must run them, so there they
fail instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linsig.errors import LinsigInputError
from linsig.signal import (
    SIGNAL_MODES,
    remove_linear_signal,
    remove_linear_signal_adata,
    remove_signal_split,
)

R_SCRIPT = Path(__file__).parent / "r" / "remove_batch_effect.R"
TOL = 1e-8


# --------------------------------------------------------------------------------------------
# R harness
# --------------------------------------------------------------------------------------------
def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@functools.lru_cache(maxsize=1)
def _r_problem() -> str | None:
    """Why R limma cannot be used here, or None when it can."""
    if shutil.which("Rscript") is None:
        return "Rscript is not on PATH"
    proc = subprocess.run(
        ["Rscript", "-e", "suppressPackageStartupMessages(library(limma))"],
        capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0:
        return f"R package limma is not installed: {proc.stderr.strip()[:300]}"
    return None


@pytest.fixture
def limma(tmp_path):
    """Callable running R limma's removeBatchEffect; skips (fails under CI) without R/limma."""
    problem = _r_problem()
    if problem is not None:
        if _in_ci():
            pytest.fail(f"CI is set but R limma parity tests cannot run: {problem}")
        pytest.skip(f"R limma unavailable: {problem}")

    def run(X, labels, design=None, covariates=None):
        x_path, out_path, b_path = tmp_path / "x.tsv", tmp_path / "out.tsv", tmp_path / "b.tsv"
        _write_tsv(x_path, np.asarray(X, dtype=np.float64))
        b_path.write_text("".join(f"{lab}\n" for lab in labels))
        cmd = ["Rscript", str(R_SCRIPT), str(x_path), str(out_path), str(b_path)]
        for flag, M in (("--design", design), ("--covariates", covariates)):
            if M is not None:
                path = tmp_path / f"{flag[2:]}.tsv"
                M = np.asarray(M, dtype=np.float64)
                _write_tsv(path, M[:, None] if M.ndim == 1 else M)
                cmd += [flag, str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"R failed:\n{proc.stderr}"
        return _read_tsv(out_path)

    return run


def _fmt(v: float) -> str:
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return repr(float(v))  # shortest repr that round-trips exactly


def _write_tsv(path: Path, M: np.ndarray) -> None:
    path.write_text("".join("\t".join(map(_fmt, row)) + "\n" for row in M))


def _read_tsv(path: Path) -> np.ndarray:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    return np.array([[float(v) for v in row] for row in rows])


def _assert_matches(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    # Missing entries must be missing in the same places (NaN stays NaN, inf stays inf).
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(ref))
    finite = np.isfinite(ref)
    assert np.max(np.abs(ours[finite] - ref[finite]), initial=0.0) < TOL


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------
def _expression(rng, n, g, labels, effect=3.0):
    """Expression with a per-class shift, a nonzero intercept and gene-specific scale."""
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    shifts = rng.normal(0, effect, size=(codes.max() + 1, g))
    return 5.0 + shifts[codes] + rng.normal(0, 1, size=(n, g)) * rng.uniform(0.5, 2, size=g)


def _case(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    n, g = 40, 25
    design = covariates = None
    if name == "binary":
        labels = np.array(["blood", "brain"])[rng.integers(0, 2, n)]
    elif name == "multiclass4":
        labels = np.array(["a", "b", "c", "d"])[np.arange(n) % 4]
    elif name == "unbalanced":
        labels = np.array(["major"] * 31 + ["mid"] * 7 + ["minor"] * 2)
    elif name == "single_sample_class":
        labels = np.array(["x"] * 20 + ["y"] * 19 + ["lonely"])
    elif name == "int_labels_12":
        # Integer levels sort numerically in R (2 < 10): same order as NumPy's.
        labels = np.arange(n) % 12 + 1
    elif name == "design_continuous":
        labels = np.array(["a", "b", "c"])[np.arange(n) % 3]
        design = np.column_stack([np.ones(n), rng.normal(size=n)])
    elif name == "design_treatment":
        labels = np.array(["a", "b"])[rng.integers(0, 2, n)]
        design = np.column_stack([np.ones(n), rng.integers(0, 2, n)])
    elif name == "covariates":
        labels = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
        covariates = np.column_stack([rng.normal(size=n), rng.uniform(size=n)])
    elif name == "design_and_covariate":
        labels = np.array(["a", "b", "c", "d"])[np.arange(n) % 4]
        design = np.column_stack([np.ones(n), rng.integers(0, 2, n)])
        covariates = rng.normal(size=n)
    elif name == "design_aliased":
        # The design column duplicates the labels: limma cannot estimate the label effect and
        # leaves the data as is (its coefficient is NA, set to 0).
        labels = np.array(["a", "b"])[np.arange(n) % 2]
        design = np.column_stack([np.ones(n), (labels == "a").astype(float)])
    else:
        raise KeyError(name)
    X = _expression(rng, n, g, labels)
    return X, labels, design, covariates


def _na_case(covariates: bool):
    """Several missingness patterns, including the degenerate ones lm.fit has to pivot."""
    rng = np.random.default_rng(7)
    n, g = 36, 30
    labels = np.arange(n) % 4 + 1  # 9 samples per class
    X = _expression(rng, n, g, labels)
    X[3, 0] = np.nan                       # one sample missing
    X[[3, 5, 8], 1] = np.nan
    X[[3, 5, 8], 2] = np.nan               # same pattern as gene 1: one solve for both
    X[labels == 2, 3] = np.nan             # a whole class missing: a contrast column aliased
    X[labels == 4, 4] = np.nan             # the last level missing
    X[:, 5] = np.nan                       # nothing observed: returned unchanged
    X[np.arange(n) != 0, 6] = np.nan       # a single observed sample
    X[[0, 1], 7] = np.inf                  # inf counts as missing in lmFit
    X[2, 7] = -np.inf
    holes = X[:, 8:16]
    holes[rng.random(holes.shape) < 0.15] = np.nan  # random patterns in genes 8-15
    cov = rng.normal(size=(n, 1)) if covariates else None
    return X, labels, cov


CASES = [
    "binary",
    "multiclass4",
    "unbalanced",
    "single_sample_class",
    "int_labels_12",
    "design_continuous",
    "design_treatment",
    "covariates",
    "design_and_covariate",
    "design_aliased",
]


# --------------------------------------------------------------------------------------------
# Parity with R limma
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_matches_limma(limma, name):
    X, labels, design, covariates = _case(name)
    ref = limma(X, labels, design, covariates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if name == "design_aliased" else "error")
        ours = remove_linear_signal(X, labels, design=design, covariates=covariates)
    _assert_matches(ours, ref)
    if name == "design_aliased":
        np.testing.assert_allclose(ours, X, atol=TOL)


@pytest.mark.parametrize("with_covariate", [False, True], ids=["labels", "labels+covariate"])
def test_matches_limma_with_missing_values(limma, with_covariate):
    X, labels, cov = _na_case(with_covariate)
    ref = limma(X, labels, covariates=cov)
    ours = remove_linear_signal(X, labels, covariates=cov)
    _assert_matches(ours, ref)
    np.testing.assert_array_equal(ours[:, 5], X[:, 5])  # all-missing gene untouched


def test_matches_limma_float32(limma):
    X, labels, _, _ = _case("multiclass4")
    X32 = X.astype(np.float32)
    ref = limma(X32.astype(np.float64), labels)
    ours = remove_linear_signal(X32, labels)
    assert ours.dtype == np.float32
    # Correct to float32 precision: about one unit in the last place of the data's magnitude.
    assert np.max(np.abs(ours - ref)) < 4 * np.finfo(np.float32).eps * np.max(np.abs(X))


# --------------------------------------------------------------------------------------------
# Known answers and properties (no R needed)
# --------------------------------------------------------------------------------------------
def _closed_form(X, labels):
    """Default design: subtract class mean minus the unweighted mean of class means."""
    levels, codes = np.unique(labels, return_inverse=True)
    means = np.array([X[codes == k].mean(axis=0) for k in range(len(levels))])
    return X - (means - means.mean(axis=0))[codes]


def test_closed_form_default_design():
    X, labels, _, _ = _case("unbalanced")
    np.testing.assert_allclose(remove_linear_signal(X, labels), _closed_form(X, labels), atol=1e-12)


@pytest.mark.parametrize("name", ["binary", "multiclass4", "unbalanced", "single_sample_class"])
def test_class_means_equal_after_removal(name):
    X, labels, _, _ = _case(name)
    out = remove_linear_signal(X, labels)
    means = np.array([out[labels == lab].mean(axis=0) for lab in np.unique(labels)])
    assert np.max(np.ptp(means, axis=0)) < 1e-10
    # The overall level is kept: the common mean is the unweighted mean of the class means.
    orig = np.array([X[labels == lab].mean(axis=0) for lab in np.unique(labels)])
    np.testing.assert_allclose(means[0], orig.mean(axis=0), atol=1e-10)


def test_float32_in_float32_out_and_close_to_float64():
    X, labels, _, _ = _case("multiclass4")
    X32 = X.astype(np.float32)
    out = remove_linear_signal(X32, labels)
    assert out.dtype == np.float32 and out.shape == X32.shape
    ref = remove_linear_signal(X32.astype(np.float64), labels)
    assert np.max(np.abs(out - ref)) < 4 * np.finfo(np.float32).eps * np.max(np.abs(X))


def test_float32_with_missing_values():
    X, labels, _ = _na_case(False)
    out = remove_linear_signal(X.astype(np.float32), labels)
    ref = remove_linear_signal(X, labels)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(out[finite], ref[finite], atol=1e-4)


def test_integer_matrix_is_computed_in_float64():
    X = np.arange(24).reshape(6, 4)
    out = remove_linear_signal(X, [0, 0, 0, 1, 1, 1])
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, _closed_form(X.astype(float), np.array([0, 0, 0, 1, 1, 1])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_not_modified(dtype):
    X, labels, design, covariates = _case("design_and_covariate")
    X = X.astype(dtype)
    X[0, 0] = np.nan
    copies = [a.copy() for a in (X, labels, design, covariates)]
    out = remove_linear_signal(X, labels, design=design, covariates=covariates)
    assert out is not X and not np.shares_memory(out, X)
    for before, after in zip(copies, (X, labels, design, covariates)):
        np.testing.assert_array_equal(before, after)


def test_fortran_ordered_input():
    X, labels, _, _ = _case("multiclass4")
    out = remove_linear_signal(np.asfortranarray(X), labels)
    np.testing.assert_allclose(out, remove_linear_signal(X, labels), atol=1e-12)


def test_large_float64_values_take_the_careful_path():
    # Sums of such values overflow in float64; the result must still be right (it is linear).
    X, labels, _, _ = _case("binary")
    big = remove_linear_signal(X * 1e306, labels)
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big / 1e306, remove_linear_signal(X, labels), rtol=1e-9, atol=1e-9)


def test_label_types_agree():
    X, labels, _, _ = _case("multiclass4")
    ref = remove_linear_signal(X, labels)
    cat = pd.Categorical(labels, categories=["a", "b", "c", "d", "unused"])
    for lab in (list(labels), pd.Series(labels), cat, pd.Series(cat), labels[:, None]):
        np.testing.assert_allclose(remove_linear_signal(X, lab), ref, atol=1e-12)
    codes = np.unique(labels, return_inverse=True)[1]
    np.testing.assert_allclose(remove_linear_signal(X, codes), ref, atol=1e-12)


def test_aliased_design_warns():
    X, labels, design, _ = _case("design_aliased")
    with pytest.warns(UserWarning, match="aliased"):
        remove_linear_signal(X, labels, design=design)


def test_no_genes():
    out = remove_linear_signal(np.empty((4, 0), dtype=np.float32), ["a", "b", "a", "b"])
    assert out.shape == (4, 0) and out.dtype == np.float32


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------
def test_error_label_length():
    with pytest.raises(LinsigInputError, match=r"length 3.*5 samples"):
        remove_linear_signal(np.zeros((5, 2)), ["a", "b", "a"])


def test_error_single_label():
    with pytest.raises(LinsigInputError, match="single distinct value.*nothing|no label signal"):
        remove_linear_signal(np.zeros((5, 2)), ["a"] * 5)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_error_missing_labels(missing):
    labels = pd.Series(["a", "b", missing, "a", missing], dtype=object)
    with pytest.raises(LinsigInputError, match=r"2 sample\(s\) at position\(s\) 2, 4"):
        remove_linear_signal(np.zeros((5, 2)), labels)


def test_error_missing_float_labels():
    with pytest.raises(LinsigInputError, match=r"position\(s\) 1"):
        remove_linear_signal(np.zeros((3, 2)), [0.0, np.nan, 1.0])


@pytest.mark.parametrize("shape", [(6,), (2, 3, 2)])
def test_error_x_not_2d(shape):
    with pytest.raises(LinsigInputError, match="2-D"):
        remove_linear_signal(np.zeros(shape), ["a", "b"] * 3)


def test_error_x_not_numeric():
    with pytest.raises(LinsigInputError, match="real numbers"):
        remove_linear_signal(np.array([["a", "b"], ["c", "d"]]), ["a", "b"])


def test_error_sparse_x():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(LinsigInputError, match="sparse"):
        remove_linear_signal(sparse.csr_matrix(np.eye(4)), ["a", "b", "a", "b"])


def test_error_covariates_rows():
    with pytest.raises(LinsigInputError, match=r"covariates has 3 rows but X has 4"):
        remove_linear_signal(np.zeros((4, 2)), ["a", "b", "a", "b"], covariates=np.zeros((3, 1)))


def test_error_design_rows():
    with pytest.raises(LinsigInputError, match=r"design has 5 rows but X has 4"):
        remove_linear_signal(np.zeros((4, 2)), ["a", "b", "a", "b"], design=np.ones((5, 1)))


def test_error_design_not_finite():
    design = np.ones((4, 2))
    design[2, 1] = np.nan
    with pytest.raises(LinsigInputError, match="design has 1 non-finite.*row 2, column 1"):
        remove_linear_signal(np.zeros((4, 2)), ["a", "b", "a", "b"], design=design)


# --------------------------------------------------------------------------------------------
# Split helper and AnnData convenience
# --------------------------------------------------------------------------------------------
def test_remove_signal_split_uses_each_splits_labels():
    X, labels, _, _ = _case("multiclass4")
    Xt, Xv, yt, yv = X[:28], X[28:], labels[:28], labels[28:]
    out_t, out_v = remove_signal_split(Xt, yt, Xv, yv)
    np.testing.assert_allclose(out_t, remove_linear_signal(Xt, yt), atol=1e-12)
    np.testing.assert_allclose(out_v, remove_linear_signal(Xv, yv), atol=1e-12)
    assert "removed" in SIGNAL_MODES


def test_remove_signal_split_single_class_fold_raises():
    X, labels, _, _ = _case("binary")
    with pytest.raises(LinsigInputError, match="validation split: labels have a single"):
        remove_signal_split(X, labels, X[:5], ["blood"] * 5)


def test_remove_signal_split_gene_mismatch():
    with pytest.raises(LinsigInputError, match="3 genes but X_val has 2"):
        remove_signal_split(np.zeros((4, 3)), [0, 1, 0, 1], np.zeros((4, 2)), [0, 1, 0, 1])


def _adata():
    ad = pytest.importorskip("anndata")
    X, labels, design, covariates = _case("design_and_covariate")
    obs = pd.DataFrame(
        {"tissue": pd.Categorical(labels), "treated": design[:, 1], "age": covariates},
        index=[f"s{i}" for i in range(len(labels))],
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(X.shape[1])])
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var, uns={"linsig": {"dataset": "toy"}})
    return adata, X, labels, design, covariates


def test_adata_copy():
    adata, X, labels, design, covariates = _adata()
    before = adata.X.copy()
    new = remove_linear_signal_adata(adata, "tissue", covariates="age")
    np.testing.assert_array_equal(adata.X, before)
    expected = remove_linear_signal(before, labels, covariates=covariates)
    np.testing.assert_array_equal(new.X, expected)
    assert new.X.dtype == np.float32
    assert list(new.obs_names) == list(adata.obs_names)
    assert new.uns["linsig"]["dataset"] == "toy"
    assert new.uns["linsig"]["signal_removal"]["label_key"] == "tissue"
    assert "signal_removal" not in adata.uns["linsig"]


def test_adata_in_place_with_design_columns():
    adata, X, labels, design, covariates = _adata()
    expected = remove_linear_signal(adata.X, labels, design=design)
    adata.obs["one"] = 1.0
    result = remove_linear_signal_adata(adata, "tissue", design=["one", "treated"], copy=False)
    assert result is None
    np.testing.assert_array_equal(adata.X, expected)
    assert adata.uns["linsig"]["signal_removal"]["design"] == ["one", "treated"]


def test_adata_errors():
    adata, *_ = _adata()
    with pytest.raises(LinsigInputError, match="no column 'sex'"):
        remove_linear_signal_adata(adata, "sex")
    with pytest.raises(LinsigInputError, match="not numeric"):
        remove_linear_signal_adata(adata, "tissue", covariates="tissue")
    adata.obs["one"] = "x"
    with pytest.raises(LinsigInputError, match=r"adata.obs\['one'\]: labels have a single"):
        remove_linear_signal_adata(adata, "one")


# --------------------------------------------------------------------------------------------
# Code paths that only large inputs take by default
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("general", [False, True], ids=["class-means", "design"])
def test_parallel_gene_ranges_match_serial(monkeypatch, general):
    import linsig.signal as S

    rng = np.random.default_rng(3)
    n, g = 60, 700
    labels = np.arange(n) % 5
    X = _expression(rng, n, g, labels).astype(np.float32)
    X[rng.random(X.shape) < 0.002] = np.nan
    design = np.column_stack([np.ones(n), rng.normal(size=n)]) if general else None
    serial = remove_linear_signal(X, labels, design=design)
    monkeypatch.setattr(S, "_PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(S, "_n_workers", lambda X: 2)
    monkeypatch.setattr(S, "_BLOCK_BYTES", 8 * g * 7)  # several row blocks per range
    parallel = remove_linear_signal(X, labels, design=design)
    np.testing.assert_array_equal(np.isnan(parallel), np.isnan(serial))
    np.testing.assert_allclose(parallel, serial, atol=2e-5, equal_nan=True)


def test_many_classes_closed_form():
    # Study removal: hundreds of groups, many of one sample; no dense design is built.
    rng = np.random.default_rng(4)
    n, g = 600, 20
    labels = rng.integers(0, 400, n)
    X = _expression(rng, n, g, labels, effect=1.0)
    np.testing.assert_allclose(remove_linear_signal(X, labels), _closed_form(X, labels), atol=1e-10)
