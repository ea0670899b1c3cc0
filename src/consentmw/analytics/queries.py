"""The report's SQL, written once for both engines: DuckDB (embedded) and ClickHouse.

Both run the same four queries on a table of the same columns (:data:`.engine.COLUMNS`):
one scan of the period's page views computes every ranking and both series at once
(``GROUPING SETS``), one counts requests by kind, and two more need the visitor key
(visitors per day; visits, bounces and entry pages, from a window over each key's views).
Where the dialects differ is a handful of spellings, all in :class:`Dialect`:

==============  ==============================  =========================================
what            DuckDB                          ClickHouse
==============  ==============================  =========================================
grouping id     ``GROUPING_ID(a, b)``           ``grouping(a, b)`` (same bits)
quarter hour    ``epoch_ms(ts) // 900000``      ``intDiv(toUnixTimestamp64Milli(ts), 900000)``
local day       ``ts::DATE`` (session zone)     ``toDate(ts, 'Europe/Oslo')``
parameter       ``$start``                      ``{start:DateTime64(3, 'UTC')}``
epoch millis    ``epoch_ms(ts)``                ``toUnixTimestamp64Milli(ts)``
previous row    ``lag(ms)``                     ``lagInFrame(toNullable(ms))`` (NULL, not 0)
next row        ``lead(ms)``                    ``leadInFrame(toNullable(ms))`` (the same)
NULL keys       NULL outside a grouping set     the same with ``group_by_use_nulls = 1``
==============  ==============================  =========================================

Rankings break ties by value (``NULL`` first) in SQL and in Python alike, so the rows
kept at the ``top`` boundary are the same whichever engine ran the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CLICKHOUSE", "DIMENSIONS", "DUCKDB", "GROUPING_IDS", "QUARTER", "VISIT_GAP_MINUTES",
    "Dialect", "ReportQueries",
]  # fmt: skip

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
QUARTER = 900  # seconds: every zone's offset is a multiple, so local hours and days add up
#: A key's page views this far apart or more are two visits.
VISIT_GAP_MINUTES = 30
_GROUPED = [*DIMENSIONS.values(), "q", "consent"]


def _grouping_ids() -> dict[str, int]:
    """Each grouping set's id: one bit per grouped column, set when it is not in the set
    (the SQL standard's ``GROUPING``, which both dialects follow)."""
    everything = (1 << len(_GROUPED)) - 1

    def mask(cols: str) -> int:
        m = everything
        for col in cols.split(", "):
            m &= ~(1 << (len(_GROUPED) - 1 - _GROUPED.index(col)))
        return m

    ids = {"total": everything}
    ids.update({name: mask(col) for name, col in DIMENSIONS.items()})
    ids.update({name: mask(cols) for name, cols in _SERIES.items()})
    return ids


#: Report part -> the grouping id of its rows in :meth:`ReportQueries.grouping`.
GROUPING_IDS = _grouping_ids()


@dataclass(frozen=True)
class Dialect:
    """The spellings that differ; ``{tz}`` and ``{name}`` are filled in by the queries."""

    name: str
    grouping: str
    quarter: str
    local_date: str
    param: str
    epoch_ms: str
    previous: str
    following: str
    settings: str = ""


DUCKDB = Dialect(
    name="duckdb",
    grouping="GROUPING_ID",
    quarter=f"epoch_ms(ts) // {QUARTER * 1000}",  # truncated: a cast would round
    local_date="ts::DATE",  # the connection's TimeZone is the report's
    param="${name}",
    epoch_ms="epoch_ms(ts)",
    previous="lag({col})",
    following="lead({col})",
)
CLICKHOUSE = Dialect(
    name="clickhouse",
    grouping="grouping",
    quarter=f"intDiv(toUnixTimestamp64Milli(ts), {QUARTER * 1000})",
    local_date="toDate(ts, {tz})",
    param="{{{name}:DateTime64(3, 'UTC')}}",
    epoch_ms="toUnixTimestamp64Milli(ts)",
    # lag/lead would give 0, not NULL, before the first and after the last view
    previous="lagInFrame(toNullable({col}))",
    following="leadInFrame(toNullable({col}))",
    settings="SETTINGS group_by_use_nulls = 1",
)


_ZONE = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


def zone_literal(tz: str) -> str:
    """An IANA zone name as a SQL literal; the two dialects escape differently, so only
    names that need no escaping are accepted."""
    if not _ZONE.match(tz):
        raise ValueError(f"not a time zone name: {tz!r}")
    return f"'{tz}'"


@dataclass(frozen=True)
class ReportQueries:
    """The report's queries over ``table`` for page views between ``$start`` and ``$end``.

    ``tz`` is an IANA zone name (already validated by ``ZoneInfo``).
    """

    dialect: Dialect
    table: str
    tz: str = "UTC"

    def _p(self, name: str) -> str:
        return self.dialect.param.format(name=name)

    @property
    def _period(self) -> str:
        return f"ts >= {self._p('start')} AND ts < {self._p('end')}"

    @property
    def _day(self) -> str:
        return self.dialect.local_date.format(tz=zone_literal(self.tz))

    def grouping(self, top: int) -> str:
        """One scan, every grouping; each row's ``g`` is in :data:`GROUPING_IDS`.

        Only page views are grouped. Time is grouped in UTC quarter hours (an integer, no
        time-zone arithmetic per row); local hours and days are summed from them afterwards.
        """
        sets = ["()", *(f"({col})" for col in DIMENSIONS.values())]
        sets += [f"({cols})" for cols in _SERIES.values()]
        ranked = ", ".join(str(GROUPING_IDS[n]) for n in DIMENSIONS)
        # outside its own grouping set a dimension is NULL: the coalesce is the set's value
        value = f"coalesce({', '.join(DIMENSIONS.values())})"
        return f"""
            SELECT * FROM (
                SELECT {self.dialect.grouping}({", ".join(_GROUPED)}) AS g, {", ".join(_GROUPED)},
                       count(*) AS n, count(DISTINCT visitor) AS v,
                       count(visitor) AS keyed, count(country) AS located, {value} AS k
                FROM (
                    SELECT *, {self.dialect.quarter} AS q
                    FROM {self.table} WHERE kind = 'page' AND {self._period}
                )
                GROUP BY GROUPING SETS ({", ".join(sets)})
            )
            QUALIFY g NOT IN ({ranked})
                OR row_number() OVER (PARTITION BY g ORDER BY n DESC, k IS NOT NULL, k)
                    <= {int(top)}
            {self.dialect.settings}
        """

    def kinds(self) -> str:
        return (
            f"SELECT kind, count(*) AS n FROM {self.table} WHERE {self._period} GROUP BY kind"
        )

    def day_visitors(self) -> str:
        return (
            f"SELECT {self._day} AS d, count(DISTINCT visitor) AS v FROM {self.table} "
            f"WHERE kind = 'page' AND {self._period} GROUP BY d"
        )

    def entries(self, top: int) -> str:
        """Visits by entry page: each row's ``visits`` and ``bounces``, and on every row
        the period's ``all_visits`` and ``all_bounces`` (every entry page, not only the
        ``top`` kept).

        A key's page view starts a visit when the key's previous view is
        :data:`VISIT_GAP_MINUTES` or more before it, or there is none; the visit is a
        bounce when the key's next view is as far after it, or there is none. Views of
        one key in the same millisecond are ordered by path, so both engines pick the
        same entry page.
        """
        d = self.dialect
        gap = VISIT_GAP_MINUTES * 60_000  # milliseconds, like ``ms``
        return f"""
            SELECT path, count(*) AS visits, sum(bounce) AS bounces,
                   sum(count(*)) OVER () AS all_visits,
                   sum(sum(bounce)) OVER () AS all_bounces
            FROM (
                SELECT path,
                       CASE WHEN nxt IS NULL OR nxt - ms >= {gap} THEN 1 ELSE 0 END AS bounce
                FROM (
                    SELECT path, ms,
                           {d.previous.format(col="ms")} OVER w AS prev,
                           {d.following.format(col="ms")} OVER w AS nxt
                    FROM (
                        SELECT visitor, path, {d.epoch_ms} AS ms FROM {self.table}
                        WHERE kind = 'page' AND visitor IS NOT NULL AND {self._period}
                    )
                    WINDOW w AS (
                        PARTITION BY visitor ORDER BY ms, path
                        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
                    )
                )
                WHERE prev IS NULL OR ms - prev >= {gap}
            )
            GROUP BY path ORDER BY visits DESC, path LIMIT {int(top)}
        """
