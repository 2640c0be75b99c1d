"""Pages in a real browser, offline: Debian's headless Chromium driven by Playwright, every
request to a host other than this machine aborted and recorded, console errors collected,
screenshots kept under out/browser/ (ignored by git) as test artifacts.

Chromium comes from Debian's `chromium` package (`.ci/run` installs it); tests skip without it
unless CONNECTOME_REQUIRE_BROWSER=1, which makes its absence a failure (CI sets it).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "browser"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def chromium() -> str:
    """The Chromium executable, or a skip (a failure with CONNECTOME_REQUIRE_BROWSER=1)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "Debian's chromium is not installed (apt-get install chromium)"
    if os.environ.get("CONNECTOME_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free loopback port in a thread; yield its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class Visit:
    """What one browser context saw: requests, refused outside requests, console errors."""

    page: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_offline(self) -> None:
        assert not self.blocked, f"requests left this machine: {self.blocked[:5]}"
        outside = [u for u in self.requests if not _local(u)]
        assert not outside, f"requests to other hosts: {outside[:5]}"


def _local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-error", "file"):
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


@contextmanager
def launch() -> Iterator[Any]:
    """Headless Chromium under Playwright (a skip when Chromium is missing, see `chromium`)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        yield b
        b.close()


@contextmanager
def visit(browser: Any, headers: dict[str, str] | None = None) -> Iterator[Visit]:
    """A fresh browser context (no cookies) with outside requests aborted and recorded."""
    context = browser.new_context(extra_http_headers=headers or {},
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = Visit(page)

    def route(r: Any) -> None:
        url = r.request.url
        if _local(url):
            r.continue_()
        else:
            seen.blocked.append(url)
            r.abort()

    context.route("**/*", route)
    page.on("request", lambda req: seen.requests.append(req.url))
    page.on("response", lambda resp: seen.responses.__setitem__(resp.url, resp.status))
    page.on("console", lambda msg: seen.console_errors.append(msg.text)
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen.console_errors.append(str(exc)))
    try:
        yield seen
    finally:
        context.close()
