import anndata as ad
import numpy as np
import pandas as pd
import pytest

from linsig import splits
from linsig.errors import LinsigInputError
from linsig.tasks import PRESETS, make_task, pairwise_tasks, preset_tasks, top_classes


@pytest.fixture
def tissues():
    rng = np.random.default_rng(0)
    rows = []
    # Blood in 8 studies, Brain in 6, Skin in 4, Lung in 2; two samples per (study, tissue)
    for tissue, n_studies in [("Blood", 8), ("Brain", 6), ("Skin", 4), ("Lung", 2)]:
        for s in range(n_studies):
            for k in range(2):
                rows.append({"tissue": tissue, "study": f"{tissue[:2]}{s}"})
    obs = pd.DataFrame(rows, index=[f"s{i}" for i in range(len(rows))])
    obs.loc["s0", "tissue"] = None  # unlabeled sample: dropped
    return ad.AnnData(X=rng.normal(size=(len(obs), 5)).astype(np.float32), obs=obs)


def test_make_task_codes_and_drops_unlabeled(tissues):
    t = make_task(tissues, "tissue", "study")
    assert t.n_samples == len(tissues) - 1
    assert list(t.classes) == ["Blood", "Brain", "Lung", "Skin"]
    assert t.name == "tissue:multiclass"
    np.testing.assert_array_equal(t.X, tissues.X[1:])
    assert t.n_groups == 20
    assert t.summary()["classes"]["Blood"] == 15


def test_classes_min_groups_pairs_presets(tissues):
    pair = make_task(tissues, "tissue", "study", classes=["Skin", "Blood"])
    assert pair.name == "tissue:Blood-vs-Skin" and pair.n_classes == 2
    assert set(make_task(tissues, "tissue", "study", min_groups=4).classes) == {"Blood", "Brain", "Skin"}
    assert top_classes(tissues, "tissue", "study", 2) == ["Blood", "Brain"]
    assert [t.name for t in pairwise_tasks(tissues, "tissue", "study", top_k=3)] == [
        "tissue:Blood-vs-Brain", "tissue:Blood-vs-Skin", "tissue:Brain-vs-Skin"]
    gtex_like = tissues.copy()
    gtex_like.obs["donor"] = gtex_like.obs["study"]
    with pytest.raises(LinsigInputError, match="Esophagus"):
        preset_tasks(gtex_like, "gtex-binary")  # GTEx tissues are absent here
    with pytest.raises(LinsigInputError, match="no group column 'donor'"):
        preset_tasks(tissues, "gtex-binary")
    assert len(PRESETS["recount3-multiclass"].classes) == 21
    assert PRESETS["gtex-binary"].pairs_of == ("Blood", "Brain", "Skin", "Esophagus", "Blood Vessel")


def test_unknown_class_is_named(tissues):
    with pytest.raises(LinsigInputError, match="class\\(es\\) Liver not found"):
        make_task(tissues, "tissue", "study", classes=["Blood", "Liver"])


def test_group_folds_never_share_a_group():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 40, size=500)
    y = rng.integers(0, 3, size=500)
    for seed in range(5):
        folds = splits.kfold(y, groups, 5, "study", seed)
        seen = np.zeros(500, int)
        for tr, va in folds:
            assert not set(groups[tr]) & set(groups[va])
            assert not set(tr) & set(va)
            seen[va] += 1
        assert (seen == 1).all()  # every sample validated exactly once
    a = splits.kfold(y, groups, 5, "study", 3)
    b = splits.kfold(y, groups, 5, "study", 3)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b))
    c = splits.kfold(y, groups, 5, "study", 4)
    assert not all(np.array_equal(x[1], z[1]) for x, z in zip(a, c))


def test_sample_folds_are_stratified():
    y = np.array([0] * 80 + [1] * 20)
    for tr, va in splits.kfold(y, None, 5, "sample", 0):
        assert (y[va] == 1).sum() == 4


def test_group_folds_are_never_empty():
    # as many single-class groups as folds, uneven sizes: StratifiedGroupKFold alone leaves fold 3
    # empty for seed 0 (validation sizes 21, 10, 0, 86, 52)
    sizes = [52, 54, 32, 10, 21]
    groups = np.repeat(np.arange(5), sizes)
    y = np.repeat([1, 0, 1, 1, 1], sizes)
    for seed in range(5):
        folds = splits.kfold(y, groups, 5, "study", seed)
        assert sorted(len(va) for _, va in folds) == sorted(sizes)  # one group per fold
    again = splits.kfold(y, groups, 5, "study", 0)  # the redraw is deterministic too
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits.kfold(y, groups, 5, "study", 0), again))


def test_sample_folds_stay_stratified_with_a_rare_class():
    # a class with fewer samples than folds cannot be in every fold, but the others stay balanced
    y = np.array([0] * 50 + [1] * 50 + [2] * 3)
    folds = splits.kfold(y, None, 5, "sample", 0)
    for _, va in folds:
        assert (y[va] == 0).sum() == 10 and (y[va] == 1).sum() == 10
    assert sorted((y[va] == 2).sum() for _, va in folds) == [0, 0, 1, 1, 1]


def test_fewer_groups_than_folds():
    with pytest.raises(LinsigInputError, match="only 3 groups for 5-fold"):
        splits.kfold(np.array([0, 1] * 6), np.repeat([0, 1, 2], 4), 5, "study", 0)


def test_subsample_nested_and_sized():
    train = np.arange(100, 300)
    subsets = splits.subsample(train, splits.DEFAULT_FRACTIONS, seed=0, fold=1)
    assert [len(v) for v in subsets.values()] == [20, 40, 60, 80, 100, 120, 140, 160, 180, 200]
    for small, big in zip(list(subsets.values()), list(subsets.values())[1:]):
        assert set(small) <= set(big)
    assert set(subsets[1.0]) == set(train)
    again = splits.subsample(train, splits.DEFAULT_FRACTIONS, seed=0, fold=1)
    assert all(np.array_equal(again[f], subsets[f]) for f in subsets)
    other = splits.subsample(train, [0.1], seed=1, fold=1)
    assert not np.array_equal(other[0.1], subsets[0.1])
    with pytest.raises(LinsigInputError):
        splits.subsample(train, [0.0, 0.5], 0, 0)


def test_holdout_is_group_wise_or_none():
    groups = np.repeat(np.arange(10), 5)
    y = np.tile([0, 1, 0, 1, 1], 10)
    fit, tune = splits.holdout(y, groups, 0.2, seed=0)
    assert not set(groups[fit]) & set(groups[tune])
    assert len(set(groups[tune])) == 2
    assert splits.holdout(y[:20], groups[:20], 0.2, seed=0) is None  # 4 groups: too few to hold out
