"""linsig.data.download against a real HTTP server on loopback (no internet needed)."""

from __future__ import annotations

import hashlib
import os

import pytest

from http_server import LocalServer, local_server  # noqa: F401  (fixture)
from linsig.data.download import cache_path, default_cache_dir, fetch, fetch_first
from linsig.errors import DownloadError

PAYLOAD = os.urandom(300_000) + b"tail"
FAST = dict(backoff=0.01, timeout=2.0, progress=False)


def _serve(srv: LocalServer, path: str = "data/file.bin", data: bytes = PAYLOAD) -> str:
    srv.add_file(path, data)
    return srv.url_for(path)


def test_plain_download_and_skip_when_present(local_server, tmp_path):
    url = _serve(local_server)
    dest = tmp_path / "out" / "file.bin"
    assert fetch(url, dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(), **FAST) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("file.bin.partial").exists()
    n = len(local_server.requests)
    fetch(url, dest, expected_size=len(PAYLOAD), **FAST)  # verifies → no new request
    assert len(local_server.requests) == n


def test_interrupted_download_resumes_with_range(local_server, tmp_path):
    url = _serve(local_server)
    local_server.cut("data/file.bin", after=100_000)
    dest = tmp_path / "file.bin"
    fetch(url, dest, md5=hashlib.md5(PAYLOAD).hexdigest(), **FAST)
    reqs = local_server.requests_for("data/file.bin")
    assert len(reqs) == 2
    assert "Range" not in reqs[0].headers
    assert reqs[1].headers["Range"] == "bytes=100000-"
    assert reqs[1].status == 206
    assert dest.read_bytes() == PAYLOAD


def test_existing_partial_is_resumed(local_server, tmp_path):
    url = _serve(local_server)
    dest = tmp_path / "file.bin"
    local_server.cut("data/file.bin", after=1234)
    with pytest.raises(DownloadError):  # an earlier run, interrupted for good
        fetch(url, dest, **{**FAST, "retries": 0})
    assert dest.with_name("file.bin.partial").stat().st_size == 1234 and not dest.exists()
    fetch(url, dest, **FAST)
    first, resumed = local_server.requests_for("data/file.bin")
    assert resumed.headers["Range"] == "bytes=1234-" and resumed.status == 206
    assert resumed.headers["If-Range"] == '"' + hashlib.sha1(PAYLOAD).hexdigest()[:16] + '"'  # the server's ETag
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]  # partial and its sidecar gone


def test_partial_of_unknown_origin_is_not_spliced(local_server, tmp_path):
    url = _serve(local_server)
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.partial").write_bytes(b"A" * 60_000)  # no record of where it came from
    fetch(url, dest, **FAST)
    assert "Range" not in local_server.requests_for("data/file.bin")[0].headers
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("server_honours_if_range", [True, False])
def test_file_changed_on_the_server_is_not_spliced(local_server, tmp_path, server_honours_if_range):
    old, new = b"A" * 100_000, b"B" * 100_000
    url = _serve(local_server, data=old)
    dest = tmp_path / "file.bin"
    local_server.cut("data/file.bin", after=60_000)
    with pytest.raises(DownloadError):
        fetch(url, dest, **{**FAST, "retries": 0})
    _serve(local_server, data=new)  # a new version of the file, same size, same URL
    if not server_honours_if_range:
        local_server.ignore_if_range("data/file.bin")
    fetch(url, dest, **FAST)
    assert dest.read_bytes() == new
    statuses = [r.status for r in local_server.requests_for("data/file.bin")[1:]]
    assert statuses == ([200] if server_honours_if_range else [206, 200])


def test_body_without_length_cut_short_is_completed_not_published(local_server, tmp_path):
    url = _serve(local_server)
    local_server.no_length("data/file.bin")
    local_server.cut("data/file.bin", after=100_000)  # the close looks like the end of the body
    dest = tmp_path / "file.bin"
    fetch(url, dest, **FAST)
    reqs = local_server.requests_for("data/file.bin")
    assert reqs[1].headers["Range"] == "bytes=100000-" and reqs[1].status == 206
    assert dest.read_bytes() == PAYLOAD
    # a whole body without a length: the ranged request from its end (416, with the size) confirms it
    whole = _serve(local_server, "data/whole.bin")
    local_server.no_length("data/whole.bin")
    fetch(whole, tmp_path / "whole.bin", **FAST)
    assert [r.status for r in local_server.requests_for("data/whole.bin")] == [200, 416]
    assert (tmp_path / "whole.bin").read_bytes() == PAYLOAD


