"""Proof of consent from the middleware's side: one receipt per decision.

:class:`ReceiptWriter` builds :class:`~consentmw.records.Receipt` objects from the facts
of one request (masked IP, browser family, the language rendered, the hash of the texts
shown) and owns the store's life: opened lazily, the shown texts stored once per hash,
purged on a schedule while the app runs, closed at lifespan shutdown. It gets what it
needs explicitly and never reaches back into the middleware.

Events with nothing to prove (the banner shown, a privacy signal remembered as a refusal)
are counted, not receipted: :attr:`ReceiptWriter.counter` counts them in memory and its
flush task, started and stopped with the lifespan, adds them to the store's daily counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timezone

from starlette.types import Message, Scope, Send

from .config import LANGUAGES, ConfigError, ConsentConfig
from .consent import ConsentState
from .privacy.ip import client_ip, mask_ip, parse_trusted_proxies
from .records import (
    EventCounter,
    Receipt,
    ReceiptStore,
    RecordsUnavailable,
    open_store,
    purge_periodically,
)
from .records.texts import warn_if_changed
from .requestlog.useragent import UAParser

logger = logging.getLogger("consentmw")

#: ``language -> (text hash, canonical JSON of everything shown)``, e.g. Banner.shown_texts.
TextsProvider = Callable[[str], tuple[str, str]]

LEGAL_HOLD_MOVED = (
    "legal_hold={value!r}: receipt holds now live in the receipt store, each with a case, "
    "what it covers and a review date. Run `consentmw records hold add --case NAME "
    "[--consent-id ID ...] [--from DATE] [--to DATE] --review DATE` (with --url set to your "
    "records_url), then remove legal_hold from the configuration. The request log keeps "
    "its own legal_hold option of RequestLogMiddleware."
)


def derive_action(old: ConsentState | None, new: ConsentState, requested: str) -> str:
    """The receipt's action for a decision that turned ``old`` into ``new``.

    Rules, first match wins:

    1. ``withdraw``: the visitor had decided and something granted then is refused now
       (whatever button was used: a refusal after a consent is a withdrawal, Art. 7(3));
       also when ``withdraw`` was requested.
    2. ``accept_all`` / ``reject_all``: the button of that name was used.
    3. ``change``: a custom choice by a visitor who had decided before (it refuses
       nothing granted before, or rule 1 would have matched).
    4. ``save``: a first custom choice.

    A privacy signal is not a decision and is recorded as ``signal`` by the caller.
    """
    decided = old is not None and old.decided
    if requested == "withdraw" or (decided and old is not None and old.granted - new.granted):
        return "withdraw"
    if requested in ("accept_all", "reject_all"):
        return requested
    return "change" if decided else "save"


class ReceiptWriter:
    """Writes the receipts of one site; ``store`` is None when receipts are off."""

    def __init__(
        self,
        store: ReceiptStore | None,
        texts: TextsProvider,
        *,
        policy_version: str,
        trusted_proxies: Sequence[str] = (),
        forwarded_header: str = "x-forwarded-for",
        ipv4_prefix: int = 16,
        ipv6_prefix: int = 48,
        ua_parser: UAParser | None = None,
        languages: Collection[str] = LANGUAGES,
        counter: EventCounter | None = None,
    ) -> None:
        self.store = store
        #: Counts banner views and signal refusals (None when receipts are off).
        self.counter = counter
        self.texts = texts
        self.policy_version = policy_version
        self.trusted = parse_trusted_proxies(trusted_proxies, header=forwarded_header)
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self.ua = ua_parser or UAParser(cache_size=1024)
        self.languages = tuple(languages)
        self._texts_stored: dict[str, asyncio.Future[None]] = {}
        self._purger: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: ConsentConfig, texts: TextsProvider) -> ReceiptWriter:
        """The writer for one configuration; opens nothing yet (the store is lazy)."""
        if config.legal_hold:
            # One global switch with no end and no scope is what the store's holds replace;
            # failing here is loud, and nothing is deleted while the site does not start.
            raise ConfigError(LEGAL_HOLD_MOVED.format(value=config.legal_hold))
        store = None
        if config.records_url is None:
            logger.warning(
                "consentmw: records_url=None turns consent receipts off; the site then "
                "cannot prove that a visitor consented (GDPR Art. 7(1))"
            )
        else:
            store = open_store(
                config.records_url, retention_months=config.records_retention_months
            )
        counter = None
        if store is not None:
            counter = EventCounter(
                store, policy_versions=(config.policy_version,), languages=LANGUAGES
            )
        return cls(
            store,
            texts,
            counter=counter,
            policy_version=config.policy_version,
            trusted_proxies=config.trusted_proxies,
            forwarded_header=config.forwarded_header,
            ipv4_prefix=config.ipv4_prefix,
            ipv6_prefix=config.ipv6_prefix,
        )

    def masked_ip(self, scope: Scope) -> str:
        return mask_ip(client_ip(scope, self.trusted), self.ipv4_prefix, self.ipv6_prefix)

    async def record(
        self,
        scope: Scope,
        headers: Mapping[bytes, bytes],
        language: str,
        old: ConsentState | None,
        new: ConsentState,
        action: str,
        source: str,
    ) -> None:
        """Write the receipt of one decision; never raises for a failing store.

        ``language`` is the language the texts were rendered in; ``action`` what
        :func:`derive_action` returns. A privacy signal is no decision and gets no receipt
        (the middleware counts those instead).
        """
        if self.store is None or new.consent_id is None or source == "signal":
            return
        text_hash = await self.ensure_texts(language)
        ua = (headers.get(b"user-agent") or b"").decode("latin-1")
        receipt = Receipt(
            consent_id=new.consent_id,
            recorded_at=datetime.now(timezone.utc),
            policy_version=new.policy_version,
            banner_hash=text_hash,
            granted=tuple(sorted(new.granted)),
            denied=tuple(sorted(new.denied)),
            action=action,
            source=source,
            language=language,
            masked_ip=self.masked_ip(scope),
            browser=self.ua(ua).browser,
        )
        await self.store.add(receipt)  # never raises: failures are logged and retried

    async def ensure_texts(self, language: str) -> str:
        """Store the texts of ``language`` once per process per hash; return the hash.

        Concurrent first receipts wait for the same write, so no receipt is committed
        before the texts it refers to.
        """
        text_hash, material = self.texts(language)
        done = self._texts_stored.get(text_hash)
        if done is None or done.cancelled():
            done = asyncio.ensure_future(self._store_texts(text_hash, language, material))
            self._texts_stored[text_hash] = done
        if not done.done():
            await asyncio.shield(done)
        return text_hash

    async def _store_texts(self, text_hash: str, language: str, material: str) -> None:
        assert self.store is not None
        try:
            stored = await self.store.texts_for_version(self.policy_version, language)
        except RecordsUnavailable:
            stored = []  # the comparison waits for the next start; the texts are queued below
        warn_if_changed(stored, text_hash, language, self.policy_version, material)
        await self.store.add_texts(text_hash, language, self.policy_version, material)

    async def startup(self) -> None:
        """Compare and store the texts of every language (run once the app has started)."""
        for language in self.languages:
            await self.ensure_texts(language)

    def lifespan_send(self, send: Send) -> Send:
        """After start-up: check the texts, start the purge schedule and the counter's
        flush task. At shutdown: stop both, flush the counts, close the store."""
        if self.store is None:
            return send
        store = self.store

        async def wrapped(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete" and self._purger is None:
                self._purger = asyncio.ensure_future(self._run(store))
                if self.counter is not None:
                    self.counter.start()
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                if self._purger is not None:
                    self._purger.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await self._purger
                    self._purger = None
                if self.counter is not None:
                    await self.counter.stop()  # the last counts, before the store closes
                await store.close()
            await send(message)

        return wrapped

    async def _run(self, store: ReceiptStore) -> None:
        await self.startup()
        await purge_periodically(store)
