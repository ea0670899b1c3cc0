"""Receipt store behaviour, on every backend: round trip, concurrency, forget, purge, holds."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentmw.records import (
    Receipt,
    ReceiptStore,
    RecordsUnavailable,
    SQLiteReceiptStore,
    open_store,
    redact_url,
)
from consentmw.records.sqlite import SCHEMA_VERSION
from tests.records_support import MakeStore, hold_write_lock, receipt

TEXT = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))




def without_ids(receipts: list[Receipt]) -> list[Receipt]:
    return [Receipt(**{**r.__dict__, "id": None}) for r in receipts]


async def test_round_trip_keeps_every_field_and_order(store: ReceiptStore) -> None:
    written = [
        receipt("alice", action="accept_all"),
        receipt("alice", action="save", source="preferences", granted=("necessary",),
                denied=("analytics",), language="en"),
        receipt("alice", action="withdraw", source="api", granted=(), denied=("analytics",)),
    ]  # fmt: skip
    for r in written:
        await store.add(r)
    await store.add(receipt("bob"))
    got = await store.for_consent_id("alice")
    assert without_ids(got) == written
    ids = [r.id for r in got]
    assert all(ids) and ids == sorted(ids)
    assert got[0].recorded_at.tzinfo is not None
    assert json.loads(json.dumps(got[1].to_dict()))["denied"] == ["analytics"]
    assert store.failures == 0


async def test_unknown_or_purged_consent_id_is_empty_not_an_error(store: ReceiptStore) -> None:
    assert await store.for_consent_id("nobody") == []
    await store.add(receipt("old", at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    assert await store.purge() == 1
    assert await store.for_consent_id("old") == []


async def test_500_concurrent_adds_lose_nothing(store: ReceiptStore) -> None:
    await asyncio.gather(*(store.add(receipt(f"v{i % 50}", masked_ip=str(i))) for i in range(500)))
    held = [r for i in range(50) for r in await store.for_consent_id(f"v{i}")]
    assert sorted(int(r.masked_ip) for r in held) == list(range(500))
    assert len({r.id for r in held}) == 500
    assert store.failures == 0


async def test_forget_deletes_only_that_visitor(store: ReceiptStore) -> None:
    for cid in ("alice", "alice", "bob"):
        await store.add(receipt(cid))
    assert (await store.forget("alice")).deleted == 2
    assert await store.for_consent_id("alice") == []
    assert len(await store.for_consent_id("bob")) == 1
    assert (await store.forget("alice")).deleted == 0


async def test_purge_by_retention_with_injected_now(make_store: MakeStore) -> None:
    store = make_store(retention_months=18)
    now = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
    cutoff = datetime(2024, 12, 15, 12, 0, tzinfo=timezone.utc)  # 18 calendar months back
    await store.add(receipt("old", at=cutoff - timedelta(seconds=1)))
    await store.add(receipt("edge", at=cutoff))
    await store.add(receipt("new", at=now - timedelta(days=1)))
    assert await store.purge(now=now, dry_run=True) == 1
    assert len(await store.for_consent_id("old")) == 1
    assert await store.purge(now=now) == 1
    assert await store.for_consent_id("old") == []
    assert len(await store.for_consent_id("edge")) == 1
    assert len(await store.for_consent_id("new")) == 1


async def test_legacy_legal_hold_file_stops_purge_and_says_how_to_convert(
    backend: str, make_store: MakeStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite: the file sits next to the database; PostgreSQL: in a directory named in config.
    hold_dir = tmp_path / "db" if backend == "sqlite" else tmp_path / "holds"
    store = make_store() if backend == "sqlite" else make_store(legal_hold_dir=hold_dir)
    await store.add(receipt("old", at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    hold_dir.mkdir(exist_ok=True)
    (hold_dir / "LEGAL_HOLD").write_text("police request 4711\n")
    assert store.legacy_hold_file() == hold_dir / "LEGAL_HOLD"
    with caplog.at_level(logging.ERROR, "consentmw.records"):
        assert await store.purge() == 0
    assert "records hold add" in caplog.text
    (hold_dir / "LEGAL_HOLD").unlink()
    assert await store.purge() == 1


async def test_receipts_are_append_only(backend: str, store: ReceiptStore) -> None:
    await store.add(receipt("alice"))
    if backend == "sqlite":
        assert isinstance(store, SQLiteReceiptStore)
        with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.DatabaseError):
            conn.execute("UPDATE receipts SET action = 'reject_all'")
    else:
        import psycopg

        assert isinstance(store, _pg_class())
        with psycopg.connect(store.url) as conn, pytest.raises(psycopg.Error, match="append"):
            conn.execute("UPDATE consentmw_receipts SET action = 'reject_all'")
    assert (await store.for_consent_id("alice"))[0].action == "accept_all"


async def test_sync_twins_and_export_stream(store: ReceiptStore) -> None:
    store.add_sync(receipt("alice", at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    store.add_sync(receipt("bob"))
    store.add_sync(receipt("alice"))
    assert [r.consent_id for r in store.export_sync()] == ["alice", "bob", "alice"]
    assert len(list(store.export_sync("alice"))) == 2
    assert len(store.for_consent_id_sync("alice")) == 2
    assert store.purge_sync(now=datetime(2027, 8, 1, tzinfo=timezone.utc), dry_run=True) == 1
    assert store.forget_sync("alice").deleted == 2
    assert [r.consent_id for r in store.export_sync()] == ["bob"]


async def test_cancelled_request_still_writes_its_receipt(store: ReceiptStore) -> None:
    task = asyncio.create_task(store.add(receipt("alice")))
    await asyncio.sleep(0)
    task.cancel()
    for _ in range(100):
        if await store.for_consent_id("alice"):
            break
        await asyncio.sleep(0.02)
    assert len(await store.for_consent_id("alice")) == 1


async def test_add_after_close_is_counted_not_raised(store: ReceiptStore) -> None:
    await store.add(receipt("alice"))
    await store.close()
    await store.add(receipt("alice"))
    assert store.failures == 1


# -- failures: the decision must go through, nothing stored may be lost -------------------


async def test_locked_store_logs_once_counts_and_retries(
    backend: str, make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(timeout=0.2, retry_interval=0.1)
    await store.add(receipt("before"))
    with hold_write_lock(backend, store), caplog.at_level(logging.ERROR, "consentmw.records"):
        for _ in range(3):
            await store.add(receipt("during"))  # returns although nothing could be written
        assert store.failures == 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "locked" in errors[0].getMessage()
    # The lock is gone: the retry timer writes the held receipts without another add.
    for _ in range(100):
        if len(await store.for_consent_id("during")) == 3:
            break
        await asyncio.sleep(0.05)
    assert len(await store.for_consent_id("during")) == 3
    assert len(await store.for_consent_id("before")) == 1


async def test_unreachable_store_never_raises_on_add_but_reads_say_unavailable(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        (tmp_path / "receipts.db").mkdir()  # a directory where the database file should be
        store = open_store(f"sqlite:///{tmp_path}/receipts.db")
    else:
        from consentmw.records.postgres import PostgresReceiptStore

        store = PostgresReceiptStore("postgresql://nobody@127.0.0.1:1/none", timeout=0.3)
    try:
        await store.add(receipt("alice"))
        await store.add(receipt("alice"))
        assert store.failures == 2
        with pytest.raises(RecordsUnavailable):
            await store.for_consent_id("alice")
        with pytest.raises(RecordsUnavailable):
            await store.forget("alice")
    finally:
        await store.close()


async def test_read_only_store_keeps_what_it_has(backend: str, make_store: MakeStore) -> None:
    await make_store().add(receipt("alice"))
    if backend == "sqlite":
        store = make_store()
        original = SQLiteReceiptStore._migrate

        def read_only(self: SQLiteReceiptStore, conn: sqlite3.Connection) -> None:
            original(self, conn)
            conn.execute("PRAGMA query_only = ON")

        store._migrate = read_only.__get__(store)  # type: ignore[method-assign]
    else:
        store = make_store(pg_settings={"default_transaction_read_only": "on"})
    await store.add(receipt("alice", action="withdraw"))
    assert store.failures == 1
    held = await store.for_consent_id("alice")  # the refused one waits in memory: shown
    assert [(r.action, r.pending) for r in held] == [("accept_all", False), ("withdraw", True)]
    assert held[1].id is None and held[1].to_dict()["pending"] is True


async def test_forget_also_drops_receipts_waiting_for_retry(
    backend: str, make_store: MakeStore
) -> None:
    store = make_store(timeout=0.2, retry_interval=30)
    await store.add(receipt("bob"))
    with hold_write_lock(backend, store):
        await store.add(receipt("alice"))
        await store.add(receipt("bob"))
        assert store.failures == 2
    assert (await store.forget("alice")).deleted == 1
    await store.close()  # flushes the pending bob receipt
    reopened = make_store()
    assert await reopened.for_consent_id("alice") == []
    assert len(await reopened.for_consent_id("bob")) == 2


# -- SQLite specifics ----------------------------------------------------------------------


async def test_sqlite_disk_full_keeps_earlier_receipts(tmp_path: Path) -> None:
    class TinyDisk(SQLiteReceiptStore):
        def _migrate(self, conn: sqlite3.Connection) -> None:
            super()._migrate(conn)
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    store = TinyDisk(tmp_path / "r.db", retry_interval=30)
    for i in range(10):
        await store.add(receipt(f"v{i}", banner_hash="x" * 3000))
    assert 0 < store.failures < 10
    await store.close()
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = conn.execute("SELECT count(*) FROM receipts").fetchone()[0]
    assert stored == 10 - store.failures


async def test_sqlite_file_and_directory_created_on_first_use_only(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "receipts.db"
    store = open_store(f"sqlite:///{path}")
    assert await store.for_consent_id("x") == [] and not path.exists()
    await store.add(receipt("x"))
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(receipts)")}
    assert {"receipts_consent_id", "receipts_recorded_at"} <= indexes
    await store.close()


async def test_sqlite_deleted_file_is_recreated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteReceiptStore(tmp_path / "r.db")
    await store.add(receipt("before"))
    for p in tmp_path.glob("r.db*"):
        p.unlink()
    with caplog.at_level(logging.WARNING, "consentmw.records"):
        await store.add(receipt("after"))
    assert "removed or replaced" in caplog.text
    assert len(await store.for_consent_id("after")) == 1 and store.failures == 0
    await store.close()


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "r.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    store = SQLiteReceiptStore(tmp_path / "r.db")
    await store.add(receipt("x"))
    assert store.failures == 1
    with pytest.raises(RecordsUnavailable, match="upgrade consentmw"):
        await store.for_consent_id("x")
    await store.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(TEXT, min_size=1, max_size=40),
    cats=st.lists(st.text(TEXT, min_size=1, max_size=12), max_size=4, unique=True),
    micros=st.integers(0, 10**6 - 1),
)
def test_sqlite_round_trips_any_text(
    tmp_path: Path, text: str, cats: list[str], micros: int
) -> None:
    store = SQLiteReceiptStore(tmp_path / "h.db")
    at = datetime(2026, 3, 1, 12, 0, 0, micros, tzinfo=timezone(timedelta(hours=1)))
    r = receipt(text, at=at, granted=tuple(cats), browser=text, policy_version=text)
    store.add_sync(r)
    assert without_ids(store.for_consent_id_sync(text)) == [r]
    assert store.forget_sync(text).deleted == 1
    store.close_sync()


# -- the receipt itself and open_store --------------------------------------------------


def test_receipt_normalises_and_validates() -> None:
    r = receipt(at=datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
                granted=["analytics"], denied=["marketing"])  # fmt: skip
    assert r.recorded_at == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert r.recorded_at.utcoffset() == timedelta(0) and r.granted == ("analytics",)
    assert Receipt.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    with pytest.raises(ValueError, match="timezone-aware"):
        receipt(at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="action"):
        receipt(action="maybe")
    with pytest.raises(ValueError, match="source"):
        receipt(source="email")
    with pytest.raises(ValueError, match="NUL"):
        receipt("a\x00b")
    with pytest.raises(ValueError, match="both granted and denied"):
        receipt(granted=("analytics",), denied=("analytics",))


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///data/r.db")
    assert isinstance(relative, SQLiteReceiptStore)
    assert relative.path == tmp_path / "data" / "r.db"
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")  # sqlite:////abs/path
    assert isinstance(absolute, SQLiteReceiptStore) and absolute.path == tmp_path / "abs.db"
    # Lazy: no server needed to construct, nothing created yet.
    assert type(open_store("postgresql://nobody:pw@127.0.0.1:1/x")).__name__ == (
        "PostgresReceiptStore"
    )
    assert open_store("postgres://h/db").description == "postgres://h/db"
    assert not (tmp_path / "data").exists()
    for bad in ("mysql://u:hunter2@h/db", "sqlite://r.db", "sqlite:///:memory:", "r.db"):
        with pytest.raises(ValueError, match="records_url") as info:
            open_store(bad)
        assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError, match="records_retention_months"):
        open_store("sqlite:///r.db", retention_months=2)
    assert "pw" not in repr(open_store("postgresql://nobody:pw@127.0.0.1:1/x"))


def _pg_class() -> type:
    from consentmw.records.postgres import PostgresReceiptStore

    return PostgresReceiptStore


# -- one visitor across policy versions, pending receipts, sync retries --------------------


async def test_one_consent_id_across_policy_versions(store: ReceiptStore) -> None:
    await store.add(receipt("alice", policy_version="1.07"))
    await store.add(receipt("alice", policy_version="1.08", action="change"))
    assert [r.policy_version for r in await store.for_consent_id("alice")] == ["1.07", "1.08"]
    assert [r.policy_version for r in store.export_sync("alice")] == ["1.07", "1.08"]
    assert (await store.forget("alice")).deleted == 2


async def test_add_sync_retries_after_a_failure(backend: str, make_store: MakeStore) -> None:
    store = make_store(timeout=0.2, retry_interval=0.1)
    store.add_sync(receipt("before"))
    with hold_write_lock(backend, store):
        store.add_sync(receipt("during"))
        assert store.failures == 1
    (waiting,) = store.for_consent_id_sync("during")
    assert waiting.pending or waiting.id is not None  # the retry may already have run
    for _ in range(100):
        stored = [r for r in store.for_consent_id_sync("during") if not r.pending]
        if stored:
            break
        await asyncio.sleep(0.05)
    assert len(stored) == 1 and stored[0].id is not None
    assert len(store.for_consent_id_sync("during")) == 1  # listed once, as stored


async def test_schema_1_store_is_upgraded_in_place(backend: str, make_store: MakeStore) -> None:
    store = make_store()
    if backend == "sqlite":
        from consentmw.records.sqlite import _SCHEMA_V1, _to_row

        assert isinstance(store, SQLiteReceiptStore)
        store.path.parent.mkdir(parents=True)
        with sqlite3.connect(store.path) as conn:
            for sql in _SCHEMA_V1:
                conn.execute(sql)
            conn.execute("PRAGMA user_version = 1")
            conn.execute(f"INSERT INTO receipts ({_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                         _to_row(receipt("old")))  # fmt: skip
    else:
        import psycopg

        from consentmw.records.postgres import _INSERT, _SCHEMA_V1
        from consentmw.records.postgres import _to_row as pg_row

        with psycopg.connect(store.url, autocommit=True) as conn:  # type: ignore[attr-defined]
            for sql in _SCHEMA_V1:
                conn.execute(sql)
            conn.execute(_INSERT, pg_row(receipt("old")))
    assert store.holds_sync() == []  # a schema-1 store has no holds table: nothing held
    assert await store.purge(dry_run=True) == 0
    await store.add(receipt("new"))
    await store.add_texts("sha256:t", "en", "1", "{}")
    assert [r.consent_id for r in store.export_sync()] == ["old", "new"]
    assert store.texts_sync("sha256:t") is not None


_COLUMNS = (
    "consent_id, recorded_at, policy_version, banner_hash, granted, denied, "
    "action, source, language, masked_ip, browser"
)


# -- hostile input and file permissions ---------------------------------------------------


async def test_sqlite_files_are_private_from_the_start(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SQLiteReceiptStore(tmp_path / "r.db")
        await store.add(receipt("x"))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("r.db*")}
        await store.close()
    finally:
        os.umask(old)
    assert set(modes) >= {"r.db", "r.db-wal", "r.db-shm"}
    assert set(modes.values()) == {0o600}, modes


def test_redact_url_hides_secrets_in_query_parameters() -> None:
    for url in (
        "postgresql://u@h/db?password=hunter2",
        "postgresql://u@h/db?sslmode=require&PASSWORD=hunter2&x=1",
        "postgresql://u@h/db?pass=hunter2",
        "postgresql://u@h/db?pwd=hunter2;x=1",
        "postgresql://u@h/db?secret=hunter2",
        "postgresql://u@h/db?token=hunter2",
        "postgresql://u@h/db?sslpassword=hunter2",
        "postgresql://u@h/db?api_key=hunter2#frag",
        "postgresql://u:hunter2@h/db",
        "postgresql://u:hunter2@h:notaport/db",
    ):
        assert "hunter2" not in redact_url(url), url
    assert redact_url("postgresql://u@h/db?sslmode=require") == (
        "postgresql://u@h/db?sslmode=require"
    )
    assert redact_url("postgresql://u@h/db?password=x&a=1") == (
        "postgresql://u@h/db?password=***&a=1"
    )
