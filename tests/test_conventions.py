"""Issue 28: the conventions a scientific Python user expects — a Python API with the command
line's names, ``python -m linsig``, ``.h5ad`` layers and sparse matrices, logging options on every
command, a tidy CSV export, and the licence files in the repository and the wheel."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

import linsig
from linsig.cli import main
from linsig.errors import LinsigInputError
from linsig.evaluation import Settings

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
FAST = dict(models=["logreg", "mlp3"], folds=3, seeds=[0], fractions=[0.5, 1.0], tuning="off", epochs=2)


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def sparse_h5ad(tmp_path_factory) -> Path:
    """60 samples of 6 studies, counts in a sparse X, a 'counts' layer (×10) and a raw matrix (+1)."""
    rng = np.random.default_rng(0)
    n = 60
    X = rng.poisson(2.0, size=(n, 30)).astype(np.float32)
    y = np.array(["a", "b"])[np.arange(n) % 2]
    X[y == "b", :3] += 4
    obs = pd.DataFrame({"label": y, "group": [f"g{i % 6}" for i in range(n)]}, index=[f"s{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(30)])
    adata = ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=var)
    adata.layers["counts"] = sp.csr_matrix(X * 10)
    adata.layers["dense"] = X[:, ::-1].copy()
    adata.raw = ad.AnnData(X=sp.csr_matrix(X + 1), obs=obs, var=var)
    path = tmp_path_factory.mktemp("h5ad") / "sparse.h5ad"
    adata.write_h5ad(path)
    return path


# ------------------------------------------------------------------ Python API

def test_benchmark_returns_the_results_with_the_command_line_names(sparse_h5ad, tmp_path):
    df = linsig.benchmark(sparse_h5ad, label="label", group="group", signal="none,removed",
                          out=tmp_path / "run", **FAST)
    assert isinstance(df, pd.DataFrame) and {"balanced_accuracy", "roc_auc"} <= set(df.columns)
    assert set(df["signal"]) == {"none", "removed"} and set(df["fold"]) == {0, 1, 2}
    assert (tmp_path / "run" / "results.parquet").exists()
    v = linsig.report(tmp_path / "run")
    assert v.path == tmp_path / "run" / "report.html" and v.path.exists()
    assert v.answer_a and v.answer_b and len(v.table)
    from linsig.report import write_report  # noqa: F401 - the module stays importable...

    assert callable(linsig.report)  # ...and linsig.report stays the notebook function


def test_benchmark_accepts_an_in_memory_anndata_with_a_sparse_matrix(sparse_h5ad):
    adata = ad.read_h5ad(sparse_h5ad)
    assert sp.issparse(adata.X)
    df = linsig.benchmark(adata, label="label", group="group", name="mine", **FAST)
    ok = df[df["status"] == "ok"]
    assert len(ok) and set(df["dataset"]) == {"mine"} and ok["roc_auc"].between(0, 1).all()


def test_benchmark_names_a_bad_value_by_its_option(sparse_h5ad):
    with pytest.raises(LinsigInputError, match="--folds"):
        linsig.benchmark(sparse_h5ad, label="label", **{**FAST, "folds": 1})


def test_settings_accept_the_command_line_names():
    s = Settings(folds=3, epochs=7, signal=["none", "removed"], tuning="off")
    assert (s.n_folds, s.max_epochs, s.signals) == (3, 7, ("none", "removed"))
    assert Settings(n_folds=4, max_epochs=9, signals=("none",)).n_folds == 4  # the field names still work
    assert "folds" not in s.to_dict() and s.to_dict()["n_folds"] == 3
    with pytest.raises(LinsigInputError, match="folds=3 and n_folds=4"):
        Settings(n_folds=4, folds=3)


# ------------------------------------------------------------------ python -m linsig

def test_python_m_linsig_and_its_version():
    out = subprocess.run([sys.executable, "-m", "linsig", "--version"], capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"linsig, version {linsig.__version__}"
    out = subprocess.run([sys.executable, "-m", "linsig", "--help"], capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert out.returncode == 0 and "Usage: linsig" in out.stdout


# ------------------------------------------------------------------ .h5ad layers, sparse matrices

def _tasks(path, layer):
    from linsig.runner import build_tasks, prepare_dataset

    adata = prepare_dataset(path, n_top_genes=0, normalize="none", layer=layer)
    return build_tasks(adata, "label", "group")[0]


def test_layer_and_raw_of_an_h5ad(sparse_h5ad):
    x = _tasks(sparse_h5ad, None).X
    assert np.allclose(_tasks(sparse_h5ad, "counts").X, 10 * x)
    assert np.allclose(_tasks(sparse_h5ad, "raw").X, x + 1)
    assert np.allclose(_tasks(sparse_h5ad, "dense").X, x[:, ::-1])
    with pytest.raises(LinsigInputError, match=r"sparse\.h5ad: no layer 'nope' \(it has: counts, dense, raw"):
        _tasks(sparse_h5ad, "nope")


def test_cli_run_with_a_layer_of_a_sparse_h5ad(sparse_h5ad, tmp_path):
    res = CliRunner().invoke(main, ["run", "--data", str(sparse_h5ad), "--layer", "counts", "--label", "label",
                                    "--group", "group", "--models", "logreg", "--folds", "3", "--seeds", "0",
                                    "--fractions", "1", "--tuning", "off", "--quiet", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    import json

    assert json.loads((tmp_path / "r" / "summary.json").read_text())["config"]["layer"] == "counts"
    res = CliRunner().invoke(main, ["run", "--data", str(sparse_h5ad), "--layer", "nope", "--label", "label",
                                    "--out", str(tmp_path / "r2")])
    assert res.exit_code == 1 and "no layer 'nope'" in res.output


# ------------------------------------------------------------------ logging options

def _commands(group, prefix=()):
    import click

    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


def test_every_command_takes_verbose_quiet_and_log_file():
    for path, cmd in _commands(main):
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert {"-v", "--verbose", "--quiet", "--log-file"} <= opts, path


def test_log_options_after_the_command_and_the_log_file(tmp_path):
    log = tmp_path / "linsig.log"
    res = CliRunner().invoke(main, ["report", str(tmp_path / "none"), "-vv", "--log-file", str(log)])
    assert res.exit_code == 1
    text = log.read_text()
    assert "ERROR linsig: " in text and "results table not found" in text
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_linsig", False)]:  # leave no file open
        root.removeHandler(h)
        h.close()


def test_verbose_after_the_command_prints_the_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "linsig", "report", str(tmp_path / "none"), "-vv"],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 1 and "Traceback" in out.stderr and "Error: " in out.stderr
    out = subprocess.run([sys.executable, "-m", "linsig", "report", str(tmp_path / "none"), "--quiet"],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr


# ------------------------------------------------------------------ tidy CSV

def test_report_csv_writes_tidy_results_and_verdict(tmp_path):
    from linsig.plots import synthetic_results

    df = synthetic_results(fractions=3, seeds=2)
    df.to_parquet(tmp_path / "results.parquet")
    res = CliRunner().invoke(main, ["report", str(tmp_path), "--csv"])
    assert res.exit_code == 0, res.output
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == len(df) and list(results.columns) == list(df.columns)
    verdict = pd.read_csv(tmp_path / "verdict.csv")
    assert {"question", "model", "estimate", "ci_low", "ci_high", "p_value"} <= set(verdict.columns)


# ------------------------------------------------------------------ licence

def test_license_files_and_spdx_expression():
    import tomllib

    text = (ROOT / "LICENSE").read_text()
    assert "BSD 3-Clause License" in text and "LICENSES/Artistic-2.0.txt" in text
    assert (ROOT / "LICENSES" / "Artistic-2.0.txt").read_text().startswith("Artistic License 2.0")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause AND Artistic-2.0"  # the SPDX string, not the table form
    assert "LICENSE" in project["license-files"]


@pytest.mark.slow
def test_wheel_holds_the_licence(tmp_path):
    import shutil

    tree = tmp_path / "tree"  # a copy: building in place would leave build/ and *.egg-info in the checkout
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "LICENSES", tree / "LICENSES")
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(tree)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    if out.returncode != 0:
        pytest.skip(f"no wheel could be built here: {out.stderr[-300:]}")
    (wheel,) = tmp_path.glob("linsig-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert any(n.endswith("licenses/LICENSES/Artistic-2.0.txt") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause AND Artistic-2.0" in metadata


def test_benchmark_checks_its_output_folder_as_the_command_line_does(sparse_h5ad, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_text('{"experiment": "x", "units": []}')  # another kind of run's folder
    with pytest.raises(LinsigInputError, match="experiment"):
        linsig.benchmark(sparse_h5ad, label="label", group="group", out=out, **FAST)
