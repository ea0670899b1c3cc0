"""Property: the responder's injection over any chunking equals the one-shot reference
(for a streamed body, within the tail-window contract: see :mod:`tests.stream_support`)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message

from consentmw.config import ConsentConfig
from consentmw.pages import SNIPPET_END, inject_once
from consentmw.policy import ConsentPolicy, RequestContext
from consentmw.responder import STREAM_WINDOW, Responder

from .stream_support import last_end_tag_found, streamed_reference

SNIPPET = "<div data-consentmw-snippet>Godta alle</div>"

# Pieces that make end tags, near misses and splits likely; "ø" exercises multi-byte UTF-8.
PIECES = [
    "</body>",
    "</BODY >",
    "</Body\t>",
    "</body\n/>",
    "</body",
    "</bodyx>",
    "</bo",
    "dy>",
    "<",
    "/",
    ">",
    " ",
    "\n",
    "x",
    "ø",
    "<html lang='nb'>",
    "<p>text</p>",
    "<!--/consentmw-->",  # page content cannot forge the end of a snippet
]

POLICY = ConsentPolicy(
    ConsentConfig(secret_key="properties-secret-0123456789abcdefghij", records_url=None)
)
SCOPE = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}


def source(ctx: RequestContext, head: bytes, nonce: str | None, codec: str) -> tuple[bytes, str]:
    return SNIPPET.encode(codec) + SNIPPET_END, "nb"


html = st.lists(st.sampled_from(PIECES), max_size=40).map(lambda parts: "".join(parts).encode())


def stream(body: bytes, cuts: list[int]) -> bytes:
    """Send ``body`` cut at ``cuts`` through a responder; return the bytes that came out."""
    out: list[bytes] = []

    async def send(message: Message) -> None:
        out.append(message.get("body", b""))

    async def run() -> None:
        wrapped = Responder(send, POLICY.context(dict(SCOPE)), POLICY, source).send
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await wrapped({"type": "http.response.start", "status": 200, "headers": headers})
        bounds = [0, *sorted(cuts), len(body)]
        for i in range(len(bounds) - 1):
            more = i < len(bounds) - 2
            chunk = body[bounds[i] : bounds[i + 1]]
            await wrapped({"type": "http.response.body", "body": chunk, "more_body": more})

    asyncio.run(run())
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(body=html, data=st.data())
def test_streamed_equals_one_shot(body: bytes, data: st.DataObject) -> None:
    """A body shorter than the window: every end tag is found, however it is chunked."""
    assert len(body) <= STREAM_WINDOW
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    snippet = SNIPPET.encode()
    out = stream(body, cuts)
    assert out == inject_once(body, snippet)
    lowered = body.lower()
    has_end_tag = any(lowered.find(b"</body" + c) >= 0 for c in (b">", b" ", b"\t", b"\n", b"/"))
    assert out.count(snippet) == (1 if has_end_tag else 0)


@settings(max_examples=100, deadline=None)
@given(body=html, data=st.data())
def test_injecting_twice_is_injecting_once(body: bytes, data: st.DataObject) -> None:
    """A page that already went through consentmw (stacked middleware, a cached page) is
    left alone however it is chunked the second time."""
    once = stream(body, data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    cuts = data.draw(st.lists(st.integers(0, len(once)), max_size=12))
    assert stream(once, cuts) == once


# Large pieces: streamed chunks longer than the overlap take the no-copy path for chunks
# without an end tag, so end tags near chunk edges and long runs without one both occur,
# and so do end tags followed by more than STREAM_WINDOW bytes in one chunk.
BIG_PIECES = [*PIECES, "y" * 700, "<p>" + "z" * 1500 + "</p>", "</body>" + "w" * 600]
big_html = st.lists(st.sampled_from(BIG_PIECES), max_size=30).map(
    lambda parts: "".join(parts).encode()
)


@settings(max_examples=300, deadline=None)
@given(body=big_html, data=st.data())
def test_streamed_large_chunks_equal_one_shot(body: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    snippet = SNIPPET.encode()
    out = stream(body, cuts)
    assert out == (streamed_reference(body, cuts, snippet) if cuts else inject_once(body, snippet))
    # ... and a page that already carries the snippet stays as it is.
    again = sorted(data.draw(st.lists(st.integers(0, len(out)), max_size=8)))
    # (Uncut, the body is one message, which is searched in full: found by this test, for a
    # body whose only end tag has more than STREAM_WINDOW bytes after it.)
    expected = streamed_reference(out, again, snippet) if again else inject_once(out, snippet)
    assert stream(out, again) == expected
    if out != body:
        assert stream(out, again) == out
    # The contract differs from the one-shot reference only for an end tag followed by
    # more than STREAM_WINDOW bytes in the chunk that completes it.
    if cuts and out != inject_once(body, snippet):
        assert not last_end_tag_found(body, cuts)


@pytest.mark.parametrize("spelling", [b"</body>", b"</BODY >", b"</Body\n>"])
def test_end_tag_split_before_a_long_chunk(spelling: bytes) -> None:
    """An end tag cut anywhere, with a chunk longer than the overlap after the cut."""
    head = b"<html><body>" + b"a" * 1000
    body = head + spelling + b"b" * 1000 + b"</html>"
    later = len(head) + len(spelling) + 700  # so the chunk after the cut is not the last
    for cut in range(len(head) - 2, len(head) + len(spelling) + 2):
        assert stream(body, [cut, later]) == inject_once(body, SNIPPET.encode()), cut
