import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from linsig.cli import main
from linsig.data.simulate import simulate
from linsig.evaluation import Settings, Unit, evaluate, run_unit
from linsig.errors import LinsigInputError
from linsig.tasks import make_task

TIMING = ["fit_seconds", "tune_seconds"]


def _run(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mixed.h5ad"
    _run(["simulate", "mixed", str(path), "--samples", "120", "--features", "30", "--groups", "12"])
    return path


def test_run_same_seed_identical_results_in_one_or_two_processes(sim_file, tmp_path):
    args = ["run", "--data", str(sim_file), "--label", "label", "--group", "group", "--models", "logreg,mlp3",
            "--folds", "3", "--seeds", "0,1", "--fractions", "0.5,1", "--epochs", "4", "--tuning", "off",
            "--signal", "none,removed", "--permutations", "1", "--quiet"]
    _run(args + ["--out", str(tmp_path / "a")])
    _run(args + ["--out", str(tmp_path / "b"), "--jobs", "2"])  # units and permutations in two processes: the same table
    a = pd.read_parquet(tmp_path / "a/results.parquet").drop(columns=TIMING)
    b = pd.read_parquet(tmp_path / "b/results.parquet").drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 2 * 2 * 3 * 2 * 2 + 2 * 3 * 2 * 2  # real labels; one permutation, signal removed only
    assert set(a.loc[a.permutation == 1, "signal"]) == {"removed"}
    a = a[a.permutation == 0]
    # different seeds give different folds
    s0, s1 = a[a.seed == 0], a[a.seed == 1]
    assert not np.array_equal(s0.balanced_accuracy.to_numpy(), s1.balanced_accuracy.to_numpy())
    summary = (tmp_path / "a/summary.json").read_text()
    assert '"n_groups": 12' in summary


def test_run_with_tuning_records_hyperparameters(sim_file, tmp_path):
    import json

    from linsig.models.linear import LOGREG_C

    common = ["run", "--data", str(sim_file), "--label", "label", "--group", "group", "--models", "logreg",
              "--folds", "3", "--seeds", "0", "--fractions", "1", "--epochs", "3", "--tuning", "fast", "--quiet"]
    _run(common + ["--recipe", "paper", "--out", str(tmp_path / "t")])
    df = pd.read_parquet(tmp_path / "t/results.parquet")
    assert set(df.tuning) == {"fast"} and set(df.recipe) == {"paper"}
    assert set(df.lr) <= {1e-4, 1e-3, 1e-2} and set(df.weight_decay) <= {1e-6, 1e-3}
    # the strong recipe records the searched penalty of its converged logreg
    _run(common + ["--out", str(tmp_path / "s")])
    df = pd.read_parquet(tmp_path / "s/results.parquet")
    assert set(df.recipe) == {"strong"} and set(df.tuning) == {"fast"} and df.lr.isna().all()
    assert {json.loads(p)["C"] for p in df.params} <= set(LOGREG_C[::2])
    assert (df.tuning_score > 0.5).all() and df.converged.all()


def test_one_class_folds_are_skipped_not_crashed():
    # Class 1 lives in a single group: the fold that holds it has one class in training.
    a = simulate("linear", 60, 10, n_groups=6, seed=0)
    a.obs["label"] = np.where(a.obs["group"] == "study0", "1", "0")
    task = make_task(a, "label", "group")
    rows = run_unit(task, Unit("logreg", 0, 0), Settings(models=("logreg",), n_folds=3, seeds=(0,), fractions=(0.5, 1.0),
                                                       tuning="off", max_epochs=2))
    rows += [r for f in (1, 2) for r in run_unit(task, Unit("logreg", 0, f), Settings(
        models=("logreg",), n_folds=3, seeds=(0,), fractions=(0.5, 1.0), tuning="off", max_epochs=2))]
    df = pd.DataFrame(rows)
    skipped = df[df.status == "skipped"]
    assert len(skipped) >= 2 and skipped.balanced_accuracy.isna().all()
    assert set(skipped.skip_reason) <= {"training set holds one class", "validation set holds one class"}


def test_chance_level_counts_the_classes_of_the_validation_fold():
    # 3 classes; class "c" lives in one study, so two of three group-wise folds validate on 2 classes,
    # where a constant predictor scores 1/2 (scikit-learn averages recall over present classes only)
    a = simulate("linear", 90, 10, n_groups=9, seed=0)
    a.obs["label"] = np.where(a.obs["group"] == "study0", "c", np.where(a.obs["group"].isin(["study1", "study2", "study3", "study4"]), "a", "b"))
    task = make_task(a, "label", "group")
    settings = Settings(models=("logreg",), n_folds=3, seeds=(0,), fractions=(1.0,), tuning="off", max_epochs=1)
    rows = pd.DataFrame([r for f in range(3) for r in run_unit(task, Unit("logreg", 0, f), settings)])
    from linsig.evaluation import _folds

    for fold, (_, val_idx) in enumerate(_folds(task, settings, 0)):
        present = np.unique(task.y[val_idx]).size
        assert rows.loc[rows.fold == fold, "chance_balanced_accuracy"].iloc[0] == pytest.approx(1 / present)
    assert (rows["chance_balanced_accuracy"] == 1 / 2).sum() == 2


def test_diverged_training_is_recorded():
    task = make_task(simulate("linear", 60, 10, n_groups=6, seed=0), "label", "group")
    settings = dict(models=("logreg",), n_folds=3, seeds=(0,), fractions=(1.0,), tuning="off", max_epochs=5,
                    recipe="paper")
    ok = run_unit(task, Unit("logreg", 0, 0), Settings(**settings))
    broken = run_unit(task, Unit("logreg", 0, 0), Settings(**settings, lr=1e38))  # the loss overflows at once
    assert [r["diverged"] for r in ok] == [False] and [r["diverged"] for r in broken] == [True]
    assert broken[0]["epochs_trained"] == 1


def test_settings_validation():
    with pytest.raises(LinsigInputError, match="unknown model"):
        Settings(models=("xgboost",))
    with pytest.raises(LinsigInputError, match="no paper recipe"):
        Settings(models=("rbf_svm",), recipe="paper")
    with pytest.raises(LinsigInputError, match="recipe"):
        Settings(recipe="fancy")
    with pytest.raises(LinsigInputError, match="use --recipe paper"):
        Settings(tuning="paper")  # the paper's protocol belongs to the paper recipe
    with pytest.raises(LinsigInputError, match="signal"):
        Settings(signals=("partial",))
    with pytest.raises(LinsigInputError, match="fractions"):
        Settings(fractions=(0.0,))


def test_run_on_table_input_sample_split(tmp_path):
    a = simulate("linear", 40, 6, seed=1)
    pd.DataFrame(a.X, index=a.obs_names, columns=a.var_names).T.to_csv(tmp_path / "expr.csv")  # genes × samples
    a.obs[["label"]].to_csv(tmp_path / "meta.csv")
    _run(["run", "--data", str(tmp_path / "expr.csv"), "--metadata", str(tmp_path / "meta.csv"), "--label", "label",
          "--split", "sample", "--models", "logreg", "--seeds", "0", "--fractions", "1", "--epochs", "30",
          "--recipe", "paper", "--tuning", "off", "--lr", "0.01", "--device", "cpu", "--quiet",
          "--out", str(tmp_path / "o")])
    df = pd.read_parquet(tmp_path / "o/results.parquet")
    assert set(df.split) == {"sample"} and set(df.device) == {"cpu"} and set(df.lr) == {0.01}
    assert df.balanced_accuracy.mean() > 0.9
    # a study-wise run without --group works but warns that its folds are sample-wise
    res = CliRunner().invoke(main, ["run", "--data", str(tmp_path / "expr.csv"), "--metadata", str(tmp_path / "meta.csv"),
                                    "--label", "label", "--models", "logreg", "--seeds", "0", "--fractions", "1",
                                    "--epochs", "2", "--tuning", "off", "--quiet", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 0 and "warning: no --group" in res.output


def test_every_command_has_help():
    runner = CliRunner()
    commands = [[], ["run"], ["simulate"], ["demo"], ["plot"], ["report"], ["data"], ["data", "gtex"],
                ["data", "recount3"], ["data", "sex-labels"], ["experiment"]]
    for cmd in commands:
        res = runner.invoke(main, cmd + ["--help"])
        assert res.exit_code == 0, (cmd, res.output)
        assert "Usage:" in res.output


def test_bundled_all_example():
    from linsig.data.examples import load_example

    a = load_example("ALL")
    assert a.shape == (128, 12625)
    assert a.obs["lineage"].value_counts().to_dict() == {"B": 95, "T": 33}
    assert a.obs["sex"].value_counts().to_dict() == {"male": 83, "female": 42}


def test_cuda_without_gpu_is_a_clear_error(sim_file, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = CliRunner().invoke(main, ["run", "--data", str(sim_file), "--label", "label", "--group", "group",
                                    "--models", "logreg", "--device", "cuda", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "no CUDA GPU" in res.output and "Traceback" not in res.output


def test_readme_python_api_example():
    import linsig.data.simulate as sim
    import linsig.tasks as tasks

    from linsig.models import make_model

    adata = sim.simulate("mixed", n_samples=100, n_features=20)
    task = tasks.make_task(adata, label="label", group="group")
    results = evaluate([task], Settings(models=("logreg", "rbf_svm"), seeds=(0,), fractions=(1.0,),
                                        signals=("none", "removed"), tuning="fast"), progress=False)
    assert len(results) == 2 * 5 * 2 and set(results.signal) == {"none", "removed"}
    paper = Settings(models=("logreg", "mlp3"), recipe="paper")
    assert (paper.recipe, paper.tuning, paper.max_epochs) == ("paper", "paper", 50)
    clf = make_model("logreg", "strong", C=1.0)
    assert type(clf).__name__ == "RidgeLogisticRegression" and clf.get_params()["C"] == 1.0


def test_study_signal_mode_removes_group_effect():
    # Labels carried only by a study effect: each study is one class and has its own offset.
    # Removing the study effect (signal="study") leaves nothing to learn; "none" keeps it.
    rng = np.random.default_rng(0)
    n_studies, per = 12, 10
    groups = np.repeat(np.arange(n_studies), per)
    label = (groups % 2).astype(str)
    offsets = rng.normal(0, 1, size=(n_studies, 8)) + (np.arange(n_studies) % 2)[:, None] * 8
    X = (offsets[groups] + rng.normal(size=(len(groups), 8))).astype(np.float32)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))  # 0–1 scaled, as linsig run does
    import anndata as ad

    a = ad.AnnData(X=X, obs=pd.DataFrame({"label": label, "study": groups.astype(str)},
                                         index=[f"s{i}" for i in range(len(groups))]))
    task = make_task(a, "label", "study")
    settings = Settings(models=("logreg",), n_folds=3, seeds=(0,), fractions=(1.0,), signals=("none", "study"),
                        tuning="off", lr=1e-2, max_epochs=30)
    df = pd.DataFrame([r for f in range(3) for r in run_unit(task, Unit("logreg", 0, f), settings)])
    acc = df.groupby("signal").balanced_accuracy.mean()
    assert acc["none"] > 0.8
    assert abs(acc["study"] - 0.5) < 0.15
    # with every sample its own group there is no study effect to remove: skipped with a reason
    single = make_task(a, "label", None)
    rows = run_unit(single, Unit("logreg", 0, 0), Settings(models=("logreg",), n_folds=3, seeds=(0,), fractions=(1.0,),
                                                         signals=("study",), tuning="off", max_epochs=2))
    assert rows[0]["status"] == "skipped" and "own group" in rows[0]["skip_reason"]


def test_keep_freed_memory_is_on_for_runners_and_can_be_turned_off():
    code = ("from linsig.system import keep_freed_memory as k; a = k(); b = k(); "
            "import linsig.system as s; print(a, b, s._HEAP_KEPT)")
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert on == ["True", "True", "True"]  # glibc on Linux; idempotent
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LINSIG_KEEP_FREED_MEMORY": "0"}).stdout.split()
    assert off == ["False", "False", "False"]


def test_run_uses_every_core_by_default_as_far_as_memory_holds(sim_file, monkeypatch):
    """Issue 25: without --jobs a grid's units run on every core (results are the same with any number)."""
    from linsig import system

    monkeypatch.delenv("LINSIG_JOBS", raising=False)
    monkeypatch.setattr(system, "available_cores", lambda: 8)
    monkeypatch.setattr(system, "available_memory", lambda: 64 * 1024**3)
    assert system.default_jobs() == 8 and system.default_jobs(threads=2) == 4 and system.default_jobs(threads=16) == 1
    # memory: one JOB_MEMORY and DATA_COPIES of the matrix each
    monkeypatch.setattr(system, "available_memory", lambda: 5 * 1024**3)
    assert system.default_jobs() == 2
    assert system.default_jobs(data_bytes=1024**3) == 1
    monkeypatch.setattr(system, "available_memory", lambda: None)  # unknown: the cores decide
    assert system.default_jobs() == 8
    res = _run(["run", "--data", str(sim_file), "--label", "label", "--group", "group", "--models", "logreg",
                "--dry-run"])
    assert "estimated wall time with --jobs 8" in res.output
    monkeypatch.setenv("LINSIG_JOBS", "3")
    assert system.default_jobs() == 3
    monkeypatch.setenv("LINSIG_JOBS", "many")
    with pytest.raises(LinsigInputError, match="LINSIG_JOBS"):
        system.default_jobs()
