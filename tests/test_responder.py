"""The middleware's response path equals the pure reference, message for message.

ConsentMiddleware's one responder injects single-message and streamed HTML bodies (one
pass over the headers, the snippet cached as bytes). This checks, over generated headers,
statuses, methods, bodies and chunkings, that what leaves the middleware is what the pure
helpers of :mod:`consentmw.pages` say: :func:`inject_once` of the whole body with this
response's snippet (for a streamed body, within the tail-window contract of
:mod:`tests.stream_support`), and :func:`changed_headers` for the start message.
"""

from __future__ import annotations

import asyncio
from itertools import accumulate
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.types import Message

from consentmw import ConsentMiddleware
from consentmw.consent import ConsentState
from consentmw.pages import (
    SNIPPET_END,
    SNIPPET_MARKER,
    changed_headers,
    csp_nonce,
    find_html_lang,
    html_codec,
    inject_once,
)

from .stream_support import streamed_reference

SECRET = "responder-test-secret-0123456789abcdefghij"

HEADER_POOL: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"Content-Type", b"text/html"),
    (b"content-type", b"TEXT/HTML; charset=latin-1"),
    (b"content-type", b"application/xhtml+xml"),
    (b"content-type", b"application/json"),
    (b"content-type", b"text/html; charset=utf-16"),
    (b"content-length", b"42"),
    (b"Content-Length", b"7"),
    (b"etag", b'"v1"'),
    (b"ETag", b'W/"v2"'),
    (b"vary", b"Accept-Encoding"),
    (b"Vary", b"*"),
    (b"vary", b"cookie"),
    (b"vary", b""),
    (b"content-encoding", b"gzip"),
    (b"Content-Encoding", b"identity"),
    (b"content-security-policy", b"script-src 'nonce-abc123' 'self'"),
    (b"content-security-policy-report-only", b"script-src 'nonce-zzz'"),
    (b"cache-control", b"no-cache"),
    (b"x-frame-options", b"DENY"),
]
PIECES = [
    "<!doctype html><html lang='en'><head></head><body>",
    "<html lang=nb-NO><body>",
    "<p>tekst med æøå</p>",
    "</body>",
    "</BODY >",
    "</html>",
    "<!--/consentmw-->",
    "</bo",
    "dy>",
    "x" * 300,
]

headers = st.lists(st.sampled_from(HEADER_POOL), max_size=8)
bodies = st.lists(st.sampled_from(PIECES), max_size=12).map(lambda p: "".join(p).encode())


def middleware() -> ConsentMiddleware:
    return ConsentMiddleware(lambda s, r, c: None, secret_key=SECRET, records_url=None)


MW = middleware()


def scope(method: str, accept_language: bytes | None) -> dict[str, Any]:
    hdrs = [(b"host", b"www.example.no")]
    if accept_language is not None:
        hdrs.append((b"accept-language", accept_language))
    return {
        "type": "http", "method": method, "path": "/side", "query_string": b"a=1&b=<2>",
        "headers": hdrs, "scheme": "https", "client": ("203.0.113.9", 1234),
    }  # fmt: skip


def messages(status: int, hdrs: list[tuple[bytes, bytes]], body: bytes, cuts: list[int]) -> list:
    out: list[Message] = [{"type": "http.response.start", "status": status, "headers": hdrs}]
    bounds = [0, *sorted(c for c in cuts if c <= len(body)), len(body)]
    for i in range(len(bounds) - 1):
        more = i < len(bounds) - 2
        part = body[bounds[i] : bounds[i + 1]]
        out.append({"type": "http.response.body", "body": part, "more_body": more})
    return out


def serve(
    sent: list[Message], sc: dict[str, Any], mw: ConsentMiddleware = MW, copy: bool = True
) -> list[Message]:
    """Messages ``sent`` by an app (copies of them, unless told) through ``mw``; what leaves."""
    out: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for m in sent:
            if copy:
                m = {**m, "headers": list(m["headers"])} if "headers" in m else dict(m)
            await send(m)

    async def collect(message: Message) -> None:
        out.append(message)

    mw.app = app
    asyncio.run(mw(sc, _receive, collect))
    return out


