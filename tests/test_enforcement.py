"""Server-side enforcement through real ASGI calls: Set-Cookie filtering and expiry."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentmw import ConsentMiddleware
from consentmw.setcookie import set_cookie_name

from .conftest import client_for, make_app


def set_url(*cookies: str) -> str:
    return "/set?" + "&".join("c=" + quote(c) for c in cookies)


async def decide(client: httpx.AsyncClient, action: str, *categories: str) -> None:
    body = {"action": action, "next": "/", "category": list(categories)}
    response = await client.post("/_consent", data=body)
    assert response.status_code == 303


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


async def test_undecided_visitor_gets_necessary_cookies_only(client: httpx.AsyncClient) -> None:
    response = await client.get(
        set_url(
            "_ga=GA1.1.1; Domain=.example.no",
            "AWSALB=x",
            "access_token=t",
            "_ga_XYZ=1",
            "__utmz=1",
            "io=2",
            "refresh_token=3",
        )
    )
    names = [c.split("=")[0] for c in set_cookies(response)]
    assert names == ["AWSALB", "access_token", "io", "refresh_token"]


async def test_granted_analytics_passes_and_order_is_kept(client: httpx.AsyncClient) -> None:
    await decide(client, "accept_all")
    response = await client.get(set_url("_ga=1", "AWSALB=x", "_gid=2", "_ga_ABC=3"))
    assert [c.split("=")[0] for c in set_cookies(response)] == ["_ga", "AWSALB", "_gid", "_ga_ABC"]


async def test_rejected_analytics_blocked(client: httpx.AsyncClient) -> None:
    await decide(client, "reject_all")
    response = await client.get(set_url("_ga=1", "AWSALB=x"))
    assert [c.split("=")[0] for c in set_cookies(response)] == ["AWSALB"]


async def test_non_html_responses_are_filtered_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/api")
    assert response.json() == {"ok": True}
    assert [c.split("=")[0] for c in set_cookies(response)] == ["access_token"]


async def test_withdrawal_expires_cookies_on_host_and_parent_domains() -> None:
    async with client_for(make_app()) as client:
        await decide(client, "accept_all")
        await client.get(set_url("_ga=GA1.1", "_ga_ABC=GS1", "__utma=1"))
        assert {"_ga", "_ga_ABC", "__utma"} <= set(client.cookies.keys())
        response = await client.post("/_consent", data={"action": "reject_all", "next": "/"})
        deletions = [c for c in set_cookies(response) if "Max-Age=0" in c]
        for name in ("_ga", "_ga_ABC", "__utma"):
            ours = [d for d in deletions if d.startswith(name + "=;")]
            assert any("Domain" not in d for d in ours), name
            assert any("Domain=www.example.no" in d for d in ours), name
            assert any("Domain=example.no" in d for d in ours), name
            assert not any("Domain=no;" in d or d.endswith("Domain=no") for d in ours)
        # The next page expires any the browser still sends, too.
        stale = await client.get("/", headers={"Cookie": "_ga=old; _gid=old"})
        expired = {c.split("=")[0] for c in set_cookies(stale) if "Max-Age=0" in c}
        assert {"_ga", "_gid"} <= expired


async def test_necessary_cookies_are_never_expired(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Cookie": "access_token=t; AWSALB=x; _ga=1"})
    expired = {c.split("=")[0] for c in set_cookies(response) if "Max-Age=0" in c}
    assert expired == {"_ga"}


@pytest.mark.parametrize(
    ("policy", "passes"), [("block", False), ("report", True), ("allow", True)]
)
async def test_undeclared_policy(
    policy: str, passes: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="consentmw")
    async with client_for(make_app(undeclared_cookies=policy)) as client:
        for _ in range(3):
            response = await client.get(set_url("mystery=1", "AWSALB=x"))
            names = [c.split("=")[0] for c in set_cookies(response)]
            assert ("mystery" in names) is passes
            assert "AWSALB" in names
    warnings = [r for r in caplog.records if "mystery" in r.getMessage()]
    if policy == "allow":
        assert len(warnings) <= 1
    else:
        assert len(warnings) == 1  # once per name, not per response
        assert "extra_cookies" in warnings[0].getMessage()


async def test_malformed_set_cookie_values_never_crash(client: httpx.AsyncClient) -> None:
    response = await client.get(set_url("novalue", "=x", ";;;", "_ga", " _ga =1"))
    assert response.status_code == 200
    assert not any(c.strip().startswith("_ga") for c in set_cookies(response))


async def test_tampered_and_garbage_consent_cookies_read_as_undecided() -> None:
    app = make_app()
    async with client_for(app) as client:
        await decide(client, "accept_all")
        good = client.cookies["consentmw"]
    for value in (good[:-3] + "abc", "garbage", "x" * 5000, "", good.replace(".", "!")):
        async with client_for(app) as fresh:
            response = await fresh.get("/_consent", headers={"Cookie": f"consentmw={value}"})
            assert response.status_code == 200
            assert response.json()["decided"] is False
            page = await fresh.get(set_url("_ga=1"), headers={"Cookie": f"consentmw={value}"})
            assert page.status_code == 200 and "cmw-banner" in page.text
            assert not any(c.startswith("_ga=1") for c in set_cookies(page))


async def test_policy_version_bump_asks_again() -> None:
    async with client_for(make_app(policy_version="1")) as client:
        await decide(client, "accept_all")
        value = client.cookies["consentmw"]
    async with client_for(make_app(policy_version="2")) as client:
        state = (await client.get("/_consent", headers={"Cookie": f"consentmw={value}"})).json()
        assert state["decided"] is False and state["categories"]["analytics"] is False


@pytest.mark.parametrize("header", [{"Sec-GPC": "1"}, {"DNT": "1"}])
async def test_privacy_signal_refuses_but_never_consents(header: dict[str, str]) -> None:
    async with client_for(make_app()) as client:
        page = {**header, "Sec-Fetch-Dest": "document"}  # persisted on a page navigation
        response = await client.get(set_url("_ga=1", "AWSALB=x"), headers=page)
        names = [c.split("=")[0] for c in set_cookies(response)]
        assert "_ga" not in names and "consentmw" in names  # the refusal is stored
        assert "cmw-banner" not in response.text  # no banner: the browser already said no
        state = (await client.get("/_consent", headers=header)).json()
        assert state["signal"] == ("gpc" if "Sec-GPC" in header else "dnt")
        assert state["categories"]["analytics"] is False and state["decided"] is False
        # An explicit choice afterwards wins over the signal.
        await decide(client, "accept_all")
        state = (await client.get("/_consent", headers=header)).json()
        assert state["decided"] is True and state["categories"]["analytics"] is True
        assert state["signal"] is None


async def test_signals_can_be_switched_off() -> None:
    async with client_for(make_app(honour_privacy_signals=False)) as client:
        response = await client.get("/", headers={"Sec-GPC": "1"})
        assert "cmw-banner" in response.text


async def test_secret_rotation_keeps_visitors_decided() -> None:
    async with client_for(make_app(secret_key="a" * 40)) as client:
        await decide(client, "accept_all")
        value = client.cookies["consentmw"]
    rotated = make_app(secret_key=["b" * 40, "a" * 40])
    async with client_for(rotated) as client:
        state = (await client.get("/_consent", headers={"Cookie": f"consentmw={value}"})).json()
        assert state["decided"] is True


async def test_consent_cookie_attributes() -> None:
    async with client_for(make_app(secure_cookie=None), base_url="https://www.example.no") as c:
        response = await c.post("/_consent", data={"action": "reject_all"})
        cookie = next(v for v in set_cookies(response) if v.startswith("__Host-consentmw="))
        for attr in ("Path=/", "Max-Age=15724800", "SameSite=Lax", "Secure", "HttpOnly"):
            assert attr in cookie
        assert "Domain" not in cookie
    async with client_for(make_app(consent_lifetime_days=200)) as client:  # secure off
        response = await client.post("/_consent", data={"action": "accept_all"})
        cookie = next(c for c in set_cookies(response) if c.startswith("consentmw="))
        assert "Max-Age=17280000" in cookie and "Secure" not in cookie


async def test_websocket_and_lifespan_pass_through() -> None:
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.complete"})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    mw = ConsentMiddleware(app, secret_key="k" * 32, records_url=None)
    sent: list[dict] = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        sent.append(message)

    await mw({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    await mw({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert seen == ["lifespan", "websocket"]
    assert sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "websocket.close", "code": 1000},
    ]


def _asgi_app_setting(values: list[bytes]):
    async def app(scope, receive, send):
        headers = [(b"content-type", b"text/plain")] + [(b"set-cookie", v) for v in values]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.binary(max_size=200), max_size=6),
    cookie=st.binary(max_size=300),
)
def test_any_set_cookie_and_cookie_header_never_raise(values: list[bytes], cookie: bytes) -> None:
    """Any Set-Cookie bytes from the app and any Cookie header: filtered, never an error."""
    mw = ConsentMiddleware(_asgi_app_setting(values), secret_key="k" * 32, records_url=None)
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": "/", "query_string": b"", "scheme": "http",
        "headers": [(b"host", b"www.example.no"), (b"cookie", cookie)],
        "client": ("203.0.113.1", 1), "asgi": {"version": "3.0"},
    }  # fmt: skip
    asyncio.run(mw(scope, receive, send))
    assert sent[0]["status"] == 200 and sent[-1]["body"] == b"ok"
    out = [v for k, v in sent[0]["headers"] if k == b"set-cookie"]
    for value in out:
        spec = mw.registry.lookup(set_cookie_name(value))
        if value in values:  # the app's own header passed: only if strictly necessary
            assert spec is not None and spec.category == "necessary"
        else:  # consentmw's own: deletion of an optional cookie the request carried
            assert b"Max-Age=0" in value and spec is not None and spec.category != "necessary"


async def test_stacked_middleware_injects_and_filters_once() -> None:
    inner = make_app()
    outer = ConsentMiddleware(inner, secret_key="o" * 40, records_url=None)
    async with client_for(outer) as client:
        response = await client.get(set_url("_ga=1", "AWSALB=x"))
        assert response.text.count("data-consentmw-snippet") == 1
        assert [c.split("=")[0] for c in set_cookies(response)] == ["AWSALB"]


async def test_cached_consent_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-Cookie-header cache keeps the verified state, never the cookie's validity."""
    import time

    real = time.time
    async with client_for(make_app(consent_lifetime_days=182)) as client:
        await decide(client, "accept_all")
        response = await client.get(set_url("_ga=GA1.1.1.1"))
        assert "_ga" in {set_cookie_name(c.encode()) for c in set_cookies(response)}
        assert "cmw-banner" not in response.text  # decided: no banner, cached now
        monkeypatch.setattr(time, "time", lambda: real() + 183 * 86400)
        response = await client.get(set_url("_ga=GA1.1.1.1"))
        assert "cmw-banner" in response.text  # expired: undecided again
        ga = [c for c in set_cookies(response) if set_cookie_name(c.encode()) == "_ga"]
        assert ga and all("Max-Age=0" in c for c in ga)  # blocked, and the old one expired
