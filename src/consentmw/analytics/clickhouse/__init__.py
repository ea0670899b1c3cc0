"""ClickHouse for sites whose request logs outgrow one machine.

Each host ships its period files to one ClickHouse table (``examples/clickhouse/``: a
Vector configuration), :class:`ClickHouseEngine` runs the embedded engine's report there
and :func:`purge_partitions` keeps the retention, under the request log's legal hold.
Needs ``pip install 'consentmw[clickhouse]'`` (``clickhouse-connect``) for a server.
"""

from __future__ import annotations

from consentmw.analytics.clickhouse.client import ChdbClient, Client, ConnectClient, open_client
from consentmw.analytics.clickhouse.engine import ClickHouseEngine
from consentmw.analytics.clickhouse.purge import PartitionPurge, purge_partitions
from consentmw.analytics.clickhouse.schema import DEFAULT_TABLE, create_table_sql

__all__ = [
    "DEFAULT_TABLE",
    "ChdbClient",
    "ClickHouseEngine",
    "Client",
    "ConnectClient",
    "PartitionPurge",
    "create_table_sql",
    "open_client",
    "purge_partitions",
]
