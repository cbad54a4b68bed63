"""Issue 26 ("reliability, round two"): one test (or more) per numbered item 1–17.

Tiny data throughout (40 samples × 20 genes, the quickest grid: ``--tuning off --seeds 0
--folds 2 --fractions 1.0 --models logreg``); where the point is a refusal, training is
replaced by a failure (``no_training``) so that the test also proves the check comes first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from clitools import invoke, one_error_line, write_tables
from linsig.errors import LinsigInputError
from linsig.evaluation import Settings
from linsig.experiment.driver import run_experiment
from linsig.experiment.spec import load_experiment
from linsig.experiment.store import UnitStore
from linsig.experiment.units import compute_unit, expand
from linsig.plots import synthetic_results
from linsig.results import write_run
from linsig.validation import InvalidSetting

import linsig

SRC = Path(linsig.__file__).resolve().parents[1]  # subprocesses run the linsig this test imported
# A test scheduler: no dashboard, HTTP on a free local port (as linsig's own LocalCluster)
LOCAL_SCHEDULER = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
QUICK = ["--tuning", "off", "--seeds", "0", "--folds", "2", "--fractions", "1.0", "--models", "logreg", "--quiet"]

EXPERIMENT = """
name = "small"

[data.sim]
simulate = "linear"
samples = 40
features = 20
groups = 8

