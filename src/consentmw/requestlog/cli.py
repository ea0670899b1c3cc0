"""``consentmw logs purge [DIR]`` and ``consentmw logs stats [DIR]``.

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


PURGE_EXAMPLES = """\
examples:
  consentmw logs purge /var/log/site --dry-run
  consentmw logs purge /var/log/site --retention-months 12 --timezone Europe/Oslo
"""

STATS_EXAMPLES = """\
This is the quick tally, which needs nothing beyond consentmw itself. For visits,
sources, campaigns, audiences and consent figures use the full report:
consentmw analytics report DIR (pip install 'consentmw[analytics]').

example:
  consentmw logs stats /var/log/site --top 20 --html report.html
"""


def register_cli(subparsers: Any) -> None:
    """Add the ``logs`` command (``purge``, ``stats``) to an argparse subparsers object."""
    logs = subparsers.add_parser(
        "logs",
        help="request-log housekeeping and statistics",
        epilog="examples:\n  consentmw logs purge /var/log/site --dry-run\n"
        "  consentmw logs stats /var/log/site\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    logs.set_defaults(func=lambda args: _usage(logs))
    sub = logs.add_subparsers(dest="logs_command", metavar="{purge,stats}")

    p = _command(sub, "purge", "delete log files older than the retention", PURGE_EXAMPLES)
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

    s = _command(
        sub,
        "stats",
        "a quick tally: requests per day, top pages, browser and OS shares",
        STATS_EXAMPLES,
    )
    s.add_argument("--html", metavar="OUT", help="also write a self-contained HTML report")
    s.add_argument("--top", type=int, default=10, help="rows per ranking (default 10)")
    s.set_defaults(func=cmd_stats)


def _command(sub: Any, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    """A ``logs`` subcommand taking the log directory as DIR (``--directory`` also works)."""
    parser = sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "directory",
        nargs="?",
        metavar="DIR",
        help=f"log directory (default: ${DIR_ENV} or ./logs)",
    )
    # The spelling before DIR was positional; kept so existing cron lines still work.
    parser.add_argument(
        "--directory", dest="directory_option", metavar="DIR", help="same as DIR (older spelling)"
    )
    return parser


def _directory(args: argparse.Namespace) -> str:
    given, option = args.directory, args.directory_option
    if given is not None and option is not None and given != option:
        raise ValueError(f"two directories given: {given!r} and --directory {option!r}")
    return given or option or os.environ.get(DIR_ENV) or "logs"


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_purge(args: argparse.Namespace) -> int:
    try:
        directory = _directory(args)
        months = validate_retention_months(args.retention_months, "--retention-months")
        tz = load_timezone(args.timezone, "--timezone")
    except ValueError as exc:
        print(f"consentmw: {exc}", file=sys.stderr)
        return 2
    if not os.path.isdir(directory):
        print(f"consentmw: {directory!r} is not a directory", file=sys.stderr)
        return 2
    result = purge(
        directory,
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
    try:
        directory = _directory(args)
    except ValueError as exc:
        print(f"consentmw: {exc}", file=sys.stderr)
        return 2
    if not os.path.isdir(directory):
        print(f"consentmw: {directory!r} is not a directory", file=sys.stderr)
        return 2
    stats = collect_stats(directory)
    sys.stdout.write(render_table(stats, args.top))
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as fh:
                fh.write(render_html(stats, args.top))
        except OSError as exc:
            print(f"consentmw: cannot write {args.html}: {exc}", file=sys.stderr)
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
