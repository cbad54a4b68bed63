"""How linsig writes files: atomically, as ordered sets, with the permissions the umask asks for.

Every output (results tables, summaries, unit files, figures' index, reports, built datasets)
goes through here or follows the same rule: write the complete bytes to a temporary file in the
target's folder, then ``os.replace`` it into place, so a reader sees the old file or the new
one, never half of one. Temporary files made by :func:`tempfile.mkstemp` are private (0600);
they get the mode a plain ``open`` would give (``0666 & ~umask``) before they are published, so
results on a shared file system are as readable as any other file the user writes.

Derived files name the bytes they came from by SHA-256 (:func:`file_sha256`), and files named
inside a run folder are resolved with :func:`confined`, which refuses anything outside it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from linsig.errors import LinsigInputError, OutputError

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:  # Linux ≥ 4.7 reports it; setting and restoring it would race other threads' creates
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike) -> None:
    """Give a private temporary file the mode ``open()`` would have given it (0666 & ~umask)."""
    os.chmod(path, 0o666 & ~current_umask())


def cannot_write(path: Path, exc: OSError) -> OutputError:
    """The error for an output that cannot be written, naming ``path`` (not a ``.partial`` file)."""
    reason = exc.strerror or str(exc)
    if path.is_dir():
        reason = "it is a folder; give a file name"
    return OutputError(f"{path}: cannot write it here: {reason}")


def _stage(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Let ``write`` fill a temporary file beside ``path`` (flushed to disk); return its path."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise cannot_write(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        public_mode(tmp)
    except OSError as exc:  # a full disk, a quota
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(path, exc) from exc


def _publish(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:  # a folder in the file's place, a read-only folder
        raise cannot_write(path, exc) from exc


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` by what ``write(fh)`` writes, atomically (see the module docstring)."""
    path = Path(path)
    _make_parent(path)
    tmp = _stage(path, write)
    try:
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (see the module docstring)."""
    write_set([(path, data)])


def write_set(files: Sequence[tuple[str | os.PathLike, bytes]]) -> None:
    """Write several files as one set: all staged first, then published in the order given.

    A failure while staging (a full disk, a read-only folder) leaves every old file as it was;
    publishing is a series of renames, so the order (e.g. results before the summary that
    describes them) decides what a failure in between can leave: never a new description of old
    data. Temporary files are removed on any failure.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            _make_parent(path)
            staged.append((_stage(path, lambda fh, data=data: fh.write(data)), path))
        for tmp, path in staged:
            _publish(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) and prove it writable, before any work goes into it.

    Raises :class:`LinsigInputError` naming the folder when it cannot be created or written (a
    file in the way, a read-only or full file system), so that the failure comes before hours of
    training rather than after them.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".linsig-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise LinsigInputError(f"{path}: cannot write the {what} here: {reason}{where}") from exc
    return path


def confined(root: str | os.PathLike, name: str) -> Path | None:
    """``root/name`` when it is a plain file inside ``root`` (after resolving links), else ``None``.

    Names read from files inside a run folder (the figure index) are data, not trusted paths: an
    absolute path, ``..`` or a symbolic link out of the folder must not make linsig read (and
    embed) a file elsewhere.
    """
    if not isinstance(name, str) or not name or os.path.isabs(name):
        return None
    base = Path(root).resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def refuse_overwriting(out: str | os.PathLike, inputs: Sequence[str | os.PathLike], what: str) -> None:
    """Raise :class:`LinsigInputError` when ``out`` is one of the files an output is made from."""
    target = Path(out).resolve()
    for item in inputs:
        if Path(item).resolve() == target:
            raise LinsigInputError(f"{out}: is an input of the {what}; choose another output path")
