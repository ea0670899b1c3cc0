"""What every page pays for consentmw, and the dialog fetched instead of sent.

The bytes the middleware adds to a page, measured through the real middleware as
``len(injected body) - len(original body)``, uncompressed, with the default configuration:
a decided visitor's page gets the settings button and the script (at most 600 bytes), an
undecided visitor's the banner as well (at most 3 KB), with and without Google Analytics,
in both modes (no page carries its loader: consent.js loads it, in basic mode once
analytics is granted, in advanced mode at once), with and without a CSP nonce. The
settings dialog with the cookie list comes from ``GET {prefix}/dialog`` when opened.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consentmw import ConsentMiddleware

DECIDED_BUDGET = 600
UNDECIDED_BUDGET = 3 * 1024
NONCE = "Zm9vYmFyYmF6cXV4MTIzNDU2"  # 24 characters: base64 of 18 random bytes


def page(lang: str) -> str:
    head = "<head><title>t</title></head>"
    return f'<!doctype html><html lang="{lang}">{head}<body><p>x</p></body></html>'


async def lang_page(request: Request) -> Response:
    headers = {}
    if request.query_params.get("csp"):
        csp = f"script-src 'nonce-{NONCE}'; style-src 'nonce-{NONCE}'"
        headers["Content-Security-Policy"] = csp
    return HTMLResponse(page(request.path_params["lang"]), headers=headers)


def make(**options: Any) -> ConsentMiddleware:
    app = Starlette(routes=[Route("/{lang}", lang_page)])
    return ConsentMiddleware(app, secret_key="x" * 32, records_url=None, **options)


GA = {"google_analytics_id": "G-1A2B3C4D5E"}


@pytest.fixture(
    params=[{}, GA, {**GA, "analytics_mode": "advanced"}], ids=["no-ga", "ga", "ga-advanced"]
)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make(**request.param))
    async with httpx.AsyncClient(transport=transport, base_url="https://www.example.no") as c:
        yield c


async def added(c: httpx.AsyncClient, lang: str, nonce: bool) -> tuple[int, str]:
    r = await c.get(f"/{lang}?csp=1" if nonce else f"/{lang}")
    assert r.status_code == 200 and "data-consentmw-snippet" in r.text
    assert (f'nonce="{NONCE}"' in r.text) is nonce
    return len(r.content) - len(page(lang).encode()), r.text


@pytest.mark.parametrize("nonce", [False, True])
@pytest.mark.parametrize("lang", ["nb", "en"])
async def test_an_undecided_visitors_page_grows_by_at_most_3_kb(
    client: httpx.AsyncClient, lang: str, nonce: bool
) -> None:
    size, html = await added(client, lang, nonce)
    assert "data-cmw-banner" in html
    assert size <= UNDECIDED_BUDGET, f"{size} bytes added"


@pytest.mark.parametrize("nonce", [False, True])
@pytest.mark.parametrize("lang", ["nb", "en"])
@pytest.mark.parametrize("action", ["accept_all", "reject_all"])
async def test_a_decided_visitors_page_grows_by_at_most_600_bytes(
    client: httpx.AsyncClient, lang: str, nonce: bool, action: str
) -> None:
    r = await client.post("/_consent", json={"action": action})
    assert r.status_code == 200
    size, html = await added(client, lang, nonce)
    assert "data-cmw-banner" not in html and 'id="cmw-reopen"' in html
    assert size <= DECIDED_BUDGET, f"{size} bytes added"


@pytest.mark.parametrize("decided", [False, True])
async def test_a_long_address_adds_nothing(client: httpx.AsyncClient, decided: bool) -> None:
    """The page's address is not repeated in the snippet, so the limits hold for any URL
    (a 2 KB query, or a path of percent-encoded Norwegian letters)."""
    if decided:
        await client.post("/_consent", json={"action": "accept_all"})
    short, _ = await added(client, "en", True)
    for query in ("utm_source=" + "x" * 2000, "q=" + "bl%C3%A5b%C3%A6r+" * 100):
        r = await client.get(f"/en?csp=1&{query}")
        assert len(r.content) - len(page("en").encode()) == short
        assert query not in r.text and "utm_source" not in r.text
    assert short <= (DECIDED_BUDGET if decided else UNDECIDED_BUDGET)


async def test_the_light_snippet_keeps_the_way_to_the_settings_without_javascript(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/_consent", json={"action": "reject_all"})
    _, html = await added(client, "en", True)
    # A GET form to the preferences page sending the language (the Referer names the page
    # to return to).
    form = re.search(r'<form action="/_consent/preferences"[^>]*>(.*?)</form>', html)
    assert form is not None
    assert "<input" not in form.group(1) and "/en?csp=1" not in html
    assert re.search(r'<button [^>]*name="lang" value="en"[^>]*>Cookie settings</button>', html)
    assert "<dialog" not in html and "<code>" not in html  # the cookie list is not sent
    # The button names the form landmark it stands in.
    assert 'aria-labelledby="cmw-reopen"' in html and 'id="cmw-reopen"' in html


async def test_the_banner_keeps_its_form_equal_buttons_and_links(
    client: httpx.AsyncClient,
) -> None:
    _, html = await added(client, "nb", True)
    banner = html[html.index("<section") : html.index("</section>")]
    assert '<form class="cmw-banner-inner" method="post" action="/_consent">' in banner
    for field in ('name="source" value="banner"', 'name="lang" value="nb"'):
        assert field in banner
    assert 'name="next"' not in banner and "/nb?csp=1" not in banner
    buttons = re.findall(r'<button [^>]*class="cmw-btn"[^>]*>([^<]*)<', banner)
    assert buttons == ["Godta alle", "Avvis alle", "Innstillinger"]
    assert 'href="/_consent/cookies?lang=nb"' in banner
