"""Streaming injection of the consent snippet before the last ``</body>`` of HTML documents.

:class:`InjectingSend` wraps an ASGI ``send``. It never buffers a streamed body: it holds back
only the bytes from the most recent ``</body`` end tag onward (normally ``</body></html>``), or
the last few bytes that might begin one, and keeps references to the chunks that make up the
last 64 KB (to compare with the snippet, below), so memory stays flat for any body size.

A ``</body`` end tag is ``</body`` (ASCII case-insensitive) followed by HTML whitespace, ``/`` or
``>``: where the HTML tokenizer ends the tag name, so ``</BODY\\t>`` and ``</body >`` count and
``</bodyguard>`` does not. Output is always either :func:`inject_once` of the whole body or the
body untouched, never a snippet at a place that is not the last end tag.

Every injection ends with :data:`SNIPPET_END`. A body already carries a snippet, and is left
alone, only when that marker stands within 512 bytes before its last end tag AND the bytes
ending with it are exactly the snippet this response would get (same state, language, page and
nonce). Page content cannot forge that: a copied marker, or a snippet copied from another page,
state or response, does not match, so the banner is still injected. Looking only there, instead
of scanning the whole body, keeps the cost independent of the page size; the snippet is
rendered for the comparison only when the marker is there.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from starlette.types import Message, Send

from .cache import memoize

__all__ = [
    "SNIPPET_END",
    "SNIPPET_MARKER",
    "InjectingSend",
    "csp_nonce",
    "find_html_lang",
    "inject_once",
]

#: The attribute on the snippet's root element (for scripts and tests to find it).
SNIPPET_MARKER: bytes = b"data-consentmw-snippet"
#: Written after every injected snippet; see :func:`inject_once` for when it means "done".
SNIPPET_END: bytes = b"<!--/consentmw-->"
_END_WINDOW = 512
#: Streamed bodies: how many bytes before an end tag are kept to compare with the snippet
#: (a default snippet is about 8 KB); a longer snippet is not recognised when streamed.
VERIFY_WINDOW = 64 * 1024

logger = logging.getLogger("consentmw")

RawHeaders = list[tuple[bytes, bytes]]


class Encodable(Protocol):
    """What ``render_snippet`` returns: a ``str``, or anything that encodes like one."""

    def encode(self, encoding: str = ..., errors: str = ...) -> bytes: ...


_END_TAG = b"</body"
_AFTER_NAME = frozenset(b" \t\n\r\f/>")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_NO_BODY = frozenset({204, 205, 206, 304})
LANG_WINDOW = 4096
_LANG_RE = re.compile(
    rb"""<html(?=[\s/>])[^>]*?\slang\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I
)
_NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'")
_NONCE_DIRECTIVES = ("script-src", "script-src-elem", "style-src", "style-src-elem", "default-src")
_warned_encoding = False


def _last_end_tag(data: bytes) -> int:
    """Offset of the last complete ``</body`` end tag in ``data``, or -1.

    The end tag of a document is nearly always its last ``</body`` and within 256 bytes of
    its end, so that case costs one small ``lower()`` and ``rfind``; otherwise the tail and
    then the rest are searched in full. A ``</body`` at the very end is incomplete: not
    reported.
    """
    size = len(data)
    tail = size - 256 if size > 256 else 0
    i = data[tail:].lower().rfind(_END_TAG)
    after = tail + i + len(_END_TAG)
    if i >= 0 and after < size and data[after] in _AFTER_NAME:
        return tail + i
    if i >= 0:  # the last one in the tail is not an end tag: an earlier one may be
        i = _rfind_end_tag(data, tail, size)
        if i >= 0:
            return i
    if tail == 0:
        return -1
    # Tags starting before the tail: their first bytes lie before it.
    return _rfind_end_tag(data, 0, tail + len(_END_TAG) - 1)


def _rfind_end_tag(data: bytes, lo: int, hi: int) -> int:
    """The last end tag that lies in ``data[lo:hi]`` (its next byte may lie beyond)."""
    low = data[lo:hi].lower()
    size = len(data)
    i = low.rfind(_END_TAG)
    while i >= 0:
        after = lo + i + len(_END_TAG)
        if after < size and data[after] in _AFTER_NAME:
            return lo + i
        i = low.rfind(_END_TAG, 0, i)
    return -1


