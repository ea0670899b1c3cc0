"""The consent receipt and the store interface every backend implements.

GDPR Art. 7(1) puts the burden of proof on the site, so each consent decision leaves a
receipt: what was shown (policy version, banner hash), what was chosen, when, and through
which channel. Receipts carry no full IP and no raw User-Agent; the consent id is the
only link to a visitor, which is what makes access and deletion requests answerable.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from consentmw.records.counts import CountKey, CountRow, trim_oldest
from consentmw.records.holds import ForgetResult, Hold
from consentmw.records.texts import StoredTexts
from consentmw.retention import LEGAL_HOLD_FILE, months_before, validate_retention_months

logger = logging.getLogger("consentmw.records")

ACTIONS = frozenset({"accept_all", "reject_all", "save", "withdraw", "change", "signal"})
"""Decision kinds: ``save`` is a first custom choice, ``change`` a later one that refuses
nothing granted before, ``withdraw`` any decision that refuses something granted before;
``signal`` is a refusal derived from Sec-GPC/DNT the first time it is applied (see
:func:`consentmw.receipts.derive_action`)."""
SOURCES = frozenset({"banner", "preferences", "api", "signal"})
"""Where the decision came from: the banner, the settings page, the JS API, a signal."""


_TEXT_FIELDS = (
    "consent_id", "policy_version", "banner_hash", "action", "source", "language",
    "masked_ip", "browser",
)  # fmt: skip


class RecordsUnavailable(RuntimeError):
    """The receipt store cannot be read or changed right now (the HTTP layer answers 503)."""


@dataclass(frozen=True)
class Receipt:
    """One consent decision, as proof: immutable once written (the store is append-only)."""

    consent_id: str
    recorded_at: datetime
    policy_version: str
    banner_hash: str
    granted: tuple[str, ...]
    denied: tuple[str, ...]
    action: str
    source: str
    language: str
    masked_ip: str
    browser: str
    id: int | None = None
    #: True for a receipt still waiting in memory for the store to accept it (not stored yet).
    pending: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.consent_id, str) or not self.consent_id:
            raise ValueError("Receipt.consent_id must be a non-empty string")
        if self.recorded_at.tzinfo is None or self.recorded_at.utcoffset() is None:
            raise ValueError("Receipt.recorded_at must be timezone-aware (server UTC time)")
        if self.action not in ACTIONS:
            raise ValueError(f"Receipt.action {self.action!r} is not one of {sorted(ACTIONS)}")
        if self.source not in SOURCES:
            raise ValueError(f"Receipt.source {self.source!r} is not one of {sorted(SOURCES)}")
        granted, denied = tuple(self.granted), tuple(self.denied)
        texts = [getattr(self, name) for name in _TEXT_FIELDS] + [*granted, *denied]
        if not all(isinstance(t, str) and "\x00" not in t for t in texts):
            # PostgreSQL refuses NUL; one unstorable receipt must not block the retry queue.
            raise ValueError("Receipt text fields must be strings without NUL characters")
        if both := set(granted) & set(denied):
            raise ValueError(f"categories both granted and denied: {sorted(both)}")
        # Normalise so equal decisions compare equal whatever the caller passed in.
        object.__setattr__(self, "recorded_at", self.recorded_at.astimezone(timezone.utc))
        object.__setattr__(self, "granted", granted)
        object.__setattr__(self, "denied", denied)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (ISO 8601 UTC time, lists), used by /_consent/me and export."""
        data = asdict(self)
        data["recorded_at"] = self.recorded_at.isoformat()
        data["granted"] = list(self.granted)
        data["denied"] = list(self.denied)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        """Inverse of :meth:`to_dict` (reads exported JSON lines back)."""
        values = dict(data)
        values["recorded_at"] = datetime.fromisoformat(values["recorded_at"])
        values["granted"] = tuple(values["granted"])
        values["denied"] = tuple(values["denied"])
        return cls(**values)

    def content(self) -> Receipt:
        """This receipt without its storage facts (id, pending): equal for the same decision."""
        return replace(self, id=None, pending=False)


def split_waiting(
    waiting: list[Receipt], consent_id: str, holds: Sequence[Hold], counts: dict[str, int]
) -> tuple[list[Receipt], int, int]:
    """Receipts still in memory after forgetting ``consent_id``, and how many went/stayed."""
    keep: list[Receipt] = []
    deleted = kept = 0
    for r in waiting:
        covering = [h.case for h in holds if h.covers(r.consent_id, r.recorded_at)]
        if r.consent_id == consent_id:
            if not covering:
                deleted += 1
                continue
            kept += 1
            for case in covering:
                counts[case] = counts.get(case, 0) + 1
        keep.append(r)
    return keep, deleted, kept


