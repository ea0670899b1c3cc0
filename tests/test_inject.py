"""Tests for the responder's injection: real ASGI apps through httpx, and message-level tests.

The snippet comes from a recording stand-in (the banner has tests of its own); the
responder, the policy and every header rule are the real ones.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc

import httpx
import pytest
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentmw import responder
from consentmw.config import ConsentConfig
from consentmw.pages import SNIPPET_END, SNIPPET_MARKER, find_html_lang, inject_once
from consentmw.policy import ConsentPolicy, RequestContext
from consentmw.responder import STREAM_WINDOW, Responder

SNIPPET = '<div data-consentmw-snippet lang="{lang}" nonce="{nonce}">Godta alle</div>'
DOC = b'<!doctype html><html lang="en"><head></head><body><p>Hi</p></body></html>'

Headers = list[tuple[bytes, bytes]]


# Undeclared cookies pass, so Set-Cookie tests see the app's own headers.
POLICY = ConsentPolicy(
    ConsentConfig(
        secret_key="inject-test-secret-0123456789abcdefghij",
        records_url=None,
        undeclared_cookies="allow",
    )
)


class Renderer:
    """A snippet source that records its calls as ``(nonce, <html lang>)``."""

    def __init__(self, text: str = SNIPPET) -> None:
        self.text = text
        self.calls: list[tuple[str | None, str | None]] = []

    def __call__(
        self, ctx: RequestContext, head: bytes, nonce: str | None, codec: str
    ) -> tuple[bytes, str]:
        lang = find_html_lang(head)
        self.calls.append((nonce, lang))
        html = self.text.format(nonce=nonce, lang=lang)
        return html.encode(codec, errors="xmlcharrefreplace") + SNIPPET_END, lang or "en"


def responder_for(send: Send, render: Renderer, method: str = "GET", cls: type = Responder) -> Send:
    scope = {
        "type": "http", "method": method, "path": "/", "query_string": b"", "scheme": "https",
        "headers": [(b"host", b"www.example.no")],
    }  # fmt: skip
    return cls(send, POLICY.context(scope), POLICY, render).send  # type: ignore[no-any-return]


def snippet_bytes(nonce: str | None = None, lang: str | None = "en") -> bytes:
    return SNIPPET.format(nonce=nonce, lang=lang).encode()


def drive(
    chunks: list[bytes],
    headers: Headers | None = None,
    *,
    status: int = 200,
    method: str = "GET",
    render: Renderer | None = None,
    cls: type[Responder] = Responder,
) -> tuple[list[Message], bytes]:
    """Send a start message and ``chunks`` (the last with more_body False) through a responder."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        wrapped = responder_for(send, render or Renderer(), method, cls)
        hdrs = [(b"content-type", b"text/html; charset=utf-8")] if headers is None else headers
        await wrapped({"type": "http.response.start", "status": status, "headers": hdrs})
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            await wrapped({"type": "http.response.body", "body": chunk, "more_body": more})

    asyncio.run(run())
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent, body


def header_list(message: Message, name: bytes) -> list[bytes]:
    return [v for k, v in message["headers"] if k.lower() == name]


def wrap(app: ASGIApp, render: Renderer | None = None) -> ASGIApp:
    """The middleware's use of the responder, reduced to the essentials."""
    renderer = render or Renderer()

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        ctx = POLICY.context(scope)
        await app(scope, receive, Responder(send, ctx, POLICY, renderer).send)

    return wrapped


def request(app: ASGIApp, method: str = "GET") -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, "/")

    return asyncio.run(run())


def stream_app(parts: list[bytes], **kwargs: object) -> ASGIApp:
    async def gen():  # type: ignore[no-untyped-def]
        for part in parts:
            yield part

    return StreamingResponse(gen(), media_type="text/html", **kwargs)  # type: ignore[arg-type]


# --- real ASGI apps ----------------------------------------------------------------------------


def test_html_response_gets_snippet_and_exact_content_length() -> None:
    render = Renderer()
    resp = request(wrap(HTMLResponse(DOC.decode()), render))
    assert resp.content == inject_once(DOC, snippet_bytes())
    assert resp.content.count(SNIPPET_MARKER) == 1
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert resp.headers["vary"] == "Cookie"
    assert render.calls == [(None, "en")]


