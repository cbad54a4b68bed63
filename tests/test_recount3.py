"""Recount3 compendium: real recount3 files served over loopback HTTP, checked against numpy.

The shared sample mirror (/work/shared/data/recount3_mirror_sample) holds two real SRA projects
but a GTF trimmed to 2,000 alt-contig genes, all with zero coverage in these runs. So each test
copies it to a temporary mirror whose GTF keeps those 2,000 real rows and adds rows (synthetic
``bp_length``, same format) for the other 18,000 genes of the gene_sums files, and adds a small
project SRP999901 (same file formats) with labelled runs, an scRNA-seq run and a > 75 %-zero run.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from http_server import LocalServer
from linsig.cli import main
from linsig.data import recount3 as r3
from linsig.errors import LinsigInputError

SAMPLE_MIRROR = Path("/work/shared/data/recount3_mirror_sample")
REAL = ["SRP014565", "DRP004088"]
EXTRA = "SRP999901"
PROJECTS = REAL + [EXTRA]
KEPT = ["SRR527082", "DRR057223", "DRR057224", "SRR9990001", "SRR9990004"]

pytestmark = pytest.mark.skipif(not SAMPLE_MIRROR.is_dir(), reason="shared recount3 sample mirror not available")


# ----------------------------------------------------------------------------------------------
# fixture mirror
# ----------------------------------------------------------------------------------------------
def _read_gz_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.read().splitlines()


def _write_gz_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


def _gene_sums_table(path: Path) -> pd.DataFrame:
    """Independent reader: genes × runs float64 from a gene_sums file."""
    lines = [ln for ln in _read_gz_lines(path) if not ln.startswith("##")]
    header = lines[0].split("\t")
    rows = [ln.split("\t") for ln in lines[1:]]
    return pd.DataFrame(np.array([r[1:] for r in rows], dtype=np.float64),
                        index=[r[0] for r in rows], columns=header[1:])


def _gtf_lengths(path: Path) -> pd.Series:
    ids, lengths = [], []
    for ln in _read_gz_lines(path):
        if ln.startswith("#"):
            continue
        f = ln.split("\t")
        ids.append(re.search(r'gene_id "([^"]+)"', f[8]).group(1))
        lengths.append(float(f[5]))
    return pd.Series(lengths, index=ids)


def _make_mirror(root: Path) -> Path:
    """Copy the sample mirror to ``root`` (writable) and complete it; returns ``root/recount3``."""
    for src in SAMPLE_MIRROR.rglob("*"):
        if src.is_file():
            dst = root / src.relative_to(SAMPLE_MIRROR)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    base = root / "recount3"
    gs = {p: _gene_sums_table(base / r3.gene_sums_path(p)) for p in REAL}

    # GTF: the real rows plus one row per remaining gene_sums gene (deterministic bp_length).
    gtf = base / r3.GTF_PATH
    lines = _read_gz_lines(gtf)
    have = set(_gtf_lengths(gtf).index)
    rng = np.random.default_rng(7)
    for i, gene in enumerate(g for g in gs[REAL[0]].index if g not in have):
        bp = int(rng.integers(100, 20000))
        lines.append(f'chrT\tLINSIG\tgene\t{1000 * i + 1}\t{1000 * i + bp}\t{bp}\t+\t.\t'
                     f'gene_id "{gene}"; gene_type "test"; gene_name "T{i}"; level 3;')
    _write_gz_lines(gtf, lines)

    # Extra project: runs built from the real coverage columns.
    src = pd.concat([gs["SRP014565"], gs["DRP004088"]], axis=1)
    sparse = src["SRR527082"].copy()
    sparse.iloc[np.flatnonzero(sparse.to_numpy() > 0)[2000:]] = 0  # 90 % zeros, still some coverage
    extra = pd.DataFrame({
        "SRR9990001": src["DRR057223"] * 2,
        "SRR9990002": src["DRR057224"],  # scRNA-seq by recount3's pattern
        "SRR9990003": sparse,
        "SRR9990004": src["SRR527082"] * 3 + src["DRR057223"],
    })
    body = ["##annotation=G026", "##date.generated=2020-05-12 01:02:03.000000",
            "\t".join(["gene_id", *extra.columns])]
    body += [g + "\t" + "\t".join(str(int(v)) for v in row) for g, row in zip(extra.index, extra.to_numpy())]
    _write_gz_lines(base / r3.gene_sums_path(EXTRA), body)

    pred_header = _read_gz_lines(base / r3.metadata_path("SRP014565", "recount_pred"))[0]
    pred = [pred_header]
    for i, (run, tissue, ptype) in enumerate([("SRR9990001", "Blood", "rna-seq"), ("SRR9990002", "Brain", "scrna-seq"),
                                              ("SRR9990003", "Brain", "rna-seq"), ("SRR9990004", "Brain", "rna-seq")]):
        pred.append("\t".join([str(9990000 + i), run, EXTRA, f"SRS99900{i}", "NA", tissue, ptype, "NA", "NA", "NA"]))
    _write_gz_lines(base / r3.metadata_path(EXTRA, "recount_pred"), pred)
    proj_rows = [f"{9990000 + i}\t{run}\t{EXTRA}\t{EXTRA}\tHomo sapiens\tdata_sources/sra\tdata_sources/sra\t2019-10-01"
                 for i, run in enumerate(extra.columns)]
    proj_header = _read_gz_lines(base / r3.metadata_path("SRP014565", "recount_project"))[0]
    _write_gz_lines(base / r3.metadata_path(EXTRA, "recount_project"), [proj_header, *proj_rows])
    index = base / r3.PROJECT_INDEX_PATH
    _write_gz_lines(index, _read_gz_lines(index) + proj_rows)
    return base


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return _make_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def server(mirror):
    with LocalServer(root=mirror.parent) as srv:
        yield srv


def _base_url(srv) -> str:
    return srv.url + "recount3/"


def _rel(path: str) -> str:
    return "recount3/" + path


def _expected_tpm(mirror: Path) -> pd.DataFrame:
    """runs × genes TPM of every run of PROJECTS, computed independently from the raw files."""
    lengths = _gtf_lengths(mirror / r3.GTF_PATH)
    frames = []
    for p in PROJECTS:
        cov = _gene_sums_table(mirror / r3.gene_sums_path(p)).loc[lengths.index]
        rate = cov.to_numpy() / lengths.to_numpy()[:, None]
        frames.append(pd.DataFrame((rate / rate.sum(axis=0) * 1e6).T, index=cov.columns, columns=lengths.index))
    return pd.concat(frames)


def _run(args, **kw):
    result = CliRunner().invoke(main, ["data", "recount3", *args, "--no-progress"], catch_exceptions=False, **kw)
    return result


# ----------------------------------------------------------------------------------------------
# parsing and TPM (local files)
# ----------------------------------------------------------------------------------------------
def test_tpm_and_filters_match_numpy(mirror):
    ann = r3.read_gene_annotation(mirror / r3.GTF_PATH)
    assert len(ann.gene_ids) == 20000 and ann.var.loc["ENSG00000278704.1", "bp_length"] == 2237
    expected = _expected_tpm(mirror)
    for p in PROJECTS:
        files = {k: mirror / v for k, v in r3.project_paths(p).items()}
        res = r3.process_project(p, files["gene_sums"], files["recount_pred"], files["recount_project"], ann)
        exp = expected.loc[res.obs.index]
        np.testing.assert_allclose(res.tpm, exp.to_numpy(), rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(res.tpm.sum(axis=1), 1e6, rtol=1e-5)
        assert list(res.obs["study"]) == [p] * res.n_kept
        if p == EXTRA:
            assert list(res.obs.index) == ["SRR9990001", "SRR9990004"]
            assert (res.n_runs, res.n_scrna, res.n_sparse) == (4, 1, 1)
            assert list(res.obs["tissue"]) == ["Blood", "Brain"]
    # A few genes by hand: the highest-TPM gene of SRR527082 and two others.
    g = expected.loc["SRR527082"].idxmax()
    cov = _gene_sums_table(mirror / r3.gene_sums_path("SRP014565"))["SRR527082"]
    lengths = _gtf_lengths(mirror / r3.GTF_PATH)
    rate = cov[lengths.index] / lengths
    for gene in (g, lengths.index[2500], lengths.index[-1]):
        assert expected.loc["SRR527082", gene] == pytest.approx(rate[gene] / rate.sum() * 1e6)


def test_missing_gtf_gene_and_unknown_gene_name_the_files(mirror, tmp_path):
    ann = r3.read_gene_annotation(mirror / r3.GTF_PATH)
    gs = mirror / r3.gene_sums_path("SRP014565")
    short = r3.GeneAnnotation(ann.gene_ids[1:], ann.bp_length[1:], ann.var.iloc[1:], source="my.gtf")
    with pytest.raises(LinsigInputError, match=r"sra\.gene_sums\.SRP014565\.G026\.gz.*no entry.*my\.gtf.*ENSG00000278704\.1"):
        r3.gene_sums_to_tpm(gs, short)
    # A GTF gene absent from gene_sums.
    lines = _read_gz_lines(gs)
    trimmed = tmp_path / "sra.gene_sums.SRP014565.G026.gz"
    _write_gz_lines(trimmed, [ln for ln in lines if not ln.startswith("ENSG00000277400.1\t")])
    with pytest.raises(LinsigInputError, match=r"1 gene\(s\) of the annotation GTF .* missing .*ENSG00000277400\.1"):
        r3.gene_sums_to_tpm(trimmed, ann)


def test_malformed_inputs_raise_errors_naming_the_file(mirror, tmp_path):
    ann = r3.read_gene_annotation(mirror / r3.GTF_PATH)
    bad = tmp_path / "bad_header.G026.gz"
    lines = _read_gz_lines(mirror / r3.gene_sums_path("SRP014565"))
    _write_gz_lines(bad, [ln.replace("gene_id\t", "gene\t", 1) for ln in lines])
    with pytest.raises(LinsigInputError, match=r"bad_header\.G026\.gz: malformed gene_sums header"):
        r3.gene_sums_to_tpm(bad, ann)
    ragged = tmp_path / "ragged.G026.gz"
    _write_gz_lines(ragged, lines[:5] + [lines[5] + "\t7"] + lines[6:])
    with pytest.raises(LinsigInputError, match=r"ragged\.G026\.gz"):
        r3.gene_sums_to_tpm(ragged, ann)
    truncated = tmp_path / "truncated.G026.gz"
    data = (mirror / r3.gene_sums_path("SRP014565")).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(LinsigInputError, match=r"truncated\.G026\.gz"):
        r3.gene_sums_to_tpm(truncated, ann)
    gtf = tmp_path / "bad.gtf.gz"
    gl = _read_gz_lines(mirror / r3.GTF_PATH)
    i = next(k for k, ln in enumerate(gl) if not ln.startswith("#"))
    f = gl[i].split("\t")
    f[5] = "."
    gl[i] = "\t".join(f)
    _write_gz_lines(gtf, gl)
    with pytest.raises(LinsigInputError, match=r"bad\.gtf\.gz, line \d+: gene ENSG00000278704\.1 has no positive bp_length"):
        r3.read_gene_annotation(gtf)
    pred = tmp_path / "pred.MD.gz"
    _write_gz_lines(pred, ["rail_id\texternal_id\tstudy", "1\tSRR1\tSRP1"])
    with pytest.raises(LinsigInputError, match=r"pred\.MD\.gz: missing column\(s\) curated\.tissue, pattern\.predict\.type"):
        r3.read_metadata_table(pred, required=("external_id", "curated.tissue", "pattern.predict.type"))


# ----------------------------------------------------------------------------------------------
# the command, over HTTP
# ----------------------------------------------------------------------------------------------
def test_build_from_mirror_then_rebuild_from_cache(mirror, server, tmp_path):
    out, cache = tmp_path / "recount3.h5ad", tmp_path / "cache"
    res = _run([str(out), "--base-url", _base_url(server), "--cache-dir", str(cache),
                "--projects", ",".join(PROJECTS), "--n-top-genes", "0", "--jobs", "2"])
    assert res.exit_code == 0, res.output
    a = ad.read_h5ad(out)
    assert list(a.obs_names) == KEPT
    assert list(a.obs["external_id"]) == KEPT
    assert list(a.obs["study"]) == ["SRP014565", "DRP004088", "DRP004088", EXTRA, EXTRA]
    assert a.obs["tissue"].isna().tolist() == [True, True, True, False, False]
    assert list(a.obs["tissue"].dropna()) == ["Blood", "Brain"]
    assert a.n_vars == 20000 and a.X.dtype == np.float32
    info = a.uns["linsig"]
    assert info["dataset"] == "recount3"
    assert list(info["projects"]) == PROJECTS and len(info["failed_projects"]) == 0
    assert info["filters"]["n_runs"] == 7
    assert info["filters"]["n_dropped_sparse"] == 1 and info["filters"]["n_dropped_scrna"] == 1
    assert info["n_tissue_labeled"] == 2
    # X = TPM scaled to [0, 1] per gene over the kept runs.
    tpm = _expected_tpm(mirror).loc[KEPT, a.var_names]
    lo, hi = tpm.min(), tpm.max()
    span = (hi - lo).where(hi > lo, 1.0)
    np.testing.assert_allclose(a.X, ((tpm - lo) / span).to_numpy(), atol=2e-5)
    for gene in ("ENSG00000278704.1", tpm.var().idxmax()):
        col = a.var_names.get_loc(gene)
        np.testing.assert_allclose(a.X[:, col], ((tpm[gene] - lo[gene]) / span[gene]).to_numpy(), atol=2e-5)
    assert "6 samples" not in res.output and "wrote 5 samples (2 with a tissue label)" in res.output
    # Only the project files were fetched, once each (raw files deleted after processing).
    assert len(server.requests_for(_rel(r3.gene_sums_path("SRP014565")))) == 1
    assert not (cache / "raw" / r3.gene_sums_path("SRP014565")).exists()

    # The sex labels join onto this file (fixture rows: SRR527082 female, DRR057223 male).
    flynn = Path(__file__).parent / "fixtures" / "flynn" / "combined_human_mouse_meta_v2.csv"
    res = CliRunner().invoke(main, ["data", "sex-labels", str(flynn), "--compendium", str(out),
                                    "--out", str(tmp_path / "sex.h5ad")])
    assert res.exit_code == 0 and "2 compendium sample(s) labelled (1 male, 1 female)" in res.output, res.output
    sex = ad.read_h5ad(tmp_path / "sex.h5ad").obs["sex"]
    assert [None if pd.isna(v) else v for v in sex] == ["female", "male", None, None, None]

    # Same cache, fewer genes: no project is downloaded or parsed again.
    n_before = len(server.requests)
    out2 = tmp_path / "top.h5ad"
    res = _run([str(out2), "--base-url", _base_url(server), "--cache-dir", str(cache),
                "--projects", ",".join(PROJECTS), "--n-top-genes", "50"])
    assert res.exit_code == 0, res.output
    assert len(server.requests) == n_before
    assert "3 of 3 project(s) ready (3 from the cache)" in res.output
    b = ad.read_h5ad(out2)
    scaled_var = ((tpm - lo) / span).var(ddof=1)
    # The 50 largest 0–1-scaled variances (ties, e.g. genes seen in one run only, in any order).
    threshold = np.sort(scaled_var.to_numpy())[-50]
    assert b.n_vars == 50
    assert (scaled_var[b.var_names] >= threshold - 1e-6).all()
    assert (scaled_var.drop(b.var_names) <= threshold + 1e-6).all()
    assert list(b.obs_names) == KEPT


def test_failed_project_is_reported_and_rerun_fetches_only_it(server, tmp_path):
    out, cache = tmp_path / "recount3.h5ad", tmp_path / "cache"
    failing = _rel(r3.gene_sums_path("DRP004088"))
    server.fail(failing, times=None, status=500)
    args = [str(out), "--base-url", _base_url(server), "--cache-dir", str(cache),
            "--projects", ",".join(PROJECTS), "--retries", "1", "--timeout", "5"]
    res = _run(args)
    assert res.exit_code == 1
    assert "1 project(s) failed" in res.output and "DRP004088" in res.output and "HTTP 500" in res.output
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    cached = sorted(p.name.split(".")[0] for p in (cache / "processed").glob("*.npz"))
    assert cached == sorted(["SRP014565", EXTRA])
    assert len(server.requests_for(failing)) == 2  # first try + 1 retry

    server.state.rules.clear()
    n_before = len(server.requests)
    res = _run(args)
    assert res.exit_code == 0, res.output
    again = {r.path for r in server.requests[n_before:]}
    assert again == {_rel(p) for p in r3.project_paths("DRP004088").values()}
    assert list(ad.read_h5ad(out).obs_names) == KEPT


def test_missing_recount_project_table_only_skips_its_cross_check(server, tmp_path):
    out = tmp_path / "recount3.h5ad"
    server.fail(_rel(r3.metadata_path("SRP014565", "recount_project")), times=None, status=404)
    res = _run([str(out), "--base-url", _base_url(server), "--cache-dir", str(tmp_path / "cache"),
                "--projects", ",".join(PROJECTS), "--retries", "0"])
    assert res.exit_code == 0, res.output
    assert list(ad.read_h5ad(out).obs_names) == KEPT


def test_allow_missing_writes_the_rest_and_records_failures(server, tmp_path):
    """Default = every project of the index; SRP009615 is in the index but not on this mirror (404)."""
    out = tmp_path / "recount3.h5ad"
    res = _run([str(out), "--base-url", _base_url(server), "--cache-dir", str(tmp_path / "c"),
                "--allow-missing", "--n-top-genes", "100"])
    assert res.exit_code == 0, res.output
    assert "Warning: 1 project(s) failed" in res.output and "SRP009615" in res.output and "not found" in res.output
    a = ad.read_h5ad(out)
    assert list(a.uns["linsig"]["failed_projects"]) == ["SRP009615"]
    assert list(a.uns["linsig"]["projects"]) == PROJECTS
    assert a.shape == (5, 100)

    res = _run([str(tmp_path / "strict.h5ad"), "--base-url", _base_url(server), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 1 and "SRP009615" in res.output and "--allow-missing" in res.output
    assert not (tmp_path / "strict.h5ad").exists()


def test_corrupt_cached_file_is_downloaded_again_once(server, tmp_path):
    cache = tmp_path / "cache"
    rel = r3.gene_sums_path("SRP014565")
    local = cache / "raw" / rel
    local.parent.mkdir(parents=True)
    data = (server.root / "recount3" / rel).read_bytes()
    local.write_bytes(data[: len(data) // 3])  # e.g. a truncated file left by another tool
    res = _run([str(tmp_path / "o.h5ad"), "--base-url", _base_url(server), "--cache-dir", str(cache),
                "--projects", "SRP014565", "--n-top-genes", "0"])
    assert res.exit_code == 0, res.output
    assert len(server.requests_for(_rel(rel))) == 1
    assert list(ad.read_h5ad(tmp_path / "o.h5ad").obs_names) == ["SRR527082"]


def test_malformed_project_file_is_a_failed_project_naming_the_file(server, tmp_path):
    rel = r3.gene_sums_path("DRP004088")
    lines = _read_gz_lines(server.root / "recount3" / rel)
    bad = gzip.compress(("\n".join(ln.replace("gene_id\t", "gene\t", 1) for ln in lines) + "\n").encode())
    server.add_file(_rel(rel), bad)
    res = _run([str(tmp_path / "o.h5ad"), "--base-url", _base_url(server), "--cache-dir", str(tmp_path / "c"),
                "--projects", "DRP004088,SRP014565", "--retries", "0"])
    assert res.exit_code == 1
    assert re.search(r"DRP004088: LinsigInputError: .*sra\.gene_sums\.DRP004088\.G026\.gz: malformed gene_sums header",
                     res.output)
    assert len(server.requests_for(_rel(rel))) == 2  # parsed, failed, downloaded again once


def test_bad_options(server, tmp_path):
    res = _run([str(tmp_path / "o.h5ad"), "--base-url", _base_url(server), "--cache-dir", str(tmp_path / "c"),
                "--projects", "SRP000000"])
    assert res.exit_code == 1 and "SRP000000" in res.output and "not in the recount3 SRA index" in res.output
    res = _run([str(tmp_path / "o.h5ad"), "--max-sparsity", "1.5"])
    assert res.exit_code == 2
    # A mirror without the project index: a one-line error naming the file, not a traceback.
    res = _run([str(tmp_path / "o.h5ad"), "--base-url", server.url + "nowhere/", "--cache-dir", str(tmp_path / "c2"),
                "--retries", "0"])
    assert res.exit_code == 1 and "human.gene_sums.G026.gtf.gz" in res.output and "not found" in res.output


def test_help_mentions_options():
    res = CliRunner().invoke(main, ["data", "recount3", "--help"])
    assert res.exit_code == 0
    for opt in ("--base-url", "--cache-dir", "--projects", "--jobs", "--n-top-genes", "--max-sparsity",
                "--allow-missing"):
        assert opt in res.output
