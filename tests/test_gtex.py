"""`linsig data gtex` end to end over a loopback HTTP server serving real-format fixture files."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from http_server import LocalServer, local_server  # noqa: F401  (fixture)
from linsig.cli import main
from linsig.data.gtex import LAYOUTS, Mirror, build_gtex, build_gtex_from_files
from linsig.errors import DownloadError, LinsigInputError

FIXTURES = Path(__file__).parent / "fixtures" / "gtex"
TPM = FIXTURES / "GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz"
SAMPLES = FIXTURES / "GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt"
SUBJECTS = FIXTURES / "GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt"
FILES = {"tpm": TPM, "samples": SAMPLES, "subjects": SUBJECTS}
FAST = dict(backoff=0.01, timeout=5.0, progress=False)


def _publish(srv: LocalServer, prefix: str, layout: str = "current", **override: bytes) -> str:
    """Serve the fixtures under ``prefix`` in ``layout``; ``override`` replaces a file's bytes."""
    for key, path in FILES.items():
        srv.add_file(f"{prefix}/{LAYOUTS[layout][key]}", override.get(key, path.read_bytes()))
    return srv.url + prefix + "/"


def _expected_raw() -> pd.DataFrame:
    """The fixture matrix as samples × genes, parsed independently of linsig (pandas, float64)."""
    df = pd.read_csv(TPM, sep="\t", skiprows=2, index_col=0).drop(columns="Description")
    return df.T


def _expected_scaled_top(n_top: int) -> tuple[np.ndarray, list[str]]:
    raw = _expected_raw()
    X = raw.to_numpy(np.float32).astype(np.float64)
    lo, hi = X.min(0), X.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (X - lo) / span
    var = scaled.var(0, ddof=1)
    top = np.sort(np.argsort(-var, kind="stable")[:n_top])
    return scaled[:, top], list(raw.columns[top])


def _run(args) -> object:
    return CliRunner().invoke(main, ["data", "gtex", *map(str, args)], catch_exceptions=False)


def test_cli_builds_preprocessed_h5ad(local_server, tmp_path):
    base = _publish(local_server, "primary")
    out = tmp_path / "gtex.h5ad"
    res = _run([out, "--base-url", base, "--cache-dir", tmp_path / "cache", "--n-top-genes", 10,
                "--chunk-rows", 5, "--no-progress"])
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    assert adata.shape == (24, 10)
    assert adata.X.dtype == np.float32
    expected, genes = _expected_scaled_top(10)
    assert list(adata.var_names) == genes
    np.testing.assert_allclose(adata.X, expected, atol=1e-6)
    assert adata.X.min() == 0 and adata.X.max() == 1
    # labels
    raw = _expected_raw()
    assert list(adata.obs_names) == list(raw.index)
    attrs = pd.read_csv(SAMPLES, sep="\t", index_col=0)
    assert list(adata.obs["tissue"]) == list(attrs.loc[adata.obs_names, "SMTS"])
    assert set(adata.obs["tissue"]) == {"Blood", "Brain", "Skin"}
    assert adata.obs.loc["GTEX-1117F-0100-SM-00ABC", "donor"] == "GTEX-1117F"
    assert adata.obs.loc["GTEX-1117F-0100-SM-00ABC", "sex"] == "female"  # SEX 2
    assert adata.obs.loc["GTEX-111CU-0544-SM-10ABC", "sex"] == "male"  # SEX 1
    assert adata.obs["donor"].nunique() == 6
    assert set(adata.obs.columns) >= {"tissue", "sex", "donor", "tissue_detail", "age"}
    assert adata.var["gene_name"].str.startswith("GENE").all()
    # provenance and on-disk layout
    info = adata.uns["linsig"]
    assert info["dataset"] == "gtex_v8"
    assert info["preprocessing"]["n_top_genes"] == 10 and info["preprocessing"]["n_genes_total"] == 40
    tpm_src = info["sources"]["tpm"]
    assert tpm_src["file"] == TPM.name
    assert tpm_src["sha256"] == hashlib.sha256(TPM.read_bytes()).hexdigest()
    with h5py.File(out) as f:
        assert f["X"].chunks == (5, 10)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*raw.h5"))
    # cached files are byte-identical to the served ones
    assert (tmp_path / "cache" / "gtex_v8" / TPM.name).read_bytes() == TPM.read_bytes()


def test_cli_all_genes_unscaled_equals_fixture(local_server, tmp_path):
    base = _publish(local_server, "m")
    out = tmp_path / "raw.h5ad"
    res = _run([out, "--base-url", base, "--cache-dir", tmp_path / "c", "--n-top-genes", 0, "--no-scale",
                "--no-progress"])
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    raw = _expected_raw()
    assert list(adata.var_names) == list(raw.columns)
    np.testing.assert_array_equal(adata.X, raw.to_numpy(np.float32))


def test_fallback_from_404_primary_to_legacy_layout(local_server, tmp_path):
    legacy = _publish(local_server, "gtex_analysis_v8", layout="legacy")
    out = tmp_path / "g.h5ad"
    res = _run([out, "--base-url", local_server.url + "adult-gtex/", "--legacy-base-url", legacy,
                "--cache-dir", tmp_path / "c", "--n-top-genes", 10, "--no-progress"])
    assert res.exit_code == 0, res.output
    statuses = {r.path: r.status for r in local_server.requests}
    assert statuses[f"adult-gtex/{LAYOUTS['current']['tpm']}"] == 404
    assert statuses[f"gtex_analysis_v8/{LAYOUTS['legacy']['tpm']}"] == 200
    assert ad.read_h5ad(out).shape == (24, 10)


