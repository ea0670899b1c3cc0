"""The embedded query engine: DuckDB reading the period files where they lie.

Every query runs against one view, ``requests``, with the same typed columns whatever
the source: Parquet copies of closed periods and JSON lines (plain or gzip) of the rest.
Missing keys read as NULL, so records written before a field existed still count:
``kind`` falls back to a rule on the older fields (bot device, consent prefix, status,
method, file extension), ``visitor`` and ``country`` stay NULL. Unparseable lines are
skipped. DuckDB runs with a memory limit and spills beyond it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from consentmw.analytics.kind import ASSET_EXTENSIONS, DEFAULT_CONSENT_PREFIX

__all__ = [
    "COLUMNS",
    "JSON_COLUMNS",
    "connect",
    "fetch_dicts",
    "normalized_select",
    "requests_view",
]

logger = logging.getLogger("consentmw.analytics")

#: What the queries read from a JSON line, and its type. Other keys are ignored.
JSON_COLUMNS = {
    "time": "VARCHAR",
    "method": "VARCHAR",
    "path": "VARCHAR",
    "status": "INTEGER",
    "browser": "VARCHAR",
    "os": "VARCHAR",
    "device": "VARCHAR",
    "referrer": "VARCHAR",
    "consent": "VARCHAR",
    "language": "VARCHAR",
    "kind": "VARCHAR",
    "utm_source": "VARCHAR",
    "utm_medium": "VARCHAR",
    "utm_campaign": "VARCHAR",
    "country": "VARCHAR",
    "visitor": "VARCHAR",
}
#: The view's columns (also the columnar copy's), in order.
COLUMNS = (
    "ts", "method", "path", "status", "browser", "os", "device", "referrer", "consent",
    "language", "kind", "utm_source", "utm_medium", "utm_campaign", "country", "visitor",
)  # fmt: skip

_EXT = "|".join(sorted(ASSET_EXTENSIONS))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _kind_fallback(prefix: str) -> str:
    p = _quote(prefix)
    like = _quote(prefix.replace("%", r"\%").replace("_", r"\_") + "/%")
    return (
        "CASE WHEN device = 'bot' THEN 'bot' "
        f"WHEN path = {p} OR path LIKE {like} ESCAPE '\\' THEN 'consent' "
        "WHEN status >= 400 OR status < 100 THEN 'error' "
        "WHEN status BETWEEN 300 AND 399 AND status <> 304 THEN 'redirect' "
        "WHEN method <> 'GET' THEN 'api' "
        f"WHEN regexp_matches(lower(path), '\\.({_EXT})$') THEN 'asset' "
        "ELSE 'page' END"
    )


def connect(memory_limit: str = "700MB", threads: int = 2) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {_quote(memory_limit)}")
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def _json_source(files: Sequence[Path]) -> str:
    columns = "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in JSON_COLUMNS.items()) + "}"
    names = "[" + ", ".join(_quote(str(f)) for f in files) + "]"
    return (
        f"read_json({names}, format = 'newline_delimited', columns = {columns}, "
        "ignore_errors = true, maximum_object_size = 1048576)"
    )


def normalized_select(files: Sequence[Path], prefix: str = DEFAULT_CONSENT_PREFIX) -> str:
    """``SELECT`` of the view's columns from JSON-lines files."""
    return (
        "SELECT TRY_CAST(time AS TIMESTAMPTZ) AS ts, method, path, status, browser, os, "
        "device, referrer, consent, language, "
        f"coalesce(kind, {_kind_fallback(prefix)}) AS kind, "
        "utm_source, utm_medium, utm_campaign, country, visitor "
        f"FROM {_json_source(files)}"
    )


def _readable(con: duckdb.DuckDBPyConnection, select: str) -> bool:
    try:
        con.execute(f"SELECT count(*) FROM ({select})").fetchone()
    except duckdb.Error as exc:
        logger.warning("analytics: skipped an unreadable file: %s", exc)
        return False
    return True


def requests_view(
    con: duckdb.DuckDBPyConnection,
    json_files: Sequence[Path],
    parquet_files: Sequence[Path],
    prefix: str = DEFAULT_CONSENT_PREFIX,
    check: bool = False,
) -> list[Path]:
    """Create the ``requests`` view over these files; returns the files it had to skip.

    A truncated ``.gz`` (a crash mid-compression) or an unreadable copy fails DuckDB's
    whole scan. With ``check`` each source is tried first and, if it fails, each file
    alone, leaving the bad ones out; callers use it after a query failed.
    """
    parts = []
    skipped: list[Path] = []
    if json_files:
        select = normalized_select(json_files, prefix)
        if check and not _readable(con, select):
            good = [f for f in json_files if _readable(con, normalized_select([f], prefix))]
            skipped += [f for f in json_files if f not in good]
            select = normalized_select(good, prefix) if good else ""
        if select:
            parts.append(select)
    if parquet_files:
        cols = ", ".join(COLUMNS)
        names = "[" + ", ".join(_quote(str(f)) for f in parquet_files) + "]"
        select = f"SELECT {cols} FROM read_parquet({names})"
        if check and not _readable(con, select):
            good = [
                f
                for f in parquet_files
                if _readable(con, f"SELECT 1 FROM read_parquet({_quote(str(f))})")
            ]
            skipped += [f for f in parquet_files if f not in good]
            names = "[" + ", ".join(_quote(str(f)) for f in good) + "]"
            select = f"SELECT {cols} FROM read_parquet({names})" if good else ""
        if select:
            parts.append(select)
    if not parts:
        types = {"ts": "TIMESTAMPTZ", "status": "INTEGER"}
        empty = ", ".join(f"NULL::{types.get(c, 'VARCHAR')} AS {c}" for c in COLUMNS)
        parts.append(f"SELECT {empty} WHERE false")
    con.execute("CREATE OR REPLACE TEMP VIEW requests AS " + " UNION ALL ".join(parts))
    return skipped


def fetch_dicts(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> list[dict[str, Any]]:
    cur = con.execute(sql, params if isinstance(params, Mapping) else list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
