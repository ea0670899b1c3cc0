"""Pure helpers on HTML documents and their response headers.

What the responder needs to know about a page, with no I/O and no state: where its last
``</body`` end tag stands, its ``<html lang>``, the codec its ``Content-Type`` asks for,
the CSP nonce, the headers of a changed body, and whether a snippet is already in it.

A ``</body`` end tag is ``</body`` (ASCII case-insensitive) followed by HTML whitespace,
``/`` or ``>``: where the HTML tokenizer ends the tag name, so ``</BODY\\t>`` and
``</body >`` count and ``</bodyguard>`` does not.

Every injection ends with :data:`SNIPPET_END`. A body already carries a snippet only when
that marker stands within :data:`END_WINDOW` bytes before its last end tag AND the bytes
ending with it are exactly the snippet this response would get (same state, language,
page and nonce). Page content cannot forge that: a copied marker, or a snippet copied
from another page, state or response, does not match.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

from .cache import memoize

__all__ = [
    "END_TAG",
    "END_TAG_ANY_CASE",
    "END_WINDOW",
    "LANG_WINDOW",
    "SNIPPET_END",
    "SNIPPET_MARKER",
    "RawHeaders",
    "changed_headers",
    "csp_nonce",
    "find_html_lang",
    "html_codec",
    "html_lang",
    "inject_once",
    "injected_before",
    "lang_of_tag",
    "last_end_tag",
    "marker_before",
    "open_end_tag",
]

#: The attribute on the snippet's root element (for scripts and tests to find it).
SNIPPET_MARKER: bytes = b"data-consentmw-snippet"
#: Written after every injected snippet; see :func:`inject_once` for when it means "done".
SNIPPET_END: bytes = b"<!--/consentmw-->"
#: How far before the end tag a snippet's end marker is looked for.
END_WINDOW = 512
#: The start of a body in which ``<html lang>`` is looked for.
LANG_WINDOW = 4096
END_TAG = b"</body"
#: ``</body`` in any ASCII case: where an end tag may stand (the byte after it decides).
END_TAG_ANY_CASE = re.compile(re.escape(END_TAG), re.IGNORECASE)

RawHeaders = list[tuple[bytes, bytes]]

_END_TAG_LEN = len(END_TAG)
_later_end_tag = END_TAG_ANY_CASE.search

_AFTER_NAME = frozenset(b" \t\n\r\f/>")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_LANG_RE = re.compile(
    rb"""<html(?=[\s/>])[^>]*?\slang\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I
)
_OPEN_END_TAG = re.compile(rb"<(?:/(?:b(?:o(?:dy?)?)?)?)?\Z", re.IGNORECASE)
_NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'")
_NONCE_DIRECTIVES = ("script-src", "script-src-elem", "style-src", "style-src-elem", "default-src")


def last_end_tag(data: bytes) -> int:
    """Offset of the last complete ``</body`` end tag in ``data``, or -1.

    The end tag of a document is nearly always its last ``</body`` and within 256 bytes of
    its end, so that case costs one small ``lower()`` and ``rfind``; otherwise the tail and
    then the rest are searched in full. A ``</body`` at the very end is incomplete: not
    reported.
    """
    size = len(data)
    tail = size - 256 if size > 256 else 0
    # Nearly every page: a lower-case end tag near the end, nothing like one after it.
    i = data.rfind(END_TAG, tail)
    if i >= 0:
        after = i + _END_TAG_LEN
        if after < size and data[after] in _AFTER_NAME and _later_end_tag(data, after) is None:
            return i
    i = data[tail:].lower().rfind(END_TAG)
    after = tail + i + len(END_TAG)
    if i >= 0 and after < size and data[after] in _AFTER_NAME:
        return tail + i
    if i >= 0:  # the last one in the tail is not an end tag: an earlier one may be
        i = _rfind_end_tag(data, tail, size)
        if i >= 0:
            return i
    if tail == 0:
        return -1
    # Tags starting before the tail: their first bytes lie before it.
    return _rfind_end_tag(data, 0, tail + len(END_TAG) - 1)


def _rfind_end_tag(data: bytes, lo: int, hi: int) -> int:
    """The last end tag that lies in ``data[lo:hi]`` (its next byte may lie beyond)."""
    low = data[lo:hi].lower()
    size = len(data)
    i = low.rfind(END_TAG)
    while i >= 0:
        after = lo + i + len(END_TAG)
        if after < size and data[after] in _AFTER_NAME:
            return lo + i
        i = low.rfind(END_TAG, 0, i)
    return -1


def open_end_tag(data: bytes | bytearray) -> int:
    """Where the bytes that may begin an end tag start at the very end of ``data`` (a
    ``</body`` prefix, in any case, that later bytes could complete), or ``len(data)``."""
    size = len(data)
    m = _OPEN_END_TAG.search(data, max(0, size - len(END_TAG)))
    return size if m is None else m.start()


def marker_before(data: bytes, i: int) -> bool:
    """True when :data:`SNIPPET_END` stands in the :data:`END_WINDOW` bytes before ``i``."""
    return data.rfind(SNIPPET_END, max(0, i - END_WINDOW), i) >= 0


