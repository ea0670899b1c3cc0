"""The period and output options of a report, shared by ``analytics report`` (log
files) and ``analytics clickhouse report``."""

from __future__ import annotations

import argparse
import os
import re
from datetime import date, timedelta

__all__ = ["add_period_options", "period_from_args"]

_SINCE = re.compile(r"^(\d{1,4})d$")


def add_period_options(r: argparse.ArgumentParser) -> None:
    """The period, output and consent options of a report (files or ClickHouse)."""
    r.add_argument("--since", default=None, help="the last N days, e.g. 30d (default 30d)")
    r.add_argument("--from", dest="first", metavar="DATE", help="first day, YYYY-MM-DD")
    r.add_argument("--to", dest="last", metavar="DATE", help="last day, YYYY-MM-DD")
    r.add_argument("--timezone", default="UTC", help="days and hours in this zone (UTC)")
    r.add_argument("--top", type=int, default=10, help="rows per ranking (default 10)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--html", metavar="OUT", help="write a self-contained HTML page")
    r.add_argument(
        "--records-url",
        default=os.environ.get("CONSENTMW_RECORDS_URL"),
        help="receipt store for the consent figures (default $CONSENTMW_RECORDS_URL)",
    )


def period_from_args(args: argparse.Namespace, today: date) -> tuple[date, date]:
    if args.since and (args.first or args.last):
        raise ValueError("use either --since or --from/--to")
    if args.first or args.last:
        if not (args.first and args.last):
            raise ValueError("--from and --to go together")
        try:
            first, last = date.fromisoformat(args.first), date.fromisoformat(args.last)
        except ValueError:
            raise ValueError("--from and --to take dates as YYYY-MM-DD") from None
        if last < first:
            raise ValueError("--to is before --from")
        if (last - first).days > 3660:
            raise ValueError("the period is longer than ten years")
        return first, last
    m = _SINCE.match(args.since or "30d")
    if m is None or not 1 <= int(m[1]) <= 3660:
        raise ValueError(f"--since takes a number of days such as 30d, got {args.since!r}")
    return today - timedelta(days=int(m[1]) - 1), today
