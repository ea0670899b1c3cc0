"""Legal holds on receipts: named, scoped and reviewed.

A hold names a case (litigation, a police request) and covers the receipts of some
consent ids, of a time range, or of those ids within that range. Held receipts are neither
purged nor forgotten. A hold has a review date; a passed review date only warns, because
releasing a hold is a legal decision: it ends only by ``consentmw records hold release``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

MAX_CASE_LENGTH = 200
MAX_HOLD_IDS = 10_000


@dataclass(frozen=True)
class Hold:
    """One legal hold. ``start`` is inclusive, ``end`` exclusive (UTC instants).

    With consent ids and a range, the hold covers those ids' receipts within the range;
    with only one of them, everything that one names.
    """

    case: str
    review: date
    consent_ids: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self) -> None:
        case = self.case
        if not isinstance(case, str) or not case.strip() or len(case) > MAX_CASE_LENGTH:
            raise ValueError(f"a hold's case must be 1-{MAX_CASE_LENGTH} characters")
        if any(ord(c) < 32 or c == "\x7f" for c in case):
            raise ValueError("a hold's case must not contain control characters")
        if not isinstance(self.review, date) or isinstance(self.review, datetime):
            raise ValueError("a hold's review must be a date (YYYY-MM-DD)")
        ids = tuple(dict.fromkeys(self.consent_ids))
        if len(ids) > MAX_HOLD_IDS:
            raise ValueError(f"a hold covers at most {MAX_HOLD_IDS} consent ids")
        if not all(isinstance(i, str) and i and "\x00" not in i for i in ids):
            raise ValueError("consent ids must be non-empty strings without NUL characters")
        for name in ("start", "end", "created_at"):
            moment = getattr(self, name)
            if moment is not None:
                if moment.tzinfo is None or moment.utcoffset() is None:
                    raise ValueError(f"a hold's {name} must be timezone-aware")
                object.__setattr__(self, name, moment.astimezone(timezone.utc))
        if not ids and self.start is None and self.end is None:
            raise ValueError(
                "a hold must cover consent ids, a time range, or both "
                "(--consent-id ID, --from DATE, --to DATE)"
            )
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("a hold's range ends before it starts (--from is after --to)")
        object.__setattr__(self, "case", case.strip())
        object.__setattr__(self, "consent_ids", ids)

    def covers(self, consent_id: str, recorded_at: datetime) -> bool:
        """Whether this hold keeps a receipt of ``consent_id`` recorded at ``recorded_at``."""
        if self.consent_ids and consent_id not in self.consent_ids:
            return False
        if self.start is not None and recorded_at < self.start:
            return False
        return self.end is None or recorded_at < self.end

    def review_passed(self, today: date | None = None) -> bool:
        return (today or datetime.now(timezone.utc).date()) > self.review

    def scope(self) -> str:
        """What the hold covers, in words (for the CLI and logs; ids counted, not listed)."""
        parts = []
        if self.consent_ids:
            parts.append(f"{len(self.consent_ids)} consent id(s)")
        if self.start is not None or self.end is not None:
            start = self.start.date().isoformat() if self.start else "the beginning"
            end = (self.end - timedelta(microseconds=1)).date().isoformat() if self.end else "now"
            parts.append(f"receipts from {start} to {end}")
        return " within ".join(parts)

    def review_warning(self) -> str:
        return (
            f"legal hold {self.case!r} was due for review on {self.review.isoformat()}; it "
            f"still holds: release it with `consentmw records hold release {self.case}` "
            "once the case allows"
        )


@dataclass(frozen=True)
class HeldBy:
    """How many of one visitor's receipts one hold keeps."""

    case: str
    review: date
    count: int


@dataclass(frozen=True)
class ForgetResult:
    """What an erasure request did: receipts deleted, and receipts kept under which holds.

    ``kept`` counts receipts (one receipt under two holds counts once); ``holds`` names
    each hold with how many of the visitor's receipts it covers. Tell the operator the
    cases (:meth:`operator_dict`); tell the visitor only that a legal hold keeps some
    receipts (:meth:`visitor_dict`): a case name can itself be confidential.
    """

    deleted: int
    kept: int = 0
    holds: tuple[HeldBy, ...] = ()

    def visitor_dict(self) -> dict[str, Any]:
        return {"deleted_receipts": self.deleted, "kept_under_legal_hold": self.kept}

    def operator_dict(self) -> dict[str, Any]:
        return {
            **self.visitor_dict(),
            "holds": [
                {"case": h.case, "review": h.review.isoformat(), "receipts": h.count}
                for h in self.holds
            ],
        }


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``: holds are given in whole UTC days."""
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{option} {text!r} must be a date like 2026-12-31") from None
