"""ConsentMiddleware: pure ASGI, enforces the visitor's choice on every response.

Per request it reads the consent state once (:class:`~consentmw.policy.ConsentPolicy`),
answers its own routes under the prefix (:class:`~consentmw.endpoints.Endpoints`), and
otherwise wraps ``send`` in a :class:`~consentmw.responder.Responder`, which drops
``Set-Cookie`` headers the visitor has not allowed, expires cookies of refused
categories, and injects the banner snippet into HTML.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .banner import Banner
from .config import ConfigError, ConsentConfig
from .endpoints import Endpoints
from .envconfig import config_from_env, warn_unknown_variables
from .policy import SCOPE_KEY, ConsentPolicy
from .receipts import ReceiptWriter
from .responder import Responder
from .snippets import PageSnippets


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
            warn_unknown_variables()
        self.app = app
        self.config = config
        self.registry = config.registry
        self.banner = Banner(config)
        self.receipts = ReceiptWriter.from_config(config, self.banner.shown_texts)
        self.policy = ConsentPolicy(config, self.receipts.counter)
        self.codec = self.policy.codec
        self.snippets = PageSnippets(self.banner, self.policy)
        self._snippet_for = self.snippets.for_page
        self.endpoints = Endpoints(config, self.policy, self.banner, self.receipts)
        self._prefix = config.prefix
        self._prefix_slash = config.prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return await self.app(scope, receive, self.receipts.lifespan_send(send))
            return await self.app(scope, receive, send)
        if SCOPE_KEY in scope:  # an outer ConsentMiddleware already handles this request
            return await self.app(scope, receive, send)
        ctx = self.policy.context(scope)
        path = scope["path"]
        if path.startswith(self._prefix) and (
            path == self._prefix or path.startswith(self._prefix_slash)
        ):
            # Never persisted here: a decision posted by a signalling browser must leave one
            # consent cookie (its own), and static files stay publicly cacheable.
            await self.endpoints(ctx, receive, send)
            return
        await self.app(scope, receive, Responder(send, ctx, self.policy, self._snippet_for).send)
