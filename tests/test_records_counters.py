"""Daily event counts on every backend: upserts, batching, failures, processes, purge, lifespan."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from consentmw.receipts import ReceiptWriter
from consentmw.records import CountRow, EventCounter, Hold, ReceiptStore, SQLiteReceiptStore
from tests.records_support import MakeStore, hold_write_lock, receipt, store_factory

ROOT = Path(__file__).resolve().parent.parent
D1, D2, D3 = date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21)
NEXT_YEAR = date.today() + timedelta(days=365)




def row(day: date, kind: str = "banner_shown", n: int = 1, lang: str = "nb") -> CountRow:
    return CountRow(day, kind, "1.07", lang, n)


def totals(rows: list[CountRow]) -> dict[tuple[Any, ...], int]:
    return {(r.day, r.kind, r.policy_version, r.language): r.count for r in rows}


def counter(store: ReceiptStore, **kw: Any) -> EventCounter:
    return EventCounter(store, policy_versions=("1.07",), languages=("nb", "en"), **kw)


async def wait_for(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


# -- the store ----------------------------------------------------------------------------


async def test_add_counts_adds_to_what_is_stored(store: ReceiptStore) -> None:
    await store.add_counts([row(D1), row(D1, "signal_refusal", 2), row(D2, n=5, lang="en")])
    await store.add_counts([row(D1, n=3), row(D3)])
    store.add_counts_sync([row(D1, n=10), row(D2, n=0, lang="en")])
    assert totals(await store.counts(D1, D3)) == {
        (D1, "banner_shown", "1.07", "nb"): 14,
        (D1, "signal_refusal", "1.07", "nb"): 2,
        (D2, "banner_shown", "1.07", "en"): 5,
        (D3, "banner_shown", "1.07", "nb"): 1,
    }
    assert [r.day for r in store.counts_sync(D2, D2)] == [D2]  # inclusive bounds
    assert await store.counts(D3 + timedelta(1), D3 + timedelta(9)) == []
    # Counts share the receipts' transaction and file: receipts still round-trip.
    await store.add(receipt("alice"))
    assert len(await store.for_consent_id("alice")) == 1


async def test_count_rows_are_validated(store: ReceiptStore) -> None:
    for bad in [
        dict(day=datetime(2026, 1, 1, tzinfo=timezone.utc)),
        dict(kind="page_view"),
        dict(language=""),
        dict(policy_version="a\x00b"),
        dict(count=-1),
        dict(count=True),
    ]:
        with pytest.raises(ValueError):
            CountRow(**{"day": D1, "kind": "banner_shown", "policy_version": "1",
                        "language": "nb", "count": 1, **bad})  # fmt: skip
    with pytest.raises(TypeError):
        await store.add_counts([(D1, "banner_shown", "1", "nb", 1)])  # type: ignore[list-item]


async def test_reading_counts_of_an_unreachable_store_says_unavailable(
    backend: str, tmp_path: Path
) -> None:
    from consentmw.records import RecordsUnavailable, open_store

    if backend == "sqlite":
        (tmp_path / "r.db").write_bytes(b"not a database, but something else" * 100)
        store = open_store(f"sqlite:///{tmp_path}/r.db")
    else:
        from consentmw.records.postgres import PostgresReceiptStore

        store = PostgresReceiptStore("postgresql://nobody@127.0.0.1:1/none", timeout=0.3)
    try:
        await store.add_counts([row(D1)])  # never raises: logged and kept for a retry
        with pytest.raises(RecordsUnavailable):
            await store.counts(D1, D1)
        with pytest.raises(RecordsUnavailable):
            store.counts_sync(D1, D1)
    finally:
        await store.close()


async def test_purge_drops_old_days_and_no_hold_keeps_them(store: ReceiptStore) -> None:
    now = datetime(2026, 12, 10, 12, tzinfo=timezone.utc)
    cutoff_day = store.purge_cutoff(now).date()
    old, edge = cutoff_day - timedelta(days=1), cutoff_day
    await store.add_counts([row(old), row(old, "signal_refusal"), row(edge), row(D2)])
    await store.add(receipt("held", at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    store.add_hold_sync(Hold(case="Everything", review=NEXT_YEAR, start=start))  # every receipt
    assert await store.purge(now=now, dry_run=True) == 0
    assert len(await store.counts(old, old)) == 2  # a dry run deletes nothing
    assert await store.purge(now=now) == 0  # the held receipt stays...
    assert await store.counts(old, old) == []  # ...but counts hold no personal data
    assert [r.day for r in await store.counts(date.min, date.max)] == [edge, D2]
    assert len(list(store.export_sync())) == 1
    assert store.purge_sync(now=now + timedelta(days=1)) == 0
    assert [r.day for r in store.counts_sync(date.min, date.max)] == [D2]


async def test_schema_2_store_gets_the_counters_table(backend: str, make_store: MakeStore) -> None:
    store = make_store()
    if backend == "sqlite":
        from consentmw.records.sqlite import _SCHEMA_V1, _SCHEMA_V2

        assert isinstance(store, SQLiteReceiptStore)
        store.path.parent.mkdir(parents=True)
        with sqlite3.connect(store.path) as conn:
            for sql in (*_SCHEMA_V1, *_SCHEMA_V2):
                conn.execute(sql)
            conn.execute("PRAGMA user_version = 2")
        assert store.counts_sync(D1, D3) == []  # read before the upgrade: nothing yet
    else:
        import psycopg

        from consentmw.records.postgres import _SCHEMA_V1, _SCHEMA_V2

        with psycopg.connect(store.url, autocommit=True) as conn:  # type: ignore[attr-defined]
            for sql in (*_SCHEMA_V1, *_SCHEMA_V2):
                conn.execute(sql)
    await store.add(receipt("old"))
    await store.add_counts([row(D1, n=4)])
    assert totals(store.counts_sync(D1, D1)) == {(D1, "banner_shown", "1.07", "nb"): 4}
    if backend == "sqlite":
        with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    else:
        import psycopg

        with psycopg.connect(store.url) as conn:  # type: ignore[attr-defined]
            sql = "SELECT version FROM consentmw_schema WHERE component = 'receipts'"
            assert conn.execute(sql).fetchone() == (3,)


# -- the counter ----------------------------------------------------------------------------


async def test_counts_add_up_across_flushes_and_store_instances(make_store: MakeStore) -> None:
    a, b = counter(make_store()), counter(make_store())  # two workers, one database
    for _ in range(3):
        for _ in range(100):
            a.count("banner_shown", "1.07", "nb")
            b.count("banner_shown", "1.07", "nb")
        b.count("signal_refusal", "1.07", "en")
        assert await a.flush() == 100 and await b.flush() == 101
    assert await a.flush() == 0  # nothing left: nothing written twice
    by_kind: dict[str, int] = {}
    for r in await make_store().counts(date.min, date.max):
        by_kind[r.kind] = by_kind.get(r.kind, 0) + r.count
    assert by_kind == {"banner_shown": 600, "signal_refusal": 3}


async def test_counts_add_up_across_processes(backend: str, make_store: MakeStore) -> None:
    store = make_store()
    sqlite_url = f"sqlite:///{getattr(store, 'path', '')}"
    url = sqlite_url if backend == "sqlite" else store.url  # type: ignore[attr-defined]
    child = (
        "import asyncio, sys\n"
        "from consentmw.records import EventCounter, open_store\n"
        "async def main():\n"
        "    store = open_store(sys.argv[1])\n"
        "    c = EventCounter(store, policy_versions=['1.07'], languages=['nb'], interval=0.05)\n"
        "    c.start()\n"
        "    for n in range(2000):\n"
        "        c.count('banner_shown', '1.07', 'nb')\n"
        "        if n % 100 == 0:\n"
        "            await asyncio.sleep(0.01)\n"
        "    await c.stop()\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", child, url, env=env)
        for _ in range(3)
    ]
    mine = counter(store, interval=0.05)
    mine.start()
    for _ in range(500):
        mine.count("banner_shown", "1.07", "nb")
    await mine.stop()
    assert [await p.wait() for p in procs] == [0, 0, 0]
    total = sum(r.count for r in store.counts_sync(date.min, date.max))
    assert total == 3 * 2000 + 500


async def test_counts_survive_a_failing_store_and_are_written_later(
    backend: str, make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(timeout=0.2, retry_interval=0.1)
    c = counter(store)
    c.count("banner_shown", "1.07", "nb")
    await c.flush()
    locked = hold_write_lock(backend, store, "counters")
    with locked, caplog.at_level(logging.ERROR, "consentmw.records"):
        for _ in range(7):
            c.count("banner_shown", "1.07", "nb")
        c.count("signal_refusal", "1.07", "en")
        await c.flush()  # returns although nothing could be written
        store.add_counts_sync([row(D1, n=2)])  # the sync twin keeps its counts too
        assert c.pending == 0
        assert "locked" in caplog.text or "unavailable" in caplog.text
    assert store.failures == 0  # no receipt was refused: only counts wait

    def stored() -> int:
        return sum(r.count for r in store.counts_sync(date.min, date.max))

    await wait_for(lambda: stored() == 11)  # the retry writes them without another flush
    await store.close()
    assert sum(r.count for r in make_store().counts_sync(date.min, date.max)) == 11


async def test_counter_keeps_what_the_store_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Refusing(SQLiteReceiptStore):
        refuse = True

        async def add_counts(self, rows: Any) -> None:
            if self.refuse:
                raise RuntimeError("store fault")
            await super().add_counts(rows)

    store = Refusing(tmp_path / "r.db")
    c = counter(store, max_keys=3)
    for lang in ("nb", "en"):
        c.count("banner_shown", "1.07", lang)
    with caplog.at_level(logging.ERROR, "consentmw.records"):
        assert await c.flush() == 0
    assert "2 counted events could not be handed" in caplog.text
    assert c.pending == 2
    c.count("banner_shown", "1.07", "nb")
    store.refuse = False
    assert await c.flush() == 3
    assert sum(r.count for r in store.counts_sync(date.min, date.max)) == 3
    await store.close()


async def test_keys_are_bounded_by_configuration_not_by_requests(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteReceiptStore(tmp_path / "r.db")
    c = counter(store)
    with caplog.at_level(logging.WARNING, "consentmw.records"):
        for n in range(10_000):
            c.count("banner_shown", "1.07", f"x{n}")  # a language nobody configured
            c.count("banner_shown", f"v{n}", "nb")
            c.count(f"kind{n}", "1.07", "nb")
    assert c.refused == 30_000 and c.pending == 0 and await c.flush() == 0
    assert len([r for r in caplog.records if "refused to count" in r.getMessage()]) == 1
    await store.close()


async def test_counts_land_on_the_utc_day_they_happened(tmp_path: Path) -> None:
    store = SQLiteReceiptStore(tmp_path / "r.db")
    before = datetime(2026, 11, 19, 23, 59, 59, tzinfo=timezone.utc).timestamp()
    clock = [before]
    c = counter(store, clock=lambda: clock[0])
    c.count("banner_shown", "1.07", "nb")
    clock[0] = before + 1  # midnight UTC
    c.count("banner_shown", "1.07", "nb")
    c.count("banner_shown", "1.07", "nb")
    clock[0] = before - 3600  # a clock stepped back: the day follows it
    c.count("signal_refusal", "1.07", "nb")
    await c.flush()
    assert totals(store.counts_sync(D1, D2)) == {
        (D1, "banner_shown", "1.07", "nb"): 1,
        (D1, "signal_refusal", "1.07", "nb"): 1,
        (D2, "banner_shown", "1.07", "nb"): 2,
    }
    await store.close()


async def test_growing_past_max_keys_flushes_without_waiting(tmp_path: Path) -> None:
    store = SQLiteReceiptStore(tmp_path / "r.db")
    c = EventCounter(store, policy_versions=["1"], languages=["nb", "en", "de"],
                     interval=3600, max_keys=2)  # fmt: skip
    c.start()
    for lang in ("nb", "en", "de"):  # the third key passes the bound
        c.count("banner_shown", "1", lang)
    await wait_for(lambda: len(store.counts_sync(date.min, date.max)) == 3, 5)
    assert c.pending == 0
    await c.stop()
    await store.close()


async def test_count_from_threads_loses_nothing(tmp_path: Path) -> None:
    store = SQLiteReceiptStore(tmp_path / "r.db")
    c = counter(store, interval=0.01)
    c.start()

    def work() -> None:
        for _ in range(20_000):
            c.count("banner_shown", "1.07", "nb")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        await asyncio.sleep(0.005)  # flushes run meanwhile
    await c.stop()
    assert sum(r.count for r in store.counts_sync(date.min, date.max)) == 80_000
    await store.close()


async def test_lifespan_starts_the_flush_and_flushes_at_shutdown(
    backend: str, tmp_path: Path
) -> None:
    async with store_factory(backend, tmp_path) as make:
        store = make()
        c = counter(store, interval=3600)
        writer = ReceiptWriter(
            store, lambda lang: (f"sha256:{lang}", "{}"), policy_version="1.07", counter=c
        )
        sent: list[str] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        lifespan_send = writer.lifespan_send(send)
        await lifespan_send({"type": "lifespan.startup.complete"})
        assert c.running
        for _ in range(5):
            c.count("banner_shown", "1.07", "en")
        await lifespan_send({"type": "lifespan.shutdown.complete"})
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert not c.running and c.pending == 0
        reader = make()
        assert sum(r.count for r in reader.counts_sync(date.min, date.max)) == 5


def test_from_config_builds_a_counter_for_the_configured_version(tmp_path: Path) -> None:
    from consentmw.config import ConsentConfig

    config = ConsentConfig(
        secret_key="x" * 40, policy_version="2.0", records_url=f"sqlite:///{tmp_path}/r.db"
    )
    writer = ReceiptWriter.from_config(config, lambda lang: ("sha256:x", "{}"))
    assert writer.counter is not None
    assert writer.counter.policy_versions == {"2.0"}
    assert writer.counter.languages == {"nb", "en"}
    off = ConsentConfig(secret_key="x" * 40, records_url=None)
    assert ReceiptWriter.from_config(off, lambda lang: ("sha256:x", "{}")).counter is None