def test_streamed_response_drops_content_length() -> None:
    parts = [DOC[:40], DOC[40:62], DOC[62:]]
    app = stream_app(parts, headers={"content-length": str(len(DOC))})
    resp = request(wrap(app))
    assert resp.content == inject_once(DOC, snippet_bytes())
    assert "content-length" not in resp.headers
    assert resp.headers["vary"] == "Cookie"


def test_set_cookie_headers_stay_separate_and_ordered() -> None:
    response = HTMLResponse(DOC.decode())
    for name in ("a", "b", "c"):
        response.set_cookie(name, "1")
    resp = request(wrap(response))
    assert [c.split("=")[0] for c in resp.headers.get_list("set-cookie")] == ["a", "b", "c"]
    assert SNIPPET_MARKER in resp.content


# --- skip rules --------------------------------------------------------------------------------


def test_non_html_untouched() -> None:
    render = Renderer()
    app = JSONResponse({"html": "</body>"})
    bare, resp = request(app), request(wrap(app, render))
    assert resp.content == bare.content
    assert resp.headers.raw == bare.headers.raw
    assert render.calls == []


def test_head_untouched() -> None:
    sent, body = drive([DOC], method="HEAD")
    assert body == DOC
    assert sent[0]["headers"] == [(b"content-type", b"text/html; charset=utf-8")]


@pytest.mark.parametrize("status", [103, 204, 205, 206, 304])
def test_bodyless_and_partial_statuses_untouched(status: int) -> None:
    sent, body = drive([DOC], status=status)
    assert body == DOC
    assert header_list(sent[0], b"vary") == []


def test_fragment_is_byte_identical() -> None:
    frag = b'<div id="row" hx-swap-oob="true">row</div>'
    hdrs = [(b"content-type", b"text/html"), (b"content-length", b"42"), (b"etag", b'"v1"')]
    render = Renderer()
    sent, body = drive([frag], hdrs, render=render)
    assert body == frag
    assert sent[0]["headers"] == hdrs  # single message: known unchanged, headers as sent
    assert render.calls == []
    # Streamed fragments stay byte-identical too (headers were decided up front).
    _, body = drive([frag[:10], b"", frag[10:]], render=render)
    assert body == frag
    assert render.calls == []


def test_compressed_untouched_and_warned_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(responder, "_warned_encoding", False)
    hdrs = [(b"content-type", b"text/html"), (b"content-encoding", b"gzip")]
    with caplog.at_level(logging.WARNING, logger="consentmw"):
        for _ in range(3):
            sent, body = drive([DOC], hdrs)
            assert body == DOC
            assert sent[0]["headers"] == hdrs
    warnings = [r for r in caplog.records if r.name == "consentmw"]
    assert len(warnings) == 1
    assert "GZipMiddleware" in warnings[0].getMessage()


def test_identity_encoding_is_injected() -> None:
    _, body = drive([DOC], [(b"content-type", b"text/html"), (b"content-encoding", b"identity")])
    assert SNIPPET_MARKER in body


@pytest.mark.parametrize("charset", [b"x-no-such-charset", b"utf-16", b"base64"])
def test_unknown_or_non_ascii_compatible_charset_untouched(charset: bytes) -> None:
    sent, body = drive([DOC], [(b"content-type", b"text/html; charset=" + charset)])
    assert body == DOC
    assert header_list(sent[0], b"vary") == []


GENUINE = snippet_bytes(lang=None) + SNIPPET_END  # what Renderer injects into a page without lang