[settings]
models = ["logreg"]
seeds = [0, 1]
folds = 2
fractions = [1.0]
tuning = "off"
device = "cpu"
"""


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Content hashes of data files are cached per user: here, per test."""
    monkeypatch.setenv("LINSIG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tables(tmp_path):
    """expr.csv (samples × genes) and meta.csv (label A/B, 8 studies)."""
    return write_tables(tmp_path, [f"s{i:02d}" for i in range(40)], "st")


def run_args(tables, *extra):
    expr, meta = tables
    return ["run", "--data", expr, "--metadata", meta, "--label", "label", "--group", "study", *QUICK, *extra]


@pytest.fixture
def no_training(monkeypatch):
    def evaluate(*args, **kwargs):
        raise AssertionError("training started before the check")

    monkeypatch.setattr("linsig.cli.run.evaluate", evaluate)


def small_experiment(tmp_path, text=EXPERIMENT, name="small.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _levels(dataset):
    return {(dataset, "label", 2): {"none": {"logreg": 0.8, "mlp3": 0.85}, "removed": {"logreg": 0.5, "mlp3": 0.6}}}


def synthetic_run(path: Path, config=None, dataset="sim") -> Path:
    write_run(path, synthetic_results(_levels(dataset), seeds=2, folds=2, fractions=2), [], config or {})
    return path


def snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- 1. a run folder of one kind is never silently replaced by another -----------------------

def test_run_refuses_a_folder_holding_an_experiment(tables, tmp_path, no_training, monkeypatch):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({"experiment": "x", "units": []}))
    synthetic_run(out)
    before = snapshot(out)
    line = one_error_line(invoke(*run_args(tables, "--out", out)))
    assert "experiment" in line and "--force" in line
    assert snapshot(out) == before
    # --force: the folder becomes the run's; `experiment status` no longer counts units it does not hold
    monkeypatch.undo()
    assert invoke(*run_args(tables, "--out", out, "--force")).exit_code == 0
    assert not (out / "experiment.json").exists()
    assert set(pd.read_parquet(out / "results.parquet")["dataset"]) == {"expr"}


def test_run_refuses_another_runs_results_unless_forced(tables, tmp_path, no_training, monkeypatch):
    out = synthetic_run(tmp_path / "R", {"data": "other.h5ad", "label": "x"})
    (out / "report.html").write_text("<html>old</html>")
    (out / "verdict.parquet").write_bytes(b"old")
    before = snapshot(out)
    line = one_error_line(invoke(*run_args(tables, "--out", out)))
    assert "--force" in line and str(out) in line
    assert snapshot(out) == before
    # with --force it is replaced, and the old report and verdict go with the old results
    monkeypatch.undo()
    res = invoke(*run_args(tables, "--out", out, "--force"))
    assert res.exit_code == 0, res.output
    assert not (out / "report.html").exists() and not (out / "verdict.parquet").exists()


def test_rerun_into_its_own_folder_drops_the_stale_report(tables, tmp_path):
    out = tmp_path / "R"
    res = invoke(*run_args(tables, "--out", out))
    assert res.exit_code == 0, res.output
    (out / "report.html").write_text("<html>old</html>")
    (out / "verdict.parquet").write_bytes(b"old")
    res = invoke(*run_args(tables, "--out", out))  # the same run again: allowed
    assert res.exit_code == 0, res.output
    assert not (out / "report.html").exists() and not (out / "verdict.parquet").exists()


def test_experiment_refuses_a_folder_holding_a_plain_run(tables, tmp_path):
    out = synthetic_run(tmp_path / "R", {"data": "x.h5ad"})
    before = snapshot(out)
    res = invoke("experiment", "run", small_experiment(tmp_path), "--out", out, "--quiet")
    line = one_error_line(res)
    assert "linsig run" in line and "--force" in line
    assert snapshot(out) == before
    res = invoke("experiment", "run", small_experiment(tmp_path), "--out", out, "--quiet", "--force")
    assert res.exit_code == 0, res.output
    assert (out / "experiment.json").exists() and set(pd.read_parquet(out / "results.parquet")["unit"].str.len()) == {64}


# --- 2. an input is never an output ------------------------------------------------------------

@pytest.mark.parametrize("name", ["results.parquet", "summary.json"])
def test_run_refuses_to_overwrite_its_input(tables, tmp_path, no_training, name):
    expr, meta = tables
    out = tmp_path / "X"
    out.mkdir()
    data = out / name if name.endswith(".parquet") else out / "results.parquet"
    pd.read_csv(expr, index_col=0).to_parquet(data)
    metadata = meta
    if name == "summary.json":  # the metadata table named like an output (as a .csv it would not be)
        metadata = out / "summary.json"
        metadata.write_bytes(meta.read_bytes())
    before = snapshot(out)
    for force in ([], ["--force"]):
        res = invoke("run", "--data", data, "--metadata", metadata, "--label", "label", *QUICK, "--out", out, *force)
        assert "input" in one_error_line(res)
    assert snapshot(out) == before


# --- 3. data identity is the content, not size and mtime ---------------------------------------

def test_unit_keys_follow_the_file_content_not_its_mtime(tables, tmp_path):
    expr, meta = tables
    text = EXPERIMENT.replace('simulate = "linear"\nsamples = 40\nfeatures = 20\ngroups = 8',
                              f'path = "{expr}"\nmetadata = "{meta}"\ntasks = {{label = "label", group = "study"}}')
    path = small_experiment(tmp_path, text)
    keys = [u.key for u in expand(load_experiment(path))]
    st = meta.stat()
    edited = meta.read_text().replace(",A,", ",X,").replace(",B,", ",A,").replace(",X,", ",B,")
    assert len(edited) == len(meta.read_text())
    meta.write_text(edited)
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p, rsync -a, tar restore it
    assert meta.stat().st_size == st.st_size and meta.stat().st_mtime_ns == st.st_mtime_ns
    assert not set(keys) & {u.key for u in expand(load_experiment(path))}


def test_content_hash_is_cached(tables, monkeypatch, tmp_path):
    from linsig.data import identity

    monkeypatch.setenv("LINSIG_CACHE_DIR", str(tmp_path / "cache"))
    expr, _ = tables
    calls = []
    real = identity._sha256
    monkeypatch.setattr(identity, "_sha256", lambda p: calls.append(p) or real(p))
    first = identity.content_fingerprint(expr)
    identity._MEMORY.clear()  # another process: the on-disk cache answers
    assert identity.content_fingerprint(expr) == first and len(calls) == 1
    expr.write_text(expr.read_text() + "\n")
    assert identity.content_fingerprint(expr) != first and len(calls) == 2


# --- 4. an incomplete run says so --------------------------------------------------------------

def test_report_of_an_incomplete_experiment_says_so(tmp_path):
    run = synthetic_run(tmp_path / "R", {"experiment": "x", "n_units": 8, "n_units_done": 5})
    res = invoke("report", run, "-j", "1")
    assert res.exit_code == 0, res.output
    assert "3 of 8 units" in res.output
    page = (run / "report.html").read_text()
    assert 'id="incomplete"' in page and "3 of 8 units" in page


# --- 5. --rope NaN ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "1.5"])
def test_rope_out_of_bounds_is_refused(tmp_path, value):
    from linsig.report import write_report

    run = synthetic_run(tmp_path / "R")
    res = invoke("report", run, "--rope", value)
    assert res.exit_code == 2 and "--rope" in res.output, res.output
    with pytest.raises(LinsigInputError, match="rope"):
        write_report(run, rope=float(value))
    assert not (run / "report.html").exists()


# --- 6. a tampered results table -----------------------------------------------------------------

@pytest.mark.parametrize("column,value", [("balanced_accuracy", 1.7), ("balanced_accuracy", -3.0),
                                          ("balanced_accuracy", 1e9), ("balanced_accuracy", float("nan")),
                                          ("balanced_accuracy", "text"), ("seed", -1), ("train_fraction", 2.0),
                                          ("model", 3)])
def test_tampered_results_are_refused_naming_the_column(tmp_path, column, value):
    run = synthetic_run(tmp_path / "R")
    df = pd.read_parquet(run / "results.parquet")
    if isinstance(value, str) or column == "model":  # a column of another type (parquet columns have one)
        df[column] = df[column].astype(str) if isinstance(value, str) else value
    else:
        df.loc[3, column] = value
    df.to_parquet(run / "results.parquet")
    line = one_error_line(invoke("report", run, "-j", "1"))
    assert column in line and "results.parquet" in line
    from linsig.results import load_results

    with pytest.raises(LinsigInputError, match=column):
        load_results(run)


# --- 7. --lr with a search --------------------------------------------------------------------

def test_lr_with_a_search_is_refused(tables, tmp_path, no_training):
    line = one_error_line(invoke(*run_args(tables, "--out", tmp_path / "o", "--tuning", "fast", "--lr", "0.5")))
    assert "--lr" in line and "--tuning off" in line
    with pytest.raises(InvalidSetting) as err:
        Settings(models=("mlp3",), tuning="fast", lr=0.5)
    assert err.value.field == "lr"
    with pytest.raises(InvalidSetting):
        Settings(models=("mlp3",), recipe="paper", tuning="auto", weight_decay=0.1)
    Settings(models=("mlp3",), tuning="off", lr=0.5)  # no search: lr is used
    Settings(models=("mlp3",), tuning="fast", weight_decay=0.5)  # the strong search does not choose it


# --- 8. values beyond float32 --------------------------------------------------------------------

def test_values_beyond_float32_are_named_as_such(tables, tmp_path):
    from linsig.data.io import read_dataset

    expr, meta = tables
    df = pd.read_csv(expr, index_col=0)
    df.iloc[2, 3] = 1e300
    df.to_csv(expr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LinsigInputError) as err:
            read_dataset(expr, meta)
    message = str(err.value)
    assert "float32" in message and "infinite" not in message and "s02" in message and "g3" in message


# --- 9/10. runaway settings are bounded ------------------------------------------------------------

def test_huge_permutations_are_refused_at_once(tables, tmp_path, no_training):
    start = time.perf_counter()
    line = one_error_line(invoke(*run_args(tables, "--out", tmp_path / "o", "--signal", "none,removed",
                                           "--permutations", "1000000000")))
    assert "--permutations" in line
    text = EXPERIMENT.replace('device = "cpu"', 'device = "cpu"\nsignals = ["none", "removed"]\npermutations = 1000000000')
    line = one_error_line(invoke("experiment", "run", small_experiment(tmp_path, text), "--dry-run"))
    assert "settings.permutations" in line
    assert time.perf_counter() - start < 20


def test_huge_thread_counts_are_refused(tables, tmp_path, no_training):
    line = one_error_line(invoke(*run_args(tables, "--out", tmp_path / "o", "--threads", "100000")))
    assert "--threads" in line
    with pytest.raises(InvalidSetting):
        Settings(threads=100000)


def test_bounds_table_covers_every_numeric_option():
    from linsig.validation import BOUNDS

    for name in ("seeds", "fractions", "n_folds", "max_epochs", "batch_size", "patience", "threads", "lr",
                 "weight_decay", "permutations", "rope", "jobs", "lock_timeout"):
        assert name in BOUNDS


# --- 11. text from a run folder is sanitised -------------------------------------------------------

def test_status_never_prints_terminal_controls(tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    key = "a" * 64
    (out / "experiment.json").write_text(json.dumps(
        {"experiment": "e\x1b]0;title\x07", "units": [{"key": key, "unit": "u\x1b[2J"}]}))
    (out / "units").mkdir()
    evil = "boom \x1b]52;c;ZXZpbA==\x07 \x1bP1$r\x1b\\ \x9b31m red \u202e"
    (out / "units" / f"{key}.json").write_text(json.dumps({"status": "failed", "error": evil}))
    res = invoke("experiment", "status", out)
    assert res.exit_code == 0, res.output
    assert "boom" in res.output
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in res.output


def test_error_lines_never_print_terminal_controls(tmp_path):
    bad = tmp_path / "x\x1b]0;t\x07.csv"
    res = invoke("run", "--data", bad, "--metadata", bad, "--label", "l", "--out", tmp_path / "o")
    line = one_error_line(res)
    assert "\x1b" not in line and "\x07" not in line


# --- 12. distributed runs ------------------------------------------------------------------------

def test_jobs_with_a_scheduler_is_refused(tmp_path):
    res = invoke("experiment", "run", small_experiment(tmp_path), "--out", tmp_path / "o",
                 "--scheduler", "tcp://127.0.0.1:9", "--jobs", "2")
    line = one_error_line(res)
    assert "--jobs" in line and "--scheduler" in line
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_names_the_option_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("linsig.executors.CONNECT_TIMEOUT", "1s")
    for address in ("tcp://127.0.0.1:9", "not an address:::"):
        res = invoke("experiment", "run", small_experiment(tmp_path), "--out", tmp_path / "o",
                     "--scheduler", address, "--quiet")
        assert "--scheduler" in one_error_line(res)
        assert not (tmp_path / "o").exists()


class _IdleExecutor:
    """No workers: submitted futures never finish until ``release``."""

    name = "idle"
    capacity = 1

    def __init__(self):
        import concurrent.futures as cf

        self.futures = []
        self.cf = cf

    def submit(self, unit):
        from linsig.experiment.units import compute_unit

        future = self.cf.Future()
        future.unit = unit
        self.futures.append(future)
        self.compute = compute_unit
        return future

    def idle_reason(self):
        return "no workers" if not all(f.done() for f in self.futures) else None

    def close(self, cancel=False):
        pass


def test_driver_says_why_nothing_progresses(tmp_path):
    exp = load_experiment(small_experiment(tmp_path, EXPERIMENT.replace("seeds = [0, 1]", "seeds = [0]")))
    executor = _IdleExecutor()
    messages = []

    def worker():
        while not messages:
            time.sleep(0.05)
        for _ in range(2):  # the units now get a worker
            while not [f for f in executor.futures if not f.done()]:
                time.sleep(0.05)
            f = next(f for f in executor.futures if not f.done())
            f.set_result(executor.compute(f.unit))

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    report = run_experiment(exp, tmp_path / "o", executor, progress=False, poll=0.05, notify=messages.append,
                            idle_notice=0.2)
    thread.join(5)
    assert report.computed == 2
    assert any("no workers" in m for m in messages)


def test_dask_executor_says_when_there_are_no_workers():
    from distributed import LocalCluster

    from linsig.executors import DaskExecutor

    cluster = LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None,
                           scheduler_kwargs=LOCAL_SCHEDULER)
    try:
        executor = DaskExecutor(cluster.scheduler_address)
        assert "no workers" in executor.idle_reason() and cluster.scheduler_address in executor.idle_reason()
        executor.close()
    finally:
        cluster.close(timeout=5)


@pytest.fixture
def local_scheduler():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                           dashboard_address=None, scheduler_kwargs=LOCAL_SCHEDULER)
    yield cluster
    try:
        cluster.close(timeout=2)
    except Exception:  # the test closed its scheduler already
        pass


