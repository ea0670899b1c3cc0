"""The analytics report on real period files read by the real engine (DuckDB)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb", reason="the analytics extra is part of the test extra")

from consentmw.analytics.columnar import sync
from consentmw.analytics.consentcounts import ReceiptConsentCounts
from consentmw.analytics.render import render_html, render_table
from consentmw.analytics.report import build_report
from consentmw.records import CountRow, EventCounter, SQLiteReceiptStore
from consentmw.requestlog import RequestLogMiddleware
from consentmw.requestlog.maintenance import compress_ended, purge
from consentmw.requestlog.periods import utc_iso
from tests.records_support import BACKENDS, receipt, store_factory
from tests.requestlog_helpers import UA_CHROME, UA_IPHONE, country_database, run
from tests.test_analytics_kind import GOOGLEBOT, html_app

ROOT = Path(__file__).resolve().parent.parent
TOP_KEYS = {
    "pageviews", "visitors", "pages", "entry_pages", "referrers", "utm", "browsers",
    "systems", "devices", "countries", "series", "consent", "requests", "period", "sources",
}  # fmt: skip
DAY = date(2026, 11, 20)
NOON = datetime(2026, 11, 20, 12, tzinfo=timezone.utc).timestamp()


def log_requests(directory: Path, clock: float = NOON, **options: Any) -> None:
    """One of each kind through the real middleware, as one worker would."""
    mw = RequestLogMiddleware(
        html_app, directory=str(directory), flush_interval=60, clock=lambda: clock, **options
    )
    chrome = [(b"user-agent", UA_CHROME.encode()), (b"referer", b"https://www.google.no/s?q=x")]
    run(mw, "/", headers=chrome, query=b"utm_source=news&utm_medium=email&utm_campaign=sale")
    run(mw, "/products", headers=[(b"user-agent", UA_IPHONE.encode())])
    run(mw, "/site.css", headers=chrome)
    run(mw, "/api/prices", headers=chrome)
    run(mw, "/_consent", method="POST", headers=chrome)
    run(mw, "/missing", headers=chrome)
    run(mw, "/", headers=[(b"user-agent", GOOGLEBOT.encode())])
    mw.close()


def report(directory: Path, **kwargs: Any) -> dict[str, Any]:
    return build_report(directory, DAY, DAY, **kwargs).to_dict()


def test_page_views_count_pages_only(tmp_path: Path) -> None:
    log_requests(tmp_path)
    data = report(tmp_path)
    assert data["pageviews"] == 2
    assert data["requests"] == {
        "page": 2, "asset": 1, "api": 1, "consent": 1, "redirect": 0, "error": 1, "bot": 1,
    }  # fmt: skip
    assert [p["path"] for p in data["pages"]] == ["/", "/products"]
    assert data["referrers"] == [
        {"host": None, "pageviews": 1},
        {"host": "www.google.no", "pageviews": 1},
    ]
    assert data["utm"]["sources"] == [{"value": "news", "pageviews": 1}]
    assert data["utm"]["campaigns"] == [{"value": "sale", "pageviews": 1}]
    assert {b["name"] for b in data["browsers"]} == {"Chrome", "Mobile Safari"}
    assert {d["name"] for d in data["devices"]} == {"desktop", "mobile"}
    day = data["series"]["day"]
    assert day == [{"date": "2026-11-20", "pageviews": 2}]
    hours = data["series"]["hour"]
    assert len(hours) == 24 and hours[12]["pageviews"] == 2
    assert sum(h["pageviews"] for h in hours) == 2


def test_report_json_shape(tmp_path: Path) -> None:
    log_requests(tmp_path)
    data = report(tmp_path)
    assert set(data) >= TOP_KEYS
    json.dumps(data)  # plain JSON types only
    # no visitor keys and no country field in these records: not recorded, not zero
    assert data["visitors"] is None and data["entry_pages"] is None and data["countries"] is None
    assert set(data["utm"]) == {"sources", "media", "campaigns"}
    assert set(data["series"]) == {"day", "hour"}
    consent = data["consent"]
    assert set(consent["totals"]) == {
        "banner_shown", "accepted", "rejected", "custom", "signal_refusals", "withdrawn",
    }  # fmt: skip
    assert consent["undecided_pageviews"] == [{"date": "2026-11-20", "pageviews": 2}]


def write_lines(path: Path, records: list[dict[str, Any]], compressed: bool = False) -> None:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    if compressed:
        with open(path, "ab") as fh:
            fh.write(gzip.compress(data))
    else:
        with open(path, "ab") as fh:
            fh.write(data)


def rec(path: str = "/", t: float = NOON, **fields: Any) -> dict[str, Any]:
    base = {
        "time": utc_iso(t), "ip": "198.51.0.0", "method": "GET", "path": path, "status": 200,
        "browser": "Firefox", "os": "Linux", "device": "desktop", "referrer": None,
        "consent": "undecided", "language": "nb", "kind": "page",
    }  # fmt: skip
    base.update(fields)
    return base


def test_gz_and_plain_files_of_several_workers_and_hosts_are_all_read(tmp_path: Path) -> None:
    # two worker processes append to the same period files, through the real writer
    log_requests(tmp_path)
    log_requests(tmp_path)
    yesterday = NOON - 86400
    log_requests(tmp_path, clock=yesterday)
    compress_ended(tmp_path, __import__("zoneinfo").ZoneInfo("UTC"), NOON, 0)
    assert (tmp_path / "requests-2026-11-19.jsonl.gz").exists()
    # a late line after compression, and a second host's directory
    write_lines(tmp_path / "requests-2026-11-19.jsonl", [rec("/late", yesterday)])
    host = tmp_path / "host-b"
    host.mkdir()
    write_lines(host / "requests-2026-11-19.jsonl.gz", [rec("/b", yesterday)] * 3, True)
    write_lines(host / "requests-2026-11-20.jsonl", [rec("/b")])
    data = build_report(tmp_path, DAY - timedelta(1), DAY).to_dict()
    assert data["pageviews"] == 2 + 2 + 2 + 1 + 3 + 1
    assert data["series"]["day"] == [
        {"date": "2026-11-19", "pageviews": 6},
        {"date": "2026-11-20", "pageviews": 5},
    ]
    assert data["sources"]["json_files"] == 5
    # Parquet copies of the closed (compressed) periods give the same numbers
    result = sync(tmp_path)
    assert sorted(p.name for p in result.written) == ["requests-2026-11-19.parquet"] * 2
    again = build_report(tmp_path, DAY - timedelta(1), DAY).to_dict()
    assert again["sources"]["columnar_files"] == 2 and again["sources"]["json_files"] == 3
    for key in ("pageviews", "pages", "requests", "series", "referrers", "browsers", "utm"):
        assert again[key] == data[key], key
    # copies carry no IP, sizes or durations
    import duckdb

    cols = duckdb.connect().execute(
        "SELECT name FROM parquet_schema(?)", [str(tmp_path / "requests-2026-11-19.parquet")]
    ).fetchall()
    assert "ip" not in {c[0] for c in cols} and "bytes" not in {c[0] for c in cols}


def test_stale_copy_is_not_used_and_orphans_and_expired_copies_go(tmp_path: Path) -> None:
    gz = tmp_path / "requests-2026-11-19.jsonl.gz"
    write_lines(gz, [rec("/a", NOON - 86400)], True)
    sync(tmp_path)
    copy = tmp_path / "requests-2026-11-19.parquet"
    assert copy.exists()
    # late lines compressed into the .gz make the copy stale: the .gz is read instead
    write_lines(gz, [rec("/b", NOON - 86400)], True)
    os.utime(gz, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    data = build_report(tmp_path, DAY - timedelta(1), DAY).to_dict()
    assert data["pageviews"] == 2 and data["sources"]["columnar_files"] == 0
    assert sync(tmp_path).written == [copy]
    # the source purged: the copy goes too (retention applies to the copy as well)
    gz.unlink()
    assert sync(tmp_path).removed == [copy] and not copy.exists()
    # purge deletes an expired period's copy with its files, and keeps both under a hold
    old = tmp_path / "requests-2020-01-01.jsonl.gz"
    write_lines(old, [rec("/old", NOON - 6 * 365 * 86400)], True)
    sync(tmp_path)
    old_copy = tmp_path / "requests-2020-01-01.parquet"
    assert old_copy.exists()
    held = purge(tmp_path, 18, now=NOON, legal_hold="litigation", log_hold=False)
    assert held.held and old_copy.exists()
    done = purge(tmp_path, 18, now=NOON, log_hold=False)
    assert old_copy in done.deleted and not old_copy.exists() and not old.exists()


def test_housekeeping_writes_copies_after_compressing(tmp_path: Path) -> None:
    from consentmw.requestlog.service import RequestLog

    log = RequestLog(tmp_path, clock=lambda: NOON, compress_after=0, columnar=True)
    write_lines(tmp_path / "requests-2026-11-19.jsonl", [rec("/a", NOON - 86400)])
    write_lines(tmp_path / "requests-2026-11-20.jsonl", [rec("/b")])
    log.maintain()
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "requests-2026-11-19.jsonl.gz", "requests-2026-11-19.parquet", "requests-2026-11-20.jsonl",
    ]  # fmt: skip
    data = build_report(tmp_path, DAY - timedelta(1), DAY).to_dict()
    assert data["pageviews"] == 2 and data["sources"]["columnar_files"] == 1


def test_visitor_keys_give_visitors_and_entry_pages(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "requests-2026-11-20.jsonl",
        [
            rec("/landing", NOON, visitor="v1", country="NO"),
            rec("/products", NOON + 60, visitor="v1", country="NO"),
            rec("/", NOON + 5, visitor="v2", country="SE"),
            rec("/products", NOON + 9, visitor="v2", country="SE"),
            rec("/products", NOON + 20, visitor="v3"),
        ],
    )
    data = report(tmp_path)
    assert data["pageviews"] == 5 and data["visitors"] == 3
    # three visits: v1 and v2 saw two pages each, v3 one (a bounce)
    assert data["visits"] == 3 and data["bounce_rate"] == round(1 / 3, 4)
    assert data["entry_pages"] == [
        {"path": "/", "visits": 1, "bounce_rate": 0.0},
        {"path": "/landing", "visits": 1, "bounce_rate": 0.0},
        {"path": "/products", "visits": 1, "bounce_rate": 1.0},
    ]
    assert data["pages"][0] == {"path": "/products", "pageviews": 3, "visitors": 3}
    assert data["countries"] == [
        {"code": "NO", "pageviews": 2, "visitors": 1},
        {"code": "SE", "pageviews": 2, "visitors": 1},
    ]


def test_old_records_bad_lines_and_a_truncated_gzip(tmp_path: Path) -> None:
    old = [rec(p, kind=None) for p in ("/", "/x.css", "/_consent/preferences")]
    old += [rec("/", status=404, kind=None), rec("/", device="bot", kind=None)]
    for r in old:
        del r["kind"]  # written before the field existed
    write_lines(tmp_path / "requests-2026-11-20.jsonl", old)
    with open(tmp_path / "requests-2026-11-20.jsonl", "a") as fh:
        fh.write('{"time": "torn line\n\x00\xff not json\n[1, 2]\n')
    bad = gzip.compress(b"".join(json.dumps(rec("/gz")).encode() + b"\n" for _ in range(50)))
    (tmp_path / "requests-2026-11-19.jsonl.gz").write_bytes(bad[: len(bad) // 2])
    data = build_report(tmp_path, DAY - timedelta(1), DAY).to_dict()
    assert data["pageviews"] == 1
    assert data["requests"]["asset"] == 1 and data["requests"]["consent"] == 1
    assert data["requests"]["error"] == 1 and data["requests"]["bot"] == 1
    assert data["sources"]["skipped_files"] == [str(tmp_path / "requests-2026-11-19.jsonl.gz")]


def test_consent_figures_from_receipts(tmp_path: Path) -> None:
    store = SQLiteReceiptStore(tmp_path / "receipts.db")
    at = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    for action, lang in [("accept_all", "nb"), ("accept_all", "en"), ("reject_all", "nb"),
                         ("save", "nb"), ("signal", "en"), ("withdraw", "nb")]:  # fmt: skip
        store.add_sync(receipt(f"c-{action}-{lang}", at=at, action=action, language=lang))
    store.add_sync(receipt("c-old", at=at - timedelta(days=40)))
    try:
        data = report(tmp_path / "logs", consent=ReceiptConsentCounts(store))
    finally:
        store.close_sync()
    c = data["consent"]
    assert c["source"] == "receipts"
    assert c["totals"] == {
        "banner_shown": 0, "accepted": 2, "rejected": 1, "custom": 1, "signal_refusals": 1,
        "withdrawn": 1,
    }  # fmt: skip
    assert c["policy_versions"] == {"1.07": 6} and c["languages"] == {"nb": 4, "en": 2}
    assert data["pageviews"] == 0 and data["visitors"] is None  # an empty log directory


@pytest.mark.parametrize("backend", BACKENDS)
async def test_consent_figures_include_banner_views_and_counted_signal_refusals(
    backend: str, tmp_path: Path
) -> None:
    at = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    async with store_factory(backend, tmp_path) as make:
        store = make()
        await store.add(receipt("c-a", at=at, action="accept_all"))
        await store.add(receipt("c-s", at=at, action="signal", language="en"))  # receipted
        counter = EventCounter(store, policy_versions=["1.07"], languages=["nb", "en"],
                               clock=lambda: at.timestamp())  # fmt: skip
        for _ in range(40):
            counter.count("banner_shown", "1.07", "nb")
        for _ in range(3):
            counter.count("signal_refusal", "1.07", "en")
        await counter.flush()
        await store.add_counts([CountRow(DAY - timedelta(1), "banner_shown", "1.07", "en", 9)])
        (tmp_path / "logs").mkdir()
        data = report(tmp_path / "logs", consent=ReceiptConsentCounts(store))
        wider = build_report(tmp_path / "logs", DAY - timedelta(1), DAY,
                             consent=ReceiptConsentCounts(store)).to_dict()  # fmt: skip
    c = data["consent"]
    assert c["totals"] == {
        "banner_shown": 40, "accepted": 1, "rejected": 0, "custom": 0, "signal_refusals": 4,
        "withdrawn": 0,
    }  # fmt: skip
    assert c["days"][0]["banner_shown"] == 40 and c["days"][0]["signal_refusals"] == 4
    # Signal refusals are decisions; banner views are not.
    assert c["policy_versions"] == {"1.07": 5} and c["languages"] == {"en": 4, "nb": 1}
    assert c["counts"] == [
        {"date": "2026-11-20", "kind": "banner_shown", "policy_version": "1.07",
         "language": "nb", "count": 40},
        {"date": "2026-11-20", "kind": "signal_refusal", "policy_version": "1.07",
         "language": "en", "count": 3},
    ]  # fmt: skip
    assert [d["banner_shown"] for d in wider["consent"]["days"]] == [9, 40]
    assert "<td class=\"n\">40</td>" in render_html(data)


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "requests-2026-11-20.jsonl",
        [rec("/<script>alert(1)</script>"), rec("/", referrer='"><img src=x>')],
    )
    data = report(tmp_path)
    page = render_html(data)
    assert "<script" not in page.lower() and "<img" not in page
    assert "&lt;script&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert page.count("<svg") >= 3
    assert "/<script>" in render_table(data)


def cli(*args: str, pre: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{pre}import sys; from consentmw.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
        check=False,
    )


def test_cli_report(tmp_path: Path) -> None:
    log_requests(tmp_path / "logs")
    logs = str(tmp_path / "logs")
    out = cli("analytics", "report", logs, "--from", "2026-11-20", "--to", "2026-11-20", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= TOP_KEYS and data["pageviews"] == 2
    html_out = tmp_path / "report.html"
    out = cli("analytics", "report", logs, "--from", "2026-11-01", "--to", "2026-11-30",
              "--html", str(html_out))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Page views" in out.stdout and html_out.read_text().startswith("<!doctype html>")
    for bad in (["--since", "x"], ["--from", "2026-11-20"], ["--since", "3d", "--to", "x"]):
        out = cli("analytics", "report", logs, *bad)
        assert out.returncode == 2 and "Traceback" not in out.stderr, bad
    out = cli("analytics", "report", str(tmp_path / "nope"))
    assert out.returncode == 2 and "not a directory" in out.stderr


def test_cli_without_the_engine_says_what_to_install(tmp_path: Path) -> None:
    no_engine = "import sys; sys.modules['duckdb'] = None; "
    out = cli("analytics", "report", str(tmp_path), pre=no_engine)
    assert out.returncode != 0
    assert "install the analytics extra: pip install 'consentmw[analytics]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_page_view_in_the_last_half_second_of_a_day_stays_in_that_day(tmp_path: Path) -> None:
    # epoch seconds were cast (rounded) to an integer: 23:59:59.700 moved to the next day
    late = datetime(2026, 11, 20, 23, 59, 59, 700000, tzinfo=timezone.utc).timestamp()
    write_lines(tmp_path / "requests-2026-11-20.jsonl", [rec("/", late), rec("/", NOON)])
    data = report(tmp_path)
    assert data["pageviews"] == 2
    assert data["series"]["day"] == [{"date": "2026-11-20", "pageviews": 2}]
    assert data["series"]["hour"][23]["pageviews"] == 1


def test_html_says_when_consent_decisions_were_not_counted(tmp_path: Path) -> None:
    page = render_html(report(tmp_path))
    assert "Decisions from none" not in page
    assert "Decisions are not counted: the report was made without the receipt store." in page


def test_countries_from_a_geoip_database_are_counted(tmp_path: Path) -> None:
    networks = {"198.51.100.0/24": "NO", "192.0.2.0/24": "SE"}
    db = country_database(tmp_path / "country.mmdb", networks)
    logs = tmp_path / "logs"
    mw = RequestLogMiddleware(
        html_app, directory=str(logs), flush_interval=60, clock=lambda: NOON, country_database=db
    )
    chrome = [(b"user-agent", UA_CHROME.encode())]
    for client in ("198.51.100.7", "198.51.100.8", "192.0.2.1"):
        run(mw, "/", headers=chrome, client=(client, 1))
    run(mw, "/site.css", headers=chrome, client=("198.51.100.7", 1))  # an asset: no view
    mw.close()
    countries = build_report(logs, DAY, DAY).to_dict()["countries"]
    assert {row["code"]: row["pageviews"] for row in countries} == {"NO": 2, "SE": 1}
