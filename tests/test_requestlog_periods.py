"""The fixed schedule: period keys at midnight, hourly, DST in Europe/Oslo, late records."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from consentmw.requestlog.encoder import make_encoder
from consentmw.requestlog.files import PeriodFiles
from consentmw.requestlog.periods import Schedule, period_end, utc_iso
from consentmw.requestlog.record import PendingRecord
from consentmw.requestlog.useragent import UAParser
from consentmw.requestlog.writer import LogWriter

UTC = ZoneInfo("UTC")
OSLO = ZoneInfo("Europe/Oslo")


def ts(*args: int, tz: ZoneInfo = UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def test_daily_utc_midnight_boundary() -> None:
    s = Schedule("daily", UTC)
    assert s.key(ts(2026, 11, 27, 23, 59, 59) + 0.999) == "2026-11-27"
    assert s.key(ts(2026, 11, 28, 0, 0, 0)) == "2026-11-28"
    assert s.key(ts(2026, 11, 27, 12)) == "2026-11-27"  # cache does not stick across periods
    assert period_end("2026-11-27", UTC) == ts(2026, 11, 28)


def test_hourly_and_seconds() -> None:
    s = Schedule("hourly", UTC)
    assert s.key(ts(2026, 11, 27, 13, 59, 59)) == "2026-11-27T13"
    assert s.key(ts(2026, 11, 27, 14)) == "2026-11-27T14"
    assert period_end("2026-11-27T13", UTC) == ts(2026, 11, 27, 14)
    s = Schedule("daily", UTC, rotation_seconds=5)
    assert s.key(ts(2026, 11, 27, 13, 0, 9)) == "2026-11-27T13-00-05"
    assert period_end("2026-11-27T13-00-05", UTC, 5) == ts(2026, 11, 27, 13, 0, 10)


def test_daily_in_oslo_follows_local_midnight_and_dst() -> None:
    s = Schedule("daily", OSLO)
    # 23:30 UTC on 27 Nov is 00:30 on 28 Nov in Oslo (CET, UTC+1).
    assert s.key(ts(2026, 11, 27, 23, 30)) == "2026-11-28"
    assert s.key(ts(2026, 11, 27, 22, 59, 59)) == "2026-11-27"
    # 25 October 2026: clocks go back, the day lasts 25 hours; 29 March lasts 23.
    start, end, key = s.bounds(ts(2026, 10, 25, 12, tz=OSLO))
    assert key == "2026-10-25" and end - start == 25 * 3600
    start, end, key = s.bounds(ts(2026, 3, 29, 12, tz=OSLO))
    assert key == "2026-03-29" and end - start == 23 * 3600
    assert period_end("2026-03-29", OSLO) == ts(2026, 3, 29, 22)  # midnight CEST in UTC


def test_hourly_in_oslo_across_dst_change() -> None:
    s = Schedule("hourly", OSLO)
    # Fall back: 02:00-03:00 local happens twice (00:00-02:00 UTC); both share one file.
    first = s.key(ts(2026, 10, 25, 0, 30))
    second = s.key(ts(2026, 10, 25, 1, 30))
    assert first == second == "2026-10-25T02"
    assert period_end("2026-10-25T02", OSLO) == ts(2026, 10, 25, 2)  # the later end
    # Spring forward: 02:00 local does not exist; 01:59 CET is followed by 03:00 CEST.
    assert s.key(ts(2026, 3, 29, 0, 59)) == "2026-03-29T01"
    assert s.key(ts(2026, 3, 29, 1, 0)) == "2026-03-29T03"


def test_utc_iso() -> None:
    assert utc_iso(ts(2026, 11, 27, 13, 5, 10) + 0.1234) == "2026-11-27T13:05:10.123Z"


def pending(t: float, path: str = "/") -> PendingRecord:
    return PendingRecord(
        t,
        "203.0.0.0",
        None,
        None,
        "GET",
        path.encode(),
        200,
        1,
        1.0,
        None,
        None,
        "undecided",
        None,
    )


def test_record_just_after_period_end_goes_to_its_own_period(tmp_path) -> None:
    """The writer files by the record's time, not by when it gets written."""
    parse = UAParser()
    writer = LogWriter(
        PeriodFiles(tmp_path),
        Schedule("daily", UTC),
        encode=make_encoder(parse),
        flush_interval=60,
    )
    late = ts(2026, 11, 27, 23, 59, 59) + 0.9  # enqueued before midnight ...
    writer.put(pending(late, "/late"))
    writer.put(pending(ts(2026, 11, 28, 0, 0, 0) + 0.1, "/early"))
    writer.close()  # ... written after it
    old = (tmp_path / "requests-2026-11-27.jsonl").read_text().splitlines()
    new = (tmp_path / "requests-2026-11-28.jsonl").read_text().splitlines()
    assert [json.loads(x)["path"] for x in old] == ["/late"]
    assert [json.loads(x)["path"] for x in new] == ["/early"]
    assert json.loads(old[0])["time"] == "2026-11-27T23:59:59.900Z"
    assert datetime.fromisoformat(json.loads(new[0])["time"].replace("Z", "+00:00")).tzinfo == (
        timezone.utc
    )
