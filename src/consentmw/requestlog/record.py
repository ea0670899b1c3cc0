"""One request-log record: what the request path captures, and the JSON line it becomes.

The request path only copies a few values into a :class:`PendingRecord` (cheap); the
writer thread turns it into the stored record. The stored record is anonymous by
construction: it is built from an allow-list of fields, so the raw IP, raw User-Agent,
cookies, ``Authorization``, query strings and the consent id have no way in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes, urlsplit

from consentmw.requestlog.periods import utc_iso
from consentmw.requestlog.useragent import UAParser

__all__ = ["RECORD_FIELDS", "PendingRecord", "build_record", "encode_record"]

MAX_PATH_LENGTH = 512
MAX_HOST_LENGTH = 253

#: Every key of a stored record, in order. Nothing else is ever written.
RECORD_FIELDS = (
    "time",
    "ip",
    "isp",
    "asn",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device",
    "referrer",
    "consent",
    "language",
)

CONSENT_STATES = frozenset({"granted", "denied", "undecided"})
_METHOD_RE = re.compile(r"^[A-Z]{1,16}$")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}$")


class PendingRecord(NamedTuple):
    """What the request path hands to the writer. Holds raw header values in memory only."""

    time: float
    ip: str  # already masked
    asn: int | None
    isp: str | None
    method: str
    path: bytes | str  # raw_path (without query) when the server gives one
    status: int
    bytes: int
    duration_ms: float
    user_agent: bytes | None
    referer: bytes | None
    consent: str
    language: object  # the consent state's, whatever ConsentMiddleware put there
    accept_language: bytes | None


def decode_path(raw: bytes | str) -> str:
    """A readable path: percent-decoded, invalid UTF-8 replaced, never a query string."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = raw.split(b"?", 1)[0][: MAX_PATH_LENGTH * 3]
    text = unquote_to_bytes(raw).decode("utf-8", "replace")
    return text[:MAX_PATH_LENGTH] or "/"


def referrer_host(value: bytes | None) -> str | None:
    """Only the host of the Referer: its path and query may carry personal data."""
    if not value:
        return None
    try:
        host = urlsplit(value.decode("latin-1").strip()).hostname
    except ValueError:
        return None
    if not host or len(host) > MAX_HOST_LENGTH or not host.isascii() or not host.isprintable():
        return None
    return host


def primary_language(state_language: object, accept: bytes | None) -> str | None:
    """The consent state's language, else the first Accept-Language primary subtag."""
    if isinstance(state_language, str) and _LANG_RE.match(state_language):
        return state_language.lower()
    if not accept:
        return None
    first = accept[:64].split(b",", 1)[0].split(b";", 1)[0].strip()
    tag = first.split(b"-", 1)[0].decode("latin-1")
    return tag.lower() if _LANG_RE.match(tag) else None


def build_record(
    p: PendingRecord,
    parse_ua: UAParser,
    redact_path: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    ua = parse_ua(p.user_agent.decode("latin-1") if p.user_agent else None)
    path = decode_path(p.path)
    if redact_path is not None:
        path = str(redact_path(path))[:MAX_PATH_LENGTH]
    method = p.method if _METHOD_RE.match(p.method) else "OTHER"
    return {
        "time": utc_iso(p.time),
        "ip": p.ip,
        "isp": p.isp,
        "asn": p.asn,
        "method": method,
        "path": path,
        "status": p.status,
        "bytes": p.bytes,
        "duration_ms": round(p.duration_ms, 3),
        "browser": ua.browser,
        "browser_version": ua.browser_version,
        "os": ua.os,
        "os_version": ua.os_version,
        "device": ua.device,
        "referrer": referrer_host(p.referer),
        "consent": p.consent if p.consent in CONSENT_STATES else "undecided",
        "language": primary_language(p.language, p.accept_language),
    }


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSON line; ``ensure_ascii`` keeps odd paths from breaking line-based tools."""
    return json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n"
