"""The mountable dashboard over real log files: authorization, period picker, page."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("duckdb", reason="the analytics extra is part of the test extra")

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from consentmw.analytics import Dashboard
from tests.test_analytics_report import rec, write_lines


def app_for(directory: Path) -> Starlette:
    def authorize(request):  # a header stands in for the site's own sign-in
        role = request.headers.get("x-role")
        return None if role is None else role == "admin"

    return Starlette(routes=[Mount("/stats", Dashboard(str(directory), authorize=authorize))])


async def get(app: Starlette, url: str, role: str | None = None) -> httpx.Response:
    headers = {"x-role": role} if role else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(url, headers=headers)


def test_dashboard_needs_authorize(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="authorize"):
        Dashboard(str(tmp_path))
    with pytest.raises(ValueError, match="authorize"):
        Dashboard(str(tmp_path), authorize="yes")  # type: ignore[arg-type]


async def test_dashboard_answers_only_the_authorized(tmp_path: Path) -> None:
    write_lines(tmp_path / "requests-2026-11-20.jsonl", [rec("/priser"), rec("/priser")])
    app = app_for(tmp_path)
    assert (await get(app, "/stats/")).status_code == 401
    assert (await get(app, "/stats/", "visitor")).status_code == 403
    page = await get(app, "/stats/?from=2026-11-20&to=2026-11-20", "admin")
    assert page.status_code == 200
    assert "/priser" in page.text and "<script" not in page.text
    assert page.headers["cache-control"] == "private, no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # bad period parameters fall back to the default period, never a 5xx
    for query in ("?from=x&to=y", "?days=9999", "?from=2026-12-01&to=2026-01-01"):
        assert (await get(app, "/stats/" + query, "admin")).status_code == 200


async def test_a_401_carries_the_challenge_so_a_browser_asks_for_the_password(
    tmp_path: Path,
) -> None:
    from starlette.applications import Starlette as App

    dash = Dashboard(str(tmp_path), authorize=lambda r: None, challenge='Basic realm="Stats"')
    response = await get(App(routes=[Mount("/stats", dash)]), "/stats/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="Stats"'
