"""RequestLogMiddleware: one anonymous log record per HTTP request, pure ASGI.

Put it outside ConsentMiddleware (``app.add_middleware(RequestLogMiddleware, ...)``
*after* adding ConsentMiddleware, since Starlette's last-added is outermost) or inside
it: either way the consent state is read from ``scope["consentmw"]`` when the response
has ended, because ConsentMiddleware sets it on the same scope dict.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from consentmw.privacy.ip import client_ip
from consentmw.requestlog.record import PendingRecord
from consentmw.requestlog.service import RequestLog

__all__ = ["RequestLogMiddleware"]

logger = logging.getLogger("consentmw.requestlog")

Scope = dict[str, Any]
Message = dict[str, Any]
_HIDE_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


class RequestLogMiddleware:
    """Logs every HTTP request anonymously; see :class:`RequestLog` for the options.

    Extra option here: ``mask_client_in_scope`` rewrites ``scope["client"]`` to the
    masked address (port 0) and removes the forwarding headers, so neither the app nor
    the server's access log sees the raw address.
    """

    def __init__(self, app: Any, directory: str | None = None, **options: Any) -> None:
        # CONSENTMW_LOG_DIR, CONSENTMW_LOG_ROTATION, ... fill what the keywords leave out.
        from consentmw.envconfig import log_options_from_env

        if directory is not None:
            options["directory"] = directory
        options = {"directory": "logs", **log_options_from_env(), **options}
        directory = options.pop("directory")
        mask_client = options.pop("mask_client_in_scope", False)
        if not isinstance(mask_client, bool):
            raise ValueError(f"mask_client_in_scope must be True or False, got {mask_client!r}")
        self.app = app
        self.mask_client_in_scope = mask_client
        self.log = RequestLog(directory, **options)
        self._error_reported = False

    # -- public helpers ----------------------------------------------------------------

    def close(self) -> None:
        """Flush and stop (also done on lifespan shutdown and at interpreter exit)."""
        self.log.close()

    def stats(self) -> dict[str, int]:
        return self.log.stats()

    @property
    def dropped(self) -> int:
        return self.log.writer.dropped

    # -- ASGI --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            if self.mask_client_in_scope:
                self._mask_scope(scope, client_ip(scope, self.log.trusted))
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Any, send: Any) -> None:
        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.log.start()
            return message

        async def lifespan_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await anyio.to_thread.run_sync(self.log.close)
            await send(message)

        await self.app(scope, lifespan_receive, lifespan_send)

    def _mask_scope(self, scope: Scope, ip: str | None) -> None:
        scope["client"] = (self.log.mask(ip), 0)
        headers = scope.get("headers")
        if headers:
            scope["headers"] = [(k, v) for k, v in headers if k not in _HIDE_HEADERS]

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        log = self.log
        started = log.clock()
        t0 = time.perf_counter()
        ip = client_ip(scope, log.trusted)
        asn, isp = log.asn.lookup(ip) if log.asn is not None else (None, None)
        masked = log.mask(ip)
        ip = None  # the raw address goes no further
        if self.mask_client_in_scope:
            self._mask_scope(scope, masked)
        status = 0
        size = 0
        logged = False

        def finish(final_status: int) -> None:
            nonlocal logged
            logged = True
            try:
                self._enqueue(scope, started, t0, masked, asn, isp, final_status, size)
            except Exception:
                if not self._error_reported:
                    self._error_reported = True
                    logger.exception("request log: could not record a request (reported once)")

        async def logging_send(message: Message) -> None:
            nonlocal status, size
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    await send(message)
                    if not logged:
                        finish(status)
                    return
            elif kind == "http.response.pathsend" and not logged:
                await send(message)
                finish(status)
                return
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        except BaseException:
            if not logged:
                finish(status or 500)
            raise
        if not logged:  # the app returned without finishing (client gone)
            finish(status or 500)

    def _enqueue(
        self,
        scope: Scope,
        started: float,
        t0: float,
        masked: str,
        asn: int | None,
        isp: str | None,
        status: int,
        size: int,
    ) -> None:
        user_agent = referer = accept_language = None
        for name, value in scope.get("headers") or ():
            if name == b"user-agent":
                user_agent = value
            elif name == b"referer":
                referer = value
            elif name == b"accept-language":
                accept_language = value
        state = scope.get("consentmw")
        path = scope.get("raw_path") or scope.get("path") or "/"
        self.log.put(
            PendingRecord(
                started,
                masked,
                asn,
                isp,
                str(scope.get("method", "GET"))[:16],
                path,
                status,
                size,
                (time.perf_counter() - t0) * 1000.0,
                user_agent,
                referer,
                getattr(state, "summary", "undecided"),
                getattr(state, "language", None),
                accept_language,
            )
        )
