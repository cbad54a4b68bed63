"""Headless Chromium helper for the report tests (no network, no extra Python packages).

``find_chromium()`` locates a Chromium/Chrome binary; ``dump_dom(path)`` loads a local HTML
file with ``--headless --dump-dom`` and returns the DOM after the page's scripts ran (the
virtual-time budget lets the ``load`` event and its handlers finish before the dump).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    env = os.environ.get("LINSIG_CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_flags(user_data_dir: str) -> list[str]:
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
        "--disable-default-apps", "--no-default-browser-check", "--hide-scrollbars",
        f"--user-data-dir={user_data_dir}",
    ]


def dump_dom(html_path: str | os.PathLike, timeout: float = 60.0,
             virtual_time_ms: int = 10000, width: int | None = None, height: int = 900) -> str:
    """The serialised DOM of ``html_path`` after load, as rendered by headless Chromium
    (in a window ``width`` × ``height`` pixels wide when ``width`` is given)."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium/chrome binary on PATH")
    url = Path(html_path).resolve().as_uri()
    size = [f"--window-size={width},{height}"] if width else []
    with tempfile.TemporaryDirectory(prefix="linsig-chromium-") as profile:
        cmd = [binary, *chromium_flags(profile), *size, f"--virtual-time-budget={virtual_time_ms}",
               "--dump-dom", url]
        env = dict(os.environ, HOME=profile)  # keep crash dumps / caches out of the real home
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0 or "<html" not in proc.stdout.lower():
        raise RuntimeError(f"chromium failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1400,
               height: int = 900, timeout: float = 60.0) -> Path:
    """A PNG of the first ``width`` × ``height`` pixels of ``html_path`` (what a reader sees first)."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium/chrome binary on PATH")
    png_path = Path(png_path).resolve()
    with tempfile.TemporaryDirectory(prefix="linsig-chromium-") as profile:
        cmd = [binary, *chromium_flags(profile), f"--window-size={width},{height}", "--virtual-time-budget=10000",
               f"--screenshot={png_path}", Path(html_path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, HOME=profile))
    if proc.returncode != 0 or not png_path.exists():
        raise RuntimeError(f"chromium screenshot failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return png_path