def injected_before(data: bytes, i: int, injected: bytes) -> bool:
    """True when ``injected`` (a snippet ending in :data:`SNIPPET_END`) ends within the
    :data:`END_WINDOW` bytes before offset ``i``: this very snippet was injected already.

    The marker alone proves nothing (page content can contain it); the whole snippet must
    match, so only a body that already went through consentmw with the same result is
    recognised.
    """
    lo = max(0, i - END_WINDOW)
    size = len(SNIPPET_END)
    j = data.rfind(SNIPPET_END, lo, i)
    while j >= 0:
        start = j + size - len(injected)
        if start >= 0 and data.startswith(injected, start):
            return True
        j = data.rfind(SNIPPET_END, lo, j + size - 1)
    return False


def inject_once(body: bytes, snippet: bytes) -> bytes:
    """The reference injection: ``snippet`` and :data:`SNIPPET_END` before the last end tag.

    Unchanged when there is no end tag (a fragment) or this snippet is already there, so
    ``inject_once(inject_once(b, s), s) == inject_once(b, s)``. The responder's output,
    however a body is chunked, is this or the body untouched.
    """
    i = last_end_tag(body)
    if i < 0 or injected_before(body, i, snippet + SNIPPET_END):
        return body
    return body[:i] + snippet + SNIPPET_END + body[i:]


def html_lang(head: bytes) -> str | None:
    """:func:`find_html_lang`, cached by the ``<html ...>`` start tag (pages repeat it)."""
    at = head.find(b"<html", 0, LANG_WINDOW)
    end = head.find(b">", at, at + 512) if at >= 0 else -1
    if end < 0:
        return find_html_lang(head)
    return lang_of_tag(head[at : end + 1])


@memoize(256, 256 * 1024, max_key=1024)
def lang_of_tag(tag: bytes) -> str | None:
    """:func:`find_html_lang` of one ``<html ...>`` start tag, cached."""
    return find_html_lang(tag)


def find_html_lang(head: bytes) -> str | None:
    """Primary language subtag of ``<html lang=...>`` in the first 4 KB, lower-cased, or None."""
    at = head.find(b"<html", 0, LANG_WINDOW)  # the usual spelling, found at C speed
    m = _LANG_RE.match(head, at, LANG_WINDOW) if at >= 0 else None
    if m is None:
        m = _LANG_RE.search(head, 0, LANG_WINDOW)
    if m is None:
        return None
    value = next(g for g in m.groups() if g is not None).strip()
    primary = value.replace(b"_", b"-").split(b"-", 1)[0]
    if not (1 <= len(primary) <= 8 and primary.isalpha()):
        return None
    return primary.decode("ascii").lower()


def csp_nonce(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``'nonce-...'`` of the enforced CSP, looked up in script, style, then default-src."""
    directives: dict[str, str] = {}
    for key, value in headers:
        if key.lower() != b"content-security-policy":
            continue
        for part in bytes(value).decode("latin-1").split(";"):
            name, *sources = part.split(None, 1)
            # Per CSP, only the first occurrence of a directive counts.
            directives.setdefault(name.lower(), sources[0] if sources else "")
    for name in _NONCE_DIRECTIVES:
        m = _NONCE_RE.search(directives.get(name, ""))
        if m:
            return m.group(1)
    return None


@memoize(64, 64 * 1024, max_key=64)
def _codec_for(charset: str) -> str | None:
    """Python codec for ``charset`` if it encodes ASCII markup as ASCII (so byte search works)."""
    probe = "</body> <html lang=" + SNIPPET_MARKER.decode()
    try:
        name = codecs.lookup(charset).name
        return name if probe.encode(name) == probe.encode("ascii") else None
    except (LookupError, UnicodeError):
        return None


@memoize(256, 256 * 1024, max_key=256)
@memoize(256, 64 * 1024, max_key=256)
def html_codec(content_type: bytes) -> str | None:
    """The codec to write into an HTML response of ``content_type``, or None to leave it
    (not HTML, or a charset that is unknown or does not write ASCII as ASCII). Cached: a
    site answers with a handful of content types."""
    ctype = content_type.decode("latin-1")
    if ctype.split(";")[0].strip().lower() not in _HTML_TYPES:
        return None
    charset = "utf-8"
    for param in ctype.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or "utf-8"
    return _codec_for(charset.lower())


def changed_headers(headers: RawHeaders, length: int | None) -> RawHeaders:
    """Headers for a body that is (or may be) changed.

    ``Content-Length`` becomes ``length``, or is dropped when None (the server then streams
    chunked); a strong ``ETag`` is weakened; ``Vary`` gains ``Cookie`` (the snippet depends on
    the consent cookie) unless it is ``*`` or already names it. Repeated headers keep order.
    """
    out: RawHeaders = []
    vary_at = -1
    vary_tokens: set[bytes] = set()
    for key, value in headers:
        key, value = bytes(key), bytes(value)  # header items may be bytearrays or lists
        name = key.lower()
        if name == b"content-length":
            if length is not None:
                out.append((key, str(length).encode("ascii")))
                length = None
            continue
        if name == b"etag" and not value.lstrip().startswith(b"W/"):
            value = b"W/" + value.strip()
        elif name == b"vary":
            vary_at = len(out) if vary_at < 0 else vary_at
            vary_tokens.update(t.strip().lower() for t in value.split(b","))
        out.append((key, value))
    if vary_at < 0:
        out.append((b"vary", b"Cookie"))
    elif not vary_tokens & {b"*", b"cookie"}:
        key, value = out[vary_at]
        out[vary_at] = (key, value.strip() + b", Cookie" if value.strip() else b"Cookie")
    return out