_RELEASE = threading.Event()


def _slow_second_unit(unit, threads=None, compute_unit=compute_unit):  # the real one, bound before patching
    if unit.seed == 1:
        _RELEASE.wait(60)  # in flight when the scheduler goes
    return compute_unit(unit, threads)


def test_losing_the_scheduler_keeps_the_finished_units(tmp_path, local_scheduler, monkeypatch):
    from linsig import executors
    from linsig.executors import DaskExecutor
    from linsig.experiment import units

    monkeypatch.setattr(units, "compute_unit", _slow_second_unit)  # what a unit runs as an executor's job
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "2s")
    exp = load_experiment(small_experiment(tmp_path))
    out = tmp_path / "o"
    executor = DaskExecutor(local_scheduler.scheduler_address)

    def kill_scheduler():
        deadline = time.time() + 60
        while time.time() < deadline and len(list((out / "units").glob("*.parquet"))) < 2:
            time.sleep(0.1)
        time.sleep(0.5)
        local_scheduler.sync(local_scheduler.scheduler.close)

    threading.Thread(target=kill_scheduler, daemon=True).start()
    start = time.perf_counter()
    try:
        with pytest.raises(executors.ExecutorLost) as err:
            run_experiment(exp, out, executor, progress=False, poll=0.1)
    finally:
        _RELEASE.set()
    assert time.perf_counter() - start < 30
    assert "scheduler" in str(err.value) and "again" in str(err.value)
    done = pd.read_parquet(out / "results.parquet")
    assert set(done["seed"]) == {0} and len(done) == 2  # the two units that finished
    store = UnitStore(out)
    metas = [store.read_meta(p.stem) for p in (out / "units").glob("*.json")]
    assert not [m for m in metas if m and m.get("status") == "failed"]  # lost ≠ failed
    assert not list((out / "units").glob("*.lock"))


