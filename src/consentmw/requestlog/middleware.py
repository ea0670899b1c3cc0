"""RequestLogMiddleware: one anonymous log record per HTTP request, pure ASGI.

Put it outside ConsentMiddleware (``app.add_middleware(RequestLogMiddleware, ...)``
*after* adding ConsentMiddleware, since Starlette's last-added is outermost) or inside
it: either way the consent state is read from ``scope["consentmw"]`` when the response
has ended, because ConsentMiddleware sets it on the same scope dict.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

import anyio

from consentmw.privacy.ip import client_ip
from consentmw.requestlog.service import RequestLog
from consentmw.requestlog.visitors import refused

__all__ = ["RequestLogMiddleware"]

logger = logging.getLogger("consentmw.requestlog")

Scope = dict[str, Any]
Message = dict[str, Any]
_HIDE_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


class RequestLogMiddleware:
    """Logs every HTTP request anonymously; see :class:`RequestLog` for the options.

    Extra option here: ``mask_client_in_scope`` (default ``True``) rewrites
    ``scope["client"]`` to the masked address (port 0) and removes the forwarding
    headers, so neither the app nor the server's access log (which reads the same scope
    dict when the response starts) sees the raw address. Turn it off only for an app
    that needs the real address (rate limiting, fraud checks) and keeps it out of its
    own logs.

    Put this middleware outside ConsentMiddleware and give both the same
    ``trusted_proxies`` (``CONSENTMW_TRUSTED_PROXIES`` does): the inner one then sees a
    masked peer without forwarding headers and masks it again to the same address. The
    consent endpoints answered by an outer ConsentMiddleware never reach an inner
    request log, so their scope would stay unmasked.

    ``count_visitors`` (off by default, see :mod:`~consentmw.requestlog.visitors`) adds a
    daily visitor key, computed here from the full address before it is masked: another
    reason to put this middleware outside ConsentMiddleware and any masking proxy.
    """

    def __init__(self, app: Any, directory: str | None = None, **options: Any) -> None:
        # CONSENTMW_LOG_DIR, CONSENTMW_LOG_ROTATION, ... fill what the keywords leave out.
        from consentmw.envconfig import log_options_from_env

        if directory is not None:
            options["directory"] = directory
        options = {"directory": "logs", **log_options_from_env(), **options}
        directory = options.pop("directory")
        mask_client = options.pop("mask_client_in_scope", True)
        if not isinstance(mask_client, bool):
            raise ValueError(f"mask_client_in_scope must be True or False, got {mask_client!r}")
        self.app = app
        self.mask_client_in_scope = mask_client
        self.log = RequestLog(directory, **options)
        self._error_reported = False
        # No proxies to believe and no ASN to look up: the peer's masked address is all
        # the request needs, cached per peer (the raw address is a key in memory only,
        # as in mask_ip's own cache).
        log = self.log
        self._direct = not log.trusted and log.asn is None and log.country is None
        self._masked: dict[str, str] = {}

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
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
                return
            if self.mask_client_in_scope:
                self._mask_scope(scope, client_ip(scope, self.log.trusted))
            await self.app(scope, receive, send)
            return
        # One flat coroutine and one closure per request: this is the hot path.
        log = self.log
        started = log.clock()
        t0 = perf_counter()
        asn = isp = visitor = country = None
        if self._direct:
            client = scope.get("client")
            peer = client[0] if client else None
            masked = self._masked.get(peer) if type(peer) is str else None  # type: ignore[arg-type]
            if masked is None:
                masked = self._mask_peer(peer)
            if log.visitors is not None and type(peer) is str:
                visitor = log.visitors.key(scope.get("headers"), peer, started)
        else:
            ip = client_ip(scope, log.trusted)
            if log.visitors is not None:  # the full address, before it is masked
                visitor = log.visitors.key(scope.get("headers"), ip, started)
            if log.asn is not None:
                asn, isp = log.asn.lookup(ip)
            if log.country is not None:
                country = log.country.lookup(ip)
            masked = log.mask(ip)
            ip = None  # the raw address goes no further
        if self.mask_client_in_scope:
            self._mask_scope(scope, masked)
        status = 0
        size = 0
        logged = False
        content_type = None

        async def logging_send(message: Message) -> None:
            nonlocal status, size, logged, content_type
            kind = message["type"]
            if kind == "http.response.body":
                size += len(message.get("body", b""))
                if message.get("more_body", False):
                    await send(message)
                    return
            elif kind == "http.response.start":
                status = message["status"]
                content_type = _content_type(message.get("headers"))
                await send(message)
                return
            elif kind != "http.response.pathsend":
                await send(message)
                return
            await send(message)
            if not logged:
                logged = True
                try:
                    self._enqueue(
                        scope, started, t0, masked, asn, isp, status, size, content_type,
                        visitor, country,
                    )
                except Exception:
                    self._enqueue_failed()

        try:
            await self.app(scope, receive, logging_send)
        except BaseException:
            if not logged:
                logged = True
                self._finish(
                    scope, started, t0, masked, asn, isp, status or 500, size, content_type,
                    visitor, country,
                )
            raise
        if not logged:  # the app returned without finishing (client gone)
            self._finish(
                scope, started, t0, masked, asn, isp, status or 500, size, content_type,
                visitor, country,
            )

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

    def _mask_peer(self, peer: object) -> str:
        masked = self.log.mask(peer)  # type: ignore[arg-type]
        if type(peer) is str and len(peer) <= 100:
            if len(self._masked) >= 4096:
                self._masked.clear()
            self._masked[peer] = masked
        return masked

    def _finish(
        self,
        scope: Scope,
        started: float,
        t0: float,
        masked: str,
        asn: int | None,
        isp: str | None,
        status: int,
        size: int,
        content_type: bytes | None = None,
        visitor: str | None = None,
        country: str | None = None,
    ) -> None:
        try:
            self._enqueue(
                scope, started, t0, masked, asn, isp, status, size, content_type, visitor, country
            )
        except Exception:
            self._enqueue_failed()

    def _enqueue_failed(self) -> None:
        if not self._error_reported:
            self._error_reported = True
            logger.exception("request log: could not record a request (reported once)")

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
        content_type: bytes | None = None,
        visitor: str | None = None,
        country: str | None = None,
    ) -> None:
        """One plain tuple (:data:`~consentmw.requestlog.record.RAW_FIELDS`) to the queue.

        Header lookup, method checks and everything else wait for the writer thread. The
        visitor key is dropped here if the consent state (known only now when this
        middleware sits outside ConsentMiddleware) refuses analytics.
        """
        state = scope.get("consentmw")
        extra: tuple[Any, ...] = (content_type, scope.get("query_string"))
        visitors = self.log.visitors
        if visitor is not None and visitors is not None and not refused(state, visitors.mode):
            extra = (*extra, visitor)
        if country is not None:  # fourth item; the third is the visitor key or None
            extra = (*extra, None, country) if len(extra) == 2 else (*extra, country)
        headers = scope.get("headers")
        if type(headers) is not list:  # servers build a fresh list per request: keep it
            headers = tuple(headers or ())  # anything else is copied, never read late
        self.log.put(
            (
                started,
                masked,
                asn,
                isp,
                scope.get("method", "GET"),
                scope.get("raw_path") or scope.get("path") or "/",
                status,
                size,
                (perf_counter() - t0) * 1000.0,
                headers,
                getattr(state, "summary", "undecided"),
                getattr(state, "language", None),
                extra,  # for kind, campaign and visitor only
            )
        )


def _content_type(headers: Any) -> bytes | None:
    """The response's ``Content-Type`` value (the request log's ``kind`` needs it).

    Never raises: odd header items are the server's to refuse, not the logger's.
    """
    try:
        for name, value in headers or ():
            if bytes(name).lower() == b"content-type":
                return bytes(value)[:256]
    except (TypeError, ValueError):
        pass
    return None
