"""linsig.stats: known answers for each test, and the verdict's calibration under a known null.

The calibration tests build results tables with linsig's real fold structure (study-wise folds
over seeds, training-size subsamples) on fresh datasets from one population and cheap models
(tests/nulls.py), so that the rate of false claims and the power to find a planted difference
can be counted over 200 replicates. They also keep the plain t-test of linsig 0.1
(``corrected=False``) to show the defect the correction fixes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from linsig import stats
from linsig.permutation import permuted_labels
from linsig.plots import synthetic_results
from nulls import claim_rates, null_tables, planted

REPLICATES = 200


# ------------------------------------------------------------------ the tests themselves

def test_corrected_t_known_answer():
    values = np.array([0.02, 0.05, -0.01, 0.04, 0.03, 0.00, 0.06, 0.01, 0.02, 0.03])
    t = stats.corrected_t(values, ratio=0.25)
    sd = values.std(ddof=1)
    se = sd * np.sqrt(1 / 10 + 0.25)  # Nadeau & Bengio: sigma^2 (1/J + n_val/n_train)
    assert (t.mean, t.se, t.df) == pytest.approx((0.025, se, 9))
    assert t.p_greater() == pytest.approx(sps.t.sf(0.025 / se, 9))
    assert t.p_two_sided() == pytest.approx(2 * sps.t.sf(0.025 / se, 9))
    lo, hi = t.interval()
    assert (lo, hi) == pytest.approx((0.025 - sps.t.ppf(0.975, 9) * se, 0.025 + sps.t.ppf(0.975, 9) * se))
    plain = stats.corrected_t(values, ratio=0.0)
    assert plain.se == pytest.approx(sd / np.sqrt(10)) and plain.p_two_sided() < t.p_two_sided()
    # more seeds shrink the plain standard error towards 0, the corrected one only to sd * sqrt(ratio)
    many = stats.corrected_t(np.tile(values, 20), ratio=0.25)
    assert many.se > 0.45 * sd and stats.corrected_t(np.tile(values, 20)).se < 0.1 * sd


def test_corrected_t_degenerate_inputs():
    one = stats.corrected_t([0.1], 0.25)
    assert np.isnan(one.se) and np.isnan(one.p_greater()) and np.isnan(one.interval()[0])
    const = stats.corrected_t([0.1, 0.1, 0.1], 0.25)
    assert const.p_greater() == 0.0 and const.p_two_sided() == 0.0
    assert stats.bayes_correlated(const, 0.01) == (0.0, 0.0, 1.0)
    assert stats.corrected_t([0.0, 0.0], 0.25).p_greater() == 1.0


def test_bayesian_correlated_t_test():
    t = stats.CorrectedT(mean=0.02, sd=0.03, n=15, ratio=0.25)
    left, rope, right = stats.bayes_correlated(t, rope=0.01)
    se = 0.03 * np.sqrt(1 / 15 + 0.25)
    assert right == pytest.approx(sps.t.sf((0.01 - 0.02) / se, 14))
    assert left == pytest.approx(sps.t.cdf((-0.01 - 0.02) / se, 14))
    assert left + rope + right == pytest.approx(1.0)
    # symmetric around 0: left == right; a wider ROPE holds more of the posterior
    sym = stats.bayes_correlated(stats.CorrectedT(0.0, 0.03, 15, 0.25), 0.01)
    assert sym[0] == pytest.approx(sym[2])
    assert stats.bayes_correlated(stats.CorrectedT(0.0, 0.03, 15, 0.25), 0.05)[1] > sym[1]


def test_detectable_difference_has_the_stated_power():
    t = stats.CorrectedT(mean=0.0, sd=0.04, n=15, ratio=0.25)
    d = t.detectable(alpha=0.05, power=0.8, rope=0.0)
    # a true difference d gives an estimate t-distributed around d: beyond the critical value 80% of the time
    crit = sps.t.ppf(0.975, 14) * t.se
    assert sps.t.sf((crit - d) / t.se, 14) == pytest.approx(0.8)
    assert t.detectable(rope=0.5) == pytest.approx(0.5 + sps.t.ppf(0.8, 14) * t.se)  # the margin binds


def test_holm_sign_and_wilcoxon():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.sign_test([1, 2, 3, -1, 0]) == pytest.approx(sps.binomtest(3, 4).pvalue)
    d = [0.02, 0.01, 0.03, -0.005, 0.04, 0.015]
    assert stats.wilcoxon_test(d) == pytest.approx(sps.wilcoxon(d).pvalue)
    assert np.isnan(stats.sign_test([0, 0])) and np.isnan(stats.wilcoxon_test([]))


def test_nemenyi_cd_and_friedman_match_demsar():
    # Demšar (2006), section 3.2.4: q_0.05 = 2.569 for k = 4; CD = 1.25 for 14 data sets
    assert stats.nemenyi_cd(4, 14) == pytest.approx(2.569 * np.sqrt(4 * 5 / (6 * 14)), abs=1e-3)
    assert stats.nemenyi_cd(2, 10) == pytest.approx(1.960 * np.sqrt(2 * 3 / 60), abs=1e-3)
    rng = np.random.default_rng(1)
    scores = pd.DataFrame(rng.random((12, 4)), columns=list("abcd"))
    chi2, p = stats.friedman(scores)
    assert chi2 == pytest.approx(sps.friedmanchisquare(*scores.T.to_numpy()).statistic)
    ff = 11 * chi2 / (12 * 3 - chi2)  # Iman-Davenport
    assert p == pytest.approx(sps.f.sf(ff, 3, 33))


# ------------------------------------------------------------------ results-table functions

def _loso_rows(diffs, seeds=(0,), fractions=(0.5, 1.0)):
    rows = []
    for seed in seeds:
        for fold, d in enumerate(diffs):
            for f in fractions:
                for model, ba in (("logreg", 0.7), ("svm", 0.65), ("mlp3", 0.7 + d)):
                    rows.append(dict(dataset="bladder", task="stage", model=model, seed=seed, fold=fold, split="study",
                                     signal="none", train_fraction=f, n_train=int(90 * f), n_val=30,
                                     n_val_groups=1, balanced_accuracy=ba, n_classes=2))
    return pd.DataFrame(rows)


def test_per_study_analysis_of_a_leave_one_study_out_run():
    diffs = [0.05, 0.02, 0.04, -0.01, 0.03, 0.06, 0.01, 0.02]
    res = stats.per_study(_loso_rows(diffs, seeds=(0, 1)))
    assert res["available"]
    (g,) = res["groups"]
    (c,) = g["comparisons"]
    assert g["baseline"] == "logreg" and c["n_studies"] == 8  # one value per study: the first seed only
    assert (c["wins"], c["ties"], c["losses"]) == (7, 0, 1)
    assert c["median_diff"] == pytest.approx(np.median(diffs))
    assert c["p_sign"] == pytest.approx(sps.binomtest(7, 8).pvalue)
    assert c["p_wilcoxon"] == pytest.approx(sps.wilcoxon(diffs).pvalue)
    # folds holding several studies: not a per-study design
    several = _loso_rows(diffs).assign(n_val_groups=3)
    assert not stats.per_study(several)["available"]
    assert "one study per validation fold" in stats.per_study(several)["message"]


def test_permutation_p_value_known_answer():
    real = synthetic_results({("d", "t", 2): {"removed": {"logreg": 0.5, "mlp3": 0.6}}}, seeds=1, folds=3,
                             fractions=1, noise=0.0, cluster_sd=0.0, learning=0.0)
    frames = [real.assign(permutation=0)]
    # permutations scoring 0.55, 0.62, 0.5, 0.6 (ties count as exceeding) and one that lost a fold
    for i, level in enumerate((0.55, 0.62, 0.50, 0.60, 0.99), start=1):
        perm = real.assign(permutation=i, balanced_accuracy=np.where(real.model == "mlp3", level, 0.5))
        frames.append(perm if i < 5 else perm[perm.fold < 2])
    res = stats.permutation_test(pd.concat(frames, ignore_index=True)).set_index("model")
    assert res.loc["mlp3", "n_permutations"] == 4  # the incomplete permutation is left out
    assert res.loc["mlp3", "n_exceeding"] == 2 and res.loc["mlp3", "p_permutation"] == pytest.approx(3 / 5)
    assert res.loc["logreg", "p_permutation"] == pytest.approx(5 / 5)
    assert stats.permutation_test(real).empty


def test_permuted_labels_keep_groups():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1])
    g = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4])  # groups 0, 1 mixed; 2, 3, 4 single-class
    a = permuted_labels(y, g, 1)
    assert np.array_equal(a, permuted_labels(y, g, 1)) and not np.array_equal(a, permuted_labels(y, g, 2))
    for group in (0, 1):  # mixed groups keep their class counts
        assert sorted(a[g == group]) == sorted(y[g == group])
    for group in (2, 3, 4):  # single-class groups stay single-class, exchanging classes as wholes
        assert np.unique(a[g == group]).size == 1
    single = [int(a[g == k][0]) for k in (2, 3, 4)]
    assert sorted(single) == [0, 1, 1]
    # each sample its own group (linsig simulate): a plain permutation of the labels
    alone = permuted_labels(y, np.arange(y.size), 3)
    assert sorted(alone) == sorted(y) and not np.array_equal(alone, y)
    with pytest.raises(ValueError, match="at least 1"):
        permuted_labels(y, g, 0)


def test_cross_task_ranks_and_tests():
    levels = {("d", f"t{i}", 2): {"none": {"logreg": 0.80, "svm": 0.78 + 0.001 * i, "mlp3": 0.83 + 0.002 * i,
                                           "mlp5": 0.79 - 0.001 * i}} for i in range(7)}
    levels[("d", "t7", 2)] = {"none": {"logreg": 0.8, "svm": 0.7, "mlp3": 0.9}}  # mlp5 not run on t7
    df = synthetic_results(levels, seeds=1, folds=2, fractions=1, noise=0.0, cluster_sd=0.0, learning=0.0)
    res = stats.cross_task(df)
    (s,) = res["strata"]
    assert s["n_tasks"] == 8 and s["dropped"] == ["mlp5"] and s["models"] == ["logreg", "svm", "mlp3"]
    assert s["mean_ranks"] == pytest.approx({"mlp3": 1.0, "logreg": 2.0, "svm": 3.0})
    (c,) = s["comparisons"]
    assert (c["wins"], c["ties"], c["losses"]) == (8, 0, 0)
    assert c["p_wilcoxon"] == pytest.approx(2 / 2 ** 8) and c["p_sign"] == pytest.approx(2 / 2 ** 8)
    assert s["cd"] == pytest.approx(stats.nemenyi_cd(3, 8))
    assert not stats.cross_task(df[df.task == "t0"])["available"]


def test_recipe_is_a_grouping_key():
    base = synthetic_results({("d", "t", 2): {"none": {"logreg": 0.8, "mlp3": 0.9}}}, learning=0.0)
    df = pd.concat([base.assign(recipe="strong"), base.assign(recipe="paper",
                                                                balanced_accuracy=base.balanced_accuracy - 0.1)])
    comp = stats.compare_models(df)
    assert [g["recipe"] for g in comp["groups"]] == ["paper", "strong"]
    table = stats.verdict_table(comp, stats.nonlinear_signal_test(df), stats.cross_task(df))
    assert list(table.columns[:6]) == ["question", "dataset", "task", "split", "pretraining", "recipe"]
    assert set(table["recipe"]) == {"paper", "strong"}


# ------------------------------------------------------------------ calibration under a known null

@pytest.mark.parametrize("scenario,question,n,plain_false", [
    ("copies", "a", 2000, False),  # the plain test survives this null: nothing is shared across splits
    ("halves", "a", 2000, True),   # ... but not a data-set-level difference shared by every split
    ("noise", "b", 1000, True),    # nor excess over chance on noise after removal
])
def test_calibration_under_a_known_null(scenario, question, n, plain_false):
    """False claims at alpha = 0.05 at most 0.07 over 200 replicates; a planted difference of
    0.05 balanced accuracy is found in at least 80% (3 seeds x 5 study-wise folds, 2 sizes)."""
    null = null_tables(scenario, REPLICATES, n=n)
    claim, any_claim = claim_rates(null, question, corrected=True)
    power, _ = claim_rates(planted(null, 0.05), question, corrected=True)
    old_claim, old_any = claim_rates(null, question, corrected=False)
    old_power, _ = claim_rates(planted(null, 0.05), question, corrected=False)
    print(f"{scenario}: false claims new {claim:.3f} (any {any_claim:.3f}), old {old_claim:.3f} "
          f"(any {old_any:.3f}); power new {power:.3f}, old {old_power:.3f}")
    assert claim <= 0.07 and any_claim <= 0.07
    assert power >= 0.8
    if plain_false:
        assert old_claim > 0.07  # the defect of issue 11: the plain t-test claims too often
    else:
        assert old_claim <= 0.07


def test_permutation_p_value_is_calibrated_under_the_null():
    """p < 0.05 in at most 7% of 200 noise replicates (20 permutations each, real fold structure)."""
    df = null_tables("noise", REPLICATES, n=200, p=20, seeds=1, folds=3, fractions=(1.0,), permutations=20)
    res = stats.permutation_test(df)
    assert (res["n_permutations"] == 20).all() and len(res) == 2 * REPLICATES
    rejected = res.groupby("model")["p_permutation"].apply(lambda p: float((p < 0.05).mean()))
    print(f"permutation test, share of p < 0.05: {rejected.to_dict()}")
    assert (rejected <= 0.07).all()
    verdicts = stats.nonlinear_signal_test(df)["groups"]
    assert all(m["test"] == "permutation" for g in verdicts for m in g["models"])
    assert np.mean([g["verdict"] == stats.SIGNAL for g in verdicts]) <= 0.07
