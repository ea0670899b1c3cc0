"""ConsentMiddleware: pure ASGI, enforces the visitor's choice on every response.

Per request it reads the signed consent cookie once, answers its own routes under the
prefix, and otherwise wraps ``send`` to drop ``Set-Cookie`` headers the visitor has not
allowed, expire cookies of refused categories, and inject the banner snippet into HTML.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .banner import Banner, Snippet, choose_language
from .cache import BoundedCache
from .config import ConfigError, ConsentConfig
from .consent import ConsentCodec, ConsentState, Signal, new_consent_id
from .endpoints import Endpoints
from .envconfig import config_from_env
from .httpfacts import is_local_host, is_navigation, private_for_cookie
from .inject import (
    LANG_WINDOW,
    SNIPPET_END,
    InjectingSend,
    _changed_headers,
    _html_codec,
    _html_lang,
    _injected_before,
    _lang_of_tag,
    _last_end_tag,
    _warn_compressed,
    csp_nonce,
)
from .receipts import ReceiptWriter
from .setcookie import (
    consent_cookie_header,
    expire_headers,
    request_cookie,
    request_cookie_names,
    set_cookie_name,
)
from .urls import return_path

logger = logging.getLogger("consentmw")
SCOPE_KEY = "consentmw"
_MAX_WARNED = 1000
_MB = 1024 * 1024
# Request headers longer than these are read but never cached: none of them is that long
# from a browser, and uvicorn with httptools accepts up to 8 MB.
_MAX_CACHED_COOKIE = 8192
_MAX_CACHED_HOST = 255
_MAX_CACHED_ACCEPT_LANGUAGE = 512
_MAX_CACHED_PATH = 1024  # path and query


@dataclass(slots=True)
class RequestContext:
    """What one request needs: its scope, a header lookup and the consent state."""

    scope: Scope
    headers: dict[bytes, bytes]
    state: ConsentState
    persist: bool = False  # the state is to be written as a consent cookie (see below)
    tracked: bool = False  # the request carries cookies of optional categories
    language: str | None = None  # the language a decision form was shown in
    # Seconds left of a consent cookie that still has its plain (pre-``__Host-``) name and
    # is to be rewritten under the new name, for no longer than it had; 0: none.
    renamed: int = 0

    def header(self, name: bytes) -> bytes | None:
        return self.headers.get(name)

    @property
    def host(self) -> str:
        return (self.headers.get(b"host") or b"").decode("latin-1")

    @property
    def secure(self) -> bool:
        return self.scope.get("scheme") in ("https", "wss")


class ConsentMiddleware:
    """Cookie consent enforced on the server.

    ``ConsentMiddleware(app, secret_key="...", google_analytics_id="G-...")`` or
    ``ConsentMiddleware(app, config=ConsentConfig(...))``; bad options raise
    :class:`~consentmw.config.ConfigError` here, at start-up.
    """

    def __init__(self, app: ASGIApp, config: ConsentConfig | None = None, **options: Any) -> None:
        if config is not None and options:
            raise ConfigError(
                "pass either config=ConsentConfig(...) or keyword options, not both "
                f"(got {', '.join(sorted(options))})"
            )
        if config is None:
            unknown = set(options) - set(ConsentConfig.option_names())
            if unknown:
                raise ConfigError(
                    f"unknown option(s) {', '.join(sorted(unknown))}; valid options: "
                    f"{', '.join(ConsentConfig.option_names())}"
                )
            config = config_from_env(**options)  # keywords win over CONSENTMW_* variables
        self.app = app
        self.config = config
        self.registry = config.registry
        self.codec = ConsentCodec(
            config.secret_keys, config.policy_version, config.lifetime_seconds
        )
        self.banner = Banner(config)
        self.endpoints = Endpoints(self)
        self._prefix = config.prefix
        self._prefix_slash = config.prefix + "/"
        # The first name is written (where browsers allow it); all are read.
        self._cookie_names = config.consent_cookie_names
        self._host_only_name = len(self._cookie_names) == 2
        self._warned: set[str] = set()
        self._optional = frozenset(self.registry.optional)
        self._undecided = ConsentState(policy_version=config.policy_version)
        # Encoded snippets per page, language and state (~10 KB each at most).
        self._snippet_bytes: BoundedCache[tuple[Any, ...], tuple[bytes, str]] = BoundedCache(
            1024, 8 * _MB
        )
        self._expiries: BoundedCache[tuple[Any, ...], list[tuple[bytes, bytes]]] = (
            BoundedCache(1024, 2 * _MB)
        )
        self._cookies: BoundedCache[bytes, tuple[ConsentState | None, float, bool, bool]] = (
            BoundedCache(2048, 4 * _MB)
        )
        self._languages: BoundedCache[tuple[str | None, bytes], str] = BoundedCache(512, _MB)
        self._signals = config.honour_privacy_signals
        self.receipts = ReceiptWriter.from_config(config, self.banner.shown_texts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return await self.app(scope, receive, self.receipts.lifespan_send(send))
            return await self.app(scope, receive, send)
        if SCOPE_KEY in scope:  # an outer ConsentMiddleware already handles this request
            return await self.app(scope, receive, send)
        ctx = self.context(scope)
        path = scope["path"]
        if path == self._prefix or path.startswith(self._prefix_slash):
            # Never persisted here: a decision posted by a signalling browser must leave one
            # consent cookie (its own), and static files stay publicly cacheable.
            await self.endpoints(ctx, receive, send)
            return
        await self.app(scope, receive, _Responder(self, ctx, send).send)

    # -- state ---------------------------------------------------------------------------------
    def context(self, scope: Scope) -> RequestContext:
        raw = scope["headers"]
        if not isinstance(raw, list):
            raw = list(raw)
        headers: dict[bytes, bytes] = dict(raw)  # C speed; exact when no name repeats
        if len(headers) != len(raw):
            headers = {}
            for key, value in raw:
                if key in headers:  # repeated Cookie headers are joined, others keep the first
                    if key == b"cookie":
                        headers[key] += b"; " + value
                    continue
                headers[key] = value
        cookie_header = headers.get(b"cookie")
        tracked = False
        carried: ConsentState | None = None  # undecided under a new policy, id kept
        if cookie_header:
            cached, expires, tracked, plain = self._cookies.get(
                cookie_header
            ) or self.read_cookies(cookie_header)
            now = time.time()
            if cached is not None and now <= expires:
                if cached.decided or cached.signal:
                    scope[SCOPE_KEY] = cached
                    ctx = RequestContext(scope, headers, cached, False, tracked)
                    if plain and self._host_only_name and self.renames(ctx):
                        ctx.persist, ctx.renamed = True, int(expires - now)
                    return ctx
                carried = cached
        if self._signals and (b"sec-gpc" in headers or b"dnt" in headers):
            state, persist = self.without_cookie(headers, scope["method"], carried)
        else:
            state, persist = carried or self._undecided, False  # frozen: shared instance
        scope[SCOPE_KEY] = state
        return RequestContext(scope, headers, state, persist, tracked)

    def read_cookies(
        self, cookie_header: bytes
    ) -> tuple[ConsentState | None, float, bool, bool]:
        """What a Cookie header says: the verified consent state (None: no valid consent
        cookie), the time it expires, whether the header carries cookies of optional
        categories (which a refusal must expire), and whether the state came from the
        consent cookie's plain name although a ``__Host-`` one is in use.

        Cached per header value (up to 8 KB): a visitor sends the same one until a cookie
        changes. The expiry time is checked by the caller on every request.
        """
        hit = self._cookies.get(cookie_header)
        if hit is None:
            tracked = False
            for name in request_cookie_names(cookie_header):
                spec = self.registry.lookup(name)
                if spec is not None and spec.category in self._optional:
                    tracked = True
                    break
            verified, plain = None, False
            for i, name in enumerate(self._cookie_names):
                verified = self.codec.verify(request_cookie(cookie_header, name))
                if verified is not None:
                    plain = self._host_only_name and i == 1
                    break
            if verified is None:
                hit = (None, 0.0, tracked, False)
            else:
                hit = (verified[0], float(verified[1] + self.codec.lifetime), tracked, plain)
            if len(cookie_header) <= _MAX_CACHED_COOKIE:
                self._cookies.put(cookie_header, hit)
        return hit

    def without_cookie(
        self, headers: dict[bytes, bytes], method: str, carried: ConsentState | None = None
    ) -> tuple[ConsentState, bool]:
        """Undecided, or a refusal when the browser sends a privacy signal, and whether to
        persist that refusal in a consent cookie.

        The refusal applies to every request that carries the signal. It is persisted only
        on a top-level page navigation: a static file, a JSON call or an image would mint a
        consent id (and a cookie a shared cache might hand to others) on every request.
        """
        signal = self.privacy_signal(headers) if self._signals else None
        if signal is None:
            return carried or self._undecided, False
        persist = is_navigation(headers, method)
        consent_id = carried.consent_id if carried is not None else None
        return (
            ConsentState(
                denied=self._optional,
                policy_version=self.config.policy_version,
                consent_id=consent_id or (new_consent_id() if persist else None),
                decided_at=int(time.time()),
                signal=signal,
            ),
            persist,
        )

    def privacy_signal(self, headers: dict[bytes, bytes]) -> Signal | None:
        if not self.config.honour_privacy_signals:
            return None
        if headers.get(b"sec-gpc", b"").strip() == b"1":
            return "gpc"
        if headers.get(b"dnt", b"").strip() == b"1":
            return "dnt"
        return None

    # -- headers -------------------------------------------------------------------------------
    def secure(self, ctx: RequestContext) -> bool:
        """``Secure`` on the consent cookie: on by default, so a site behind TLS termination
        that sees plain http still gets it; off only for local development hosts
        (``localhost``, ``127.0.0.1``, ``::1``) over http, or by ``secure_cookie=False``."""
        if self.config.secure_cookie is not None:
            return self.config.secure_cookie
        return ctx.secure or not is_local_host(ctx.host)

    def cookie_name(self, ctx: RequestContext) -> str:
        """``__Host-`` + name where browsers accept it (Secure, no Domain), else the name."""
        names = self._cookie_names
        return names[0] if not self._host_only_name or self.secure(ctx) else names[1]

    def renames(self, ctx: RequestContext) -> bool:
        """Whether a consent cookie under the plain name is to move to the ``__Host-`` one
        here (on a page load: the same rule as for any per-visitor cookie we add)."""
        return self.secure(ctx) and is_navigation(ctx.headers, ctx.scope["method"])

    def consent_cookie(
        self, ctx: RequestContext, state: ConsentState, max_age: int | None = None
    ) -> bytes:
        return consent_cookie_header(
            self.cookie_name(ctx),
            self.codec.encode(state),
            max_age=self.config.lifetime_seconds if max_age is None else max_age,
            secure=self.secure(ctx),
            domain=self.config.cookie_domain,
        )

    def consent_cookie_headers(self, ctx: RequestContext, state: ConsentState) -> list[bytes]:
        """The consent cookie, and deletion of its other name if the request carries it (a
        cookie written before the ``__Host-`` prefix, or by local development)."""
        out = [self.consent_cookie(ctx, state)]
        current = self.cookie_name(ctx)
        carried = set(request_cookie_names(ctx.headers.get(b"cookie") or b""))
        for name in self._cookie_names:
            if name != current and name in carried:
                out += expire_headers(name, ctx.host, self.secure(ctx))
        return out

    def expiry_headers(
        self, ctx: RequestContext, state: ConsentState, names: Sequence[str]
    ) -> list[bytes]:
        """Deletion headers for the cookies in ``names`` that ``state`` does not allow."""
        out: list[bytes] = []
        for name in names:
            spec = self.registry.lookup(name)
            if spec is not None and not state.allows(spec.category):
                out += expire_headers(name, ctx.host, self.secure(ctx))
        return out

    def allow_set_cookie(self, value: bytes, state: ConsentState) -> bool:
        name = set_cookie_name(value)
        spec = self.registry.lookup(name)
        if spec is not None:
            return state.allows(spec.category)
        policy = self.config.undeclared_cookies
        if name not in self._warned and len(self._warned) < _MAX_WARNED:
            self._warned.add(name)
            verb = "blocked" if policy == "block" else "let through"
            logger.warning(
                "consentmw %s Set-Cookie for undeclared cookie %r; declare it, e.g. "
                "ConsentMiddleware(..., extra_cookies=[CookieSpec(%r, category='necessary', "
                "purpose={'nb': ..., 'en': ...})]), or set undeclared_cookies='allow'",
                verb,
                name,
                name,
            )
        return policy != "block"

    def with_signal_cookie(self, ctx: RequestContext, send: Send) -> Send:
        """Write the state as a consent cookie, on a page no shared cache keeps: a first-seen
        privacy signal's refusal, or a consent cookie moving to its ``__Host-`` name.

        No receipt for a signal: it is not a consent to prove. The refusal is counted.
        """
        if not ctx.persist:
            return send

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and ctx.persist:
                ctx.persist = False
                headers = private_for_cookie(list(message.get("headers", ())))
                if headers is not None:  # else: shareable; persisted on a later page
                    if ctx.renamed:
                        cookie = self.consent_cookie(ctx, ctx.state, ctx.renamed)
                        plain = self._cookie_names[1]
                        old = expire_headers(plain, ctx.host, self.secure(ctx))
                        headers += [(b"set-cookie", v) for v in (cookie, *old)]
                    else:
                        headers.append((b"set-cookie", self.consent_cookie(ctx, ctx.state)))
                        self.count_signal_refusal(ctx)
                    message["headers"] = headers
            await send(message)

        return wrapped

    def count_signal_refusal(self, ctx: RequestContext) -> None:
        """One newly persisted signal refusal, per day, policy version and language."""
        counter = self.receipts.counter
        if counter is not None:
            counter.count("signal_refusal", ctx.state.policy_version, self.language(ctx))

    def count_banner_shown(self, ctx: RequestContext, language: str) -> None:
        """One page served with the banner, per day, policy version and language."""
        counter = self.receipts.counter
        if counter is not None:
            counter.count("banner_shown", ctx.state.policy_version, language)

    def language(self, ctx: RequestContext, html_lang: str | None = None) -> str:
        return self.page_language(html_lang, ctx.headers.get(b"accept-language"))

    def page_language(self, html_lang: str | None, accept_language: bytes | None) -> str:
        """The banner's language: the page's ``<html lang>``, then Accept-Language (cached)."""
        accept = accept_language or b""
        key = (html_lang, accept)
        lang = self._languages.get(key)
        if lang is None:
            # The first 512 bytes are all choose_language reads.
            text = accept[:_MAX_CACHED_ACCEPT_LANGUAGE].decode("latin-1")
            lang = choose_language(html_lang, text, self.config.default_language)
            if len(accept) <= _MAX_CACHED_ACCEPT_LANGUAGE:
                self._languages.put(key, lang)
        return lang

    def expiry_for(self, ctx: RequestContext) -> list[tuple[bytes, bytes]]:
        """``Set-Cookie`` headers deleting the request's cookies that its state refuses.

        Cached per Cookie header, choice, host and scheme: a visitor repeats all four.
        """
        state, cookie_header = ctx.state, ctx.headers[b"cookie"]
        host = ctx.headers.get(b"host")
        key = (cookie_header, state.granted, host, self.secure(ctx))
        out = self._expiries.get(key)
        if out is None:
            names = request_cookie_names(cookie_header)
            out = [(b"set-cookie", v) for v in self.expiry_headers(ctx, state, names)]
            if len(cookie_header) <= _MAX_CACHED_COOKIE and len(host or b"") <= _MAX_CACHED_HOST:
                self._expiries.put(key, out)
        return out


# Response modes of _Responder, in the order a response goes through them.
_AWAIT_START, _PASS, _HELD, _STREAM = 0, 1, 2, 3
_NO_BODY = frozenset({204, 205, 206, 304})
_IDENTITY = (b"", b"identity")


class _Responder:
    """The ``send`` of one wrapped response: Set-Cookie enforcement and banner injection.

    One object and one bound method per request, because this is the hot path: the start
    message's headers are read in a single pass (filtering ``Set-Cookie`` and noting what
    injection needs), a single-message HTML body is injected here with a snippet cached as
    bytes per page, language and state, and only a streamed body is handed to
    :class:`~consentmw.inject.InjectingSend`. Non-HTML bodies go straight through.
    """

    __slots__ = (
        "codec", "ctx", "headers", "lang", "length_at", "mode", "mw", "nonce", "send_next",
        "start",
        "stream",
    )  # fmt: skip

    def __init__(self, mw: ConsentMiddleware, ctx: RequestContext, send: Send) -> None:
        self.mw = mw
        self.ctx = ctx
        self.send_next = mw.with_signal_cookie(ctx, send) if ctx.persist else send
        self.mode = _AWAIT_START
        self.stream: InjectingSend | None = None

    async def send(self, message: Message) -> None:
        mode = self.mode
        kind = message["type"]
        if mode == _PASS:
            if kind == "http.response.start":  # a second start (an app error handler's)
                self._refilter(message)
            await self.send_next(message)
        elif mode == _AWAIT_START:
            if kind != "http.response.start" or self._start(message):
                await self.send_next(message)
        elif mode == _HELD:
            if kind == "http.response.body" and not message.get("more_body", False):
                self.mode = _PASS
                self._single(message)
                await self.send_next(self.start)
                await self.send_next(message)
            else:
                if kind == "http.response.start":
                    self._refilter(message)
                await self._begin_stream(message)
        else:
            if kind == "http.response.start":
                self._refilter(message)
            await self.stream(message)  # type: ignore[misc]

    def _refilter(self, message: Message) -> None:
        """Set-Cookie enforcement for a start message after the first: every one is filtered."""
        mw, ctx = self.mw, self.ctx
        out = [
            item
            for item in message.get("headers", ())
            if item[0].lower() != b"set-cookie" or mw.allow_set_cookie(item[1], ctx.state)
        ]
        if ctx.tracked:
            out += mw.expiry_for(ctx)
        message["headers"] = out

    def _start(self, message: Message) -> bool:
        """Filter the headers; False to hold the start message back (the body may change)."""
        mw, ctx = self.mw, self.ctx
        state = ctx.state
        out: list[tuple[bytes, bytes]] = []
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
                if not mw.allow_set_cookie(item[1], state):
                    continue
            elif name == b"etag" or name == b"vary":
                plain = False
            elif name == b"content-encoding":
                encoding = item[1]
            elif name == b"content-security-policy":
                csp = True
            out.append(item)
        if ctx.tracked:
            out += mw.expiry_for(ctx)
        message["headers"] = out
        status = message["status"]
        method = ctx.scope["method"]
        codec = None
        if not (status < 200 or status in _NO_BODY or method.upper() == "HEAD"):
            codec = _html_codec(bytes(ctype)) if ctype else None
            if codec and encoding and bytes(encoding).strip().lower() not in _IDENTITY:
                _warn_compressed(bytes(encoding))
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

    def _single(self, message: Message) -> None:
        """A whole HTML body in one message: inject it here, with an exact Content-Length."""
        start = self.start
        body = message.get("body", b"")
        if type(body) is not bytes:  # bytearray or memoryview: allowed, rare
            body = bytes(body)
        i = _last_end_tag(body)
        # Already injected only if the very bytes we would inject are there (not a copied marker).
        if i >= 0 and not _injected_before(body, i, snippet := self._snippet(body)):
            view = memoryview(body)
            body = b"".join((view[:i], snippet, view[i:]))
            message["body"] = body
            if self.ctx.state.show_banner:
                self.mw.count_banner_shown(self.ctx, self.lang)
            at = self.length_at
            if at == -2:  # ETag, Vary or repeated Content-Length: the general rewrite
                start["headers"] = _changed_headers(self.headers, len(body))
            else:  # the usual headers: patch Content-Length, add Vary, no second pass
                headers = self.headers
                if at >= 0:
                    headers[at] = (headers[at][0], b"%d" % len(body))
                headers.append((b"vary", b"Cookie"))
                start["headers"] = headers

    async def _begin_stream(self, message: Message) -> None:
        """More than one body message (or a non-body one): the streaming injector takes over."""
        self.mode = _STREAM
        self.stream = InjectingSend.accepted(
            self.send_next,
            self.start,
            codec=self.codec,
            headers=self.headers,
            nonce=self.nonce,
            render_snippet=self.render_snippet,
        )
        await self.stream(message)

    def _snippet(self, body: bytes) -> bytes:
        """The encoded snippet (ending in SNIPPET_END) for this page, language and state.

        Cached by what decides it, read without parsing: the page's ``<html ...>`` tag, the
        Accept-Language header, the consent state, the path and query, and the charset.
        """
        mw, ctx = self.mw, self.ctx
        scope = ctx.scope
        at = body.find(b"<html", 0, LANG_WINDOW)
        end = body.find(b">", at, at + 512) if at >= 0 else -1
        accept = ctx.headers.get(b"accept-language")
        if accept is not None and len(accept) > 512:
            accept = accept[:512]  # all that choose_language reads
        # The tag decides the page's language; without a lower-case one, find it the long way.
        page = body[at : end + 1] if end >= 0 else _html_lang(body)
        key = (
            page,
            accept,
            ctx.state.view_key,
            scope.get("path"),
            scope.get("query_string"),
            self.codec,
        )
        nonce = self.nonce
        if nonce is None:
            cached = mw._snippet_bytes.get(key)
            if cached is not None:
                out, self.lang = cached
                return out
        lang = self.lang = mw.page_language(_lang_of_tag(page) if end >= 0 else page, accept)
        html = mw.banner.snippet_parts(lang, ctx.state, _next_path(scope), nonce)
        out = html.encode(self.codec, errors="xmlcharrefreplace") + SNIPPET_END
        if nonce is None and len(key[3] or "") + len(key[4] or b"") <= _MAX_CACHED_PATH:
            mw._snippet_bytes.put(key, (out, lang))
        return out

    def render_snippet(self, nonce: str | None, html_lang: str | None) -> Snippet:
        """For the streaming injector, which encodes it once per response."""
        ctx = self.ctx
        lang = self.mw.page_language(html_lang, ctx.headers.get(b"accept-language"))
        if ctx.state.show_banner:  # called once per response, when the snippet goes in
            self.mw.count_banner_shown(ctx, lang)
        return self.mw.banner.snippet_parts(lang, ctx.state, _next_path(ctx.scope), nonce)


def _next_path(scope: Scope) -> str:
    """Where a no-JS decision form returns to: this page, as percent-encoded ASCII."""
    return return_path(scope)
