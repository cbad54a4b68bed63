"""Robust downloads of large public files (GTEx, Recount3, label tables).

One entry point, :func:`fetch`, does what a multi-gigabyte download over a flaky link needs:

- skips the download when ``dest`` already exists and verifies (size and/or checksum);
- streams to ``dest.partial`` and, after an interruption, resumes it with an HTTP ``Range``
  request when the server honours it (``206``) or starts over when it does not (``200``);
  a sidecar ``dest.partial.json`` records the URL and the file's validator (``ETag`` or
  ``Last-Modified``), sent as ``If-Range`` and compared on resume, so bytes of another URL or of
  an older version of the file are never spliced in (without a checksum to catch it);
- a partial from a server that sent no validator is never resumed: nothing could tell whether
  the file changed in between, so the download starts over from byte 0 (unless a checksum will
  verify the result);
- a response without a size (no ``Content-Length``) is confirmed by a second, ranged request
  from its end before it is published;
- checks the format before publishing, and before trusting a cached copy: an HTML page where a
  data file was asked for (a login or error page answered with ``200``), a ``.gz`` URL whose
  bytes are not gzip, or a caller's ``check`` that fails, is deleted, never cached;
- retries connection errors, timeouts, ``429`` and ``5xx`` with exponential backoff (honouring a
  numeric ``Retry-After``), but not ``404`` and other client errors, which will not get better;
- verifies the size and checksums and only then ``os.replace``-s the file into place, so a file
  at ``dest`` is always complete (a bad partial is deleted);
- shows a byte progress bar (tqdm) on stderr.

Every failure raises :class:`linsig.errors.DownloadError` with a message naming the URL.
:func:`fetch_first` tries mirrors in order. :func:`cache_path` and :func:`default_cache_dir`
give a deterministic place for downloads (``$LINSIG_CACHE_DIR`` or ``~/.cache/linsig``).

Bytes are stored exactly as served: the request asks for ``Accept-Encoding: identity`` and the
body is read without content decoding, so a ``.gz`` file stays gzipped and byte offsets for
``Range`` match the file on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from tqdm.auto import tqdm

from linsig.errors import DownloadError

log = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
_MAX_BACKOFF_S = 60.0
#: statuses worth retrying: rate limiting and server-side failures.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def default_cache_dir() -> Path:
    """Where downloads are kept: ``$LINSIG_CACHE_DIR`` if set, else ``~/.cache/linsig``."""
    env = os.environ.get("LINSIG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "linsig"


def cache_path(url: str, cache_dir: str | Path) -> Path:
    """Deterministic cache location for ``url``: ``cache_dir/<host>/<url path>``.

    The URL path is kept (so files from one bucket stay together and keep their names); ``..``
    and empty segments are dropped so a URL cannot point outside the cache; a query string adds
    a short hash to the file name so different queries do not collide.
    """
    parts = urllib.parse.urlsplit(url)
    host = re.sub(r"[^A-Za-z0-9._-]", "_", parts.netloc) or "_"
    segments = [urllib.parse.unquote(s) for s in parts.path.split("/")]
    segments = [re.sub(r"[\\/\x00]", "_", s) for s in segments if s not in ("", ".", "..")]
    if not segments or parts.path.endswith("/"):
        segments.append("index")
    if parts.query:
        digest = hashlib.sha1(parts.query.encode()).hexdigest()[:10]
        segments[-1] = f"{segments[-1]}_{digest}"
    return Path(cache_dir).joinpath(host, *segments)


# --------------------------------------------------------------------------------------------
# verification


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest (``md5``, ``sha256``, …) of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def _mismatch(path: Path, expected_size: int | None, md5: str | None, sha256: str | None) -> str | None:
    """Why ``path`` fails verification, or ``None`` when it passes (size first: it is free)."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"size mismatch: expected {expected_size} bytes, got {size}"
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is not None:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                return f"{algorithm} mismatch: expected {expected.lower()}, got {actual}"
    return None


