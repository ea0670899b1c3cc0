"""`consentmw demo` really starts, and its pages show enforcement end to end over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import free_port


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str]]]:
    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "consentmw.cli", "demo", "--port", str(port),
         "--log-dir", str(tmp / "logs"), "--records-url", f"sqlite:///{tmp}/receipts.db"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
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
    assert proc.stdout is not None
    started = [proc.stdout.readline().decode(), proc.stdout.readline().decode()]
    yield base, tmp, started
    proc.terminate()
    proc.wait(timeout=15)


def names(response: httpx.Response) -> list[str]:
    return [c.split("=", 1)[0] for c in response.headers.get_list("set-cookie")]


@pytest.mark.slow
def test_demo_site_enforces_consent(demo: tuple[str, Path, list[str]]) -> None:
    base, tmp, _ = demo
    with httpx.Client(base_url=base) as client:
        home = client.get("/")
        assert home.status_code == 200 and "data-consentmw-snippet" in home.text
        assert "cmw-banner" in home.text and "AWSALB" in names(home)
        stats = client.get("/statistikk")
        assert not any(n.startswith("_g") for n in names(stats))  # blocked before consent
        login = client.post("/login", data={"user": "kari"}, follow_redirects=False)
        assert {"access_token", "refresh_token"} <= set(names(login))
        assert "io" in names(client.get("/live"))
        accept = client.post(
            "/_consent",
            data={"action": "accept_all", "next": "/statistikk"},
            follow_redirects=True,
        )
        assert accept.status_code == 200 and accept.url.path == "/statistikk"
        after = client.get("/statistikk")
        assert {"_ga", "_gid", "_ga_DEMO000000"} <= set(names(after))
        assert "cmw-banner" not in after.text
        assert "G-DEMO000000" in after.text  # the analytics loader is configured
    # The request log got lines with a masked address only.
    deadline = time.monotonic() + 10
    lines: list[dict[str, object]] = []
    while time.monotonic() < deadline and not lines:
        for path in (tmp / "logs").glob("requests-*.jsonl"):
            lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        time.sleep(0.2)
    assert lines, "the demo wrote no request log"
    assert all(line["ip"] == "127.0.0.0" for line in lines)
    assert "127.0.0.1" not in json.dumps(lines)


@pytest.mark.slow
def test_demo_dashboard_behind_the_printed_password(demo: tuple[str, Path, list[str]]) -> None:
    from consentmw.demo import DASHBOARD_PASSWORD, DASHBOARD_PATH, DASHBOARD_USER

    base, _, started = demo
    assert f"{base}{DASHBOARD_PATH}/" in started[1]
    assert repr(DASHBOARD_USER) in started[1] and repr(DASHBOARD_PASSWORD) in started[1]
    url = base + DASHBOARD_PATH + "/"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic realm=")
    assert httpx.get(url, auth=(DASHBOARD_USER, "wrong")).status_code == 401
    page = httpx.get(url, auth=(DASHBOARD_USER, DASHBOARD_PASSWORD))
    assert page.status_code == 200 and "Page views" in page.text
    assert "data-consentmw-snippet" not in page.text  # outside the consent middleware
    assert not any(c.startswith("_ga") for c in page.headers.get_list("set-cookie"))
    assert httpx.get(base + "/statistikk").status_code == 200  # the site's page is still there
