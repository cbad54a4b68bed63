"""The experiment directory: one result file per unit, claims, and the combined table.

Layout of ``DIR``::

    experiment.json          the experiment the folder holds (its definition: units and their keys),
                             written once, by the first runner; a runner of another definition is refused
    units/<key>.parquet      the rows of a finished unit (written atomically; key, row count and
                             SHA-256 of the rows embedded)
    units/<key>.json         status (done/failed), error and traceback, timing, host, task summary
    units/<key>.lock         claim of a unit being computed (pid, host, time; touched as a heartbeat)
    units.log                one JSON line per unit computed (who computed what, when)
    results.parquet          all finished units' rows (+ summary.json), rebuilt at the end of a run

A unit counts as finished only when its parquet file parses and the key, row count and checksum
stored in its metadata match; anything else (missing, truncated, corrupt, edited) is recomputed. Claims are files
created exclusively (hard link of a complete file, else ``O_CREAT | O_EXCL``); a claim whose owner died (same host, pid gone) or whose
heartbeat is older than the lock timeout is taken over under a second exclusive file, so two
runners never compute the same unit. A claim that cannot be read counts as fresh only while its
file is younger than the lock timeout (it may be being written); after that it is stale.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from linsig import __version__
from linsig.errors import LinsigInputError
from linsig.outputs import atomic_write_bytes
from linsig.results import results_frame, write_run
from linsig.system import pid_alive

UNITS_DIR = "units"
MANIFEST = "experiment.json"
LOG = "units.log"
META_KEY, META_ROWS, META_SHA = b"linsig.unit", b"linsig.rows", b"linsig.sha256"
SORT_COLUMNS = ["dataset", "task", "split", "pretraining", "model", "seed", "fold", "signal", "train_fraction"]
HOST = socket.gethostname()


def rows_digest(table: pa.Table) -> str:
    """SHA-256 of a unit table's column names and values (not of its file: any edit changes it)."""
    h = hashlib.sha256()
    for name in table.column_names:
        h.update(json.dumps([name, table.column(name).to_pylist()], default=str).encode())
    return h.hexdigest()


def _definition(manifest: dict) -> str:
    """What makes two runs the same experiment: the keys of their units (settings, data, version)."""
    return hashlib.sha256("\n".join(sorted(u["key"] for u in manifest.get("units", []))).encode()).hexdigest()


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _differences(old: dict, new: dict) -> list[str]:
    """Readable differences between two manifests' definitions (settings, data files, version)."""
    out = []
    if old.get("linsig_version") != new.get("linsig_version"):
        out.append(f"linsig {old.get('linsig_version')} there, {new.get('linsig_version')} here")
    a, b = (_flat(json.loads(json.dumps(m.get("document", {}), default=str))) for m in (old, new))
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key, '(not set)')!r} there, {b.get(key, '(not set)')!r} here")
    for name, source in (new.get("sources") or {}).items():
        before = (old.get("sources") or {}).get(name)
        if before is not None and before.get("fingerprint") != source.get("fingerprint"):
            out.append(f"data.{name}: the file's content changed since (SHA-256)")
    return out


