"""Proof-of-consent receipts: one per decision, kept for the retention period.

``open_store(records_url)`` picks the backend: SQLite (default, one file, no server) or
PostgreSQL (one database shared by a fleet behind a load balancer).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from consentmw.records.base import (
    ACTIONS,
    SOURCES,
    Receipt,
    ReceiptStore,
    RecordsUnavailable,
    purge_periodically,
)
from consentmw.records.counters import EventCounter
from consentmw.records.counts import KINDS as COUNT_KINDS
from consentmw.records.counts import CountRow
from consentmw.records.holds import ForgetResult, HeldBy, Hold
from consentmw.records.sqlite import SQLiteReceiptStore
from consentmw.records.texts import StoredTexts

__all__ = [
    "ACTIONS",
    "COUNT_KINDS",
    "DEFAULT_RECORDS_URL",
    "SOURCES",
    "CountRow",
    "EventCounter",
    "ForgetResult",
    "HeldBy",
    "Hold",
    "Receipt",
    "ReceiptStore",
    "RecordsUnavailable",
    "SQLiteReceiptStore",
    "StoredTexts",
    "open_store",
    "purge_periodically",
    "redact_url",
]

DEFAULT_RECORDS_URL = "sqlite:///consentmw-receipts.db"
_ACCEPTED = (
    "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db' or "
    "'postgresql://user@host:5432/dbname' (also 'postgres://')"
)


# libpq and most drivers also take secrets as query parameters (?password=...).
_SECRET_PARAMS = re.compile(
    r"(?i)(?<=[?&;])(password|pass|pwd|secret|token|sslpassword|api_key|apikey)=[^&;#]*"
)


def redact_url(url: str) -> str:
    """``url`` without its password (user info or query parameter), for errors and logs."""
    url = _SECRET_PARAMS.sub(r"\1=***", url)
    try:
        password = urlsplit(url).password
    except ValueError:  # unparsable: hide everything that could be user info
        return re.sub(r"//[^/?#]*@", "//***@", url)
    if password is None:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def open_store(
    url: str,
    *,
    retention_months: int = 18,
    legal_hold_dir: str | os.PathLike[str] | None = None,
) -> ReceiptStore:
    """Build the store for ``records_url``; nothing is opened or created until first use.

    Legal holds live in the store (``consentmw records hold add``). A ``LEGAL_HOLD`` file
    from before, in the SQLite file's directory or in ``legal_hold_dir``, stops every
    purge with an error saying how to convert it.
    """
    if not isinstance(url, str):
        raise ValueError(f"records_url must be a string: {_ACCEPTED}, got {url!r}")
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path or path == ":memory:" or "?" in path:
            raise ValueError(
                f"records_url {url!r} needs a database file path: {_ACCEPTED} "
                "(receipts are proof and must outlive the process)"
            )
        return SQLiteReceiptStore(
            Path(path),
            retention_months=retention_months,
            legal_hold_dir=legal_hold_dir,
        )
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from consentmw.records.postgres import PostgresReceiptStore
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ValueError(
                f"records_url {redact_url(url)!r} needs psycopg 3 and psycopg-pool: "
                "pip install 'consentmw[postgres]'"
            ) from exc
        return PostgresReceiptStore(
            url,
            retention_months=retention_months,
            legal_hold_dir=legal_hold_dir,
        )
    raise ValueError(f"records_url must be {_ACCEPTED}; got {redact_url(url)!r}")
