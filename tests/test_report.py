"""Verdict statistics on constructed results with known answers, the HTML report, the CLI and
a headless-Chromium check that the report renders with every figure loaded."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from linsig.errors import LinsigInputError
from linsig.plots import synthetic_results
from linsig.report import (
    BEAT,
    INCONCLUSIVE,
    LOSE,
    NO_SIGNAL,
    NOT_TESTED,
    SIGNAL,
    TIE,
    accuracy_table,
    compare_models,
    fraction_bins,
    nonlinear_signal_test,
    verdict,
    write_report,
)

from browser import dump_dom, find_chromium

FLAT = dict(learning=0.0)  # flat learning curves: a model's mean is exactly its level


def make(none=None, removed=None, n_classes=2, **kw):
    by_signal = {}
    if none is not None:
        by_signal["none"] = none
    if removed is not None:
        by_signal["removed"] = removed
    return synthetic_results({("gtex", "sex" if n_classes == 2 else "tissue:multiclass",
                               n_classes): by_signal}, **{**FLAT, **kw})


WIN = make(none={"logreg": 0.80, "svm": 0.78, "mlp3": 0.90, "mlp5": 0.88},
           removed={"logreg": 0.50, "svm": 0.50, "mlp3": 0.75, "mlp5": 0.72})
TIE_DF = make(none={"logreg": 0.85, "svm": 0.85, "mlp3": 0.85, "mlp5": 0.85},
              removed={"logreg": 0.50, "svm": 0.50, "mlp3": 0.50, "mlp5": 0.50})
LOSS = make(none={"logreg": 0.80, "svm": 0.90, "mlp3": 0.82, "mlp5": 0.84})


def only_group(result):
    assert len(result["groups"]) == 1
    return result["groups"][0]


# ------------------------------------------------------------------ (a) model comparison

def test_clear_nonlinear_win():
    g = only_group(compare_models(WIN))
    assert g["baseline"] == "logreg"  # the better linear model
    assert g["verdict"] == BEAT
    by = {c["model"]: c for c in g["comparisons"]}
    assert by["mlp3"]["mean_diff"] == pytest.approx(0.10, abs=0.01)
    assert by["mlp5"]["mean_diff"] == pytest.approx(0.08, abs=0.01)
    assert by["mlp3"]["ci_low"] > 0.08 and by["mlp3"]["verdict"] == BEAT
    assert by["mlp3"]["n_units"] == 3 * 5 * 10 and by["mlp3"]["n_clusters"] == 15


def test_tie():
    g = only_group(compare_models(TIE_DF))
    assert g["verdict"] == TIE
    for c in g["comparisons"]:
        assert c["ci_low"] < 0.01 and c["ci_high"] > -0.01
        assert abs(c["mean_diff"]) < 0.01


def test_linear_win_uses_best_linear_model():
    g = only_group(compare_models(LOSS))
    assert g["baseline"] == "svm"
    assert g["verdict"] == LOSE
    assert {c["model"]: round(c["mean_diff"], 2) for c in g["comparisons"]} == \
        {"mlp3": -0.08, "mlp5": -0.06}


def test_small_difference_inside_margin_is_no_clear_difference():
    df = make(none={"logreg": 0.850, "mlp3": 0.855}, noise=0.0, cluster_sd=0.0)
    g = only_group(compare_models(df))
    c = g["comparisons"][0]
    assert c["mean_diff"] == pytest.approx(0.005) and c["ci_low"] == pytest.approx(0.005)
    assert g["verdict"] == TIE  # interval excludes 0 but below the 0.01 margin


def test_paired_cluster_t_interval_known_answer():
    # 2 seeds x 2 folds x 2 fractions; per (seed, fold) mean differences 0.1, 0.2, 0.1, 0.3;
    # validation folds of 50, outer training folds of 100: n_val/n_train = 0.5
    rows = []
    diffs = {(0, 0): 0.1, (0, 1): 0.2, (1, 0): 0.1, (1, 1): 0.3}
    for (seed, fold), d in diffs.items():
        for frac, jitter in ((0.5, -0.02), (1.0, 0.02)):
            for model, ba in (("logreg", 0.6), ("mlp3", 0.6 + d + jitter)):
                rows.append(dict(dataset="d", task="t", model=model, seed=seed, fold=fold,
                                 signal="none", train_fraction=frac, n_train=int(100 * frac), n_val=50,
                                 balanced_accuracy=ba, n_classes=2))
    # an unpaired row (no logreg partner) is ignored
    rows.append(dict(rows[-1], train_fraction=0.25, n_train=25))
    c = only_group(compare_models(pd.DataFrame(rows)))["comparisons"][0]
    vals = np.array(list(diffs.values()))
    se = vals.std(ddof=1) * np.sqrt(1 / 4 + 0.5)  # corrected repeated k-fold t-test
    half = stats.t.ppf(0.975, 3) * se
    assert c["n_units"] == 8 and c["n_clusters"] == 4 and c["ratio"] == pytest.approx(0.5)
    assert c["mean_diff"] == pytest.approx(0.175) and c["se"] == pytest.approx(se)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((0.175 - half, 0.175 + half))
    assert c["p_value"] == pytest.approx(2 * stats.t.sf(0.175 / se, 3))
    # the plain t-test of linsig 0.1 (variance / J) is what corrected=False gives
    plain = only_group(compare_models(pd.DataFrame(rows), corrected=False))["comparisons"][0]
    assert plain["se"] == pytest.approx(vals.std(ddof=1) / 2)


# ------------------------------------------------------------------ (b) non-linear signal

def test_nonlinear_signal_present():
    res = nonlinear_signal_test(WIN)
    g = only_group(res)
    assert res["available"] and g["verdict"] == SIGNAL and g["linear_at_chance"] is True
    by = {m["model"]: m for m in g["models"]}
    assert by["mlp3"]["above_chance"] and by["mlp3"]["p_value"] < 1e-6
    assert by["mlp3"]["excess"] == pytest.approx(0.25, abs=0.01)
    assert not by["logreg"]["above_chance"] and by["logreg"]["p_value"] > 0.01
    assert by["logreg"]["ci_low"] < 0 < by["logreg"]["ci_high"]


def test_no_signal():
    g = only_group(nonlinear_signal_test(TIE_DF))
    assert g["verdict"] == NO_SIGNAL and g["linear_at_chance"] is True
    assert not any(m["above_chance"] for m in g["models"])


def test_multiclass_chance_and_leftover_linear_signal():
    df = make(none={"logreg": 0.9, "mlp3": 0.9},
              removed={"logreg": 0.35, "mlp3": 0.6}, n_classes=4)
    g = only_group(nonlinear_signal_test(df))
    by = {m["model"]: m for m in g["models"]}
    assert by["logreg"]["chance"] == pytest.approx(0.25)
    assert by["logreg"]["excess"] == pytest.approx(0.10, abs=0.01)
    assert g["linear_at_chance"] is False and g["verdict"] == INCONCLUSIVE
    assert by["mlp3"]["above_chance"]  # above chance, but the removal failed: no claim of signal
    v = verdict(df)
    assert v.answer_b == INCONCLUSIVE and "not conclusive" in v.text


def test_signal_verdict_without_a_non_linear_model_is_not_tested():
    df = make(none={"logreg": 0.9, "svm": 0.9}, removed={"logreg": 0.5, "svm": 0.5})
    g = only_group(nonlinear_signal_test(df))
    assert g["linear_at_chance"] is True and g["verdict"] == NOT_TESTED
    assert verdict(df).answer_b == NOT_TESTED


def test_holm_adjustment():
    from linsig.report import holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])
    adj = holm([np.nan, 0.02])
    assert np.isnan(adj[0]) and adj[1] == pytest.approx(0.02)


def test_weak_signal_in_one_of_several_networks_is_held_to_the_adjusted_p():
    # each network's excess has corrected one-sided p ~ 0.03: enough for one model tested alone,
    # not for the claim "some network is above chance" when two were tested (Holm: ~0.065)
    z = np.array([-1.5, -1.0, -0.5, -0.2, 0.0, 0.1, 0.3, 0.6, 1.0, 1.2])
    z = (z - z.mean()) / z.std(ddof=1)
    excess = 0.0375 + 0.0301 * z
    rows = [dict(dataset="d", task="t", model=model, seed=i // 5, fold=i % 5, signal="removed",
                 train_fraction=1.0, n_train=100, n_val=25,
                 balanced_accuracy=0.5 + (e if model in ("mlp3", "mlp5") else 0.0), n_classes=2)
            for model in ("logreg", "mlp3", "mlp5") for i, e in enumerate(excess)]
    df = pd.DataFrame(rows)
    one = only_group(nonlinear_signal_test(df[df.model != "mlp5"]))
    se = 0.0301 * np.sqrt(1 / 10 + 25 / 100)
    assert one["models"][1]["p_value"] == pytest.approx(stats.t.sf(0.0375 / se, 9))
    assert one["models"][1]["p_value"] < 0.05 and one["verdict"] == SIGNAL
    two = only_group(nonlinear_signal_test(df))
    assert all(0.05 < m["p_adjusted"] < 0.1 for m in two["models"] if not m["linear"])
    assert two["verdict"] == NO_SIGNAL


def test_no_removed_rows_cannot_be_answered():
    res = nonlinear_signal_test(LOSS)
    assert not res["available"] and "--signal none,removed" in res["message"]
    v = verdict(LOSS)
    assert "could not be answered" in v.answer_b and v.answer_a == LOSE


def test_verdict_text_words():
    v = verdict(WIN)
    assert v.answer_a == BEAT and v.answer_b == SIGNAL
    assert BEAT in v.text and SIGNAL in v.text and "removal worked" in v.text
    v = verdict(TIE_DF)
    assert v.answer_a == TIE and v.answer_b == NO_SIGNAL


def test_skipped_rows_are_ignored():
    df = WIN.copy()
    bad = df["model"] == "mlp3"
    df.loc[bad, "status"] = "skipped"
    df.loc[bad, "balanced_accuracy"] = np.nan
    g = only_group(compare_models(df))
    assert [c["model"] for c in g["comparisons"]] == ["mlp5"]


# ------------------------------------------------------------------ tables

def test_accuracy_table_known_means():
    df = make(none={"logreg": 0.8, "mlp3": 0.9}, noise=0.0, cluster_sd=0.0)
    table = accuracy_table(df)
    assert len(table) == 2 * 10
    assert np.allclose(table.loc[table["model"] == "mlp3", "mean"], 0.9)
    assert (table["n"] == 15).all()
    noisy = accuracy_table(WIN)
    row = noisy[(noisy["model"] == "mlp3") & (noisy["signal"] == "none")].iloc[-1]
    assert row["ci_low"] < 0.9 < row["ci_high"]
    assert fraction_bins(pd.Series(np.linspace(0.01, 1, 37))).nunique() == 10


# ------------------------------------------------------------------ report

SUMMARY = {"linsig_version": "0.1.0", "config": {"signal": ["none", "removed"]},
           "tasks": [{"dataset": "gtex", "task": "sex", "n_samples": 1234, "n_groups": 321,
                      "group_key": "donor", "label_key": "sex", "n_genes": 5000,
                      "classes": {"male": 800, "female": 434}}]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    df = WIN.copy()
    extra = df.iloc[:5].copy()
    extra["status"] = "skipped"
    extra["balanced_accuracy"] = np.nan
    extra["skip_reason"] = "too few samples"
    pd.concat([df, extra], ignore_index=True).to_parquet(path / "results.parquet")
    (path / "summary.json").write_text(json.dumps(SUMMARY))
    return path


@pytest.fixture(scope="module")
def report_path(run_dir):
    return write_report(run_dir)


def test_write_report_contents(run_dir, report_path):
    assert report_path == run_dir / "report.html" and (run_dir / "verdict.parquet").exists()
    page = report_path.read_text()
    assert (run_dir / "figures" / "index.json").exists()  # figures made when missing
    assert page.count("data:image/png;base64,") == 2  # the overview, and one figure for one task
    assert BEAT in page and SIGNAL in page
    for text in ("1,234", "5,000", "male (800)", "female (434)", "donor", "5 skipped",
                 "too few samples", "Balanced accuracy by training size"):
        assert text in page
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_cli_report(run_dir, tmp_path):
    from linsig.cli import main

    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert BEAT in result.output and out.exists()


def test_report_without_summary_or_figures_dir(tmp_path):
    TIE_DF.to_parquet(tmp_path / "results.parquet")
    page = write_report(tmp_path, figures_dir=tmp_path / "f").read_text()
    assert TIE in page and NO_SIGNAL in page and "c0, c1" in page


def test_report_with_every_row_skipped(tmp_path):
    df = TIE_DF.assign(status="skipped", balanced_accuracy=np.nan, skip_reason="no GPU")
    df.to_parquet(tmp_path / "results.parquet")
    page = write_report(tmp_path).read_text()
    assert "no usable rows" in page and "1,200 skipped" in page and "no GPU: 1200" in page
    assert "data:image/png" not in page


def test_report_missing_results(tmp_path):
    from linsig.cli import main

    with pytest.raises(LinsigInputError, match="results.parquet"):
        write_report(tmp_path)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "results.parquet" in result.output


# ------------------------------------------------------------------ browser

def require_chromium():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no chromium binary was found (apt-get install chromium)")
        pytest.skip("chromium is not installed")


def body_attrs(dom: str) -> dict:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body))


def test_report_renders_in_headless_chromium(report_path):
    require_chromium()
    dom = dump_dom(report_path)
    attrs = body_attrs(dom)
    assert attrs["data-images-ok"] == "true", attrs
    assert int(attrs["data-images-total"]) >= 1
    assert attrs["data-images-loaded"] == attrs["data-images-total"]
    assert 'class="words">' + BEAT in dom and SIGNAL in dom


def test_browser_check_detects_a_broken_figure(tmp_path):
    require_chromium()
    from linsig.report import render_html

    page = render_html(WIN, None, [({"name": "x", "title": "broken", "caption": ""},
                                    b"not a png")])
    (tmp_path / "broken.html").write_text(page)
    attrs = body_attrs(dump_dom(tmp_path / "broken.html"))
    # the broken figure fails to load; the first screen's overview figure loads
    assert attrs["data-images-ok"] == "false" and attrs["data-images-loaded"] == "1"
    assert attrs["data-images-total"] == "2"


def test_headline_counts_the_study_wise_analysis_only():
    none = {"logreg": 0.85, "svm": 0.85, "mlp3": 0.85, "mlp5": 0.85}
    study = make(none=none)
    sample = make(none={**none, "mlp3": 0.95}, split="sample")
    v = verdict(pd.concat([study, sample], ignore_index=True))
    assert v.answer_a == TIE
    assert any("sample-wise" in line and BEAT in line for line in v.lines_a)


# ------------------------------------------------------------------ statistics in the report

def test_report_words_the_bayesian_probabilities_and_detectable_difference():
    v = verdict(TIE_DF)
    (line,) = v.short_a
    assert TIE in line and "practically equivalent, probability" in line
    assert "could have detected a difference of about ±" in line
    assert "P(practically equivalent)" in v.text and "corrected p" in v.text
    win = verdict(WIN)
    assert "mlp3 better, probability > 0.99" in win.short_a[0]


def test_report_of_several_tasks_has_the_cross_task_view_and_verdict_table(tmp_path):
    levels = {("gtex", f"tissue:t{i}", 2): {"none": {"logreg": 0.80, "svm": 0.78, "mlp3": 0.82 + 0.01 * i},
                                            "removed": {"logreg": 0.5, "svm": 0.5, "mlp3": 0.52}}
              for i in range(3)}
    synthetic_results(levels, seeds=2, fractions=2).to_parquet(tmp_path / "results.parquet")
    from linsig.cli import main

    result = CliRunner().invoke(main, ["report", str(tmp_path), "--rope", "0.02", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    assert 'id="verdict-across"' in page and "Mean rank" in page and "Wilcoxon p" in page
    assert 'id="fig-critical_difference__study__none"' in page  # the CD diagram, in the cross-task section
    assert page.index('id="fig-critical_difference') < page.index("<h2>Data and tasks</h2>")
    assert "P(non-linear better / practically equivalent / linear better)" in page and "±0.02" in page
    table = pd.read_parquet(tmp_path / "verdict.parquet")
    assert set(table["question"]) == {"a", "b", "a across tasks"}
    a = table[table.question == "a"]
    assert len(a) == 3 and (a["rope"] == 0.02).all() and a["prob_greater"].between(0, 1).all()
    ranks = table[table.question == "a across tasks"].set_index("model")["mean_rank"]
    assert ranks["mlp3"] == 1.0 and ranks["svm"] == 3.0


def test_permutation_rows_are_neither_plotted_nor_counted_as_skipped(tmp_path):
    real = WIN[WIN.signal == "removed"].assign(permutation=0)
    perm = real.assign(permutation=1, balanced_accuracy=0.5)
    df = pd.concat([WIN[WIN.signal == "none"], real, perm], ignore_index=True)
    df.to_parquet(tmp_path / "results.parquet")
    page = write_report(tmp_path).read_text()
    assert "0 skipped" in page and "rows of 1 label permutations" in page
    sig = verdict(df).signal
    assert sig["permutations"] == 1 and sig["groups"][0]["models"][2]["p_permutation"] == pytest.approx(0.5)


# ------------------------------------------------------------------ issue 28: bounds and words

NEAR_ONE = make(none={"logreg": 0.99, "svm": 0.985, "mlp3": 0.995, "mlp5": 0.99},
                removed={"logreg": 0.5, "svm": 0.5, "mlp3": 0.99, "mlp5": 0.98}, noise=0.04, seeds=1)


def test_every_interval_the_report_prints_is_within_its_range():
    table = accuracy_table(NEAR_ONE)
    assert table["ci_high"].max() <= 1.0 and table["ci_low"].min() >= 0.0
    assert (table["ci_high"] == 1.0).any()  # the unclipped interval went above 1
    from linsig.report import render_html

    page = render_html(NEAR_ONE, None, [])
    intervals = [(float(a), float(b)) for a, b in
                 re.findall(r"\[(?:95% CI )?([-+−]?\d+\.\d+), ([-+−]?\d+\.\d+)\]", page.replace("−", "-"))]
    assert len(intervals) > 20
    for lo, hi in intervals:  # differences and excesses over chance included
        assert -1.0 <= lo <= hi <= 1.0, (lo, hi)
    accuracy = page[page.index("by training size</h2>"):]
    acc = re.findall(r"\[(\d\.\d+), (\d\.\d+)\]", accuracy)
    assert acc and all(0.0 <= float(a) <= float(b) <= 1.0 for a, b in acc)
    v = verdict(NEAR_ONE)
    for g in v.signal["groups"]:
        for m in g["models"]:  # an excess over chance c cannot pass 1 − c
            assert m["ci_high"] <= 1 - m["chance"] + 1e-12


def test_tasks_without_a_group_column_are_not_called_study_wise(tmp_path):
    from linsig.plots import figure_specs

    summary = {"tasks": [{"dataset": "gtex", "task": "sex", "n_samples": 128, "n_groups": 128,
                          "group_key": "(each sample)", "label_key": "sex", "n_genes": 50,
                          "classes": {"male": 64, "female": 64}}]}
    df = make(none={"logreg": 0.8, "svm": 0.8, "mlp3": 0.9, "mlp5": 0.9})  # n_val_groups == n_val
    df.to_parquet(tmp_path / "results.parquet")
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    page = write_report(tmp_path).read_text()
    assert "((" not in page and "128 (each sample its own group)" in page
    assert "study-wise split" not in page and "sample-wise split, no group column" in page
    assert all("study-wise" not in s["title"] for s in figure_specs(df))
    grouped = df.assign(n_val_groups=5, n_train_groups=20)  # a real group column: study-wise
    assert "study-wise split" in verdict(grouped).short_a[0]
    assert any("study-wise split" in s["title"] for s in figure_specs(grouped))


# ------------------------------------------------------------------ issue 28: the first screen

SIX_TASKS = synthetic_results(
    {("gtex", f"tissue:Blood-vs-t{i}", 2): {
        "none": {"logreg": 0.8, "svm": 0.79, "mlp3": 0.8 + 0.02 * i, "mlp5": 0.81},
        "removed": {"logreg": 0.5, "svm": 0.5, "mlp3": 0.5 + 0.03 * i, "mlp5": 0.52}} for i in range(6)},
    fractions=3, seeds=2).assign(n_val_groups=5)


@pytest.fixture(scope="module")
def six_task_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("six")
    df = SIX_TASKS.assign(roc_auc=np.clip(SIX_TASKS["balanced_accuracy"] + 0.05, 0, 1))
    df.to_parquet(path / "results.parquet")
    return write_report(path)


def test_first_screen_answers_both_questions_per_task_with_an_overview_figure(six_task_report):
    page = six_task_report.read_text()
    glance = page[page.index('<section id=at-a-glance>'):page.index('</section>')]
    assert page.index("at-a-glance") < page.index('id="verdict-a"') < page.index("<h2>Data and tasks")
    rows = re.findall(r"<tr><td class=l>(gtex / tissue:Blood-vs-t\d[^<]*)</td>", glance)
    assert len(rows) == 6  # one line per task
    for i in range(6):  # each line answers (a) and (b), with the number and its interval
        line = glance[glance.index(f"t{i} (study-wise split)"):]
        line = line[:line.index("</tr>")]
        assert line.count("<b class='w") == 2 and "logreg:" in line and "above chance:" in line
    assert BEAT in glance and SIGNAL in glance
    assert glance.count("data:image/png;base64,") == 1 and "id=overview" in glance


def test_overview_forest_plot_draws_every_non_linear_model_with_its_interval():
    from linsig.overview import overview_figure

    v = verdict(SIX_TASKS)
    fig = overview_figure(v.comparison, v.signal)
    left, right = fig.axes[:2]
    for ax in (left, right):
        gids = [line.get_gid() or "" for line in ax.get_lines()]
        assert sum(g.startswith("estimate:") for g in gids) == 12  # 6 tasks × mlp3, mlp5
        assert sum(g.startswith("interval:") for g in gids) == 12
    assert [t.get_text() for t in left.get_yticklabels()][0].startswith("gtex / tissue:Blood-vs-t0")


@pytest.mark.parametrize("width", [1400, 800])
def test_first_screen_in_headless_chromium_fits_the_page(six_task_report, width):
    require_chromium()
    attrs = body_attrs(dump_dom(six_task_report, width=width))
    assert attrs["data-images-ok"] == "true", attrs
    assert int(attrs["data-viewport"]) == width
    assert int(attrs["data-page-width"]) <= width, attrs  # the page never scrolls sideways
    assert attrs["data-tables-spilling"] == "0", attrs  # wide tables scroll inside their own box
    assert attrs["data-glance-fits"] == "true"
    assert int(attrs["data-glance-top"]) < 450  # the answers are on the first screen
    if width == 1400:
        assert int(attrs["data-overview-top"]) < 900  # and the overview figure starts on it
