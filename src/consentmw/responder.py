"""The ``send`` of one wrapped response: Set-Cookie enforcement and snippet injection.

:class:`Responder` reads the start message's headers in one pass (dropping ``Set-Cookie``
headers the visitor has not allowed, adding deletions of refused cookies the request
carries, and noting what injection needs), then holds the start message back while the
body may change:

- a whole body in one message is injected in one go and gets its exact
  ``Content-Length``;
- a streamed body has ``Content-Length`` dropped, its ``ETag`` weakened and
  ``Vary: Cookie`` added up front, since those headers leave before the end tag is
  seen. It is never buffered: only the bytes from the most recent ``</body`` end tag on
  (normally ``</body></html>``), or the few that might begin one, are held back, and
  references to the last chunks (:data:`VERIFY_WINDOW` bytes before an end tag) are kept
  to compare with the snippet, so memory stays flat for any body size.

A streamed body's end tag is looked for at its end only, so that a long stream costs
little per byte: when a chunk arrives, an end tag counts if it starts within the last
:data:`STREAM_WINDOW` bytes received so far (one split across chunks included). A
document whose final ``</body`` starts within its last :data:`STREAM_WINDOW` bytes (the
usual ``</body>\n</html>\n``, perhaps with whitespace or a small script after it) thus
always gets the snippet, however the body is chunked. An end tag with more than
:data:`STREAM_WINDOW` bytes from its ``<`` to the end of the chunk that completes it is
not seen: such a body passes untouched (valid, without the snippet). A body in one
message is searched in full.

Untouched (passed straight on after the header rules): HEAD, statuses without a body or
partial (1xx, 204, 205, 206, 304), non-HTML, compressed HTML (warned once: consentmw must
sit inside compression middleware), charsets that are unknown or not ASCII-compatible,
fragments without ``</body``, bodies already carrying this very snippet (see
:func:`~consentmw.pages.inject_once`), and non-body messages (``http.response.pathsend``).
Output is always :func:`~consentmw.pages.inject_once` of the whole body or the body
untouched. If more than :attr:`Responder.max_hold` bytes follow a ``</body``, they are let
go without injecting (a later end tag is still used), so a page with a huge tail after
``</body>`` may end up without the snippet.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Generator
from typing import Any, Protocol

from starlette.types import Message, Send

from .cache import MISSING
from .pages import (
    END_TAG,
    END_TAG_ANY_CASE,
    END_WINDOW,
    LANG_WINDOW,
    SNIPPET_END,
    changed_headers,
    csp_nonce,
    html_codec,
    injected_before,
    last_end_tag,
    marker_before,
    open_end_tag,
)
from .policy import ConsentPolicy, RequestContext

__all__ = ["STREAM_WINDOW", "VERIFY_WINDOW", "Responder", "SnippetSource"]

logger = logging.getLogger("consentmw")

#: Streamed bodies: an end tag is looked for only among the last STREAM_WINDOW bytes
#: received when a chunk arrives (see the module docstring).
STREAM_WINDOW = 2048
#: Streamed bodies: how many bytes before an end tag are kept to compare with the snippet
#: (a default snippet is about 3 KB); a longer snippet is not recognised when streamed.
VERIFY_WINDOW = 64 * 1024
# The bytes of the last chunks kept (by reference): the window, and VERIFY_WINDOW before it;
# the oldest are dropped now and then, when they make up more than _TRIM bytes.
_KEEP = VERIFY_WINDOW + STREAM_WINDOW
_TRIM = 4 * _KEEP
_LT = ord("<")

# Modes, in the order a response goes through them.
_AWAIT_START, _PASS, _HELD, _STREAM = 0, 1, 2, 3
_NO_BODY = frozenset({204, 205, 206, 304})
_IDENTITY = (b"", b"identity")


class _Nothing:
    """An awaitable that is done at once: what ``send`` returns while it holds a message."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_NOTHING = _Nothing()
_known_codec = html_codec.cache.get  # type: ignore[attr-defined]
_warned_encoding = False


class SnippetSource(Protocol):
    """The snippet for a response: ``(encoded snippet + SNIPPET_END, its language)``, from
    the request, the start of the body (for ``<html lang>``), the CSP nonce and the codec."""

    def __call__(
        self, ctx: RequestContext, head: bytes, nonce: str | None, codec: str
    ) -> tuple[bytes, str]: ...


