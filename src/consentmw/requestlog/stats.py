"""Summaries of the request logs: requests per day, top pages, browser/OS/device shares.

Reads plain and gzip-compressed files; a torn or foreign line is counted and skipped.
The HTML report is one self-contained page (inline CSS bars, no scripts) and escapes
everything it prints, since paths and names in the log come from visitors.
"""

from __future__ import annotations

import gzip
import html
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from consentmw.requestlog.files import READ_FLAGS, open_log_file
from consentmw.requestlog.maintenance import list_log_files

__all__ = ["LogStats", "collect_stats", "iter_records", "render_html", "render_table"]


@dataclass
class LogStats:
    files: int = 0
    records: int = 0
    bad_lines: int = 0
    per_day: Counter[str] = field(default_factory=Counter)
    pages: Counter[str] = field(default_factory=Counter)
    browsers: Counter[str] = field(default_factory=Counter)
    systems: Counter[str] = field(default_factory=Counter)
    devices: Counter[str] = field(default_factory=Counter)
    consent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)


def iter_records(directory: str | Path, stats: LogStats | None = None) -> Iterator[dict[str, Any]]:
    """Every well-formed record in the directory's log files, oldest period first."""
    for log in list_log_files(directory):
        if stats is not None:
            stats.files += 1
        try:
            with os.fdopen(open_log_file(log.path, READ_FLAGS), "rb") as raw:
                fh: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if log.compressed else raw
                for line in fh:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = None
                    if isinstance(record, dict):
                        yield record
                    elif stats is not None:
                        stats.bad_lines += 1
        except (OSError, EOFError):
            if stats is not None:
                stats.bad_lines += 1  # truncated gzip or unreadable file


def collect_stats(directory: str | Path) -> LogStats:
    stats = LogStats()
    for r in iter_records(directory, stats):
        stats.records += 1
        stats.per_day[str(r.get("time", ""))[:10]] += 1
        stats.pages[str(r.get("path"))] += 1
        stats.browsers[str(r.get("browser"))] += 1
        stats.systems[str(r.get("os"))] += 1
        stats.devices[str(r.get("device"))] += 1
        stats.consent[str(r.get("consent"))] += 1
        stats.statuses[f"{str(r.get('status', '?'))[:1]}xx"] += 1
    return stats


def _sections(stats: LogStats, top: int) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        ("Requests per day (UTC)", sorted(stats.per_day.items())),
        (f"Top {top} pages", stats.pages.most_common(top)),
        ("Browsers", stats.browsers.most_common(top)),
        ("Operating systems", stats.systems.most_common(top)),
        ("Devices", stats.devices.most_common()),
        ("Consent", stats.consent.most_common()),
        ("Status classes", sorted(stats.statuses.items())),
    ]


def _share(count: int, total: int) -> str:
    return f"{100.0 * count / total:5.1f}%" if total else "  -  "


def render_table(stats: LogStats, top: int = 10) -> str:
    lines = [f"{stats.records} requests in {stats.files} file(s)"]
    if stats.bad_lines:
        lines[0] += f" ({stats.bad_lines} unreadable line(s) skipped)"
    for title, rows in _sections(stats, top):
        lines += ["", title, "-" * len(title)]
        width = max((len(k) for k, _ in rows), default=0)
        width = min(max(width, 10), 60)
        for name, count in rows:
            shown = name if len(name) <= 60 else name[:57] + "..."
            lines.append(f"{shown:<{width}}  {count:>9}  {_share(count, stats.records)}")
    return "\n".join(lines) + "\n"


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td{padding:2px 6px;vertical-align:middle}
td.n{text-align:right;font-variant-numeric:tabular-nums;width:6rem}
td.k{max-width:24rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.w{width:50%}.bar{background:#3b6fb6;height:.8rem;border-radius:2px}"""


def render_html(stats: LogStats, top: int = 10, title: str = "Request log report") -> str:
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{stats.records} requests in {stats.files} file(s). Pseudonymous: masked IPs, "
        "no User-Agent strings, no query strings.</p>",
    ]
    for heading, rows in _sections(stats, top):
        peak = max((c for _, c in rows), default=1) or 1
        parts.append(f"<h2>{esc(heading)}</h2><table>")
        for name, count in rows:
            width = 100.0 * count / peak
            parts.append(
                f'<tr><td class="k" title="{esc(name)}">{esc(name)}</td>'
                f'<td class="n">{count}</td><td class="n">{_share(count, stats.records)}</td>'
                f'<td class="w"><div class="bar" style="width:{width:.1f}%"></div></td></tr>'
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
