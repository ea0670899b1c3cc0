"""The ClickHouse table the request log's JSON lines are shipped into.

The columns are the embedded engine's view (:data:`..engine.COLUMNS`) under the record's
own key names (``time``, not ``ts``), so a JSON line inserts as it is: no IP, ISP, sizes
or durations (the shipper keeps only these keys). ``kind`` of records written before
the field existed is computed on insert by the same rule the embedded engine applies
when it reads them (:mod:`..engine`), here in ClickHouse SQL.

Months are partitions (``toYYYYMM(time)``) so that retention drops whole partitions.
There is deliberately no ``TTL ... DELETE``: ClickHouse applies a TTL in background
merges that cannot ask whether a legal hold is in force, and a hold must stop every
deletion. Retention is ``consentmw analytics clickhouse purge`` (:mod:`.purge`), which
asks the request log's hold first.
"""

from __future__ import annotations

import re

from consentmw.analytics.kind import ASSET_EXTENSIONS, DEFAULT_CONSENT_PREFIX

__all__ = ["DEFAULT_TABLE", "TABLE_COLUMNS", "create_table_sql", "split_table"]

DEFAULT_TABLE = "consentmw.requests"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

#: Column -> ClickHouse type, in the order of the embedded engine's view (``time`` is
#: its ``ts``). Strings the report may find absent are Nullable: absent is not empty.
TABLE_COLUMNS = {
    "time": "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))",
    "method": "LowCardinality(String)",
    "path": "String CODEC(ZSTD(1))",
    "status": "Int32",
    "browser": "LowCardinality(Nullable(String))",
    "os": "LowCardinality(Nullable(String))",
    "device": "LowCardinality(Nullable(String))",
    "referrer": "LowCardinality(Nullable(String))",
    "consent": "LowCardinality(Nullable(String))",
    "language": "LowCardinality(Nullable(String))",
    "kind": "LowCardinality(String)",  # DEFAULT: the fallback rule, see create_table_sql
    "utm_source": "LowCardinality(Nullable(String))",
    "utm_medium": "LowCardinality(Nullable(String))",
    "utm_campaign": "LowCardinality(Nullable(String))",
    "country": "LowCardinality(Nullable(String))",
    "visitor": "Nullable(String)",
}


def split_table(table: str) -> tuple[str | None, str]:
    """``"db.table"`` -> ``("db", "table")``; names are plain identifiers, never quoted."""
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
        raise ValueError(
            f"table must be NAME or DATABASE.NAME (letters, digits, underscores), got {table!r}"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def kind_fallback(prefix: str = DEFAULT_CONSENT_PREFIX) -> str:
    """The ``kind`` of a record without one, from its other fields (ClickHouse SQL)."""
    p = _literal(prefix)
    extensions = "|".join(sorted(ASSET_EXTENSIONS))
    return (
        "multiIf(device = 'bot', 'bot', "
        f"path = {p} OR startsWith(path, {_literal(prefix + '/')}), 'consent', "
        "status >= 400 OR status < 100, 'error', "
        "status BETWEEN 300 AND 399 AND status != 304, 'redirect', "
        "method != 'GET', 'api', "
        f"match(lower(path), '\\\\.({extensions})$'), 'asset', "
        "'page')"
    )


def create_table_sql(
    table: str = DEFAULT_TABLE, consent_prefix: str = DEFAULT_CONSENT_PREFIX
) -> str:
    """``CREATE TABLE IF NOT EXISTS``: monthly partitions, no TTL (see the module doc)."""
    split_table(table)
    columns = []
    for name, kind in TABLE_COLUMNS.items():
        default = f" DEFAULT {kind_fallback(consent_prefix)}" if name == "kind" else ""
        columns.append(f"    {name} {kind}{default}")
    columns.append("    ts DateTime64(3, 'UTC') ALIAS time")
    return (
        f"CREATE TABLE IF NOT EXISTS {table}\n(\n"
        + ",\n".join(columns)
        + "\n)\nENGINE = MergeTree\nPARTITION BY toYYYYMM(time)\nORDER BY (kind, time)\n"
        "-- no TTL: retention is `consentmw analytics clickhouse purge`, which honours a\n"
        "-- legal hold (a TTL merge cannot)\n"
    )
