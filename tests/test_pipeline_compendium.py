"""End to end on a real-format compendium: `linsig data gtex` over loopback HTTP, then `linsig run`
on the chunked .h5ad it writes, opened backed (only the task's rows are read)."""

import numpy as np
import pandas as pd
from click.testing import CliRunner

import linsig.data.compendium as compendium
from http_server import local_server  # noqa: F401  (fixture)
from linsig.cli import main
from linsig.runner import prepare_dataset
from test_gtex import _publish


def test_gtex_build_then_run_backed(local_server, tmp_path, monkeypatch):
    base = _publish(local_server, "mirror")
    data = tmp_path / "gtex.h5ad"
    res = CliRunner().invoke(main, ["data", "gtex", str(data), "--base-url", base, "--cache-dir", str(tmp_path / "c"),
                                    "--n-top-genes", "20", "--chunk-rows", "4", "--no-progress"])
    assert res.exit_code == 0, res.output
    adata = prepare_dataset(data)
    assert adata.isbacked  # preprocessed compendium: not loaded whole

    read = []
    original = compendium.read_dense_rows
    monkeypatch.setattr(compendium, "read_dense_rows", lambda X, rows: read.append(np.array(rows)) or original(X, rows))
    res = CliRunner().invoke(main, ["run", "--data", str(data), "--label", "tissue", "--group", "donor",
                                    "--classes", "Blood,Brain", "--models", "logreg", "--folds", "3", "--seeds", "0",
                                    "--fractions", "1", "--epochs", "3", "--tuning", "off", "--quiet",
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert len(read) == 1 and len(read[0]) == 16  # the 16 Blood/Brain samples of 24
    df = pd.read_parquet(tmp_path / "run/results.parquet")
    assert set(df.task) == {"tissue:Blood-vs-Brain"} and set(df.dataset) == {"gtex_v8"}
    assert (df.n_train + df.n_val == 16).all()
    # donors never straddle folds: 6 donors over 3 folds
    assert (df.n_val_groups + df.n_train_groups == 6).all()
