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
from .config import ConfigError, ConsentConfig
from .consent import ConsentCodec, ConsentState, Signal, new_consent_id
from .endpoints import Endpoints
from .envconfig import config_from_env
from .inject import InjectingSend
from .receipts import ReceiptWriter
from .setcookie import (
    consent_cookie_header,
    expire_headers,
    request_cookie,
    request_cookie_names,
    set_cookie_name,
)

logger = logging.getLogger("consentmw")
SCOPE_KEY = "consentmw"
_MAX_WARNED = 1000


@dataclass(slots=True)
class RequestContext:
    """What one request needs: its scope, a header lookup and the consent state."""

    scope: Scope
    headers: dict[bytes, bytes]
    state: ConsentState
    persist: bool = False  # a privacy signal was applied for the first time
    language: str | None = None  # the language a decision form was shown in

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
        self._cookie_name = config.cookie_name
        self._warned: set[str] = set()
        self._optional = frozenset(self.registry.optional)
        self._undecided = ConsentState(policy_version=config.policy_version)
        self.receipts = ReceiptWriter(self)

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
            await self.endpoints(ctx, receive, self.with_signal_cookie(ctx, send))
            return
        responder = _Responder(self, ctx, send)
        await self.app(scope, receive, responder.send)

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
        state, persist = self.resolve(headers)
        scope[SCOPE_KEY] = state
        return RequestContext(scope, headers, state, persist)

    def resolve(self, headers: dict[bytes, bytes]) -> tuple[ConsentState, bool]:
        """The consent state of a request; ``True`` when a privacy signal was just applied."""
        cookie_header = headers.get(b"cookie")
        if cookie_header:
            state = self.codec.decode(request_cookie(cookie_header, self._cookie_name))
            if state is not None:
                return state, False
        signal = self.privacy_signal(headers)
        if signal is None:
            return self._undecided, False  # frozen: one shared instance
        return (
            ConsentState(
                denied=self._optional,
                policy_version=self.config.policy_version,
                consent_id=new_consent_id(),
                decided_at=int(time.time()),
                signal=signal,
            ),
            True,
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
        return self.config.secure_cookie if self.config.secure_cookie is not None else ctx.secure

    def consent_cookie(self, ctx: RequestContext, state: ConsentState) -> bytes:
        return consent_cookie_header(
            self._cookie_name,
            self.codec.encode(state),
            max_age=self.config.lifetime_seconds,
            secure=self.secure(ctx),
            domain=self.config.cookie_domain,
        )

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
        """Persist a first-seen privacy signal as a refusal (and its receipt)."""
        if not ctx.persist:
            return send

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and ctx.persist:
                ctx.persist = False
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"set-cookie", self.consent_cookie(ctx, ctx.state)),
                ]
                await self.receipts.record(ctx, None, ctx.state, "reject_all", "signal")
            await send(message)

        return wrapped

    def language(self, ctx: RequestContext, html_lang: str | None = None) -> str:
        accept = (ctx.header(b"accept-language") or b"").decode("latin-1")
        return choose_language(html_lang, accept, self.config.default_language)


class _Responder:
    """Per-request state of one wrapped response."""

    __slots__ = ("ctx", "inject", "mw", "send_next")

    def __init__(self, mw: ConsentMiddleware, ctx: RequestContext, send: Send) -> None:
        self.mw = mw
        self.ctx = ctx
        self.send_next = mw.with_signal_cookie(ctx, send)
        self.inject = InjectingSend(
            self.send_next, method=ctx.scope["method"], render_snippet=self.render_snippet
        )

    def render_snippet(self, nonce: str | None, html_lang: str | None) -> Snippet:
        scope = self.ctx.scope
        path = scope.get("path", "/")
        query = scope.get("query_string", b"")
        next_path = path + ("?" + query.decode("latin-1") if query else "")
        lang = self.mw.language(self.ctx, html_lang)
        return self.mw.banner.snippet_parts(lang, self.ctx.state, next_path, nonce)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = self.filter_headers(message.get("headers", []))
            await self.inject(message)
        elif self.inject.passing:  # non-HTML: body messages skip the injector
            await self.send_next(message)
        else:
            await self.inject(message)

    def filter_headers(self, headers: Any) -> list[tuple[bytes, bytes]]:
        mw, state = self.mw, self.ctx.state
        out = [
            (k, v)
            for k, v in headers
            if k.lower() != b"set-cookie" or mw.allow_set_cookie(v, state)
        ]
        cookie_header = self.ctx.header(b"cookie")
        if cookie_header:
            names = request_cookie_names(cookie_header)
            out += [(b"set-cookie", v) for v in mw.expiry_headers(self.ctx, state, names)]
        return out
