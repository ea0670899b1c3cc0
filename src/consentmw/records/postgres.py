"""PostgreSQL receipt store, for a fleet of app servers behind a load balancer.

The consent cookie makes the middleware stateless; this database is the one shared thing.
psycopg 3 with an ``AsyncConnectionPool`` opened lazily on first use, so constructing the
middleware (or importing the app) does not need the database to be up. Same schema and
semantics as the SQLite store: append-only (a trigger refuses UPDATE), failures of ``add``
logged once per kind, counted and retried (the sync ``add_sync`` by a retry thread, the
async ``add`` by a task). The sync twins (for the CLI) use plain short-lived connections,
because a pool belongs to the event loop that opened it. Daily counts
(``consentmw_counters``) ride along with the receipts' batches: merged by key in memory,
upserted with ``count = count + excluded.count``, so a fleet's processes add up.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from consentmw.records.base import (
    Receipt,
    ReceiptStore,
    RecordsUnavailable,
    logger,
    split_waiting,
    with_pending,
)
from consentmw.records.counts import CountKey, CountRow, checked_rows, merge_counts
from consentmw.records.holds import ForgetResult, HeldBy, Hold
from consentmw.records.texts import StoredTexts

SCHEMA_VERSION = 3
_TABLE = "consentmw_receipts"
_TEXTS = "consentmw_texts"
_HOLDS = "consentmw_holds"
_COUNTERS = "consentmw_counters"
_SCHEMA_V1 = (
    f"""CREATE TABLE {_TABLE} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        consent_id text NOT NULL,
        recorded_at timestamptz NOT NULL,
        policy_version text NOT NULL,
        banner_hash text NOT NULL,
        granted text[] NOT NULL,
        denied text[] NOT NULL,
        action text NOT NULL,
        source text NOT NULL,
        language text NOT NULL,
        masked_ip text NOT NULL,
        browser text NOT NULL
    )""",
    f"CREATE INDEX {_TABLE}_consent_id ON {_TABLE} (consent_id)",
    f"CREATE INDEX {_TABLE}_recorded_at ON {_TABLE} (recorded_at)",
    f"""CREATE FUNCTION {_TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'consent receipts are append-only'; END $$""",
    f"""CREATE TRIGGER {_TABLE}_append_only BEFORE UPDATE ON {_TABLE}
        FOR EACH ROW EXECUTE FUNCTION {_TABLE}_append_only()""",
    "CREATE TABLE IF NOT EXISTS consentmw_schema (component text PRIMARY KEY, version int)",
    "INSERT INTO consentmw_schema VALUES ('receipts', 1)",
)
_SCHEMA_V2 = (
    f"""CREATE TABLE {_TEXTS} (
        hash text PRIMARY KEY,
        language text NOT NULL,
        policy_version text NOT NULL,
        material text NOT NULL,
        first_seen timestamptz NOT NULL
    )""",
    f"CREATE INDEX {_TEXTS}_version ON {_TEXTS} (policy_version, language)",
    f"""CREATE FUNCTION {_TEXTS}_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'shown texts are append-only'; END $$""",
    f"""CREATE TRIGGER {_TEXTS}_append_only BEFORE UPDATE ON {_TEXTS}
        FOR EACH ROW EXECUTE FUNCTION {_TEXTS}_append_only()""",
    f"""CREATE TABLE {_HOLDS} (
        case_name text PRIMARY KEY,
        consent_ids text[] NOT NULL,  -- empty: every consent id
        held_from timestamptz,        -- inclusive; NULL: open
        held_until timestamptz,       -- exclusive
        review date NOT NULL,
        created_at timestamptz NOT NULL
    )""",
    "UPDATE consentmw_schema SET version = 2 WHERE component = 'receipts'",
)
_SCHEMA_V3 = (
    f"""CREATE TABLE {_COUNTERS} (
        day date NOT NULL,            -- UTC day
        kind text NOT NULL,
        policy_version text NOT NULL,
        language text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (day, kind, policy_version, language)
    )""",
    "UPDATE consentmw_schema SET version = 3 WHERE component = 'receipts'",
)
_STEPS = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}
# Whether hold h covers receipt r.
_COVERS = (
    "(cardinality(h.consent_ids) = 0 OR r.consent_id = ANY(h.consent_ids)) "
    "AND (h.held_from IS NULL OR r.recorded_at >= h.held_from) "
    "AND (h.held_until IS NULL OR r.recorded_at < h.held_until)"
)
_HELD = f"EXISTS (SELECT 1 FROM {_HOLDS} AS h WHERE {_COVERS})"
_HOLD_COLUMNS = "case_name, consent_ids, held_from, held_until, review, created_at"
_TEXT_COLUMNS = "hash, language, policy_version, material, first_seen"
_INSERT_TEXTS = (
    f"INSERT INTO {_TEXTS} ({_TEXT_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (hash) DO NOTHING"
)
# One advisory lock id for "migrating the receipt schema", so a fleet starting at once
# does not race on CREATE TABLE.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('consentmw_receipts_schema'))"
_HAS_VERSION_TABLE = "SELECT to_regclass('consentmw_schema') IS NOT NULL"
_VERSION = "SELECT coalesce(max(version), 0) FROM consentmw_schema WHERE component = 'receipts'"
_COLUMNS = (
    "consent_id, recorded_at, policy_version, banner_hash, granted, denied, "
    "action, source, language, masked_ip, browser"
)
_INSERT = f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})"
_SELECT = f"SELECT id, {_COLUMNS} FROM {_TABLE}"
_BATCH = 1000


def _to_row(r: Receipt) -> tuple[Any, ...]:
    return (
        r.consent_id,
        r.recorded_at,
        r.policy_version,
        r.banner_hash,
        list(r.granted),
        list(r.denied),
        r.action,
        r.source,
        r.language,
        r.masked_ip,
        r.browser,
    )


def _from_row(row: tuple[Any, ...]) -> Receipt:
    return Receipt(*row[1:], id=row[0])


def _hold_row(h: Hold) -> tuple[Any, ...]:
    return (h.case, list(h.consent_ids), h.start, h.end, h.review, h.created_at)


def _hold_from_row(row: tuple[Any, ...]) -> Hold:
    return Hold(
        case=row[0], consent_ids=tuple(row[1]), start=row[2], end=row[3], review=row[4],
        created_at=row[5],
    )  # fmt: skip


TextsRow = tuple[str, str, str, str, datetime]


def failure_kind(exc: BaseException) -> str:
    """A short name for what went wrong, so each kind is logged once, not per request."""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return "locked"
    if isinstance(exc, psycopg.errors.DiskFull):
        return "disk full"
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return "read-only"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return "permission denied"
    if isinstance(exc, (PoolTimeout, psycopg.OperationalError, OSError)):
        return "unavailable"
    if isinstance(exc, RecordsUnavailable):
        return "unavailable"
    return type(exc).__name__


_FORGET_COUNTS = (
    f"SELECT h.case_name, h.review, count(*) FROM {_TABLE} AS r JOIN {_HOLDS} AS h "
    f"ON {_COVERS} WHERE r.consent_id = %s GROUP BY h.case_name, h.review"
)
_FORGET = f"DELETE FROM {_TABLE} AS r WHERE r.consent_id = %s AND NOT {_HELD}"
_KEPT = f"SELECT count(*) FROM {_TABLE} WHERE consent_id = %s"
_PURGE = f"DELETE FROM {_TABLE} AS r WHERE r.recorded_at < %s AND NOT {_HELD}"
_PURGEABLE = f"SELECT count(*) FROM {_TABLE} AS r WHERE r.recorded_at < %s AND NOT {_HELD}"
_PAST_RETENTION = f"SELECT count(*) FROM {_TABLE} WHERE recorded_at < %s"
_HOLDS_SELECT = f"SELECT {_HOLD_COLUMNS} FROM {_HOLDS} ORDER BY created_at, case_name"
_TEXTS_SELECT = f"SELECT {_TEXT_COLUMNS} FROM {_TEXTS}"
_COUNT_COLUMNS = "day, kind, policy_version, language, count"
_UPSERT_COUNTS = (
    f"INSERT INTO {_COUNTERS} AS c ({_COUNT_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (day, kind, policy_version, language) "
    "DO UPDATE SET count = c.count + excluded.count"
)
_COUNTS_SELECT = (
    f"SELECT {_COUNT_COLUMNS} FROM {_COUNTERS} WHERE day >= %s AND day <= %s "
    "ORDER BY day, kind, policy_version, language"
)
_PURGE_COUNTS = f"DELETE FROM {_COUNTERS} WHERE day < %s"


def _count_rows(counts: dict[CountKey, int]) -> list[tuple[Any, ...]]:
    # Sorted: concurrent upserts of the same keys then lock rows in one order (no deadlock).
    return [(*key, n) for key, n in sorted(counts.items()) if n]


def _subtract(counts: dict[CountKey, int], written: dict[CountKey, int]) -> None:
    """Take what was written off a buffer that may have grown meanwhile."""
    for key, n in written.items():
        left = counts.get(key, 0) - n
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)


def _forget_result(
    deleted: int, kept: int, counts: dict[str, int], holds: Sequence[Hold]
) -> ForgetResult:
    reviews = {h.case: h.review for h in holds}
    held_by = tuple(HeldBy(case, reviews[case], n) for case, n in sorted(counts.items()))
    return ForgetResult(deleted=deleted, kept=kept, holds=held_by)


class PostgresReceiptStore(ReceiptStore):
    """Receipts in table ``consentmw_receipts`` (first schema on the search_path)."""

    def __init__(
        self,
        url: str,
        *,
        retention_months: int = 18,
        legal_hold_dir: str | os.PathLike[str] | None = None,
        timeout: float = 5.0,
        max_connections: int = 10,
        retry_interval: float = 1.0,
    ) -> None:
        from consentmw.records import redact_url

        super().__init__(
            retention_months=retention_months,
            legal_hold_dirs=(Path(legal_hold_dir),) if legal_hold_dir is not None else (),
            description=redact_url(url),
        )
        self.url = url
        self.timeout = timeout
        self.max_connections = max_connections
        self.retry_interval = retry_interval
        self._pool: AsyncConnectionPool | None = None
        self._init: asyncio.Task[None] | None = None
        self._schema_ready = False
        self._pending: list[Receipt] = []
        self._texts_pending: dict[str, TextsRow] = {}
        self._counts_pending: dict[CountKey, int] = {}
        self._retry_task: asyncio.Task[None] | None = None
        self._queue: list[tuple[Receipt | None, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        # The sync twins' own retry buffer, written by a thread (no event loop there).
        self._sync_lock = threading.Lock()
        self._sync_pending: list[Receipt] = []
        self._sync_texts: dict[str, TextsRow] = {}
        self._sync_counts: dict[CountKey, int] = {}
        self._sync_retry: threading.Thread | None = None
        self._sync_stop = threading.Event()

    # -- async API ------------------------------------------------------------------

    async def add(self, receipt: Receipt) -> None:
        if not isinstance(receipt, Receipt):
            raise TypeError(f"add() takes a Receipt, not {type(receipt).__name__}")
        await self._enqueue(receipt)

    async def add_texts(
        self, text_hash: str, language: str, policy_version: str, material: str
    ) -> None:
        row = (text_hash, language, policy_version, material, datetime.now(timezone.utc))
        self._texts_pending.setdefault(text_hash, row)
        await self._enqueue(None)  # written with the next batch of receipts

    async def add_counts(self, rows: Iterable[CountRow]) -> None:
        merge_counts(self._counts_pending, checked_rows(rows))
        await self._enqueue(None)  # written with the next batch of receipts

    async def counts(self, first_day: date, last_day: date) -> list[CountRow]:
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(_COUNTS_SELECT, [first_day, last_day])
                return [CountRow(*row) for row in await cur.fetchall()]
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def _enqueue(self, receipt: Receipt | None) -> None:
        if self._closed:
            self._note_failure("closed", RecordsUnavailable("store closed"))
            return
        # Group commit: concurrent adds wait while one flusher writes them in a single
        # transaction (one commit for a whole burst, instead of one per visitor).
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((receipt, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # shield: a cancelled request must not cancel a write that may be under way.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._queue:
            items, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            fresh = [r for r, _ in items if r is not None]
            batch, self._pending = [*self._pending, *fresh], []
            await self._write(batch, fresh=len(fresh))
            for _, done in items:
                if not done.done():
                    done.set_result(None)

    async def _write(self, batch: list[Receipt], fresh: int) -> None:
        texts = dict(self._texts_pending)
        counts = dict(self._counts_pending)
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if texts:
                    await cur.executemany(_INSERT_TEXTS, list(texts.values()))
                if batch:
                    await cur.executemany(_INSERT, [_to_row(r) for r in batch])
                if counts:
                    await cur.executemany(_UPSERT_COUNTS, _count_rows(counts))
        except Exception as exc:
            self._note_failure(failure_kind(exc), exc, count=fresh)
            self._pending = [*batch, *self._pending][-self.max_pending :]
            self._bound_counts(self._counts_pending)
            if self._retry_task is None or self._retry_task.done():
                self._retry_task = asyncio.get_running_loop().create_task(self._retry())
        else:
            for text_hash in texts:
                self._texts_pending.pop(text_hash, None)
            _subtract(self._counts_pending, counts)
            self._note_success()

    def _waiting_writes(self) -> bool:
        return bool(self._pending or self._texts_pending or self._counts_pending)

    async def _retry(self) -> None:
        """Write the receipts a failing database refused, once it comes back."""
        while self._waiting_writes() and not self._closed:
            await asyncio.sleep(self.retry_interval)
            if self._waiting_writes():
                batch, self._pending = self._pending, []
                await self._write(batch, fresh=0)

    async def texts_for_version(self, policy_version: str, language: str) -> list[StoredTexts]:
        sql = f"{_TEXTS_SELECT} WHERE policy_version = %s AND language = %s ORDER BY first_seen"
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(sql, [policy_version, language])
                return [StoredTexts(*row) for row in await cur.fetchall()]
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def for_consent_id(self, consent_id: str) -> list[Receipt]:
        waiting = self._waiting(consent_id)  # read before the database: see with_pending
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(
                    f"{_SELECT} WHERE consent_id = %s ORDER BY id", [consent_id]
                )
                stored = [_from_row(row) for row in await cur.fetchall()]
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return with_pending(stored, waiting)

    async def forget(self, consent_id: str) -> ForgetResult:
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(_HOLDS_SELECT)
                holds = [_hold_from_row(row) for row in await cur.fetchall()]
                counts: dict[str, int] = {}
                deleted, kept = self._forget_waiting(consent_id, holds, counts)
                async with conn.transaction():
                    cur = await conn.execute(_FORGET_COUNTS, [consent_id])
                    for case, _, count in await cur.fetchall():
                        counts[case] = counts.get(case, 0) + count
                    deleted += (await conn.execute(_FORGET, [consent_id])).rowcount
                    cur = await conn.execute(_KEPT, [consent_id])
                    kept += (await cur.fetchone() or (0,))[0]
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return _forget_result(deleted, kept, counts, holds)

    def _forget_waiting(
        self, consent_id: str, holds: Sequence[Hold], counts: dict[str, int]
    ) -> tuple[int, int]:
        """Drop the visitor's unheld receipts from every in-memory buffer (no await inside)."""
        self._pending, deleted, kept = split_waiting(self._pending, consent_id, holds, counts)
        queued = [r for r, _ in self._queue if r is not None]
        still, gone, held = split_waiting(queued, consent_id, holds, counts)
        deleted, kept = deleted + gone, kept + held
        keep_ids = {id(r) for r in still}
        for r, done in self._queue:
            if r is not None and id(r) not in keep_ids and not done.done():
                done.set_result(None)
        self._queue = [(r, d) for r, d in self._queue if r is None or id(r) in keep_ids]
        with self._sync_lock:
            self._sync_pending, gone, held = split_waiting(
                self._sync_pending, consent_id, holds, counts
            )
        return deleted + gone, kept + held

    async def purge(self, *, now: datetime | None = None, dry_run: bool = False) -> int:
        cutoff = self.purge_cutoff(now)
        if self._purge_blocked():
            return 0
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(_HOLDS_SELECT)
                self._warn_review([_hold_from_row(row) for row in await cur.fetchall()], now)
                if dry_run:
                    cur = await conn.execute(_PURGEABLE, [cutoff])
                    return (await cur.fetchone() or (0,))[0]
                async with conn.transaction():
                    count = (await conn.execute(_PURGE, [cutoff])).rowcount
                    cur = await conn.execute(_PAST_RETENTION, [cutoff])
                    held = (await cur.fetchone() or (0,))[0]
                    # No hold keeps counts: they hold no personal data.
                    days = (await conn.execute(_PURGE_COUNTS, [cutoff.date()])).rowcount
        except Exception as exc:
            raise self._unavailable(exc) from exc
        _log_purge(self, count, cutoff, held, days)
        return count

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        if self._retry_task is not None:
            self._retry_task.cancel()
        if self._waiting_writes() and self._pool is not None:
            batch, self._pending = self._pending, []
            await self._write(batch, fresh=0)
        if self._pending or self._counts_pending:
            logger.error(
                "receipt store %s closed with %d receipts and %d counted events that could "
                "not be written",
                self.description,
                len(self._pending),
                sum(self._counts_pending.values()),
            )
        self._closed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await asyncio.to_thread(self.close_sync)

    async def _get_pool(self) -> AsyncConnectionPool:
        """The pool, opened and the schema checked on first use (one attempt at a time)."""
        if self._closed:
            raise RecordsUnavailable(f"receipt store {self.description} is closed")
        if self._pool is None or not self._schema_ready:
            task = self._init
            if task is None or (task.done() and (task.cancelled() or task.exception())):
                # Concurrent first requests share one attempt instead of queueing many.
                task = self._init = asyncio.get_running_loop().create_task(self._initialise())
            await asyncio.shield(task)
        assert self._pool is not None
        return self._pool

    async def _initialise(self) -> None:
        if self._pool is None:
            pool = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self.max_connections,
                timeout=self.timeout,
                kwargs={"autocommit": True, "connect_timeout": max(1, round(self.timeout))},
                configure=self._configure,
                check=AsyncConnectionPool.check_connection,
                name="consentmw-receipts",
                open=False,
            )
            await pool.open(wait=False)
            self._pool = pool
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(_MIGRATION_LOCK)
            version = 0
            if (await (await conn.execute(_HAS_VERSION_TABLE)).fetchone() or (False,))[0]:
                version = (await (await conn.execute(_VERSION)).fetchone() or (0,))[0]
            for statement in self._migration(version):
                await conn.execute(statement)
        self._schema_ready = True

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # A table lock held elsewhere must not hold the visitor's request for long.
        await conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")

    def _waiting(self, consent_id: str) -> list[Receipt]:
        with self._sync_lock:
            waiting = [*self._pending, *self._sync_pending]
        return [r for r in waiting if r.consent_id == consent_id]

    # -- sync twins (CLI, scripts) -----------------------------------------------------

    def _connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self.url, autocommit=autocommit, connect_timeout=max(1, round(self.timeout))
            )
            conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
            with conn.transaction():
                conn.execute(_MIGRATION_LOCK)
                version = 0
                if (conn.execute(_HAS_VERSION_TABLE).fetchone() or (False,))[0]:
                    version = (conn.execute(_VERSION).fetchone() or (0,))[0]
                for statement in self._migration(version):
                    conn.execute(statement)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return conn

    def add_sync(self, receipt: Receipt) -> None:
        if not isinstance(receipt, Receipt):
            raise TypeError(f"add() takes a Receipt, not {type(receipt).__name__}")
        self._add_sync(receipt)

    def add_texts_sync(
        self, text_hash: str, language: str, policy_version: str, material: str
    ) -> None:
        with self._sync_lock:
            row = (text_hash, language, policy_version, material, datetime.now(timezone.utc))
            self._sync_texts.setdefault(text_hash, row)
        self._add_sync(None)

    def add_counts_sync(self, rows: Iterable[CountRow]) -> None:
        rows = checked_rows(rows)
        with self._sync_lock:
            merge_counts(self._sync_counts, rows)
        self._add_sync(None)

    def counts_sync(self, first_day: date, last_day: date) -> list[CountRow]:
        try:
            with self._connect() as conn:
                rows = conn.execute(_COUNTS_SELECT, [first_day, last_day])
                return [CountRow(*row) for row in rows]
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    def _add_sync(self, receipt: Receipt | None) -> None:
        """Write ``receipt`` with whatever waits for a retry; on failure keep it, retry later."""
        if self._closed:
            self._note_failure("closed", RecordsUnavailable("store closed"))
            return
        with self._sync_lock:
            if receipt is not None:
                self._sync_pending.append(receipt)
                overflow = len(self._sync_pending) - self.max_pending
                if overflow > 0:
                    del self._sync_pending[:overflow]
        if not self._write_sync(fresh=1 if receipt is not None else 0):
            self._start_sync_retry()

    def _write_sync(self, fresh: int) -> bool:
        with self._sync_lock:
            batch, texts = list(self._sync_pending), dict(self._sync_texts)
            counts = dict(self._sync_counts)
        if not batch and not texts and not counts:
            return True
        try:
            with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
                if texts:
                    cur.executemany(_INSERT_TEXTS, list(texts.values()))
                if batch:
                    cur.executemany(_INSERT, [_to_row(r) for r in batch])
                if counts:
                    cur.executemany(_UPSERT_COUNTS, _count_rows(counts))
        except Exception as exc:
            self._note_failure(failure_kind(exc.__cause__ or exc), exc, count=fresh)
            with self._sync_lock:
                self._bound_counts(self._sync_counts)
            return False
        with self._sync_lock:
            written = {id(r) for r in batch}
            self._sync_pending = [r for r in self._sync_pending if id(r) not in written]
            for text_hash in texts:
                self._sync_texts.pop(text_hash, None)
            _subtract(self._sync_counts, counts)
        self._note_success()
        return True

    def _start_sync_retry(self) -> None:
        with self._sync_lock:
            if self._sync_retry is not None and self._sync_retry.is_alive():
                return
            self._sync_retry = threading.Thread(
                target=self._sync_retry_loop, name="consentmw-receipts-retry", daemon=True
            )
            self._sync_retry.start()

    def _sync_retry_loop(self) -> None:
        while not self._sync_stop.wait(self.retry_interval):
            if self._write_sync(fresh=0):
                with self._sync_lock:
                    if not self._sync_pending and not self._sync_texts and not self._sync_counts:
                        return

    def texts_sync(self, text_hash: str) -> StoredTexts | None:
        try:
            with self._connect() as conn:
                row = conn.execute(f"{_TEXTS_SELECT} WHERE hash = %s", [text_hash]).fetchone()
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc
        return StoredTexts(*row) if row else None

    def for_consent_id_sync(self, consent_id: str) -> list[Receipt]:
        waiting = self._waiting(consent_id)
        return with_pending(list(self.export_sync(consent_id)), waiting)

    def export_sync(self, consent_id: str | None = None) -> Iterator[Receipt]:
        where, params = ("WHERE consent_id = %s", [consent_id]) if consent_id else ("", [])
        try:
            with (
                self._connect(autocommit=False) as conn,
                conn.cursor(name="consentmw_export") as cur,
            ):
                cur.execute(f"{_SELECT} {where} ORDER BY id", params)
                for row in cur:
                    yield _from_row(row)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    def forget_sync(self, consent_id: str) -> ForgetResult:
        try:
            with self._connect() as conn:
                holds = [_hold_from_row(row) for row in conn.execute(_HOLDS_SELECT)]
                counts: dict[str, int] = {}
                with self._sync_lock:
                    self._sync_pending, deleted, kept = split_waiting(
                        self._sync_pending, consent_id, holds, counts
                    )
                with conn.transaction():
                    for case, _, count in conn.execute(_FORGET_COUNTS, [consent_id]):
                        counts[case] = counts.get(case, 0) + count
                    deleted += conn.execute(_FORGET, [consent_id]).rowcount
                    kept += (conn.execute(_KEPT, [consent_id]).fetchone() or (0,))[0]
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc
        return _forget_result(deleted, kept, counts, holds)

    def purge_sync(self, *, now: datetime | None = None, dry_run: bool = False) -> int:
        cutoff = self.purge_cutoff(now)
        if self._purge_blocked():
            return 0
        try:
            with self._connect() as conn:
                self._warn_review([_hold_from_row(row) for row in conn.execute(_HOLDS_SELECT)], now)
                if dry_run:
                    return (conn.execute(_PURGEABLE, [cutoff]).fetchone() or (0,))[0]
                with conn.transaction():
                    count = conn.execute(_PURGE, [cutoff]).rowcount
                    held = (conn.execute(_PAST_RETENTION, [cutoff]).fetchone() or (0,))[0]
                    days = conn.execute(_PURGE_COUNTS, [cutoff.date()]).rowcount
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc
        _log_purge(self, count, cutoff, held, days)
        return count

    def add_hold_sync(self, hold: Hold) -> None:
        sql = f"INSERT INTO {_HOLDS} ({_HOLD_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
        try:
            with self._connect() as conn:
                conn.execute(sql, _hold_row(hold))
        except psycopg.errors.UniqueViolation:
            raise ValueError(f"a hold for case {hold.case!r} exists already") from None
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    def holds_sync(self) -> list[Hold]:
        try:
            with self._connect() as conn:
                return [_hold_from_row(row) for row in conn.execute(_HOLDS_SELECT)]
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    def release_hold_sync(self, case: str) -> bool:
        try:
            with self._connect() as conn:
                sql = f"DELETE FROM {_HOLDS} WHERE case_name = %s"
                return conn.execute(sql, [case]).rowcount > 0
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    def close_sync(self) -> None:
        """Stop the retry thread after one last attempt; no connection is held otherwise."""
        self._sync_stop.set()
        thread = self._sync_retry
        if thread is not None:
            thread.join()
        self._closed = True
        if not self._write_sync(fresh=0):
            logger.error(
                "receipt store %s closed with %d receipts and %d counted events that could "
                "not be written",
                self.description,
                len(self._sync_pending),
                sum(self._sync_counts.values()),
            )

    # -- helpers ----------------------------------------------------------------------

    def _migration(self, version: int) -> list[str]:
        if version > SCHEMA_VERSION:
            raise RecordsUnavailable(
                f"{self.description} holds receipts in schema version {version}, newer than "
                f"this consentmw understands ({SCHEMA_VERSION}): upgrade consentmw"
            )
        return [sql for step in range(version + 1, SCHEMA_VERSION + 1) for sql in _STEPS[step]]

    def _unavailable(self, exc: BaseException) -> RecordsUnavailable:
        if isinstance(exc, RecordsUnavailable):
            return exc
        return RecordsUnavailable(f"receipt store {self.description}: {failure_kind(exc)}: {exc}")


def _log_purge(
    store: PostgresReceiptStore, count: int, cutoff: datetime, held: int, days: int
) -> None:
    logger.info(
        "purged %d receipts recorded before %s from %s (%d kept under legal holds) "
        "and %d daily count rows",
        count,
        cutoff,
        store,
        held,
        days,
    )