def through_reference(method: str, lang: bytes | None, sent: list[Message]) -> list[Message]:
    """What the middleware must send for ``sent`` (one start, then body messages), by the
    pure helpers: untouched, or the reference injection with rewritten headers."""
    start, bodies = sent[0], sent[1:]
    hdrs = list(start["headers"])
    ctypes = [v for k, v in hdrs if k.lower() == b"content-type"]
    encodings = [v for k, v in hdrs if k.lower() == b"content-encoding"]
    status = start["status"]
    codec = html_codec(ctypes[0]) if ctypes else None
    if encodings and encodings[-1].strip().lower() not in (b"", b"identity"):
        codec = None
    if status < 200 or status in (204, 205, 206, 304) or method == "HEAD" or codec is None:
        return [dict(m) for m in sent]
    whole = b"".join(m["body"] for m in bodies)
    state = ConsentState(policy_version=MW.config.policy_version)
    language = MW.policy.page_language(find_html_lang(whole), lang)
    nonce = csp_nonce(hdrs)
    snippet = MW.banner.snippet_parts(language, state, nonce)
    encoded = snippet.encode(codec, errors="xmlcharrefreplace")
    out = inject_once(whole, encoded)
    if len(bodies) > 1:  # streamed: headers leave before the body is seen
        ends = list(accumulate(len(m["body"]) for m in bodies))
        out = streamed_reference(whole, ends, encoded)
        head = {**start, "headers": changed_headers(hdrs, None)}
        return [head, *({**m, "body": out if m is bodies[-1] else b""} for m in bodies)]
    if out != whole:
        start = {**start, "headers": changed_headers(hdrs, len(out))}
    return [start, {**bodies[0], "body": out}]


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def normal(msgs: list[Message]) -> list[Any]:
    """Messages as comparable values (header items as tuples of bytes); a streamed body
    as its bytes in the last body message, since where it is cut does not matter."""
    out = []
    for m in msgs:
        m = dict(m)
        if "headers" in m:
            m["headers"] = [(bytes(k), bytes(v)) for k, v in m["headers"]]
        out.append(m)
    bodies = [m for m in out if m["type"] == "http.response.body"]
    if len(bodies) > 1:
        whole = b"".join(bytes(m["body"]) for m in bodies)
        for m in bodies:
            m["body"] = whole if m is bodies[-1] else b""
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hdrs=headers,
    body=bodies,
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=3),
    status=st.sampled_from([200, 200, 200, 404, 204, 206, 304, 500]),
    method=st.sampled_from(["GET", "GET", "POST", "HEAD"]),
    lang=st.sampled_from([None, b"en-GB,en;q=0.9", b"nb-NO", b"de"]),
)
# Found by this test: an end tag in the first chunk, before <html lang>, fixed the language
# of a streamed page's snippet too early (nb here, where the page says en).
@example(
    hdrs=[(b"content-type", b"text/html; charset=utf-8")],
    body=b"<!--/consentmw--></body><!doctype html><html lang='en'><head></head><body>",
    cuts=[24],
    status=200,
    method="GET",
    lang=None,
)
def test_middleware_sends_what_the_reference_says(
    hdrs: list[tuple[bytes, bytes]],
    body: bytes,
    cuts: list[int],
    status: int,
    method: str,
    lang: bytes | None,
) -> None:
    sent = messages(status, hdrs, body, cuts)
    got = serve(sent, scope(method, lang))
    # The middleware adds Set-Cookie only for refused cookies; this request carries none.
    assert normal(got) == normal(through_reference(method, lang, sent))


@pytest.mark.parametrize(
    "page",
    [
        b"<html lang='%s'><body><p>x</p></body></html>",
        b"<!DOCTYPE html><HTML LANG=%s><BODY><p>x</p></BODY></HTML>",  # no lower-case tag
        b'<html\n  class=x lang="%s"><body><p>x</p></body></html>',
    ],
)
def test_cached_snippet_bytes_follow_page_language_and_name_no_page(page: bytes) -> None:
    """The snippet cache never serves one language's snippet on another, and the snippet
    names no page, so pages share it."""
    for _ in range(2):
        check_languages(page)


