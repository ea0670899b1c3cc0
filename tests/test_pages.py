"""The pure HTML helpers: end tags, the snippet's end marker, language, charset, CSP, headers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentmw.pages import (
    END_TAG_ANY_CASE,
    SNIPPET_END,
    SNIPPET_MARKER,
    changed_headers,
    csp_nonce,
    find_html_lang,
    html_codec,
    html_lang,
    inject_once,
    injected_before,
    last_end_tag,
    marker_before,
    open_end_tag,
)

# --- inject_once and the end-tag grammar -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<body>a</body></html>", b"<body>aS</body></html>"),
        (b"a</body>b</body>c", b"a</body>bS</body>c"),
        (b"a</BODY >b", b"aS</BODY >b"),
        (b"a</Body\t>b", b"aS</Body\t>b"),
        (b"a</body\n>", b"aS</body\n>"),
        (b"a</body/>", b"aS</body/>"),
        (b"a</body>b</bodyguard>", b"aS</body>b</bodyguard>"),
        (b"a</body", b"a</body"),  # incomplete tag at the end: not an end tag
        (b"<div>fragment</div>", b"<div>fragment</div>"),
        (b"", b""),
    ],
)
def test_inject_once(body: bytes, expected: bytes) -> None:
    assert inject_once(body, b"S") == expected.replace(b"S", b"S" + SNIPPET_END)


@pytest.mark.parametrize(
    "body",
    [b"<body>a</body></html>", b"a</body>b</BODY >c", b"x" * 5000 + b"</body>", b"<p>frag</p>"],
)
def test_inject_once_is_idempotent(body: bytes) -> None:
    once = inject_once(body, b"<div " + SNIPPET_MARKER + b">S</div>")
    assert inject_once(once, b"<div " + SNIPPET_MARKER + b">S</div>") == once


@pytest.mark.parametrize(
    ("head", "lang"),
    [
        (b'<!DOCTYPE html>\n<HTML LANG="nb-NO">', "nb"),
        (b"<html class='x' lang='no'>", "no"),
        (b"<html lang=EN>", "en"),
        (b'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="nb" lang="nn_NO">', "nn"),
        (b'<html xml:lang="nb">', None),
        (b'<html lang="">', None),
        (b'<html lang="12">', None),
        (b'<htmlx lang="nb">', None),
        (b"<body>no html tag</body>", None),
        (b" " * 4096 + b'<html lang="nb">', None),
    ],
)
def test_find_html_lang(head: bytes, lang: str | None) -> None:
    assert find_html_lang(head) == lang




@pytest.mark.parametrize(
    ("body", "at"),
    [
        (b"<body>x</body></html>", 7),
        (b"</body>" + b"y" * 300, 0),  # before the 256-byte tail
        (b"a</body>b" + b"</bodyguard>" * 30, 1),  # near misses in the tail
        (b"x" * 250 + b"</body>" + b"y" * 3, 250),  # straddles the tail's start
        (b"a</body", -1),
        (b"", -1),
    ],
)
def test_last_end_tag(body: bytes, at: int) -> None:
    assert last_end_tag(body) == at


def test_injected_before_needs_the_whole_snippet() -> None:
    snippet = b"<div " + SNIPPET_MARKER + b">S</div>" + SNIPPET_END
    page = b"<body>" + snippet + b"</body>"
    i = last_end_tag(page)
    assert marker_before(page, i) and injected_before(page, i, snippet)
    forged = b"<body><p>" + SNIPPET_END + b"</p></body>"
    j = last_end_tag(forged)
    assert marker_before(forged, j) and not injected_before(forged, j, snippet)
    far = b"<body>" + snippet + b"x" * 600 + b"</body>"  # beyond the window: not seen
    assert not injected_before(far, last_end_tag(far), snippet)


@pytest.mark.parametrize(
    ("content_type", "codec"),
    [
        (b"text/html", "utf-8"),
        (b"TEXT/HTML; Charset=\"ISO-8859-1\"", "iso8859-1"),
        (b"application/xhtml+xml; charset=windows-1252", "cp1252"),
        (b"text/html; charset=utf-16", None),  # ASCII is not ASCII in it
        (b"text/html; charset=no-such", None),
        (b"application/json", None),
        (b"text/htmlx", None),
    ],
)
def test_html_codec(content_type: bytes, codec: str | None) -> None:
    assert html_codec(content_type) == codec


def test_csp_nonce_first_directive_counts() -> None:
    hdrs = [(b"content-security-policy", b"script-src 'nonce-a'; script-src 'nonce-b'")]
    assert csp_nonce(hdrs) == "a"
    assert csp_nonce([(b"content-security-policy-report-only", b"script-src 'nonce-r'")]) is None


def test_changed_headers() -> None:
    hdrs = [
        (b"Content-Length", b"10"),
        (b"ETag", b'"v1"'),
        (b"content-length", b"10"),
        (b"Vary", b"Accept-Encoding"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert changed_headers(hdrs, 42) == [
        (b"Content-Length", b"42"),
        (b"ETag", b'W/"v1"'),
        (b"Vary", b"Accept-Encoding, Cookie"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert changed_headers([(bytearray(b"etag"), b'W/"x"')], None) == [
        (b"etag", b'W/"x"'),
        (b"vary", b"Cookie"),
    ]


def test_html_lang_reads_the_start_tag_and_caches_it() -> None:
    assert html_lang(b'<html lang="nb-NO"><body>') == "nb"
    assert html_lang(b"<HTML LANG=en><body>") == "en"  # found the long way
    assert html_lang(b"<body>no tag</body>") is None


@pytest.mark.parametrize("spelling", [b"</body>", b"</BODY >", b"</bOdY\t>"])
@pytest.mark.parametrize("others", [0, 3, 40])
def test_last_end_tag_behind_many_other_b_tags(spelling: bytes, others: int) -> None:
    """Tags that start like an end tag (``</b>``, ``</BUTTON>``) before and after it, more
    of them than are checked one by one, and split end tags at the range's edge."""
    noise = b"<b>x</b><button>y</BUTTON>" * others
    body = b"<body>" + b"z" * 300 + spelling + noise + b"</bodyx>" + b"w" * 300
    assert last_end_tag(body) == 306
    assert last_end_tag(noise + b"</body") == -1
    assert last_end_tag(body.replace(spelling, b"</bod>")) == -1


