"""linsig experiment: files, units, resumable store, executors, pretraining (tiny simulated data)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from linsig.cli import main
from linsig.errors import LinsigInputError
from linsig.experiment.driver import run_experiment
from linsig.executors import DaskExecutor, InProcessExecutor
from linsig.experiment.spec import load_experiment, preset_names
from linsig.experiment.status import experiment_status
from linsig.experiment.store import LOG, UnitStore
from linsig.experiment.units import expand, trainings

TINY = """
name = "tiny"

[data.mixed]
simulate = "mixed"
samples = 80
features = 20
groups = 10
seed = 0

[data.noise]
simulate = "noise"
samples = 80
features = 20
groups = 10
seed = 1

[settings]
recipe = "paper"
models = ["logreg", "mlp3"]
seeds = [0, 1]
folds = 3
fractions = [0.5, 1.0]
signals = ["none", "removed"]
tuning = "off"
epochs = 2
batch_size = 16
device = "cpu"
"""
N_UNITS = 2 * 2 * 2 * 3  # datasets × models × seeds × folds
TIMING = ["fit_seconds", "tune_seconds"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("exp") / "tiny.toml", TINY)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory) -> pd.DataFrame:
    """An uninterrupted in-process run: the rows every other way of running must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    report = run_experiment(load_experiment(tiny), out, InProcessExecutor(threads=1), progress=False)
    assert (report.total, report.computed, report.failed) == (N_UNITS, N_UNITS, 0)
    return pd.read_parquet(out / "results.parquet")


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["dataset", "task", "model", "seed", "fold", "split", "signal", "pretraining", "train_fraction"]
    return df.drop(columns=TIMING).sort_values(keys).reset_index(drop=True)


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(comparable(a), comparable(b), check_exact=True)


def cli(*args, **popen):
    cmd = [str(Path(sys.executable).parent / "linsig"), *args]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def unit_files(out: Path) -> list[Path]:
    return sorted((out / "units").glob("*.parquet")) if (out / "units").exists() else []


def log_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / LOG).read_text().splitlines()]


# --- experiment files ------------------------------------------------------------------------

