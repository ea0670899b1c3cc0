"""GET {prefix}/dialog: the settings dialog consent.js fetches when the visitor opens it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from .test_banner import _client, decide, make

GA = "G-TEST000000"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(make(google_analytics_id=GA, privacy_policy_url="/privacy")) as c:
        yield c


async def test_the_fragment_returns_to_the_page_that_fetched_it(
    client: httpx.AsyncClient,
) -> None:
    """consent.js fetches /dialog?lang=.. only; the way back is the fetching page (its
    Referer), and another site's Referer is none."""
    for referer, back in (
        ("http://www.example.no/bedrift/123?side=2", "/bedrift/123?side=2"),
        ("https://evil.example/x", "/"),
    ):
        r = await client.get("/_consent/dialog?lang=en", headers={"Referer": referer})
        assert f'<input type="hidden" name="next" value="{back}">' in r.text


async def test_the_fragment_is_private_uncached_and_typed(client: httpx.AsyncClient) -> None:
    r = await client.get("/_consent/dialog?lang=en&next=/en")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert "Cookie" in r.headers["vary"]
    assert r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    assert html.startswith('<dialog class="cmw-dialog" aria-labelledby="cmw-d-title"')
    assert html.rstrip().endswith("</dialog>")
    assert "data-consentmw-snippet" not in html  # a fragment: nothing is injected into it
    assert '<h2 id="cmw-d-title" class="cmw-title">Your cookie choices</h2>' in html
    assert '<input type="hidden" name="next" value="/en">' in html
    assert '<input type="hidden" name="source" value="preferences">' in html
    assert re.findall(r'<button type="submit" name="action" value="(\w+)"', html) == [
        "accept_all",
        "reject_all",
        "save",
    ]
    assert "<code>_ga</code>" in html and 'href="/privacy"' in html


async def test_the_fragment_ticks_the_visitors_current_choice(client: httpx.AsyncClient) -> None:
    assert " checked" not in (await client.get("/_consent/dialog?lang=nb")).text
    await decide(client, "save", ["analytics"])
    html = (await client.get("/_consent/dialog?lang=nb")).text
    assert re.search(r'name="category" value="analytics"[^>]* checked', html)
    await decide(client, "reject_all")
    assert " checked" not in (await client.get("/_consent/dialog?lang=nb")).text


@pytest.mark.parametrize(
    ("query", "accept", "title"),
    [
        ("lang=nb", "en", "Valgene dine for informasjonskapsler"),  # the snippet's language
        ("lang=en", "nb", "Your cookie choices"),
        ("", "en-GB,en;q=0.8", "Your cookie choices"),  # then Accept-Language
        ("lang=xx", "", "Valgene dine for informasjonskapsler"),  # then the default
    ],
)
async def test_the_fragment_language(
    client: httpx.AsyncClient, query: str, accept: str, title: str
) -> None:
    r = await client.get(f"/_consent/dialog?{query}", headers={"Accept-Language": accept})
    assert title in r.text


@pytest.mark.parametrize(
    "bad", ["//evil.example/", "https://evil.example/", "/\\evil.example", "news", "/a\r\nb"]
)
async def test_the_way_back_stays_on_the_site(client: httpx.AsyncClient, bad: str) -> None:
    r = await client.get("/_consent/dialog", params={"lang": "en", "next": bad})
    assert r.status_code == 200
    assert '<input type="hidden" name="next" value="/">' in r.text


async def test_only_get_and_head(client: httpx.AsyncClient) -> None:
    assert (await client.head("/_consent/dialog")).status_code == 200
    r = await client.post("/_consent/dialog", content=b"")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


async def test_the_way_back_survives_the_cookie_page(client: httpx.AsyncClient) -> None:
    """Preferences -> cookie list -> preferences keeps the page the visitor came from (our own
    pages are no Referer to return to, so the links carry it)."""
    prefs = await client.get(
        "/_consent/preferences?lang=en", headers={"Referer": "http://www.example.no/a?b=1"}
    )
    link = re.search(r'href="(/_consent/cookies\?[^"]*)"', prefs.text)
    assert link is not None and "next=/a%3Fb%3D1" in link.group(1).replace("&amp;", "&")
    cookies = await client.get(link.group(1).replace("&amp;", "&"))
    assert 'href="/a?b=1"' in cookies.text  # the cookie page's way back
    back = re.search(r'href="(/_consent/preferences\?[^"]*)"', cookies.text)
    assert back is not None
    again = await client.get(back.group(1).replace("&amp;", "&"))
    assert '<input type="hidden" name="next" value="/a?b=1">' in again.text
