"""Issue 12: what a hostile-but-realistic user broke, one test (or more) per numbered item.

Small data throughout: 40 samples × 20 genes, labels A/B, 8 studies, and the quickest grid
(``--epochs 2 --tuning off --seeds 0 --folds 2 --fractions 1.0``). Nothing here waits on a
clock: processes are observed until a condition holds, with a generous deadline.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from http_server import LocalServer, local_server  # noqa: F401  (fixture)
from clitools import invoke, one_error_line, write_tables
from linsig.data.download import fetch
from linsig.data.io import read_dataset
from linsig.errors import DownloadError, LinsigInputError
from linsig.evaluation import Settings
from linsig.experiment.driver import run_experiment
from linsig.executors import InProcessExecutor
from linsig.experiment.spec import load_experiment
from linsig.experiment.store import UnitStore
from linsig.experiment.units import expand
from linsig.plots import synthetic_results
from linsig.report import write_report
from linsig.results import write_run
from linsig.tasks import make_task

QUICK = ["--epochs", "2", "--tuning", "off", "--seeds", "0", "--folds", "2", "--fractions", "1.0",
         "--models", "logreg", "--quiet"]
FAST = dict(backoff=0.01, timeout=2.0, progress=False)

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
epochs = 2
device = "cpu"
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def tables(tmp_path):
    """expr.csv (samples × genes, ids 000…039) and meta.csv (label A/B, 8 studies)."""
    return write_tables(tmp_path, [f"{i:03d}" for i in range(40)], "s")


def run_args(tables, *extra):
    expr, meta = tables
    return ["run", "--data", expr, "--metadata", meta, "--group", "study", *QUICK, *extra]


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if `linsig run` gets as far as training."""
    def evaluate(*args, **kwargs):
        raise AssertionError("training started before the parameters were validated")

    monkeypatch.setattr("linsig.cli.run.evaluate", evaluate)


