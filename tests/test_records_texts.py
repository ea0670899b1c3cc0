"""Shown texts: hashed over everything read, stored once beside the receipts, changes warned."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from consentmw.banner import Banner
from consentmw.config import ConsentConfig
from consentmw.consent import ConsentState
from consentmw.receipts import ReceiptWriter
from consentmw.records import ReceiptStore, SQLiteReceiptStore
from consentmw.records.texts import changed_keys
from consentmw.registry import DEFAULT_COOKIES, CookieSpec
from tests.conftest import SECRET
from tests.records_support import MakeStore

SCOPE = {"type": "http", "client": ("203.0.113.9", 5000), "headers": []}
HEADERS = {b"user-agent": b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"}




def banner(**options: object) -> Banner:
    return Banner(ConsentConfig(secret_key=SECRET, **options))  # type: ignore[arg-type]


def writer(store: ReceiptStore, b: Banner) -> ReceiptWriter:
    return ReceiptWriter(store, b.shown_texts, policy_version=b.config.policy_version)


def decided(consent_id: str = "c-1", version: str = "1") -> ConsentState:
    return ConsentState(
        granted=frozenset({"analytics"}), decided=True, consent_id=consent_id,
        policy_version=version,
    )  # fmt: skip


def test_hash_covers_everything_the_visitor_reads() -> None:
    base = banner().shown_texts("en")
    ga = next(s for s in DEFAULT_COOKIES if s.name == "_ga")
    longer = replace(ga, lifetime={"nb": "3 år", "en": "3 years"})
    variants = {
        "controller": banner(controller="Other AS"),
        "privacy_policy_url": banner(privacy_policy_url="https://example.no/personvern"),
        "texts": banner(texts={"en": {"intro": "Changed."}}),
        "cookie lifetime": banner(cookies=[longer if s is ga else s for s in DEFAULT_COOKIES]),
        "cookie provider": banner(cookies=[replace(s, provider="X") for s in DEFAULT_COOKIES]),
        "extra cookie": banner(
            extra_cookies=[CookieSpec("sid", category="necessary", purpose={"nb": "x", "en": "x"})]
        ),
    }
    for what, other in variants.items():
        assert other.shown_texts("en")[0] != base[0], what
    text_hash, material = base
    data = json.loads(material)
    assert data["controller"] is None  # no default controller: the site names itself
    assert {"name", "provider", "purpose", "lifetime", "third_party"} <= set(data["cookies"][0])
    assert banner().text_hash("en") == text_hash and text_hash.startswith("sha256:")
    assert banner().shown_texts("nb")[0] != text_hash


async def test_texts_stored_once_and_append_only(backend: str, make_store: MakeStore) -> None:
    store = make_store()
    await store.add_texts("sha256:aa", "en", "1", '{"a":1}')
    await store.add_texts("sha256:aa", "en", "1", '{"a":1}')  # idempotent
    store.add_texts_sync("sha256:bb", "nb", "1", '{"a":2}')
    first = store.texts_sync("sha256:aa")
    assert first is not None and first.data() == {"a": 1} and first.language == "en"
    assert store.texts_sync("sha256:none") is None
    assert [t.hash for t in await store.texts_for_version("1", "en")] == ["sha256:aa"]
    if backend == "sqlite":
        assert isinstance(store, SQLiteReceiptStore)
        with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.DatabaseError):
            conn.execute("UPDATE texts SET material = '{}'")
    else:
        import psycopg

        with psycopg.connect(store.url) as conn, pytest.raises(psycopg.Error, match="append"):  # type: ignore[attr-defined]
            conn.execute("UPDATE consentmw_texts SET material = '{}'")


async def test_writer_stores_the_texts_of_each_receipt_once(make_store: MakeStore) -> None:
    calls: list[str] = []
    store = make_store()
    original = store.add_texts

    async def counting(text_hash: str, *args: str) -> None:
        calls.append(text_hash)
        await original(text_hash, *args)

    store.add_texts = counting  # type: ignore[method-assign]
    b = banner()
    w = writer(store, b)
    await asyncio.gather(*(
        w.record(SCOPE, HEADERS, "en", None, decided(f"v{i}"), "accept_all", "banner")
        for i in range(20)
    ))  # fmt: skip
    await w.record(SCOPE, HEADERS, "nb", None, decided("v0"), "accept_all", "banner")
    assert calls == [b.text_hash("en"), b.text_hash("nb")]
    (r,) = await store.for_consent_id("v3")
    stored = store.texts_sync(r.banner_hash)
    assert stored is not None and stored.material == b.shown_texts("en")[1]
    assert (r.masked_ip, r.browser, r.language) == ("203.0.0.0", "Firefox", "en")


async def test_changed_texts_under_the_same_version_warn_with_what_changed(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store()
    await writer(store, banner()).startup()
    changed = banner(controller="Other AS", texts={"en": {"intro": "New."}})
    with caplog.at_level(logging.WARNING, "consentmw.records"):
        await writer(store, changed).startup()
    assert "changed under the same policy_version '1'" in caplog.text
    assert "'en' changed under" in caplog.text and "controller, texts.intro" in caplog.text
    assert "'nb' changed under" in caplog.text and "(changed: controller;" in caplog.text
    assert "unless policy_version is bumped" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "consentmw.records"):
        await writer(store, changed).startup()  # stored now: said once
        await writer(store, banner(policy_version="2", controller="X")).startup()
    assert "changed under" not in caplog.text


def test_changed_keys_names_items_not_lists() -> None:
    old = {"cookies": [{"name": "_ga", "lifetime": "2y"}, {"name": "io", "lifetime": "s"}],
           "texts": {"a": "1", "b": "2"}, "controller": "X"}  # fmt: skip
    new = {"cookies": [{"name": "io", "lifetime": "s"}, {"name": "_ga", "lifetime": "3y"}],
           "texts": {"a": "1", "c": "3"}, "controller": "X"}  # fmt: skip
    assert changed_keys(old, new) == ["cookies._ga.lifetime", "texts.b", "texts.c"]
    assert changed_keys(old, old) == []


async def test_lifespan_start_stores_texts_and_warns_of_a_silent_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import make_app

    url = f"sqlite:///{tmp_path}/r.db"

    async def run_lifespan(app: object, texts: int) -> None:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[str] = []
        for message in ("lifespan.startup", "lifespan.shutdown"):
            await inbox.put({"type": message})

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])
            if message["type"] == "lifespan.startup.complete":
                for _ in range(200):  # the check runs beside start-up, not before it
                    if len(await store_texts()) == texts:
                        break
                    await asyncio.sleep(0.01)

        await app({"type": "lifespan"}, inbox.get, send)  # type: ignore[operator]
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

    async def store_texts() -> list[str]:
        store = SQLiteReceiptStore(tmp_path / "r.db")
        rows = await store.texts_for_version("1", "en") + await store.texts_for_version("1", "nb")
        return [t.hash for t in rows]

    await run_lifespan(make_app(records_url=url), 2)
    assert len(await store_texts()) == 2
    with caplog.at_level(logging.WARNING, "consentmw.records"):
        await run_lifespan(make_app(records_url=url, controller="Other AS"), 4)
    assert len(await store_texts()) == 4
    assert "changed under the same policy_version '1' (changed: controller;" in caplog.text
