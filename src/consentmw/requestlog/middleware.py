"""RequestLogMiddleware: one anonymous log record per HTTP request, pure ASGI.

Put it outside ConsentMiddleware (``app.add_middleware(RequestLogMiddleware, ...)``
*after* adding ConsentMiddleware, since Starlette's last-added is outermost) or inside
it: either way the consent state is read from ``scope["consentmw"]`` when the response
has ended, because ConsentMiddleware sets it on the same scope dict.
"""

from __future__ import annotations

import logging
from time import perf_counter_ns
from typing import Any

import anyio

from consentmw.cache import BoundedCache
from consentmw.privacy.ip import client_ip
from consentmw.requestlog.service import RequestLog
from consentmw.requestlog.visitors import refused

__all__ = ["RequestLogMiddleware"]

logger = logging.getLogger("consentmw.requestlog")

Scope = dict[str, Any]
Message = dict[str, Any]
_HIDE_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})
_MAX_PEER_LENGTH = 100  # longer "addresses" are masked every time, never cached
#: What the record needs from the request headers, and the ones to hide from the app.
_READ_HEADERS = frozenset({b"user-agent", b"referer", b"accept-language", *_HIDE_HEADERS})


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
        log = self.log
        # Peers whose masked address is all a request needs (see _resolve), masked once;
        # the raw address is a key in memory only, as in mask_ip's own cache.
        self._direct = (
            not log.trusted and log.asn is None and log.country is None and log.visitors is None
        )
        self._masked: BoundedCache[str, str] = BoundedCache(4096, 4096 * 512)
        self._masked_peer = self._masked.get

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
        log = self.log
        started = log.clock()
        t0 = perf_counter_ns()
        headers = scope.get("headers") or ()
        user_agent = referer = accept = None
        forwarded = False
        for name, value in headers:  # the last of repeated headers counts
            if name in _READ_HEADERS:
                if name == b"user-agent":
                    user_agent = value
                elif name == b"referer":
                    referer = value
                elif name == b"accept-language":
                    accept = value
                else:
                    forwarded = True
        try:
            masked = self._masked_peer(scope["client"][0])
        except (KeyError, TypeError, IndexError):  # no client, or an odd one
            masked = None
        if masked is None:
            masked, asn, isp, visitor, country = self._resolve(scope, headers, started)
        else:
            asn = isp = visitor = country = None
        if self.mask_client_in_scope:
            scope["client"] = (masked, 0)
            if forwarded:
                scope["headers"] = [(k, v) for k, v in headers if k not in _HIDE_HEADERS]
        status = size = ended = 0
        content_type = None

        # Returns the awaitable of ``send`` itself rather than awaiting it: no second
        # coroutine per message. The response ends with the last body message handed on.
        def logging_send(message: Message) -> Any:
            nonlocal status, size, content_type, ended
            kind = message["type"]
            if kind == "http.response.body":
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    ended = perf_counter_ns()
            elif kind == "http.response.start":
                status = message["status"]
                content_type = _content_type(message.get("headers"))
            elif kind == "http.response.pathsend":
                ended = perf_counter_ns()
            return send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            # After the app, so whatever it did after the response (or raised) is over;
            # the consent state was put on the scope by then, by an inner
            # ConsentMiddleware or an outer one. Unfinished responses count as 500.
            try:
                state = scope.get("consentmw")
                if visitor is not None and refused(state, log.visitors.mode):  # type: ignore[union-attr]
                    visitor = None
                log.put(
                    (
                        started,
                        size,
                        ((ended or perf_counter_ns()) - t0) // 1000,
                        (
                            masked,
                            asn,
                            isp,
                            scope.get("method", "GET"),
                            scope.get("raw_path") or scope.get("path") or "/",
                            status if ended else (status or 500),
                            user_agent,
                            getattr(state, "summary", "undecided"),
                            accept,
                            content_type,
                        ),
                        referer,
                        scope.get("query_string"),
                        visitor,
                        country,
                    )
                )
            except Exception:
                self._enqueue_failed()

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

    def _resolve(self, scope: Scope, headers: Any, started: float) -> tuple[Any, ...]:
        """``(masked address, asn, isp, visitor key, country)`` of the request's client.

        Looked up from the full address, which goes no further. When nothing but the
        masked address is needed of a peer (no proxies to believe, no ASN, country or
        visitor key), it is cached for the peer's next requests.
        """
        log = self.log
        ip = client_ip(scope, log.trusted)
        masked = log.mask(ip)
        if self._direct:
            if type(ip) is str and len(ip) <= _MAX_PEER_LENGTH:
                self._masked.put(ip, masked)
            return masked, None, None, None, None
        visitor = None if log.visitors is None else log.visitors.key(headers, ip, started)
        asn, isp = (None, None) if log.asn is None else log.asn.lookup(ip)
        country = None if log.country is None else log.country.lookup(ip)
        return masked, asn, isp, visitor, country

    def _enqueue_failed(self) -> None:
        if not self._error_reported:
            self._error_reported = True
            logger.exception("request log: could not record a request (reported once)")


_TYPE = b"content-type"


def _content_type(headers: Any) -> Any:
    """The response's ``Content-Type`` value (the request log's ``kind`` needs it).

    Never raises: odd header items are the server's to refuse, not the logger's.
    """
    try:
        for name, value in headers or ():  # names should be lower-case, but need not be
            if name == b"content-type" or (len(name) == 12 and bytes(name).lower() == _TYPE):
                return value
    except (TypeError, ValueError):
        pass
    return None
