"""One request-log record: what the request path captures, and the JSON line it becomes.

The request path only copies a few values into a plain tuple (:data:`RAW_FIELDS`); the
writer thread turns it into the stored record, with :mod:`~consentmw.requestlog.encoder`,
which falls back on :func:`build_record` here for anything unusual. The stored record is
anonymous by construction: it is built from an allow-list of fields, so the raw IP, raw
User-Agent, cookies, ``Authorization``, query strings and the consent id have no way in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes, urlsplit

from consentmw.analytics.fields import ANALYTICS_FIELDS, analytics_fields
from consentmw.privacy.paths import clean_path
from consentmw.requestlog.periods import utc_iso
from consentmw.requestlog.useragent import UAParser

__all__ = [
    "CONSENT_STATES",
    "ENCODER",
    "KEY_FIELDS",
    "RAW_FIELDS",
    "RECORD_FIELDS",
    "VISITOR_FIELD",
    "PendingRecord",
    "build_record",
    "country_of",
    "decode_path",
    "encode_record",
    "from_raw",
    "is_country_code",
    "is_visitor_key",
    "primary_language",
    "referrer_host",
    "valid_method",
    "visitor_of",
]

MAX_PATH_LENGTH = 512
MAX_HOST_LENGTH = 253

#: Every key of a stored record, in order. Nothing else is ever written, except
#: :data:`VISITOR_FIELD` at the end when the log counts visitors (``count_visitors``).
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
    *ANALYTICS_FIELDS,  # kind, utm_source, utm_medium, utm_campaign
)
#: The daily visitor key (16 hex digits) of a page view, or null; see
#: :mod:`consentmw.requestlog.visitors`. Only in records of a log that counts visitors.
VISITOR_FIELD = "visitor"
#: The ISO 3166 country code of the full address (before masking), or null. Only in records
#: of a log given a ``country_database``.
COUNTRY_FIELD = "country"
_VISITOR_RE = re.compile(r"[0-9a-f]{16}")

CONSENT_STATES = frozenset({"granted", "denied", "undecided"})
_METHOD_RE = re.compile(r"^[A-Z]{1,16}$")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}$")


class PendingRecord(NamedTuple):
    """A record before it is encoded, field by field. Holds raw header values in memory only."""

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
    accept_language: bytes | None
    #: Content-Type, query string, then the visitor key and country code when logged
    extra: tuple[Any, ...] | None = None


#: What the writer's encoder may cache a line's JSON by: every input of the stored record
#: but the time, bytes, duration, referrer, campaign, visitor and country. ``path`` is the
#: raw path, ``consent`` the state's summary, then the request's Accept-Language and the
#: response's Content-Type.
KEY_FIELDS = (
    "ip",
    "asn",
    "isp",
    "method",
    "path",
    "status",
    "user_agent",
    "consent",
    "accept_language",
    "content_type",
)
#: What :class:`RequestLogMiddleware` enqueues (a plain tuple, cheapest to build): the
#: time, the bytes sent and the duration in whole microseconds (``int`` both), a tuple of
#: :data:`KEY_FIELDS`, the Referer and the query string (held in memory only, until the
#: writer has encoded the record), the visitor key and the country code (or ``None``).
RAW_FIELDS = ("time", "bytes", "duration_us", "key", "referer", "query", "visitor", "country")


def from_raw(raw: Sequence[Any]) -> tuple[Any, ...]:
    """A :data:`RAW_FIELDS` tuple as a plain tuple in :class:`PendingRecord`'s order."""
    t, size, micros, key, referer, query, visitor, country = raw
    ip, asn, isp, method, path, status, user_agent, consent, accept, ctype = key
    if type(method) is not str or len(method) > 16:
        method = str(method)[:16]
    return (
        t,
        ip,
        asn,
        isp,
        method,
        path,
        status,
        size,
        micros / 1000.0,
        user_agent,
        referer,
        consent,
        accept,
        (ctype, query, visitor, country),
    )


def valid_method(method: str) -> bool:
    """An HTTP method as the log keeps it (else it logs ``OTHER``)."""
    return _METHOD_RE.match(method) is not None


def is_visitor_key(value: object) -> bool:
    return type(value) is str and _VISITOR_RE.fullmatch(value) is not None


def is_country_code(value: object) -> bool:
    return type(value) is str and len(value) == 2 and value.isascii() and value.isalpha()


def decode_path(raw: bytes | str) -> str:
    """A readable path as logs may keep it: see :func:`consentmw.privacy.paths.clean_path`.

    Percent-decoded (invalid UTF-8 replaced), then cut at the first ``?`` or ``#``,
    decoded or not, without ``;`` path parameters, token-like segments as ``:token``.
    A path cut for length loses its last, partial segment: a cut token is still secret.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = raw.split(b"?", 1)[0].split(b"#", 1)[0]
    cut = len(raw) > MAX_PATH_LENGTH * 3
    text = unquote_to_bytes(raw[: MAX_PATH_LENGTH * 3]).decode("utf-8", "replace")
    if cut or len(text) > MAX_PATH_LENGTH:
        text = text[: MAX_PATH_LENGTH + 1].rsplit("/", 1)[0] + "/"
    return clean_path(text)[:MAX_PATH_LENGTH]


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


def primary_language(accept: bytes | None) -> str | None:
    """The primary subtag of the first language in Accept-Language (``nb`` of
    ``nb-NO,nb;q=0.9``), or ``None``."""
    if not accept:
        return None
    first = accept[:64].split(b",", 1)[0].split(b";", 1)[0].strip()
    tag = first.split(b"-", 1)[0].decode("latin-1")
    return tag.lower() if _LANG_RE.match(tag) else None


def visitor_of(extra: object) -> str | None:
    """The visitor key in ``extra`` (third item), if it is one."""
    if type(extra) is tuple and len(extra) > 2 and is_visitor_key(extra[2]):
        return extra[2]  # type: ignore[no-any-return]
    return None


def country_of(extra: object) -> str | None:
    """The visitor's country code in ``extra`` (fourth item), if it is one."""
    if type(extra) is tuple and len(extra) > 3 and is_country_code(extra[3]):
        return extra[3]  # type: ignore[no-any-return]
    return None


def build_record(
    p: PendingRecord,
    parse_ua: UAParser,
    redact_path: Callable[[str], str] | None = None,
    consent_prefix: str = "/_consent",
    visitors: bool = False,
    countries: bool = False,
) -> dict[str, Any]:
    ua = parse_ua(p.user_agent.decode("latin-1") if p.user_agent else None)
    path = decode_path(p.path)
    if redact_path is not None:
        path = str(redact_path(path))[:MAX_PATH_LENGTH]
    method = p.method if _METHOD_RE.match(p.method) else "OTHER"
    record = {
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
        "language": primary_language(p.accept_language),
        **analytics_fields(
            method, p.status, p.path, p.user_agent, ua.device, p.extra, consent_prefix
        ),
    }
    if visitors:  # page views only: a key on every asset would link more than is counted
        record[VISITOR_FIELD] = visitor_of(p.extra) if record["kind"] == "page" else None
    if countries:  # from an optional GeoIP country database (country_database=)
        record[COUNTRY_FIELD] = country_of(p.extra)
    return record


#: Compact JSON, ``ensure_ascii`` as in ``json.dumps``.
ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSON line; ``ensure_ascii`` keeps odd paths from breaking line-based tools."""
    return ENCODER.encode(record).encode("ascii") + b"\n"
