"""The dry run's time estimate (issue 25): calibrated, cached, close to the measured time, and
a dry run that trains and writes nothing."""

import io
import time

import pytest
from click.testing import CliRunner

from linsig import estimate as E
from linsig.cli import main
from linsig.evaluation import Settings, evaluate, units


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LINSIG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mixed.h5ad"
    res = CliRunner().invoke(main, ["simulate", "mixed", str(path), "--samples", "160", "--features", "60",
                                    "--groups", "12"])
    assert res.exit_code == 0, res.output
    return path


def _task(samples=160, features=60):
    from linsig import tasks
    from linsig.data.preprocess import preprocess
    from linsig.data.simulate import simulate

    adata = preprocess(simulate("mixed", n_samples=samples, n_features=features, n_groups=12, seed=0), n_top_genes=None)
    return tasks.make_task(adata, label="label", group="group")


def test_the_calibration_is_cached_and_the_second_call_instant(cache):
    settings = Settings(models=("logreg", "knn"), device="cpu")
    first = E.calibrate(settings)
    assert not first.cached and first.seconds > 0 and (cache / "estimate" / "calibration.json").is_file()
    start = time.perf_counter()
    second = E.calibrate(settings)
    assert time.perf_counter() - start < 0.5
    assert second.cached and second.seconds == 0 and second.constants == first.constants
    # another thread count is another machine as far as timings go: not answered from the cache
    assert not E.calibrate(Settings(models=("knn",), device="cpu", threads=2), run=False).constants


def test_a_damaged_cache_is_measured_again(cache):
    (cache / "estimate").mkdir(parents=True)
    (cache / "estimate" / "calibration.json").write_text("{not json")
    assert not E.calibrate(Settings(models=("knn",), device="cpu")).cached