def test_server_without_range_support_restarts(local_server, tmp_path):
    url = _serve(local_server)
    local_server.no_range("data/file.bin")
    local_server.cut("data/file.bin", after=50_000)
    dest = tmp_path / "file.bin"
    fetch(url, dest, **FAST)
    reqs = local_server.requests_for("data/file.bin")
    assert [r.status for r in reqs] == [200, 200]
    assert reqs[1].headers["Range"] == "bytes=50000-"  # asked, but the server said 200
    assert dest.read_bytes() == PAYLOAD


def test_retries_on_503_then_succeeds(local_server, tmp_path):
    url = _serve(local_server)
    local_server.fail("data/file.bin", times=2, status=503)
    dest = fetch(url, tmp_path / "f.bin", **FAST)
    assert [r.status for r in local_server.requests_for("data/file.bin")] == [503, 503, 200]
    assert dest.read_bytes() == PAYLOAD


def test_5xx_after_retries_is_download_error(local_server, tmp_path):
    url = _serve(local_server)
    local_server.fail("data/file.bin", times=None, status=500)
    with pytest.raises(DownloadError, match=r"HTTP 500.*gave up after 3 attempts") as err:
        fetch(url, tmp_path / "f.bin", retries=2, **FAST)
    assert url in str(err.value)
    assert len(local_server.requests_for("data/file.bin")) == 3
    assert not (tmp_path / "f.bin").exists()


def test_404_is_not_retried(local_server, tmp_path):
    url = local_server.url_for("nope/missing.txt")
    with pytest.raises(DownloadError, match="not found") as err:
        fetch(url, tmp_path / "missing.txt", **FAST)
    assert url in str(err.value)
    assert len(local_server.requests_for("nope/missing.txt")) == 1


def test_timeout_is_download_error(local_server, tmp_path):
    url = _serve(local_server)
    local_server.stall("data/file.bin", seconds=5, times=None)
    with pytest.raises(DownloadError, match="timed out") as err:
        fetch(url, tmp_path / "f.bin", retries=1, backoff=0.01, timeout=0.3, progress=False)
    assert url in str(err.value)
    assert not (tmp_path / "f.bin").exists()


@pytest.mark.parametrize("check", [{"md5": "0" * 32}, {"sha256": "f" * 64}, {"expected_size": 10}])
def test_checksum_or_size_mismatch_leaves_no_file(local_server, tmp_path, check):
    url = _serve(local_server)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="mismatch") as err:
        fetch(url, dest, **check, **FAST)
    assert url in str(err.value)
    assert not dest.exists()
    assert not dest.with_name("f.bin.partial").exists()


def test_existing_file_that_fails_verification_is_replaced(local_server, tmp_path):
    url = _serve(local_server)
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"stale")
    fetch(url, dest, expected_size=len(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_fetch_first_falls_back_to_next_mirror(local_server, tmp_path):
    good = _serve(local_server, "legacy/file.bin")
    bad = local_server.url_for("primary/file.bin")
    dest = fetch_first([bad, good], tmp_path / "file.bin", **FAST)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="any of 2 mirror") as err:
        fetch_first([bad, bad.replace("primary", "other")], tmp_path / "x.bin", **FAST)
    assert bad in str(err.value)


def test_cache_path_and_default_dir(tmp_path, monkeypatch):
    url = "https://storage.googleapis.com/adult-gtex/bulk-gex/v8/rna-seq/x.gct.gz"
    assert cache_path(url, tmp_path) == tmp_path / "storage.googleapis.com/adult-gtex/bulk-gex/v8/rna-seq/x.gct.gz"
    assert cache_path("http://h/../../etc/passwd", tmp_path) == tmp_path / "h/etc/passwd"
    assert cache_path("http://h/a?x=1", tmp_path) != cache_path("http://h/a?x=2", tmp_path)
    monkeypatch.setenv("LINSIG_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LINSIG_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == (".cache", "linsig")
