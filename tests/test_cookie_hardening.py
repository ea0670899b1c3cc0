"""The consent cookie's own protection: Secure by default, the __Host- prefix, a renamed
cookie keeping its consent id, and a lifetime long enough to remember a refusal."""

from __future__ import annotations

import time

import pytest

from consentmw import ConsentConfig
from consentmw.config import ConfigError
from consentmw.consent import ConsentState
from consentmw.httpfacts import is_local_host

from .conftest import SECRET, client_for, make_app

PAGE_LOAD = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


def cookies_named(response, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [v for v in response.headers.get_list("set-cookie") if v.startswith(name + "=")]


async def test_secure_and_host_prefix_by_default_behind_tls_termination() -> None:
    # The app sees plain http (TLS ends at the load balancer, no proxy headers).
    app = make_app(secure_cookie=None)
    async with client_for(app, base_url="http://www.example.no") as c:
        r = await c.post("/_consent", data={"action": "reject_all"})
    (cookie,) = cookies_named(r, "__Host-consentmw")
    assert "; Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert cookies_named(r, "consentmw") == []


@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]
)
async def test_local_development_keeps_the_plain_name_without_secure(base: str) -> None:
    async with client_for(make_app(secure_cookie=None), base_url=base) as c:
        r = await c.post("/_consent", data={"action": "accept_all"})
        (cookie,) = cookies_named(r, "consentmw")
        assert "Secure" not in cookie
        assert (await c.get("/_consent")).json()["decided"] is True  # the browser sends it back


async def test_explicit_secure_false_and_cookie_domain() -> None:
    async with client_for(make_app(secure_cookie=False)) as c:
        r = await c.post("/_consent", data={"action": "accept_all"})
    assert cookies_named(r, "consentmw") and not cookies_named(r, "__Host-consentmw")
    app = make_app(secure_cookie=None, cookie_domain="example.no")
    async with client_for(app, base_url="https://www.example.no") as c:
        r = await c.post("/_consent", data={"action": "accept_all"})
    (cookie,) = cookies_named(r, "consentmw")  # __Host- forbids a Domain
    assert "Domain=example.no" in cookie and "; Secure" in cookie


async def test_old_name_is_read_once_and_replaced_with_the_same_id() -> None:
    app = make_app(secure_cookie=None)
    async with client_for(app, base_url="https://www.example.no") as c:
        now = int(time.time())
        old = app.codec.encode(
            ConsentState(True, frozenset({"analytics"}), frozenset(), "1", "id-1", now)
        )
        c.cookies.set("consentmw", old, domain="www.example.no")
        api = await c.get("/_consent")
        assert api.json()["decided"] is True  # still read
        assert "set-cookie" not in api.headers  # only a page load rewrites it
        r = await c.get("/", headers=PAGE_LOAD)
        (new,) = cookies_named(r, "__Host-consentmw")
        assert "; Secure" in new
        max_age = int(new.split("Max-Age=")[1].split(";")[0])
        assert 0 < max_age <= app.config.lifetime_seconds  # never longer than it had
        value = new.split(";")[0].split("=", 1)[1]
        assert app.codec.verify(value)[0].consent_id == "id-1"
        gone = cookies_named(r, "consentmw")
        assert gone and all("Max-Age=0" in v for v in gone)
        c.cookies.delete("consentmw")
        again = await c.get("/", headers=PAGE_LOAD)
        assert cookies_named(again, "__Host-consentmw") == []


async def test_host_prefixed_cookie_wins_over_a_planted_plain_one() -> None:
    app = make_app(secure_cookie=None)
    granted = app.codec.encode(
        ConsentState(True, frozenset({"analytics"}), frozenset(), "1", "mine", 2_000_000_000)
    )
    async with client_for(app, base_url="https://www.example.no") as c:
        planted = "consentmw=garbage-from-a-sibling"
        r = await c.get("/_consent", headers={"Cookie": f"{planted}; __Host-consentmw={granted}"})
    assert r.json()["categories"]["analytics"] is True


@pytest.mark.parametrize("days", [1, 30, 181, 396])
def test_lifetime_outside_six_to_thirteen_months_fails_at_start_up(days: int) -> None:
    with pytest.raises(ConfigError, match="consent_lifetime_days"):
        ConsentConfig(secret_key=SECRET, consent_lifetime_days=days)


@pytest.mark.parametrize("days", [182, 395])
def test_lifetime_bounds_are_allowed(days: int) -> None:
    assert ConsentConfig(secret_key=SECRET, consent_lifetime_days=days).consent_lifetime_days


def test_local_hosts() -> None:
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"):
        assert is_local_host(host), host
    for host in ("www.example.no", "127.0.0.2", "example.localhost.no", "", "[::2]"):
        assert not is_local_host(host), host
