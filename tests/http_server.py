"""A local HTTP file server for offline download tests (shared by the GTEx and Recount3 tests).

It serves real files over loopback so that :mod:`linsig.data.download` runs its real code path
(requests, urllib3, sockets), and it can misbehave on demand::

    from http_server import LocalServer

    with LocalServer(root=folder) as srv:           # serves folder/… at srv.url
        srv.add_file("mirror/a.txt", b"hello")      # or serve bytes from memory
        srv.fail("mirror/a.txt", times=2, status=503)   # next 2 requests answer 503
        srv.cut("mirror/a.txt", after=3)            # next request sends 3 bytes, then hangs up
        srv.stall("mirror/a.txt", seconds=5)        # next request waits 5 s before answering
        srv.no_range("mirror/a.txt")                # ignore Range: always 200 + whole file
        srv.no_length("mirror/a.txt")               # no Content-Length: the body ends when the connection closes
        srv.ignore_if_range("mirror/a.txt")         # answer Range with 206 even if If-Range no longer matches
        srv.no_validators("mirror/a.txt")           # send neither ETag nor Last-Modified
        fetch(srv.url_for("mirror/a.txt"), dest)
        srv.requests_for("mirror/a.txt")            # [Request(method, path, headers, status), …]
        srv.reset()                                 # drop all fail/stall/cut/no_range rules

Missing files answer 404. ``Range: bytes=N-`` / ``bytes=N-M`` get ``206`` with
``Content-Range``; a start past the end gets ``416``. Every file has a strong ``ETag`` (a hash of
its bytes); an ``If-Range`` that does not match it gets ``200`` with the whole file, as RFC 9110 says. Paths are relative to the server root
(no leading slash). Misbehaviours are consumed per request, in the order
fail → stall → cut; ``times=None`` makes one permanent.

The pytest fixture :func:`local_server` yields a started server whose root is a fresh temporary
folder (``srv.root``); import it into a test module with ``from http_server import local_server``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict


@dataclass
class Request:
    """One request the server saw: method, path (relative, no leading slash), headers, status."""

    method: str
    path: str
    headers: CaseInsensitiveDict  # header names compare case-insensitively
    status: int | None = None


@dataclass
class _Rule:
    kind: str  # "fail", "stall", "cut"
    times: int | None  # None = forever
    status: int = 503
    seconds: float = 0.0
    after: int = 0


@dataclass
class _State:
    root: Path | None
    files: dict[str, bytes] = field(default_factory=dict)
    rules: dict[str, list[_Rule]] = field(default_factory=dict)
    no_range: set[str] = field(default_factory=set)
    no_length: set[str] = field(default_factory=set)
    ignore_if_range: set[str] = field(default_factory=set)
    no_validators: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def take(self, path: str, kind: str) -> _Rule | None:
        """Consume one use of the first rule of ``kind`` for ``path``, if any."""
        with self.lock:
            for rule in self.rules.get(path, []):
                if rule.kind == kind and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def content(self, path: str) -> bytes | None:
        if path in self.files:
            return self.files[path]
        if self.root is None:
            return None
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()) or not target.is_file():
            return None
        return target.read_bytes()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and Content-Length, like real servers
    state: _State  # set on the per-server subclass

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        record = Request(self.command, path, CaseInsensitiveDict(self.headers.items()))
        with self.state.lock:
            self.state.requests.append(record)

        rule = self.state.take(path, "fail")
        if rule is not None:
            return self._empty(record, rule.status)
        rule = self.state.take(path, "stall")
        if rule is not None:
            # Interruptible, so stopping the server does not wait for a stalled request.
            self.state.stop.wait(rule.seconds)
        data = self.state.content(path)
        if data is None:
            return self._empty(record, 404)

        start, end, status = 0, len(data), 200
        etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if if_range and if_range != etag and path not in self.state.ignore_if_range:
            rng = None  # the client's partial copy is of another version: send the whole file
        if rng and path not in self.state.no_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                if start >= len(data):
                    return self._empty(record, 416, {"Content-Range": f"bytes */{len(data)}"})
                end = min(int(m.group(2)) + 1, len(data)) if m.group(2) else len(data)
                status = 206
        record.status = status
        self.send_response(status)
        no_length = path in self.state.no_length
        if no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(end - start))
        if path not in self.state.no_validators:
            self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        cut = self.state.take(path, "cut")
        if cut is not None and not no_length:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        body = data[start:end]
        if cut is not None:
            # Announce the full length, send part of it, then hang up: an interrupted transfer.
            self.wfile.write(body[: cut.after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _empty(self, record: Request, status: int, headers: dict[str, str] | None = None) -> None:
        record.status = status
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


class LocalServer:
    """Threaded HTTP server on ``127.0.0.1`` (random free port) serving ``root`` and in-memory files."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else None
        self.state = _State(root=self.root)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> "LocalServer":
        # A short poll interval keeps stop() (and so each test teardown) fast.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # addresses ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:54321/``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def url_for(self, path: str) -> str:
        return self.url + urllib.parse.quote(path.lstrip("/"))

    # content and misbehaviour -----------------------------------------------------------------
    def add_file(self, path: str, data: bytes) -> None:
        """Serve ``data`` at ``path`` (takes precedence over a file under ``root``)."""
        self.state.files[path.lstrip("/")] = bytes(data)

    def _rule(self, path: str, rule: _Rule) -> None:
        with self.state.lock:
            self.state.rules.setdefault(path.lstrip("/"), []).append(rule)

    def fail(self, path: str, times: int | None = 1, status: int = 503) -> None:
        """The next ``times`` requests for ``path`` answer ``status`` with an empty body."""
        self._rule(path, _Rule("fail", times, status=status))

    def stall(self, path: str, seconds: float, times: int | None = 1) -> None:
        """The next ``times`` requests for ``path`` wait ``seconds`` before answering."""
        self._rule(path, _Rule("stall", times, seconds=seconds))

    def cut(self, path: str, after: int, times: int | None = 1) -> None:
        """The next ``times`` requests for ``path`` send ``after`` body bytes, then close."""
        self._rule(path, _Rule("cut", times, after=after))

    def no_range(self, path: str) -> None:
        """Ignore ``Range`` for ``path``: always answer 200 with the whole file."""
        self.state.no_range.add(path.lstrip("/"))

    def no_length(self, path: str) -> None:
        """Send ``path`` without ``Content-Length``: the body ends when the connection closes."""
        self.state.no_length.add(path.lstrip("/"))

    def ignore_if_range(self, path: str) -> None:
        """Honour ``Range`` for ``path`` even when ``If-Range`` names another version."""
        self.state.ignore_if_range.add(path.lstrip("/"))

    def no_validators(self, path: str) -> None:
        """Send ``path`` without ``ETag`` (or ``Last-Modified``): a client cannot tell its versions apart."""
        self.state.no_validators.add(path.lstrip("/"))

    def reset(self) -> None:
        """Forget all misbehaviour rules; files and the log stay."""
        with self.state.lock:
            self.state.rules.clear()
            self.state.no_range.clear()
            self.state.no_length.clear()
            self.state.ignore_if_range.clear()
            self.state.no_validators.clear()

    # inspection -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[Request]:
        with self.state.lock:
            return list(self.state.requests)

    def requests_for(self, path: str) -> list[Request]:
        path = path.lstrip("/")
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def local_server(tmp_path_factory):
    """A started :class:`LocalServer` serving a fresh temporary folder (``srv.root``)."""
    root = tmp_path_factory.mktemp("served")
    with LocalServer(root=root) as srv:
        yield srv