@pytest.mark.parametrize(
    "chunks",
    [
        [b"<html><body>" + GENUINE + b"</body></html>"],
        [b"<html><body>x" + GENUINE[:-9], GENUINE[-9:] + b"</body>", b"</html>"],
        [b"<html><body>", b"x" * 70000, GENUINE + b"\n  </BODY>", b"</html>"],
        [b"<html><body>", b"x" * 70000 + GENUINE[:20], GENUINE[20:] + b"</body>", b"</html>"],
        [b"<html><body>", *(GENUINE[k : k + 7] for k in range(0, len(GENUINE), 7)), b"</body>"],
        [b"<html><body>" + GENUINE + b"<script>tool()</script>\n</body></html>"],
        # the snippet at the end of one large chunk, the end tag early in the next
        [b"<html><body>" + b"x" * 70000 + GENUINE, b"</body>" + b"y" * 1500, b"</html>"],
    ],
)
def test_snippet_already_present_untouched(chunks: list[bytes]) -> None:
    """A body that already went through consentmw (stacked middleware) is not injected twice,
    whether it comes in one message or streamed, the snippet cut anywhere."""
    render = Renderer()
    _, body = drive(chunks, render=render)
    assert body == b"".join(chunks)
    assert render.calls == [(None, None)]  # rendered once, to compare


@pytest.mark.parametrize(
    "chunks",
    [
        [b"<html><body><p>" + SNIPPET_END + b"</p></body></html>"],
        [b"<html><body>x<!--/consent", b"mw--></body>", b"</html>"],
        [b"<html><body>", b"x" * 70000, SNIPPET_END + b"\n  </BODY>", b"</html>"],
        [b"<html><body>" + SNIPPET_END + b"<script>tool()</script>\n</body></html>"],
        # the tail of a real snippet, copied with its marker
        [b"<html><body><p>" + GENUINE[-40:] + b"</p></body></html>"],
        # a whole snippet for another language (another page), or another nonce
        [b"<html><body>" + snippet_bytes(lang="en") + SNIPPET_END + b"</body></html>"],
        [b"<html><body>" + snippet_bytes(nonce="old", lang=None) + SNIPPET_END + b"</body>"],
    ],
)
def test_forged_end_marker_does_not_stop_injection(chunks: list[bytes]) -> None:
    """Page content (a comment) holding the end marker, or a snippet copied from elsewhere,
    just before </body>: the banner is still injected."""
    page = b"".join(chunks)
    _, body = drive(chunks)
    assert body == page.replace(b"</body>", GENUINE + b"</body>").replace(
        b"</BODY>", GENUINE + b"</BODY>"
    )
    assert body.count(GENUINE) == page.count(GENUINE) + 1
    assert inject_once(page, snippet_bytes(lang=None)) == body


def test_marker_text_elsewhere_does_not_stop_injection() -> None:
    """A page that merely mentions the marker (docs, a quoted snippet) still gets a banner."""
    render = Renderer()
    page = b"<html><body><pre>" + SNIPPET_MARKER + b"</pre>" + b"y" * 2000 + b"</body></html>"
    _, body = drive([page], render=render)
    assert body == inject_once(page, snippet_bytes(lang=None))
    assert len(render.calls) == 1


def test_pathsend_passes_through() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        wrapped = responder_for(send, Renderer())
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/html")],
        }
        await wrapped(start)
        await wrapped({"type": "http.response.pathsend", "path": "/x.html"})

    asyncio.run(run())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert sent[0]["headers"] == [(b"content-type", b"text/html")]


# --- bad input ---------------------------------------------------------------------------------


def test_end_tag_split_at_every_position() -> None:
    doc = b"<html><body>x</body>mid</BODY \t>end</html>"
    expected = inject_once(doc, snippet_bytes(lang=None))
    for i in range(len(doc) + 1):
        for j in range(i, len(doc) + 1):
            _, body = drive([doc[:i], doc[i:j], doc[j:]])
            assert body == expected, (i, j)


def test_empty_body_and_empty_chunks() -> None:
    assert drive([b""])[1] == b""
    assert drive([b"", b"", b""])[1] == b""
    _, body = drive([b"", b"<body></bo", b"", b"dy>", b""])
    assert body == b"<body>" + snippet_bytes(lang=None) + SNIPPET_END + b"</body>"


def test_render_called_once_even_with_many_end_tags() -> None:
    render = Renderer()
    _, body = drive([b"</body>" * 5, b"</body>" * 5], render=render)
    assert len(render.calls) == 1
    assert body.count(SNIPPET_MARKER) == 1
    assert body.endswith(snippet_bytes(lang=None) + SNIPPET_END + b"</body>")


class SmallHold(Responder):
    max_hold = 100


