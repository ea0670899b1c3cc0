"""Consent figures per day: how often the banner was shown and what visitors chose.

The report asks a :class:`ConsentCounts` provider. The default,
:class:`ReceiptConsentCounts`, reads the receipt store: the proof-of-consent receipts (one
per decision) and the daily counts of events that get no receipt (the banner shown, a
privacy signal remembered as a refusal). :class:`NoConsentCounts` is what a report
without a receipt store gets: zeros.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

__all__ = [
    "ConsentCounts",
    "ConsentDay",
    "ConsentFigures",
    "NoConsentCounts",
    "ReceiptConsentCounts",
]

#: Counted event kind (:data:`consentmw.records.counts.KINDS`) -> the figure it adds to.
KIND_FIGURE = {
    "banner_shown": "banner_shown",
    "signal_refusal": "signal_refusals",
}
#: Kinds that are decisions, so also counted per policy version and language.
DECISION_KINDS = frozenset({"signal_refusal"})

#: Receipt action -> the figure it counts towards.
ACTION_FIGURE = {
    "accept_all": "accepted",
    "reject_all": "rejected",
    "save": "custom",
    "signal": "signal_refusals",
    "withdraw": "withdrawn",
}


@dataclass
class ConsentDay:
    date: str
    banner_shown: int = 0
    accepted: int = 0
    rejected: int = 0
    custom: int = 0
    signal_refusals: int = 0
    withdrawn: int = 0


@dataclass
class ConsentFigures:
    days: list[ConsentDay]
    policy_versions: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    source: str = "none"
    #: The daily counts behind ``banner_shown`` and counted ``signal_refusals``, per day,
    #: kind, policy version and language.
    counts: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        keys = [k for k in asdict(ConsentDay("")) if k != "date"]
        return {k: sum(getattr(d, k) for d in self.days) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "totals": self.totals(),
            "days": [asdict(d) for d in self.days],
            "policy_versions": self.policy_versions,
            "languages": self.languages,
            "counts": self.counts,
        }


@runtime_checkable
class ConsentCounts(Protocol):
    """Consent figures for the days ``first``..``last`` (inclusive) in ``tz``."""

    def figures(self, first: date, last: date, tz: ZoneInfo) -> ConsentFigures: ...


def empty_days(first: date, last: date) -> list[ConsentDay]:
    return [ConsentDay((first + timedelta(n)).isoformat()) for n in range((last - first).days + 1)]


class NoConsentCounts:
    """No consent data: every figure is zero."""

    def figures(self, first: date, last: date, tz: ZoneInfo) -> ConsentFigures:
        return ConsentFigures(empty_days(first, last))


class ReceiptConsentCounts:
    """Consent figures from one :class:`~consentmw.records.ReceiptStore`.

    Decisions: the store's receipts, streamed once per report, counted per day and action;
    a decision's policy version and language are counted. ``banner_shown`` and the
    signal refusals remembered without a receipt come from the store's daily counts,
    which are kept per UTC day and shown on that date whatever the report's time zone.
    Receipts of action ``signal`` (written by versions that receipted signals) add to
    ``signal_refusals`` too: one event is either receipted or counted, never both.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def receipts(self) -> Iterable[Any]:
        return self.store.export_sync()

    def daily_counts(self, first: date, last: date) -> Iterable[Any]:
        return self.store.counts_sync(first, last)

    def figures(self, first: date, last: date, tz: ZoneInfo) -> ConsentFigures:
        days = empty_days(first, last)
        by_date = {d.date: d for d in days}
        versions: Counter[str] = Counter()
        languages: Counter[str] = Counter()
        for receipt in self.receipts():
            moment: datetime = receipt.recorded_at
            day = by_date.get(moment.astimezone(tz).date().isoformat())
            figure = ACTION_FIGURE.get(receipt.action)
            if day is None or figure is None:
                continue
            setattr(day, figure, getattr(day, figure) + 1)
            versions[receipt.policy_version] += 1
            languages[receipt.language] += 1
        counts = []
        for row in self.daily_counts(first, last):
            day = by_date.get(row.day.isoformat())
            figure = KIND_FIGURE.get(row.kind)
            if day is None or figure is None:
                continue
            setattr(day, figure, getattr(day, figure) + row.count)
            if row.kind in DECISION_KINDS:
                versions[row.policy_version] += row.count
                languages[row.language] += row.count
            counts.append(
                {"date": row.day.isoformat(), "kind": row.kind,
                 "policy_version": row.policy_version, "language": row.language,
                 "count": row.count}
            )  # fmt: skip
        return ConsentFigures(
            days,
            dict(versions.most_common()),
            dict(languages.most_common()),
            source="receipts",
            counts=counts,
        )