def _marker_before(data: bytes, i: int) -> bool:
    """True when :data:`SNIPPET_END` stands in the 512 bytes before offset ``i``."""
    return data.rfind(SNIPPET_END, max(0, i - _END_WINDOW), i) >= 0


def _injected_before(data: bytes, i: int, injected: bytes) -> bool:
    """True when ``injected`` (a snippet ending in :data:`SNIPPET_END`) ends within the 512
    bytes before offset ``i``: this very snippet was injected already.

    The marker alone proves nothing (page content can contain it); the whole snippet must
    match, so only a body that already went through consentmw with the same result is
    recognised.
    """
    lo = max(0, i - _END_WINDOW)
    size = len(SNIPPET_END)
    j = data.rfind(SNIPPET_END, lo, i)
    while j >= 0:
        start = j + size - len(injected)
        if start >= 0 and data.startswith(injected, start):
            return True
        j = data.rfind(SNIPPET_END, lo, j + size - 1)
    return False


def inject_once(body: bytes, snippet: bytes) -> bytes:
    """One-shot reference: ``snippet`` and :data:`SNIPPET_END` before the last end tag.

    Unchanged when there is no end tag (a fragment) or this snippet is already there, so
    ``inject_once(inject_once(b, s), s) == inject_once(b, s)``.
    """
    i = _last_end_tag(body)
    if i < 0 or _injected_before(body, i, snippet + SNIPPET_END):
        return body
    return body[:i] + snippet + SNIPPET_END + body[i:]


def _html_lang(head: bytes) -> str | None:
    """:func:`find_html_lang`, cached by the ``<html ...>`` start tag (pages repeat it)."""
    at = head.find(b"<html", 0, LANG_WINDOW)
    end = head.find(b">", at, at + 512) if at >= 0 else -1
    if end < 0:
        return find_html_lang(head)
    return _lang_of_tag(head[at : end + 1])


@memoize(256, 256 * 1024, max_key=1024)
def _lang_of_tag(tag: bytes) -> str | None:
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
        for part in value.decode("latin-1").split(";"):
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
def _html_codec(content_type: bytes) -> str | None:
    """The codec to write into an HTML response of ``content_type``, or None to leave it."""
    ctype = content_type.decode("latin-1")
    if ctype.split(";")[0].strip().lower() not in _HTML_TYPES:
        return None
    return _codec_of(ctype)


def _codec_of(content_type: str) -> str | None:
    charset = "utf-8"
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or "utf-8"
    return _codec_for(charset.lower())


def _changed_headers(headers: RawHeaders, length: int | None) -> RawHeaders:
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


def _warn_compressed(encoding: bytes) -> None:
    """Say once per process that compressed HTML can't get the banner, and how to fix it."""
    global _warned_encoding
    if not _warned_encoding:
        _warned_encoding = True
        logger.warning(
            "consentmw met compressed HTML (Content-Encoding: %s) and left it without the "
            "consent banner: consentmw must sit inside compression middleware such as "
            "GZipMiddleware (add ConsentMiddleware before GZipMiddleware in the stack).",
            encoding.decode("latin-1"),
        )