def small_experiment(tmp_path, text=EXPERIMENT, name="small.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def with_line(table: str, line: str) -> str:
    """EXPERIMENT with ``line`` (``key = value``) set in ``[table]``, replacing the key there if present."""
    key = line.split("=")[0].strip()
    head, _, rest = EXPERIMENT.partition(f"[{table}]\n")
    body, sep, tail = rest.partition("\n\n")
    body = "\n".join([x for x in body.splitlines() if x.split("=")[0].strip() != key] + [line])
    return f"{head}[{table}]\n{body}{sep}{tail}"


# --- 1. figures made from other results are redrawn ------------------------------------------

def _levels(dataset):
    return {(dataset, "label", 2): {"none": {"logreg": 0.8, "mlp3": 0.85}, "removed": {"logreg": 0.5, "mlp3": 0.6}}}


def test_report_redraws_figures_made_from_other_results(tmp_path):
    run = tmp_path / "run"
    write_run(run, synthetic_results(_levels("first"), seeds=2, folds=2, fractions=3), [], {})
    write_report(run)
    first = json.loads((run / "figures" / "index.json").read_text())
    assert first["results_sha256"] == sha256(run / "results.parquet")
    # a re-run into the same folder (other data): the PNGs of the old index all still exist
    write_run(run, synthetic_results(_levels("second"), seeds=2, folds=2, fractions=3), [], {})
    page = write_report(run).read_text()
    index = json.loads((run / "figures" / "index.json").read_text())
    assert index["results_sha256"] == sha256(run / "results.parquet") != first["results_sha256"]
    names = [f["name"] for f in index["figures"]]
    assert names and all("second" in n for n in names)
    assert "first" not in page
    # the report says which results it was made from
    assert f'<meta name="linsig-results-sha256" content="{sha256(run / "results.parquet")}">' in page


# --- 2. labels and ids are strings ------------------------------------------------------------

def test_labels_and_ids_are_read_as_strings(tables, tmp_path):
    expr, meta_path = tables
    meta = pd.read_csv(meta_path, dtype=str).set_index("sample")
    meta["code"] = ["1", "01", "2", "02"] * 10
    meta["label"] = ["NA", "B"] * 20
    meta.to_csv(meta_path)
    adata = read_dataset(expr, metadata=meta_path)
    assert list(adata.obs_names[:3]) == ["000", "001", "002"]  # not 0, 1, 2
    assert sorted(make_task(adata, "code", "study").classes) == ["01", "02", "1", "2"]
    task = make_task(adata, "label", "study")
    assert sorted(task.classes) == ["B", "NA"] and task.n_samples == 40  # "NA" is a label, not missing
    # an .h5ad with a metadata table: the same reading
    h5 = tmp_path / "d.h5ad"
    ad.AnnData(pd.read_csv(expr, dtype={"sample": str}).set_index("sample").to_numpy(np.float32),
               obs=pd.DataFrame(index=[f"{i:03d}" for i in range(40)])).write_h5ad(h5)
    adata = read_dataset(h5, metadata=meta_path)
    assert sorted(make_task(adata, "code", "study").classes) == ["01", "02", "1", "2"]
    assert sorted(make_task(adata, "label", "study").classes) == ["B", "NA"]


def test_h5ad_obs_labels_are_strings(tmp_path):
    obs = pd.DataFrame({"code": pd.Categorical(["1", "01", "2", "02"] * 10), "label": ["NA", "B"] * 20},
                       index=[f"{i:03d}" for i in range(40)])
    path = tmp_path / "d.h5ad"
    ad.AnnData(np.random.default_rng(0).normal(size=(40, 20)).astype(np.float32), obs=obs).write_h5ad(path)
    adata = read_dataset(path)
    assert sorted(make_task(adata, "code").classes) == ["01", "02", "1", "2"]
    assert sorted(make_task(adata, "label").classes) == ["B", "NA"]


# --- 3. a runner with other settings cannot replace the experiment of a folder ---------------

def test_runner_with_other_settings_cannot_replace_the_experiment(tmp_path):
    path = small_experiment(tmp_path)
    out = tmp_path / "out"
    full = load_experiment(path)
    report = run_experiment(full, out, InProcessExecutor(threads=1), progress=False)
    assert report.done == 4
    manifest, results = (out / "experiment.json").read_bytes(), (out / "results.parquet").read_bytes()
    with pytest.raises(LinsigInputError, match=r"settings\.seeds"):
        run_experiment(load_experiment(path, {"settings.seeds": [0]}), out, InProcessExecutor(threads=1),
                       progress=False)
    assert (out / "experiment.json").read_bytes() == manifest
    assert (out / "results.parquet").read_bytes() == results
    res = invoke("experiment", "run", path, "--out", out, "--seeds", "0", "--quiet")
    assert "settings.seeds" in one_error_line(res) and str(out) in res.output
    # the same definition resumes (nothing left to do)
    again = run_experiment(full, out, InProcessExecutor(threads=1), progress=False)
    assert (again.done_before, again.computed) == (4, 0)


def test_first_runner_to_define_the_folder_wins(tmp_path):
    # Both runners start on an empty folder: whichever writes experiment.json first defines it,
    # exclusively; the other is refused instead of overwriting it.
    path = small_experiment(tmp_path)
    out = tmp_path / "out"
    full, subset = load_experiment(path), load_experiment(path, {"settings.seeds": [0]})
    store = UnitStore(out)
    store.prepare()
    store.adopt(subset, expand(subset))
    with pytest.raises(LinsigInputError, match="other settings"):
        UnitStore(out).adopt(full, expand(full))
    UnitStore(out).adopt(subset, expand(subset))  # the same definition again: fine


# --- 4. a download without a validator restarts from zero ------------------------------------

def test_resume_without_validator_restarts_from_zero(local_server, tmp_path):
    old, new = b"A" * 100_000, b"B" * 100_000
    local_server.add_file("f.bin", old)
    local_server.no_validators("f.bin")
    local_server.cut("f.bin", after=60_000)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError):
        fetch(local_server.url_for("f.bin"), dest, **{**FAST, "retries": 0})
    local_server.add_file("f.bin", new)  # changed on the server, same size, nothing to tell
    fetch(local_server.url_for("f.bin"), dest, **FAST)
    assert dest.read_bytes() == new
    assert "Range" not in local_server.requests_for("f.bin")[-1].headers