def test_dask_local_quiet_prints_no_cluster_logs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    res = subprocess.run([sys.executable, "-c", "from linsig.cli import main; main()", "experiment", "run",
                          str(small_experiment(tmp_path, EXPERIMENT.replace("seeds = [0, 1]", "seeds = [0]"))),
                          "--dask-local", "1", "--quiet", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "distributed" not in res.stderr and "dashboard" not in res.stderr, res.stderr


# --- 13. relative data paths of a preset --------------------------------------------------------

def test_preset_relative_paths_resolve_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "io").mkdir()
    (tmp_path / "io" / "dense.h5ad").write_bytes(b"x")
    exp = load_experiment("gtex-binary", {"data.gtex": "io/dense.h5ad"})
    assert exp.datasets[0].source["path"] == str(tmp_path / "io" / "dense.h5ad")
    monkeypatch.setenv("GTEX_H5AD", "io/dense.h5ad")
    exp = load_experiment("gtex-binary")
    assert exp.datasets[0].source["path"] == str(tmp_path / "io" / "dense.h5ad")


# --- 14. summary.json / experiment.json of the wrong shape ------------------------------------

@pytest.mark.parametrize("text", ['[1, 2]', '{"tasks": "x", "config": 3}', '{"linsig_ver', '"just text"'])
def test_bad_summary_is_ignored_with_a_warning(tmp_path, text, caplog):
    from linsig.results import load_summary

    run = synthetic_run(tmp_path / "R")
    (run / "summary.json").write_text(text)
    res = invoke("report", run, "-j", "1")
    assert res.exit_code == 0, res.output
    with caplog.at_level("WARNING"):
        assert load_summary(run) is None
    assert "summary.json" in caplog.text


@pytest.mark.parametrize("text", ['[]', '{"units": 5}', '{"units": [3]}', '{"units": [{"unit": "x"}]}'])
def test_bad_experiment_json_is_a_clear_error(tmp_path, text):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_text(text)
    assert "experiment.json" in one_error_line(invoke("experiment", "status", out))


# --- 15. .h5ad without X; all-zero X ------------------------------------------------------------

def test_h5ad_without_x_names_the_file_and_the_layers(tmp_path):
    from linsig.runner import prepare_dataset

    adata = ad.AnnData(obs=pd.DataFrame({"label": ["A", "B"] * 10}, index=[f"s{i}" for i in range(20)]),
                       var=pd.DataFrame(index=[f"g{i}" for i in range(5)]))
    adata.layers["counts"] = np.ones((20, 5), dtype=np.float32)
    path = tmp_path / "layers.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(LinsigInputError) as err:
        prepare_dataset(path)
    assert "layers.h5ad" in str(err.value) and "counts" in str(err.value)


def test_all_zero_expression_is_refused(tmp_path):
    from linsig.runner import prepare_dataset

    adata = ad.AnnData(X=np.zeros((20, 5), dtype=np.float32),
                       obs=pd.DataFrame({"label": ["A", "B"] * 10}, index=[f"s{i}" for i in range(20)]))
    path = tmp_path / "zero.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(LinsigInputError, match="zero.h5ad.*(constant|zero)"):
        prepare_dataset(path)


# --- 16. third-party warnings, delimiters, simulate ---------------------------------------------

def test_one_sample_class_is_said_in_linsig_words(tables, tmp_path):
    expr, meta = tables
    df = pd.read_csv(meta, index_col=0)
    df.iloc[0, 0] = "C"
    df.to_csv(meta)
    res = invoke(*run_args(tables, "--out", tmp_path / "o"))
    assert res.exit_code == 0, res.output
    assert "least populated" not in res.output and "Warning:" not in res.output, res.output
    assert any(line.startswith("warning:") and "'C'" in line for line in res.output.splitlines()), res.output


def test_duplicate_names_in_h5ad_raise_without_raw_warnings(tmp_path):
    from linsig.data.io import read_dataset

    with warnings.catch_warnings():  # anndata warns while the test writes the file: that is not linsig
        warnings.simplefilter("ignore")
        adata = ad.AnnData(X=np.ones((4, 2), dtype=np.float32), obs=pd.DataFrame(index=["a", "a", "b", "c"]))
        adata.write_h5ad(tmp_path / "dup.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LinsigInputError, match="duplicated sample"):
            read_dataset(tmp_path / "dup.h5ad")


@pytest.mark.parametrize("sep,word", [(";", "';'-separated"), ("\t", "tab-separated")])
def test_wrong_delimiter_gets_a_hint(tables, tmp_path, sep, word):
    from linsig.data.io import read_table

    expr, _ = tables
    path = tmp_path / "semi.csv"
    pd.read_csv(expr, index_col=0).to_csv(path, sep=sep)
    with pytest.raises(LinsigInputError) as err:
        read_table(path)
    assert word in str(err.value)


def test_simulate_refuses_a_one_class_set_and_a_non_h5ad_name(tmp_path):
    line = one_error_line(invoke("simulate", "mixed", tmp_path / "m.h5ad", "--samples", "40", "--features", "5",
                                 "--balance", "0.01"))
    assert "--balance" in line
    assert not (tmp_path / "m.h5ad").exists()
    line = one_error_line(invoke("simulate", "mixed", tmp_path / "m.csv", "--samples", "40", "--features", "5"))
    assert ".h5ad" in line
    assert not (tmp_path / "m.csv").exists()


# --- 17. Ctrl-C, write errors, empty ids, example names, demo options ----------------------------

def test_ctrl_c_exits_130_and_says_how_to_resume(tables, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("linsig.cli.run.evaluate", interrupted)
    res = invoke(*run_args(tables, "--out", tmp_path / "o"))
    assert res.exit_code == 130, res.output
    assert "Aborted!" not in res.output and "interrupted" in res.output.lower()
    monkeypatch.setattr("linsig.experiment.driver.run_experiment", interrupted)
    res = invoke("experiment", "run", small_experiment(tmp_path), "--out", tmp_path / "e", "--quiet")
    assert res.exit_code == 130, res.output
    assert "resume" in res.output and "experiment run" in res.output


def test_report_out_a_folder_is_a_clear_error(tmp_path):
    run = synthetic_run(tmp_path / "R")
    (tmp_path / "dir.html").mkdir()
    line = one_error_line(invoke("report", run, "-j", "1", "--out", tmp_path / "dir.html"))
    assert ".partial" not in line and "[Errno" not in line and "dir.html" in line


def test_unwritable_run_folder_names_the_file_not_a_temporary(tmp_path, monkeypatch):
    import tempfile

    run = synthetic_run(tmp_path / "R")

    def readonly(*args, dir=None, prefix="", suffix="", **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir or "", prefix + "abc" + suffix))

    from linsig.report import write_report

    monkeypatch.setattr(tempfile, "mkstemp", readonly)
    with pytest.raises(LinsigInputError) as err:
        write_report(run, jobs=1)
    assert ".partial" not in str(err.value) and "[Errno" not in str(err.value)
    assert "Permission denied" in str(err.value)


def test_empty_sample_id_is_named_by_its_row(tables):
    from linsig.data.io import read_dataset

    expr, meta = tables
    text = meta.read_text().splitlines()
    text[3] = "," + text[3].split(",", 1)[1]
    meta.write_text("\n".join(text) + "\n")
    with pytest.raises(LinsigInputError) as err:
        read_dataset(expr, meta)
    assert "empty sample id" in str(err.value) and "nan" not in str(err.value)


def test_example_errors_name_the_example(tmp_path):
    line = one_error_line(invoke("run", "--data", "example:ALL", "--label", "nosuch", "--out", tmp_path / "o"))
    assert line.startswith("Error: example:ALL")


def test_demo_options_are_blamed_not_the_preset(tmp_path):
    line = one_error_line(invoke("demo", "--seeds", "-3", "--out", tmp_path / "d"))
    assert "--seeds" in line and "demo.toml" not in line
