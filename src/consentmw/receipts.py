"""Proof of consent from the middleware's side: one receipt per decision.

Builds :class:`~consentmw.records.Receipt` objects from a request (masked IP, browser
family, the hash of the texts shown) and owns the store's life: opened lazily, purged on
a schedule while the app runs, closed at lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from starlette.types import Message, Send

from .consent import ConsentState
from .privacy.ip import client_ip, mask_ip, parse_trusted_proxies
from .records import Receipt, ReceiptStore, open_store, purge_periodically
from .requestlog.useragent import UAParser

if TYPE_CHECKING:
    from .middleware import ConsentMiddleware, RequestContext

logger = logging.getLogger("consentmw")


class ReceiptWriter:
    """Writes receipts for one middleware; ``store`` is None when receipts are off."""

    def __init__(self, mw: ConsentMiddleware) -> None:
        cfg = mw.config
        self.mw = mw
        self.trusted = parse_trusted_proxies(cfg.trusted_proxies, header=cfg.forwarded_header)
        self.ua = UAParser(cache_size=1024)
        self.store: ReceiptStore | None = None
        self._purger: asyncio.Task[None] | None = None
        if cfg.records_url is None:
            logger.warning(
                "consentmw: records_url=None turns consent receipts off; the site then "
                "cannot prove that a visitor consented (GDPR Art. 7(1))"
            )
        else:
            self.store = open_store(
                cfg.records_url,
                retention_months=cfg.records_retention_months,
                legal_hold=cfg.legal_hold,
            )

    def masked_ip(self, ctx: RequestContext) -> str:
        cfg = self.mw.config
        return mask_ip(client_ip(ctx.scope, self.trusted), cfg.ipv4_prefix, cfg.ipv6_prefix)

    async def record(
        self,
        ctx: RequestContext,
        old: ConsentState | None,
        new: ConsentState,
        action: str,
        source: str,
    ) -> None:
        if self.store is None or new.consent_id is None:
            return
        if source == "signal":
            action = "signal"
        elif old is not None and old.decided and old.granted - new.granted:
            action = "withdraw"  # something granted before is refused now
        lang = ctx.language or self.mw.language(ctx)
        ua = (ctx.header(b"user-agent") or b"").decode("latin-1")
        receipt = Receipt(
            consent_id=new.consent_id,
            recorded_at=datetime.now(timezone.utc),
            policy_version=new.policy_version,
            banner_hash=self.mw.banner.text_hash(lang),
            granted=tuple(sorted(new.granted)),
            denied=tuple(sorted(new.denied)),
            action=action,
            source=source,
            language=lang,
            masked_ip=self.masked_ip(ctx),
            browser=self.ua(ua).browser,
        )
        await self.store.add(receipt)  # never raises: failures are logged and retried

    def lifespan_send(self, send: Send) -> Send:
        """Start the purge schedule after start-up, close the store at shutdown."""
        if self.store is None:
            return send
        store = self.store

        async def wrapped(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete" and self._purger is None:
                self._purger = asyncio.ensure_future(purge_periodically(store))
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                if self._purger is not None:
                    self._purger.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await self._purger
                    self._purger = None
                await store.close()
            await send(message)

        return wrapped
