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
  references to the chunks that make up the last :data:`VERIFY_WINDOW` bytes are kept
  to compare with the snippet, so memory stays flat for any body size.

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
from collections import deque
from collections.abc import Awaitable, Generator
from typing import Any, Protocol

from starlette.types import Message, Send

from .cache import MISSING
from .pages import (
    END_TAG,
    END_WINDOW,
    LANG_WINDOW,
    SNIPPET_END,
    RawHeaders,
    changed_headers,
    csp_nonce,
    html_codec,
    injected_before,
    last_end_tag,
    marker_before,
)
from .policy import ConsentPolicy, RequestContext

__all__ = ["VERIFY_WINDOW", "Responder", "SnippetSource"]

logger = logging.getLogger("consentmw")

#: Streamed bodies: how many bytes before an end tag are kept to compare with the snippet
#: (a default snippet is about 3 KB); a longer snippet is not recognised when streamed.
VERIFY_WINDOW = 64 * 1024
# The overlap kept between streamed chunks: a split "</body" plus one byte, and the bytes
# before an end tag where SNIPPET_END would stand.
_TAIL = END_WINDOW + len(END_TAG) + 1

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
        "codec", "ctx", "found", "head", "headers", "held", "history", "history_size",
        "holding", "injected", "lang", "length_at", "mode", "nonce", "policy", "recent", "seen",
        "send_next", "sent", "snippets", "start",
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
        """Set-Cookie enforcement for a start message after the first: every one is filtered."""
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
        """Filter the headers; False to hold the start message back (the body may change)."""
        policy, ctx = self.policy, self.ctx
        state = ctx.state
        out: RawHeaders = []
        ctype = encoding = b""
        csp = False
        length_at = -1  # where Content-Length stands in ``out``
        plain = True  # no ETag, no Vary, one Content-Length: _single patches in place
        for item in message.get("headers", ()):
            name = item[0].lower()
            if name == b"content-length":
                if length_at >= 0:
                    plain = False
                length_at = len(out)
            elif name == b"content-type":
                ctype = ctype or item[1]
            elif name == b"set-cookie":
                if not policy.allow_set_cookie(item[1], state):
                    continue
            elif name == b"etag" or name == b"vary":
                plain = False
            elif name == b"content-encoding":
                encoding = item[1]
            elif name == b"content-security-policy":
                csp = True
            out.append(item)
        if ctx.tracked:
            out += policy.expiry_for(ctx)
        message["headers"] = out
        codec = None
        if ctype:
            if type(ctype) is not bytes:
                ctype = bytes(ctype)
            codec = _known_codec(ctype, MISSING)  # html_codec's own cache, without a call
            if codec is MISSING:
                codec = html_codec(ctype)
        if codec is not None:
            status = message["status"]
            if status < 200 or status in _NO_BODY or ctx.scope["method"].upper() == "HEAD":
                codec = None
            elif encoding and bytes(encoding).strip().lower() not in _IDENTITY:
                warn_compressed(bytes(encoding))
                codec = None
        if codec is None:
            self.mode = _PASS
            return True
        self.codec = codec
        self.headers = out
        self.length_at = length_at if plain else -2
        self.nonce = csp_nonce(out) if csp else None
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
            at = self.length_at
            if at == -2:  # ETag, Vary or repeated Content-Length: the general rewrite
                start["headers"] = changed_headers(self.headers, len(body))
            else:  # the usual headers: patch Content-Length, add Vary, no second pass
                headers = self.headers
                if at >= 0:
                    headers[at] = (headers[at][0], b"%d" % len(body))
                headers.append((b"vary", b"Cookie"))
                start["headers"] = headers

    # -- a streamed body -----------------------------------------------------------------------
    async def _begin_stream(self, message: Message) -> None:
        self.mode = _STREAM
        self.injected: bytes | None = None  # the snippet, once asked for
        self.head = bytearray()  # first LANG_WINDOW body bytes, for <html lang>
        self.recent = b""  # last _TAIL bytes seen: overlap for split matches
        # The last chunks (references, not copies), at least VERIFY_WINDOW bytes when there
        # are: an end marker before an end tag is checked against the bytes before it.
        self.history: deque[bytes] = deque()
        self.history_size = 0
        self.held = bytearray()  # received but not yet sent; starts at self.sent
        self.seen = 0  # body bytes received
        self.sent = 0  # body bytes sent
        self.found = -1  # offset of the last end tag seen
        self.holding = False  # self.held starts at self.found
        self.start["headers"] = changed_headers(self.headers, None)
        await self.send_next(self.start)
        await self._stream(message)

    async def _stream(self, message: Message) -> None:
        chunk = message.get("body", b"")
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        more = bool(message.get("more_body", False))
        if more and not self.holding and len(chunk) >= _TAIL:
            out = self._pass_chunk(chunk)
            if out is not None:
                await self.send_next({**message, "body": out, "more_body": more})
                return
        window = self.recent + chunk
        base = self.seen - len(self.recent)
        self.seen += len(chunk)
        self.recent = window[-_TAIL:]
        self._remember(chunk)
        self.held += chunk
        out = b""
        done = False  # this very snippet is already in the body: pass the rest
        i = last_end_tag(window)
        if i >= 0 and base + i > self.found:
            if marker_before(window, i) and self._streamed_snippet_before(base + i):
                done, self.holding = True, False
            else:
                self.found = base + i
                out = self._take(self.found - self.sent)
                self.holding = True
        elif self.holding and len(self.held) > self.max_hold:
            self.holding = False
        if done or not more:
            snippet = b""
            if self.holding:
                snippet = self._snippet(bytes(self.head))
                self._shown()
            out += snippet + self._take(len(self.held))
            if done:
                self.mode = _PASS
        elif not self.holding:
            out += self._take(len(self.held) - len(END_TAG))
        await self.send_next({**message, "body": out, "more_body": more})

    def _pass_chunk(self, chunk: bytes) -> bytes | None:
        """The common streamed chunk: no end tag in it, nothing held. What to send, or None.

        Equal to the general path, with one copy of the chunk instead of four: an end tag
        that completes in ``chunk`` either lies in it or starts in the last bytes before
        it; anything earlier was seen complete with an earlier chunk. The held buffer keeps
        its invariant (at most ``len("</body")`` bytes that may begin an end tag).
        """
        if last_end_tag(chunk) >= 0:
            return None
        edge = self.recent[-len(END_TAG) :]
        straddle = last_end_tag(edge + chunk[: len(END_TAG) + 1])
        if 0 <= straddle < len(edge):
            return None
        self.seen += len(chunk)
        self.recent = chunk[-_TAIL:]
        self._remember(chunk)
        keep = len(END_TAG)
        out = b"".join((self.held, memoryview(chunk)[:-keep]))
        self.held = bytearray(chunk[-keep:])
        self.sent += len(out)
        return out

    def _snippet(self, head: bytes) -> bytes:
        """The encoded snippet and SNIPPET_END, asked for once per response."""
        if self.injected is None:
            self.injected, self.lang = self.snippets(self.ctx, head, self.nonce, self.codec)
        return self.injected

    def _shown(self) -> None:
        """The snippet went in: a banner view, if the state shows the banner."""
        if self.ctx.state.show_banner:
            self.policy.count_banner_shown(self.ctx, self.lang)

    def _remember(self, chunk: bytes) -> None:
        if len(self.head) < LANG_WINDOW:
            self.head += chunk[: LANG_WINDOW - len(self.head)]
        history = self.history
        history.append(chunk)
        self.history_size += len(chunk)
        while self.history_size - len(history[0]) >= VERIFY_WINDOW:
            self.history_size -= len(history.popleft())

    def _streamed_snippet_before(self, at: int) -> bool:
        """Whether the streamed body already carries this snippet before offset ``at``."""
        data = b"".join(self.history)
        at -= self.seen - len(data)
        return at >= 0 and injected_before(data, at, self._snippet(bytes(self.head)))

    def _take(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes from the front of the held buffer."""
        n = max(0, min(n, len(self.held)))
        out = bytes(self.held[:n])
        del self.held[:n]
        self.sent += n
        return out
