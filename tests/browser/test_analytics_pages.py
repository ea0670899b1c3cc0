"""The analytics pages in real Chromium: the mounted Dashboard (generated request log,
SQLite receipts) and ``consentmw analytics report --html``, at 1280 and 375 px, with
axe-core and a horizontal-overflow check; screenshots go to test-output/screenshots/."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb", reason="the analytics extra is part of the test extra")

from consentmw.records import SQLiteReceiptStore
from tests.records_support import receipt

from .analytics_site import PASSWORD, USER
from .conftest import HERE, ROOT
from .test_e2e import _axe

pytestmark = pytest.mark.browser

# Chart labels as rendered: an SVG's text scales with the chart (12 units of a 640-wide
# chart are 6.5 px on a phone), so its height on screen is what a reader gets.
LABELS = """() => [...document.querySelectorAll('svg text, .axis span')]
  .map(e => [e.textContent, Math.round(e.getBoundingClientRect().height)])"""
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 0.5)
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 10)};
}"""


def _generate(logs: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_requestlog", ROOT / "benchmarks" / "gen_requestlog.py"
    )
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.generate(logs, 40_000, days=30, visitors=True, seed=11)


def _receipts(db: Path) -> None:
    store = SQLiteReceiptStore(db)
    now = datetime.now(timezone.utc)
    actions = ["accept_all", "reject_all", "save", "signal", "withdraw", "accept_all"]
    try:
        for n in range(240):
            at = now - timedelta(hours=3 * n)
            store.add_sync(
                receipt(f"c-{n}", at=at, action=actions[n % 6], language="nb" if n % 3 else "en")
            )
    finally:
        store.close_sync()


@pytest.fixture(scope="module")
def analytics_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("analytics-browser")
    _generate(tmp / "logs")
    _receipts(tmp / "receipts.db")
    return tmp / "logs", tmp / "receipts.db"


@pytest.fixture(scope="module")
def dashboard_url(analytics_data: tuple[Path, Path]) -> Iterator[str]:
    logs, db = analytics_data
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "analytics_site.py"), str(port), str(logs), str(db)],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the analytics site did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/stats/"
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("width", [1280, 375])
def test_dashboard_in_chromium(
    browser: Any, axe_path: Path, screenshots: Path, dashboard_url: str, width: int
) -> None:
    context = browser.new_context(
        viewport={"width": width, "height": 800},
        http_credentials={"username": USER, "password": PASSWORD},
        bypass_csp=True,  # the page allows no script; axe is injected by the test
    )
    try:
        page = context.new_page()
        response = page.goto(dashboard_url + "?days=30")
        assert response is not None and response.status == 200
        assert page.locator("h1").inner_text() == "Front Information: analytics"
        assert page.locator("svg").count() >= 3
        page.screenshot(path=str(screenshots / f"analytics-dashboard-{width}.png"), full_page=True)
        assert _axe(page, axe_path) == []
        if width == 375:
            found = page.evaluate(OVERFLOW)
            assert found["scroll"] <= 375 and found["wide"] == [], found
        labels = page.evaluate(LABELS)
        assert len(labels) >= 6 and all(14 <= h <= 24 for _, h in labels), labels
        # the period picker works without script: a preset, then dates
        page.select_option("select[name=days]", "7")
        page.locator("form[aria-label=Period] button").click()
        page.wait_for_url("**days=7")
        assert page.evaluate(OVERFLOW)["scroll"] <= width
    finally:
        context.close()


def test_dashboard_asks_for_the_password(browser: Any, dashboard_url: str) -> None:
    context = browser.new_context()
    try:
        # a page navigation would open the browser's sign-in prompt; the request API does not
        response = context.request.get(dashboard_url)
        assert response.status == 401
        assert response.headers["www-authenticate"] == 'Basic realm="Analytics"'
    finally:
        context.close()


def test_html_report_at_375_px(
    browser: Any, axe_path: Path, screenshots: Path, analytics_data: tuple[Path, Path],
    tmp_path: Path,
) -> None:  # fmt: skip
    logs, db = analytics_data
    out = tmp_path / "report.html"
    code = "import sys; from consentmw.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "analytics", "report", str(logs), "--since", "30d",
         "--timezone", "Europe/Oslo", "--records-url", f"sqlite:///{db}", "--html", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    context = browser.new_context(viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        page.goto(out.as_uri())
        page.screenshot(path=str(screenshots / "analytics-report-375.png"), full_page=True)
        found = page.evaluate(OVERFLOW)
        assert found["scroll"] <= 375 and found["wide"] == [], found
        labels = page.evaluate(LABELS)
        assert len(labels) >= 6 and all(14 <= h <= 24 for _, h in labels), labels
        assert _axe(page, axe_path) == []
    finally:
        context.close()
