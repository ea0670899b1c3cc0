"""Which files hold a date range's records: the period files, and their columnar copies.

The request log writes ``requests-<period>.jsonl`` (gzip-compressed once the period has
ended); a fleet may ship each host's files into a subdirectory of one directory, so the
directory and its direct subdirectories are searched. A closed period may have a
Parquet copy (:mod:`.columnar`) beside its ``.gz``: it is used while it is at least as
new as the ``.gz`` (a late line compressed into the ``.gz`` makes it stale), and a plain
``.jsonl`` of late lines beside them is read as well.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

__all__ = ["COLUMNAR_RE", "Period", "columnar_path", "find_periods"]

LOG_RE = re.compile(r"^requests-(?P<key>\d{4}-\d{2}-\d{2}(?:T[\d-]{2,8})?)\.jsonl(?P<gz>\.gz)?$")
COLUMNAR_RE = re.compile(r"^requests-(?P<key>\d{4}-\d{2}-\d{2}(?:T[\d-]{2,8})?)\.parquet$")


@dataclass(frozen=True)
class Period:
    """One period of one directory: what to read for it."""

    directory: Path
    key: str
    day: date
    plain: Path | None  # requests-KEY.jsonl (open period, or late lines)
    compressed: Path | None  # requests-KEY.jsonl.gz
    columnar: Path | None  # requests-KEY.parquet, only when fresh

    @property
    def json_files(self) -> list[Path]:
        """The JSON-lines files to read: the plain one, and the ``.gz`` unless a fresh
        columnar copy stands in for it."""
        files = [self.plain] if self.plain else []
        if self.compressed and not self.columnar:
            files.append(self.compressed)
        return files


def columnar_path(period: Period) -> Path:
    return period.directory / f"requests-{period.key}.parquet"


def _directories(directory: Path) -> list[Path]:
    found = [directory]
    try:
        with os.scandir(directory) as entries:
            found += sorted(
                Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")
            )
    except OSError:
        pass
    return found


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def find_periods(
    directory: str | os.PathLike[str],
    first: date | None = None,
    last: date | None = None,
) -> list[Period]:
    """Periods whose file names fall within ``first``..``last`` (a day of slack each side,
    for time zones: rows are filtered by their time afterwards), oldest first."""
    low = first - timedelta(days=1) if first else None
    high = last + timedelta(days=1) if last else None
    periods = []
    for folder in _directories(Path(directory)):
        keys: dict[str, dict[str, Path]] = {}
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            m = LOG_RE.match(name)
            kind = ("gz" if m["gz"] else "plain") if m else None
            if m is None:
                m = COLUMNAR_RE.match(name)
                kind = "parquet" if m else None
            if m is None or kind is None:
                continue
            keys.setdefault(m["key"], {})[kind] = folder / name
        for key, files in keys.items():
            try:
                day = date.fromisoformat(key[:10])
            except ValueError:
                continue
            if (low and day < low) or (high and day > high):
                continue
            gz, parquet = files.get("gz"), files.get("parquet")
            fresh = None
            if gz and parquet:
                pm, gm = _mtime(parquet), _mtime(gz)
                if pm is not None and gm is not None and pm >= gm:
                    fresh = parquet
            if not gz and not files.get("plain"):
                continue  # an orphaned copy: its source is gone (see columnar.sync)
            periods.append(Period(folder, key, day, files.get("plain"), gz, fresh))
    periods.sort(key=lambda p: (p.key, str(p.directory)))
    return periods
