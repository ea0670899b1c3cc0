"""``consentmw records show|export|forget|purge|hold|counts``: the operator's side of the store.

Access and erasure requests also arrive by e-mail; the visitor quotes the consent id
shown on /_consent/me, and the operator answers with these commands. Export writes JSON
lines (one receipt per line) so large stores stream instead of loading into memory.
``hold`` adds, lists and releases legal holds: held receipts are neither purged nor
forgotten until the hold is released, whatever its review date says. ``counts`` prints
the daily counts of events that get no receipt (banner shown, signal refusals).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from consentmw.analytics.cli import period_from_args
from consentmw.records import DEFAULT_RECORDS_URL, RecordsUnavailable, open_store
from consentmw.records.base import ReceiptStore, legacy_hold_text
from consentmw.records.counts import KINDS
from consentmw.records.holds import Hold, day_start, parse_day
from consentmw.retention import DEFAULT_RETENTION_MONTHS, validate_retention_months

URL_ENV = "CONSENTMW_RECORDS_URL"

#: One example per command, shown at the end of its --help.
EXAMPLES = {
    "records": "consentmw records show 3f2b9c0e-... --url postgresql://consent@db/site",
    "show": "consentmw records show 3f2b9c0e-...",
    "export": "consentmw records export > receipts.jsonl\n"
    "  consentmw records export 3f2b9c0e-... -o subject-access.jsonl",
    "forget": "consentmw records forget 3f2b9c0e-...",
    "purge": "consentmw records purge --dry-run --retention-months 24",
    "counts": "consentmw records counts --since 90d --json",
    "hold": "consentmw records hold add --case 'Suit 12' --from 2026-01-01 --review 2027-06-30",
    "add": "consentmw records hold add --case 'Suit 12' --consent-id 3f2b9c0e-... "
    "--review 2027-06-30",
    "list": "consentmw records hold list",
    "release": "consentmw records hold release 'Suit 12'",
}


def _epilog(name: str) -> str:
    return "example:\n  " + EXAMPLES[name] + "\n"


def register_cli(subparsers: Any) -> None:
    """Add ``records`` and its subcommands to the main ``consentmw`` parser."""
    records = subparsers.add_parser(
        "records",
        help="show, export, forget or purge consent receipts",
        description="Consent receipts: proof of each visitor's decisions.",
        epilog=_epilog("records"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = records.add_subparsers(dest="records_command", metavar="COMMAND", required=True)

    def command(name: str, help: str, parent: Any = sub) -> argparse.ArgumentParser:
        parser = parent.add_parser(
            name,
            help=help,
            description=help,
            epilog=_epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
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

    show = command("show", "print every receipt held for one consent id, with the texts shown")
    show.add_argument("consent_id_arg", nargs="?", metavar="CONSENT_ID")
    show.add_argument("--consent-id", help="the consent id (same as CONSENT_ID)")
    show.set_defaults(func=_show)

    export = command("export", "write receipts as JSON lines (all, or one consent id)")
    export.add_argument("consent_id_arg", nargs="?", metavar="CONSENT_ID")
    export.add_argument("--consent-id", help="the consent id (same as CONSENT_ID)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=_export)

    forget = command("forget", "delete the receipts of one consent id, except held ones")
    forget.add_argument("consent_id_arg", nargs="?", metavar="CONSENT_ID")
    forget.add_argument("--consent-id", help="the consent id (same as CONSENT_ID)")
    forget.set_defaults(func=_forget)

    purge = command("purge", "delete receipts older than the retention period, except held ones")
    purge.add_argument("--dry-run", action="store_true", help="only count what would go")
    purge.add_argument(
        "--legal-hold-dir",
        help="also look for an old LEGAL_HOLD file in this directory (it stops the purge)",
    )
    purge.set_defaults(func=_purge)

    counts = command("counts", "print the daily counts of banner views and signal refusals")
    counts.add_argument("--since", default=None, help="the last N UTC days, e.g. 30d (default)")
    counts.add_argument("--from", dest="first", metavar="DATE", help="first UTC day, YYYY-MM-DD")
    counts.add_argument("--to", dest="last", metavar="DATE", help="last UTC day, YYYY-MM-DD")
    counts.add_argument("--json", action="store_true", help="print one JSON object")
    counts.set_defaults(func=_counts)

    hold = sub.add_parser(
        "hold",
        help="add, list or release legal holds",
        description="Legal holds: receipts a case needs are neither purged nor forgotten.",
        epilog=_epilog("hold"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    holds = hold.add_subparsers(dest="hold_command", metavar="COMMAND", required=True)
    add = command("add", "hold receipts for a case until released", holds)
    add.add_argument("--case", required=True, help="the case's name or reference")
    add.add_argument(
        "--consent-id", action="append", default=[], help="a consent id to hold (repeatable)"
    )
    add.add_argument("--from", dest="start", help="hold receipts from this day (UTC)")
    add.add_argument("--to", dest="end", help="hold receipts until this day, inclusive (UTC)")
    add.add_argument(
        "--review", required=True, help="the day to review the hold (it does not end then)"
    )
    add.set_defaults(func=_hold_add)
    command("list", "list the holds in force", holds).set_defaults(func=_hold_list)
    release = command("release", "end the hold of one case", holds)
    release.add_argument("case", metavar="CASE")
    release.set_defaults(func=_hold_release)


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


def _consent_id(args: argparse.Namespace) -> str | None:
    """CONSENT_ID or --consent-id (one of them; both only if they agree)."""
    given, option = args.consent_id_arg, args.consent_id
    if given and option and given != option:
        raise ValueError(f"two consent ids given: {given!r} and --consent-id {option!r}")
    return given or option or None


def _show(args: argparse.Namespace) -> int:
    consent_id = _consent_id(args)
    if not consent_id:
        print("consentmw records show: give a CONSENT_ID", file=sys.stderr)
        return 2

    def action(store: ReceiptStore) -> int:
        receipts = store.for_consent_id_sync(consent_id)
        if not receipts:
            print(f"no receipts held for consent id {consent_id} in {store.description}")
        shown: dict[str, str] = {}
        for r in receipts:
            number = f"#{r.id}" if r.id is not None else "(pending: not stored yet)"
            print(
                f"{number} {r.recorded_at.isoformat()} {r.action} via {r.source} "
                f"(policy {r.policy_version}, banner {r.banner_hash}, language {r.language})\n"
                f"    granted: {', '.join(r.granted) or '-'}\n"
                f"    denied:  {', '.join(r.denied) or '-'}\n"
                f"    from:    {r.masked_ip} ({r.browser})"
            )
            if r.banner_hash in shown:
                print(f"    texts:   as shown with {shown[r.banner_hash]} above")
                continue
            shown[r.banner_hash] = number
            texts = store.texts_sync(r.banner_hash)
            if texts is None:
                print("    texts:   not stored (recorded before texts were kept)")
                continue
            print(f"    texts:   first shown {texts.first_seen.isoformat()}, exactly:")
            body = json.dumps(texts.data(), indent=2, ensure_ascii=False, sort_keys=True)
            print("\n".join("      " + line for line in body.splitlines()))
        return 0

    return _run(args, action)


def _export(args: argparse.Namespace) -> int:
    consent_id = _consent_id(args)

    def action(store: ReceiptStore) -> int:
        with ExitStack() as stack:
            out: TextIO = sys.stdout
            if args.output:
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
            count = 0
            for receipt in store.export_sync(consent_id):
                out.write(json.dumps(receipt.to_dict(), ensure_ascii=False) + "\n")
                count += 1
        print(f"consentmw: exported {count} receipts", file=sys.stderr)
        return 0

    return _run(args, action)


def _forget(args: argparse.Namespace) -> int:
    consent_id = _consent_id(args)
    if not consent_id:
        print("consentmw records forget: give a CONSENT_ID", file=sys.stderr)
        return 2

    def action(store: ReceiptStore) -> int:
        result = store.forget_sync(consent_id)
        print(f"deleted {result.deleted} receipts for consent id {consent_id}")
        if result.kept:
            cases = "; ".join(
                f"{h.case} ({h.count}, review {h.review.isoformat()})" for h in result.holds
            )
            print(f"kept {result.kept} receipts under legal hold: {cases}")
            _warn_reviews(store)
        return 0

    return _run(args, action)


def _purge(args: argparse.Namespace) -> int:
    def action(store: ReceiptStore) -> int:
        legacy = store.legacy_hold_file()
        if legacy is not None:
            text = legacy_hold_text(legacy)
            print(f"consentmw records: nothing deleted: {text}", file=sys.stderr)
            return 1
        holds = _warn_reviews(store)
        cutoff = store.purge_cutoff().isoformat()
        count = store.purge_sync(dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {count} receipts recorded before {cutoff}")
        if holds:
            print(f"held receipts are kept: {', '.join(h.case for h in holds)}")
        return 0

    return _run(args, action)


def _counts(args: argparse.Namespace) -> int:
    try:
        first, last = period_from_args(args, datetime.now(timezone.utc).date())
    except ValueError as exc:
        print(f"consentmw records counts: {exc}", file=sys.stderr)
        return 2

    def action(store: ReceiptStore) -> int:
        rows = store.counts_sync(first, last)
        totals = dict.fromkeys(sorted(KINDS), 0)
        for row in rows:
            totals[row.kind] += row.count
        if args.json:
            data = {
                "from": first.isoformat(),
                "to": last.isoformat(),
                "totals": totals,
                "rows": [
                    {"day": r.day.isoformat(), "kind": r.kind,
                     "policy_version": r.policy_version, "language": r.language,
                     "count": r.count}
                    for r in rows
                ],
            }  # fmt: skip
            print(json.dumps(data, ensure_ascii=False))
            return 0
        print(f"daily counts {first.isoformat()} .. {last.isoformat()} (UTC days)")
        if not rows:
            print(f"nothing counted in {store.description}")
        else:
            print(f"{'day':<10}  {'kind':<14}  {'policy':<10}  {'lang':<4}  {'count':>9}")
        for r in rows:
            print(f"{r.day.isoformat():<10}  {r.kind:<14}  {r.policy_version:<10}  "
                  f"{r.language:<4}  {r.count:>9}")  # fmt: skip
        print("total: " + ", ".join(f"{kind} {n}" for kind, n in totals.items()))
        return 0

    return _run(args, action)


def _hold_add(args: argparse.Namespace) -> int:
    try:
        review = parse_day(args.review, "--review")
        start = day_start(parse_day(args.start, "--from")) if args.start else None
        end = day_start(parse_day(args.end, "--to") + timedelta(days=1)) if args.end else None
        if review < datetime.now(timezone.utc).date():
            raise ValueError(f"--review {review.isoformat()} is in the past")
        hold = Hold(case=args.case, review=review, consent_ids=tuple(args.consent_id),
                    start=start, end=end)  # fmt: skip
    except ValueError as exc:
        print(f"consentmw records hold add: {exc}", file=sys.stderr)
        return 2

    def action(store: ReceiptStore) -> int:
        try:
            store.add_hold_sync(hold)
        except ValueError as exc:
            print(f"consentmw records hold add: {exc}", file=sys.stderr)
            return 2
        print(f"legal hold {hold.case!r} added: {hold.scope()}, review {review.isoformat()}")
        return 0

    return _run(args, action)


def _hold_list(args: argparse.Namespace) -> int:
    def action(store: ReceiptStore) -> int:
        holds = store.holds_sync()
        if not holds:
            print(f"no legal holds in {store.description}")
        for h in holds:
            overdue = "  REVIEW OVERDUE" if h.review_passed() else ""
            print(
                f"{h.case}: {h.scope()}; review {h.review.isoformat()}{overdue}; "
                f"added {h.created_at.isoformat(timespec='seconds')}"
            )
        _warn_reviews(store, holds)
        return 0

    return _run(args, action)


def _hold_release(args: argparse.Namespace) -> int:
    def action(store: ReceiptStore) -> int:
        if not store.release_hold_sync(args.case):
            print(f"consentmw records: no legal hold for case {args.case!r}", file=sys.stderr)
            return 1
        print(f"legal hold {args.case!r} released; its receipts follow the retention again")
        return 0

    return _run(args, action)


def _warn_reviews(store: ReceiptStore, holds: list[Hold] | None = None) -> list[Hold]:
    """Print a warning for each hold past its review date; return the holds."""
    holds = store.holds_sync() if holds is None else holds
    for h in holds:
        if h.review_passed():
            print(f"consentmw: warning: {h.review_warning()}", file=sys.stderr)
    return holds


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m consentmw.records.cli records ...``)."""
    parser = argparse.ArgumentParser(prog="consentmw")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # as in consentmw.cli.main
        print(f"consentmw: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
