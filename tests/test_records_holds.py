"""Legal holds in the receipt store, on every backend: scoped, reviewed, released by hand."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from consentmw import ConsentMiddleware
from consentmw.config import ConfigError
from consentmw.records import Hold, ReceiptStore
from tests.conftest import SECRET, site
from tests.records_support import MakeStore, receipt

OLD = datetime(2020, 3, 15, 12, 0, tzinfo=timezone.utc)
NEXT_YEAR = date.today() + timedelta(days=365)




def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


async def ids_of(store: ReceiptStore) -> list[str]:
    return [r.consent_id for r in store.export_sync()]


async def test_purge_keeps_receipts_a_hold_covers_by_id_and_by_range(store: ReceiptStore) -> None:
    for cid, at in [("alice", OLD), ("bob", OLD), ("carol", utc(2019, 6, 1)), ("dave", OLD)]:
        await store.add(receipt(cid, at=at))
    store.add_hold_sync(Hold(case="Case A", review=NEXT_YEAR, consent_ids=("alice",)))
    store.add_hold_sync(
        Hold(case="Case B", review=NEXT_YEAR, start=utc(2019, 6, 1), end=utc(2019, 6, 2))
    )
    # Both ids and a range: only those ids' receipts within the range.
    store.add_hold_sync(
        Hold(case="Case C", review=NEXT_YEAR, consent_ids=("dave",), start=utc(2021, 1, 1))
    )
    assert await store.purge(dry_run=True) == 2
    assert await store.purge() == 2
    assert sorted(await ids_of(store)) == ["alice", "carol"]
    assert [h.case for h in store.holds_sync()] == ["Case A", "Case B", "Case C"]


async def test_forget_keeps_held_receipts_and_says_under_which_case(store: ReceiptStore) -> None:
    await store.add(receipt("alice", at=OLD))
    await store.add(receipt("alice", at=utc(2021, 5, 1)))
    await store.add(receipt("alice"))
    store.add_hold_sync(
        Hold(case="Police 4711", review=NEXT_YEAR, start=utc(2020, 1, 1), end=utc(2021, 1, 1))
    )
    store.add_hold_sync(Hold(case="Suit 12", review=NEXT_YEAR, consent_ids=("alice", "zed"),
                             end=utc(2020, 6, 1)))  # fmt: skip
    result = await store.forget("alice")
    assert (result.deleted, result.kept) == (2, 1)  # one receipt under two holds counts once
    assert [(h.case, h.count, h.review) for h in result.holds] == [
        ("Police 4711", 1, NEXT_YEAR),
        ("Suit 12", 1, NEXT_YEAR),
    ]
    operator = result.operator_dict()
    assert [h["case"] for h in operator["holds"]] == ["Police 4711", "Suit 12"]
    visitor = result.visitor_dict()
    assert visitor == {"deleted_receipts": 2, "kept_under_legal_hold": 1}
    assert "Police" not in str(visitor) and "Suit" not in str(visitor)
    assert [r.recorded_at for r in await store.for_consent_id("alice")] == [OLD]
    # Released: an erasure request now deletes it.
    assert store.release_hold_sync("Police 4711") and store.release_hold_sync("Suit 12")
    assert not store.release_hold_sync("Suit 12")
    assert (await store.forget("alice")).deleted == 1
    assert store.forget_sync("alice").deleted == 0


async def test_passed_review_warns_and_never_releases(
    store: ReceiptStore, caplog: pytest.LogCaptureFixture
) -> None:
    await store.add(receipt("alice", at=OLD))
    hold = Hold(case="Old case", review=date(2026, 1, 1), consent_ids=("alice",),
                created_at=utc(2025, 1, 1))  # fmt: skip
    store.add_hold_sync(hold)
    with caplog.at_level(logging.WARNING, "consentmw.records"):
        assert await store.purge(now=utc(2027, 1, 1)) == 0
    assert "'Old case' was due for review on 2026-01-01" in caplog.text
    assert "hold release" in caplog.text
    assert len(await store.for_consent_id("alice")) == 1
    assert store.holds_sync() == [hold]


async def test_a_case_holds_once(store: ReceiptStore) -> None:
    store.add_hold_sync(Hold(case="A", review=NEXT_YEAR, consent_ids=("x",)))
    with pytest.raises(ValueError, match="exists already"):
        store.add_hold_sync(Hold(case="A", review=NEXT_YEAR, consent_ids=("y",)))
    assert [h.consent_ids for h in store.holds_sync()] == [("x",)]


async def test_forget_keeps_a_held_receipt_waiting_for_retry(
    backend: str, make_store: MakeStore
) -> None:
    from tests.records_support import hold_write_lock

    store = make_store(timeout=0.2, retry_interval=30)
    store.add_hold_sync(Hold(case="A", review=NEXT_YEAR, consent_ids=("alice",)))
    await store.add(receipt("bob"))
    with hold_write_lock(backend, store):
        await store.add(receipt("alice"))
        await store.add(receipt("bob"))
        assert store.failures == 2
    result = await store.forget("alice")  # before the retry (30 s) has written anything
    assert (result.deleted, result.kept) == (0, 1)
    assert (await store.forget("bob")).deleted == 2  # the stored one and the waiting one
    await store.close()
    reopened = make_store()
    assert len(await reopened.for_consent_id("alice")) == 1
    assert await reopened.for_consent_id("bob") == []


def test_hold_validation_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="consent ids, a time range, or both"):
        Hold(case="A", review=NEXT_YEAR)
    with pytest.raises(ValueError, match="ends before it starts"):
        Hold(case="A", review=NEXT_YEAR, start=utc(2021, 1, 1), end=utc(2020, 1, 1))
    with pytest.raises(ValueError, match="case"):
        Hold(case=" ", review=NEXT_YEAR, consent_ids=("x",))
    with pytest.raises(ValueError, match="control"):
        Hold(case="a\nb", review=NEXT_YEAR, consent_ids=("x",))
    with pytest.raises(ValueError, match="timezone-aware"):
        Hold(case="A", review=NEXT_YEAR, start=datetime(2020, 1, 1))
    with pytest.raises(ValueError, match="NUL"):
        Hold(case="A", review=NEXT_YEAR, consent_ids=("a\x00",))
    hold = Hold(case="A", review=NEXT_YEAR, consent_ids=("x", "x"), start=utc(2020, 1, 1))
    assert hold.consent_ids == ("x",)
    assert hold.covers("x", utc(2020, 1, 1)) and not hold.covers("x", utc(2019, 12, 31))
    assert not hold.covers("y", utc(2021, 1, 1))
    assert hold.review_passed(NEXT_YEAR + timedelta(days=1)) and not hold.review_passed()


def test_config_legal_hold_is_a_start_up_error_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="records hold add --case") as info:
        ConsentMiddleware(
            site(), secret_key=SECRET, records_url=f"sqlite:///{tmp_path}/r.db",
            legal_hold="litigation 2026-117",
        )  # fmt: skip
    assert "--review DATE" in str(info.value)
    assert not (tmp_path / "r.db").exists()
