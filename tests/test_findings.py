"""The paper's simulation findings (Fig 4, S1), reproduced with the real pipeline end to end.

``linsig simulate`` writes each dataset, ``linsig run`` cross-validates all four models before and
after linear signal removal, and the assertions are on ``results.parquet``. Sizes are smaller than
the paper's 1000 × 5000 to fit test time; the training recipe is the paper's (batch 16, 50 epochs,
patience 7, clipping 0.01), without tuning.
"""

import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main

pytestmark = pytest.mark.slow

RESULT_COLUMNS = ["dataset", "task", "model", "seed", "fold", "split", "signal", "train_fraction", "n_train",
                  "n_val", "balanced_accuracy", "accuracy", "lr", "weight_decay"]


def _simulate_and_run(tmp, kind, signals, samples=1000, features=200, extra=()):
    data = tmp / f"{kind}.h5ad"
    res = CliRunner().invoke(main, ["simulate", kind, str(data), "--samples", str(samples), "--features", str(features)])
    assert res.exit_code == 0, res.output
    out = tmp / f"run-{kind}"
    args = ["run", "--data", str(data), "--label", "label", "--group", "group", "--models", "logreg,svm,mlp3,mlp5",
            "--folds", "3", "--seeds", "0", "--fractions", "1.0", "--signal", signals, "--tuning", "off",
            "--n-top-genes", "0", "--out", str(out), "--quiet", "--jobs", "2", *extra]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return pd.read_parquet(out / "results.parquet")


@pytest.fixture(scope="module")
def fig4(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fig4")
    return {kind: _simulate_and_run(tmp, kind, "none,removed") for kind in ("mixed", "linear", "noise")}


def _mean(df, signal):
    ok = df[(df.signal == signal) & (df.status == "ok")]
    return ok.groupby("model")["balanced_accuracy"].mean()


def test_results_table_contract(fig4):
    df = fig4["mixed"]
    assert set(RESULT_COLUMNS) <= set(df.columns)
    # one row per (model, seed, fold, train_fraction, signal)
    assert len(df) == 4 * 1 * 3 * 1 * 2
    assert not df.duplicated(["model", "seed", "fold", "train_fraction", "signal"]).any()
    assert (df.status == "ok").all()
    assert (df.n_train + df.n_val == 1000).all()
    assert set(df.split) == {"study"} and set(df.dataset) == {"sim-mixed"}


@pytest.mark.parametrize("kind", ["mixed", "linear"])
def test_every_model_learns_signal(fig4, kind):
    before = _mean(fig4[kind], "none")
    assert len(before) == 4
    assert (before > 0.9).all(), before


def test_noise_is_not_learnable(fig4):
    for signal in ("none", "removed"):
        acc = _mean(fig4["noise"], signal)
        assert ((acc - 0.5).abs() < 0.1).all(), (signal, acc)


def test_fig4a_mixed_only_networks_survive_removal(fig4):
    after = _mean(fig4["mixed"], "removed")
    assert after["mlp3"] > 0.85 and after["mlp5"] > 0.85, after
    assert abs(after["logreg"] - 0.5) < 0.1 and abs(after["svm"] - 0.5) < 0.1, after


def test_fig4b_linear_nothing_survives_removal(fig4):
    after = _mean(fig4["linear"], "removed")
    # Removal injects no non-linear signal: the networks fall to chance with the linear models.
    assert ((after - 0.5).abs() < 0.1).all(), after


def test_s1_full_dataset_removal_induces_signal(tmp_path):
    """Correcting the whole labelled dataset before splitting makes each training fold's class
    means the mirror image of the validation fold's (they must average to equal means), so a
    linear model learns a direction that is anti-predictive on the held-out fold: balanced
    accuracy falls below chance on pure noise, while fold-wise removal stays at chance."""
    df = _simulate_and_run(tmp_path, "noise", "removed,removed_full", samples=400, features=2000,
                           extra=["--models", "logreg", "--seeds", "0,1,2", "--folds", "5"])
    ok = df[df.status == "ok"]
    by_signal = ok.groupby("signal")["balanced_accuracy"]
    full, split = by_signal.mean()["removed_full"], by_signal.mean()["removed"]
    assert abs(split - 0.5) < 0.05
    assert full < 0.47 and split - full > 0.03, by_signal.describe()
    below = (ok[ok.signal == "removed_full"].balanced_accuracy < 0.5).sum()
    above = (ok[ok.signal == "removed_full"].balanced_accuracy > 0.5).sum()
    assert below > 2 * above
