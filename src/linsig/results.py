"""Writing and reading a run directory: ``results.parquet`` plus ``summary.json``.

Both are written atomically (temporary file + ``os.replace``) so that a reader never sees a
half-written table.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from linsig import __version__
from linsig.errors import LinsigInputError

RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "summary.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


def write_run(out_dir: str | Path, results: pd.DataFrame, tasks: list[dict], config: dict) -> Path:
    """Write ``results.parquet`` and ``summary.json`` into ``out_dir``; return the results path."""
    out_dir = Path(out_dir)
    summary = {"linsig_version": __version__, "tasks": tasks, "config": config}
    atomic_write_bytes(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2, default=str).encode())
    write_parquet(results, out_dir / RESULTS_FILE)
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
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())