# --------------------------------------------------------------------------------------------
# one attempt


class _Retryable(Exception):
    """A failure worth another attempt (connection, timeout, 429/5xx, body cut short)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class _Attempt:
    """What one successful attempt learned: the total size the server announced (if any)."""

    total: int | None


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


def _content_range_total(value: str) -> tuple[int | None, int | None]:
    """``(start, total)`` from ``Content-Range: bytes START-END/TOTAL`` (or ``bytes */TOTAL``)."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _sidecar(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    _sidecar(partial).unlink(missing_ok=True)


def _read_sidecar(partial: Path) -> dict | None:
    try:
        meta = json.loads(_sidecar(partial).read_text())
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


def _validators(resp: requests.Response) -> dict:
    etag = resp.headers.get("ETag")
    return {"etag": etag if etag and not etag.startswith("W/") else None,  # If-Range needs a strong ETag
            "last_modified": resp.headers.get("Last-Modified")}


def _has_validator(meta: dict | None) -> bool:
    return bool(meta and (meta.get("etag") or meta.get("last_modified")))


def format_problem(path: Path, url: str, check: Callable[[Path], object] | None = None) -> str | None:
    """Why the bytes at ``path`` are not the file ``url`` names, or ``None`` when they may be.

    Cheap sniffing first (an HTML page instead of data; not gzip for a ``.gz`` URL), then the
    caller's ``check``, which raises (``ValueError``, ``OSError``, ``EOFError`` or
    :class:`~linsig.errors.DownloadError`; a :class:`~linsig.errors.LinsigInputError` is a
    ``ValueError``) to reject the file.
    """
    name = urllib.parse.urlsplit(url).path.lower()
    with open(path, "rb") as fh:
        head = fh.read(512)
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not name.endswith((".html", ".htm")) and start.startswith((b"<!doctype html", b"<html")):
        return "the server sent an HTML page (a login or error page?) instead of the file"
    if name.endswith(".gz") and head and not head.startswith(b"\x1f\x8b"):
        return f"not gzip data (starts with {head[:16]!r})"
    if check is not None:
        try:
            check(path)
        except (ValueError, OSError, EOFError, DownloadError) as exc:
            return f"not the expected format: {exc}"
    return None


def _changed(meta: dict, resp: requests.Response) -> bool:
    """Whether the server's file differs from the one the partial bytes came from."""
    now = _validators(resp)
    return any(meta.get(k) and now[k] and meta[k] != now[k] for k in ("etag", "last_modified"))