def test_end_tag_followed_by_huge_tail_is_let_go() -> None:
    chunks = [b"<body>x</body>", b"y" * 80, b"y" * 80, b"</html>"]
    _, body = drive(chunks, cls=SmallHold)
    assert body == b"".join(chunks)  # untouched, never injected at a non-last end tag


def test_later_end_tag_after_let_go_is_used() -> None:
    chunks = [b"<body>x</body>", b"y" * 200, b"</body></html>"]
    _, body = drive(chunks, cls=SmallHold)
    assert body == inject_once(b"".join(chunks), snippet_bytes(lang=None))


# --- streamed bodies: the end tag is looked for in the last STREAM_WINDOW bytes -------------

FILLER = b"<main>" + b"<p>Godta alle</p>\n" * 600 + b"</main>\n"


def window_page(after: int) -> bytes:
    """A page whose ``</body`` has ``after`` bytes (at least 7) from its ``<`` to the end."""
    end = b"</body>\n<script>x()</script>\n</html>\n"
    if after < len(end):
        end = b"</body>" + b"\n" * (after - 7)
    else:
        end = end[:7] + b" " * (after - len(end)) + end[7:]
    return b"<html><body>" + FILLER + end


def chunked(page: bytes, size: int) -> list[bytes]:
    return [page[i : i + size] for i in range(0, len(page), size)]


