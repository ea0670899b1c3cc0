"""Cookie-free analytics from the request log: page views, campaigns, consent figures.

The pure parts (:mod:`.kind`, :mod:`.campaign`, :mod:`.fields`) are used by the request
log's writer and need nothing beyond the standard library. The report and the dashboard
need the query engine (``pip install 'consentmw[analytics]'``) and are imported lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dashboard", "Report", "build_report"]


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        from consentmw.analytics.dashboard import Dashboard

        return Dashboard
    if name in ("Report", "build_report"):
        from consentmw.analytics import report

        return getattr(report, name)
    raise AttributeError(f"module 'consentmw.analytics' has no attribute {name!r}")