# --- 5. an HTML page is never cached as a data file -------------------------------------------

LOGIN_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>log in</body></html>\n"


def test_html_page_is_not_published_and_a_cached_one_is_replaced(local_server, tmp_path):
    local_server.add_file("data/table.tsv.gz", LOGIN_PAGE)
    dest = tmp_path / "table.tsv.gz"
    with pytest.raises(DownloadError, match="HTML page"):
        fetch(local_server.url_for("data/table.tsv.gz"), dest, **FAST)
    assert list(tmp_path.iterdir()) == []
    # a page an earlier version cached: fails the format check, is deleted and fetched again
    good = gzip.compress(b"a\tb\n1\t2\n")
    local_server.add_file("data/table.tsv.gz", good)
    dest.write_bytes(LOGIN_PAGE)
    n = len(local_server.requests)
    fetch(local_server.url_for("data/table.tsv.gz"), dest, **FAST)
    assert dest.read_bytes() == good and len(local_server.requests) == n + 1


def test_gtex_build_never_reuses_a_cached_login_page(local_server, tmp_path):
    from test_gtex import FILES, _publish

    from linsig.data.gtex import LAYOUTS

    base = _publish(local_server, "p", samples=LOGIN_PAGE)
    cache = tmp_path / "c"
    args = ["data", "gtex", tmp_path / "g.h5ad", "--base-url", base, "--cache-dir", cache, "--no-progress",
            "--retries", "0", "--n-top-genes", "10"]
    res = invoke(*args)
    one_error_line(res)
    assert "HTML page" in res.output
    assert not (cache / "gtex_v8" / FILES["samples"].name).exists()
    # an older linsig cached the page: the next build deletes it and asks the server again
    (cache / "gtex_v8").mkdir(parents=True, exist_ok=True)
    (cache / "gtex_v8" / FILES["samples"].name).write_bytes(LOGIN_PAGE)
    _publish(local_server, "p")
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert local_server.requests_for(f"p/{LAYOUTS['current']['samples']}")[-1].status == 200
    assert (cache / "gtex_v8" / FILES["samples"].name).read_bytes() == FILES["samples"].read_bytes()


# --- 6. the report embeds only files inside the figures folder -------------------------------

@pytest.mark.parametrize("where", ["relative", "absolute", "symlink"])
def test_report_never_embeds_files_outside_the_figures_folder(tmp_path, where):
    run = tmp_path / "run"
    write_run(run, synthetic_results(_levels("sim"), seeds=2, folds=2, fractions=3), [], {})
    write_report(run)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG top secret bytes")
    index_path = run / "figures" / "index.json"
    index = json.loads(index_path.read_text())  # keeps the right results hash: only paths are forged
    name = {"relative": "../../secret.png", "absolute": str(secret), "symlink": "link.png"}[where]
    if where == "symlink":
        (run / "figures" / "link.png").symlink_to(secret)
    for entry in index["figures"]:
        entry["files"]["png"] = name
    index_path.write_text(json.dumps(index))
    page = write_report(run).read_text()
    assert base64.b64encode(secret.read_bytes()).decode() not in page
    # the real figures, redrawn, and the first screen's overview (drawn in the page, not from the folder)
    assert page.count("data:image/png;base64,") == len(index["figures"]) + 1


# --- 7. write failures: before training, and never a half-replaced set -----------------------

