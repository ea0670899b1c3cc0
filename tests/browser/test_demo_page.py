"""The demo as a newcomer meets it: `consentmw demo` at the address it prints, in Chromium."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..conftest import free_port


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("demo-browser")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "consentmw.cli", "demo", "--port", str(port),
         "--records-url", f"sqlite:///{tmp}/receipts.db"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"  # the address `consentmw demo` prints
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(base + "/_consent", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "demo did not start")
    yield base
    proc.terminate()
    proc.wait(timeout=15)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    # Nothing may leave the machine: Google's hosts get an empty answer.
    context.route("https://**/*", lambda route: route.fulfill(status=204, body=""))
    yield context.new_page()
    context.close()


@pytest.mark.browser
def test_demo_at_127_0_0_1_sets_ga_after_accept(demo_url: str, page: Any) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(demo_url + "/statistikk")
    assert not [c for c in page.context.cookies() if c["name"].startswith("_ga")]
    assert page.locator("#demo-state").text_content() == "undecided"
    page.get_by_role("button", name="Godta alle").click()
    # The status line follows the decision without a reload.
    page.wait_for_function("document.getElementById('demo-state').textContent === 'granted'")
    assert page.locator("#demo-analytics").text_content() == "True"
    page.goto(demo_url + "/statistikk")
    names = {c["name"] for c in page.context.cookies()}
    assert {"_ga", "_gid"} <= names  # a Domain=.0.0.1 cookie would have been rejected
    assert missing == []  # no favicon (or other) 404


@pytest.mark.browser
def test_demo_english_page_is_english(demo_url: str, page: Any) -> None:
    page.goto(demo_url + "/en")
    nav = page.locator("header nav").inner_text()
    assert "Sign in" in nav and "Logg inn" not in nav
    assert page.get_by_role("button", name="Accept all").is_visible()
    page.get_by_role("button", name="Reject all").click()
    page.wait_for_function("document.getElementById('demo-state').textContent === 'denied'")


