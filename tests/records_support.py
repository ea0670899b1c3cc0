"""Helpers for the receipt-store tests: receipts, backends, throwaway PostgreSQL schemas."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from consentmw.records import Receipt

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