def test_interrupted_tpm_download_resumes(local_server, tmp_path):
    base = _publish(local_server, "p")
    tpm_path = f"p/{LAYOUTS['current']['tpm']}"
    local_server.cut(tpm_path, after=1000)
    out = build_gtex(tmp_path / "g.h5ad", cache_dir=tmp_path / "c", mirrors=[Mirror(base)], n_top_genes=10,
                     **FAST)
    reqs = local_server.requests_for(tpm_path)
    assert [r.status for r in reqs] == [200, 206]
    assert reqs[1].headers["Range"] == "bytes=1000-"
    assert (tmp_path / "c" / "gtex_v8" / TPM.name).read_bytes() == TPM.read_bytes()
    assert ad.read_h5ad(out).shape == (24, 10)


def test_retries_503_then_succeeds(local_server, tmp_path):
    base = _publish(local_server, "p")
    local_server.fail(f"p/{LAYOUTS['current']['samples']}", times=2, status=503)
    out = build_gtex(tmp_path / "g.h5ad", cache_dir=tmp_path / "c", mirrors=[Mirror(base)], n_top_genes=5,
                     **FAST)
    assert ad.read_h5ad(out).shape == (24, 5)
    assert [r.status for r in local_server.requests_for(f"p/{LAYOUTS['current']['samples']}")] == [503, 503, 200]


def test_404_everywhere_is_a_clear_cli_error(local_server, tmp_path):
    out = tmp_path / "g.h5ad"
    res = _run([out, "--base-url", local_server.url + "empty/", "--cache-dir", tmp_path / "c", "--no-progress"])
    assert res.exit_code == 1
    assert "not found (HTTP 404)" in res.output and "empty/annotations" in res.output
    assert not out.exists()


def _truncated_gz() -> bytes:
    data = TPM.read_bytes()
    return data[: len(data) // 2]


def _gz(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(text.encode())
    return buf.getvalue()


def _gct_text() -> str:
    return gzip.decompress(TPM.read_bytes()).decode()


def test_truncated_gzip_is_clear_error_and_leaves_nothing(local_server, tmp_path):
    base = _publish(local_server, "p", tpm=_truncated_gz())
    out = tmp_path / "g.h5ad"
    res = _run([out, "--base-url", base, "--cache-dir", tmp_path / "c", "--no-progress"])
    assert res.exit_code == 1
    assert "truncated" in res.output and TPM.name in res.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no partial or temporary store
    assert not (tmp_path / "c" / "gtex_v8" / TPM.name).exists()  # bad cached copy removed


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("#1.2", "#1.3", 1), "not a GCT 1.2 file"),
        (lambda t: t.replace("40\t24", "40\t25", 1), "announces 25 samples but the header has 24"),
        (lambda t: t.replace("40\t24", "41\t24", 1), "announces 41 genes but the file has 40"),
        (lambda t: t.replace("40\t24", "39\t24", 1), "more gene rows than the 39"),
        (lambda t: t.replace("Name\tDescription", "Gene\tDescription", 1), "must start with 'Name"),
        (lambda t: "\n".join(t.split("\n")[:-3]) + "\n", "announces 40 genes but the file has 38"),
        (lambda t: t.replace("\t0.2918\t", "\tn/a\t", 1), r"line 4 \(ENSG00000223972.1\) has unparsable values"),
        # a short row then a long one: same total count, must still be caught
        (lambda t: t.replace("\t0.2918\t", "\t", 1).replace("\t15.72\t", "\t15.72\t1\t", 1),
         r"line 4 \(ENSG00000223972.1\) has 23 values, expected 24"),
    ],
)
def test_bad_gct_is_clear_error_and_leaves_no_output(tmp_path, edit, message):
    bad = tmp_path / TPM.name
    bad.write_bytes(_gz(edit(_gct_text())))
    out = tmp_path / "out" / "g.h5ad"
    with pytest.raises(LinsigInputError, match=message) as err:
        build_gtex_from_files(out, bad, SAMPLES, SUBJECTS, n_top_genes=10, progress=False)
    assert str(bad) in str(err.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_wrong_header_via_cli(local_server, tmp_path):
    base = _publish(local_server, "p", tpm=_gz(_gct_text().replace("#1.2", "#1.3", 1)))
    out = tmp_path / "g.h5ad"
    res = _run([out, "--base-url", base, "--cache-dir", tmp_path / "c", "--no-progress"])
    assert res.exit_code == 1 and "not a GCT 1.2 file" in res.output
    assert not out.exists()


def test_sample_missing_from_annotations(tmp_path):
    lines = SAMPLES.read_text().splitlines()
    cut = tmp_path / SAMPLES.name
    cut.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    with pytest.raises(LinsigInputError, match="not in SAMPID") as err:
        build_gtex_from_files(tmp_path / "g.h5ad", TPM, cut, SUBJECTS, progress=False)
    assert str(cut) in str(err.value)


def test_missing_annotation_column(tmp_path):
    bad = tmp_path / SUBJECTS.name
    bad.write_text(SUBJECTS.read_text().replace("SEX", "GENDER"))
    with pytest.raises(LinsigInputError, match=r"missing column\(s\) \['SEX'\]"):
        build_gtex_from_files(tmp_path / "g.h5ad", TPM, SAMPLES, bad, progress=False)


def test_download_error_type_for_truncated_file(local_server, tmp_path):
    base = _publish(local_server, "p", tpm=_truncated_gz())
    with pytest.raises(DownloadError, match="gzip stream ends early"):
        build_gtex(tmp_path / "g.h5ad", cache_dir=tmp_path / "c", mirrors=[Mirror(base)], **FAST)
