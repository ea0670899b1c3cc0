"""RequestLogMiddleware end to end over ASGI: every field, the forbidden ones, bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from consentmw.requestlog import RECORD_FIELDS, RequestLogMiddleware
from tests.requestlog_helpers import (
    UA_CHROME,
    UA_IPHONE,
    Lifespan,
    State,
    call,
    read_records,
    run,
    text_app,
)

SECRET_HEADERS = [
    (b"cookie", b"consentmw=c0ffee-consent-id-123; access_token=tok-AAA; _ga=GA1.1.99"),
    (b"authorization", b"Bearer tok-BBB"),
    (b"x-api-token", b"tok-CCC"),
]


def make(tmp_path: Path, app: Any = text_app, **options: Any) -> RequestLogMiddleware:
    options.setdefault("flush_interval", 60)
    return RequestLogMiddleware(app, directory=str(tmp_path / "logs"), **options)


def all_disk_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


def test_every_record_field(tmp_path: Path) -> None:
    clock = [1_795_000_000.25]
    mw = make(tmp_path, clock=lambda: clock[0], trusted_proxies=["10.0.0.0/8"])
    run(
        mw,
        "/products/sms",
        method="POST",
        client=("10.0.0.5", 1234),
        query=b"token=tok-DDD&email=a%40b.no",
        headers=[
            (b"x-forwarded-for", b"203.0.113.77"),
            (b"user-agent", UA_IPHONE.encode()),
            (b"referer", b"https://www.google.no/search?q=secret+question"),
            (b"accept-language", b"nb-NO,nb;q=0.9,en;q=0.5"),
        ],
    )
    mw.close()
    [record] = read_records(tmp_path / "logs")
    assert tuple(record) == RECORD_FIELDS
    assert record["time"].endswith("Z") and record["time"].startswith("2026-")
    assert record["ip"] == "203.0.0.0"
    assert record["isp"] is None and record["asn"] is None
    assert record["method"] == "POST" and record["path"] == "/products/sms"
    assert record["status"] == 200 and record["bytes"] > 10
    assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
    assert (record["browser"], record["browser_version"]) == ("Mobile Safari", "17")
    assert (record["os"], record["os_version"], record["device"]) == ("iOS", "17", "mobile")
    assert record["referrer"] == "www.google.no"
    assert record["consent"] == "undecided" and record["language"] == "nb"


def test_forbidden_fields_never_reach_disk(tmp_path: Path) -> None:
    mw = make(tmp_path)
    for consent in ("granted", "denied"):

        async def with_consent(scope, receive, send, consent=consent):
            scope["consentmw"] = State(consent)
            await text_app(scope, receive, send)

        mw.app = with_consent
        run(
            mw,
            "/x",
            query=b"token=tok-DDD",
            headers=[
                *SECRET_HEADERS,
                (b"user-agent", UA_CHROME.encode()),
                (b"accept-language", b"en-GB,en;q=0.9,nb;q=0.5"),
            ],
        )
    mw.close()
    disk = all_disk_bytes(tmp_path / "logs")
    for secret in (
        b"198.51.100.23",
        b"tok-",
        b"c0ffee",
        b"GA1.1",
        b"Bearer",
        b"Mozilla",
        b"AppleWebKit",
        b"token",
        b"cookie",
        b"authorization",
    ):
        assert secret not in disk, secret
    records = read_records(tmp_path / "logs")
    assert [r["consent"] for r in records] == ["granted", "denied"]
    assert {r["language"] for r in records} == {"en"}
    assert {r["ip"] for r in records} == {"198.51.0.0"}


def test_consent_state_set_by_inner_middleware_after_start(tmp_path: Path) -> None:
    """ConsentMiddleware inside ours sets scope["consentmw"] late; we read it at the end."""

    async def inner(scope, receive, send):
        async def set_state_then_send(message):
            if message["type"] == "http.response.start":
                scope["consentmw"] = State("granted")
            await send(message)

        await text_app(scope, receive, set_state_then_send)

    mw = make(tmp_path, inner)
    run(mw)
    mw.close()
    assert read_records(tmp_path / "logs")[0]["consent"] == "granted"


def test_consent_state_from_outer_middleware(tmp_path: Path) -> None:
    mw = make(tmp_path)

    async def outer(scope, receive, send):
        scope["consentmw"] = State("denied")
        await mw(scope, receive, send)

    run(outer)
    mw.close()
    assert read_records(tmp_path / "logs")[0]["consent"] == "denied"


def test_mask_client_in_scope(tmp_path: Path) -> None:
    mw = make(tmp_path, trusted_proxies=["127.0.0.1"], mask_client_in_scope=True)
    result = run(
        mw,
        client=("127.0.0.1", 5),
        headers=[(b"x-forwarded-for", b"2001:db8:1:2::9"), (b"forwarded", b"for=1.2.3.4")],
    )
    mw.close()
    body = json.loads(b"".join(m.get("body", b"") for m in result["sent"]))
    assert body == {"client": ["2001:db8:1::", 0], "headers": 0}
    assert result["scope"]["client"] == ("2001:db8:1::", 0)


def test_bad_input(tmp_path: Path) -> None:
    mw = make(tmp_path, trusted_proxies=["10.0.0.0/8"])
    run(
        mw,
        "/\udcff",
        raw_path=b"/caf\xc3\xa9/\xff\xfe%ZZ%e2%82%ac?q=1",
        headers=[(b"user-agent", b"A" * 10_000 + b" Chrome/1")],
    )
    run(mw, client=("10.0.0.1", 1), headers=[(b"x-forwarded-for", b"evil, unknown, 10.0.0.2")])
    run(mw, client=("198.51.100.23", 1), headers=[(b"x-forwarded-for", b"1.1.1.1")])
    run(mw, client=None, method="BREW\x00!", headers=[(b"referer", b"\xff\xfe://[::")])
    run(mw, "/" + "a" * 5000)
    mw.close()
    first, chain, forged, anon, long_path = read_records(tmp_path / "logs")
    assert first["path"] == "/café/\ufffd\ufffd%ZZ€"
    assert first["browser"] == "Other" and first["device"] == "other"
    assert chain["ip"] == "0.0.0.0"  # unusable hop where the client should be
    assert forged["ip"] == "198.51.0.0"  # untrusted peer's XFF ignored
    assert anon["ip"] == "0.0.0.0" and anon["method"] == "OTHER" and anon["referrer"] is None
    assert long_path["path"] == "/"  # a segment cut for length is dropped whole
    assert b"A" * 100 not in all_disk_bytes(tmp_path / "logs")


def test_app_exception_is_logged_as_500_and_reraised(tmp_path: Path) -> None:
    async def boom(scope, receive, send):
        raise RuntimeError("boom")

    mw = make(tmp_path, boom)
    with pytest.raises(RuntimeError):
        run(mw)
    mw.close()
    assert read_records(tmp_path / "logs")[0]["status"] == 500


def test_lifespan_starts_and_flushes(tmp_path: Path, caplog) -> None:
    mw = make(tmp_path)

    async def scenario() -> None:
        life = Lifespan(mw)
        await life.startup()
        assert mw.log.writer.running and life.sent == ["lifespan.startup.complete"]
        await call(mw)
        assert mw.stats()["queued"] == 1  # flush_interval is 60 s: still in the queue
        await life.shutdown()
        assert life.sent[-1] == "lifespan.shutdown.complete"

    with caplog.at_level(logging.INFO, logger="consentmw.requestlog"):
        asyncio.run(scenario())
    assert len(read_records(tmp_path / "logs")) == 1
    assert not mw.log.writer.running
    assert "1 record(s) written, none dropped" in caplog.text


def test_lazy_start_without_lifespan(tmp_path: Path) -> None:
    mw = make(tmp_path, flush_interval=0.01)
    assert not mw.log.writer.running
    run(mw)
    assert mw.log.writer.running
    mw.close()
    mw.close()  # idempotent
    assert mw.stats()["written"] == 1


def test_full_queue_drops_and_counts(tmp_path: Path, caplog) -> None:
    mw = make(tmp_path, queue_size=3)
    run(mw)  # starts the writer, which empties the queue
    mw.log.writer.flush()
    with mw.log.writer._lock:  # the writer is stuck (slow disk): the queue fills up
        for _ in range(10):
            run(mw)
    assert mw.dropped == 7 and mw.stats()["dropped"] == 7
    with caplog.at_level(logging.WARNING, logger="consentmw.requestlog"):
        mw.close()
    assert "7 record(s) dropped" in caplog.text
    assert len(read_records(tmp_path / "logs")) == 4


def test_missing_directory_is_created(tmp_path: Path) -> None:
    mw = RequestLogMiddleware(text_app, directory=str(tmp_path / "a" / "b" / "c"))
    run(mw)
    mw.close()
    assert len(read_records(tmp_path / "a" / "b" / "c")) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_nonroot(tmp_path: Path, caplog) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs").chmod(0o500)
    _assert_unwritable_reported_once(make(tmp_path), caplog)


def test_unwritable_directory_reported_once(tmp_path: Path, caplog) -> None:
    (tmp_path / "logs").write_text("a file where the directory should be")
    _assert_unwritable_reported_once(make(tmp_path, flush_interval=0.01), caplog)


def _assert_unwritable_reported_once(mw: RequestLogMiddleware, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="consentmw.requestlog"):
        for _ in range(5):
            result = run(mw)
            assert result["sent"][0]["status"] == 200  # the app keeps serving
            mw.log.writer.flush()
        mw.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot write" in errors[0].getMessage()
    assert mw.stats()["lost"] == 5


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("rotation", "weekly"),
        ("timezone", "Mars/Olympus"),
        ("retention_months", 200),
        ("trusted_proxies", ["not-a-proxy"]),
        ("ipv4_prefix", 40),
        ("ipv6_prefix", "48"),
        ("queue_size", 0),
        ("mask_client_in_scope", "yes"),
        ("legal_hold", 3),
        ("asn_database", "/nonexistent/GeoLite2-ASN.mmdb"),
        ("ua_backend", "regex"),
        ("rotation_seconds", -1),
        ("flush_interval", 0),
    ],
)
def test_bad_config_names_the_option(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        make(tmp_path, **{option: value})


def test_websocket_passes_through_with_masked_client(tmp_path: Path) -> None:
    seen = {}

    async def ws_app(scope, receive, send):
        seen.update(scope)

    mw2 = make(tmp_path, ws_app, mask_client_in_scope=True)
    asyncio.run(
        mw2({"type": "websocket", "client": ("198.51.100.23", 9), "headers": []}, None, None)
    )
    mw2.close()
    assert seen["client"] == ("198.51.0.0", 0)
    assert read_records(tmp_path / "logs") == []
