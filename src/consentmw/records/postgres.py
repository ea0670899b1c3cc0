"""PostgreSQL receipt store, for a fleet of app servers behind a load balancer.

The consent cookie makes the middleware stateless; this database is the one shared thing.
psycopg 3 with an ``AsyncConnectionPool`` opened lazily on first use, so constructing the
middleware (or importing the app) does not need the database to be up. Same schema and
semantics as the SQLite store: append-only (a trigger refuses UPDATE), failures of ``add``
logged once per kind, counted and retried. The sync twins (for the CLI) use plain
short-lived connections, because a pool belongs to the event loop that opened it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from consentmw.records.base import Receipt, ReceiptStore, RecordsUnavailable, logger

SCHEMA_VERSION = 1
_TABLE = "consentmw_receipts"
_SCHEMA = (
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
    f"INSERT INTO consentmw_schema VALUES ('receipts', {SCHEMA_VERSION})",
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


class PostgresReceiptStore(ReceiptStore):
    """Receipts in table ``consentmw_receipts`` (first schema on the search_path)."""

    def __init__(
        self,
        url: str,
        *,
        retention_months: int = 18,
        legal_hold: bool | str = False,
        legal_hold_dir: str | os.PathLike[str] | None = None,
        timeout: float = 5.0,
        max_connections: int = 10,
        retry_interval: float = 1.0,
    ) -> None:
        from consentmw.records import redact_url

        super().__init__(
            retention_months=retention_months,
            legal_hold=legal_hold,
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
        self._retry_task: asyncio.Task[None] | None = None
        self._queue: list[tuple[Receipt, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # -- async API ------------------------------------------------------------------

    async def add(self, receipt: Receipt) -> None:
        if not isinstance(receipt, Receipt):
            raise TypeError(f"add() takes a Receipt, not {type(receipt).__name__}")
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
            batch, self._pending = [*self._pending, *(r for r, _ in items)], []
            await self._write(batch, fresh=len(items))
            for _, done in items:
                if not done.done():
                    done.set_result(None)

    async def _write(self, batch: list[Receipt], fresh: int) -> None:
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.executemany(_INSERT, [_to_row(r) for r in batch])
        except Exception as exc:
            self._note_failure(failure_kind(exc), exc, count=fresh)
            self._pending = [*batch, *self._pending][-self.max_pending :]
            if self._retry_task is None or self._retry_task.done():
                self._retry_task = asyncio.get_running_loop().create_task(self._retry())
        else:
            self._note_success()

    async def _retry(self) -> None:
        """Write the receipts a failing database refused, once it comes back."""
        while self._pending and not self._closed:
            await asyncio.sleep(self.retry_interval)
            if self._pending:
                batch, self._pending = self._pending, []
                await self._write(batch, fresh=0)

    async def for_consent_id(self, consent_id: str) -> list[Receipt]:
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(
                    f"{_SELECT} WHERE consent_id = %s ORDER BY id", [consent_id]
                )
                return [_from_row(row) for row in await cur.fetchall()]
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def forget(self, consent_id: str) -> int:
        held = len(self._pending) + len(self._queue)
        self._pending = [r for r in self._pending if r.consent_id != consent_id]
        for r, done in self._queue:
            if r.consent_id == consent_id and not done.done():
                done.set_result(None)
        self._queue = [(r, done) for r, done in self._queue if r.consent_id != consent_id]
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(
                    f"DELETE FROM {_TABLE} WHERE consent_id = %s", [consent_id]
                )
                return held - len(self._pending) - len(self._queue) + cur.rowcount
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def purge(self, *, now: datetime | None = None, dry_run: bool = False) -> int:
        cutoff = self.purge_cutoff(now)
        if self._purge_blocked():
            return 0
        sql = f"{'SELECT count(*)' if dry_run else 'DELETE'} FROM {_TABLE} WHERE recorded_at < %s"
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(sql, [cutoff])
                count = (await cur.fetchone() or (0,))[0] if dry_run else cur.rowcount
        except Exception as exc:
            raise self._unavailable(exc) from exc
        if not dry_run:
            logger.info("purged %d receipts recorded before %s from %s", count, cutoff, self)
        return count

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        if self._retry_task is not None:
            self._retry_task.cancel()
        if self._pending and self._pool is not None:
            batch, self._pending = self._pending, []
            await self._write(batch, fresh=0)
        if self._pending:
            logger.error(
                "receipt store %s closed with %d receipts that could not be written",
                self.description,
                len(self._pending),
            )
        self._closed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

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

    # -- sync twins (CLI) -------------------------------------------------------------

    def _connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self.url, autocommit=autocommit, connect_timeout=max(1, round(self.timeout))
            )
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
        try:
            with self._connect() as conn:
                conn.execute(_INSERT, _to_row(receipt))
        except Exception as exc:
            self._note_failure(failure_kind(exc), exc)

    def for_consent_id_sync(self, consent_id: str) -> list[Receipt]:
        return list(self.export_sync(consent_id))

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

    def forget_sync(self, consent_id: str) -> int:
        try:
            with self._connect() as conn:
                sql = f"DELETE FROM {_TABLE} WHERE consent_id = %s"
                return conn.execute(sql, [consent_id]).rowcount
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc

    def purge_sync(self, *, now: datetime | None = None, dry_run: bool = False) -> int:
        cutoff = self.purge_cutoff(now)
        if self._purge_blocked():
            return 0
        try:
            with self._connect() as conn:
                if dry_run:
                    sql = f"SELECT count(*) FROM {_TABLE} WHERE recorded_at < %s"
                    return (conn.execute(sql, [cutoff]).fetchone() or (0,))[0]
                sql = f"DELETE FROM {_TABLE} WHERE recorded_at < %s"
                count = conn.execute(sql, [cutoff]).rowcount
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc
        logger.info("purged %d receipts recorded before %s from %s", count, cutoff, self)
        return count

    def close_sync(self) -> None:
        """Nothing to release: the sync twins hold no connection between calls."""

    # -- helpers ----------------------------------------------------------------------

    def _migration(self, version: int) -> tuple[str, ...]:
        if version > SCHEMA_VERSION:
            raise RecordsUnavailable(
                f"{self.description} holds receipts in schema version {version}, newer than "
                f"this consentmw understands ({SCHEMA_VERSION}): upgrade consentmw"
            )
        return _SCHEMA if version == 0 else ()

    def _unavailable(self, exc: BaseException) -> RecordsUnavailable:
        if isinstance(exc, RecordsUnavailable):
            return exc
        return RecordsUnavailable(f"receipt store {self.description}: {failure_kind(exc)}: {exc}")
