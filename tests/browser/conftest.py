"""Real-Chromium fixtures: the test site under uvicorn, Chromium via Playwright, and a
stand-in for Google's hosts that counts every request and serves a stub gtag.js."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
GA_ID = "G-TEST000000"
GOOGLE = re.compile(
    r"^https?://([a-z0-9-]+\.)*(googletagmanager\.com|google-analytics\.com|"
    r"analytics\.google\.com|doubleclick\.net|google\.com|google\.no|gstatic\.com)(:\d+)?/"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--host-resolver-rules=MAP *.consentmw.test 127.0.0.1",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server_port() -> Iterator[int]:
    """tests/browser/site.py under a real uvicorn, in its own process."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, str(HERE / "site.py"), str(port)], cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"test site did not start on port {port}")
            time.sleep(0.1)
    yield port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="package")  # its event loop must end before asyncio tests run
def browser() -> Iterator[Any]:
    if os.environ.get("CI") and not Path("/usr/bin/chromium").exists():
        pytest.fail("CI must run the browser tests: scripts/test installs Debian chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (scripts/test does)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def axe_path() -> Path:
    """axe-core installed from npm into a cache folder by scripts/install-axe.sh."""
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to install axe-core")
    out = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install-axe.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(f"could not install axe-core: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1]).resolve()


@dataclass
class Visit:
    """One fresh browser context on one host of the test site, with Google intercepted."""

    context: Any
    page: Any
    base: str
    google: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def cookies(self) -> list[dict[str, Any]]:
        return list(self.context.cookies())

    def cookie_names(self) -> set[str]:
        return {c["name"] for c in self.cookies()}

    def ga_cookies(self) -> list[tuple[str, str]]:
        return [
            (c["name"], c["domain"])
            for c in self.cookies()
            if c["name"].startswith(("_ga", "_gid", "_gat", "__utm"))
        ]

    def state(self) -> dict[str, Any]:
        """The server's view: GET /_consent with this context's cookies."""
        page = self.context.new_page()  # Chromium resolves *.consentmw.test, Node does not
        try:
            return dict(page.goto(self.base + "/_consent").json())
        finally:
            page.close()

    def gtag_log(self) -> list[list[Any]]:
        return list(self.page.evaluate("window.__gtag || []"))

    def gtag_requests(self) -> list[str]:
        return [u for u in self.google if "/gtag/js" in u]


@pytest.fixture
def visit(browser: Any, server_port: int) -> Iterator[Callable[..., Visit]]:
    """``visit(host="www", **context_options)``: a fresh context per call."""
    stub = (HERE / "stub_gtag.js").read_text()
    contexts: list[Any] = []

    def make(host: str = "www", **options: Any) -> Visit:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(**options)
        contexts.append(context)
        context.set_default_timeout(10_000)
        v = Visit(context, None, f"http://{host}.consentmw.test:{server_port}")

        def google(route: Any) -> None:
            url = route.request.url
            v.google.append(url)
            if "/gtag/js" in url:
                route.fulfill(status=200, content_type="text/javascript", body=stub)
            else:
                route.fulfill(status=204, body="")

        context.route(GOOGLE, google)
        v.page = context.new_page()
        return v

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
