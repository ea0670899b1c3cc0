"""``consentmw analytics report DIR [--since 30d | --from DATE --to DATE] [--json] [--html OUT]``
and ``consentmw analytics clickhouse ...`` (:mod:`.clickhouse.cli`).

Registering the command needs nothing beyond the standard library; running it needs the
query engine, and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any

from .periodargs import add_period_options, period_from_args

__all__ = ["register_cli"]

INSTALL_HINT = "consentmw: install the analytics extra: pip install 'consentmw[analytics]'"


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


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


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