def test_unwritable_output_is_an_error_before_any_work(tables, tmp_path, no_training):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = one_error_line(invoke(*run_args(tables, "--label", "label", "--out", blocker / "sub")))
    assert "a_file" in line
    res = invoke("experiment", "run", small_experiment(tmp_path), "--out", blocker / "sub", "--quiet")
    assert "a_file" in one_error_line(res)


def test_output_set_is_replaced_results_first(tmp_path):
    run = tmp_path / "run"
    old = synthetic_results(_levels("old"), seeds=2, folds=2, fractions=3)
    write_run(run, old, [], {"run": "old"})
    summary = (run / "summary.json").read_bytes()
    assert json.loads(summary)["results_sha256"] == sha256(run / "results.parquet")
    # the results table cannot be replaced (here: a folder in its place, as good as a full disk)
    (run / "results.parquet").unlink()
    (run / "results.parquet").mkdir()
    with pytest.raises(OSError):
        write_run(run, synthetic_results(_levels("new"), seeds=2, folds=2, fractions=3), [], {"run": "new"})
    assert (run / "summary.json").read_bytes() == summary  # the old summary, not the new one
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_summary_of_other_results_is_not_used(tmp_path):
    from linsig.results import load_summary

    run = tmp_path / "run"
    write_run(run, synthetic_results(_levels("a"), seeds=2, folds=2, fractions=3), [], {"run": "a"})
    assert load_summary(run)["config"] == {"run": "a"}
    synthetic_results(_levels("b"), seeds=2, folds=2, fractions=3).to_parquet(run / "results.parquet")
    assert load_summary(run) is None  # it describes other results


# --- 8. the report never overwrites its inputs -----------------------------------------------

