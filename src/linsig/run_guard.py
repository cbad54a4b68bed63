"""What a run may do to its output folder: the one place output paths are checked.

Every command that writes a run folder asks :func:`guard_outputs` before any work, with the
files it reads; two rules hold for all of them:

* **An input is never an output.** A file the run reads (``--data``, ``--metadata``, the data
  files of an experiment) may not be, or lie inside, anything the run writes into the folder
  (:data:`OUTPUTS`) or anything derived from it there (:data:`DERIVED`). Not even ``--force``
  overrides this: the input would be gone.
* **A folder holds one kind of run.** A folder written by ``linsig experiment run`` (or ``demo``:
  ``experiment.json``, ``units/``) is not silently replaced by ``linsig run`` and a ``linsig run``
  folder (``results.parquet`` without ``experiment.json``) not by an experiment; nor is a
  ``linsig run`` folder by a ``linsig run`` with other settings or data. Each is refused with the
  reason and ``--force`` as the way to replace it. Re-running the same ``linsig run`` into its own
  folder is a re-run, as in ``make`` or Snakemake, and allowed.

When new results are published, :func:`retire_derived` removes the report and verdict made
from the old ones, so that a folder never shows a verdict beside results it was not computed
from (``linsig report`` makes them again).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from linsig.errors import LinsigInputError

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "summary.json"
MANIFEST = "experiment.json"

#: What each kind of run writes into its folder.
OUTPUTS = {
    "run": (RESULTS_FILE, SUMMARY_FILE),
    "experiment": (MANIFEST, "units", "units.log", RESULTS_FILE, SUMMARY_FILE),
}
#: What ``linsig report`` / ``linsig plot`` derive from the results in the same folder.
DERIVED = ("report.html", "verdict.parquet", "figures")
_COMMAND = {"run": "linsig run", "experiment": "linsig experiment run (or linsig demo)"}


def folder_kind(out_dir: str | os.PathLike) -> str | None:
    """``experiment``, ``run`` (a results table without an experiment definition) or ``None``."""
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        return "experiment"
    if (out / RESULTS_FILE).exists():
        return "run"
    return None


def _recorded_config(out: Path) -> dict | None:
    try:
        summary = json.loads((out / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    config = summary.get("config") if isinstance(summary, dict) else None
    return config if isinstance(config, dict) else None


def _same_run(recorded: dict | None, config: dict) -> bool:
    """Whether a ``linsig run`` folder's summary records these very options (data, label, grid)."""
    if recorded is None or "data" not in recorded:
        return False
    normal = json.loads(json.dumps(config, default=str))
    # "preprocessing" is known only after the data are read (and follows from the rest); keys a
    # newer linsig records and an older summary lacks are no evidence either way
    shared = (set(recorded) & set(normal)) - {"preprocessing"}
    return all(recorded[k] == normal[k] for k in shared)


def check_inputs(out_dir: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse when an input file is (or lies inside) one of the outputs of ``kind`` in ``out_dir``."""
    out = Path(out_dir)
    targets = [(out / name).resolve() for name in OUTPUTS[kind] + DERIVED]
    for item in inputs:
        if item is None:
            continue
        path = Path(item).resolve()
        for target in targets:
            if path == target or path.is_relative_to(target):
                raise LinsigInputError(
                    f"{item}: is an input of this run and {out / target.name} is one of its outputs, so the run "
                    f"would overwrite its own input; choose another output folder (--out) — --force does not "
                    f"change this")


def guard_outputs(out_dir: str | os.PathLike, kind: str, inputs: Iterable = (), config: dict | None = None,
                  force: bool = False) -> None:
    """Check, before any work, that a run of ``kind`` may write into ``out_dir`` (module docstring).

    ``config``: for ``kind="run"``, the options the summary will record; a folder whose summary
    records the same is a re-run of this run. ``force`` lets a run replace a folder of another
    run (never an input).
    """
    check_inputs(out_dir, kind, inputs)
    out = Path(out_dir)
    existing = folder_kind(out)
    if existing is None or force:
        return
    if existing != kind:
        holds = ("an experiment (experiment.json, units/): `linsig experiment status` counts its units and "
                 "`linsig report` would show another run's rows" if existing == "experiment"
                 else f"the results of `linsig run` ({RESULTS_FILE})")
        raise LinsigInputError(
            f"{out}: this folder holds {holds}; {_COMMAND[kind]} would replace them. Nothing was changed. "
            f"Use another output folder, or --force to replace them")
    if kind == "run" and config is not None and not _same_run(_recorded_config(out), config):
        raise LinsigInputError(
            f"{out}: this folder holds the results of another `linsig run` (other data or options, see its "
            f"{SUMMARY_FILE}); nothing was changed. Use another output folder, or --force to replace them")


def take_over(out_dir: str | os.PathLike, kind: str) -> None:
    """With ``--force``: make ``out_dir`` a folder of ``kind`` (a plain run drops the experiment
    definition, so that ``experiment status`` no longer counts units the results do not hold;
    finished unit files stay: a later experiment of the same units reuses them)."""
    out = Path(out_dir)
    if kind == "run" and folder_kind(out) == "experiment":
        (out / MANIFEST).unlink(missing_ok=True)
        log.warning("%s: --force: removed %s (the unit files in units/ are kept)", out, MANIFEST)


def retire_derived(out_dir: str | os.PathLike, results_sha256: str) -> list[Path]:
    """Remove the report and verdict in ``out_dir`` that were not made from these results.

    Called whenever results are published; returns what was removed. A report records the
    SHA-256 of its results in its head, a verdict in its schema metadata; a file that records
    another hash, or none, describes other results.
    """
    out = Path(out_dir)
    removed = []
    for name in ("report.html", "verdict.parquet"):
        path = out / name
        if path.is_file() and results_sha256 not in _recorded_hash(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _recorded_hash(path: Path) -> str:
    try:
        if path.suffix == ".html":
            with open(path, "rb") as fh:
                return fh.read(4096).decode("utf-8", "replace")  # the stamp is at the top of <head>
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return meta.get(b"results_sha256", b"").decode()
    except Exception:  # unreadable: made from nothing we can name
        return ""
