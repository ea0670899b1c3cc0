"""``consentmw records show|export|forget|purge``: the operator's side of visitor rights.

Access and erasure requests also arrive by e-mail; the visitor quotes the consent id
shown on /_consent/me, and the operator answers with these commands. Export writes JSON
lines (one receipt per line) so large stores stream instead of loading into memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from typing import Any, TextIO

from consentmw.records import DEFAULT_RECORDS_URL, RecordsUnavailable, open_store
from consentmw.records.base import ReceiptStore
from consentmw.retention import DEFAULT_RETENTION_MONTHS, validate_retention_months

URL_ENV = "CONSENTMW_RECORDS_URL"


def register_cli(subparsers: Any) -> None:
    """Add ``records`` and its subcommands to the main ``consentmw`` parser."""
    records = subparsers.add_parser(
        "records",
        help="show, export, forget or purge consent receipts",
        description="Consent receipts: proof of each visitor's decisions.",
    )
    sub = records.add_subparsers(dest="records_command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help, description=help)
        parser.add_argument(
            "--url",
            default=os.environ.get(URL_ENV) or DEFAULT_RECORDS_URL,
            help=f"records_url of the store (default: ${URL_ENV}, else {DEFAULT_RECORDS_URL})",
        )
        parser.add_argument(
            "--retention-months",
            type=int,
            default=DEFAULT_RETENTION_MONTHS,
            help=f"retention period, 3..120 months (default {DEFAULT_RETENTION_MONTHS})",
        )
        return parser

    show = command("show", "print every receipt held for one consent id")
    show.add_argument("--consent-id", required=True)
    show.set_defaults(func=_show)

    export = command("export", "write receipts as JSON lines (all, or one consent id)")
    export.add_argument("--consent-id")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=_export)

    forget = command("forget", "delete every receipt of one consent id (erasure request)")
    forget.add_argument("--consent-id", required=True)
    forget.set_defaults(func=_forget)

    purge = command("purge", "delete receipts older than the retention period")
    purge.add_argument("--dry-run", action="store_true", help="only count what would go")
    purge.add_argument(
        "--legal-hold-dir",
        help="also honour a LEGAL_HOLD file in this directory (needed for PostgreSQL)",
    )
    purge.set_defaults(func=_purge)


def _open(args: argparse.Namespace) -> ReceiptStore:
    months = validate_retention_months(args.retention_months, "--retention-months")
    return open_store(
        args.url, retention_months=months, legal_hold_dir=getattr(args, "legal_hold_dir", None)
    )


def _run(args: argparse.Namespace, action: Any) -> int:
    """Open the store, run ``action(store)``, turn known failures into exit codes."""
    try:
        store = _open(args)
    except ValueError as exc:
        print(f"consentmw records: {exc}", file=sys.stderr)
        return 2
    try:
        return action(store)
    except RecordsUnavailable as exc:
        print(f"consentmw records: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close_sync()


def _show(args: argparse.Namespace) -> int:
    def action(store: ReceiptStore) -> int:
        receipts = store.for_consent_id_sync(args.consent_id)
        if not receipts:
            print(f"no receipts held for consent id {args.consent_id} in {store.description}")
        for r in receipts:
            print(
                f"#{r.id} {r.recorded_at.isoformat()} {r.action} via {r.source} "
                f"(policy {r.policy_version}, banner {r.banner_hash}, language {r.language})\n"
                f"    granted: {', '.join(r.granted) or '-'}\n"
                f"    denied:  {', '.join(r.denied) or '-'}\n"
                f"    from:    {r.masked_ip} ({r.browser})"
            )
        return 0

    return _run(args, action)


def _export(args: argparse.Namespace) -> int:
    def action(store: ReceiptStore) -> int:
        with ExitStack() as stack:
            out: TextIO = sys.stdout
            if args.output:
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
            count = 0
            for receipt in store.export_sync(args.consent_id):
                out.write(json.dumps(receipt.to_dict(), ensure_ascii=False) + "\n")
                count += 1
        print(f"exported {count} receipts", file=sys.stderr)
        return 0

    return _run(args, action)


def _forget(args: argparse.Namespace) -> int:
    def action(store: ReceiptStore) -> int:
        count = store.forget_sync(args.consent_id)
        print(f"deleted {count} receipts for consent id {args.consent_id}")
        return 0

    return _run(args, action)


def _purge(args: argparse.Namespace) -> int:
    def action(store: ReceiptStore) -> int:
        reason = store.legal_hold_reason()
        if reason:
            print(f"legal hold: nothing deleted ({reason})")
            return 0
        cutoff = store.purge_cutoff().isoformat()
        count = store.purge_sync(dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {count} receipts recorded before {cutoff}")
        return 0

    return _run(args, action)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m consentmw.records.cli records ...``)."""
    parser = argparse.ArgumentParser(prog="consentmw")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