def with_pending(stored: list[Receipt], pending: Iterable[Receipt]) -> list[Receipt]:
    """``stored`` followed by the receipts still waiting for a retry, marked ``pending``.

    The pending list is read before the database, so a receipt committed in between shows
    up in both: it is listed once, as stored.
    """
    seen = {r.content() for r in stored}
    waiting = [replace(r, pending=True) for r in pending if r.content() not in seen]
    return stored + sorted(waiting, key=lambda r: r.recorded_at)


class ReceiptStore(abc.ABC):
    """Where receipts live. ``add`` never raises: a broken store must not break consent.

    Shown texts (``add_texts``) take the same path as receipts: queued, written in the
    same transaction as the receipts beside them, retried.

    Daily counts (``add_counts``) too: queued, added to the stored counts in one
    transaction (with the receipts beside them), kept in memory and retried on failure.

    Failures of ``add`` are logged once per kind (locked, disk full, read-only, ...) on the
    ``consentmw.records`` logger and counted in :attr:`failures`; the receipt is kept in
    memory and retried, so a briefly locked database loses nothing. Reads and deletions
    raise :class:`RecordsUnavailable` instead, because answering "nothing held" or
    "deleted" when that is not true would mislead the visitor.
    """

    #: Receipts kept in memory for retry while the database is failing.
    max_pending = 10_000
    #: Count keys (day, kind, version, language) kept in memory for retry; the oldest days
    #: are dropped past this, with an error in the log.
    max_pending_counts = 10_000

    def __init__(
        self,
        *,
        retention_months: int,
        legal_hold_dirs: tuple[Path, ...],
        description: str,
    ) -> None:
        self.retention_months = validate_retention_months(
            retention_months, "records_retention_months"
        )
        self.legal_hold_dirs = legal_hold_dirs
        self.description = description
        self.failures = 0
        self._failure_kinds: set[str] = set()
        self._failure_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"

    # -- the async API used by the middleware ---------------------------------------

    @abc.abstractmethod
    async def add(self, receipt: Receipt) -> None:
        """Store ``receipt`` durably before returning; on failure log, count, retry later."""

    @abc.abstractmethod
    async def add_texts(
        self, text_hash: str, language: str, policy_version: str, material: str
    ) -> None:
        """Store the texts behind ``text_hash`` (idempotent); never raises, like ``add``."""

    @abc.abstractmethod
    async def add_counts(self, rows: Iterable[CountRow]) -> None:
        """Add ``rows`` to the stored daily counts in one transaction; never raises, like
        ``add`` (a failed write is logged and retried from memory)."""

    @abc.abstractmethod
    async def counts(self, first_day: date, last_day: date) -> list[CountRow]:
        """The stored daily counts of ``first_day``..``last_day`` (UTC days, inclusive),
        sorted by day, kind, policy version and language."""

    @abc.abstractmethod
    async def texts_for_version(self, policy_version: str, language: str) -> list[StoredTexts]:
        """Every stored text of one policy version and language, oldest first."""

    @abc.abstractmethod
    async def for_consent_id(self, consent_id: str) -> list[Receipt]:
        """All receipts of one visitor, every policy version, oldest first (empty after a
        purge); receipts still waiting for a retry come last, marked ``pending``."""

    @abc.abstractmethod
    async def forget(self, consent_id: str) -> ForgetResult:
        """Delete one visitor's receipts (right to erasure) except those under a legal hold."""

    @abc.abstractmethod
    async def purge(self, *, now: datetime | None = None, dry_run: bool = False) -> int:
        """Delete receipts older than the retention, except held ones; return how many.

        Daily counts of days before the cutoff's day go too. Legal holds do not keep them:
        they hold no personal data and prove nothing about a visitor."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Write what is still queued, then release threads and connections."""

    # -- sync twins for the CLI and scripts -----------------------------------------

    @abc.abstractmethod
    def add_sync(self, receipt: Receipt) -> None: ...

    @abc.abstractmethod
    def add_texts_sync(
        self, text_hash: str, language: str, policy_version: str, material: str
    ) -> None: ...

    @abc.abstractmethod
    def add_counts_sync(self, rows: Iterable[CountRow]) -> None: ...

    @abc.abstractmethod
    def counts_sync(self, first_day: date, last_day: date) -> list[CountRow]: ...

    @abc.abstractmethod
    def texts_sync(self, text_hash: str) -> StoredTexts | None:
        """The stored texts of one hash, or ``None``."""

    @abc.abstractmethod
    def for_consent_id_sync(self, consent_id: str) -> list[Receipt]: ...

    @abc.abstractmethod
    def forget_sync(self, consent_id: str) -> ForgetResult: ...

    @abc.abstractmethod
    def purge_sync(self, *, now: datetime | None = None, dry_run: bool = False) -> int: ...

    @abc.abstractmethod
    def export_sync(self, consent_id: str | None = None) -> Iterator[Receipt]:
        """Stream receipts (one visitor's, or all) oldest first, without loading them all."""

    @abc.abstractmethod
    def close_sync(self) -> None: ...

    # -- legal holds (operator side: the CLI) -----------------------------------------

    @abc.abstractmethod
    def add_hold_sync(self, hold: Hold) -> None:
        """Store a new hold; ``ValueError`` if a hold of that case exists already."""

    @abc.abstractmethod
    def holds_sync(self) -> list[Hold]:
        """Every hold in force, oldest first."""

    @abc.abstractmethod
    def release_hold_sync(self, case: str) -> bool:
        """End the hold of ``case``; ``False`` if there was none."""

    # -- shared rules -----------------------------------------------------------------

    def legacy_hold_file(self) -> Path | None:
        """A ``LEGAL_HOLD`` file from before holds lived in the store, if one is there."""
        for directory in self.legal_hold_dirs:
            path = directory / LEGAL_HOLD_FILE
            if path.exists():
                return path
        return None

    def purge_cutoff(self, now: datetime | None = None) -> datetime:
        """Receipts recorded before this instant are past the retention period."""
        now = now or datetime.now(timezone.utc)
        if now.tzinfo is None:
            raise ValueError("purge(now=...) must be timezone-aware")
        return months_before(now.astimezone(timezone.utc), self.retention_months)

    def _purge_blocked(self) -> bool:
        """A legacy hold file stops the purge: it is unscoped, so it must be converted.

        Deleting nothing is the safe reading of a hold the store cannot scope.
        """
        path = self.legacy_hold_file()
        if path is not None:
            text = legacy_hold_text(path)
            logger.error("receipt purge skipped for %s: %s", self.description, text)
        return path is not None

    def _warn_review(self, holds: Iterable[Hold], now: datetime | None = None) -> None:
        today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
        for hold in holds:
            if hold.review_passed(today):
                logger.warning("receipt store %s: %s", self.description, hold.review_warning())

    def _note_failure(self, kind: str, exc: BaseException, count: int = 1) -> None:
        """Count a failed write; log only the first failure of each kind until recovery."""
        with self._failure_lock:
            self.failures += count
            first = kind not in self._failure_kinds
            self._failure_kinds.add(kind)
        if first:
            logger.error(
                "receipt store %s: cannot write receipts (%s: %s); receipts and daily counts "
                "are kept in memory and retried, further '%s' failures are only counted in "
                "store.failures",
                self.description,
                kind,
                exc,
                kind,
            )

    def _bound_counts(self, counts: dict[CountKey, int]) -> None:
        """Keep a count retry buffer within ``max_pending_counts`` keys; log what is dropped."""
        dropped = trim_oldest(counts, self.max_pending_counts)
        if dropped:
            logger.error(
                "receipt store %s: %d counted events of the oldest days dropped from the "
                "retry buffer (more than %d day/kind/version/language keys waiting)",
                self.description,
                dropped,
                self.max_pending_counts,
            )

    def _note_success(self) -> None:
        if self._failure_kinds:
            with self._failure_lock:
                kinds, self._failure_kinds = sorted(self._failure_kinds), set()
            logger.warning(
                "receipt store %s writes again after %s (%d failed attempts so far)",
                self.description,
                ", ".join(kinds),
                self.failures,
            )


def legacy_hold_text(path: Path) -> str:
    return (
        f"{path} is an unscoped legal hold file; receipt holds now live in the store with a "
        "case, a scope and a review date: run `consentmw records hold add --case NAME "
        "[--consent-id ID ...] [--from DATE] [--to DATE] --review DATE`, then remove the file"
    )


async def purge_periodically(store: ReceiptStore, *, every_seconds: float = 6 * 3600) -> None:
    """Run ``store.purge()`` forever (start it as a task at application start-up).

    Errors are logged, not raised: a failed purge is retried at the next tick.
    """
    while True:
        try:
            await store.purge()
        except Exception:
            logger.exception("scheduled receipt purge failed for %s", store.description)
        await asyncio.sleep(every_seconds)
