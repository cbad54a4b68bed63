import numpy as np
import anndata as ad
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.data.preprocess import GeneStats, preprocess, scale_01, top_variable_genes
from linsig.data.simulate import simulate
from linsig.errors import LinsigInputError


def test_mixed_generator_matches_the_paper():
    a = simulate("mixed", n_samples=2000, n_features=40, shift=6, seed=1)
    X, y = a.X, a.obs["label"].astype(int).to_numpy()
    assert a.shape == (2000, 40) and X.dtype == np.float32
    lin, nonlin = X[:, :20], X[:, 20:]
    assert (a.var["signal"][:20] == "linear").all() and (a.var["signal"][20:] == "nonlinear").all()
    np.testing.assert_allclose(lin[y == 0].mean(), 0, atol=0.05)
    np.testing.assert_allclose(lin[y == 1].mean(), 6, atol=0.05)
    # non-linear features: class 1 sits at +6 or -6 with equal probability, class 0 at 0
    np.testing.assert_allclose(nonlin[y == 1].mean(), 0, atol=0.1)
    np.testing.assert_allclose(np.abs(nonlin[y == 1]).mean(), 6, atol=0.05)
    np.testing.assert_allclose((nonlin[y == 1] > 0).mean(), 0.5, atol=0.02)
    np.testing.assert_allclose(nonlin[y == 0].std(), 1, atol=0.03)
    assert abs(y.mean() - 0.5) < 1e-9


def test_linear_and_noise_generators():
    lin = simulate("linear", 1000, 10, seed=0)
    y = lin.obs["label"].astype(int).to_numpy()
    np.testing.assert_allclose(lin.X[y == 1].mean() - lin.X[y == 0].mean(), 6, atol=0.05)
    noise = simulate("noise", 1000, 10, seed=0)
    y = noise.obs["label"].astype(int).to_numpy()
    assert abs(noise.X[y == 1].mean() - noise.X[y == 0].mean()) < 0.1
    np.testing.assert_allclose(noise.X.std(), 1, atol=0.03)


def test_simulation_is_deterministic_and_groups():
    a, b = simulate("mixed", 50, 8, seed=3), simulate("mixed", 50, 8, seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, simulate("mixed", 50, 8, seed=4).X)
    assert a.obs["group"].nunique() == 50  # each sample its own study by default
    g = simulate("mixed", 60, 8, n_groups=6, seed=0)
    assert g.obs["group"].nunique() == 6
    assert (g.obs.groupby("group", observed=True)["label"].nunique() == 2).all()


def test_simulate_bad_input():
    with pytest.raises(LinsigInputError, match="unknown simulation"):
        simulate("quadratic")
    with pytest.raises(LinsigInputError, match="n_groups"):
        simulate("mixed", 10, 5, n_groups=11)


def test_simulate_cli(tmp_path):
    out = tmp_path / "sim.h5ad"
    res = CliRunner().invoke(main, ["simulate", "linear", str(out), "--samples", "30", "--features", "7",
                                    "--groups", "5", "--seed", "2"])
    assert res.exit_code == 0, res.output
    a = ad.read_h5ad(out)
    assert a.shape == (30, 7) and a.obs["group"].nunique() == 5
    np.testing.assert_array_equal(a.X, simulate("linear", 30, 7, n_groups=5, seed=2).X)
    assert not (tmp_path / "sim.h5ad.partial").exists()
    res = CliRunner().invoke(main, ["simulate", "--help"])
    assert "mixed" in res.output and "--features" in res.output


def test_scale_01_and_top_variable_genes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6)).astype(np.float32) * np.array([1, 5, 0.1, 2, 3, 1], dtype=np.float32)
    X[:, 5] = 7.0  # constant gene
    S = scale_01(X)
    assert S.min(axis=0)[:5] == pytest.approx(0) and S.max(axis=0)[:5] == pytest.approx(1)
    assert (S[:, 5] == 0).all()
    stats = GeneStats.of(X)
    expected_var = np.var((X - X.min(0)) / np.where(np.ptp(X, 0) == 0, 1, np.ptp(X, 0)), axis=0, ddof=1)
    np.testing.assert_allclose(stats.scaled_variance(), expected_var, rtol=1e-5, atol=1e-12)
    top = top_variable_genes(stats, 2)
    np.testing.assert_array_equal(top, np.sort(np.argsort(-expected_var)[:2]))


def test_preprocess_keeps_obs_and_records_provenance():
    a = simulate("noise", 30, 20, seed=0)
    p = preprocess(a, n_top_genes=5)
    assert p.shape == (30, 5) and p.X.dtype == np.float32
    assert p.obs.equals(a.obs)
    prov = p.uns["linsig"]["preprocessing"]
    assert {k: prov[k] for k in ("scale_01", "n_top_genes", "normalize")} == {
        "scale_01": True, "n_top_genes": 5, "normalize": "minmax"}
    assert prov["missing"] == {"mode": "error", "n_missing": 0, "n_samples_with_missing": 0,
                               "n_genes_with_missing": 0, "n_genes_dropped": 0}
    assert set(p.var_names) <= set(a.var_names)
