"""``consentmw logs purge`` and ``consentmw logs stats``.

The main ``consentmw`` CLI calls :func:`register_cli`; ``python -m
consentmw.requestlog.cli logs ...`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from consentmw.requestlog.maintenance import purge
from consentmw.requestlog.periods import load_timezone
from consentmw.requestlog.stats import collect_stats, render_html, render_table
from consentmw.retention import DEFAULT_RETENTION_MONTHS, validate_retention_months

__all__ = ["main", "register_cli"]

DIR_ENV = "CONSENTMW_LOG_DIR"


def register_cli(subparsers: Any) -> None:
    """Add the ``logs`` command (``purge``, ``stats``) to an argparse subparsers object."""
    logs = subparsers.add_parser("logs", help="request-log housekeeping and statistics")
    logs.set_defaults(func=lambda args: _usage(logs))
    sub = logs.add_subparsers(dest="logs_command", metavar="{purge,stats}")

    p = sub.add_parser("purge", help="delete log files older than the retention")
    p.add_argument(
        "--directory",
        default=os.environ.get(DIR_ENV, "logs"),
        help=f"log directory (default: ${DIR_ENV} or ./logs)",
    )
    p.add_argument(
        "--retention-months",
        type=int,
        default=DEFAULT_RETENTION_MONTHS,
        help=f"keep this many months, 3..120 (default {DEFAULT_RETENTION_MONTHS})",
    )
    p.add_argument("--timezone", default="UTC", help="the zone the files are named in")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.add_argument(
        "--legal-hold",
        metavar="REASON",
        default=None,
        help="suspend deletion with this reason (or put it in a LEGAL_HOLD file)",
    )
    p.set_defaults(func=cmd_purge)

    s = sub.add_parser("stats", help="requests per day, top pages, browser and OS shares")
    s.add_argument("directory", help="log directory")
    s.add_argument("--html", metavar="OUT", help="also write a self-contained HTML report")
    s.add_argument("--top", type=int, default=10, help="rows per ranking (default 10)")
    s.set_defaults(func=cmd_stats)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_purge(args: argparse.Namespace) -> int:
    try:
        months = validate_retention_months(args.retention_months, "--retention-months")
        tz = load_timezone(args.timezone, "--timezone")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.directory):
        print(f"error: {args.directory!r} is not a directory", file=sys.stderr)
        return 2
    result = purge(
        args.directory,
        months,
        tz=tz,
        legal_hold=args.legal_hold or False,
        dry_run=args.dry_run,
        log_hold=False,
    )
    if result.held is not None:
        print(
            f"deletion suspended by legal hold ({result.held}): "
            f"{len(result.expired)} file(s) past the {months}-month retention kept"
        )
        return 0
    if args.dry_run:
        for path in result.expired:
            print(f"would delete {path}")
        print(f"{len(result.expired)} file(s) older than {months} months (dry run)")
        return 0
    for path in result.deleted:
        print(f"deleted {path}")
    print(f"{len(result.deleted)} file(s) older than {months} months deleted")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.directory):
        print(f"error: {args.directory!r} is not a directory", file=sys.stderr)
        return 2
    stats = collect_stats(args.directory)
    sys.stdout.write(render_table(stats, args.top))
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as fh:
                fh.write(render_html(stats, args.top))
        except OSError as exc:
            print(f"error: cannot write {args.html}: {exc}", file=sys.stderr)
            return 1
        print(f"HTML report written to {args.html}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="consentmw")
    register_cli(parser.add_subparsers(dest="command", required=True))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
