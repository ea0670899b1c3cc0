"""The analytics Dashboard mounted in a Starlette app behind HTTP Basic, under uvicorn.

    python tests/browser/analytics_site.py PORT LOG_DIR RECEIPTS_DB
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from consentmw.analytics import Dashboard
from consentmw.analytics.consentcounts import ReceiptConsentCounts
from consentmw.demo import basic_auth
from consentmw.records import SQLiteReceiptStore

USER, PASSWORD = "analyst", "browser-test"


def app(logs: str, receipts: str) -> Starlette:
    dashboard = Dashboard(
        logs,
        authorize=basic_auth(USER, PASSWORD),
        consent=ReceiptConsentCounts(SQLiteReceiptStore(receipts)),
        timezone="Europe/Oslo",
        title="Front Information: analytics",
        challenge='Basic realm="Analytics"',
    )
    return Starlette(routes=[Mount("/stats", dashboard)])


if __name__ == "__main__":
    port, logs, receipts = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(app(logs, receipts), host="127.0.0.1", port=port, log_level="warning")
