"""Writing and reading a run directory: ``results.parquet`` plus ``summary.json``.

The two are written as one set (:func:`linsig.outputs.write_set`): both staged first, then the
results published before the summary, which records the SHA-256 of the results it describes;
a reader that finds a summary of other results (a re-run that failed in between) ignores it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from linsig import __version__
from linsig.errors import LinsigInputError
from linsig.outputs import atomic_write_bytes, file_sha256, write_set

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "summary.json"
RESULTS_HASH = "results_sha256"  # the key, in summary.json and the figure index, naming the results


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write_bytes(path, parquet_bytes(df))


def write_run(out_dir: str | Path, results: pd.DataFrame, tasks: list[dict], config: dict) -> Path:
    """Write ``results.parquet`` and ``summary.json`` into ``out_dir``; return the results path."""
    from linsig.run_guard import retire_derived

    out_dir = Path(out_dir)
    table = parquet_bytes(results)
    summary = {"linsig_version": __version__, RESULTS_HASH: hashlib.sha256(table).hexdigest(), "tasks": tasks,
               "config": config}
    write_set([(out_dir / RESULTS_FILE, table),
               (out_dir / SUMMARY_FILE, json.dumps(summary, indent=2, default=str).encode())])
    retire_derived(out_dir, summary[RESULTS_HASH])  # a report of the old results must not stay beside the new
    return out_dir / RESULTS_FILE


#: Columns holding a proportion in [0, 1] (NaN only where noted in :func:`validate_results`).
_PROPORTIONS = ("balanced_accuracy", "accuracy", "chance_balanced_accuracy", "majority_accuracy",
                "reference_balanced_accuracy")
#: Columns holding a count or index (whole numbers ≥ 0).
_COUNTS = ("seed", "fold", "n_train", "n_val", "n_train_groups", "n_val_groups", "n_classes", "permutation",
           "n_pretrain", "epochs_trained", "best_epoch")
#: Columns holding text.
_TEXT = ("dataset", "task", "model", "split", "signal", "pretraining", "status", "classes", "recipe", "tuning",
         "skip_reason", "unit", "device", "params")


def validate_results(df: pd.DataFrame, name: str = "results table") -> pd.DataFrame:
    """Refuse a results table whose values linsig cannot have written, naming the column and row.

    A results table is data from disk: a shared run folder may hold a tampered or damaged one
    (balanced accuracy 1.7, −3, 1e9, NaN on a trained row, text where numbers belong). Every
    reader calls this before computing a verdict, so such a table is an error that names what is
    wrong rather than a report built on it or a bare ``ValueError`` from deep inside the
    statistics. Missing optional columns are not checked here (readers fill defaults).
    """
    trained = (df["status"].astype(str) == "ok") if "status" in df.columns else pd.Series(True, index=df.index)

    def fail(column, row, problem):
        raise LinsigInputError(f"{name}: column {column!r}, row {row}: {problem}; this table was not written "
                               "by linsig as it is (edited or damaged): run again to rebuild it")

    def numbers(column):
        values = df[column]
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            # text (even text that reads as a number) or booleans: linsig writes numbers here
            bad = values.map(lambda v: not (v is None or isinstance(v, (int, float, np.number))
                                            and not isinstance(v, (bool, np.bool_))))
            if bad.any():
                row = bad.idxmax()
                fail(column, row, f"{values[row]!r} is {type(values[row]).__name__}, not a number")
        return values.astype(float)

    for column in _PROPORTIONS:
        if column not in df.columns:
            continue
        values = numbers(column)
        bad = values.notna() & ~((values >= 0) & (values <= 1))  # ±inf and 1e9 too
        if column == "balanced_accuracy":  # a trained row always has a score
            bad |= trained & values.isna()
        if bad.any():
            row = bad.idxmax()
            fail(column, row, f"{values[row]!r} is not a proportion in [0, 1]"
                 + (" on a trained row" if pd.isna(values[row]) else ""))
    for column in _COUNTS:
        if column not in df.columns:
            continue
        values = numbers(column)
        bad = values.notna() & ((values < 0) | (values != np.floor(values)) | ~np.isfinite(values))
        if bad.any():
            row = bad.idxmax()
            fail(column, row, f"{values[row]!r} is not a whole number of at least 0")
    if "train_fraction" in df.columns:
        values = numbers("train_fraction")
        bad = ~((values > 0) & (values <= 1))
        if bad.any():
            row = bad.idxmax()
            fail("train_fraction", row, f"{values[row]!r} is not a fraction in (0, 1]")
    for column in _TEXT:
        if column not in df.columns:
            continue
        if pd.api.types.infer_dtype(df[column], skipna=True) in ("string", "empty"):
            continue
        bad = df[column].map(lambda v: not (isinstance(v, str) or v is None or (isinstance(v, float) and np.isnan(v))))
        if bad.any():
            row = bad.idxmax()
            fail(column, row, f"{df[column][row]!r} is not text")
    return df


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """Read ``results.parquet`` from a run directory (or the file itself)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        raise LinsigInputError(f"{path}: no results table here; run `linsig run` or `linsig demo` first")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        raise LinsigInputError(f"{path}: not a readable results table ({exc})") from exc
    if df.empty:
        raise LinsigInputError(f"{path}: the results table is empty")
    return validate_results(df, str(path))