def _attempt(url: str, partial: Path, session: requests.Session, timeout: float, progress: bool,
             guarded: bool = False) -> _Attempt:
    """Download (the rest of) ``url`` into ``partial``; raise :class:`_Retryable` or DownloadError.

    ``guarded``: a checksum will verify the result, so bytes of unknown origin may be resumed.
    """
    offset = partial.stat().st_size if partial.exists() else 0
    meta = _read_sidecar(partial) if offset else None
    if offset and not guarded and (meta is None or meta.get("url") != url or not _has_validator(meta)):
        # Bytes from another URL, of unknown origin, or from a server that named no version of
        # its file (no ETag, no Last-Modified): splicing them with what the server sends now
        # could publish a mix of two versions of the right size.
        log.info("%s: partial download of unknown origin or version; starting over", partial)
        _discard(partial)
        offset, meta = 0, None
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = (meta or {}).get("etag") or (meta or {}).get("last_modified")
        if validator:
            headers["If-Range"] = validator  # a server whose file changed answers 200 with all of it
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.Timeout as exc:
        raise _Retryable(f"timed out after {timeout:g} s ({exc.__class__.__name__})") from exc
    except requests.exceptions.RequestException as exc:
        raise _Retryable(f"connection failed: {exc}") from exc

    with resp:
        status = resp.status_code
        if status == 416 and offset:
            # Our partial is at or past the end: it is complete if the server says so, else junk.
            _, total = _content_range_total(resp.headers.get("Content-Range", ""))
            if total == offset and not (meta and _changed(meta, resp)):
                return _Attempt(total=total)
            _discard(partial)
            raise _Retryable(f"server rejected resuming at byte {offset}; restarting")
        if status == 404 or status == 410:
            raise DownloadError(f"{url}: not found (HTTP {status})")
        if status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {status} {resp.reason}", _retry_after(resp))
        if status >= 400:
            raise DownloadError(f"{url}: HTTP {status} {resp.reason}")

        if status == 206:
            start, total = _content_range_total(resp.headers.get("Content-Range", ""))
            if start != offset:
                # A server that answers a different range than asked: do not splice it in.
                _discard(partial)
                raise _Retryable(f"server answered range starting at {start}, asked {offset}; restarting")
            if meta and _changed(meta, resp):  # a server that ignored If-Range
                _discard(partial)
                raise _Retryable("the file changed on the server since the partial download; restarting")
            mode = "ab"
        else:  # 200: the server ignored Range (or there was none): start over
            if offset:
                log.info("%s: server does not resume (HTTP %s); restarting from byte 0", url, status)
            offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if mode == "wb" or meta is None or meta.get("url") != url:
            _sidecar(partial).parent.mkdir(parents=True, exist_ok=True)
            _sidecar(partial).write_text(json.dumps({"url": url, **_validators(resp), "total": total}))

        received = _stream_body(resp, partial, mode, offset, total, timeout, progress)
    if total is not None and offset + received < total:
        raise _Retryable(f"body cut short at byte {offset + received} of {total}")
    return _Attempt(total=total)


def _stream_body(resp, partial: Path, mode: str, offset: int, total: int | None, timeout: float,
                 progress: bool) -> int:
    """Append the raw (undecoded) body to ``partial``; return the number of bytes received."""
    received = 0
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
               desc=partial.name.removesuffix(".partial"), file=sys.stderr, disable=not progress,
               leave=False)
    try:
        with open(partial, mode) as fh:
            # raw.stream, not iter_content: bytes exactly as served (no gzip decoding), so that
            # Range offsets and checksums refer to the file on disk.
            blocks = resp.raw.stream(_CHUNK_BYTES, decode_content=False)
            while True:
                try:
                    block = next(blocks, None)
                except (urllib3.exceptions.ReadTimeoutError, requests.exceptions.Timeout, TimeoutError) as exc:
                    raise _Retryable(f"timed out after {timeout:g} s reading the body at byte "
                                     f"{offset + received}") from exc
                except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException,
                        ConnectionError) as exc:
                    raise _Retryable(f"connection lost at byte {offset + received}: {exc}") from exc
                if block is None:
                    break
                fh.write(block)
                received += len(block)
                bar.update(len(block))
    except _Retryable:
        raise
    except OSError as exc:  # the local disk, not the network
        raise DownloadError(f"cannot write {partial}: {exc}") from exc
    finally:
        bar.close()
    return received


# --------------------------------------------------------------------------------------------
# public API


