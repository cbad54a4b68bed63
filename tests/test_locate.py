"""linsig locate: planted genes found, pairs found, the form right, and calibrated under the null.

Small sizes (a few hundred samples, ≤ 100 genes); the full-size numbers are in
benchmarks/bench_locate.py and docs/locate.md.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.data.simulate import InvalidSimulation, simulate
from linsig.errors import LinsigInputError
from linsig.evaluation import Settings
from linsig.locate import LocateConfig, beyond_linear, binary_tasks, gene_tests, locate
from linsig.locate.core import _fold_data, bh
from linsig.signal import remove_signal_split
from linsig.tasks import make_task

SMALL = LocateConfig(permutations=9, max_iter=50, n_top=6, n_candidates=30)


def _settings(folds=5, seeds=(0,), tuning="fast"):
    return Settings(models=("gbdt",), seeds=seeds, n_folds=folds, fractions=(1.0,), signals=("removed",),
                    tuning=tuning)


def _task(kind, n, genes, seed=1, groups=20, **kw):
    return make_task(simulate(kind, n, genes, n_groups=groups, seed=seed, **kw), "label", "group")


# ----------------------------------------------------------------------------------------------
# simulation kinds with known truth
# ----------------------------------------------------------------------------------------------

def test_planted_kinds_have_the_stated_truth():
    a = simulate("interaction", 4000, 20, seed=0, n_signal=4)
    X, y = a.X, a.obs["label"].astype(int).to_numpy()
    assert list(a.var["signal"][:4]) == ["interaction"] * 4 and list(a.var["pair"][:4]) == [0, 0, 1, 1]
    for j in range(4):  # each interaction gene: the same distribution in both classes
        assert abs(X[y == 1, j].std() - X[y == 0, j].std()) < 0.06
        assert abs(X[y == 1, j].mean() - X[y == 0, j].mean()) < 0.08
    agree = np.sign(X[:, 0] * X[:, 1]) == np.where(y == 1, 1, -1)
    assert 0.88 < agree.mean() < 0.92  # effect 0.9: the product's sign follows the class for 90 %
    v = simulate("variance+linear", 4000, 30, seed=0, n_signal=5, weak_shift=0.3)
    X, y = v.X, v.obs["label"].astype(int).to_numpy()
    assert list(v.var["signal"][:10]) == ["variance"] * 5 + ["linear"] * 5
    assert 1.9 < X[y == 1, 0].std() / X[y == 0, 0].std() < 2.1
    assert abs(X[y == 1, 0].mean() - X[y == 0, 0].mean()) < 0.15
    assert 0.2 < X[y == 1, 7].mean() - X[y == 0, 7].mean() < 0.4
    with pytest.raises(InvalidSimulation, match="n_signal"):
        simulate("interaction", 100, 20, n_signal=3)
    with pytest.raises(InvalidSimulation, match="effect"):
        simulate("variance", 100, 20, effect=-1)


def test_simulate_command_writes_the_new_kinds(tmp_path):
    out = tmp_path / "i.h5ad"
    r = CliRunner().invoke(main, ["simulate", "interaction+linear", str(out), "--samples", "50", "--features", "30",
                                  "--signal-genes", "4", "--effect", "0.8", "--weak-shift", "0.5"])
    assert r.exit_code == 0, r.output
    import anndata as ad

    a = ad.read_h5ad(out)
    assert a.uns["linsig"]["simulation"]["effect"] == 0.8 and (a.var["signal"] == "linear").sum() == 4


# ----------------------------------------------------------------------------------------------
# removal inside each fold, as the benchmark
# ----------------------------------------------------------------------------------------------

def test_fold_data_is_the_benchmarks_in_fold_removal():
    task = _task("variance", 120, 15)
    train, val = np.arange(0, 120, 2), np.arange(1, 120, 2)
    X_tr, X_va = _fold_data(task, task.y, train, val)
    ref_tr, ref_va = remove_signal_split(task.X[train], task.y[train], task.X[val], task.y[val])
    np.testing.assert_allclose(X_tr, ref_tr, atol=1e-6)
    np.testing.assert_allclose(X_va, ref_va, atol=1e-6)
    for part, y in ((X_tr, task.y[train]), (X_va, task.y[val])):  # no class mean left in either part
        np.testing.assert_allclose(part[y == 0].mean(0), part[y == 1].mean(0), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# per-gene tests: calibrated, and they find spread
# ----------------------------------------------------------------------------------------------

def test_gene_tests_are_calibrated_and_find_spread():
    rng = np.random.default_rng(0)
    hits, n_rep, G = 0, 300, 50
    for _ in range(n_rep):  # noise after in-fold removal, unbalanced classes and small cells
        y = (rng.random(150) < 0.3).astype(int)
        cells = np.arange(150) % 5
        X = rng.standard_normal((150, G)) + 3.0 * y[:, None] * rng.random(G)  # a linear shift, then removed
        for c in range(5):
            for k in (0, 1):
                rows = (cells == c) & (y == k)
                X[rows] -= X[rows].mean(0)
        hits += (bh(gene_tests(X, y, cells)["p_tests"]) < 0.05).any()
    assert hits / n_rep <= 0.05  # all genes null: FDR = P(any discovery)
    # two studies (cells) on platforms of different spread, the classes unevenly spread over them,
    # no class difference within either: not a spread difference (a pooled test would say it is)
    cells = np.repeat([0, 1], 100)
    y = np.r_[(rng.random(100) < 0.8), (rng.random(100) < 0.2)].astype(int)
    X = rng.standard_normal((200, 20)) * np.where(cells == 0, 2.0, 1.0)[:, None]
    for c in (0, 1):
        for k in (0, 1):
            rows = (cells == c) & (y == k)
            X[rows] -= X[rows].mean(0)
    assert (bh(gene_tests(X, y, cells)["p_tests"]) > 0.05).all()
    assert (bh(gene_tests(X, y)["p_spread"]) < 0.05).mean() > 0.5  # what pooling the cells would claim
    y = np.repeat([0, 1], 100)
    X = rng.standard_normal((200, 10))
    X[y == 1, 0] *= 2.0
    t = gene_tests(X - np.where(y[:, None] == 1, X[y == 1].mean(0), X[y == 0].mean(0)), y)
    assert t["p_spread"][0] < 1e-6 and t["spread_ratio"][0] > 1.5 and (t["p_tests"][1:] > 1e-3).all()


# ----------------------------------------------------------------------------------------------
# planted truth found
# ----------------------------------------------------------------------------------------------

def test_variance_genes_ranked_first_and_form_additive():
    task = _task("variance", 240, 60, n_signal=8)
    res = locate(task, _settings(), SMALL, progress=False)
    top = res.genes.head(8)
    assert top["gene"].isin([f"feature{j}" for j in range(8)]).mean() >= 0.9
    assert (top["form"] == "spread").all() and (top["q_value"] < 0.05).all()
    assert res.genes["q_value"].notna().all() and res.n_genes_q05 >= 8
    assert abs(res.form["additive"] - res.form["interaction"]) < 0.05 and res.form["additive"] > 0.75
    assert (res.pairs["q_value"] >= 0.05).all()  # genes acting alone make no pairs
    assert res.beyond_linear["p_value"] < 0.05  # nothing linear here: the non-linear part adds


def test_interaction_genes_pairs_and_form():
    task = _task("interaction", 300, 60, n_signal=10, seed=2)
    res = locate(task, _settings(), LocateConfig(permutations=9, max_iter=100, n_top=10, n_candidates=30),
                 progress=False)
    planted = {f"feature{j}" for j in range(10)}
    assert res.genes.head(15)["gene"].isin(planted).mean() * 15 / 10 >= 0.7
    found = res.pairs[res.pairs["q_value"] < 0.05]
    truth = {frozenset((f"feature{a}", f"feature{a + 1}")) for a in range(0, 10, 2)}
    got = {frozenset(p) for p in zip(found["gene_a"], found["gene_b"])}
    assert len(got & truth) >= 4 and len(got - truth) <= 1
    assert res.form["additive"] < 0.6 and res.form["interaction"] > 0.75
    found_genes = res.genes[res.genes["q_value"] < 0.05]
    assert len(found_genes) >= 8 and set(found_genes["form"]) == {"interaction"}
    assert found_genes["gene"].isin(planted).all()


def test_adds_to_linear_only_beside_a_weak_linear_signal():
    config = LocateConfig(max_iter=100)
    mix = _task("interaction+linear", 400, 40, n_signal=6, weak_shift=0.35, seed=4)
    res = beyond_linear(mix, _settings(seeds=(0, 1)), config)
    assert res["combined"] > res["linear"] + 0.05 and res["p_value"] < 0.05
    lin = _task("linear", 400, 40, shift=0.25, seed=4)
    res = beyond_linear(lin, _settings(seeds=(0, 1)), config)
    assert res["p_value"] > 0.05 and res["combined"] <= res["linear"] + 0.02


# ----------------------------------------------------------------------------------------------
# calibration under no signal
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_calibrated_under_the_null_over_100_replicates():
    """Noise and linear-only data (after removal nothing is left): genes and pairs at q < 0.05
    are all false, so their FDR is the share of replicates with any; "adds to linear" is a
    one-sided test at 5 %. The importance p-values, pooled over genes, must be valid p-values
    (at most 10 % of them ≤ 0.1). Tiny data so that 100 replicates fit a test;
    benchmarks/bench_locate.py null repeats it at larger sizes."""
    settings = _settings(folds=3, tuning="off")
    config = LocateConfig(permutations=9, max_iter=10, n_top=3, n_candidates=10)
    any_gene = any_pair = adds = 0
    p_imp = []
    n_rep = 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(n_rep):
            kind = "noise" if r % 2 else "linear"
            task = _task(kind, 80, 10, seed=500 + r, groups=8, shift=0.5)
            res = locate(task, settings, config, progress=False)
            any_gene += res.n_genes_q05 > 0
            any_pair += bool((res.pairs["q_value"] < 0.05).any())
            adds += res.beyond_linear["p_value"] < 0.05
            p_imp.append(res.genes["p_importance"].to_numpy())
    share = float(np.mean(np.concatenate(p_imp) <= 0.1))
    print(f"null: genes {any_gene}/{n_rep}, pairs {any_pair}/{n_rep}, adds to linear {adds}/{n_rep}, "
          f"p_importance <= 0.1: {share:.3f}")
    assert any_gene / n_rep <= 0.05 and any_pair / n_rep <= 0.05 and adds / n_rep <= 0.05
    assert share <= 0.1 + 0.01  # 1,000 p-values (10 genes × 100 replicates): sd of the share ≈ 0.01 (genes correlate)


# ----------------------------------------------------------------------------------------------
# outputs, CLI, multiclass
# ----------------------------------------------------------------------------------------------

def test_cli_writes_the_documented_outputs(tmp_path):
    data = tmp_path / "v.h5ad"
    simulate("variance", 150, 30, n_groups=10, seed=3, n_signal=4).write_h5ad(data)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["locate", "--data", str(data), "--label", "label", "--group", "group",
                                  "--n-top-genes", "0", "--normalize", "none", "--seeds", "0", "--folds", "3",
                                  "--permutations", "4", "--top", "4", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    genes, pairs = pd.read_parquet(out / "genes.parquet"), pd.read_parquet(out / "pairs.parquet")
    assert {"gene", "rank", "q_value", "form"} <= set(genes.columns) and genes["q_value"].notna().all()
    assert list(genes["rank"]) == list(range(1, 31)) and set(genes["form"]) <= {"spread", "shape", "interaction", "none"}
    assert {"gene_a", "gene_b", "rank", "q_value"} <= set(pairs.columns) and len(pairs) == 6
    doc = json.loads((out / "locate.json").read_text())
    assert set(doc["form"]) == {"additive", "interaction"}
    assert set(doc["beyond_linear"]) == {"linear", "combined", "p_value"}
    assert doc["n_genes_q05"] == int((genes["q_value"] < 0.05).sum())
    for files in doc["tasks"][0]["figures"].values():
        assert (out / files["png"]).is_file() and (out / files["svg"]).is_file()
    assert not list(out.glob("*.partial")) and not list(out.glob(".*tmp*"))


def test_cli_refuses_bad_input_by_name(tmp_path):
    data = tmp_path / "v.h5ad"
    simulate("noise", 40, 10, n_groups=4, seed=3).write_h5ad(data)
    r = CliRunner().invoke(main, ["locate", "--data", str(data), "--label", "nope", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "nope" in r.output
    r = CliRunner().invoke(main, ["locate", "--data", str(data), "--label", "label", "--seeds", "x",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2


def test_multiclass_is_located_one_vs_rest():
    a = simulate("noise", 90, 10, n_groups=9, seed=5)
    a.obs["label"] = pd.Categorical(np.array(["a", "b", "c"])[np.arange(90) % 3])
    task = make_task(a, "label", "group")
    parts = binary_tasks(task)
    assert [p for _, p in parts] == ["a", "b", "c"]
    for t, p in parts:
        assert t.n_classes == 2 and t.y.sum() == 30 and t.name.endswith(f"{p}-vs-rest")
    with pytest.raises(LinsigInputError, match="binary"):
        locate(task, _settings(folds=3), SMALL, progress=False)


def test_report_has_the_locate_section(tmp_path):
    data = tmp_path / "v.h5ad"
    simulate("variance", 120, 20, n_groups=6, seed=3, n_signal=4).write_h5ad(data)
    common = ["--data", str(data), "--label", "label", "--group", "group", "--n-top-genes", "0", "--seeds", "0",
              "--folds", "3", "--out", str(tmp_path), "--quiet"]
    runner = CliRunner()
    r = runner.invoke(main, ["run", *common, "--models", "logreg", "--fractions", "1.0", "--signal", "none,removed",
                             "--tuning", "off"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["locate", *common, "--permutations", "3", "--top", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["report", str(tmp_path)])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "report.html").read_text()
    assert "Where is the signal?" in page and 'alt="locate genes"' in page and "feature0" in page
    # a figure path pointing out of the folder is not embedded
    doc = json.loads((tmp_path / "locate.json").read_text())
    doc["tasks"][0]["figures"]["genes"]["png"] = "../../etc/passwd"
    (tmp_path / "locate.json").write_text(json.dumps(doc))
    from linsig.locate.report import section_html

    assert 'alt="locate genes"' not in section_html(tmp_path) and 'alt="locate form"' in section_html(tmp_path)