def warn_compressed(encoding: bytes) -> None:
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


class Responder:
    """One response's ``send`` (the bound method :meth:`send`); one object per request."""

    #: Bytes after a ``</body`` held back at most before it is let go.
    max_hold: int = 256 * 1024

    __slots__ = (
        "asked", "codec", "ctx", "head", "held", "history", "history_size", "holding", "injected",
        "lang", "length", "mode", "nonce", "policy", "seen", "send_next", "snippets", "start",
    )  # fmt: skip

    def __init__(
        self, send: Send, ctx: RequestContext, policy: ConsentPolicy, snippets: SnippetSource
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.snippets = snippets
        self.send_next = policy.with_signal_cookie(ctx, send) if ctx.persist else send
        self.mode = _AWAIT_START

    def send(self, message: Message) -> Awaitable[None]:
        """Handle ``message`` now and return what the app awaits: the next ``send`` of it
        (or of the held start message and it), or nothing to wait for while holding.

        A plain function, not a coroutine: a message passed straight on costs no frame
        of ours, and the app's ``await send(message)`` awaits the server's send directly.
        """
        mode = self.mode
        kind = message["type"]
        if mode == _PASS:
            if kind == "http.response.start":  # a second start (an app error handler's)
                self._refilter(message)
            return self.send_next(message)
        if mode == _AWAIT_START:
            if kind != "http.response.start" or self._start(message):
                return self.send_next(message)
            return _NOTHING
        if mode == _HELD:
            if kind == "http.response.body" and not message.get("more_body", False):
                self.mode = _PASS
                self._single(message)
                return self._send_two(self.start, message)
            if kind == "http.response.start":  # replaces the held one, which never left
                return self.send_next(message) if self._start(message) else _NOTHING
            if kind == "http.response.body":
                return self._begin_stream(message)
            self.mode = _PASS  # e.g. pathsend: nothing to inject into
            return self._send_two(self.start, message)
        if kind == "http.response.start":
            self._refilter(message)
            return self.send_next(message)
        return self._stream(message)

    async def _send_two(self, first: Message, second: Message) -> None:
        await self.send_next(first)
        await self.send_next(second)

    # -- the start message ---------------------------------------------------------------------
    def _refilter(self, message: Message) -> None:
        """Set-Cookie enforcement and expiries: every start message with a Set-Cookie header,
        or from a visitor carrying refused cookies, gets a filtered copy of its headers."""
        policy, ctx = self.policy, self.ctx
        out = [
            item
            for item in message.get("headers", ())
            if item[0].lower() != b"set-cookie" or policy.allow_set_cookie(item[1], ctx.state)
        ]
        if ctx.tracked:
            out += policy.expiry_for(ctx)
        message["headers"] = out

    def _start(self, message: Message) -> bool:
        """Read and filter the headers; False to hold the start message back (the body may
        change). The app's header list itself is never changed: a response object may be
        sent again."""
        ctx = self.ctx
        headers = message.get("headers", ())
        if type(headers) is not list:  # any iterable may be given: read it once
            headers = message["headers"] = list(headers)
        ctype = encoding = b""
        csp = cookies = False
        length = None  # the Content-Length item
        plain = True  # no ETag, no Vary, one Content-Length: _single patches a copy
        for item in headers:
            name = item[0].lower()
            if name == b"content-length":
                if length is not None:
                    plain = False
                length = item
            elif name == b"content-type":
                ctype = ctype or item[1]
            elif name == b"set-cookie":
                cookies = True
            elif name == b"etag" or name == b"vary":
                plain = False
            elif name == b"content-encoding":
                encoding = item[1]
            elif name == b"content-security-policy":
                csp = True
        if cookies or ctx.tracked:
            self._refilter(message)
        codec = None
        if ctype:
            if type(ctype) is not bytes:
                ctype = bytes(ctype)
            codec = _known_codec(ctype, MISSING)  # html_codec's own cache, without a call
            if codec is MISSING:
                codec = html_codec(ctype)
        if codec is not None:
            status = message["status"]
            # Methods are case-sensitive (RFC 9110 9.1): "head" is not HEAD.
            if status < 200 or status in _NO_BODY or ctx.scope["method"] == "HEAD":
                codec = None
            elif encoding and bytes(encoding).strip().lower() not in _IDENTITY:
                warn_compressed(bytes(encoding))
                codec = None
        if codec is None:
            self.mode = _PASS
            return True
        self.codec = codec
        self.length = length if plain else False
        self.nonce = csp_nonce(message["headers"]) if csp else None
        self.start = message
        self.mode = _HELD
        return False

    # -- a body in one message -----------------------------------------------------------------
    def _single(self, message: Message) -> None:
        """A whole HTML body in one message: inject it here, with an exact Content-Length."""
        start = self.start
        body = message.get("body", b"")
        if type(body) is not bytes:  # bytearray or memoryview: allowed, rare
            body = bytes(body)
        i = last_end_tag(body)
        if i < 0:
            return
        ctx = self.ctx
        snippet, lang = self.snippets(ctx, body, self.nonce, self.codec)
        # Already injected only if the very bytes we would inject are there (not a copied marker).
        lo = i - END_WINDOW
        if body.rfind(SNIPPET_END, lo if lo > 0 else 0, i) < 0 or not injected_before(
            body, i, snippet
        ):
            view = memoryview(body)
            body = b"".join((view[:i], snippet, view[i:]))
            message["body"] = body
            if ctx.state.show_banner and self.policy.counter is not None:
                self.policy.count_banner_shown(ctx, lang)
            length = self.length
            if length is False:  # ETag, Vary or repeated Content-Length: the general rewrite
                start["headers"] = changed_headers(start["headers"], len(body))
            else:  # the usual headers: a copy with Content-Length patched and Vary added
                headers = list(start["headers"])
                if length is not None:
                    headers[headers.index(length)] = (length[0], b"%d" % len(body))
                headers.append((b"vary", b"Cookie"))
                start["headers"] = headers

    # -- a streamed body -----------------------------------------------------------------------
    async def _begin_stream(self, message: Message) -> None:
        self.mode = _STREAM
        self.injected: bytes | None = None  # the snippet, once asked for
        self.head = bytearray()  # first LANG_WINDOW body bytes, for <html lang>
        # The last chunks (references, not copies), at least _KEEP bytes when there are: the
        # search window, and the bytes before an end tag to compare with the snippet.
        self.history: list[bytes] = []
        self.history_size = 0
        self.held = bytearray()  # the last bytes received, not sent yet
        self.seen = 0  # body bytes received
        self.holding = False  # self.held starts at an end tag the snippet goes before
        self.start["headers"] = changed_headers(self.start["headers"], None)
        await self.send_next(self.start)
        await self._stream(message)

    async def _stream(self, message: Message) -> None:
        chunk = message.get("body", b"")
        if type(chunk) is not bytes:  # bytearray or memoryview: allowed, rare
            chunk = bytes(chunk)
            message = {**message, "body": chunk}
        size = len(chunk)
        if (
            size >= STREAM_WINDOW
            and not self.holding
            and message.get("more_body", False)
            and END_TAG_ANY_CASE.search(chunk, size - STREAM_WINDOW) is None
        ):
            # The usual chunk: large, no end tag in its window, none held back. It all
            # leaves, mostly as the very same message, but for the start of an end tag
            # that the next chunk may complete.
            seen = self.seen
            self._remember(chunk)
            if self.held or _LT in chunk[-len(END_TAG) :]:
                cut = open_end_tag(chunk)
                if self.held or cut < size:
                    message = {**message, "body": self._release(chunk, seen + cut)}
            await self.send_next(message)
            return
        more = bool(message.get("more_body", False))
        at = -1
        if size:
            self._remember(chunk)
            at = self._end_tag(chunk)
        if at >= 0:
            if self._injected_before(self.seen - at):
                self.mode = _PASS
                out = self._release(chunk, self.seen)
                await self.send_next({**message, "body": out, "more_body": more})
                return
            out = self._release(chunk, at)
            self.holding = True
        else:
            out = b""
            self.held += chunk
            if self.holding and len(self.held) > self.max_hold:
                self.holding = False
        if not more:
            # Checked again (self.held starts at the end tag): the start of the body, and so
            # the snippet, may have grown since the end tag was met (<html lang> after it).
            if self.holding and not self._injected_before(len(self.held)):
                out += self._snippet()
                self._shown()
            out += self.held
            self.held = bytearray()
        elif not self.holding:
            out += self._take(open_end_tag(self.held))
        await self.send_next({**message, "body": out, "more_body": more})

    def _end_tag(self, chunk: bytes) -> int:
        """Body offset of the end tag the snippet now goes before, or -1.

        Only an end tag that ``chunk`` completes is new: it starts at most
        ``len(END_TAG)`` bytes before the chunk. It counts when it stands in the last
        :data:`STREAM_WINDOW` bytes received. While an end tag is held back the whole chunk
        is searched: a later end tag beyond the window means the held one is not the last,
        so it is let go, and the body passes untouched unless a later one is found.
        """
        if self.holding:  # self.held ends with the bytes just before chunk
            window = bytes(self.held[-len(END_TAG) :]) + chunk
        else:
            window = self._last(min(len(chunk) + len(END_TAG), STREAM_WINDOW))
        i = last_end_tag(window)
        if i < 0:
            return -1
        at = self.seen - len(window) + i
        if self.seen - at > STREAM_WINDOW:
            self.holding = False
            return -1
        return at

    def _release(self, chunk: bytes, upto: int) -> bytes:
        """The held bytes and then ``chunk``'s, up to body offset ``upto``: what leaves now.

        The rest stays held. No copy when nothing is held and all of ``chunk`` leaves.
        """
        held = self.held
        k = upto - (self.seen - len(chunk))
        if k < 0:  # the cut lies in the held bytes (an end tag split across chunks)
            k += len(held)
            out = bytes(held[:k])
            del held[:k]
            held += chunk
            return out
        if held:
            out = b"".join((held, memoryview(chunk)[:k]))
            held.clear()
        else:
            out = chunk[:k]
        if k < len(chunk):
            held += memoryview(chunk)[k:]
        return out

    def _snippet(self) -> bytes:
        """The encoded snippet and SNIPPET_END for the start of the body received so far:
        asked for again only if that start grew since (an end tag met within the first
        LANG_WINDOW bytes, before ``<html lang>``, must not fix the language)."""
        if self.injected is None or self.asked != len(self.head):
            self.asked = len(self.head)
            head = bytes(self.head)
            self.injected, self.lang = self.snippets(self.ctx, head, self.nonce, self.codec)
        return self.injected

    def _shown(self) -> None:
        """The snippet went in: a banner view, if the state shows the banner."""
        if self.ctx.state.show_banner:
            self.policy.count_banner_shown(self.ctx, self.lang)

    def _remember(self, chunk: bytes) -> None:
        """Count ``chunk`` as received, keeping what later checks need: the start of the
        body, and references to the last chunks."""
        seen = self.seen
        if seen < LANG_WINDOW:
            self.head += chunk[: LANG_WINDOW - seen]
        self.seen = seen + len(chunk)
        self.history.append(chunk)
        self.history_size += len(chunk)
        if self.history_size > _TRIM:
            self._forget()

    def _forget(self) -> None:
        """Drop references to the oldest chunks, keeping at least _KEEP bytes."""
        history = self.history
        size = self.history_size
        drop = 0
        while size - len(history[drop]) >= _KEEP:
            size -= len(history[drop])
            drop += 1
        del history[:drop]
        self.history_size = size

    def _last(self, n: int) -> bytes:
        """The last ``n`` bytes received (fewer at the start of the body)."""
        history = self.history
        last = history[-1]
        if len(last) >= n:
            return last[len(last) - n :]
        parts: list[bytes] = []
        for part in reversed(history):
            if len(part) >= n:
                parts.append(part[len(part) - n :])
                break
            parts.append(part)
            n -= len(part)
        parts.reverse()
        return b"".join(parts)

    def _injected_before(self, back: int) -> bool:
        """Whether this very snippet already ends just before the end tag that starts
        ``back`` bytes before the end of what was received (the body went through
        consentmw already)."""
        near = self._last(back + END_WINDOW)
        if not marker_before(near, len(near) - back):
            return False
        data = self._last(back + VERIFY_WINDOW)
        return injected_before(data, len(data) - back, self._snippet())

    def _take(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes from the front of the held buffer."""
        if n <= 0:
            return b""
        held = self.held
        out = bytes(held[:n])
        del held[:n]
        return out