@pytest.mark.parametrize("size", [1, 7, 100, 1000, STREAM_WINDOW - 1, STREAM_WINDOW, 4096, 70000])
@pytest.mark.parametrize("after", [7, 16, STREAM_WINDOW // 2, STREAM_WINDOW])
def test_final_end_tag_within_the_window_is_found_at_any_chunking(size: int, after: int) -> None:
    """Contract: a document whose final </body starts within its last STREAM_WINDOW bytes
    gets the snippet, in chunks of any size, and also when the last chunk is empty."""
    page = window_page(after)
    assert len(page) - page.rindex(b"</body") == after
    expected = inject_once(page, snippet_bytes(lang=None))
    assert drive(chunked(page, size))[1] == expected
    assert drive([*chunked(page, size), b""])[1] == expected


@pytest.mark.parametrize("after", [7, STREAM_WINDOW])
def test_end_tag_split_anywhere_within_the_window_is_found(after: int) -> None:
    """Contract: the end tag cut at any byte, the rest of the page in one chunk."""
    page = window_page(after)
    at = page.rindex(b"</body")
    expected = inject_once(page, snippet_bytes(lang=None))
    for cut in range(at - 1, at + 9):
        assert drive([page[:cut], page[cut:]])[1] == expected, cut
        assert drive([page[:cut], page[cut:], b""])[1] == expected, cut


@pytest.mark.parametrize("extra", [1, 100, 60000])
def test_end_tag_followed_by_more_than_the_window_in_its_chunk_is_not_seen(extra: int) -> None:
    """Contract: with more than STREAM_WINDOW bytes from the end tag to the end of its
    chunk, the streamed body passes untouched and stays valid; in one message the end tag
    is found (the whole body is searched)."""
    page = window_page(STREAM_WINDOW + extra)
    at = page.rindex(b"</body")
    render = Renderer()
    for chunks in ([page[:at], page[at:]], [page[:10], page[10:]], [page[:10], page[10:], b""]):
        assert drive(chunks, render=render)[1] == page
    assert render.calls == []  # never rendered: no end tag was seen
    assert drive([page])[1] == inject_once(page, snippet_bytes(lang=None))


def test_end_tag_beyond_the_window_lets_an_earlier_held_one_go() -> None:
    """A held end tag is not the last once a later one arrives, even beyond the window:
    the body passes untouched, never with the snippet before an end tag that is not the last."""
    chunks = [b"<html><body>x</body>", b"<p>y</p></body>" + b"w" * STREAM_WINDOW, b"</html>"]
    assert drive(chunks)[1] == b"".join(chunks)
    # ... and a later end tag within the window is used again.
    chunks[-1] = b"</body></html>"
    assert drive(chunks)[1] == inject_once(b"".join(chunks), snippet_bytes(lang=None))


def test_usual_chunks_leave_as_the_very_same_messages() -> None:
    """Large chunks without an end tag near their end pass on as the app's own message
    objects (nothing copied); a chunk ending in what may begin an end tag is cut there."""
    middle = [FILLER + FILLER, FILLER + b"<p", FILLER + b"</BO"]
    sent: list[Message] = []
    received: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        wrapped = responder_for(send, Renderer())
        hdrs = [(b"content-type", b"text/html")]
        await wrapped({"type": "http.response.start", "status": 200, "headers": hdrs})
        for body in [b"<html><body>" + FILLER, *middle, b"DY></html>"]:
            received.append({"type": "http.response.body", "body": body, "more_body": True})
            await wrapped(received[-1])
        await wrapped({"type": "http.response.body", "body": b"", "more_body": False})

    asyncio.run(run())
    assert sent[2] is received[1] and sent[3] is received[2]
    assert sent[4]["body"] == middle[2][:-4]
    whole = b"".join(m["body"] for m in received)
    assert b"".join(m.get("body", b"") for m in sent[1:]) == inject_once(
        whole, snippet_bytes(lang=None)
    )


def test_memory_flat_for_100_mb_stream() -> None:
    chunk = (b"<p>Godta alle</p><span>x</span></b>" * 1820)[:65536]
    n_chunks = 100 * 1024 * 1024 // len(chunk)
    total = 0
    tail = b""

    async def send(message: Message) -> None:
        nonlocal total, tail
        body = message.get("body", b"")
        total += len(body)
        if body:
            tail = (tail + body)[-200:]

    async def run() -> None:
        wrapped = responder_for(send, Renderer())
        hdrs = [(b"content-type", b"text/html")]
        await wrapped({"type": "http.response.start", "status": 200, "headers": hdrs})
        await wrapped({"type": "http.response.body", "body": b"<html><body>", "more_body": True})
        for _ in range(n_chunks):  # a new bytes object each time, as a real app sends
            body = bytes(memoryview(chunk))
            await wrapped({"type": "http.response.body", "body": body, "more_body": True})
        await wrapped({"type": "http.response.body", "body": b"</body></html>"})

    gc.collect()
    tracemalloc.start()
    try:
        asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    snippet = snippet_bytes(lang=None) + SNIPPET_END
    assert total == 12 + n_chunks * len(chunk) + len(snippet) + 14
    assert tail.endswith(snippet + b"</body></html>")
    assert peak < 4 * 1024 * 1024, peak


# --- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        ([], [b"Cookie"]),
        ([b"Accept-Encoding"], [b"Accept-Encoding, Cookie"]),
        ([b"Accept-Encoding, cookie"], [b"Accept-Encoding, cookie"]),
        ([b"*"], [b"*"]),
        ([b"Accept-Language", b"COOKIE"], [b"Accept-Language", b"COOKIE"]),
        ([b"Accept-Language", b"Origin"], [b"Accept-Language, Cookie", b"Origin"]),
        ([b""], [b"Cookie"]),
    ],
)
def test_vary_merge(vary: list[bytes], expected: list[bytes]) -> None:
    hdrs = [(b"content-type", b"text/html"), *((b"vary", v) for v in vary)]
    for chunks in ([DOC], [DOC[:30], DOC[30:]]):
        sent, _ = drive(chunks, hdrs)
        assert header_list(sent[0], b"vary") == expected


@pytest.mark.parametrize(("etag", "expected"), [(b'"abc"', b'W/"abc"'), (b'W/"abc"', b'W/"abc"')])
def test_etag_weakened_when_body_changes(etag: bytes, expected: bytes) -> None:
    hdrs = [(b"content-type", b"text/html"), (b"etag", etag)]
    for chunks in ([DOC], [DOC[:30], DOC[30:]]):
        sent, _ = drive(chunks, hdrs)
        assert header_list(sent[0], b"etag") == [expected]