def fetch(
    url: str,
    dest: str | Path,
    *,
    expected_size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    session: requests.Session | None = None,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming, retrying, verifying) and return ``dest``.

    Parameters
    ----------
    expected_size, md5, sha256
        Checked after the download (and on an existing ``dest`` to decide whether to skip it).
        Without any of them an existing ``dest`` is trusted: this module only ever puts complete
        files there. The size announced by the server is always checked.
    retries
        Extra attempts after the first on connection errors, timeouts, 429 and 5xx; the wait
        before attempt ``k`` (1-based) is ``backoff * 2**(k-1)`` seconds (at most 60 s), or the
        server's ``Retry-After``. A resumed attempt continues from the bytes already received.
    timeout
        Seconds to wait for the connection and between bytes of the body (not the whole file).
    session
        A :class:`requests.Session` to reuse connections (and to inject auth or adapters).
    check
        A format check of the file (e.g. read its header), raising ``ValueError``/``OSError`` to
        reject it; run with :func:`format_problem`'s own sniffing on every new download and on
        an existing ``dest`` before it is reused. A rejected file is deleted.

    Raises
    ------
    DownloadError
        404/410 (at once), other 4xx, 5xx or timeouts after the retries, or a size/checksum
        mismatch (the bad partial is deleted). The message names the URL.
    """
    dest = Path(dest)
    if dest.exists():
        reason = _mismatch(dest, expected_size, md5, sha256) or format_problem(dest, url, check)
        if reason is None:
            log.debug("%s exists and verifies; not downloading %s", dest, url)
            return dest
        log.warning("%s exists but fails verification (%s); deleting it and downloading it again", dest, reason)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    own_session = session is None
    session = session or requests.Session()
    guarded = bool(md5 or sha256)
    try:
        attempt = _with_retries(url, partial, session, retries, backoff, timeout, progress, guarded)
        if attempt.total is None and expected_size is None and not guarded:
            # No size announced: an early close looked like the end. Ask for the bytes after ours;
            # the answer (416 with the size, or 206 with the rest) confirms or completes the file
            # (only when the server names its version: else the rest could be of another one).
            if _has_validator(_read_sidecar(partial)):
                attempt = _with_retries(url, partial, session, retries, backoff, timeout, progress, guarded)
            if attempt.total is None:
                log.warning("%s announces no size and does not resume: the size of %s is not verified", url, dest)
    finally:
        if own_session:
            session.close()

    if attempt.total is not None and expected_size is None:
        expected_size = attempt.total
    reason = _mismatch(partial, expected_size, md5, sha256) or format_problem(partial, url, check)
    if reason is not None:
        _discard(partial)
        raise DownloadError(f"{url}: {reason}; the download was deleted")
    os.replace(partial, dest)
    _sidecar(partial).unlink(missing_ok=True)
    log.info("downloaded %s -> %s", url, dest)
    return dest


def _with_retries(url, partial, session, retries, backoff, timeout, progress, guarded=False) -> _Attempt:
    """Run attempts until one succeeds; DownloadError after ``retries`` extra tries."""
    last: _Retryable | None = None
    for k in range(retries + 1):
        if k:
            wait = last.retry_after if last and last.retry_after is not None else backoff * 2 ** (k - 1)
            wait = min(wait, _MAX_BACKOFF_S)
            log.warning("%s: %s; retry %d/%d in %.1f s", url, last, k, retries, wait)
            time.sleep(wait)
        try:
            return _attempt(url, partial, session, timeout, progress, guarded)
        except _Retryable as exc:
            last = exc
    raise DownloadError(f"{url}: {last} (gave up after {retries + 1} attempts)")


def fetch_first(urls: Sequence[str], dest: str | Path, **kwargs) -> Path:
    """:func:`fetch` from the first mirror in ``urls`` that works; same keyword arguments.

    Any :class:`DownloadError` (404, 5xx or timeouts after the retries, checksum mismatch) moves
    on to the next mirror. Bytes already received from one mirror are reused by the next only
    when a checksum guards the result; otherwise the next mirror starts from zero, since
    "the same file name" on two servers is not proof of the same bytes.
    """
    urls = list(urls)
    if not urls:
        raise DownloadError(f"no URL given for {dest}")
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    errors = []
    for i, url in enumerate(urls):
        try:
            return fetch(url, dest, **kwargs)
        except DownloadError as exc:
            errors.append(str(exc))
            if i + 1 < len(urls):
                log.warning("%s; trying the next mirror", exc)
                if not (kwargs.get("md5") or kwargs.get("sha256")):
                    _discard(partial)
    raise DownloadError(f"could not download {dest.name} from any of {len(urls)} mirror(s): {' | '.join(errors)}")
