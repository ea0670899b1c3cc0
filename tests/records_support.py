"""Helpers for the receipt-store tests: receipts, backends, throwaway PostgreSQL schemas."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from consentmw.records import Receipt, ReceiptStore, SQLiteReceiptStore

MakeStore = Callable[..., ReceiptStore]

PG_ENV = "CONSENTMW_TEST_PG"
PG_URL = os.environ.get(PG_ENV, "")
PG_SKIP_REASON = (
    f"{PG_ENV} is not set: run `export {PG_ENV}=$(scripts/start-postgres.sh)` "
    "to test the PostgreSQL backend"
)

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)],
    ),
]


def receipt(consent_id: str = "c-1", *, at: datetime | None = None, **changes: object) -> Receipt:
    """A plausible receipt; keyword arguments override fields."""
    fields: dict[str, object] = {
        "consent_id": consent_id,
        "recorded_at": at or datetime.now(timezone.utc),
        "policy_version": "1.07",
        "banner_hash": "sha256:0f1e2d",
        "granted": ("necessary", "analytics"),
        "denied": (),
        "action": "accept_all",
        "source": "banner",
        "language": "nb",
        "masked_ip": "192.168.0.0",
        "browser": "Firefox",
    }
    fields.update(changes)
    return Receipt(**fields)  # type: ignore[arg-type]


def with_search_path(url: str, schema: str, **settings: str) -> str:
    """``url`` whose sessions use ``schema`` (so each test gets its own tables)."""
    options = f"-csearch_path={schema}" + "".join(f" -c{k}={v}" for k, v in settings.items())
    return f"{url}{'&' if '?' in url else '?'}options={quote(options)}"


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh, empty schema in the test database, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@asynccontextmanager
async def store_factory(backend: str, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Factory for stores of ``backend``, all on one fresh database; closed afterwards."""
    stores: list[ReceiptStore] = []
    with ExitStack() as stack:
        schema = stack.enter_context(pg_schema()) if backend == "postgres" else ""

        def make(*, timeout: float = 5.0, pg_settings: dict[str, str] | None = None, **kw: Any):
            if backend == "sqlite":
                store: ReceiptStore = SQLiteReceiptStore(
                    tmp_path / "db" / "receipts.db", busy_timeout=timeout, **kw
                )
            else:
                from consentmw.records.postgres import PostgresReceiptStore

                url = with_search_path(PG_URL, schema, **(pg_settings or {}))
                store = PostgresReceiptStore(url, timeout=timeout, **kw)
            stores.append(store)
            return store

        try:
            yield make
        finally:
            for store in stores:
                await store.close()


class hold_write_lock:
    """Another client holding a table's write lock, as a long migration or backup would.

    SQLite locks the whole file; on PostgreSQL ``table`` (``receipts`` or ``counters``,
    without the ``consentmw_`` prefix) is locked.
    """

    def __init__(self, backend: str, store: ReceiptStore, table: str = "receipts") -> None:
        self.backend, self.store, self.table = backend, store, table

    def __enter__(self) -> None:
        if self.backend == "sqlite":
            assert isinstance(self.store, SQLiteReceiptStore)
            self.conn: Any = sqlite3.connect(self.store.path, isolation_level=None)
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg

            self.conn = psycopg.connect(self.store.url)  # type: ignore[attr-defined]
            self.conn.execute(f"LOCK TABLE consentmw_{self.table} IN EXCLUSIVE MODE")

    def __exit__(self, *_: object) -> None:
        self.conn.rollback() if self.backend == "postgres" else self.conn.execute("ROLLBACK")
        self.conn.close()
