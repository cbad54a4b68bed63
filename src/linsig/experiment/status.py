"""``linsig experiment status``: what an experiment directory holds, read from disk alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from linsig.errors import LinsigInputError
from linsig.terminal import safe_text
from linsig.experiment.store import MANIFEST, UnitStore


@dataclass
class Status:
    experiment: str = ""
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0  # claimed by a live runner
    pending: int = 0  # not started, or claimed by a runner that died (stale lock)
    failures: list[dict] = field(default_factory=list)  # {key, unit, error}: the error's first line
    running_units: list[dict] = field(default_factory=list)

    def lines(self, max_failures: int = 20) -> list[str]:
        """What ``experiment status`` prints: every piece read from the folder made safe for a
        terminal (:func:`linsig.terminal.safe_text`), since a shared folder's files are anyone's."""
        out = [f"{self.experiment}: {self.total} units: {self.done} done, {self.failed} failed, "
               f"{self.running} running, {self.pending} pending"]
        for f in self.failures[:max_failures]:
            out.append(f"  failed {f['key'][:12]} {f['unit']}: {f['error']}")
        if len(self.failures) > max_failures:
            out.append(f"  … and {len(self.failures) - max_failures} more failed units")
        for r in self.running_units[:max_failures]:
            out.append(f"  running {r['key'][:12]} {r['unit']} ({r['owner']})")
        return [safe_text(line) for line in out]


def experiment_status(out_dir, lock_timeout: float = 300.0) -> Status:
    store = UnitStore(out_dir, lock_timeout=lock_timeout)
    manifest = store.read_manifest(strict=True)
    if manifest is None:
        raise LinsigInputError(f"{Path(out_dir) / MANIFEST}: not an experiment directory (run `linsig experiment run` first)")
    status = Status(experiment=str(manifest.get("experiment", "")), total=len(manifest["units"]))
    for entry in manifest["units"]:
        key = entry["key"]
        if store.is_done(key):
            status.done += 1
            continue
        lock = store.read_lock(key)
        if lock is not None and not store.is_stale(lock):
            status.running += 1
            status.running_units.append({"key": key, "unit": entry.get("unit", ""),
                                         "owner": f"pid {lock.get('pid')} on {lock.get('host')}"})
            continue
        meta = store.read_meta(key)
        if meta and meta.get("status") == "failed":
            status.failed += 1
            error = str(meta.get("error") or "").strip().splitlines()
            status.failures.append({"key": key, "unit": entry.get("unit", ""), "error": error[0] if error else ""})
        else:
            status.pending += 1
    return status
