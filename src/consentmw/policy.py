"""The visitor's consent as one request sees it, and the cookie rules that follow from it.

:class:`ConsentPolicy` reads the state from a request (the signed consent cookie, else a
privacy signal, else undecided), decides which ``Set-Cookie`` headers of a response may
pass, which of the request's cookies are to be expired, and writes the consent cookie.
It holds only configuration and bounded caches: the middleware, the responder and the
endpoints each get it explicitly, and it calls none of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Scope, Send

from .banner import choose_language
from .cache import BoundedCache
from .config import ConsentConfig
from .consent import ConsentCodec, ConsentState, Signal, new_consent_id
from .httpfacts import is_local_host, is_navigation, private_for_cookie
from .records import EventCounter
from .setcookie import (
    consent_cookie_header,
    expire_headers,
    request_cookie,
    request_cookie_names,
    set_cookie_name,
)

logger = logging.getLogger("consentmw")
#: Where the request's consent state is kept in the ASGI scope (see ``consent_state``).
SCOPE_KEY = "consentmw"
_MAX_WARNED = 1000
_MB = 1024 * 1024
# Request headers longer than these are read but never cached: none of them is that long
# from a browser, and uvicorn with httptools accepts up to 8 MB.
_MAX_CACHED_COOKIE = 8192
_MAX_CACHED_HOST = 255
#: The bytes of Accept-Language that choose_language reads.
ACCEPT_LANGUAGE_READ = 512

RawHeaders = list[tuple[bytes, bytes]]


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


class ConsentPolicy:
    """State from the request, Set-Cookie filtering, expiry and consent cookie headers."""

    def __init__(self, config: ConsentConfig, counter: EventCounter | None = None) -> None:
        self.config = config
        self.registry = config.registry
        self.codec = ConsentCodec(
            config.secret_keys, config.policy_version, config.lifetime_seconds
        )
        #: Counts banner views and signal refusals (None when receipts are off).
        self.counter = counter
        # The first name is written (where browsers allow it); all are read.
        self.cookie_names = config.consent_cookie_names
        self._host_only_name = len(self.cookie_names) == 2
        self._warned: set[str] = set()
        self._optional = frozenset(self.registry.optional)
        self._undecided = ConsentState(policy_version=config.policy_version)
        self._signals = config.honour_privacy_signals
        self._expiries: BoundedCache[tuple[Any, ...], RawHeaders] = BoundedCache(1024, 2 * _MB)
        self._cookies: BoundedCache[bytes, tuple[ConsentState | None, float, bool, bool]] = (
            BoundedCache(2048, 4 * _MB)
        )
        self._languages: BoundedCache[tuple[str | None, bytes], str] = BoundedCache(512, _MB)

    # -- state ---------------------------------------------------------------------------------
    def context(self, scope: Scope) -> RequestContext:
        """The request's context; its state is also put in the scope under :data:`SCOPE_KEY`."""
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
            for i, name in enumerate(self.cookie_names):
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
        signal = self.privacy_signal(headers)
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
        if not self._signals:
            return None
        if headers.get(b"sec-gpc", b"").strip() == b"1":
            return "gpc"
        if headers.get(b"dnt", b"").strip() == b"1":
            return "dnt"
        return None

    # -- cookies -------------------------------------------------------------------------------
    def secure(self, ctx: RequestContext) -> bool:
        """``Secure`` on the consent cookie: on by default, so a site behind TLS termination
        that sees plain http still gets it; off only for local development hosts
        (``localhost``, ``127.0.0.1``, ``::1``) over http, or by ``secure_cookie=False``."""
        if self.config.secure_cookie is not None:
            return self.config.secure_cookie
        return ctx.secure or not is_local_host(ctx.host)

    def cookie_name(self, ctx: RequestContext) -> str:
        """``__Host-`` + name where browsers accept it (Secure, no Domain), else the name."""
        names = self.cookie_names
        return names[0] if not self._host_only_name or self.secure(ctx) else names[1]

    def renames(self, ctx: RequestContext) -> bool:
        """Whether a consent cookie under the plain name is to move to the ``__Host-`` one
        here (on a page load: the same rule as for any per-visitor cookie we add)."""
        return is_navigation(ctx.headers, ctx.scope["method"]) and self.secure(ctx)

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
        for name in self.cookie_names:
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

    def expiry_for(self, ctx: RequestContext) -> RawHeaders:
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

    def allow_set_cookie(self, value: bytes, state: ConsentState) -> bool:
        """Whether a response's ``Set-Cookie`` may pass for a visitor in ``state``."""
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
                        plain = self.cookie_names[1]
                        old = expire_headers(plain, ctx.host, self.secure(ctx))
                        headers += [(b"set-cookie", v) for v in (cookie, *old)]
                    else:
                        headers.append((b"set-cookie", self.consent_cookie(ctx, ctx.state)))
                        self.count_signal_refusal(ctx)
                    message["headers"] = headers
            await send(message)

        return wrapped

    # -- language and counts -------------------------------------------------------------------
    def language(self, ctx: RequestContext, html_lang: str | None = None) -> str:
        return self.page_language(html_lang, ctx.headers.get(b"accept-language"))

    def page_language(self, html_lang: str | None, accept_language: bytes | None) -> str:
        """The banner's language: the page's ``<html lang>``, then Accept-Language (cached)."""
        accept = accept_language or b""
        key = (html_lang, accept)
        lang = self._languages.get(key)
        if lang is None:
            text = accept[:ACCEPT_LANGUAGE_READ].decode("latin-1")
            lang = choose_language(html_lang, text, self.config.default_language)
            if len(accept) <= ACCEPT_LANGUAGE_READ:
                self._languages.put(key, lang)
        return lang

    def count_signal_refusal(self, ctx: RequestContext) -> None:
        """One newly persisted signal refusal, per day, policy version and language."""
        if self.counter is not None:
            self.counter.count("signal_refusal", ctx.state.policy_version, self.language(ctx))

    def count_banner_shown(self, ctx: RequestContext, language: str) -> None:
        """One page served with the banner, per day, policy version and language."""
        if self.counter is not None:
            self.counter.count("banner_shown", ctx.state.policy_version, language)
