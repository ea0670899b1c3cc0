"""Compact columnar copies of closed periods, so a month's report reads in seconds.

Reading JSON lines costs about a microsecond of CPU per record to decompress and parse:
30 days of 10 million requests take longer than anyone waits for a report. Once a
period has been compressed (it is closed), its records are copied into
``requests-<period>.parquet`` beside the ``.gz``: only the columns the reports read
(no IP, ISP, sizes or durations), typed, zstd-compressed.

A copy never outlives its source: :func:`sync` deletes every copy whose ``.gz`` and
``.jsonl`` are gone, and the request log's purge deletes copies of expired periods with
the period's files (and keeps them under a legal hold, like the files). A copy older
than its ``.gz`` (late lines compressed into it) is rewritten; until then the ``.gz`` is
read instead.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from consentmw.analytics.engine import COLUMNS, connect, normalized_select
from consentmw.analytics.kind import DEFAULT_CONSENT_PREFIX
from consentmw.analytics.sources import COLUMNAR_RE, columnar_path, find_periods

__all__ = ["SyncResult", "sync"]

logger = logging.getLogger("consentmw.analytics")

TMP_PREFIX = ".tmp-"  # the request log's stale-temporary cleanup removes crashed ones


@dataclass
class SyncResult:
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)


def _remove_orphans(folder: Path, result: SyncResult) -> None:
    try:
        names = set(os.listdir(folder))
    except OSError:
        return
    for name in names:
        m = COLUMNAR_RE.match(name)
        if m is None:
            continue
        key = m["key"]
        if f"requests-{key}.jsonl.gz" in names or f"requests-{key}.jsonl" in names:
            continue
        try:
            (folder / name).unlink()
            result.removed.append(folder / name)
        except FileNotFoundError:
            pass


def sync(
    directory: str | os.PathLike[str],
    prefix: str = DEFAULT_CONSENT_PREFIX,
    limit: int | None = None,
) -> SyncResult:
    """Write missing or stale copies of compressed periods; delete orphaned copies.

    Safe beside running writers and compressors: a copy is written under a temporary
    name and renamed into place, and only ``.gz`` files (which never change in place)
    are copied. ``limit`` bounds how many copies one call writes.
    """
    result = SyncResult()
    con = None
    folders = set()
    for period in find_periods(directory):
        folders.add(period.directory)
        if period.compressed is None or period.columnar is not None:
            continue
        if limit is not None and len(result.written) >= limit:
            break
        con = con or connect(memory_limit="256MB", threads=1)
        target = columnar_path(period)
        tmp = target.with_name(f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}-{target.name}")
        select = normalized_select([period.compressed], prefix)
        quoted = "'" + str(tmp).replace("'", "''") + "'"
        try:
            source_mtime = period.compressed.stat().st_mtime_ns
            con.execute(
                f"COPY (SELECT {', '.join(COLUMNS)} FROM ({select}) ORDER BY ts) "
                f"TO {quoted} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
            )
            # The copy carries its source's time: a .gz replaced while we copied is newer.
            os.utime(tmp, ns=(source_mtime, source_mtime))
            os.replace(tmp, target)
            result.written.append(target)
        except (duckdb.Error, OSError) as exc:
            logger.warning("analytics: could not copy %s: %s", period.compressed, exc)
            result.failed.append(period.compressed)
            tmp.unlink(missing_ok=True)
    folders.add(Path(directory))
    for folder in folders:
        _remove_orphans(folder, result)
    if con is not None:
        con.close()
    return result

