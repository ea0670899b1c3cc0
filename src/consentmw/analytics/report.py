"""The numbers of one period: page views, visitors, pages, sources, audiences, consent.

:func:`build_report` runs the report's queries (:mod:`.queries`) on the ``requests`` view
of the embedded engine (:mod:`.engine`); the ClickHouse engine runs the same queries on
its table. :func:`assemble` turns either's rows into the same report, so this module
imports no engine itself.
Visitors, visits, bounce rate and entry pages are ``None`` when no record carries a
``visitor`` key, countries when none carries a ``country``: absent data is not a zero.

A visitor key lives one day (its salt is destroyed), so "visitors" over several days
counts each person once per day they came. A visit is a run of one key's page views with
gaps under 30 minutes (:data:`.queries.VISIT_GAP_MINUTES`); it ends at midnight with the
key. Its first page is its entry page, and a visit of one page view is a bounce.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from consentmw.analytics.consentcounts import ConsentCounts, NoConsentCounts
from consentmw.analytics.kind import DEFAULT_CONSENT_PREFIX, KINDS
from consentmw.analytics.queries import (
    DIMENSIONS,
    DUCKDB,
    GROUPING_IDS,
    QUARTER,
    ReportQueries,
)
from consentmw.analytics.sources import find_periods

__all__ = [
    "DIMENSIONS",
    "Report",
    "Rows",
    "assemble",
    "build_report",
    "check_period",
    "run_queries",
]

Fetch = Callable[[str], list[dict[str, Any]]]

MAX_TOP = 1000


@dataclass(frozen=True)
class Report:
    """A finished report; :meth:`to_dict` is the ``--json`` shape."""

    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data


def _bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return (
        datetime.combine(first, time(), tz),
        datetime.combine(last + timedelta(days=1), time(), tz),
    )


def check_period(
    first: date, last: date, timezone: str, top: int
) -> tuple[ZoneInfo, datetime, datetime]:
    """The zone and the period's bounds (``[start, end)``), or ``ValueError``."""
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    if not 1 <= top <= MAX_TOP:
        raise ValueError(f"top must be 1..{MAX_TOP}, got {top}")
    tz = ZoneInfo(timezone)
    start, end = _bounds(first, last, tz)
    return tz, start, end


def _rows(found: list[dict[str, Any]], g: int, col: str, key: str, keyed: bool) -> list:
    rows = [r for r in found if r["g"] == g]
    rows.sort(key=lambda r: (-r["n"], r[col] is not None, r[col] or ""))  # as in the SQL
    out = []
    for r in rows:
        item = {key: r[col], "pageviews": r["n"]}
        if keyed:
            item["visitors"] = r["v"]
        out.append(item)
    return out


def build_report(
    directory: str | os.PathLike[str],
    first: date,
    last: date,
    *,
    timezone: str = "UTC",
    top: int = 10,
    consent: ConsentCounts | None = None,
    consent_prefix: str = DEFAULT_CONSENT_PREFIX,
    memory_limit: str = "700MB",
) -> Report:
    """The report for the days ``first``..``last`` (inclusive, in ``timezone``), read by
    the embedded engine from the period files in ``directory``."""
    import duckdb

    from consentmw.analytics.engine import connect, fetch_dicts, requests_view

    tz, start, end = check_period(first, last, timezone, top)
    periods = find_periods(directory, first, last)
    json_files = [f for p in periods for f in p.json_files]
    parquet_files = [p.columnar for p in periods if p.columnar]
    queries = ReportQueries(DUCKDB, "requests", tz.key)
    con = connect(memory_limit=memory_limit)

    def fetch(sql: str) -> list[dict[str, Any]]:
        return fetch_dicts(con, sql, {"start": start, "end": end})

    try:
        con.execute(f"SET TimeZone = '{tz.key}'")
        skipped = requests_view(con, json_files, parquet_files, consent_prefix)
        try:
            rows = run_queries(fetch, queries, top)
        except (duckdb.IOException, duckdb.InvalidInputException):
            skipped = requests_view(con, json_files, parquet_files, consent_prefix, check=True)
            rows = run_queries(fetch, queries, top)
    finally:
        con.close()
    sources = {
        "periods": len(periods),
        "json_files": len(json_files),
        "columnar_files": len(parquet_files),
        "skipped_files": [str(f) for f in skipped],
    }
    return assemble(rows, first, last, tz, top, consent, sources)


@dataclass(frozen=True)
class Rows:
    """What the queries return, before :func:`assemble` shapes it."""

    found: list[dict[str, Any]]
    kinds: dict[str, int]
    entries: list[dict[str, Any]]
    day_keys: list[dict[str, Any]]


