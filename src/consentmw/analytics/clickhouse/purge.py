"""Retention in ClickHouse: drop the monthly partitions older than the retention.

The same rule as the request log's files (:func:`consentmw.requestlog.maintenance.purge`):
a partition goes once its month ended at least ``retention_months`` ago, so a record is
kept for the retention and at most one month more (a file: at most one period more).
A legal hold, from ``legal_hold`` or the ``LEGAL_HOLD`` file in the request log's
directory, suspends every drop and is reported, exactly as it suspends deleting files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from consentmw.analytics.clickhouse.client import Client
from consentmw.analytics.clickhouse.schema import DEFAULT_TABLE, split_table
from consentmw.retention import legal_hold_reason, months_before, validate_retention_months

__all__ = ["PartitionPurge", "purge_partitions"]

logger = logging.getLogger("consentmw.analytics")


@dataclass
class PartitionPurge:
    expired: list[str] = field(default_factory=list)  # partition ids past retention
    dropped: list[str] = field(default_factory=list)
    rows: int = 0  # rows in the expired partitions
    held: str | None = None
    dry_run: bool = False


def _month_end(partition: str) -> datetime | None:
    if len(partition) != 6 or not partition.isdigit():
        return None  # not a toYYYYMM partition: never touched
    year, month = int(partition[:4]), int(partition[4:])
    if not 1 <= month <= 12:
        return None
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc)


def purge_partitions(
    client: Client,
    retention_months: int,
    *,
    table: str = DEFAULT_TABLE,
    now: float | None = None,
    legal_hold: bool | str = False,
    hold_directory: str | Path | None = None,
    dry_run: bool = False,
) -> PartitionPurge:
    """Drop ``table``'s partitions whose month ended before now minus the retention."""
    months = validate_retention_months(retention_months, "retention_months")
    database, name = split_table(table)
    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    cutoff = months_before(moment, months)
    where = "database = " + ("{db:String}" if database else "currentDatabase()")
    found = client.query_dicts(
        f"SELECT count() AS n FROM system.tables WHERE {where} AND name = {{name:String}}",
        {"db": database or "", "name": name},
    )
    if not found[0]["n"]:
        # a misspelt table would make every daily purge a silent no-op
        raise ValueError(f"there is no table {table}")
    parts = client.query_dicts(
        "SELECT partition_id AS id, sum(rows) AS n FROM system.parts "
        f"WHERE {where} AND table = {{name:String}} AND active "
        "GROUP BY partition_id ORDER BY partition_id",
        {"db": database or "", "name": name},
    )
    result = PartitionPurge(dry_run=dry_run)
    for part in parts:
        end = _month_end(str(part["id"]))
        if end is not None and end <= cutoff:
            result.expired.append(str(part["id"]))
            result.rows += int(part["n"])
    if not result.expired:
        return result
    result.held = legal_hold_reason(hold_directory, legal_hold)
    if result.held is not None:
        logger.warning(
            "clickhouse: deletion suspended by legal hold (%s); %d partition(s) of %s "
            "(%d rows) are past the %d-month retention and are kept",
            result.held, len(result.expired), table, result.rows, months,
        )  # fmt: skip
        return result
    if dry_run:
        return result
    for partition in result.expired:
        client.command(f"ALTER TABLE {table} DROP PARTITION ID '{partition}'")
        result.dropped.append(partition)
    logger.info(
        "clickhouse: dropped %d partition(s) older than %d months from %s",
        len(result.dropped), months, table,
    )  # fmt: skip
    return result

