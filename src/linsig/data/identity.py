"""Which bytes a data file holds: its SHA-256, computed once per version of the file.

An experiment's unit keys name their data files by content (:func:`content_fingerprint`), not by
size and modification time: ``cp -p``, ``rsync -a`` and ``tar`` restore the time of a file they
rewrite, so an edited metadata table of the same size looked unchanged and old results were
reused. Hashing a compendium of gigabytes takes a while, so the hash is cached — in memory and
in ``$LINSIG_CACHE_DIR/file-hashes`` (default ``~/.cache/linsig``) — under the file's device,
inode, size, modification *and change* time. The change time (``st_ctime``) moves on every write
and no copying tool can set it back, so a cached hash is never taken for an edited file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_MEMORY: dict[tuple, str] = {}


def _cache_dir() -> Path:
    env = os.environ.get("LINSIG_CACHE_DIR")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "linsig") / "file-hashes"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_fingerprint(path: str | os.PathLike) -> dict:
    """``{"size": bytes, "sha256": hex}`` of ``path``, from the cache when the file is unchanged."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    key = (str(path), *stamp)
    digest = _MEMORY.get(key)
    entry = _cache_dir() / (hashlib.sha256(str(path).encode()).hexdigest() + ".json")
    if digest is None:
        try:
            cached = json.loads(entry.read_text())
            if cached.get("path") == str(path) and cached.get("stat") == stamp:
                digest = cached.get("sha256")
        except (OSError, ValueError, AttributeError):
            pass
    if digest is None:
        digest = _sha256(path)
        try:
            from linsig.outputs import atomic_write_bytes

            atomic_write_bytes(entry, json.dumps({"path": str(path), "stat": stamp, "sha256": digest}).encode())
        except (OSError, ValueError) as exc:  # a read-only home: hash again next time, nothing worse
            log.debug("cannot cache the hash of %s: %s", path, exc)
    _MEMORY[key] = digest
    return {"size": st.st_size, "sha256": digest}