@pytest.mark.parametrize("target", ["results.parquet", "summary.json", "figures/index.json", "page.txt"])
def test_report_refuses_to_overwrite_its_inputs(tmp_path, target):
    run = tmp_path / "run"
    write_run(run, synthetic_results(_levels("sim"), seeds=2, folds=2, fractions=3), [], {})
    write_report(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    one_error_line(invoke("report", run, "--out", run / target))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


# --- 9. outputs have normal permissions -------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_respect_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        run = tmp_path / "run"
        write_run(run, synthetic_results(_levels("sim"), seeds=2, folds=2, fractions=3), [], {})
        write_report(run)
        exp_out = tmp_path / "exp"
        run_experiment(load_experiment(small_experiment(tmp_path)), exp_out, InProcessExecutor(threads=1),
                       progress=False)
    finally:
        os.umask(previous)
    files = [run / "results.parquet", run / "summary.json", run / "report.html", run / "figures" / "index.json",
             exp_out / "results.parquet", exp_out / "experiment.json", *(exp_out / "units").iterdir()]
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {str(p): oct(mode) for p in files}


# --- 10. an unreadable lock goes stale after the lock timeout ---------------------------------

def test_unreadable_lock_goes_stale_after_the_lock_timeout(tmp_path):
    exp = load_experiment(small_experiment(tmp_path))
    units = expand(exp)
    out = tmp_path / "out"
    store = UnitStore(out, lock_timeout=60)
    store.prepare()
    fresh, old = store.path(units[0].key, "lock"), store.path(units[1].key, "lock")
    fresh.write_text('{"pid": 12')  # cut mid-write, seconds ago: still held
    old.write_text('{"pid": 12')  # cut mid-write an hour ago: stale
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert store.lock_state(units[0].key) == "held"
    assert store.lock_state(units[1].key) == "stale"
    fresh.unlink()
    report = run_experiment(exp, out, InProcessExecutor(threads=1), progress=False, lock_timeout=60)
    assert (report.computed, report.failed) == (len(units), 0)
    assert not list((out / "units").glob("*.lock"))


# --- 11. pool workers exit with their runner --------------------------------------------------

WORKER_PARENT = """
import sys
from linsig.executors import ProcessPoolExecutor
pool = ProcessPoolExecutor(2)
futures = [pool._pool.submit(abs, -i) for i in range(8)]
[f.result() for f in futures]
print(" ".join(map(str, pool._pool._processes)), flush=True)
sys.stdin.read()  # wait to be killed
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_pool_workers_exit_when_the_runner_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", WORKER_PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in workers if _alive(p)]
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, "pool workers outlived their killed runner"


# --- 12. clear errors instead of tracebacks ---------------------------------------------------

def test_every_class_smaller_than_the_folds_is_a_clear_error(tables, no_training):
    expr, meta_path = tables
    meta = pd.read_csv(meta_path, dtype=str).set_index("sample")
    meta["tissue"] = [f"t{i // 2}" for i in range(40)]  # 20 classes × 2 samples
    meta["age"] = np.linspace(20, 80, 40).round(3).astype(str)  # a continuous column
    meta.to_csv(meta_path)
    args = ["run", "--data", expr, "--metadata", meta_path, *QUICK[:6], "--folds", "3", *QUICK[8:]]
    for label in ("tissue", "age"):
        for split in ("study", "sample"):
            line = one_error_line(invoke(*args, "--label", label, "--split", split, "--out", expr.parent / "o"))
            assert "fewer samples than the 3 folds" in line and label in line


@pytest.mark.parametrize("option, value, message", [
    ("--seeds", "-1", "seeds"), ("--seeds", "4294967296", "seeds"), ("--lr", "-1", "--lr"),
    ("--lr", "nan", "--lr"), ("--weight-decay", "-5", "--weight-decay"), ("--seeds", "0,0", "seeds"),
    ("--models", "logreg,logreg", "models"), ("--signal", "none,none", "signal"),
])
def test_bad_numbers_are_refused_before_any_work(tables, tmp_path, no_training, option, value, message):
    line = one_error_line(invoke(*run_args(tables, "--label", "label", f"{option}={value}", "--out", tmp_path / "o")))
    assert message in line
    assert not (tmp_path / "o").exists()
    # an experiment: refused before a unit is touched (the finished ones stay)
    path = small_experiment(tmp_path)
    out = tmp_path / "exp"
    run_experiment(load_experiment(path), out, InProcessExecutor(threads=1), progress=False)
    units = {p: p.read_bytes() for p in (out / "units").iterdir()}
    one_error_line(invoke("experiment", "run", path, "--out", out, f"{option}={value}", "--quiet"))
    assert {p: p.read_bytes() for p in (out / "units").iterdir()} == units


def test_truncated_gzip_table_is_a_clear_error(tables, tmp_path):
    expr, meta = tables
    data = gzip.compress(expr.read_bytes())
    cut = tmp_path / "expr.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    res = invoke("run", "--data", cut, "--metadata", meta, "--label", "label", *QUICK, "--out", tmp_path / "o")
    line = one_error_line(res)
    assert "expr.csv.gz" in line and "truncated" in line and "Aborted" not in res.output


def test_unexpected_errors_are_one_line_and_a_traceback_with_vv(tables, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr("linsig.cli.run.prepare_dataset", broken)
    args = run_args(tables, "--label", "label", "--out", tmp_path / "o")
    assert "boom" in one_error_line(invoke(*args))
    res = invoke("-vv", *args)
    assert res.exit_code != 0 and "Traceback" in res.output and "boom" in res.output


# --- 13. the minor ones -----------------------------------------------------------------------

def test_duplicated_gene_names_are_an_error(tables, tmp_path):
    expr, meta = tables
    text = expr.read_text().splitlines()
    text[0] = text[0].replace("g1,", "g0,", 1)
    expr.write_text("\n".join(text) + "\n")
    with pytest.raises(LinsigInputError, match=r"duplicated gene ids: g0"):
        read_dataset(expr, metadata=meta)
    path = tmp_path / "d.h5ad"
    a = ad.AnnData(np.zeros((4, 3), np.float32), obs=pd.DataFrame({"y": list("abab")}, index=list("pqrs")))
    a.var_names = ["g0", "g1", "g0"]
    a.write_h5ad(path)
    with pytest.raises(LinsigInputError, match=r"duplicated gene ids: g0"):
        read_dataset(path)


@pytest.mark.parametrize("kwargs, field", [
    ({"seeds": (0, 0)}, "seeds"), ({"models": ("logreg", "logreg")}, "models"),
    ({"signals": ("none", "none")}, "signals"), ({"fractions": (0.5, 0.5)}, "fractions"),
    ({"patience": 0}, "patience"), ({"lr": float("inf")}, "lr"), ({"weight_decay": float("nan")}, "weight_decay"),
    ({"seeds": (2**32,)}, "seeds"), ({"seeds": (True,)}, "seeds"),
])
def test_settings_are_validated_in_one_place(kwargs, field):
    with pytest.raises(LinsigInputError, match=field):
        Settings(**kwargs)


@pytest.mark.parametrize("line, key", [
    ("patience = 0", r"settings\.patience"), ("patience = -3", r"settings\.patience"),
    ("seeds = [0, 0]", r"settings\.seeds"), ("lr = -1.0", r"settings\.lr"),
])
def test_experiment_file_settings_are_validated(tmp_path, line, key):
    path = small_experiment(tmp_path, with_line("settings", line))
    with pytest.raises(LinsigInputError, match=rf"small\.toml: {key}"):
        load_experiment(path)


@pytest.mark.parametrize("line, key", [
    ("balance = 1.5", "balance"), ("samples = 1", "samples"), ("groups = 99", "groups"), ("features = 0", "features"),
    ("shift = nan", "shift"), ("seed = -1", "seed"),
])
def test_simulation_parameters_are_checked_when_the_file_is_read(tmp_path, line, key):
    path = small_experiment(tmp_path, with_line("data.sim", line))
    with pytest.raises(LinsigInputError, match=rf"data\.sim\.{key}"):
        load_experiment(path, check_files=False)


def test_orientation_tie_is_an_error(tmp_path):
    ids = [f"x{i}" for i in range(6)]
    expr = pd.DataFrame(np.arange(36.0).reshape(6, 6), index=pd.Index(ids, name="id"), columns=ids)
    expr.to_csv(tmp_path / "e.csv")
    pd.DataFrame({"label": list("ababab")}, index=pd.Index(ids, name="id")).to_csv(tmp_path / "m.csv")
    with pytest.raises(LinsigInputError, match="--orientation"):
        read_dataset(tmp_path / "e.csv", metadata=tmp_path / "m.csv")
    adata = read_dataset(tmp_path / "e.csv", metadata=tmp_path / "m.csv", orientation="genes-by-samples")
    assert adata.X[0, 1] == 6.0


def test_edited_unit_result_is_recomputed(tmp_path):
    exp = load_experiment(small_experiment(tmp_path))
    out = tmp_path / "out"
    run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    reference = pd.read_parquet(out / "results.parquet")
    path = sorted((out / "units").glob("*.parquet"))[0]
    table = pq.read_table(path)
    edited = table.set_column(table.schema.get_field_index("balanced_accuracy"), "balanced_accuracy",
                              pa_array([0.999] * table.num_rows))
    pq.write_table(edited.replace_schema_metadata(table.schema.metadata), path)  # key and row count kept
    store = UnitStore(out)
    assert not store.is_done(path.stem)
    report = run_experiment(exp, out, InProcessExecutor(threads=1), progress=False)
    assert report.computed == 1
    again = pd.read_parquet(out / "results.parquet")
    timing = ["fit_seconds", "tune_seconds"]
    pd.testing.assert_frame_equal(again.drop(columns=timing), reference.drop(columns=timing))


def pa_array(values):
    import pyarrow as pa

    return pa.array(values, type=pa.float64())