def manifest_problem(manifest) -> str | None:
    """What makes a parsed ``experiment.json`` unusable (its shape), or ``None``."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    units = manifest.get("units")
    if not isinstance(units, list):
        return "'units' is not a list"
    for i, entry in enumerate(units):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
            return f"units[{i}] is not an object with a 'key'"
    return None


class UnitStore:
    """Reads and writes the unit files of one experiment directory."""

    def __init__(self, root: str | os.PathLike, lock_timeout: float = 300.0):
        self.root = Path(root)
        self.units = self.root / UNITS_DIR
        self.lock_timeout = float(lock_timeout)
        self.token = uuid.uuid4().hex  # this runner
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()

    def prepare(self) -> None:
        self.units.mkdir(parents=True, exist_ok=True)

    def path(self, key: str, suffix: str) -> Path:
        return self.units / f"{key}.{suffix}"

    # -- results ---------------------------------------------------------------------------
    def read_rows(self, key: str) -> pd.DataFrame | None:
        """The rows of a finished unit, or ``None`` when its file is missing, partial or corrupt."""
        path = self.path(key, "parquet")
        try:
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            if meta.get(META_KEY) != key.encode() or meta.get(META_ROWS) != str(table.num_rows).encode():
                return None
            if meta.get(META_SHA) != rows_digest(table).encode():  # edited, or written without a checksum
                return None
            return table.to_pandas()
        except Exception:  # missing, truncated, not parquet: not finished
            return None

    def is_done(self, key: str) -> bool:
        return self.read_rows(key) is not None

    def read_meta(self, key: str) -> dict | None:
        try:
            meta = json.loads(self.path(key, "json").read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None  # another shape: no status to read

    def failed_since(self, key: str, since: float) -> bool:
        meta = self.read_meta(key)
        return bool(meta and meta.get("status") == "failed" and meta.get("finished", 0) >= since)

    def record(self, unit, payload: dict) -> None:
        """Write a computed unit: rows atomically first (when done), then its JSON, then a log line."""
        key = unit.key
        meta = {k: payload.get(k) for k in ("key", "status", "error", "traceback", "started", "finished",
                                            "seconds", "host", "pid", "task")}
        meta.update(unit=unit.describe(), spec=unit.spec(), runner={"host": HOST, "pid": os.getpid(), "token": self.token},
                    n_rows=len(payload.get("rows") or []))
        if payload["status"] == "done":
            df = results_frame(payload["rows"])
            df["unit"] = key
            table = pa.Table.from_pandas(df, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: key.encode(),
                                                   META_ROWS: str(table.num_rows).encode(),
                                                   META_SHA: rows_digest(table).encode()})
            buf = io.BytesIO()
            pq.write_table(table, buf)
            atomic_write_bytes(self.path(key, "parquet"), buf.getvalue())
        atomic_write_bytes(self.path(key, "json"), json.dumps(meta, indent=1, default=str).encode())
        line = json.dumps({"key": key, "status": payload["status"], "time": time.time(), "host": payload.get("host"),
                           "pid": payload.get("pid"), "runner": self.token}) + "\n"
        fd = os.open(self.root / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    # -- claims ----------------------------------------------------------------------------
    def read_lock(self, key: str) -> dict | None:
        path = self.path(key, "lock")
        try:
            info = json.loads(path.read_text() or "{}")
            if not isinstance(info, dict):
                raise ValueError("not a claim")
            info["mtime"] = path.stat().st_mtime
            return info
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # Being written this instant, or cut mid-write for good (a runner killed on a file
            # system without hard links, an edit): the file's own age tells which, so that it
            # goes stale after the lock timeout instead of looking fresh forever.
            try:
                return {"mtime": path.stat().st_mtime, "unreadable": True}
            except OSError:
                return None

    def is_stale(self, info: dict) -> bool:
        if info.get("host") == HOST and isinstance(info.get("pid"), int) and not pid_alive(info["pid"]):
            return True
        return time.time() - info.get("mtime", time.time()) > self.lock_timeout

    def lock_state(self, key: str) -> str:
        """``free``, ``held`` (a live claim) or ``stale``."""
        info = self.read_lock(key)
        if info is None:
            return "free"
        return "stale" if self.is_stale(info) else "held"

    def _create_exclusive(self, path: Path, info: dict | str) -> bool:
        """Create ``path`` holding ``info`` only if it does not exist; False when it does.

        The content is written to a private file first and hard-linked into place: the link
        appears complete or not at all, so a runner killed mid-claim never leaves an empty claim
        that others would have to wait out (and ``link`` is exclusive on NFS, unlike ``O_EXCL``
        on old clients). File systems without hard links fall back to ``O_EXCL``.
        """
        text = info if isinstance(info, str) else json.dumps(info)
        tmp = path.with_name(f".{path.name}.{self.token}.tmp")
        tmp.write_text(text)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _owner(self) -> dict:
        return {"pid": os.getpid(), "host": HOST, "time": time.time(), "token": self.token}

    def claim(self, key: str) -> bool:
        """Claim a unit for this runner; False when another live runner holds it."""
        for _ in range(3):
            if self._create_exclusive(self.path(key, "lock"), self._owner()):
                with self._lock:
                    self._held.add(key)
                return True
            info = self.read_lock(key)
            if info is None:
                continue
            if not self.is_stale(info) or not self._take_over(key, info):
                return False
        return False

    def _take_over(self, key: str, seen: dict) -> bool:
        """Remove a stale lock, under an exclusive takeover file so only one runner does it."""
        guard = self.path(key, "takeover")
        if not self._create_exclusive(guard, self._owner()):
            try:  # its owner died mid-takeover (same host, pid gone) or long ago
                owner = json.loads(guard.read_text() or "{}")
                dead = owner.get("host") == HOST and isinstance(owner.get("pid"), int) and not pid_alive(owner["pid"])
                if dead or time.time() - guard.stat().st_mtime > 60:
                    guard.unlink()
            except (OSError, ValueError):
                pass
            return False
        try:
            now = self.read_lock(key)
            if now is not None and now.get("token") == seen.get("token") and self.is_stale(now):
                self.path(key, "lock").unlink(missing_ok=True)
            return True
        finally:
            guard.unlink(missing_ok=True)

    def clear_stale_lock(self, key: str) -> None:
        """Remove a dead runner's claim on a unit (killed after writing its result, before releasing it)."""
        info = self.read_lock(key)
        if info is not None and self.is_stale(info):
            self._take_over(key, info)

    def release(self, key: str) -> None:
        with self._lock:
            self._held.discard(key)
        info = self.read_lock(key)
        if info is not None and info.get("token") == self.token:
            self.path(key, "lock").unlink(missing_ok=True)

    def release_all(self) -> None:
        for key in list(self._held):
            self.release(key)

    def start_heartbeat(self, every: float | None = None) -> None:
        """Touch the held locks regularly so that other hosts see the claims as alive."""
        every = every or max(1.0, self.lock_timeout / 4)

        def beat():
            while not self._stop.wait(every):
                with self._lock:
                    held = list(self._held)
                for key in held:
                    try:
                        os.utime(self.path(key, "lock"))
                    except OSError:
                        pass

        self._stop.clear()
        self._beat = threading.Thread(target=beat, name="linsig-heartbeat", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)

    # -- manifest and combined table -------------------------------------------------------
    @staticmethod
    def manifest(experiment, units) -> dict:
        manifest = {
            "linsig_version": __version__, **experiment.to_dict(), "written": time.time(), "n_units": len(units),
            "sources": {ds.key: ds.source for ds in experiment.datasets},
            "units": [{"key": u.key, "unit": u.describe(), "device": u.device} for u in units],
        }
        manifest["definition"] = _definition(manifest)
        return manifest

    def adopt(self, experiment, units) -> None:
        """Make this folder hold ``experiment``; refuse if it already holds another definition.

        The first runner writes ``experiment.json`` exclusively (hard link, like a claim); later
        runners of the same units go on, and a runner with other settings, data or linsig
        version gets a :class:`LinsigInputError` naming the differences, so that it never
        rewrites the definition under a runner still working on it, and the results table of a
        folder always holds one experiment.
        """
        manifest = self.manifest(experiment, units)
        text = json.dumps(manifest, indent=1, default=str)
        path = self.root / MANIFEST
        self.root.mkdir(parents=True, exist_ok=True)
        if self._create_exclusive(path, text):
            return
        existing = None
        for _ in range(10):  # another runner may be writing it this instant (no hard links here)
            existing = self.read_manifest()
            if existing is not None:
                break
            time.sleep(0.1)
        if existing is None:  # unreadable (an edit, or cut by an older linsig): it defines nothing
            atomic_write_bytes(path, text.encode())
            return
        if existing.get("definition", _definition(existing)) == manifest["definition"]:
            return
        differences = _differences(existing, manifest) or ["its units differ"]
        raise LinsigInputError(
            f"{self.root}: this folder holds experiment {existing.get('experiment')!r} with other settings "
            f"({'; '.join(differences[:4])}{'; …' if len(differences) > 4 else ''}); nothing was changed. "
            f"Use another --out, or delete {path} to run this definition here (finished units it shares are kept)"
        )

    def read_manifest(self, strict: bool = False) -> dict | None:
        """``experiment.json``, or ``None`` when missing, unreadable or not of its shape.

        ``strict``: raise :class:`LinsigInputError` naming the file instead, when it exists but
        cannot be used (what ``experiment status`` reports); a runner treats such a file as
        defining nothing (see :meth:`adopt`).
        """
        path = self.root / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            if strict:
                raise LinsigInputError(f"{path}: cannot be read as an experiment definition ({exc})") from exc
            return None
        problem = manifest_problem(manifest)
        if problem:
            if strict:
                raise LinsigInputError(f"{path}: not an experiment definition ({problem}); "
                                       "`linsig experiment run` with --out here writes a new one")
            return None
        return manifest

    def combine(self, units=None) -> tuple[Path, pd.DataFrame]:
        """Rebuild ``results.parquet`` and ``summary.json`` from the finished units.

        ``units``: those of the runner combining (so that what it reports is what it wrote);
        default: the units of the folder's ``experiment.json``.
        """
        manifest = self.read_manifest() or {"units": []}
        keys = [u.key for u in units] if units is not None else [entry["key"] for entry in manifest["units"]]
        frames, tasks = [], {}
        for key in keys:
            rows = self.read_rows(key)
            if rows is None:
                continue
            frames.append(rows)
            task = (self.read_meta(key) or {}).get("task")
            if task:
                tasks[(task.get("dataset"), task.get("task"))] = task
        config = {k: manifest.get(k) for k in ("experiment", "origin", "document", "n_units")}
        config["n_units_done"] = len(frames)
        frames = [f for f in frames if not f.empty]
        df = pd.concat(frames, ignore_index=True) if frames else results_frame([])
        if not df.empty:
            df = df.sort_values([c for c in SORT_COLUMNS if c in df], kind="stable", ignore_index=True)
        path = write_run(self.root, df, list(tasks.values()), config)
        return path, df
