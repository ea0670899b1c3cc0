"""Hostile input under the prefix: odd URLs, deep JSON, forged origins, leaked secrets.

Everything here goes through the real middleware over ASGI; receipts go to a real SQLite
file. Nothing under the prefix may answer 5xx, whatever the request.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from consentmw import ConsentConfig, ConsentMiddleware
from consentmw.cli import main as cli_main
from consentmw.config import ConfigError
from consentmw.consent import ConsentState
from consentmw.endpoints import safe_next
from consentmw.envconfig import config_from_env, describe

from .conftest import SECRET, page

PG_PASSWORD = "hunter2-db-password"


def any_page_app(**options: Any) -> ConsentMiddleware:
    """An HTML page at every path, behind the middleware."""
    options.setdefault("secret_key", SECRET)
    options.setdefault("records_url", None)
    options.setdefault("secure_cookie", False)  # plain http in these tests
    return ConsentMiddleware(Starlette(routes=[Route("/{rest:path}", page)]), **options)


def client_for(app: Any, base_url: str = "http://www.example.no") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


# -- return addresses -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["/søk", "/blog/✓-tips", "/søk?q=blåbær&side=2", "/%E2%9C%93?x=%C3%B8", "/100%25/x"],
)
async def test_no_js_banner_returns_to_a_non_ascii_page(url: str, tmp_path: Path) -> None:
    """The banner's form names no page: its answer returns to the page the browser's Referer
    names, percent-encoded UTF-8 as the browser sends it."""
    app = any_page_app(records_url=f"sqlite:///{tmp_path}/receipts.db")
    async with client_for(app) as client:
        response = await client.get(url)
        assert 'name="next"' not in response.text  # no page address in the page
        sent = str(response.url)  # httpx percent-encodes as a browser does
        back = sent.removeprefix("http://www.example.no")
        assert back.isascii() and back.startswith("/")
        decided = await client.post(
            "/_consent", data={"action": "accept_all"}, headers={"Referer": sent}
        )
        assert decided.status_code == 303
        assert decided.headers["location"] == back
        assert decided.headers.get_list("set-cookie")
        state = (await client.get("/_consent")).json()
        assert state["decided"] is True and state["categories"]["analytics"] is True
    await app.receipts.store.close()


@pytest.mark.parametrize(
    "referer",
    [
        "http://evil.example/page",  # another site
        "https://www.example.no/page",  # another scheme than the request's
        "http://www.example.no:8080/page",  # another port
        "http://www.example.no/søk",  # raw non-ASCII: never sent by a browser
        "http://www.example.no/a b",
        "http://www.example.no/a\\b",
        "http://user@www.example.no/page",
        "http://www.example.no//evil.example/x",
        "http://www.example.no/_consent/preferences?lang=en",  # our own page
        "http://www.example.no/" + "x" * 5000,
        "not a url",
        "http://[::1/x",
    ],
)
async def test_a_referer_off_the_site_or_malformed_returns_home(referer: str) -> None:
    raw = referer.encode("utf-8")
    async with client_for(any_page_app()) as client:
        html = (await client.get("/_consent/preferences", headers={"Referer": raw})).text
        assert '<input type="hidden" name="next" value="/">' in html
        decided = await client.post(
            "/_consent", data={"action": "reject_all"}, headers={"Referer": raw}
        )
        # Refused as cross-site (another origin, or none to be read), or decided and home.
        assert decided.status_code in (303, 403), decided.text
        if decided.status_code == 303:
            assert decided.headers["location"] == "/"


async def test_with_several_trusted_origins_the_referer_must_be_this_host() -> None:
    """A relative Location stays on the request's host: another trusted site's page is not
    a way back here."""
    shop = "https://shop.example.no"
    app = any_page_app(trusted_origins=[SITE, shop])
    async with client_for(app, SITE) as client:
        for referer, back in ((SITE + "/side?a=1", "/side?a=1"), (shop + "/cart", "/")):
            decided = await client.post(
                "/_consent",
                data={"action": "reject_all"},
                headers={"Origin": SITE, "Referer": referer},
            )
            assert decided.status_code == 303 and decided.headers["location"] == back


@pytest.mark.parametrize("path", ["/%5Fconsent/preferences", "/_consent", "/_consent?x=1"])
async def test_our_own_pages_are_no_way_back(path: str) -> None:
    async with client_for(any_page_app()) as client:
        decided = await client.post(
            "/_consent",
            data={"action": "reject_all"},
            headers={"Referer": "http://www.example.no" + path},
        )
        assert decided.headers["location"] == "/"
    async with client_for(any_page_app()) as client:  # a look-alike is a page of the site
        decided = await client.post(
            "/_consent",
            data={"action": "reject_all"},
            headers={"Referer": "http://www.example.no/_consentfoo"},
        )
        assert decided.headers["location"] == "/_consentfoo"


async def test_a_next_our_pages_pass_on_wins_over_the_referer() -> None:
    async with client_for(any_page_app()) as client:
        html = (
            await client.get(
                "/_consent/preferences?lang=en",
                headers={"Referer": "http://www.example.no/bedrift/123?side=2"},
            )
        ).text
        assert '<input type="hidden" name="next" value="/bedrift/123?side=2">' in html
        # The preferences page's own form posts that next; its Referer is the page itself.
        decided = await client.post(
            "/_consent",
            data={"action": "save", "next": "/bedrift/123?side=2"},
            headers={"Referer": "http://www.example.no/_consent/preferences?lang=en"},
        )
        assert decided.headers["location"] == "/bedrift/123?side=2"
        # An unusable next falls back to the Referer, then to the home page.
        decided = await client.post(
            "/_consent",
            data={"action": "save", "next": "//evil.example"},
            headers={"Referer": "http://www.example.no/side"},
        )
        assert decided.headers["location"] == "/side"


@pytest.mark.parametrize("bad", ["/blog/✓-tips", "/søk", "/ok\u00a0", "/a b"])
async def test_non_ascii_next_goes_home_and_consent_is_stored(bad: str, tmp_path: Path) -> None:
    """A raw non-ASCII address is refused before anything is written, never a 500."""
    app = any_page_app(records_url=f"sqlite:///{tmp_path}/receipts.db")
    async with client_for(app) as client:
        response = await client.post("/_consent", data={"action": "accept_all", "next": bad})
        assert response.status_code == 303 and response.headers["location"] == "/"
        me = (await client.get("/_consent/me", headers={"Accept": "application/json"})).json()
    assert me["state"]["decided"] is True
    assert [r["action"] for r in me["receipts"]] == ["accept_all"]
    await app.receipts.store.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/s%C3%B8k?q=bl%C3%A5", "/s%C3%B8k?q=bl%C3%A5"),
        ("/%E2%9C%93-tips", "/%E2%9C%93-tips"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),  # one path segment on this site
        ("/søk", "/"),
        ("/\u2713", "/"),
        ("/a\u2028b", "/"),
        ("/a b", "/"),
        ("/a\x7f", "/"),
        ("/\\evil.example", "/"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
    ],
)
def test_safe_next_keeps_escapes_and_refuses_non_ascii(value: str, expected: str) -> None:
    assert safe_next(value) == expected


# -- bodies ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"[" * 30000, b'{"a":' * 12000, b"[" * 30000 + b"]" * 30000])
async def test_deeply_nested_json_is_a_400(body: bytes) -> None:
    assert len(body) < 64 * 1024
    async with client_for(any_page_app()) as client:
        response = await client.post(
            "/_consent", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert "nested too deeply" in response.text or "malformed" in response.text
        assert (await client.get("/_consent")).json()["decided"] is False


# -- same origin ----------------------------------------------------------------------------------
SITE = "https://www.example.no"


@pytest.mark.parametrize(
    ("base", "headers", "trusted", "ok"),
    [
        # The request's own scheme and Host are the site's origin.
        (SITE, {"Origin": SITE, "Sec-Fetch-Site": "same-origin"}, (), True),
        (SITE, {"Origin": "https://www.example.no:443"}, (), True),
        (SITE, {"Origin": "HTTPS://WWW.EXAMPLE.NO"}, (), True),
        (SITE, {"Origin": "http://www.example.no"}, (), False),  # the scheme counts
        (SITE, {"Origin": "https://www.example.no:8443"}, (), False),  # so does the port
        (SITE, {"Origin": "https://shop.example.no", "Sec-Fetch-Site": "same-site"}, (), False),
        (SITE, {"Sec-Fetch-Site": "same-site"}, (), False),  # same-site alone is not enough
        (SITE, {"Sec-Fetch-Site": "none"}, (), True),  # typed or bookmarked by the user
        (SITE, {"Sec-Fetch-Site": "cross-site", "Origin": SITE}, (), False),
        (SITE, {"Origin": "null"}, (), False),
        # A page under Referrer-Policy: no-referrer posts with Origin: null; browsers add
        # Sec-Fetch-Site on secure origins, and a sandboxed frame is cross-site there.
        (SITE, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}, (), True),
        (SITE, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}, (), False),
        (SITE, {"Origin": "null", "Sec-Fetch-Site": "none"}, (), False),
        (SITE, {"Origin": "https://www.example.no/"}, (), False),
        (SITE, {"Origin": "https://evil.example@www.example.no"}, (), False),
        (SITE, {"Origin": "garbage"}, (), False),
        (SITE, {}, (), True),  # curl, scripts: no browser is acting for a visitor
        # Old browsers send no Origin on a same-origin form post, but a Referer.
        (SITE, {"Referer": SITE + "/side?x=1"}, (), True),
        (SITE, {"Referer": "https://evil.example/page"}, (), False),
        (SITE, {"Referer": "http://www.example.no/side"}, (), False),
        # TLS ends at a load balancer: the app sees http, browsers send https.
        ("http://www.example.no", {"Origin": SITE}, (), False),
        ("http://www.example.no", {"Origin": SITE}, (SITE,), True),
        ("http://www.example.no", {"Origin": "https://example.no"}, (SITE, "https://a.no"), False),
        ("http://www.example.no", {"Origin": "https://a.no"}, (SITE, "https://a.no"), True),
        ("http://www.example.no", {"Origin": "http://www.example.no"}, (SITE,), False),
        ("http://www.example.no", {"Referer": SITE + "/a"}, (SITE,), True),
    ],
)
async def test_same_origin_rule(
    base: str, headers: dict[str, str], trusted: tuple[str, ...], ok: bool
) -> None:
    app = any_page_app(**({"trusted_origins": list(trusted)} if trusted else {}))
    async with client_for(app, base) as client:
        for path, data in (("/_consent", {"action": "accept_all"}), ("/_consent/forget", {})):
            response = await client.post(path, data=data, headers=headers)
            assert (response.status_code < 400) is ok, (path, response.status_code)
            if not ok:
                assert response.status_code == 403 and "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "bad",
    [
        "https://www.example.no/",
        "https://www.example.no/path",
        "www.example.no",
        "ftp://www.example.no",
        "https://user@www.example.no",
        "https://www.example.no:99999",
        "https://www.example.no?x",
        "https://søk.no",
        " https://www.example.no",
    ],
)
def test_trusted_origins_are_validated(bad: str) -> None:
    with pytest.raises(ConfigError, match="trusted_origins"):
        ConsentConfig(secret_key=SECRET, trusted_origins=[bad])
    with pytest.raises(ConfigError, match="list of origins"):
        ConsentConfig(secret_key=SECRET, trusted_origins="https://www.example.no")  # type: ignore[arg-type]


def test_trusted_origins_from_the_environment() -> None:
    env = {
        "CONSENTMW_SECRET_KEY": SECRET,
        "CONSENTMW_TRUSTED_ORIGINS": "https://www.example.no, https://example.no:8443",
    }
    config = config_from_env(env)
    assert list(config.trusted_origins) == ["https://www.example.no", "https://example.no:8443"]


def test_check_notes_a_forced_secure_cookie_without_trusted_origins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("CONSENTMW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CONSENTMW_SECRET_KEY", SECRET)
    monkeypatch.setenv("CONSENTMW_RECORDS_URL", "none")
    monkeypatch.setenv("CONSENTMW_SECURE_COOKIE", "true")
    assert cli_main(["check"]) == 0
    err = capsys.readouterr().err
    assert "trusted_origins" in err and "CONSENTMW_TRUSTED_ORIGINS" in err
    monkeypatch.setenv("CONSENTMW_TRUSTED_ORIGINS", "https://www.example.no")
    assert cli_main(["check"]) == 0
    assert "note" not in capsys.readouterr().err


# -- headers on every answer ----------------------------------------------------------------------
async def test_nosniff_on_every_answer_under_the_prefix() -> None:
    async with client_for(any_page_app()) as client:
        page_html = (await client.get("/")).text
        static = re.findall(r'(?:href|src)="(/_consent/static/[^"]+)"', page_html)
        assert static
        requests = [
            client.get("/_consent"),
            client.head("/_consent"),
            client.get("/_consent/preferences"),
            client.get("/_consent/cookies"),
            client.get("/_consent/me"),
            client.get("/_consent/nothing"),  # 404
            client.delete("/_consent"),  # 405
            client.post("/_consent/static/x/consent.js"),  # 405
            client.post("/_consent", content=b"x", headers={"Content-Type": "text/plain"}),
            client.post("/_consent", content=b"a=" + b"x" * 70000),  # 413
            client.post("/_consent", data={"action": "x"}),  # 400
            client.post("/_consent", data={"action": "save"}, headers={"Origin": "null"}),
            client.post("/_consent", data={"action": "save"}),  # 303
            client.post("/_consent/forget"),
            *(client.get(url) for url in static),
            client.get("/_consent/static/000/consent.css"),
        ]
        for request in requests:
            response = await request
            assert response.headers.get("x-content-type-options") == "nosniff", response


# -- secrets in repr ------------------------------------------------------------------------------
def test_config_repr_redacts_keys_and_passwords() -> None:
    keys = [SECRET, "another-rotation-key-also-long-enough-9876543210"]
    config = ConsentConfig(
        secret_key=keys,
        records_url=f"postgresql://consent:{PG_PASSWORD}@db.internal/consent"
        f"?sslmode=require&password={PG_PASSWORD}",
        privacy_policy_url=f"https://editor:{PG_PASSWORD}@www.example.no/personvern",
    )
    for text in (repr(config), str(config), repr(describe(config))):
        for secret in (*keys, PG_PASSWORD):
            assert secret not in text
    text = repr(config)
    assert "<2 key(s), redacted>" in text
    assert "postgresql://consent:***@db.internal/consent?sslmode=require&password=***" in text
    assert "policy_version='1'" in text  # the rest is still shown
    with pytest.raises(ConfigError) as info:
        ConsentConfig(secret_key=SECRET, records_url=f"mysql://u:{PG_PASSWORD}@db/x")
    assert PG_PASSWORD not in str(info.value)


# -- no 5xx for any input -----------------------------------------------------------------------
PREFIX_PATHS = ["", "/", "/preferences", "/cookies", "/me", "/forget", "/static/", "/x"]
HEADER_NAMES = [
    b"cookie", b"origin", b"referer", b"sec-fetch-site", b"host", b"content-type", b"accept",
    b"accept-language", b"sec-gpc", b"dnt", b"user-agent", b"x-forwarded-for",
    b"content-length",
]  # fmt: skip
HEADER_VALUES = [
    b"application/json", b"application/x-www-form-urlencoded; charset=utf-8", b"null",
    b"https://www.example.no", b"same-site", b"none", b"1", b"*/*", b"text/html",
]  # fmt: skip
CONTENT_TYPES = [
    None, b"application/json", b"application/x-www-form-urlencoded", b"text/plain",
    b"application/json; charset=\xff", b"multipart/form-data; boundary=x",
]  # fmt: skip
header_lists = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES) | st.binary(min_size=1, max_size=20),
        st.binary(max_size=300) | st.sampled_from(HEADER_VALUES),
    ),
    max_size=8,
)
form_pairs = st.lists(
    st.tuples(st.sampled_from(["source", "lang", "x"]), st.text(max_size=40))
    | st.tuples(st.just("action"), st.sampled_from(["accept_all", "reject_all", "save", "x"]))
    | st.tuples(st.just("category"), st.sampled_from(["analytics", "necessary"]) | st.text())
    | st.tuples(st.just("next"), st.text(max_size=20).map(lambda t: "/" + t) | st.text()),
    max_size=8,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(str.encode),
    form_pairs.map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 40000).map(lambda n: b"[" * n),
)
cookies = st.sampled_from(["none", "valid", "tampered", "garbage"])


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsentMiddleware]:
    db = tmp_path_factory.mktemp("hostile") / "receipts.db"
    app = any_page_app(records_url=f"sqlite:///{db}", trusted_origins=["https://www.example.no"])
    yield app
    asyncio.run(app.receipts.store.close())


def serve(
    app: ConsentMiddleware,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    cookie: str,
    body: bytes,
    scheme: str = "https",
) -> None:
    """One raw ASGI request: it must get a non-5xx answer with nosniff and a safe Location."""
    headers = [(k.lower(), v) for k, v in headers]
    if cookie != "none":
        state = ConsentState(decided=True, granted=frozenset({"analytics"}), policy_version="1")
        value = app.codec.encode(state)
        if cookie == "tampered":
            value = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
        elif cookie == "garbage":
            value = "\u00ff%00;;==" + value[::-1]
        headers.append((b"cookie", f"consentmw={value}; _ga=GA1.1".encode("latin-1")))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "client": ("203.0.113.9", 5000),
        "server": ("www.example.no", 443),
    }
    chunks = [body[:100], body[100:]] if len(body) > 100 else [body]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    assert start["type"] == "http.response.start"
    assert start["status"] < 500, (start, sent[1:])
    names = [k for k, _ in start["headers"]]
    assert b"x-content-type-options" in names
    for name, value in start["headers"]:
        if name == b"location":
            assert value.isascii() and value.startswith(b"/") and not value.startswith(b"//")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sub=st.sampled_from(PREFIX_PATHS) | st.text(max_size=30).map(lambda s: "/" + s),
    raw_tail=st.binary(max_size=30),
    query=st.binary(max_size=80),
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "X", "get"]),
    headers=header_lists,
    cookie=cookies,
    body=bodies,
    scheme=st.sampled_from(["http", "https"]),
)
def test_no_route_answers_5xx(
    hostile_app: ConsentMiddleware,
    sub: str,
    raw_tail: bytes,
    query: bytes,
    method: str,
    headers: list[tuple[bytes, bytes]],
    cookie: str,
    body: bytes,
    scheme: str,
) -> None:
    sub = sub or ("/" if raw_tail else "")  # always under the prefix
    raw_path = b"/_consent" + sub.encode("utf-8") + raw_tail
    serve(hostile_app, method, raw_path, query, headers, cookie, body, scheme)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from([b"/_consent", b"/_consent/", b"/_consent/forget"]),
    content_type=st.sampled_from(CONTENT_TYPES),
    headers=header_lists,
    cookie=cookies,
    body=bodies,
)
def test_no_decision_answers_5xx(
    hostile_app: ConsentMiddleware,
    path: bytes,
    content_type: bytes | None,
    headers: list[tuple[bytes, bytes]],
    cookie: str,
    body: bytes,
) -> None:
    """Form and JSON decisions with any body: 2xx, 3xx or 4xx, never 5xx."""
    if content_type is not None:
        headers = [(b"content-type", content_type), *headers]
    serve(hostile_app, "POST", path, b"", headers, cookie, body)
