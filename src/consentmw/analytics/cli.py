"""``consentmw analytics report DIR [--since 30d | --from DATE --to DATE] [--json] [--html OUT]``
and ``consentmw analytics clickhouse ...`` (:mod:`.clickhouse.cli`).

Registering the command needs nothing beyond the standard library; running it needs the
query engine, and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import date, datetime, timedelta
from typing import Any

__all__ = ["register_cli"]

INSTALL_HINT = "consentmw: install the analytics extra: pip install 'consentmw[analytics]'"
_SINCE = re.compile(r"^(\d{1,4})d$")


def register_cli(subparsers: Any) -> None:
    analytics = subparsers.add_parser(
        "analytics",
        help="cookie-free analytics reports",
        epilog="example:\n  consentmw analytics report /var/log/site --since 30d\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analytics.set_defaults(func=lambda args: _usage(analytics))
    sub = analytics.add_subparsers(dest="analytics_command", metavar="{report,clickhouse}")
    r = sub.add_parser(
        "report",
        help="page views, sources, audiences and consent for a period",
        epilog="examples:\n  consentmw analytics report /var/log/site --since 7d\n"
        "  consentmw analytics report /var/log/site --from 2026-11-01 --to 2026-11-30 "
        "--html nov.html\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("directory", help="request log directory (subdirectories: one per host)")
    add_period_options(r)
    r.add_argument(
        "--columnar",
        action="store_true",
        help="first write missing Parquet copies of closed periods (needs write access)",
    )
    r.set_defaults(func=cmd_report)
    from consentmw.analytics.clickhouse.cli import register_cli as register_clickhouse

    register_clickhouse(sub, add_period_options)


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


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


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


def cmd_report(args: argparse.Namespace) -> int:
    try:
        from zoneinfo import ZoneInfo

        from consentmw.requestlog.periods import load_timezone

        tz: ZoneInfo = load_timezone(args.timezone, "--timezone")
        first, last = period_from_args(args, datetime.now(tz).date())
        if not 1 <= args.top <= 1000:
            raise ValueError("--top must be 1..1000")
    except ValueError as exc:
        print(f"consentmw: {exc}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.directory):
        print(f"consentmw: {args.directory!r} is not a directory", file=sys.stderr)
        return 2
    try:
        from consentmw.analytics.columnar import sync
        from consentmw.analytics.render import render_html, render_table
        from consentmw.analytics.report import build_report
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 3
    consent = None
    store = None
    if args.records_url:
        from consentmw.analytics.consentcounts import ReceiptConsentCounts
        from consentmw.records import open_store

        store = open_store(args.records_url)  # a bad URL raises ValueError: exit 2
        consent = ReceiptConsentCounts(store)
    try:
        if args.columnar:
            sync(args.directory)
        data = build_report(
            args.directory, first, last, timezone=tz.key, top=args.top, consent=consent
        ).to_dict()
    finally:
        if store is not None:
            store.close_sync()
    if args.json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(render_table(data))
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as fh:
                fh.write(render_html(data))
        except OSError as exc:
            print(f"consentmw: cannot write {args.html}: {exc}", file=sys.stderr)
            return 1
        if not args.json:
            print(f"HTML report written to {args.html}")
    return 0
