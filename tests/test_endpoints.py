"""The consent API under the prefix, as in DESIGN.md's contract table."""

from __future__ import annotations

import re

import httpx
import pytest

from consentmw.endpoints import safe_next

from .conftest import client_for, make_app


async def test_get_state_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/_consent")
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "decided": False,
        "categories": {"necessary": True, "analytics": False},
        "policy_version": "1",
        "expires": None,
        "decided_at": None,
        "signal": None,
    }


async def test_form_post_redirects_back_with_303(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_consent", data={"action": "save", "category": ["analytics"], "next": "/page?x=1"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/page?x=1"
    state = (await client.get("/_consent")).json()
    assert state["decided"] is True and state["categories"]["analytics"] is True
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", state["expires"])


async def test_save_without_categories_is_a_refusal(client: httpx.AsyncClient) -> None:
    await client.post("/_consent", data={"action": "save"})
    state = (await client.get("/_consent")).json()
    assert state["decided"] is True and state["categories"]["analytics"] is False


async def test_json_post_answers_with_state(client: httpx.AsyncClient) -> None:
    response = await client.post("/_consent", json={"categories": ["analytics"]})
    assert response.status_code == 200
    assert response.json()["categories"] == {"necessary": True, "analytics": True}
    assert any(c.startswith("consentmw=") for c in response.headers.get_list("set-cookie"))
    response = await client.post("/_consent", json={"action": "reject_all"})
    assert response.json()["categories"]["analytics"] is False


async def test_consent_id_is_kept_across_changes() -> None:
    app = make_app()
    async with client_for(app) as client:
        await client.post("/_consent", json={"action": "accept_all"})
        first = app.codec.verify(client.cookies["consentmw"])[0]
        await client.post("/_consent", json={"action": "reject_all"})
        second = app.codec.verify(client.cookies["consentmw"])[0]
    assert first and second and first.consent_id == second.consent_id
    assert len(first.consent_id or "") >= 20


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/ok/path?q=1#f", "/ok/path?q=1#f"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        ("/a\tb", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
        ("relative", "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_safe_next(value: str, expected: str) -> None:
    assert safe_next(value) == expected


async def test_open_redirect_refused(client: httpx.AsyncClient) -> None:
    for bad in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        response = await client.post("/_consent", data={"action": "reject_all", "next": bad})
        assert response.headers["location"] == "/"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://www.example.no.evil.example"},
    ],
)
async def test_cross_site_posts_are_refused(client: httpx.AsyncClient, headers) -> None:
    response = await client.post("/_consent", data={"action": "accept_all"}, headers=headers)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert (await client.get("/_consent")).json()["decided"] is False


async def test_same_origin_posts_are_accepted(client: httpx.AsyncClient) -> None:
    headers = {"Origin": "http://www.example.no", "Sec-Fetch-Site": "same-origin"}
    response = await client.post("/_consent", data={"action": "accept_all"}, headers=headers)
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"categories": ["nonexistent"]}}, 400),
        ({"json": {"categories": "analytics"}}, 400),
        ({"json": ["analytics"]}, 400),
        ({"json": {"action": "everything"}}, 400),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"action=accept_all", "headers": {"Content-Type": "text/plain"}}, 415),
        (
            {
                "content": b"a=" + b"x" * 70000,
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            413,
        ),
        ({"data": {"action": "save", "category": ["analytics", "bogus"]}}, 400),
    ],
)
async def test_bad_posts_get_clear_errors(client: httpx.AsyncClient, kwargs, status) -> None:
    response = await client.post("/_consent", **kwargs)
    assert response.status_code == status
    assert response.text
    assert (await client.get("/_consent")).json()["decided"] is False


async def test_routes_and_methods(client: httpx.AsyncClient) -> None:
    assert (await client.get("/_consent/nothing")).status_code == 404
    response = await client.delete("/_consent")
    assert response.status_code == 405 and "POST" in response.headers["allow"]
    assert (await client.post("/_consent/cookies")).status_code == 405
    assert (await client.get("/_consent/")).status_code == 200


async def test_preferences_page_works_without_javascript(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/_consent/preferences?next=/back", headers={"Accept-Language": "en"}
    )
    html = response.text
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert '<form class="cmw-prefs" method="post" action="/_consent"' in html
    assert 'name="category" value="analytics"' in html
    assert 'value="analytics" aria-describedby="cmw-desc-analytics">' in html  # not ticked
    assert 'name="next" value="/back"' in html
    assert "<script" not in html


async def test_preferences_page_shows_current_choice(client: httpx.AsyncClient) -> None:
    await client.post("/_consent", data={"action": "accept_all"})
    html = (await client.get("/_consent/preferences", headers={"Accept-Language": "en"})).text
    assert 'value="analytics" aria-describedby="cmw-desc-analytics" checked>' in html
    assert "You chose this" in html


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("nb", ["Informasjonskapsler på dette nettstedet", "Leverandør", "2 år"]),
        ("en", ["Cookies on this site", "Provider", "2 years"]),
    ],
)
async def test_cookie_declaration(client: httpx.AsyncClient, lang: str, words) -> None:
    html = (await client.get(f"/_consent/cookies?lang={lang}")).text
    for word in words:
        assert word in html
    for name in (
        "AWSALB",
        "access_token",
        "refresh_token",
        "io",
        "_ga",
        "_gat",
        "__utmz",
        "consentmw",
        "Example AS",
        "Google",
    ):
        assert name in html


async def test_static_files_are_hashed_and_immutable(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    url = re.search(r'href="(/_consent/static/[0-9a-f]{8}/consent\.css)"', page)
    assert url
    response = await client.get(url.group(1))
    assert response.status_code == 200 and "text/css" in response.headers["content-type"]
    assert "immutable" in response.headers["cache-control"]
    stale = await client.get("/_consent/static/000000000000/consent.css")
    assert stale.headers["cache-control"] == "no-cache"
    assert (await client.get("/_consent/static/x/../../etc/passwd")).status_code == 404
    assert (await client.get("/_consent/static/abc/nothing.js")).status_code == 404


async def test_custom_prefix() -> None:
    async with client_for(make_app(prefix="/privacy/consent")) as client:
        assert (await client.get("/privacy/consent")).status_code == 200
        page = (await client.get("/")).text
        assert 'action="/privacy/consent"' in page
        assert (await client.get("/_consent")).status_code == 404