def check_languages(page: bytes) -> None:
    for lang, expect in ((b"en", b'lang="en"'), (b"nb", b'lang="nb"')):
        for query in (b"", b"q=1"):
            sent = messages(
                200, [(b"content-type", b"text/html"), (b"content-length", b"1")], page % lang, []
            )
            sc = scope("GET", None)
            sc["query_string"] = query
            out = serve(sent, sc)
            html = out[1]["body"]
            assert html.count(SNIPPET_MARKER) == 1 and html.count(SNIPPET_END) == 1
            assert expect in html
            assert b"/side" not in html and b'name="next"' not in html
            assert dict(out[0]["headers"])[b"content-length"] == str(len(html)).encode()


def run_app(messages_out: list[Message], cookie: bytes | None = None) -> list[Message]:
    """Send ``messages_out`` (as given, no copies) through a fresh middleware."""
    sc = scope("GET", b"en")
    if cookie:
        sc["headers"].append((b"cookie", cookie))
    return serve(messages_out, sc, middleware(), copy=False)


@pytest.mark.parametrize("first_type", [b"text/html", b"application/json"])
def test_every_start_message_is_filtered(first_type: bytes) -> None:
    """An app (say, an error handler) that starts twice gets both starts enforced."""
    tracker = (b"set-cookie", b"_ga=GA1.1.1.1; Path=/")

    def start(status: int, ctype: bytes) -> Message:
        headers = [(b"content-type", ctype), tracker]
        return {"type": "http.response.start", "status": status, "headers": headers}

    body = {"type": "http.response.body", "body": b"<html><body>x</body></html>"}
    out = run_app([start(200, first_type), start(500, b"text/html"), body], b"_ga=1; _gid=2")
    starts = [m for m in out if m["type"] == "http.response.start"]
    # A held HTML start never left, so the second replaces it; a passed one already left.
    assert [m["status"] for m in starts] == ([500] if first_type == b"text/html" else [200, 500])
    for m in starts:
        cookies = [bytes(v) for k, v in m["headers"] if bytes(k).lower() == b"set-cookie"]
        assert b"_ga=GA1.1.1.1; Path=/" not in cookies  # refused: removed
        assert any(c.startswith(b"_gid=;") for c in cookies)  # and the old ones expired


def test_bytearray_and_list_header_items_and_bodies() -> None:
    """Header items and bodies that are bytes-like but not bytes work as bytes do."""
    page = b"<html lang='en'><body>x</body></html>"
    plain_hdrs = [(b"content-type", b"text/html"), (b"vary", b"Accept"), (b"etag", b'"1"')]
    plain = run_app(
        [
            {"type": "http.response.start", "status": 200, "headers": list(plain_hdrs)},
            {"type": "http.response.body", "body": page},
        ]
    )
    for odd_body in (bytearray(page), memoryview(page)):
        odd_hdrs = [
            [bytearray(b"Content-Type"), bytearray(b"text/html")],
            (bytearray(b"vary"), bytearray(b"Accept")),
            (b"etag", bytearray(b'"1"')),
        ]
        odd = run_app(
            [
                {"type": "http.response.start", "status": 200, "headers": odd_hdrs},
                {"type": "http.response.body", "body": odd_body},
            ]
        )
        assert bytes(odd[1]["body"]) == plain[1]["body"] and SNIPPET_MARKER in plain[1]["body"]
        assert normal(odd)[0]["headers"][1:] == normal(plain)[0]["headers"][1:]
    json_odd = run_app(
        [
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (bytearray(b"x-a"), b"1")],
            },
            {"type": "http.response.body", "body": bytearray(b"{}")},
        ]
    )
    assert bytes(json_odd[1]["body"]) == b"{}"


