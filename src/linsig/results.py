"""The results table and the run directory: one row's columns, one writer, one reader.

* :data:`RESULT_COLUMNS` / :func:`result_row` / :func:`results_frame` — the columns of
  ``results.parquet`` (documented in ``docs/conventions.md``), built in one place;
* :func:`write_run` — ``results.parquet`` plus ``summary.json`` as one set;
* :func:`load_results`, :func:`usable_rows`, :func:`permutation_rows`, :func:`load_summary` —
  the one reader every consumer (figures, statistics, report, experiments) uses.

The two are written as one set (:func:`linsig.outputs.write_set`): both staged first, then the
results published before the summary, which records the SHA-256 of the results it describes;
a reader that finds a summary of other results (a re-run that failed in between) ignores it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
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

# --------------------------------------------------------------------------------------------
# One row
# --------------------------------------------------------------------------------------------

RESULT_COLUMNS = (
    "dataset", "task", "model", "seed", "fold", "split", "signal", "pretraining", "train_fraction",
    "n_train", "n_val", "n_train_groups", "n_val_groups", "n_classes", "classes",
    "balanced_accuracy", "roc_auc", "accuracy", "chance_balanced_accuracy", "majority_accuracy",
    "recipe", "lr", "weight_decay", "params", "tuning", "tuning_score", "epochs_trained", "best_epoch", "diverged",
    "converged", "reference_balanced_accuracy", "fit_seconds", "tune_seconds", "device", "status", "skip_reason",
    "precision",
)
# What a row holds before its model is trained (and keeps when the row is skipped).
ROW_DEFAULTS = {
    "pretraining": "none", "balanced_accuracy": math.nan, "roc_auc": math.nan, "accuracy": math.nan, "lr": math.nan,
    "weight_decay": math.nan, "params": "", "tuning_score": math.nan, "epochs_trained": 0, "best_epoch": 0,
    "diverged": False, "converged": True, "reference_balanced_accuracy": math.nan, "fit_seconds": 0.0,
    "tune_seconds": 0.0, "status": "ok", "skip_reason": "",
    # the networks' arithmetic (fp32 / bf16); empty for models that are not trained by torch
    "precision": "",
}
INTEGER_COLUMNS = ("seed", "fold", "n_train", "n_val", "n_train_groups", "n_val_groups", "n_classes",
                   "epochs_trained", "best_epoch")


def result_row(**fields) -> dict:
    """One row of the results table: every column of :data:`RESULT_COLUMNS`, in order.

    Columns without a default (the row's identity: dataset, task, model, …) must be given;
    a name that is not a column is refused (a typo would otherwise become a new column).
    """
    unknown = [k for k in fields if k not in RESULT_COLUMNS]
    if unknown:
        raise KeyError(f"not result columns: {', '.join(unknown)}")
    missing = [c for c in RESULT_COLUMNS if c not in fields and c not in ROW_DEFAULTS]
    if missing:
        raise KeyError(f"result row lacks {', '.join(missing)}")
    return {c: fields[c] if c in fields else ROW_DEFAULTS[c] for c in RESULT_COLUMNS}


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows → the results table with its columns in the documented order and types."""
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    df = df[[c for c in RESULT_COLUMNS if c in df.columns] + extra]
    for col in INTEGER_COLUMNS:
        if col in df:
            df[col] = df[col].astype("int64")
    return df


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

#: columns every results table must have to be plotted or tested
REQUIRED_COLUMNS = (
    "dataset", "task", "model", "seed", "fold", "signal", "train_fraction", "n_train",
    "balanced_accuracy",
)
# optional columns of older or hand-made tables, and what a missing value means
READ_DEFAULTS = {"split": "study", "pretraining": "none", "status": "ok", "skip_reason": "", "precision": ""}


#: Columns holding a proportion in [0, 1] (NaN only where noted in :func:`validate_results`).
_PROPORTIONS = ("balanced_accuracy", "roc_auc", "accuracy", "chance_balanced_accuracy", "majority_accuracy",
                "reference_balanced_accuracy")
#: Columns holding a count or index (whole numbers ≥ 0).
_COUNTS = ("seed", "fold", "n_train", "n_val", "n_train_groups", "n_val_groups", "n_classes", "permutation",
           "n_pretrain", "epochs_trained", "best_epoch")
#: Columns holding text.
_TEXT = ("dataset", "task", "model", "split", "signal", "pretraining", "status", "classes", "recipe", "tuning",
         "skip_reason", "unit", "device", "params", "precision")


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


def _fill_defaults(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for column, value in READ_DEFAULTS.items():
        if column not in df.columns:
            df[column] = value
        else:
            df[column] = df[column].fillna(value)
    if "n_classes" not in df.columns:
        if "classes" in df.columns:
            df["n_classes"] = df["classes"].fillna("").map(lambda s: len(s.split("|")) if s else 2)
        else:
            df["n_classes"] = 2
    if "chance_balanced_accuracy" not in df.columns:
        df["chance_balanced_accuracy"] = 1.0 / df["n_classes"].astype(float)
    else:
        missing = df["chance_balanced_accuracy"].isna()
        df.loc[missing, "chance_balanced_accuracy"] = 1.0 / df.loc[missing, "n_classes"].astype(float)
    for column in ("dataset", "task", "model", "signal", "split", "pretraining", "status"):
        df[column] = df[column].astype(str)
    if "permutation" in df.columns:  # rows of real labels have none (or 0) in tables that mix both
        df["permutation"] = df["permutation"].fillna(0).astype("int64")
    return df


def results_path(run: str | os.PathLike) -> Path:
    """The results table of a run directory (or the table's own path)."""
    path = Path(run)
    return path / RESULTS_FILE if path.is_dir() else path


def load_results(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """The results table of a run directory, a ``results.parquet`` file or a DataFrame.

    Fills optional columns (``split``, ``pretraining``, ``status``, ``n_classes``,
    ``chance_balanced_accuracy``) with their defaults. Raises :class:`LinsigInputError` naming
    the file when it is missing, unreadable, empty or lacks a required column.
    """
    if isinstance(source, pd.DataFrame):
        name = "results table"
        df = source
    else:
        path = results_path(source)
        name = str(path)
        if not path.exists():
            raise LinsigInputError(
                f"{path}: results table not found (a run directory written by `linsig run` "
                f"holds {RESULTS_FILE})")
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any reader failure is bad input here
            raise LinsigInputError(f"{path}: cannot read the results table: {exc}") from exc
    if len(df) == 0:
        raise LinsigInputError(f"{name}: the results table is empty (no rows)")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise LinsigInputError(f"{name}: results table lacks column(s) {', '.join(missing)}")
    return _fill_defaults(validate_results(df, name))  # ranges and types, naming the column


def _scored(df: pd.DataFrame) -> pd.Series:
    return (df["status"] == "ok") & np.isfinite(df["balanced_accuracy"].astype(float))


def _permuted(df: pd.DataFrame) -> pd.Series:
    if "permutation" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["permutation"].fillna(0).astype("int64") > 0


def usable_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``status == "ok"``, a finite balanced accuracy and the real labels (what every
    figure and table uses; rows of a label permutation only serve the permutation test)."""
    return df[_scored(df) & ~_permuted(df)]


def permutation_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Scored rows of label permutations (``permutation > 0``, from ``--permutations N``)."""
    return df[_scored(df) & _permuted(df)]


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


def load_summary(run_dir: str | os.PathLike | None) -> dict | None:
    """``summary.json`` of a run directory (or of the results file's folder); ``None`` when missing,
    unusable or describing other results.

    The summary only describes the results (tasks, options): the results table is the run. So a
    summary that cannot be used — truncated, not JSON, of the wrong shape — is treated as a
    missing one, with a warning naming the file, the same way everywhere (report, plots,
    confounding warnings, the output guard), instead of one reader failing where another shrugs.
    """
    if run_dir is None:
        return None
    folder = Path(run_dir)
    if folder.is_file():
        folder = folder.parent
    path = folder / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: not used, it cannot be read (%s)", path, exc)
        return None
    problem = summary_problem(summary)
    if problem:
        log.warning("%s: not used, it is not a run summary (%s)", path, problem)
        return None
    if not describes(summary, folder / RESULTS_FILE):
        # a re-run that failed between the two files: its summary must not label these results
        log.warning("%s describes other results than %s; not using it", path, folder / RESULTS_FILE)
        return None
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


def export_csv(run_dir: str | Path, out_dir: str | Path | None = None, verdict=None) -> list[Path]:
    """The run's tables as tidy CSV for R and spreadsheets: ``results.csv`` (one row per result,
    the columns of ``results.parquet``) and, when the verdict is known, ``verdict.csv``. Written
    into ``out_dir`` (default: the run directory); returns the paths."""
    source = results_path(run_dir)
    run_dir = source.parent
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    load_results(source)  # a missing, empty or broken table: the error names the file
    written = []
    tables = [("results.csv", pd.read_parquet(source))]  # as written: no filled-in defaults
    if verdict is not None:
        tables.append(("verdict.csv", verdict.table))
    elif (run_dir / "verdict.parquet").exists():
        tables.append(("verdict.csv", pd.read_parquet(run_dir / "verdict.parquet")))
    for file, table in tables:
        if not len(table.columns):
            raise LinsigInputError(f"{source}: nothing to export")
        path = out_dir / file
        # NA as R reads it by default; plain decimal points; no index column
        atomic_write_bytes(path, table.to_csv(index=False, na_rep="NA").encode("utf-8"))
        written.append(path)
    return written
