"""Daily event counts kept beside the receipts: events with nothing to prove, only to report.

A page served with the banner, or a privacy signal (Sec-GPC/DNT) newly remembered as a
refusal, is not a decision the visitor made, so it gets no receipt; the site still has to
say how often it happened. The store keeps one row per UTC day, kind, policy version and
language, and adds to its count. The rows hold no personal data (no consent id, no IP),
so legal holds do not apply to them; they follow the receipts' retention all the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

__all__ = [
    "KINDS",
    "CountKey",
    "CountRow",
    "checked_rows",
    "merge_counts",
    "rows_of",
    "trim_oldest",
]

KINDS = frozenset({"banner_shown", "signal_refusal"})
"""What can be counted. A closed set: a new kind is added here (and, to show it in the
analytics report, to :data:`consentmw.analytics.consentcounts.KIND_FIGURE`)."""

#: ``(day, kind, policy_version, language)``: the counters table's primary key.
CountKey = tuple[date, str, str, str]


@dataclass(frozen=True, slots=True)
class CountRow:
    """How often ``kind`` happened on ``day`` (UTC) under one policy version and language."""

    day: date
    kind: str
    policy_version: str
    language: str
    count: int

    def __post_init__(self) -> None:
        if type(self.day) is not date:
            raise ValueError("CountRow.day must be a date (the UTC day), not a datetime")
        if self.kind not in KINDS:
            raise ValueError(f"CountRow.kind {self.kind!r} is not one of {sorted(KINDS)}")
        for name in ("policy_version", "language"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "\x00" in value:
                raise ValueError(f"CountRow.{name} must be a non-empty string without NUL")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"CountRow.count must be a non-negative int, got {self.count!r}")

    @property
    def key(self) -> CountKey:
        return (self.day, self.kind, self.policy_version, self.language)


def checked_rows(rows: Iterable[object]) -> list[CountRow]:
    """``rows`` as a list, refusing anything that is not a :class:`CountRow` (a caller bug)."""
    rows = list(rows)
    for row in rows:
        if not isinstance(row, CountRow):
            raise TypeError(f"add_counts() takes CountRow objects, not {type(row).__name__}")
    return rows  # type: ignore[return-value]


def merge_counts(into: dict[CountKey, int], rows: Iterable[CountRow]) -> dict[CountKey, int]:
    """Add ``rows`` to the counts in ``into`` (same key: counts summed); returns ``into``."""
    for row in rows:
        if row.count:
            into[row.key] = into.get(row.key, 0) + row.count
    return into


def rows_of(counts: dict[CountKey, int]) -> list[CountRow]:
    """The rows of a merged count dict, sorted by day, kind, version, language."""
    return [CountRow(*key, count=n) for key, n in sorted(counts.items()) if n]


def trim_oldest(counts: dict[CountKey, int], max_keys: int) -> int:
    """Drop the oldest keys until at most ``max_keys`` remain; return the events dropped.

    Keeps a retry buffer bounded while the store is failing for a long time: the newest
    days are the ones a report is most likely to be asked about.
    """
    excess = len(counts) - max_keys
    if excess <= 0:
        return 0
    dropped = 0
    for key in sorted(counts)[:excess]:
        dropped += counts.pop(key)
    return dropped
