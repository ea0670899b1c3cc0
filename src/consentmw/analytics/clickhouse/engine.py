"""The analytics report from a ClickHouse table: the embedded engine's queries, in
ClickHouse's dialect (:data:`..queries.CLICKHOUSE`), assembled by the same code.

    from consentmw.analytics.clickhouse import ClickHouseEngine, open_client
    engine = ClickHouseEngine(open_client("clickhouse://reader:...@ch:8123/consentmw"))
    data = engine.report(date(2026, 11, 1), date(2026, 11, 30), timezone="Europe/Oslo")
"""

from __future__ import annotations

from datetime import date, datetime
from datetime import timezone as dt_timezone
from typing import Any

from consentmw.analytics.clickhouse.client import Client
from consentmw.analytics.clickhouse.schema import DEFAULT_TABLE, split_table
from consentmw.analytics.consentcounts import ConsentCounts
from consentmw.analytics.queries import CLICKHOUSE, ReportQueries
from consentmw.analytics.report import Report, assemble, check_period, run_queries

__all__ = ["ClickHouseEngine"]


def _utc(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class ClickHouseEngine:
    """Reports from ``table`` (see :mod:`.schema`) through a :class:`.client.Client`."""

    def __init__(self, client: Client, table: str = DEFAULT_TABLE) -> None:
        split_table(table)
        self.client = client
        self.table = table

    def report(
        self,
        first: date,
        last: date,
        *,
        timezone: str = "UTC",
        top: int = 10,
        consent: ConsentCounts | None = None,
    ) -> Report:
        """The report for the days ``first``..``last`` (inclusive, in ``timezone``)."""
        tz, start, end = check_period(first, last, timezone, top)
        queries = ReportQueries(CLICKHOUSE, self.table, tz.key)
        bounds = {"start": _utc(start), "end": _utc(end)}

        def fetch(sql: str) -> list[dict[str, Any]]:
            return self.client.query_dicts(sql, bounds)

        rows = run_queries(fetch, queries, top)
        return assemble(rows, first, last, tz, top, consent, {"clickhouse_table": self.table})
