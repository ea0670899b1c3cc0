"""``consentmw analytics clickhouse schema | report | purge``.

``--url`` (or ``$CONSENTMW_CLICKHOUSE_URL``) is clickhouse-connect's DSN,
``clickhouse://user:password@host:8123/database``, or ``chdb:///path`` for chDB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any

from consentmw.retention import DEFAULT_RETENTION_MONTHS, validate_retention_months

__all__ = ["register_cli"]

URL_ENV = "CONSENTMW_CLICKHOUSE_URL"


def register_cli(subparsers: Any, add_period: Any) -> None:
    """Add ``clickhouse`` to the ``analytics`` subcommands; ``add_period`` adds the
    report's period options (shared with ``analytics report``)."""
    ch = subparsers.add_parser(
        "clickhouse",
        help="the reports and retention in ClickHouse",
        epilog="example:\n  consentmw analytics clickhouse schema > schema.sql\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ch.set_defaults(func=lambda args: _usage(ch))
    sub = ch.add_subparsers(dest="clickhouse_command", metavar="{schema,report,purge}")

    s = sub.add_parser(
        "schema",
        help="print the CREATE TABLE statement",
        epilog="example:\n  consentmw analytics clickhouse schema --table consentmw.requests\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _table(s)
    s.add_argument("--consent-prefix", default="/_consent", help="the consent routes' prefix")
    s.set_defaults(func=cmd_schema)

    r = sub.add_parser(
        "report",
        help="the analytics report, computed in ClickHouse",
        epilog="example:\n  CONSENTMW_CLICKHOUSE_URL=clickhouse://reader@ch:8123/consentmw \\\n"
        "    consentmw analytics clickhouse report --since 30d --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection(r)
    add_period(r)
    r.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "purge",
        help="drop monthly partitions older than the retention",
        epilog="example:\n  consentmw analytics clickhouse purge --retention-months 18 "
        "--log-dir /var/log/site --dry-run\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection(p)
    p.add_argument(
        "--retention-months",
        type=int,
        default=DEFAULT_RETENTION_MONTHS,
        help=f"keep this many months, 3..120 (default {DEFAULT_RETENTION_MONTHS})",
    )
    p.add_argument(
        "--log-dir",
        default=os.environ.get("CONSENTMW_LOG_DIR"),
        help="the request log's directory: its LEGAL_HOLD file suspends the purge",
    )
    p.add_argument("--legal-hold", metavar="REASON", default=None, help="suspend the purge")
    p.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    p.set_defaults(func=cmd_purge)


def _table(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", default="consentmw.requests", help="DATABASE.TABLE")


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=os.environ.get(URL_ENV), help=f"ClickHouse URL (default ${URL_ENV})"
    )
    _table(parser)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"consentmw: {message}", file=sys.stderr)
    return 2


def cmd_schema(args: argparse.Namespace) -> int:
    from consentmw.analytics.clickhouse.schema import create_table_sql

    try:
        sys.stdout.write(create_table_sql(args.table, args.consent_prefix))
    except ValueError as exc:
        return _fail(str(exc))
    return 0


def _open(args: argparse.Namespace) -> Any:
    from consentmw.analytics.clickhouse.client import open_client
    from consentmw.analytics.clickhouse.schema import split_table

    if not args.url:
        raise ValueError(f"give --url or set ${URL_ENV}")
    split_table(args.table)
    return open_client(args.url)


def _unreachable(exc: Exception) -> int:
    print(f"consentmw: ClickHouse: {str(exc).strip().splitlines()[0][:500]}", file=sys.stderr)
    return 1


def cmd_report(args: argparse.Namespace) -> int:
    from consentmw.analytics.clickhouse.client import client_errors
    from consentmw.analytics.clickhouse.engine import ClickHouseEngine
    from consentmw.analytics.periodargs import period_from_args
    from consentmw.analytics.render import render_html, render_table
    from consentmw.requestlog.periods import load_timezone

    try:
        tz = load_timezone(args.timezone, "--timezone")
        first, last = period_from_args(args, datetime.now(tz).date())
        if not 1 <= args.top <= 1000:
            raise ValueError("--top must be 1..1000")
        client = _open(args)
    except ValueError as exc:
        return _fail(str(exc))
    except client_errors() as exc:
        return _unreachable(exc)
    consent = store = None
    try:
        if args.records_url:
            from consentmw.analytics.consentcounts import ReceiptConsentCounts
            from consentmw.records import open_store

            store = open_store(args.records_url)
            consent = ReceiptConsentCounts(store)
        engine = ClickHouseEngine(client, args.table)
        data = engine.report(first, last, timezone=tz.key, top=args.top, consent=consent)
    except client_errors() as exc:
        return _unreachable(exc)
    finally:
        client.close()
        if store is not None:
            store.close_sync()
    out = data.to_dict()
    sys.stdout.write(
        json.dumps(out, ensure_ascii=False, default=str) + "\n" if args.json else render_table(out)
    )
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as fh:
                fh.write(render_html(out))
        except OSError as exc:
            print(f"consentmw: cannot write {args.html}: {exc}", file=sys.stderr)
            return 1
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from consentmw.analytics.clickhouse.client import client_errors
    from consentmw.analytics.clickhouse.purge import purge_partitions

    try:
        months = validate_retention_months(args.retention_months, "--retention-months")
        client = _open(args)
    except ValueError as exc:
        return _fail(str(exc))
    except client_errors() as exc:
        return _unreachable(exc)
    try:
        result = purge_partitions(
            client,
            months,
            table=args.table,
            legal_hold=args.legal_hold or False,
            hold_directory=args.log_dir,
            dry_run=args.dry_run,
        )
    except client_errors() as exc:
        return _unreachable(exc)
    finally:
        client.close()
    if result.held is not None:
        print(
            f"deletion suspended by legal hold ({result.held}): {len(result.expired)} "
            f"partition(s), {result.rows} rows, past the {months}-month retention kept"
        )
        return 0
    if args.dry_run:
        for partition in result.expired:
            print(f"would drop partition {partition}")
        print(f"{len(result.expired)} partition(s) older than {months} months (dry run)")
        return 0
    for partition in result.dropped:
        print(f"dropped partition {partition}")
    print(f"{len(result.dropped)} partition(s) older than {months} months dropped")
    return 0
