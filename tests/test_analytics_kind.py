"""Page views that mean page views: the ``kind`` classifier, campaign parameters, and the
fields the request log writes for them (through the real middleware and writer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentmw.analytics.campaign import campaign, clean_value
from consentmw.analytics.kind import KINDS, is_bot, kind_of, path_class
from consentmw.requestlog import RequestLogMiddleware
from consentmw.requestlog.encoder import make_encoder
from consentmw.requestlog.record import PendingRecord, build_record, encode_record
from consentmw.requestlog.useragent import UAParser
from tests.requestlog_helpers import UA_CHROME, UA_IPHONE, read_records, run

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("method", "status", "ctype", "path", "ua", "kind"),
    [
        ("GET", 200, "text/html; charset=utf-8", "/", UA_CHROME, "page"),
        ("GET", 200, "text/html", "/products/sms.html", UA_IPHONE, "page"),
        ("GET", 304, None, "/about", UA_CHROME, "page"),
        ("GET", 200, "text/css", "/static/site.css", UA_CHROME, "asset"),
        ("GET", 200, "image/png", "/logo", UA_CHROME, "asset"),
        ("GET", 304, None, "/static/app.js", UA_CHROME, "asset"),
        ("GET", 200, "text/plain", "/robots.txt", UA_CHROME, "asset"),
        ("GET", 200, "text/html", "/favicon.ico", UA_CHROME, "asset"),
        ("GET", 200, "application/json", "/prices", UA_CHROME, "api"),
        ("POST", 200, "text/html", "/search", UA_CHROME, "api"),
        ("GET", 204, None, "/api/ping", UA_CHROME, "api"),
        ("GET", 200, "text/html", "/_consent/preferences", UA_CHROME, "consent"),
        ("POST", 303, None, "/_consent", UA_CHROME, "consent"),
        ("GET", 302, "text/html", "/old-page", UA_CHROME, "redirect"),
        ("GET", 404, "text/html", "/missing", UA_CHROME, "error"),
        ("GET", 500, "text/html", "/", UA_CHROME, "error"),
        ("GET", 200, "text/html", "/", GOOGLEBOT, "bot"),
        ("GET", 200, "text/html", "/", HEADLESS, "bot"),
        ("GET", 200, "text/html", "/", "curl/8.4.0", "bot"),
        ("GET", 200, "text/html", "/", "python-httpx/0.27.0", "bot"),
        ("GET", 200, "text/html", "/", None, "bot"),
        ("GET", 200, "text/html", "/", "   ", "bot"),
    ],
)
def test_kind_of(method: str, status: int, ctype: str | None, path: str, ua: Any, kind: str):
    parsed_bot = UAParser()(ua).device == "bot"
    assert kind_of(method, status, ctype, path, ua, parsed_bot) == kind


def test_custom_prefix_and_real_browsers_are_not_bots() -> None:
    assert path_class("/privacy/consent", "/privacy") == "consent"
    assert path_class("/privacy-policy", "/privacy") is None
    for ua in (UA_CHROME, UA_IPHONE):
        assert not is_bot(ua, UAParser()(ua).device == "bot")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", (None, None, None)),
        (b"utm_source=newsletter&utm_medium=email&utm_campaign=spring+sale",
         ("newsletter", "email", "spring sale")),
        (b"UTM_SOURCE=Facebook&utm_medium=social%20paid", ("Facebook", "social paid", None)),
        (b"utm_source=a&utm_source=b", ("a", None, None)),
        # token-like or personal values are dropped, the others kept
        (b"utm_source=x&utm_campaign=550e8400-e29b-41d4-a716-446655440000", ("x", None, None)),
        (b"utm_campaign=kunde+98765432", (None, None, None)),
        (b"utm_source=ola%40example.no", (None, None, None)),
        (b"utm_source=" + b"a" * 65, (None, None, None)),
        (b"utm_source=%3Cscript%3E", (None, None, None)),
        (b"utm_source=%ff%fe", (None, None, None)),
        (b"utm_campaign=eyJhbGciOiJIUzI1NiJ9", (None, None, None)),
        (b"utm_campaign=3f2a9c1d", (None, None, None)),
        (b"token=tok-DDD&email=a%40b.no&utm_medium=cpc", (None, "cpc", None)),
    ],
)  # fmt: skip
def test_campaign(query: bytes, expected: tuple[Any, ...]) -> None:
    got = campaign(query)
    assert (got["utm_source"], got["utm_medium"], got["utm_campaign"]) == expected


@given(st.text(max_size=80))
def test_clean_value_keeps_only_plain_short_values(raw: str) -> None:
    value = clean_value(raw)
    if value is not None:
        assert len(value) <= 64
        assert all(c.isascii() and (c.isalnum() or c in "._-+ ") for c in value)


def test_fast_and_generic_paths_write_the_same_line() -> None:
    parse = UAParser()
    encode = make_encoder(parse)
    for ua in (UA_CHROME.encode(), GOOGLEBOT.encode(), None, b"curl/8"):
        for extra in (
            None,
            (b"text/html; charset=utf-8", b"utm_source=news&utm_medium=email&x=tok"),
            (b"image/png", b""),
            (None, b"utm_campaign=%ff"),
        ):
            for path, status, method in (
                (b"/", 200, "GET"),
                (b"/a.css", 200, "GET"),
                (b"/_consent", 303, "POST"),
                (b"/x", 404, "GET"),
            ):
                pending = PendingRecord(
                    1_795_000_000.5, "198.51.0.0", None, None, method, path, status, 10,
                    1.5, ua, None, "undecided", None, extra,
                )  # fmt: skip
                generic = encode_record(build_record(pending, parse)).decode()
                assert encode(pending) == generic
                assert encode(tuple(pending)) == generic


async def html_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    if path.startswith("/_consent"):
        status, ctype = 303, None
    elif path.endswith(".css"):
        status, ctype = 200, b"text/css"
    elif path.startswith("/api/"):
        status, ctype = 200, b"application/json"
    elif path == "/missing":
        status, ctype = 404, b"text/html; charset=utf-8"
    else:
        status, ctype = 200, b"text/html; charset=utf-8"
    headers = [(b"Content-Type", ctype)] if ctype else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"<p>hi</p>"})


def test_middleware_writes_kind_and_campaign(tmp_path: Path) -> None:
    mw = RequestLogMiddleware(html_app, directory=str(tmp_path / "logs"), flush_interval=60)
    ua = [(b"user-agent", UA_CHROME.encode())]
    run(mw, "/", headers=ua, query=b"utm_source=news&utm_medium=email&email=a%40b.no")
    run(mw, "/site.css", headers=ua)
    run(mw, "/api/prices", headers=ua)
    run(mw, "/_consent", method="POST", headers=ua)
    run(mw, "/missing", headers=ua)
    run(mw, "/", headers=[(b"user-agent", GOOGLEBOT.encode())])
    mw.close()
    records = read_records(tmp_path / "logs")
    assert [r["kind"] for r in records] == ["page", "asset", "api", "consent", "error", "bot"]
    assert records[0]["utm_source"] == "news" and records[0]["utm_medium"] == "email"
    assert records[0]["utm_campaign"] is None and records[1]["utm_source"] is None
    raw = b"".join(p.read_bytes() for p in (tmp_path / "logs").iterdir())
    assert b"a@b.no" not in raw and b"a%40b.no" not in raw and b"email=" not in raw
    assert set(KINDS) >= {r["kind"] for r in records}


def test_odd_response_headers_do_not_break_the_response(tmp_path: Path) -> None:
    async def odd(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [("x", 1)]})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = RequestLogMiddleware(odd, directory=str(tmp_path / "logs"), flush_interval=60)
    result = run(mw, "/", headers=[(b"user-agent", UA_CHROME.encode())])
    mw.close()
    assert result["sent"][-1]["body"] == b"ok"
    [record] = read_records(tmp_path / "logs")
    assert record["kind"] == "api"  # no Content-Type and no file extension


@settings(max_examples=200)
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "get", "X" * 20]),
    status=st.integers(-5, 700),
    ctype=st.one_of(st.none(), st.binary(max_size=40)),
    query=st.one_of(st.none(), st.binary(max_size=60)),
    path=st.binary(min_size=0, max_size=40),
)
def test_any_input_gives_a_known_kind(method, status, ctype, query, path) -> None:
    parse = UAParser()
    pending = PendingRecord(
        1.0, "0.0.0.0", None, None, method, path, status, 0, 0.1, None, None, "x", None,
        (ctype, query),
    )  # fmt: skip
    record = build_record(pending, parse)
    assert record["kind"] in KINDS
    assert make_encoder(parse)(pending) == encode_record(record).decode()
