"""--permutations N: label permutations as units of the grid, and the permutation test end to end."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.errors import LinsigInputError
from linsig.experiment.driver import run_experiment
from linsig.executors import InProcessExecutor
from linsig.experiment.spec import load_experiment
from linsig.experiment.units import compute_unit, expand
from linsig.stats import SIGNAL, nonlinear_signal_test, permutation_test

TINY = """
name = "tiny-perm"

[data.noise]
simulate = "noise"
samples = 60
features = 10
groups = 6
seed = 1

[settings]
models = ["logreg", "mlp3"]
seeds = [0]
folds = 3
fractions = [1.0]
signals = ["none", "removed"]
tuning = "off"
epochs = 2
device = "cpu"
"""


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_permutations_are_units_of_the_grid(tiny):
    plain = expand(load_experiment(tiny))
    units = expand(load_experiment(tiny, {"settings.permutations": 2}))
    real = [u for u in units if not u.permutation]
    perm = [u for u in units if u.permutation]
    # adding permutations leaves the real-label units (and their finished results) as they were
    assert [u.key for u in real] == [u.key for u in plain]
    assert len(perm) == 2 * 1 * 3 * 2  # permutations × seeds × folds × models
    assert len({u.key for u in units}) == len(units)
    assert {u.settings.signals for u in perm} == {("removed",)} and {u.permutation for u in perm} == {1, 2}
    assert "permutation=2" in perm[-1].describe()
    payload = compute_unit(perm[0])
    assert payload["status"] == "done", payload["error"]
    rows = pd.DataFrame(payload["rows"])
    assert set(rows["permutation"]) == {1} and set(rows["signal"]) == {"removed"}


def test_permutation_run_is_resumable_and_tested(tiny, tmp_path):
    exp = load_experiment(tiny, {"settings.permutations": 2})
    out = tmp_path / "run"
    report = run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    assert report.failed == 0 and report.computed == len(expand(exp))
    again = run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    assert again.computed == 0 and again.done_before == len(expand(exp))
    df = pd.read_parquet(out / "results.parquet")
    res = permutation_test(df)
    assert set(res["n_permutations"]) == {2} and ((res["p_permutation"] * 3).round(9) % 1 == 0).all()


@pytest.mark.parametrize("overrides,message", [
    ({"settings.permutations": 3, "settings.signals": ["none"]}, "settings.permutations"),
    ({"settings.permutations": -1}, "cannot be negative"),
])
def test_permutations_need_removed_signal(tiny, overrides, message):
    with pytest.raises(LinsigInputError, match=message):
        load_experiment(tiny, overrides)


def test_run_rejects_permutations_without_removal(tmp_path):
    data = tmp_path / "noise.h5ad"
    assert CliRunner().invoke(main, ["simulate", "noise", str(data), "--samples", "40", "--features", "5"]).exit_code == 0
    res = CliRunner().invoke(main, ["run", "--data", str(data), "--label", "label", "--models", "logreg",
                                    "--permutations", "5", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "--signal none,removed" in res.output


def _run(tmp, kind, seed):
    # The paper recipe at a fixed learning rate learns these 20 genes in seconds. The strong
    # recipe's networks need their search here (untuned they stay at 0.5 after removal; with
    # `--tuning fast` 0.94 on the real labels, 0.50 on permuted ones), which costs ~10 s a unit.
    data = tmp / f"{kind}.h5ad"
    res = CliRunner().invoke(main, ["simulate", kind, str(data), "--samples", "300", "--features", "20",
                                    "--seed", str(seed)])
    assert res.exit_code == 0, res.output
    out = tmp / f"run-{kind}"
    res = CliRunner().invoke(main, [
        "run", "--data", str(data), "--label", "label", "--group", "group", "--models", "mlp3", "--folds", "3",
        "--seeds", "0", "--fractions", "1.0", "--signal", "none,removed", "--recipe", "paper", "--tuning", "off", "--lr", "0.003",
        "--epochs", "15", "--n-top-genes", "0", "--permutations", "20", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "of them on permuted labels" in res.output
    return pd.read_parquet(out / "results.parquet")


@pytest.mark.slow
def test_permutation_test_finds_nonlinear_signal_in_mixed_but_not_in_noise(tmp_path):
    """`linsig simulate mixed`: a network stays above chance after removal, p = 1/21 < 0.05;
    `linsig simulate noise`: p >= 0.05 (the rate over many replicates: benchmarks/bench_calibration.py)."""
    mixed = _run(tmp_path, "mixed", 1)
    assert set(mixed["permutation"]) == set(range(21))
    sig = nonlinear_signal_test(mixed)
    (g,) = sig["groups"]
    (m,) = g["models"]
    assert m["test"] == "permutation" and m["n_permutations"] == 20
    assert m["p_permutation"] == pytest.approx(1 / 21) and g["verdict"] == SIGNAL
    noise = nonlinear_signal_test(_run(tmp_path, "noise", 1))
    assert noise["groups"][0]["models"][0]["p_permutation"] >= 0.05