def test_dry_run_counts_units_and_trainings(tiny, tmp_path):
    res = CliRunner().invoke(main, ["experiment", "run", str(tiny), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"units: {N_UNITS}\n" in res.output
    # units × fractions × signals, no tuning; the paper recipe's logreg units add the converged
    # reference: per signal, one warm-started penalty path over 3 inner folds and one fit per fraction
    reference = 2 * (2 + 3)
    assert f"trainings: {N_UNITS * 2 * 2 + N_UNITS // 2 * reference} " in res.output
    # fast tuning: 3 × 2 grid × 3 inner folds = 18 fits per unit; CLI grid options override the file
    res = CliRunner().invoke(main, ["experiment", "run", str(tiny), "--dry-run", "--tuning", "fast", "--seeds", "0"])
    assert f"units: {N_UNITS // 2}\n" in res.output
    assert f"trainings: {N_UNITS // 2 * (4 + 18) + N_UNITS // 4 * reference} " in res.output
    # --set on a dotted key, and split lists expand the grid
    res = CliRunner().invoke(main, ["experiment", "run", str(tiny), "--dry-run", "--set", "settings.split=[study, sample]",
                                    "--set", "settings.tuning=paper"])
    assert f"units: {N_UNITS * 2}\n" in res.output
    assert f"trainings: {N_UNITS * 2 * (4 + 100) + N_UNITS * reference} " in res.output
    # the strong recipe searches once per signal mode: logreg one penalty path, mlp3 two learning rates
    res = CliRunner().invoke(main, ["experiment", "run", str(tiny), "--dry-run", "--recipe", "strong",
                                    "--tuning", "fast", "--seeds", "0"])
    assert "tuning logreg: 1 candidate runs × 3 inner folds × 2 search(es)" in res.output
    assert "tuning mlp3: 3 candidate runs × 3 inner folds × 2 search(es)" in res.output  # 2 rates + centred
    assert f"trainings: {N_UNITS // 4 * (4 + 6) + N_UNITS // 4 * (4 + 18)} " in res.output
    # pretraining: one unit per (model, repetition); two copies per fraction and one pretraining fit per signal
    pre = write(tmp_path / "pre.toml", TINY + "\n[pretraining]\n")
    exp = load_experiment(pre)
    assert len(expand(exp)) == 2 * 2 * 2 and trainings(expand(exp)[0]) == 2 * 4 + 2 + reference
    assert not list(tmp_path.glob("*/units"))  # nothing ran


def test_presets_are_listed_and_valid():
    names = preset_names()
    for expected in ("gtex-binary", "gtex-multiclass", "recount3-binary", "recount3-multiclass", "sex-prediction",
                     "fig4-simulated", "s1-full-removal", "s2-split", "s3-small-training", "s4-pretraining"):
        assert expected in names
    res = CliRunner().invoke(main, ["experiment", "list"])
    assert res.exit_code == 0 and all(n in res.output for n in names)
    for name in names:
        exp = load_experiment(name, check_files=False)
        assert expand(exp)
    fig4 = load_experiment("fig4-simulated")  # simulated: runnable without any file
    assert len(expand(fig4)) == 3 * 4 * 3 * 5 and {s.signals for s in fig4.settings} == {("none", "removed")}
    assert load_experiment("s4-pretraining", check_files=False).pretraining["proportions"] == pytest.approx([0.4, 0.4, 0.2])
    assert load_experiment("s3-small-training", check_files=False).settings[0].fractions[0] == 0.01
    assert {s.split for s in load_experiment("s2-split", check_files=False).settings} == {"study", "sample"}


def test_data_path_from_variable_or_set(tmp_path, monkeypatch):
    h5ad = tmp_path / "gtex.h5ad"
    h5ad.write_bytes(b"x")
    with pytest.raises(LinsigInputError, match=r"gtex-binary\.toml: data\.gtex\.path: variable \$\{GTEX_H5AD\}"):
        load_experiment("gtex-binary")
    exp = load_experiment("gtex-binary", {"data.gtex": str(h5ad)})
    assert exp.datasets[0].source["path"] == str(h5ad.resolve())
    assert exp.datasets[0].source["fingerprint"]["path"]["size"] == 1
    monkeypatch.setenv("GTEX_H5AD", str(h5ad))
    assert load_experiment("gtex-binary").datasets[0].source["path"] == str(h5ad.resolve())


@pytest.mark.parametrize("bad, message", [
    ("[settings]\nepoch = 3\n", r"settings\.epoch: unknown key"),
    ("[settings]\nmodels = ['logreg', 'resnet']\n", r"settings\.models: unknown model 'resnet'"),
    ("[settings]\nsignals = ['none', 'gone']\n", r"settings\.signals: unknown signal mode 'gone'"),
    ("[settings]\nfolds = 'five'\n", r"settings\.folds: expected an integer"),
    ("[settings]\nfractions = [0.5, 2]\n", r"settings\.fractions: training fractions"),
    ("[settings]\ndevice = 'tpu'\n", r"settings\.device: must be one of"),
    ("[data.x]\npath = 'missing.h5ad'\ntasks = [{label = 'y'}]\n", r"data\.x\.path: .*missing\.h5ad: no such file"),
    ("[data.x]\nsimulate = 'mixed'\ntasks = [{preset = 'nope'}]\n", r"data\.x\.tasks\[0\]\.preset: unknown task preset"),
    ("[data.x]\nsimulate = 'mixed'\ntasks = [{group = 'g'}]\n", r"data\.x\.tasks\[0\]: a task needs a label"),
    ("[data.x]\nsimulate = 'wavy'\n", r"data\.x\.simulate: unknown simulation"),
    ("[data.x]\nsimulate = 'mixed'\nsamples = 'many'\n", r"data\.x\.samples: expected an integer"),
    ("[data.x]\nsimulate = 'mixed'\npath = 'a.h5ad'\n", r"data\.x: give exactly one of"),
    ("[data.x]\npath = 'bad.toml'\n", r"data\.x\.tasks: no tasks"),
    ("colour = 'red'\n", r"colour: unknown key"),
    ("[data\n", r"not a valid TOML file"),
])
def test_validation_errors_name_file_and_key(tmp_path, bad, message):
    doc = bad if bad.startswith("[data") or bad.startswith("colour") else "[data.sim]\nsimulate = 'mixed'\n" + bad
    path = write(tmp_path / "bad.toml", doc)
    with pytest.raises(LinsigInputError, match=rf"bad\.toml: .*{message}|bad\.toml: {message}"):
        load_experiment(path)


def test_yaml_file_and_cli_error_exit(tmp_path):
    good = write(tmp_path / "exp.yaml", "data:\n  sim:\n    simulate: linear\n    samples: 40\n    features: 10\n"
                                       "settings:\n  models: logreg\n  seeds: [0]\n  folds: 2\n  tuning: 'off'\n")
    exp = load_experiment(good)
    assert len(expand(exp)) == 2 and exp.datasets[0].tasks == ({"label": "label", "group": "group"},)
    bad = write(tmp_path / "bad.yaml", "data:\n  sim:\n    simulate: linear\nsettings:\n  batch: 3\n")
    res = CliRunner().invoke(main, ["experiment", "run", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "bad.yaml: settings.batch: unknown key" in res.output
    res = CliRunner().invoke(main, ["experiment", "run", "no-such-preset", "--dry-run"])
    assert res.exit_code == 1 and "no experiment file or preset 'no-such-preset'" in res.output
    res = CliRunner().invoke(main, ["experiment", "run", str(tmp_path / "missing.toml"), "--dry-run"])
    assert res.exit_code == 1 and "missing.toml: no such experiment file" in res.output


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fig4-simulated").mkdir()  # e.g. the preset's own --out folder, from an earlier run
    res = CliRunner().invoke(main, ["experiment", "run", "fig4-simulated", "--dry-run"])
    assert res.exit_code == 0 and "units: 180" in res.output


def test_unit_keys_cover_the_full_specification(tiny, tmp_path):
    base = expand(load_experiment(tiny))
    keys = [u.key for u in base]
    assert len(set(keys)) == len(keys) and all(len(k) == 64 for k in keys)
    assert keys == [u.key for u in expand(load_experiment(tiny))]  # deterministic
    # adding a seed keeps the old units' keys (they are reused); changing the recipe changes them all
    more = {u.key for u in expand(load_experiment(tiny, {"settings.seeds": [0, 1, 2]}))}
    assert set(keys) < more
    assert not set(keys) & {u.key for u in expand(load_experiment(tiny, {"settings.epochs": 3}))}
    # a data file's content is part of the key
    h5ad = tmp_path / "d.h5ad"
    h5ad.write_bytes(b"1")
    doc = f"[data.d]\npath = '{h5ad}'\ntasks = [{{label = 'y'}}]\n[settings]\nmodels = ['logreg']\nseeds = [0]\n"
    exp_file = write(tmp_path / "file.toml", doc)
    before = expand(load_experiment(exp_file))[0].key
    h5ad.write_bytes(b"22")
    assert expand(load_experiment(exp_file))[0].key != before


# --- running, resuming, safety ---------------------------------------------------------------

def test_killed_run_resumes_to_identical_rows(tiny, reference, tmp_path):
    out = tmp_path / "run"
    proc = cli("experiment", "run", str(tiny), "--out", str(out), "--quiet")
    deadline = time.time() + 90
    while len(unit_files(out)) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(unit_files(out))
    assert 3 <= finished < N_UNITS, f"the run was not interrupted mid-way ({finished} units)"
    assert not (out / "results.parquet").exists()
    # the killed runner may have held a claim: its pid is dead, so the claim is stale and taken over
    res = CliRunner().invoke(main, ["experiment", "status", str(out)])
    assert f"{finished} done" in res.output and "0 failed" in res.output
    proc = cli("experiment", "run", str(tiny), "--out", str(out), "--quiet")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"{N_UNITS - finished} computed now, {finished} before" in stdout
    assert_same_rows(pd.read_parquet(out / "results.parquet"), reference)
    done = [line["key"] for line in log_lines(out) if line["status"] == "done"]
    assert len(done) == len(set(done))  # no unit computed twice
    # (a kill between a unit's result file and its log line may drop that one line)
    assert len(done) >= N_UNITS - 1
    assert not list((out / "units").glob("*.lock"))


def test_corrupt_or_partial_unit_files_are_recomputed(tiny, reference, tmp_path):
    out = tmp_path / "run"
    exp = load_experiment(tiny)
    run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    store = UnitStore(out)
    files = unit_files(out)
    files[0].write_bytes(files[0].read_bytes()[:-100])  # truncated
    files[1].write_bytes(b"PAR1 not really")  # garbage
    files[2].write_bytes(files[3].read_bytes())  # a valid parquet of another unit: wrong embedded key
    (out / "units" / f".{files[4].name}.abc.partial").write_bytes(b"half")  # a write cut short
    for f in files[:3]:
        assert not store.is_done(f.stem)
    assert store.is_done(files[4].stem)
    status = experiment_status(out)
    assert (status.done, status.pending) == (N_UNITS - 3, 3)
    report = run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    assert (report.computed, report.done_before) == (3, N_UNITS - 3)
    assert_same_rows(pd.read_parquet(out / "results.parquet"), reference)
    assert_same_rows(store.read_rows(files[2].stem), reference[reference["unit"] == files[2].stem])


def test_two_runners_never_compute_the_same_unit(tiny, reference, tmp_path):
    out = tmp_path / "shared"
    # one runner in-process, one with a pool of two spawned worker processes
    procs = [cli("experiment", "run", str(tiny), "--out", str(out), "--quiet", *jobs) for jobs in ([], ["--jobs", "2"])]
    outputs = [p.communicate(timeout=150) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    lines = log_lines(out)
    keys = [line["key"] for line in lines]
    assert len(keys) == len(set(keys)) == N_UNITS  # every unit computed exactly once
    assert len({line["runner"] for line in lines}) == 2  # and both runners did some
    for meta in (json.loads(p.read_text()) for p in (out / "units").glob("*.json")):
        assert meta["status"] == "done" and meta["runner"]["token"] in {line["runner"] for line in lines}
    assert_same_rows(pd.read_parquet(out / "results.parquet"), reference)


def test_stale_and_live_claims(tiny, tmp_path):
    exp = load_experiment(tiny, {"settings.seeds": [0]})
    out = tmp_path / "claims"
    units = expand(exp)
    store = UnitStore(out, lock_timeout=60)
    store.prepare()
    store.adopt(exp, units)
    live, dead, old = units[0].key, units[1].key, units[2].key
    other = UnitStore(out, lock_timeout=60)
    assert other.claim(live) and not store.claim(live)  # held by a live runner (this pid)
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    store.path(dead, "lock").write_text(json.dumps({"pid": int(dead_pid), "host": os.uname().nodename, "token": "x"}))
    store.path(old, "lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "token": "y"}))
    os.utime(store.path(old, "lock"), (time.time() - 3600, time.time() - 3600))
    status = experiment_status(out, lock_timeout=60)
    assert (status.running, status.pending) == (1, len(units) - 1)
    assert store.lock_state(dead) == "stale" and store.lock_state(old) == "stale"
    assert store.claim(dead) and store.claim(old)  # taken over
    store.release(dead)
    store.release(old)
    other.release(live)
    assert not list((out / "units").glob("*.lock")) and not list((out / "units").glob("*.takeover"))


def test_dead_runners_claim_on_a_finished_unit_is_cleared_on_resume(tiny, tmp_path):
    # a runner killed after writing a unit's result but before releasing its claim leaves a lock
    # on a finished unit; the next run counts the unit as done and clears the dead claim
    exp = load_experiment(tiny, {"settings.seeds": [0]})
    out = tmp_path / "run"
    run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    key = expand(exp)[0].key
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    lock = UnitStore(out).path(key, "lock")
    lock.write_text(json.dumps({"pid": int(dead_pid), "host": os.uname().nodename, "token": "x"}))
    live = UnitStore(out).path(expand(exp)[1].key, "lock")
    live.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "token": "y"}))
    report = run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    assert report.computed == 0 and report.done_before == len(expand(exp))
    assert not lock.exists()
    assert live.exists()  # a live runner's claim is never touched


def test_takeover_guard_of_a_dead_runner_does_not_block(tiny, tmp_path):
    exp = load_experiment(tiny, {"settings.seeds": [0]})
    store = UnitStore(tmp_path / "g", lock_timeout=60)
    store.prepare()
    key = expand(exp)[0].key
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True).stdout)
    dead = json.dumps({"pid": dead_pid, "host": os.uname().nodename, "token": "x"})
    store.path(key, "lock").write_text(dead)
    store.path(key, "takeover").write_text(dead)  # killed in the middle of taking the claim over
    assert not store.claim(key)  # the dead guard is cleared on this attempt ...
    assert store.claim(key)  # ... and the next one takes the stale claim over
    store.release(key)
    assert not list(store.units.iterdir())  # no lock, guard or private temporary file left


def test_failing_unit_is_recorded_and_others_go_on(tmp_path):
    # 4 groups cannot make 5 group-wise folds: every unit of "few" fails; "ok" runs
    doc = TINY.replace("[data.noise]\nsimulate = \"noise\"\nsamples = 80\nfeatures = 20\ngroups = 10",
                       "[data.few]\nsimulate = \"noise\"\nsamples = 80\nfeatures = 20\ngroups = 4")
    doc = doc.replace("folds = 3", "folds = 5").replace("seeds = [0, 1]", "seeds = [0]")
    path = write(tmp_path / "fail.toml", doc)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["experiment", "run", str(path), "--out", str(out), "--quiet"])
    assert res.exit_code == 1
    status = experiment_status(out)
    assert (status.total, status.done, status.failed) == (20, 10, 10)
    assert "only 4 groups" in status.failures[0]["error"]
    meta = json.loads((out / "units" / f"{status.failures[0]['key']}.json").read_text())
    assert meta["status"] == "failed" and "Traceback" in meta["traceback"]
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["dataset"]) == {"sim-mixed"} and len(df) == 10 * 4
    res = CliRunner().invoke(main, ["experiment", "status", str(out), "--combine"])
    assert "20 units: 10 done, 10 failed, 0 running, 0 pending" in res.output
    assert "only 4 groups" in res.output and "(40 rows)" in res.output