def test_long_urls_and_headers_are_served_and_share_the_cache() -> None:
    """Caches stay bounded in bytes: a 2 KB Accept-Language is keyed by what is read, and
    a 2 KB URL is no part of the key (the snippet names no page)."""
    mw = middleware()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/html")],
    }
    body = {"type": "http.response.body", "body": b"<html><body>x</body></html>"}
    for path, accept in (("/" + "p" * 2000, b"en"), ("/short", b"en-GB," + b"x" * 2000)):
        sc = scope("GET", accept)
        sc["path"], sc["query_string"] = path, b""
        out = serve([start, body], sc, mw)
        assert SNIPPET_MARKER in out[1]["body"] and b'lang="en"' in out[1]["body"]
    cached = list(mw.snippets.cache)
    assert len(cached) == 2 and not any("p" * 2000 in repr(k) for k in cached)
    assert all(len(k[1]) <= 512 for k in cached)  # Accept-Language keyed by what is read


# --- the end marker cannot be forged by page content ------------------------------------------
PAGE = b"<!doctype html><html lang='en'><head></head><body><main>%s</main>%s</body></html>"
HTML = [(b"content-type", b"text/html; charset=utf-8")]


def body_of(out: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")


def through_mw(body: bytes, cuts: list[int], path: str = "/side", csp: bytes = b"") -> bytes:
    sc = scope("GET", None)
    sc["path"], sc["query_string"] = path, b""
    hdrs = HTML + ([(b"content-security-policy", csp)] if csp else [])
    return body_of(serve(messages(200, hdrs, body, cuts), sc))


SPLITS = [[], [60], [10, 90, 200], list(range(0, 20000, 37))]


@pytest.mark.parametrize("cuts", SPLITS)
def test_end_marker_in_page_content_does_not_suppress_the_banner(cuts: list[int]) -> None:
    """A comment ending in the marker just before </body> still gets the banner."""
    page = PAGE % (b"<p>comment</p>", b"<!--/consentmw-->")
    out = through_mw(page, cuts)
    assert out.count(SNIPPET_MARKER) == 1 and out.count(SNIPPET_END) == 2
    assert out == through_mw(PAGE % (b"<p>comment</p>", b""), []).replace(
        b"<main><p>comment</p></main>", b"<main><p>comment</p></main><!--/consentmw-->"
    )


@pytest.mark.parametrize("cuts", SPLITS)
@pytest.mark.parametrize("copied", [40, 400, None])
def test_marker_copied_from_a_real_response_does_not_suppress_the_banner(
    cuts: list[int], copied: int | None
) -> None:
    """The end of a real injected response (marker and the snippet bytes before it, up to the
    whole snippet of another page, or of another response's nonce) pasted as content."""
    real = through_mw(PAGE % (b"", b""), [], path="/other")
    end = real.index(SNIPPET_END) + len(SNIPPET_END)
    root = real.rindex(b"<div", 0, real.index(SNIPPET_MARKER))  # the snippet's first tag
    start = root if copied is None else end - copied
    paste = real[start:end]
    page = PAGE % (b"<p>comment</p>", paste)
    out = through_mw(page, cuts)
    if copied is None:
        # The snippet names no page: another page's whole snippet, for a visitor in the same
        # state and language, is byte for byte the one this page would get, so the page
        # already carries it (a working banner and script) and is left as it is.
        assert out == page
    else:  # a part of it is content: this page's own snippet goes in
        assert out.count(SNIPPET_END) == 2 and out.count(b"data-consentmw-snippet") == 1
    nonced = through_mw(PAGE % (b"", b""), [], csp=b"script-src 'nonce-first'")
    i = nonced.rindex(b"<div", 0, nonced.index(SNIPPET_MARKER))
    paste = nonced[i : nonced.index(SNIPPET_END) + len(SNIPPET_END)]
    again = through_mw(PAGE % (b"", paste), cuts, csp=b"script-src 'nonce-second'")
    assert again.count(SNIPPET_END) == 2 and b'nonce="second"' in again


def test_a_page_whose_lang_follows_the_end_tag_is_not_injected_twice_when_streamed() -> None:
    """Stacked middleware, streamed the second time: the check for a snippet already there
    is made again once the start of the body holds the page's <html lang> (the first check,
    made with less of it, compared with the snippet in another language)."""
    page = b"<!doctype html><body><p>x</p></body><html lang='en'>"
    once = through_mw(page, [])
    assert once.count(SNIPPET_END) == 1 and b'lang="en"' in once
    cut = once.index(b"</body>") + len(b"</body>")
    for cuts in ([cut], [cut - 3], [cut, cut + 5]):
        assert through_mw(once, cuts) == once


@pytest.mark.parametrize("cuts", SPLITS)
@pytest.mark.parametrize("csp", [b"", b"script-src 'nonce-abc123'"])
def test_a_genuinely_injected_body_is_not_injected_again(cuts: list[int], csp: bytes) -> None:
    """Stacked middleware: what consentmw sent once passes it a second time unchanged,
    single-message and streamed."""
    for page in (PAGE % (b"<p>x</p>", b""), PAGE % (b"<p>x</p>", b"<!--/consentmw-->")):
        once = through_mw(page, [], csp=csp)
        assert through_mw(once, cuts, csp=csp) == once
        assert through_mw(through_mw(page, cuts, csp=csp), [], csp=csp) == once


def test_a_banner_view_is_counted_only_when_the_snippet_goes_in(tmp_path: Any) -> None:
    """A streamed page that already carries this very snippet (stacked middleware) is
    passed on unchanged and is not counted as a second banner view."""
    mw = ConsentMiddleware(
        lambda s, r, c: None, secret_key=SECRET, records_url=f"sqlite:///{tmp_path}/r.db"
    )
    counter = mw.receipts.counter
    assert counter is not None
    page = PAGE % (b"<p>x</p>", b"")
    sc = scope("GET", b"en")
    sc["path"], sc["query_string"] = "/side", b""
    once = body_of(serve(messages(200, HTML, page, []), dict(sc), mw))
    assert counter.pending == 1
    again = body_of(serve(messages(200, HTML, once, [40, 400]), dict(sc), mw))
    assert again == once
    assert counter.pending == 1  # passed on, not shown again
    body_of(serve(messages(200, HTML, page, [40, 400]), dict(sc), mw))
    assert counter.pending == 2  # streamed and injected: counted


def test_the_apps_own_header_list_is_never_changed() -> None:
    """A response object reused across requests sends the same header list each time:
    the injected responses get their own Content-Length and Vary, the list stays as it was."""
    page = b"<html lang=en><body><p>x</p></body></html>"
    shared = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", b"%d" % len(page)),
    ]
    before = list(shared)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": shared})
        await send({"type": "http.response.body", "body": page})

    mw = ConsentMiddleware(app, secret_key=SECRET, records_url=None)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    for _ in range(3):
        sent.clear()
        asyncio.run(mw(scope("GET", b"en"), _no_body, send))
        start, body = sent
        assert shared == before
        names = [name for name, _ in start["headers"]]
        assert names.count(b"vary") == 1 and names.count(b"content-length") == 1
        assert dict(start["headers"])[b"content-length"] == b"%d" % len(body["body"])
        assert len(body["body"]) > len(page)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize("kind", ["generator", "tuple"])
def test_headers_given_as_any_iterable(kind: str) -> None:
    """ASGI lets an app give its headers as any iterable, a one-shot generator included:
    they are read once, and an injected page still gets its exact Content-Length."""
    page = b"<html lang=en><body><p>x</p></body></html>"
    items = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", b"%d" % len(page)),
        (b"x-frame-options", b"DENY"),
    ]
    headers = (item for item in items) if kind == "generator" else tuple(items)
    out = run_app(
        [
            {"type": "http.response.start", "status": 200, "headers": headers},
            {"type": "http.response.body", "body": page},
        ]
    )
    start, body = out
    sent = dict(start["headers"])
    assert SNIPPET_MARKER in body["body"]
    assert sent[b"content-length"] == b"%d" % len(body["body"])
    assert sent[b"x-frame-options"] == b"DENY" and sent[b"vary"] == b"Cookie"
