"""Counting events on the request path, adding them to the store in batches.

:meth:`EventCounter.count` adds one to a key in a dict and returns: no I/O, no await, no
task per event. A flush task hands the dict to the store every ``interval`` seconds, when
the dict passes ``max_keys``, and once more when the application shuts down.

Memory cannot grow with request data: a key is (UTC day, kind, policy version, language)
and each part comes from a closed set given at construction (the kinds in
:data:`~consentmw.records.counts.KINDS`, the configured policy versions and languages);
anything else is refused and only counted in :attr:`EventCounter.refused`. Counts that
cannot be handed over stay in memory for the next flush, bounded by ``max_keys``, and
whatever has to be dropped is logged with its number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import date, datetime, timezone

from consentmw.records.base import ReceiptStore
from consentmw.records.counts import KINDS, CountKey, rows_of, trim_oldest

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_MAX_KEYS", "EventCounter"]

logger = logging.getLogger("consentmw.records")

DEFAULT_INTERVAL = 60.0
DEFAULT_MAX_KEYS = 10_000
_DAY = 86_400


class EventCounter:
    """Per-day event counts in memory, flushed to ``store.add_counts`` in batches.

    Use from one event loop (the application's); :meth:`count` may also be called from
    other threads. ``clock`` returns POSIX seconds (``time.time``) and exists for tests
    that cross midnight.
    """

    def __init__(
        self,
        store: ReceiptStore,
        *,
        policy_versions: Collection[str],
        languages: Collection[str],
        interval: float = DEFAULT_INTERVAL,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"EventCounter interval must be positive seconds, got {interval!r}")
        if max_keys < 1:
            raise ValueError(f"EventCounter max_keys must be at least 1, got {max_keys!r}")
        self.store = store
        self.policy_versions = frozenset(policy_versions)
        self.languages = frozenset(languages)
        self.interval = interval
        self.max_keys = max_keys
        self.clock = clock
        #: Events refused because their kind, policy version or language is not configured.
        self.refused = 0
        self._counts: dict[CountKey, int] = {}
        self._lock = threading.Lock()  # held only to touch the dict, never across I/O
        self._day = date.min
        self._day_ends = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._flush_asked = False
        self._stopping = False

    def __repr__(self) -> str:
        return f"<EventCounter {self.store.description} every {self.interval:g}s>"

    # -- the request path -------------------------------------------------------------

    def count(self, kind: str, policy_version: str, language: str) -> None:
        """Count one event now (its UTC day); never raises, never waits."""
        if (
            kind not in KINDS
            or policy_version not in self.policy_versions
            or language not in self.languages
        ):
            self._refuse(kind, policy_version, language)
            return
        now = self.clock()
        with self._lock:
            if not self._day_ends - _DAY <= now < self._day_ends:  # first call, or midnight
                start = now - now % _DAY
                self._day = datetime.fromtimestamp(start, timezone.utc).date()
                self._day_ends = start + _DAY
            key = (self._day, kind, policy_version, language)
            self._counts[key] = self._counts.get(key, 0) + 1
            full = len(self._counts) > self.max_keys
        if full:
            self._ask_flush()

    @property
    def pending(self) -> int:
        """Events counted in memory and not yet handed to the store."""
        with self._lock:
            return sum(self._counts.values())

    # -- the flush task ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the periodic flush task is running."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the periodic flush on the running event loop (at lifespan start-up)."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._stopping = False
        self._task = self._loop.create_task(self._run(), name="consentmw-counter-flush")

    async def stop(self) -> None:
        """End the periodic flush and flush what is left (at lifespan shutdown)."""
        self._stopping = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()  # let a flush under way finish instead of cancelling it
            await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> int:
        """Hand the counts to the store; return how many events were handed over.

        Counts the store refuses are put back and tried again at the next flush.
        """
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            with self._lock:
                counts, self._counts = self._counts, {}
                self._flush_asked = False
            if not counts:
                return 0
            try:
                # shield: shutdown cancelling this task must not cancel a write under way.
                await asyncio.shield(self.store.add_counts(rows_of(counts)))
            except Exception:  # add_counts never raises by contract; if it does, keep counts
                logger.exception(
                    "event counter: %d counted events could not be handed to %s; kept in "
                    "memory for the next flush",
                    sum(counts.values()),
                    self.store.description,
                )
                self._put_back(counts)
                return 0
            return sum(counts.values())

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()

    # -- helpers ----------------------------------------------------------------------

    def _ask_flush(self) -> None:
        """Wake the flush task early (thread-safe); trim if no task can flush."""
        with self._lock:
            if self._flush_asked:
                return
            self._flush_asked = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)
            return
        with self._lock:
            self._flush_asked = False
            dropped = trim_oldest(self._counts, self.max_keys)
        logger.error(
            "event counter: no flush task is running (start() is called at lifespan "
            "start-up); %d counted events of the oldest days dropped to stay within %d keys",
            dropped,
            self.max_keys,
        )

    def _put_back(self, counts: dict[CountKey, int]) -> None:
        with self._lock:
            for key, n in counts.items():
                self._counts[key] = self._counts.get(key, 0) + n
            dropped = trim_oldest(self._counts, self.max_keys)
        if dropped:
            logger.error(
                "event counter: %d counted events of the oldest days dropped to stay "
                "within %d keys while %s refuses them",
                dropped,
                self.max_keys,
                self.store.description,
            )

    def _refuse(self, kind: str, policy_version: str, language: str) -> None:
        self.refused += 1
        if self.refused == 1:  # once: the caller has a bug, the log must not fill up
            logger.warning(
                "event counter: refused to count kind %.40r, policy version %.40r, language "
                "%.40r (not in the closed sets: kinds %s, versions %s, languages %s); further "
                "refusals are only counted in EventCounter.refused",
                kind,
                policy_version,
                language,
                sorted(KINDS),
                sorted(self.policy_versions),
                sorted(self.languages),
            )
