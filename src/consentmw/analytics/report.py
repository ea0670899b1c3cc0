"""The numbers of one period: page views, visitors, pages, sources, audiences, consent.

:func:`build_report` runs a few queries on the ``requests`` view (:mod:`.engine`): one
scan of the period's page views computes every ranking and both series at once
(``GROUPING SETS``), one counts requests by kind, and visits need the visitor key.
Visitors, visits, bounce rate and entry pages are ``None`` when no record carries a
``visitor`` key, countries when none carries a ``country``: absent data is not a zero.

A visitor key lives one day (its salt is destroyed), so "visitors" over several days
counts each person once per day they came. A visit is a run of one key's page views with gaps under
30 minutes; it ends at midnight with the key. Its first page is its entry page, and a
visit of one page view is a bounce.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from consentmw.analytics.consentcounts import ConsentCounts, NoConsentCounts
from consentmw.analytics.engine import connect, fetch_dicts, requests_view
from consentmw.analytics.kind import DEFAULT_CONSENT_PREFIX, KINDS
from consentmw.analytics.sources import find_periods

__all__ = ["DIMENSIONS", "Report", "build_report"]

#: Ranked dimensions of page views: report key -> column.
DIMENSIONS = {
    "pages": "path",
    "referrers": "referrer",
    "utm_sources": "utm_source",
    "utm_media": "utm_medium",
    "utm_campaigns": "utm_campaign",
    "browsers": "browser",
    "systems": "os",
    "devices": "device",
    "countries": "country",
}
_SERIES = {"quarter": "q", "consent_quarter": "q, consent"}
_QUARTER = 900  # seconds: every zone's offset is a multiple, so local hours and days add up
VISIT_GAP_MINUTES = 30
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


def _grouping_sql(top: int) -> tuple[str, dict[str, int]]:
    """One scan, every grouping; returns the SQL and each set's GROUPING_ID.

    Only page views are grouped. Time is grouped in UTC quarter hours (an integer, no
    time-zone arithmetic per row); local hours and days are summed from them afterwards.
    """
    columns = [*DIMENSIONS.values(), "q", "consent"]
    everything = (1 << len(columns)) - 1

    def mask(cols: str) -> int:
        m = everything
        for col in cols.split(", "):
            m &= ~(1 << (len(columns) - 1 - columns.index(col)))
        return m

    ids: dict[str, int] = {"total": everything}
    sets = ["()"]
    for name, col in DIMENSIONS.items():
        sets.append(f"({col})")
        ids[name] = mask(col)
    for name, cols in _SERIES.items():
        sets.append(f"({cols})")
        ids[name] = mask(cols)
    ranked = ", ".join(str(ids[n]) for n in DIMENSIONS)
    sql = f"""
        SELECT GROUPING_ID({", ".join(columns)}) AS g, {", ".join(columns)},
               count(*) AS n, count(DISTINCT visitor) AS v,
               count(visitor) AS keyed, count(country) AS located
        FROM (
            SELECT *, epoch(ts)::BIGINT // {_QUARTER} AS q
            FROM requests WHERE kind = 'page' AND ts >= ? AND ts < ?
        )
        GROUP BY GROUPING SETS ({", ".join(sets)})
        QUALIFY g NOT IN ({ranked})
            OR row_number() OVER (PARTITION BY g ORDER BY n DESC) <= {top}
    """
    return sql, ids


def _rows(found: list[dict[str, Any]], g: int, col: str, key: str, keyed: bool) -> list:
    rows = [r for r in found if r["g"] == g]
    rows.sort(key=lambda r: (-r["n"], str(r[col])))
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
    """The report for the days ``first``..``last`` (inclusive, in ``timezone``)."""
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    if not 1 <= top <= MAX_TOP:
        raise ValueError(f"top must be 1..{MAX_TOP}, got {top}")
    tz = ZoneInfo(timezone)
    start, end = _bounds(first, last, tz)
    periods = find_periods(directory, first, last)
    json_files = [f for p in periods for f in p.json_files]
    parquet_files = [p.columnar for p in periods if p.columnar]
    con = connect(memory_limit=memory_limit)
    try:
        con.execute(f"SET TimeZone = '{tz.key}'")
        skipped = requests_view(con, json_files, parquet_files, consent_prefix)
        try:
            found, kinds, entries, day_keys = _query(con, start, end, top)
        except (duckdb.IOException, duckdb.InvalidInputException):
            skipped = requests_view(con, json_files, parquet_files, consent_prefix, check=True)
            found, kinds, entries, day_keys = _query(con, start, end, top)
    finally:
        con.close()
    sql_ids = _grouping_sql(top)[1]
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
        local = datetime.fromtimestamp(r["q"] * _QUARTER, tz)
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
        {"path": e["path"], "visits": e["visits"], "bounce_rate": _rate(e["bounces"], e["visits"])}
        for e in entries
    ]
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
        "sources": {
            "periods": len(periods),
            "json_files": len(json_files),
            "columnar_files": len(parquet_files),
            "skipped_files": [str(f) for f in skipped],
        },
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


def _query(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, top: int
) -> tuple[list[dict[str, Any]], dict[str, int], list[dict[str, Any]], list[dict[str, Any]]]:
    sql, ids = _grouping_sql(top + 1)  # one spare: a NULL campaign row may take a place
    found = fetch_dicts(con, sql, [start, end])
    kinds = dict(
        con.execute(
            "SELECT kind, count(*) FROM requests WHERE ts >= ? AND ts < ? GROUP BY kind",
            [start, end],
        ).fetchall()
    )
    total = next((r for r in found if r["g"] == ids["total"]), None)
    if not (total and total["keyed"]):
        return found, kinds, [], []
    day_keys = fetch_dicts(
        con,
        "SELECT ts::DATE AS d, count(DISTINCT visitor) AS v FROM requests "
        "WHERE kind = 'page' AND ts >= ? AND ts < ? GROUP BY d",
        [start, end],
    )
    entries = fetch_dicts(
        con,
        f"""
        WITH views AS (
            SELECT visitor, ts, path,
                   CASE WHEN ts - lag(ts) OVER w < INTERVAL {VISIT_GAP_MINUTES} MINUTE
                        THEN 0 ELSE 1 END AS starts
            FROM requests
            WHERE kind = 'page' AND visitor IS NOT NULL AND ts >= ? AND ts < ?
            WINDOW w AS (PARTITION BY visitor ORDER BY ts, path)
        ), numbered AS (
            SELECT *, sum(starts) OVER (
                PARTITION BY visitor ORDER BY ts, path ROWS UNBOUNDED PRECEDING
            ) AS visit
            FROM views
        ), visits AS (
            SELECT arg_min(path, ts) AS path, count(*) AS views
            FROM numbered GROUP BY visitor, visit
        )
        SELECT path, count(*) AS visits, count(*) FILTER (WHERE views = 1) AS bounces,
               sum(count(*)) OVER () AS all_visits,
               sum(count(*) FILTER (WHERE views = 1)) OVER () AS all_bounces
        FROM visits GROUP BY path ORDER BY visits DESC, path LIMIT {int(top)}
        """,
        [start, end],
    )
    return found, kinds, entries, day_keys
