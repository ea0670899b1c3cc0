"""The fixed rotation schedule: which period (and so which file) a moment belongs to.

Files are named by their period in the configured time zone (``requests-2026-11-27.jsonl``
daily, ``requests-2026-11-27T13.jsonl`` hourly) so that every process picks the same file
for the same moment without coordinating, and nobody ever renames a file. Days are local
calendar days, so a DST day is 23 or 25 hours long; in the repeated hour of a DST fall-back
both real hours share one hourly file, which is still one file per name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["LOG_FILE_RE", "Schedule", "file_name", "load_timezone", "period_end"]

ROTATIONS = ("daily", "hourly")

#: requests-<YYYY-MM-DD>[T<HH>[-<MM>-<SS>]].jsonl[.gz]; the seconds form is for tests only.
LOG_FILE_RE = re.compile(
    r"^requests-(?P<key>(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:T(?P<hour>\d{2})(?:-(?P<minute>\d{2})-(?P<second>\d{2}))?)?)"
    r"\.jsonl(?P<gz>\.gz)?$"
)


def load_timezone(name: str, option: str = "timezone") -> ZoneInfo:
    """``ZoneInfo(name)`` or a ``ValueError`` naming the option."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{option} must be an IANA zone name such as 'UTC', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{option}={name!r} is not a known IANA time zone (e.g. 'UTC', 'Europe/Oslo')"
        ) from None


def file_name(key: str, compressed: bool = False) -> str:
    return f"requests-{key}.jsonl" + (".gz" if compressed else "")


@dataclass
class Schedule:
    """Maps a POSIX timestamp to its period key, caching the current period's bounds.

    ``rotation_seconds`` (tests only) cuts periods of that many seconds from the epoch.
    """

    rotation: str = "daily"
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    rotation_seconds: int | None = None
    _start: float = field(default=1.0, init=False, repr=False)
    _end: float = field(default=0.0, init=False, repr=False)
    _key: str = field(default="", init=False, repr=False)

    def key(self, ts: float) -> str:
        """The period key of ``ts`` (``2026-11-27``, ``2026-11-27T13``, ...)."""
        if self._start <= ts < self._end:
            return self._key
        start, end, key = self.bounds(ts)
        self._start, self._end, self._key = start, end, key
        return key

    def period(self, ts: float) -> tuple[float, float, str]:
        """``(start, end, key)`` of the period holding ``ts``, cached like :meth:`key`."""
        self.key(ts)
        return self._start, self._end, self._key

    def bounds(self, ts: float) -> tuple[float, float, str]:
        """``(start, end, key)`` of the period holding ``ts``; ``end`` is exclusive."""
        local = datetime.fromtimestamp(ts, self.tz)
        if self.rotation_seconds:
            n = self.rotation_seconds
            start = ts - (ts % n)
            begin = datetime.fromtimestamp(start, self.tz)
            return start, start + n, begin.strftime("%Y-%m-%dT%H-%M-%S")
        if self.rotation == "hourly":
            into = local.minute * 60 + local.second + local.microsecond / 1e6
            start = ts - into
            return start, start + 3600, local.strftime("%Y-%m-%dT%H")
        day = local.date()
        start = _local_midnight(day, self.tz)
        end = _local_midnight(day + timedelta(days=1), self.tz)
        return start, end, day.isoformat()


def _local_midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def period_end(key: str, tz: ZoneInfo, rotation_seconds: int | None = None) -> float | None:
    """When the period named ``key`` ended (the latest possible end), or ``None`` if bad.

    Used to decide whether a file may be compressed or purged, so it errs late: the
    repeated DST hour ends at its second occurrence, and a seconds-period of unknown
    length is taken to last a day.
    """
    match = LOG_FILE_RE.match(file_name(key))
    if match is None:
        return None
    try:
        day = date.fromisoformat(match["date"])
        if match["hour"] is None:
            return _local_midnight(day + timedelta(days=1), tz)
        hour = int(match["hour"])
        if match["minute"] is not None:
            start = datetime(
                day.year, day.month, day.day, hour, int(match["minute"]), int(match["second"])
            )
            length = rotation_seconds or 86400
            return start.replace(tzinfo=tz).timestamp() + length
        nxt = datetime(day.year, day.month, day.day, hour) + timedelta(hours=1)
        return nxt.replace(tzinfo=tz, fold=1).timestamp()
    except ValueError:
        return None


def utc_iso(ts: float) -> str:
    """``2026-11-27T13:05:10.123Z``: UTC, millisecond precision, ISO 8601."""
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