def test_content_length_single_message_exact_and_streamed_dropped() -> None:
    hdrs = [(b"content-type", b"text/html"), (b"content-length", str(len(DOC)).encode())]
    sent, body = drive([DOC], hdrs)
    assert header_list(sent[0], b"content-length") == [str(len(body)).encode()]
    assert len(body) == len(DOC) + len(snippet_bytes()) + len(SNIPPET_END)
    sent, body = drive([DOC[:10], DOC[10:]], hdrs)
    assert header_list(sent[0], b"content-length") == []
    # No Content-Length before: none is invented.
    sent, _ = drive([DOC], [(b"content-type", b"text/html")])
    assert header_list(sent[0], b"content-length") == []


# --- charsets ----------------------------------------------------------------------------------

NB_TEXT = "Godta alle / Avvis / personvernerklæring å ø €"


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        (b"text/html", NB_TEXT.encode()),
        (b"text/html; charset=UTF-8", NB_TEXT.encode()),
        (
            b"text/html; charset=ISO-8859-1",
            "Godta alle / Avvis / personvernerkl\xe6ring \xe5 \xf8 ",
        ),
        (b'text/html; charset="latin-1"', "Godta alle / Avvis / personvernerkl\xe6ring \xe5 \xf8 "),
        (b"text/html;charset=windows-1252", NB_TEXT.encode("cp1252")),
        (b"application/xhtml+xml; charset=utf-8", NB_TEXT.encode()),
    ],
)
def test_charset_of_content_type_is_honoured(content_type: bytes, encoded: bytes | str) -> None:
    if isinstance(encoded, str):  # Latin-1 has no euro sign: it becomes a character reference
        encoded = encoded.encode("latin-1") + b"&#8364;"
    render = Renderer("<b data-consentmw-snippet>" + NB_TEXT + "</b>")
    page = b"<html><body>personvernerkl\xe6ring</body></html>"
    for chunks in ([page], [page[:20], page[20:]]):
        _, body = drive(chunks, [(b"content-type", content_type)], render=render)
        assert body == inject_once(page, b"<b data-consentmw-snippet>" + encoded + b"</b>")


# --- CSP nonce and html lang -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("csp", "nonce"),
    [
        (
            [b"default-src 'self'; script-src 'self' 'nonce-abc+/9=' https://x; img-src *"],
            "abc+/9=",
        ),
        ([b"style-src 'nonce-st'; script-src 'strict-dynamic' 'nonce-sc'"], "sc"),
        ([b"default-src 'nonce-dflt'"], "dflt"),
        ([b"img-src 'self'", b"Script-Src 'nonce-two'"], "two"),
        ([b"default-src 'self'"], None),
        ([], None),
    ],
)
def test_csp_nonce_passed_to_renderer(csp: list[bytes], nonce: str | None) -> None:
    render = Renderer()
    hdrs = [(b"content-type", b"text/html"), *((b"content-security-policy", v) for v in csp)]
    drive([DOC], hdrs, render=render)
    assert render.calls == [(nonce, "en")]


def test_report_only_csp_is_not_used() -> None:
    render = Renderer()
    hdrs = [
        (b"content-type", b"text/html"),
        (b"content-security-policy-report-only", b"script-src 'nonce-r'"),
    ]
    drive([DOC], hdrs, render=render)
    assert render.calls == [(None, "en")]


@pytest.mark.parametrize(
    "chunks",
    [
        [b'<html lang="nb"><body>hei</body></html>'],
        [b"<ht", b'ml lang="n', b'b-NO"><body>hei</body></html>'],
        [b'<html lang="nb">', b"<body>" + b"x" * 10000 + b"</body></html>"],
    ],
)
def test_html_lang_found_across_chunks(chunks: list[bytes]) -> None:
    render = Renderer()
    drive(chunks, render=render)
    assert render.calls == [(None, "nb")]


def test_html_lang_absent_or_too_late() -> None:
    render = Renderer()
    drive([b"<body>", b"x" * 5000, b'<html lang="nb"></body>'], render=render)
    drive([b"<html><body></body></html>"], render=render)
    assert render.calls == [(None, None), (None, None)]


def test_response_class_is_plain_asgi() -> None:
    # A bare Response with text/html and no </body> is a fragment: nothing changes at all.
    app = Response("<li>item</li>", media_type="text/html")
    bare, resp = request(app), request(wrap(app))
    assert (resp.content, resp.headers.raw) == (bare.content, bare.headers.raw)
