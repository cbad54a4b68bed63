"""Writing and reading a run directory: ``results.parquet`` plus ``summary.json``.

The two are written as one set (:func:`linsig.outputs.write_set`): both staged first, then the
results published before the summary, which records the SHA-256 of the results it describes;
a reader that finds a summary of other results (a re-run that failed in between) ignores it.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd

from linsig import __version__
from linsig.errors import LinsigInputError
from linsig.outputs import atomic_write_bytes, file_sha256, write_set

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
    return df


def read_summary(run_dir: str | Path) -> dict:
    """``summary.json`` of a run directory; ``{}`` when missing or describing other results."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return {}
    summary = json.loads(path.read_text())
    return summary if describes(summary, Path(run_dir) / RESULTS_FILE) else {}


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