def test_dry_run_trains_nothing_and_writes_nothing(sim_file, tmp_path, cache, monkeypatch):
    import linsig.evaluation

    def no_training(*args, **kwargs):
        raise AssertionError("a dry run trained a unit")

    monkeypatch.setattr(linsig.evaluation, "run_unit", no_training)
    monkeypatch.setattr(linsig.evaluation, "evaluate", no_training)
    out = tmp_path / "out"
    args = ["run", "--data", str(sim_file), "--label", "label", "--group", "group", "--models", "logreg,mlp3,rf",
            "--seeds", "0,1", "--folds", "3", "--fractions", "0.5,1", "--signal", "none,removed", "--dry-run"]
    res = CliRunner().invoke(main, args + ["--out", str(out), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    assert not out.exists()  # not even created
    assert "units: 18 " in res.output and "estimated wall time with --jobs 2:" in res.output
    for model in ("logreg", "mlp3", "rf"):
        assert f"  {model} " in res.output
    assert "calibrated now" in res.output
    again = CliRunner().invoke(main, args)  # --out is optional with --dry-run; the calibration is cached
    assert again.exit_code == 0, again.output
    assert "calibration cached" in again.output
    missing = CliRunner().invoke(main, args[:-1])  # without --dry-run, --out is required
    assert missing.exit_code == 2 and "--out" in missing.output


def test_experiment_dry_run_prints_the_estimate(tmp_path, cache):
    spec = tmp_path / "e.toml"
    spec.write_text('name = "e"\n[settings]\nmodels = ["logreg", "gbdt"]\nseeds = [0]\nfolds = 3\n'
                    'fractions = [1.0]\n[data.sim]\nsimulate = "mixed"\nsamples = 200\nfeatures = 50\ngroups = 10\n')
    res = CliRunner().invoke(main, ["experiment", "run", str(spec), "--dry-run", "--dask-local", "3"])
    assert res.exit_code == 0, res.output
    assert "units: 6" in res.output and "estimated wall time with --dask-local 3:" in res.output
    res = CliRunner().invoke(main, ["experiment", "run", str(spec), "--dry-run", "--scheduler", "tcp://h:1"])
    assert "16 worker(s):" in res.output  # per number of Dask workers, nothing contacted


def test_the_estimate_of_a_small_grid_is_within_a_factor_of_3(cache):
    """Estimate against the measured time of a real grid (networks, a forest, a linear model).

    ``benchmarks/bench_estimate.py`` measures the factor of 2 the issue asks for, on an idle
    machine; here the bound is 3 because tests share a loaded machine (2 cores, load 5–8 when this
    was written): the calibration and the run can see different load, and a small grid is
    seconds long, where one slow fit weighs.
    """
    task = _task()
    settings = Settings(models=("logreg", "mlp3", "rf"), seeds=(0,), n_folds=3, fractions=(0.5, 1.0),
                        signals=("none",), device="cpu")
    cal = E.calibrate(settings)
    est = E.estimate([(u.model, E.Shape.of(task), settings) for u in units(settings)], calibration=cal)
    start = time.perf_counter()
    evaluate([task], settings, progress=False)
    measured = time.perf_counter() - start
    assert measured / 3 <= est.total <= measured * 3, (est.total, measured)


def test_wall_time_schedules_units_in_order_on_the_workers():
    assert E.wall_seconds([4, 1, 1, 1, 1], 1) == 8
    assert E.wall_seconds([4, 1, 1, 1, 1], 2) == 4  # the long unit on one worker, the rest on the other
    assert E.wall_seconds([1, 1, 1, 1, 4], 2) == 6  # submitted last, it ends the run
    est = E.Estimate([E.UnitCost("logreg", 0.0, 10.0)] * 4, E.Calibration(), cores=2)
    assert est.wall(8) == est.wall(2) == E.WORKER_START + 20  # only the cores run at once


def test_costs_follow_the_model_families(cache):
    settings = Settings(models=("logreg", "mlp5", "rf"), signals=("none", "removed"), device="cpu")
    cal = E.Calibration()  # the built-in constants: ratios only
    small, big = E.Shape(200, 500), E.Shape(1000, 5000)
    for model in settings.models:
        assert E.unit_cost(model, big, settings, cal).seconds > E.unit_cost(model, small, settings, cal).seconds
    # networks grow with the square of the genes, the linear model with the genes
    grow = {m: E.unit_cost(m, E.Shape(500, 4000), settings, cal).seconds / E.unit_cost(m, E.Shape(500, 1000), settings, cal).seconds
            for m in ("logreg", "mlp5")}
    assert grow["mlp5"] > 8 and grow["logreg"] < 5


def test_a_raced_search_is_costed_at_its_share_after_removal(cache, monkeypatch):
    """Issue 25, lever 2: the networks' raced search costs RACED_SHARE after removal; as given, the
    first candidate's runs alone (the ceiling, raced or not)."""
    import dataclasses

    from linsig import recipes
    monkeypatch.setitem(recipes.RECIPES, "unraced", dataclasses.replace(recipes.RECIPES["strong"], name="unraced",
                                                                        race_within_se=None))
    cal, shape = E.Calibration(), E.Shape(1000, 5000)
    costs = {(recipe, signal, model): E.unit_cost(model, shape, Settings(models=("mlp3", "svm"), signals=(signal,),
                                                                       recipe=recipe, device="cpu"), cal)
             for recipe in ("strong", "unraced") for signal in ("none", "removed") for model in ("mlp3", "svm")}
    raced, full = costs["strong", "removed", "mlp3"], costs["unraced", "removed", "mlp3"]
    assert raced.search == pytest.approx(E.RACED_SHARE * full.search) and raced.fits == pytest.approx(full.fits)
    assert costs["strong", "none", "mlp3"].search == pytest.approx(costs["unraced", "none", "mlp3"].search)
    monkeypatch.setattr(E, "CEILING_RUNS", 100)  # every candidate's runs
    for model, runs in (("mlp3", 4), ("mlp5", 3)):  # the full search's learning rates (and mlp3's centred one)
        settings = Settings(models=(model,), signals=("none",), device="cpu")
        every = E.unit_cost(model, shape, settings, cal).search
        monkeypatch.setattr(E, "CEILING_RUNS", 1)
        assert E.unit_cost(model, shape, settings, cal).search == pytest.approx(every / runs)
        monkeypatch.setattr(E, "CEILING_RUNS", 100)
    # a model whose candidates share one run (the linear SVM's penalty path) is not raced
    assert costs["strong", "removed", "svm"].search == pytest.approx(costs["unraced", "removed", "svm"].search)


def test_the_progress_bar_fills_by_cost():
    from linsig.progress import CostProgress

    out = io.StringIO()
    bar = CostProgress([9.0, 1.0], desc="grid", file=out)
    bar.advance(0)
    assert bar.bar.n == 9.0 and bar.done == 1
    bar.set_postfix_str("logreg seed=0 fold=1")
    bar.advance(1)
    bar.close()
    text = out.getvalue()
    assert "1/2 units" in text or "2/2 units" in text
    assert "grid: 100%" in text and "2/2 units" in text


def test_the_progress_bar_corrects_the_estimate_of_the_units_left_by_the_units_timed():
    """An estimate off by a family-wide factor (3× for one kind, 0.5× for another) stops mattering
    once a unit of each kind has finished: the time left is the corrected cost over the run's rate."""
    from linsig.progress import CostProgress

    now = [0.0]
    out = io.StringIO()
    bar = CostProgress([1.0, 1.0, 10.0, 10.0], desc="grid", file=out, kinds=["a", "a", "b", "b"],
                       clock=lambda: now[0])
    bar.start(0)
    now[0] = 3.0
    bar.advance(0)  # a: 3 s measured against 1 estimated
    assert bar.ratios() == {"a": 3.0, None: 3.0}
    assert bar.seconds_left() == pytest.approx(3.0 + 2 * 10.0 * 3.0)  # b not seen yet: the overall ratio
    assert bar.bar.n == pytest.approx(3.0) and bar.bar.total == pytest.approx(66.0)
    bar.start(2)
    now[0] = 8.0
    bar.advance(2)  # b: 5 s against 10
    assert bar.ratios()["b"] == pytest.approx(0.5)
    assert bar.seconds_left() == pytest.approx(3.0 + 5.0)
    assert bar.bar.n == pytest.approx(8.0) and bar.bar.total == pytest.approx(16.0) and bar.done == 2
    # a unit that finished without being timed here counts as done at its corrected cost, not in the rate
    bar.set_done([0, 1, 2])
    assert bar.bar.n == pytest.approx(11.0) and bar.bar.initial == pytest.approx(3.0)
    assert bar.seconds_left() == pytest.approx(5.0) and bar.done == 3
    bar.close()
    assert "3/4 units" in out.getvalue()
    with pytest.raises(ValueError, match="3 kinds for 4 units"):
        CostProgress([1.0] * 4, desc="grid", file=io.StringIO(), kinds=["a"] * 3)


def test_a_run_shows_units_in_its_cost_weighted_progress(cache):
    """evaluate's bar weighs units by cost and still counts them (no calibration during a run)."""
    import contextlib

    err = io.StringIO()
    settings = Settings(models=("logreg",), seeds=(0,), n_folds=2, fractions=(1.0,), tuning="off", device="cpu")
    with contextlib.redirect_stderr(err):
        evaluate([_task(80, 12)], settings, progress=True)
    assert "2/2 units" in err.getvalue()
    assert not (cache / "estimate").exists()  # the run did not calibrate


def test_the_api_dry_run_returns_the_estimate_and_writes_nothing(sim_file, tmp_path, cache):
    import linsig

    est = linsig.benchmark(str(sim_file), label="label", group="group", models="logreg,knn", seeds=[0], folds=3,
                           fractions=[1.0], signal="none,removed", permutations=1, out=tmp_path / "o", dry_run=True)
    assert isinstance(est, E.Estimate) and not (tmp_path / "o").exists()
    assert len(est.units) == 2 * 3 + 2 * 3  # the grid, then one permutation of it (signal removed)
    assert est.wall(2) <= est.total + E.WORKER_START


def test_an_experiment_runner_shows_cost_weighted_progress(tmp_path, cache, capsys):
    from linsig.executors import InProcessExecutor
    from linsig.experiment.driver import run_experiment
    from linsig.experiment.spec import load_experiment

    spec = tmp_path / "e.toml"
    spec.write_text('name = "e"\n[settings]\nmodels = ["logreg", "knn"]\nseeds = [0]\nfolds = 2\ntuning = "off"\n'
                    'fractions = [1.0]\n[data.sim]\nsimulate = "mixed"\nsamples = 60\nfeatures = 10\ngroups = 6\n')
    report = run_experiment(load_experiment(spec), tmp_path / "out", InProcessExecutor(threads=1), progress=True)
    assert report.computed == 4 and "4/4 units" in capsys.readouterr().err
