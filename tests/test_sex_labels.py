"""Flynn et al. 2021 sex labels joined onto a Recount3-style compendium."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.data import sex_labels as sl
from linsig.errors import LinsigInputError

FLYNN = Path(__file__).parent / "fixtures" / "flynn" / "combined_human_mouse_meta_v2.csv"
RUNS = ["SRR527082", "DRR057223", "DRR057224", "SRR9990001", "SRR9990004", "SRR9990005", "SRR9990006",
        "ERR0000001", "SRR0000000"]
# What the fixture says for each run, and why:
EXPECTED = {
    "SRR527082": "female",  # human rnaseq female
    "DRR057223": "male",  # human rnaseq male
    "DRR057224": None,  # metadata_sex unknown
    "SRR9990001": None,  # mixed
    "SRR9990004": None,  # mouse
    "SRR9990005": "female",  # duplicated row, same label
    "SRR9990006": None,  # duplicated row, male and female: ambiguous
    "ERR0000001": "female",  # QC flags (present False, few reads) are not filters of the paper
    "SRR0000000": None,  # not in the file
}


def _compendium() -> ad.AnnData:
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"external_id": RUNS, "study": ["S"] * len(RUNS)}, index=[f"s{i}" for i in range(len(RUNS))])
    return ad.AnnData(X=rng.random((len(RUNS), 3), dtype=np.float32), obs=obs,
                      var=pd.DataFrame(index=["g1", "g2", "g3"]), uns={"linsig": {"dataset": "recount3"}})


def _as_list(sex: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in sex]


def test_read_flynn_labels_filters_human_rnaseq_male_female():
    labels = sl.read_flynn_labels(FLYNN)
    assert labels.to_dict() == {"SRR527082": "female", "DRR057223": "male", "SRR9990005": "female",
                                "ERR0000001": "female"}
    # GSM1000001 is human and male but microarray.
    assert "GSM1000001" not in labels.index


def test_add_sex_labels_in_memory():
    a = _compendium()
    out = sl.add_sex_labels(a, FLYNN)
    assert _as_list(out.obs["sex"]) == [EXPECTED[r] for r in RUNS]
    assert "sex" not in a.obs  # input untouched
    info = out.uns["linsig"]["sex_labels"]
    assert (info["n_labeled"], info["n_male"], info["n_female"]) == (4, 1, 3)
    assert out.uns["linsig"]["dataset"] == "recount3"
    np.testing.assert_array_equal(out.X, a.X)


def test_cli_joins_on_external_id_and_reports_counts(tmp_path):
    src, out = tmp_path / "recount3.h5ad", tmp_path / "labelled.h5ad"
    a = _compendium()
    a.write_h5ad(src)
    res = CliRunner().invoke(main, ["data", "sex-labels", str(FLYNN), "--compendium", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 compendium sample(s) labelled (1 male, 3 female)" in res.output
    b = ad.read_h5ad(out)
    assert _as_list(b.obs["sex"]) == [EXPECTED[r] for r in RUNS]
    assert list(b.obs["external_id"]) == RUNS and list(b.obs_names) == list(a.obs_names)
    np.testing.assert_array_equal(b.X, a.X)
    assert b.uns["linsig"]["sex_labels"]["n_labeled"] == 4 and b.uns["linsig"]["dataset"] == "recount3"
    assert "sex" not in ad.read_h5ad(src).obs  # the input file is unchanged

    # In place, and re-labelling replaces the column.
    res = CliRunner().invoke(main, ["data", "sex-labels", str(FLYNN), "--compendium", str(out), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _as_list(ad.read_h5ad(out).obs["sex"]) == [EXPECTED[r] for r in RUNS]
    assert not list(tmp_path.glob("*.partial"))


def test_missing_file_says_where_to_get_it(tmp_path):
    src = tmp_path / "c.h5ad"
    _compendium().write_h5ad(src)
    missing = tmp_path / "combined_human_mouse_meta_v2.csv"
    res = CliRunner().invoke(main, ["data", "sex-labels", str(missing), "--compendium", str(src),
                                    "--out", str(tmp_path / "o.h5ad")])
    assert res.exit_code == 1
    assert str(missing) in res.output and sl.FLYNN_URL in res.output and "figshare" in res.output
    with pytest.raises(LinsigInputError, match="figshare"):
        sl.add_sex_labels(_compendium(), missing)
    res = CliRunner().invoke(main, ["data", "sex-labels", "--help"])
    assert res.exit_code == 0 and sl.FLYNN_URL in res.output.replace("\n", "")


def test_bad_flynn_file_and_missing_id_column(tmp_path):
    bad = tmp_path / "flynn.csv"
    bad.write_text("sample_acc,organism,sex\nSRR1,human,male\n")
    with pytest.raises(LinsigInputError, match=r"flynn\.csv: missing column\(s\) data_type, metadata_sex"):
        sl.read_flynn_labels(bad)
    a = _compendium()
    with pytest.raises(LinsigInputError, match="no 'run' column"):
        sl.add_sex_labels(a, FLYNN, id_column="run")
    a.obs_names = RUNS
    assert sl.add_sex_labels(a, FLYNN, id_column="obs_names").obs["sex"].notna().sum() == 4
