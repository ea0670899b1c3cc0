"""Retention periods and legal holds, shared by the request log and the receipt store.

The policy keeps traffic data 18 months by default; each customer may choose 3 to 120
months. Data under a legal hold (suspected crime, litigation) must not be deleted, so
every purge asks :func:`legal_hold_reason` first.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime
from pathlib import Path

DEFAULT_RETENTION_MONTHS = 18
MIN_RETENTION_MONTHS = 3
MAX_RETENTION_MONTHS = 120
LEGAL_HOLD_FILE = "LEGAL_HOLD"


def validate_retention_months(value: object, option: str = "retention_months") -> int:
    """Return ``value`` as an int in 3..120 or raise ``ValueError`` naming the option."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"{option} must be a whole number of months from {MIN_RETENTION_MONTHS} to "
            f"{MAX_RETENTION_MONTHS}, got {value!r}"
        )
    if not MIN_RETENTION_MONTHS <= value <= MAX_RETENTION_MONTHS:
        raise ValueError(
            f"{option}={value} is outside the allowed "
            f"{MIN_RETENTION_MONTHS}..{MAX_RETENTION_MONTHS} months "
            f"(the privacy policy's default is {DEFAULT_RETENTION_MONTHS})"
        )
    return value


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` minus whole calendar months, clamping the day (31 March - 1 = 28/29 Feb)."""
    total = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def legal_hold_reason(directory: str | Path | None, flag: bool | str = False) -> str | None:
    """Why deletion is suspended, or ``None`` when purging may go ahead.

    A hold comes from the configuration (``flag``: ``True`` or a reason string) or from a
    ``LEGAL_HOLD`` file in ``directory`` whose text is the reason. An unreadable hold file
    still counts as a hold: when in doubt, keep the data.
    """
    if flag:
        return flag if isinstance(flag, str) else "legal hold set in configuration"
    if directory is None:
        return None
    path = Path(directory) / LEGAL_HOLD_FILE
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or f"legal hold file {path} (no reason given)"


_REVIEW = re.compile(r"^\s*review\s*:\s*(\d{4}-\d{2}-\d{2})\s*$", re.I | re.M)


def legal_hold_review(directory: str | Path | None) -> date | None:
    """The review date a ``LEGAL_HOLD`` file names on a line ``review: YYYY-MM-DD``, if any.

    A review date is a reminder for people: once it has passed, every purge warns, but the
    hold stays until the file is removed. Nothing releases a hold by itself.
    """
    if directory is None:
        return None
    try:
        text = (Path(directory) / LEGAL_HOLD_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = _REVIEW.search(text)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None
