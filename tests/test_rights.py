"""Receipts written by the middleware, and the visitor's access and deletion routes."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from .conftest import make_app

UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def records_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/receipts.db"
    url = os.environ.get("CONSENTMW_TEST_PG")
    if not url:
        pytest.skip("CONSENTMW_TEST_PG is not set (scripts/test starts PostgreSQL)")
    return url


def client(app, ip: str = "203.0.113.77") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(
        transport=transport, base_url="http://www.example.no", headers={"User-Agent": UA}
    )


async def test_each_decision_leaves_a_receipt(records_url: str) -> None:
    app = make_app(records_url=records_url)
    async with client(app) as c:
        await c.post("/_consent", data={"action": "accept_all", "lang": "en"})
        await c.post("/_consent", data={"action": "reject_all", "source": "preferences"})
        await c.post("/_consent", json={"categories": ["analytics"]})
        me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
    receipts = me["receipts"]
    assert [r["action"] for r in receipts] == ["accept_all", "withdraw", "change"]
    assert [r["source"] for r in receipts] == ["banner", "preferences", "api"]
    first = receipts[0]
    assert first["consent_id"] == me["consent_id"]
    assert first["granted"] == ["analytics"] and first["denied"] == []
    assert receipts[1]["denied"] == ["analytics"]
    assert first["masked_ip"] == "203.0.0.0"  # /16 by default, never the full address
    assert first["browser"] == "Chrome"
    assert first["language"] == "en"
    assert first["banner_hash"].startswith("sha256:")
    assert first["policy_version"] == "1"
    assert "203.0.113.77" not in str(me)
    assert me["state"]["categories"]["analytics"] is True
    await app.receipts.store.forget(me["consent_id"])  # keep a shared database clean


async def test_me_page_in_both_languages(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client(app) as c:
        await c.post("/_consent", data={"action": "accept_all"})
        nb = (await c.get("/_consent/me", headers={"Accept-Language": "nb"})).text
        en = (await c.get("/_consent/me", headers={"Accept-Language": "en"})).text
    assert "Det vi har lagret om valgene dine" in nb and "Godtok alle" in nb
    assert "What we hold about your choices" in en and "203.0.0.0" in en
    assert "Datatilsynet" in nb and "Datatilsynet" in en


async def test_forget_deletes_receipts_and_cookies(records_url: str) -> None:
    app = make_app(records_url=records_url)
    async with client(app) as c:
        await c.post("/_consent", data={"action": "accept_all"})
        consent_id = app.codec.verify(c.cookies["consentmw"])[0].consent_id
        response = await c.post(
            "/_consent/forget", headers={"Cookie": f"consentmw={c.cookies['consentmw']}; _ga=1"}
        )
        assert response.status_code == 200
        cookies = response.headers.get_list("set-cookie")
        assert any(v.startswith("consentmw=;") and "Max-Age=0" in v for v in cookies)
        assert any(v.startswith("_ga=;") for v in cookies)
        assert "samtykke-id" in response.text  # what the request log holds, said truthfully
    assert await app.receipts.store.for_consent_id(consent_id) == []


async def test_forget_is_same_origin_only(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client(app) as c:
        await c.post("/_consent", data={"action": "accept_all"})
        response = await c.post("/_consent/forget", headers={"Origin": "https://evil.example"})
        assert response.status_code == 403
        me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
        assert len(me["receipts"]) == 1


async def test_forged_cookie_reads_nobody_s_receipts(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client(app) as c:
        await c.post("/_consent", data={"action": "accept_all"})
        value = c.cookies["consentmw"]
    forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    async with client(app) as other:
        me = await other.get(
            "/_consent/me", headers={"Accept": "application/json", "Cookie": f"consentmw={forged}"}
        )
        assert me.json()["receipts"] == [] and me.json()["consent_id"] is None


async def test_privacy_signal_is_persisted_once_without_a_receipt(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client(app) as c:
        first = await c.get("/", headers={"Sec-GPC": "1", "Sec-Fetch-Dest": "document"})
        assert "consentmw=" in first.headers.get("set-cookie", "")
        for _ in range(3):
            again = await c.get("/", headers={"Sec-GPC": "1", "Sec-Fetch-Dest": "document"})
            assert "set-cookie" not in again.headers  # the cookie holds the refusal now
        me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
    assert me["receipts"] == []  # a signal is no consent to prove
    assert me["state"]["signal"] == "gpc" and me["consent_id"]


async def test_broken_store_still_records_the_decision(tmp_path: Path) -> None:
    broken = tmp_path / "receipts.db"
    broken.write_bytes(b"this is not a database" * 100)
    app = make_app(records_url=f"sqlite:///{broken}")
    async with client(app) as c:
        response = await c.post("/_consent", data={"action": "reject_all"})
        assert response.status_code == 303
        assert (await c.get("/_consent")).json()["decided"] is True
        me = await c.get("/_consent/me", headers={"Accept": "application/json"})
        assert me.status_code == 503
        assert "unavailable" in me.text
    assert broken.read_bytes() == b"this is not a database" * 100  # nothing overwritten


async def test_receipts_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    make_app(records_url=None)
    assert "cannot prove" in caplog.text


async def test_pages_link_to_what_is_held(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client(app) as c:
        html = (await c.get("/_consent/preferences?lang=en")).text
        assert 'href="/_consent/me?lang=en"' in html
        assert "See what we hold about your choices" in html


async def test_me_lists_a_receipt_still_waiting_for_the_store(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "r.db"
    app = make_app(records_url=f"sqlite:///{db}")
    app.receipts.store.busy_timeout = 0.1  # type: ignore[union-attr]
    app.receipts.store.retry_interval = 30  # type: ignore[union-attr]
    async with client(app) as c:
        await c.post("/_consent", data={"action": "reject_all"})
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # a backup or migration holding the write lock
        try:
            await c.post("/_consent", data={"action": "accept_all"})
            me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
    assert [(r["action"], r["pending"]) for r in me["receipts"]] == [
        ("reject_all", False),
        ("accept_all", True),
    ]
