"""Figures of a run: content of the matplotlib objects, the LOESS band, plot_run and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_hex

from linsig.errors import LinsigInputError
from linsig.plots import (
    MODEL_COLORS,
    X_LABEL,
    Y_LABEL,
    binary_tasks_figure,
    learning_curve_figure,
    loess_band,
    model_colors,
    plot_run,
    pretraining_comparison_figure,
    simulated_figure,
    split_comparison_figure,
    synthetic_results,
)

MODELS = ("logreg", "svm", "mlp3", "mlp5")
MULTI = {("gtex", "tissue:multiclass", 4): {
    "none": {"logreg": 0.9, "svm": 0.88, "mlp3": 0.85, "mlp5": 0.87},
    "removed": {"logreg": 0.25, "svm": 0.25, "mlp3": 0.6, "mlp5": 0.65}}}


@pytest.fixture(scope="module")
def multiclass() -> pd.DataFrame:
    """4 models x 3 seeds x 5 folds x 10 fractions x 2 signals = 1200 rows, plus 7 skipped."""
    df = synthetic_results(MULTI)
    skipped = df.iloc[:7].copy()
    skipped["balanced_accuracy"] = np.nan
    skipped["accuracy"] = np.nan
    skipped["status"] = "skipped"
    skipped["skip_reason"] = "one class in training subset"
    return pd.concat([df, skipped], ignore_index=True)


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def baselines(ax) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == "baseline"]


def bands(ax) -> dict:
    return {c.get_gid(): c for c in ax.collections
            if isinstance(c, PolyCollection) and str(c.get_gid()).startswith("band:")}


def check_panel(ax, models, chance):
    assert ax.get_xlabel() == X_LABEL == "Training samples"
    assert ax.get_ylabel() == Y_LABEL == "Balanced accuracy"
    assert ax.get_ylim() == pytest.approx((0.0, 1.0))
    lines = lines_by_label(ax)
    model_lines = [lab for lab in lines if not lab.startswith("_") and lab in models]
    assert sorted(model_lines) == sorted(models)  # exactly one line per model
    assert len([line for line in ax.get_lines() if line.get_label() in models]) == len(models)
    base = baselines(ax)
    assert len(base) == 1
    assert base[0].get_linestyle() == ":"
    assert np.allclose(base[0].get_ydata(), chance)
    assert set(bands(ax)) == {f"band:{m}" for m in models}
    for model in models:
        assert to_hex(lines[model].get_color()) == MODEL_COLORS.get(model, to_hex(lines[model].get_color()))


def test_learning_curve_figure_panels_lines_band_baseline(multiclass):
    fig = learning_curve_figure(multiclass)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2  # one panel per signal value
    assert [ax.get_title() for ax in axes] == ["Before signal removal", "After linear signal removal"]
    assert "gtex" in fig._suptitle.get_text() and "tissue:multiclass" in fig._suptitle.get_text()
    for ax in axes:
        check_panel(ax, MODELS, 0.25)


def test_learning_curve_follows_the_data_and_ignores_skipped_rows(multiclass):
    fig = learning_curve_figure(multiclass)
    before, after = fig.axes[:2]
    # fitted curves end near the known level at full training size (learning=0.3 curve)
    assert lines_by_label(before)["logreg"].get_ydata()[-1] == pytest.approx(0.9, abs=0.03)
    assert lines_by_label(after)["logreg"].get_ydata()[-1] == pytest.approx(0.25, abs=0.03)
    assert lines_by_label(after)["mlp5"].get_ydata()[-1] == pytest.approx(0.65, abs=0.03)
    # scatter holds exactly the usable rows (skipped rows with NaN metrics left out)
    n_points = sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections
                   if isinstance(c, PathCollection))
    assert n_points == 1200
    # the band encloses the fit
    band = bands(before)["band:mlp3"].get_paths()[0].vertices
    fit = lines_by_label(before)["mlp3"].get_ydata()
    assert band[:, 1].min() <= fit.min() and band[:, 1].max() >= fit.max()


def test_colors_consistent_and_extra_models_get_their_own():
    colors = model_colors(["logreg", "svm", "mlp3", "mlp5", "rf", "xgb"])
    assert colors["logreg"] == MODEL_COLORS["logreg"]
    assert len(set(colors.values())) == 6
    assert model_colors(["rf", "xgb"]) == {**MODEL_COLORS, "rf": colors["rf"], "xgb": colors["xgb"]}


def test_extra_model_gets_a_line():
    levels = {("d", "t", 2): {"none": {"logreg": 0.8, "rf": 0.7}}}
    fig = learning_curve_figure(synthetic_results(levels, seeds=2, folds=2, fractions=4))
    assert len(fig.axes) == 1
    check_panel(fig.axes[0], ("logreg", "rf"), 0.5)


def test_binary_tasks_grid():
    levels = {("gtex", f"tissue:{a}-vs-{b}", 2): {
        "none": {m: 0.95 for m in MODELS}, "removed": {"logreg": 0.5, "svm": 0.5, "mlp3": 0.7,
                                                       "mlp5": 0.7}}
        for a, b in [("Blood", "Brain"), ("Blood", "Lung"), ("Brain", "Lung")]}
    df = synthetic_results(levels, seeds=2, folds=3, fractions=4)
    fig = binary_tasks_figure(df)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6  # 3 tasks x (before, after)
    titles = [ax.get_title() for ax in visible]
    for pair in ("Blood-vs-Brain", "Blood-vs-Lung", "Brain-vs-Lung"):
        assert sum(pair in t for t in titles) == 2
    assert sum("after removal" in t for t in titles) == 3
    for ax in visible:
        check_panel(ax, MODELS, 0.5)


def test_simulated_figure_rows_and_majority_baseline():
    levels = {(name, "label", 2): {"none": {m: 0.9 for m in MODELS},
                                   "removed": {m: 0.5 for m in MODELS}}
              for name in ("sim_mixed", "sim_linear", "sim_noise")}
    fig = simulated_figure(synthetic_results(levels, seeds=2, folds=3, fractions=4))
    assert len(fig.axes) == 6
    assert sum("sim_noise" in ax.get_title() for ax in fig.axes) == 2
    for ax in fig.axes:
        check_panel(ax, MODELS, 0.5)


def test_split_and_pretraining_comparisons():
    small = dict(seeds=2, folds=3, fractions=4)
    df = pd.concat([synthetic_results(MULTI, split="study", **small),
                    synthetic_results(MULTI, split="sample", **small)])
    fig = split_comparison_figure(df)
    assert len(fig.axes) == 4
    assert sum("Sample-wise" in ax.get_title() for ax in fig.axes) == 2
    df = pd.concat([synthetic_results(MULTI, pretraining="none", **small),
                    synthetic_results(MULTI, pretraining="pretrained", **small)])
    fig = pretraining_comparison_figure(df)
    assert len(fig.axes) == 4
    assert sum("With pretraining" in ax.get_title() for ax in fig.axes) == 2
    for ax in fig.axes:
        check_panel(ax, MODELS, 0.25)


def test_loess_band_matches_statsmodels_lowess_and_covers_truth():
    from statsmodels.nonparametric.smoothers_lowess import lowess

    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, 400)
    y = np.sin(x) + rng.normal(0, 0.3, x.size)
    grid = np.linspace(0.5, 9.5, 40)
    fit, lower, upper = loess_band(x, y, grid, frac=0.4)
    assert np.allclose(fit, lowess(y, x, frac=0.4, it=0, xvals=grid), atol=1e-5)
    assert np.all(lower < fit) and np.all(fit < upper)
    # coverage of a linear truth (no smoothing bias) is close to 95%
    covered = []
    x = np.repeat(np.arange(1, 11) * 50.0, 15)  # tied x like training sizes
    for _ in range(200):
        y = 0.5 + 0.0004 * x + rng.normal(0, 0.05, x.size)
        f, lo, hi = loess_band(x, y, grid * 50)
        covered.append(np.mean((lo < 0.5 + 0.02 * grid) & (0.5 + 0.02 * grid < hi)))
    assert 0.9 < np.mean(covered) < 0.99


def test_loess_band_edge_cases_and_speed():
    import time

    fit, lo, hi = loess_band([3, 3, 3, 3], [0.5, 0.6, 0.7, 0.6], [3])
    assert fit[0] == pytest.approx(0.6) and lo[0] < 0.6 < hi[0]
    fit, lo, hi = loess_band([1, 2, np.nan], [0.1, 0.2, 0.3], [1.5])
    assert np.isfinite(fit[0])
    rng = np.random.default_rng(0)
    x = rng.integers(10, 1000, 100_000).astype(float)
    y = rng.uniform(size=x.size)
    start = time.perf_counter()
    loess_band(x, y, np.linspace(10, 1000, 100))
    assert time.perf_counter() - start < 5  # pooled ties: ~0.1 s normally


def test_plot_run_writes_files_and_index(tmp_path, multiclass):
    multiclass.to_parquet(tmp_path / "results.parquet")
    paths = plot_run(tmp_path, formats=("png", "svg"))
    fig_dir = tmp_path / "figures"
    assert {p.suffix for p in paths} == {".png", ".svg"}
    assert all(p.parent == fig_dir and p.stat().st_size > 1000 for p in paths)
    png = next(p for p in paths if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = json.loads((fig_dir / "index.json").read_text())["figures"]
    assert [f["kind"] for f in index] == ["learning_curve"]
    assert not list(fig_dir.glob("*.partial"))


def test_cli_plot(tmp_path, multiclass):
    from linsig.cli import main

    multiclass.to_parquet(tmp_path / "results.parquet")
    out = tmp_path / "figs"
    result = CliRunner().invoke(main, ["plot", str(tmp_path), "--out", str(out), "--format", "png"])
    assert result.exit_code == 0, result.output
    assert "7 skipped" in result.output
    assert sorted(p.suffix for p in out.iterdir() if p.suffix != ".json") == [".png"]


def test_missing_or_empty_results_is_a_clear_error(tmp_path):
    from linsig.cli import main

    with pytest.raises(LinsigInputError, match="results.parquet"):
        plot_run(tmp_path)
    result = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert result.exit_code == 1 and "results.parquet" in result.output
    pd.DataFrame({c: pd.Series(dtype=float) for c in ("dataset", "balanced_accuracy")}).to_parquet(
        tmp_path / "results.parquet")
    with pytest.raises(LinsigInputError, match="results.parquet.*empty"):
        plot_run(tmp_path)
    (tmp_path / "results.parquet").write_text("not parquet")
    with pytest.raises(LinsigInputError, match="results.parquet"):
        plot_run(tmp_path)


def test_figure_specs_choose_the_paper_figures():
    from linsig.plots import figure_specs

    small = dict(seeds=2, folds=2, fractions=3)
    pairs = {("gtex", f"tissue:{p}", 2): {"none": {"logreg": 0.9, "mlp3": 0.9}}
             for p in ("A-vs-B", "A-vs-C")}
    sim = {("sim_mixed", "label", 2): {"none": {"logreg": 0.9, "mlp3": 0.9}}}
    df = pd.concat([synthetic_results({**pairs, **sim}, split="study", **small),
                    synthetic_results(pairs, split="sample", **small),
                    synthetic_results(pairs, pretraining="pretrained", **small)])
    kinds = pd.Series([s["kind"] for s in figure_specs(df)]).value_counts().to_dict()
    assert kinds == {"learning_curve": 2 + 1 + 2 + 2, "binary_tasks": 3, "simulated": 1,
                     "split_comparison": 2, "pretraining_comparison": 2,
                     "critical_difference": 3}  # one per (split, pretraining) with two or more tasks
    assert figure_specs(df.assign(status="skipped")) == []


def test_critical_difference_diagram():
    from linsig.plots import _cliques, critical_difference_figure

    ranked = [("a", 1.0), ("b", 1.5), ("c", 3.0), ("d", 3.2)]
    assert _cliques(ranked, 1.0) == [(0, 1), (2, 3)]
    assert _cliques(ranked, 2.1) == [(0, 2), (1, 3)]
    assert _cliques(ranked, 0.1) == []
    levels = {("gtex", f"t{i}", 2): {"none": {"logreg": 0.80, "svm": 0.79, "mlp3": 0.9 + 0.001 * i}}
              for i in range(10)}
    fig = critical_difference_figure(synthetic_results(levels, seeds=1, folds=2, fractions=1, noise=0.0,
                                                       cluster_sd=0.0, learning=0.0))
    gids = [line.get_gid() for line in fig.axes[0].lines]
    # mean ranks mlp3 1, logreg 2, svm 3 over 10 tasks; CD(3, 10) = 1.05: logreg is joined to both
    assert {"cd", "rank:mlp3", "rank:logreg", "rank:svm"} <= set(gids) and gids.count("clique") == 2
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "mlp3 (1.00)" in texts and "CD = 1.05" in texts


# ------------------------------------------------------------------ curves that never mislead

def _envelope(sub: pd.DataFrame) -> tuple[float, float]:
    """[min(mean − 95% t-interval), max(mean + interval)] over the training sizes, within [0, 1]."""
    from scipy import stats

    lows, highs = [], []
    for _, g in sub.groupby("train_fraction"):
        y = g["balanced_accuracy"].to_numpy(float)
        half = stats.t.ppf(0.975, y.size - 1) * y.std(ddof=1) / np.sqrt(y.size) if y.size > 1 else 0.0
        lows.append(y.mean() - half)
        highs.append(y.mean() + half)
    return max(0.0, min(lows)), min(1.0, max(highs))


def _jittered(n_sizes: int, seed: int = 0) -> pd.DataFrame:
    """ALL-lineage-like results: 128 samples, study-wise folds giving each fraction a slightly
    different training size per fold, one seed, noisy small-sample accuracies, a perfect model."""
    fractions = {2: [0.5, 1.0], 3: [0.25, 0.5, 1.0]}.get(n_sizes, n_sizes)
    df = synthetic_results({("ALL", "lineage", 2): {
        "none": {"logreg": 0.97, "mlp3": 0.9, "perfect": 1.0},
        "removed": {"logreg": 0.5, "mlp3": 0.6, "perfect": 1.0}}},
        seeds=1, fractions=fractions, n_samples=128, noise=0.12, seed=seed)
    rng = np.random.default_rng(seed)
    df["n_train"] = df["n_train"] + rng.integers(-3, 4, size=len(df))
    df.loc[df["model"] == "perfect", "balanced_accuracy"] = 1.0
    return df


@pytest.mark.parametrize("n_sizes", [2, 3, 10])
def test_learning_curves_stay_within_the_per_size_means_and_0_1(n_sizes):
    for seed in range(4):
        df = _jittered(n_sizes, seed)
        for maker in (learning_curve_figure, binary_tasks_figure):
            fig = maker(df)
            for ax in fig.axes:
                if not ax.get_visible() or not ax.get_lines():
                    continue
                signal = "removed" if "removal" in ax.get_title() and "before" not in ax.get_title().lower() \
                    else "none"
                for model in ("logreg", "mlp3", "perfect"):
                    sub = df[(df["model"] == model) & (df["signal"] == signal)]
                    lo, hi = _envelope(sub)
                    line = lines_by_label(ax)[model]
                    band = bands(ax)[f"band:{model}"].get_paths()[0].vertices[:, 1]
                    for values in (line.get_ydata(), band):
                        assert np.all(values >= lo - 1e-9) and np.all(values <= hi + 1e-9), \
                            (n_sizes, seed, model, signal, lo, hi, values.min(), values.max())
                if n_sizes < 4:  # the panel says the curve joins the per-size means
                    notes = [t.get_text() for t in ax.texts if t.get_gid() == "curve-fallback"]
                    assert notes and "per-size means" in notes[0]


def test_loess_band_direct_call_never_spikes_between_jittered_sizes():
    from scipy import stats

    rng = np.random.default_rng(0)
    for _ in range(300):
        x, y = [], []
        for _fold in range(rng.integers(3, 6)):
            jitter = rng.integers(-3, 4)
            for i, base in enumerate((26, 51, 102)):
                x.append(base + round(jitter * base / 50))
                y.append(np.clip(0.6 + 0.1 * i + rng.normal(0, 0.08), 0, 1))
        x, y = np.array(x, float), np.array(y)
        fit, lower, upper = loess_band(x, y, np.linspace(x.min(), x.max(), 80))
        sizes = np.digitize(x, [40, 80])
        means = [y[sizes == s].mean() for s in range(3)]
        halves = [stats.t.ppf(0.975, (sizes == s).sum() - 1) * y[sizes == s].std(ddof=1)
                  / np.sqrt((sizes == s).sum()) for s in range(3)]
        lo = max(0, min(m - h for m, h in zip(means, halves)))
        hi = min(1, max(m + h for m, h in zip(means, halves)))
        for values in (fit, lower, upper):
            ok = np.isfinite(values)
            assert np.all(values[ok] >= lo - 1e-9) and np.all(values[ok] <= hi + 1e-9)


def test_curve_band_says_when_it_falls_back():
    from linsig.plots import curve_band

    x = np.repeat([26.0, 51.0, 102.0], 5)
    y = np.clip(np.repeat([0.6, 0.7, 0.8], 5) + np.random.default_rng(1).normal(0, 0.05, 15), 0, 1)
    c = curve_band(x, y, np.linspace(26, 102, 20))
    assert c.method == "means" and "3 training sizes" in c.note
    x10 = np.repeat(np.arange(1, 11) * 50.0, 15)
    c = curve_band(x10, np.clip(0.5 + 0.0004 * x10 + np.random.default_rng(2).normal(0, 0.05, x10.size), 0, 1))
    assert c.method == "loess" and c.note == ""
    c = curve_band(np.repeat([10.0, 20, 30, 40], 3), np.ones(12))  # a model at 1.0 everywhere
    assert np.all(c.fit == 1.0) and np.all(c.upper == 1.0) and np.all(c.lower == 1.0)