class InjectingSend:
    """ASGI ``send`` wrapper that injects ``render_snippet(nonce, html_lang)`` into HTML documents.

    Untouched (passed straight on): HEAD, statuses without a body or partial (1xx, 204, 205,
    206, 304), non-HTML, compressed HTML (warned once: consentmw must sit inside compression
    middleware), charsets that are unknown or not ASCII-compatible, fragments without
    ``</body``, bodies already carrying this very snippet (see :func:`inject_once`; when
    streamed, one of up to about :data:`VERIFY_WINDOW` bytes), and non-body messages
    (``http.response.pathsend``).

    ``http.response.start`` is delayed until the first body message. A single-message body is
    injected in one go and gets its exact ``Content-Length``; a streamed one has
    ``Content-Length`` dropped, its ``ETag`` weakened and ``Vary: Cookie`` added up front, since
    those headers leave before the end tag is seen. If more than :attr:`max_hold` bytes follow a
    ``</body``, it is let go without injecting (it may not be the last; a later end tag is still
    used), so a page with a huge tail after ``</body>`` may end up without the snippet.
    """

    max_hold: int = 256 * 1024

    __slots__ = (
        "_codec", "_found", "_head", "_headers", "_held", "_history", "_history_size",
        "_holding", "_injected", "_lang_source", "_nonce", "_passing", "_recent", "_render",
        "_seen", "_send", "_sent", "_start", "_tail_size",
    )  # fmt: skip

    def __init__(
        self,
        send: Send,
        *,
        method: str,
        render_snippet: Callable[[str | None, str | None], Encodable],
        tail_size: int = 64,
    ) -> None:
        self._send = send
        self._render = render_snippet
        # The overlap kept between chunks must hold a split "</body" plus one byte, and the
        # bytes before an end tag where SNIPPET_END would stand.
        self._tail_size = max(tail_size, _END_WINDOW + len(_END_TAG) + 1)
        self._passing = method == "HEAD" or method.upper() == "HEAD"
        self._start: Message | None = None
        self._nonce: str | None = None
        self._lang_source: bytes | None = None  # the whole body, when it came in one message
        self._injected: bytes | None = None  # the encoded snippet, once rendered

    @classmethod
    def accepted(
        cls,
        send: Send,
        start: Message,
        *,
        codec: str,
        headers: RawHeaders,
        nonce: str | None,
        render_snippet: Callable[[str | None, str | None], Encodable],
    ) -> InjectingSend:
        """An injector whose start message was already read and accepted by the caller.

        ``start`` is held back until the next message, as if this injector had accepted it.
        """
        self = cls(send, method="GET", render_snippet=render_snippet)
        self._codec, self._headers, self._nonce = codec, headers, nonce
        self._start = start
        return self

    def _start_streaming(self) -> None:
        """State needed only when a body comes in several messages."""
        self._head = bytearray()  # first LANG_WINDOW body bytes, for find_html_lang
        self._recent = b""  # last tail_size bytes seen: overlap for split matches
        # The last chunks (references, not copies), at least VERIFY_WINDOW bytes when there
        # are: an end marker before an end tag is checked against the bytes before it.
        self._history: deque[bytes] = deque()
        self._history_size = 0
        self._held = bytearray()  # received but not yet sent; starts at self._sent
        self._seen = 0  # body bytes received
        self._sent = 0  # body bytes sent
        self._found = -1  # offset of the last end tag seen
        self._holding = False  # self._held starts at self._found

    async def __call__(self, message: Message) -> None:
        if self._passing:
            await self._send(message)
        elif message["type"] == "http.response.start":
            self._passing = not self._accept(message)
            if self._passing:
                await self._send(message)
            else:
                self._start = message
        elif message["type"] != "http.response.body":
            self._passing = True  # e.g. pathsend: nothing to inject into
            if self._start is not None:
                await self._send(self._start)
            await self._send(message)
        elif self._start is not None:
            await self._first_body(self._start, message)
        else:
            await self._stream(message)

    def _accept(self, start: Message) -> bool:
        """Decide from the start message alone whether this response may be injected."""
        status = start["status"]
        if status < 200 or status in _NO_BODY:
            return False
        raw = start.get("headers", ())
        ctype = b""
        encoding = b""
        csp = False
        for k, v in raw:
            name = k.lower()
            if name == b"content-type":
                ctype = ctype or v
            elif name == b"content-encoding":
                encoding = v
            elif name == b"content-security-policy":
                csp = True
        codec = _html_codec(bytes(ctype))
        if codec is None:
            return False  # non-HTML, or a charset we cannot write into
        if encoding and bytes(encoding).strip().lower() not in (b"", b"identity"):
            _warn_compressed(bytes(encoding))
            return False
        headers = [(bytes(k), bytes(v)) for k, v in raw]
        self._codec, self._headers = codec, headers
        self._nonce = csp_nonce(headers) if csp else None
        return True

    async def _first_body(self, start: Message, message: Message) -> None:
        self._start = None
        body = bytes(message.get("body", b""))
        if message.get("more_body", False):
            self._start_streaming()
            start["headers"] = _changed_headers(self._headers, None)
            await self._send(start)
            await self._stream(message)
            return
        self._lang_source = body
        i = _last_end_tag(body)
        if i < 0 or (_marker_before(body, i) and _injected_before(body, i, self._snippet())):
            await self._send(start)
            await self._send(message)
            return
        view = memoryview(body)
        body = b"".join((view[:i], self._snippet(), view[i:]))
        start["headers"] = _changed_headers(self._headers, len(body))
        message["body"] = body
        await self._send(start)
        await self._send(message)

    async def _stream(self, message: Message) -> None:
        chunk = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if more and not self._holding and not self._passing and len(chunk) >= self._tail_size:
            out = self._pass_chunk(chunk)
            if out is not None:
                await self._send({**message, "body": out, "more_body": more})
                return
        window = self._recent + chunk
        base = self._seen - len(self._recent)
        self._seen += len(chunk)
        self._recent = window[-self._tail_size :]
        self._remember(chunk)
        if len(self._head) < LANG_WINDOW:
            self._head += chunk[: LANG_WINDOW - len(self._head)]
        self._held += chunk
        out = b""
        i = _last_end_tag(window)
        if i >= 0 and base + i > self._found:
            if _marker_before(window, i) and self._streamed_snippet_before(base + i):
                self._passing, self._holding = True, False
            else:
                self._found = base + i
                out = self._take(self._found - self._sent)
                self._holding = True
        elif self._holding and len(self._held) > self.max_hold:
            self._holding = False
        if self._passing or not more:
            snippet = self._snippet() if self._holding else b""
            out += snippet + self._take(len(self._held))
        elif not self._holding:
            out += self._take(len(self._held) - len(_END_TAG))
        await self._send({**message, "body": out, "more_body": more})

    def _pass_chunk(self, chunk: bytes) -> bytes | None:
        """The common streamed chunk: no end tag in it, nothing held. What to send, or None.

        Equal to the general path, with one copy of the chunk instead of four: an end tag
        that completes in ``chunk`` either lies in it or starts in the last bytes before
        it; anything earlier was seen complete with an earlier chunk. The held buffer keeps
        its invariant (at most ``len("</body")`` bytes that may begin an end tag).
        """
        if _last_end_tag(chunk) >= 0:
            return None
        edge = self._recent[-len(_END_TAG) :]
        straddle = _last_end_tag(edge + chunk[: len(_END_TAG) + 1])
        if 0 <= straddle < len(edge):
            return None
        self._seen += len(chunk)
        self._recent = chunk[-self._tail_size :]
        self._remember(chunk)
        if len(self._head) < LANG_WINDOW:
            self._head += chunk[: LANG_WINDOW - len(self._head)]
        keep = len(_END_TAG)
        out = b"".join((self._held, memoryview(chunk)[:-keep]))
        self._held = bytearray(chunk[-keep:])
        self._sent += len(out)
        return out

    def _remember(self, chunk: bytes) -> None:
        history = self._history
        history.append(chunk)
        self._history_size += len(chunk)
        while self._history_size - len(history[0]) >= VERIFY_WINDOW:
            self._history_size -= len(history.popleft())

    def _streamed_snippet_before(self, at: int) -> bool:
        """Whether the streamed body already carries this snippet before offset ``at``."""
        data = b"".join(self._history)
        at -= self._seen - len(data)
        return at >= 0 and _injected_before(data, at, self._snippet())

    def _take(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes from the front of the held buffer."""
        n = max(0, min(n, len(self._held)))
        out = bytes(self._held[:n])
        del self._held[:n]
        self._sent += n
        return out

    def _snippet(self) -> bytes:
        """The encoded snippet and :data:`SNIPPET_END`, rendered once per response."""
        if self._injected is None:
            source = self._lang_source if self._lang_source is not None else bytes(self._head)
            html = self._render(self._nonce, _html_lang(source))
            self._injected = html.encode(self._codec, errors="xmlcharrefreplace") + SNIPPET_END
        return self._injected