# --- executors -------------------------------------------------------------------------------

def test_dask_local_cluster_matches_local_executor(tiny, reference, tmp_path):
    pytest.importorskip("distributed")
    executor = DaskExecutor(local_workers=2, threads=1, tag_gpu=False)
    assert executor.capacity == 2
    report = run_experiment(load_experiment(tiny, {"settings.seeds": [1]}), tmp_path / "dask", executor, progress=False)
    assert (report.computed, report.failed) == (N_UNITS // 2, 0)
    df = pd.read_parquet(tmp_path / "dask" / "results.parquet")
    assert_same_rows(df, reference[reference["seed"] == 1])
    hosts = {json.loads(p.read_text())["pid"] for p in (tmp_path / "dask" / "units").glob("*.json")}
    assert os.getpid() not in hosts  # computed in the worker processes


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two workers as separate processes on 127.0.0.1; one advertises GPU=1."""
    pytest.importorskip("distributed")
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    info = tmp_path / "scheduler.json"
    common = dict(env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], **common)]
    try:
        deadline = time.time() + 60
        while not info.exists() and time.time() < deadline:
            time.sleep(0.1)
        worker = [dask, "worker", "--scheduler-file", str(info), "--host", "127.0.0.1", "--nthreads", "1",
                  "--no-dashboard", "--no-nanny"]
        procs.append(subprocess.Popen(worker + ["--resources", "GPU=1"], **common))
        procs.append(subprocess.Popen(worker, **common))
        with Client(scheduler_file=str(info), timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
            workers = client.scheduler_info()["workers"]
            pids = client.run(os.getpid)
            gpu_pids = {pids[a] for a, w in workers.items() if w.get("resources", {}).get("GPU")}
            yield json.loads(info.read_text())["address"], set(pids.values()), gpu_pids
    finally:  # no nannies, so killing these three processes leaves nothing behind
        for proc in reversed(procs):
            proc.kill()
            proc.wait()


def test_dask_scheduler_and_gpu_placement(tiny, reference, dask_cluster, tmp_path):
    address, all_pids, gpu_pids = dask_cluster
    assert len(all_pids) == 2 and len(gpu_pids) == 1
    res = CliRunner().invoke(main, ["experiment", "run", str(tiny), "--out", str(tmp_path / "cpu"), "--quiet",
                                    "--scheduler", address])
    assert res.exit_code == 0, res.output
    assert_same_rows(pd.read_parquet(tmp_path / "cpu" / "results.parquet"), reference)
    # cuda units are submitted with resources={"GPU": 1}: all of them land on the GPU worker
    # (which has no GPU here, so they fail there, recording where they ran)
    exp = load_experiment(tiny, {"settings.device": "cuda", "settings.seeds": [0], "settings.models": ["logreg"]})
    report = run_experiment(exp, tmp_path / "gpu", DaskExecutor(scheduler=address), progress=False)
    metas = [json.loads(p.read_text()) for p in (tmp_path / "gpu" / "units").glob("*.json")]
    assert len(metas) == report.total == 6
    assert {m["pid"] for m in metas} == gpu_pids


def test_cuda_units_are_tagged_with_gpu_resources(tiny):
    class Recorder:
        def __init__(self):
            self.calls = []

        def submit(self, fn, *args, **kwargs):
            self.calls.append(kwargs)

    executor = DaskExecutor.__new__(DaskExecutor)
    executor.tag_gpu, executor.threads, executor._executor = True, 1, Recorder()
    cpu, cuda = (expand(load_experiment(tiny, {"settings.device": d}))[0] for d in ("cpu", "cuda"))
    executor.submit(cpu)
    executor.submit(cuda)
    assert executor._executor.calls == [{}, {"resources": {"GPU": 1}}]


# --- pretraining (S4) ------------------------------------------------------------------------

def test_three_way_split_is_group_wise_and_deterministic():
    from linsig.splits import three_way_split

    groups = np.repeat(np.arange(30), np.random.default_rng(0).integers(2, 9, 30))
    pre, train, val = three_way_split(groups, (0.4, 0.4, 0.2), seed=3)
    assert len(pre) + len(train) + len(val) == len(groups)
    sets = [set(groups[i]) for i in (pre, train, val)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert abs(len(pre) / len(groups) - 0.4) < 0.1 and abs(len(val) / len(groups) - 0.2) < 0.1
    again = three_way_split(groups, (0.4, 0.4, 0.2), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((pre, train, val), again))
    assert not np.array_equal(three_way_split(groups, (0.4, 0.4, 0.2), seed=4)[0], pre)
    with pytest.raises(LinsigInputError, match="at least 3"):
        three_way_split(np.array([0, 0, 1, 1]))


def test_pretraining_copies_start_from_identical_weights(monkeypatch):
    import linsig.models.estimators as estimators
    from linsig.data.simulate import simulate
    from linsig.evaluation import Settings
    from linsig.experiment.pretraining import run_pretraining_unit
    from linsig.tasks import make_task

    built = []
    original = estimators.build_network

    def recording(*args, **kwargs):
        net = original(*args, **kwargs)
        built.append({k: v.clone() for k, v in net.state_dict().items()})
        return net

    monkeypatch.setattr(estimators, "build_network", recording)
    task = make_task(simulate("mixed", 90, 24, n_groups=15, seed=2), "label", "group")
    settings = Settings(models=("mlp3",), seeds=(1,), fractions=(1.0,), signals=("none",), tuning="off",
                        max_epochs=2, device="cpu", recipe="paper")
    rows = run_pretraining_unit(task, "mlp3", 1, settings)
    assert len(built) == 2  # the scratch copy's network, then the pretrained copy's
    assert built[0].keys() == built[1].keys()
    assert all(torch.equal(built[0][k], built[1][k]) for k in built[0])
    assert [r["pretraining"] for r in rows] == ["none", "pretrained"]
    scratch, pretrained = rows
    assert scratch["n_pretrain"] == 0 and pretrained["n_pretrain"] > 0
    for key in ("n_train", "n_val", "train_fraction", "signal", "lr", "weight_decay", "seed", "fold", "classes"):
        assert scratch[key] == pretrained[key]
    assert 0 <= pretrained["balanced_accuracy"] <= 1 and pretrained["status"] == "ok"


def test_pretraining_set_with_one_class_skips_the_pretrained_copy_only():
    import anndata as ad

    from linsig.evaluation import Settings
    from linsig.experiment.pretraining import run_pretraining_unit
    from linsig.splits import three_way_split
    from linsig.tasks import make_task

    # 20 single-class studies; the pretraining studies are all of class "a"
    n_groups, per_group, seed = 20, 6, 5
    group_of_sample = np.repeat(np.arange(n_groups), per_group)
    pre, train, val = three_way_split(group_of_sample, (0.4, 0.4, 0.2), seed)
    label_of_group = np.array(["a", "b"] * (n_groups // 2), dtype=object)
    label_of_group[np.unique(group_of_sample[pre])] = "a"
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"label": label_of_group[group_of_sample], "study": [f"s{g:02d}" for g in group_of_sample]},
                       index=[f"x{i}" for i in range(n_groups * per_group)])
    assert obs["label"].iloc[train].nunique() == 2 and obs["label"].iloc[val].nunique() == 2
    task = make_task(ad.AnnData(rng.random((len(obs), 8)).astype(np.float32), obs=obs), "label", "study")
    settings = Settings(models=("logreg",), seeds=(seed,), fractions=(1.0,), signals=("none", "removed"),
                        tuning="off", max_epochs=2, device="cpu")
    rows = pd.DataFrame(run_pretraining_unit(task, "logreg", seed, settings))
    scratch, pretrained = rows[rows.pretraining == "none"], rows[rows.pretraining == "pretrained"]
    assert (scratch["status"] == "ok").all() and scratch["balanced_accuracy"].notna().all()
    assert (pretrained["status"] == "skipped").all() and pretrained["balanced_accuracy"].isna().all()
    assert set(pretrained["skip_reason"]) == {"pretraining set holds one class"}


def test_pretraining_experiment_rows(tmp_path):
    doc = TINY.replace("seeds = [0, 1]", "seeds = [0, 1]\n").replace("models = [\"logreg\", \"mlp3\"]",
                                                                      "models = [\"logreg\"]")
    path = write(tmp_path / "pre.toml", doc.replace("[data.noise]", "[pretraining]\n[data.noise]"))
    out = tmp_path / "pre"
    report = run_experiment(load_experiment(path), out, InProcessExecutor(threads=1), progress=False)
    assert report.failed == 0 and report.total == 2 * 2
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["pretraining"]) == {"none", "pretrained"}
    counts = df.groupby(["dataset", "seed", "pretraining"]).size()
    assert (counts == 2 * 2).all()  # fractions × signals per copy
    assert set(df["fold"]) == {0}