def summary_problem(summary) -> str | None:
    """What makes a parsed ``summary.json`` unusable (its shape), or ``None``."""
    if not isinstance(summary, dict):
        return f"a JSON {type(summary).__name__}, not an object"
    tasks = summary.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        return "'tasks' is not a list of objects"
    if not isinstance(summary.get("config", {}), (dict, type(None))):
        return "'config' is not an object"
    if not isinstance(summary.get(RESULTS_HASH, ""), (str, type(None))):
        return f"{RESULTS_HASH!r} is not text"
    return None


def read_summary(run_dir: str | Path) -> dict:
    """``summary.json`` of a run directory; ``{}`` when missing, unusable or describing other results.

    The summary only describes the results (tasks, options): the results table is the run. So a
    summary that cannot be used — truncated, not JSON, of the wrong shape — is treated as a
    missing one, with a warning naming the file, the same way everywhere (report, plots,
    confounding warnings), instead of one reader failing where another shrugs.
    """
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: not used, it cannot be read (%s)", path, exc)
        return {}
    problem = summary_problem(summary)
    if problem:
        log.warning("%s: not used, it is not a run summary (%s)", path, problem)
        return {}
    if not describes(summary, Path(run_dir) / RESULTS_FILE):
        # a re-run that failed between the two files: its summary must not label these results
        log.warning("%s describes other results than %s; not using it", path, Path(run_dir) / RESULTS_FILE)
        return {}
    return summary


def missing_units(summary: dict | None) -> tuple[int, int] | None:
    """``(missing, total)`` units of an experiment whose results lack some, from its summary; else ``None``.

    An experiment's summary records how many units it has and how many finished units the table
    was built from (``n_units``, ``n_units_done``): fewer means units failed, were deleted or
    have not run yet, and every verdict drawn from the table is drawn from part of the grid.
    """
    config = (summary or {}).get("config") or {}
    total, done = config.get("n_units"), config.get("n_units_done")
    if isinstance(total, int) and isinstance(done, int) and 0 <= done < total:
        return total - done, total
    return None


def incomplete_message(summary: dict | None, run_dir) -> str | None:
    """The one sentence that says a run folder's results lack units (terminal and report alike)."""
    gap = missing_units(summary)
    if gap is None:
        return None
    missing, total = gap
    return (f"incomplete run: {missing} of {total} units are missing from the results in {run_dir} (failed, deleted "
            f"or not run yet); the verdicts use the {total - missing} present. Run `linsig experiment run` with the "
            f"same file and --out again to compute them (`linsig experiment status` lists them)")


def describes(summary: dict, results_path: str | Path) -> bool:
    """Whether ``summary`` was written with the results now at ``results_path``.

    Summaries from before results were hashed carry no hash and are taken at their word.
    """
    recorded = summary.get(RESULTS_HASH) if isinstance(summary, dict) else None
    if recorded is None:
        return True
    try:
        return recorded == file_sha256(results_path)
    except OSError:
        return False