def run_queries(fetch: Fetch, queries: ReportQueries, top: int) -> Rows:
    """Run the report's queries through ``fetch`` (SQL -> rows as dicts, with the
    period's ``start`` and ``end`` bound by the engine)."""
    found = fetch(queries.grouping(top + 1))  # one spare: a NULL campaign row may take a place
    kinds = {r["kind"]: int(r["n"]) for r in fetch(queries.kinds())}
    total = next((r for r in found if r["g"] == GROUPING_IDS["total"]), None)
    if not (total and total["keyed"]):
        return Rows(found, kinds, [], [])
    return Rows(found, kinds, fetch(queries.entries(top)), fetch(queries.day_visitors()))


def assemble(
    rows: Rows,
    first: date,
    last: date,
    tz: ZoneInfo,
    top: int,
    consent: ConsentCounts | None,
    sources: dict[str, Any],
) -> Report:
    """The report from the query results: the same for every engine."""
    found, kinds, entries, day_keys = rows.found, rows.kinds, rows.entries, rows.day_keys
    start, end = _bounds(first, last, tz)
    sql_ids = GROUPING_IDS
    total = next((r for r in found if r["g"] == sql_ids["total"]), None)
    pageviews = total["n"] if total else 0
    keyed = bool(total and total["keyed"])
    located = bool(total and total["located"])

    def ranking(name: str, key: str) -> list[dict[str, Any]]:
        return _rows(found, sql_ids[name], DIMENSIONS[name], key, keyed)

    day_views: Counter[date] = Counter()
    hour_views: Counter[datetime] = Counter()
    undecided: Counter[date] = Counter()
    for r in found:
        if r["g"] not in (sql_ids["quarter"], sql_ids["consent_quarter"]):
            continue
        local = datetime.fromtimestamp(r["q"] * QUARTER, tz)
        if r["g"] == sql_ids["quarter"]:
            day_views[local.date()] += r["n"]
            hour_views[local.replace(minute=0)] += r["n"]
        elif r["consent"] == "undecided":
            undecided[local.date()] += r["n"]
    daily_visitors = {r["d"]: r["v"] for r in day_keys}
    series_day = []
    for n in range((last - first).days + 1):
        d = first + timedelta(n)
        item: dict[str, Any] = {"date": d.isoformat(), "pageviews": day_views[d]}
        if keyed:
            item["visitors"] = daily_visitors.get(d, 0)
        series_day.append(item)
    series_hour = []
    moment = start
    while moment < end:
        local = moment.astimezone(tz)
        series_hour.append(
            {"hour": local.strftime("%Y-%m-%dT%H:00%z"), "pageviews": hour_views[local]}
        )
        moment += timedelta(hours=1)
    figures = (consent or NoConsentCounts()).figures(first, last, tz)
    consent_data = figures.to_dict()
    consent_data["undecided_pageviews"] = [
        {"date": d["date"], "pageviews": undecided.get(date.fromisoformat(d["date"]), 0)}
        for d in series_day
    ]
    visits = int(entries[0]["all_visits"]) if entries else 0
    bounces = int(entries[0]["all_bounces"]) if entries else 0
    entry_pages = [
        {"path": e["path"], "visits": int(e["visits"]),
         "bounce_rate": _rate(int(e["bounces"]), int(e["visits"]))}
        for e in entries
    ]  # fmt: skip
    data: dict[str, Any] = {
        "period": {"from": first.isoformat(), "to": last.isoformat(), "timezone": tz.key},
        "pageviews": pageviews,
        "visitors": total["v"] if keyed and total else None,
        "visits": visits if keyed else None,
        "bounce_rate": _rate(bounces, visits) if keyed else None,
        "requests": {k: kinds.get(k, 0) for k in KINDS},
        "pages": ranking("pages", "path"),
        "entry_pages": entry_pages if keyed else None,
        "referrers": ranking("referrers", "host"),
        "utm": {
            "sources": ranking("utm_sources", "value"),
            "media": ranking("utm_media", "value"),
            "campaigns": ranking("utm_campaigns", "value"),
        },
        "browsers": ranking("browsers", "name"),
        "systems": ranking("systems", "name"),
        "devices": ranking("devices", "name"),
        "countries": ranking("countries", "code") if located else None,
        "series": {"day": series_day, "hour": series_hour},
        "consent": consent_data,
        "sources": sources,
    }
    # campaign and country rankings leave out page views without the value
    for key in ("sources", "media", "campaigns"):
        data["utm"][key] = [r for r in data["utm"][key] if r["value"] is not None][:top]
    if located:
        data["countries"] = [r for r in data["countries"] if r["code"] is not None][:top]
    for key in ("pages", "referrers", "browsers", "systems", "devices"):
        data[key] = data[key][:top]
    return Report(data)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None

