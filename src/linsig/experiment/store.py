"""The experiment directory: one result file per unit, claims, and the combined table.

Layout of ``DIR``::

    experiment.json          the expanded experiment (units and their keys), rewritten by each run
    units/<key>.parquet      the rows of a finished unit (written atomically; key and row count embedded)
    units/<key>.json         status (done/failed), error and traceback, timing, host, task summary
    units/<key>.lock         claim of a unit being computed (pid, host, time; touched as a heartbeat)
    units.log                one JSON line per unit computed (who computed what, when)
    results.parquet          all finished units' rows (+ summary.json), rebuilt at the end of a run

A unit counts as finished only when its parquet file parses and the key and row count stored in
its metadata match; anything else (missing, truncated, corrupt) is recomputed. Claims are files
created exclusively (hard link of a complete file, else ``O_CREAT | O_EXCL``); a claim whose owner died (same host, pid gone) or whose
heartbeat is older than the lock timeout is taken over under a second exclusive file, so two
runners never compute the same unit.
"""

from __future__ import annotations

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
from linsig.evaluation import results_frame
from linsig.results import atomic_write_bytes, write_run
from linsig.system import pid_alive

UNITS_DIR = "units"
MANIFEST = "experiment.json"
LOG = "units.log"
META_KEY, META_ROWS = b"linsig.unit", b"linsig.rows"
SORT_COLUMNS = ["dataset", "task", "split", "pretraining", "model", "seed", "fold", "signal", "train_fraction"]
HOST = socket.gethostname()


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
            return table.to_pandas()
        except Exception:  # missing, truncated, not parquet: not finished
            return None

    def is_done(self, key: str) -> bool:
        return self.read_rows(key) is not None

    def read_meta(self, key: str) -> dict | None:
        try:
            return json.loads(self.path(key, "json").read_text())
        except (OSError, ValueError):
            return None

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
                                                   META_ROWS: str(table.num_rows).encode()})
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
            info["mtime"] = path.stat().st_mtime
            return info
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # being written right now: treat as held, fresh
            return {"mtime": time.time()}

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

    def _create_exclusive(self, path: Path, info: dict) -> bool:
        """Create ``path`` holding ``info`` only if it does not exist; False when it does.

        The content is written to a private file first and hard-linked into place: the link
        appears complete or not at all, so a runner killed mid-claim never leaves an empty claim
        that others would have to wait out (and ``link`` is exclusive on NFS, unlike ``O_EXCL``
        on old clients). File systems without hard links fall back to ``O_EXCL``.
        """
        tmp = path.with_name(f".{path.name}.{self.token}.tmp")
        tmp.write_text(json.dumps(info))
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
                json.dump(info, fh)
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
    def write_manifest(self, experiment, units) -> None:
        manifest = {
            "linsig_version": __version__, **experiment.to_dict(), "written": time.time(), "n_units": len(units),
            "units": [{"key": u.key, "unit": u.describe(), "device": u.device} for u in units],
        }
        atomic_write_bytes(self.root / MANIFEST, json.dumps(manifest, indent=1, default=str).encode())

    def read_manifest(self) -> dict | None:
        try:
            return json.loads((self.root / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def combine(self) -> tuple[Path, pd.DataFrame]:
        """Rebuild ``results.parquet`` and ``summary.json`` from the finished units of the manifest."""
        manifest = self.read_manifest() or {"units": []}
        frames, tasks = [], {}
        for entry in manifest["units"]:
            rows = self.read_rows(entry["key"])
            if rows is None:
                continue
            frames.append(rows)
            task = (self.read_meta(entry["key"]) or {}).get("task")
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