END_TAG_RE = re.compile(rb"</body(?=[ \t\n\r\f/>])", re.I)
TAG_PIECES = [b"</b>", b"</B>", b"</body>", b"</BODY ", b"</Body", b"</bo", b"dy>", b"/", b">",
              b"</button>", b"</BUTTON>", b"x" * 200, b"y", b"\t"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TAG_PIECES), max_size=80))
def test_last_end_tag_equals_the_grammar(parts: list[bytes]) -> None:
    body = b"".join(parts)
    expected = max((m.start() for m in END_TAG_RE.finditer(body)), default=-1)
    assert last_end_tag(body) == expected


def test_last_end_tag_is_the_last_in_any_case() -> None:
    """A lower-case end tag is found first; a later one in another case still wins."""
    body = b"<body>x</body>\n</BODY >\n"
    assert last_end_tag(body) == body.index(b"</BODY")
    assert last_end_tag(b"<body>x</body>\n</bodyx>") == 7
    assert last_end_tag(b"<body>x</body>\n</Body/>" + b"y" * 400) == 15


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"<", b"/", b"b", b"O", b"d", b"Y", b"x", b">"]), max_size=14))
def test_open_end_tag_and_any_case_search(parts: list[bytes]) -> None:
    """What a streamed chunk holds back: its longest suffix that may begin ``</body`` in
    any case (the next chunk may complete it); and the cheap test for ``</body`` anywhere."""
    data = b"".join(parts)
    prefixes = [i for i in range(len(data)) if b"</body".startswith(data[i:].lower())]
    assert open_end_tag(data) == (prefixes[0] if prefixes else len(data))
    assert open_end_tag(bytearray(data)) == open_end_tag(data)
    assert (END_TAG_ANY_CASE.search(data) is not None) == (b"</body" in data.lower())
