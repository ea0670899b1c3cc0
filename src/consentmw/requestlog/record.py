"""One request-log record: what the request path captures, and the JSON line it becomes.

The request path only copies a few values into a :class:`PendingRecord` (cheap); the
writer thread turns it into the stored record. The stored record is anonymous by
construction: it is built from an allow-list of fields, so the raw IP, raw User-Agent,
cookies, ``Authorization``, query strings and the consent id have no way in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _json_str  # C: str -> "ascii JSON"
from math import modf
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes, urlsplit

from consentmw.analytics.fields import ANALYTICS_FIELDS, analytics_fields, make_fields_json
from consentmw.privacy.paths import clean_path
from consentmw.requestlog.periods import utc_iso
from consentmw.requestlog.useragent import UAInfo, UAParser

__all__ = [
    "RAW_FIELDS",
    "RECORD_FIELDS",
    "VISITOR_FIELD",
    "PendingRecord",
    "build_record",
    "encode_record",
    "from_raw",
    "make_encoder",
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
_VISITOR_RE = re.compile(r"^[0-9a-f]{16}$")
_PAGE_KIND = ',"kind":"page",'

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
    #: Content-Type, query string and, when the log counts visitors, the visitor key
    extra: tuple[Any, ...] | None = None


#: What :class:`RequestLogMiddleware` enqueues instead (a plain tuple, cheapest to build):
#: the first nine fields of :class:`PendingRecord`, then the request's ``headers`` as the
#: server gave them (User-Agent, Referer and Accept-Language are picked out by the writer
#: thread), then the consent summary and language. ``method`` is not yet cut to 16
#: characters. The headers stay in memory only, until the writer has encoded the record.
RAW_FIELDS = (*PendingRecord._fields[:9], "headers", "consent", "language", "extra")


def from_raw(raw: Sequence[Any]) -> tuple[Any, ...]:
    """A :data:`RAW_FIELDS` tuple as a plain tuple in :class:`PendingRecord`'s order."""
    t, ip, asn, isp, method, path, status, size, duration, headers, consent, language = raw[:12]
    user_agent = referer = accept_language = None
    for name, value in headers or ():
        if name == b"user-agent":
            user_agent = value
        elif name == b"referer":
            referer = value
        elif name == b"accept-language":
            accept_language = value
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
        duration,
        user_agent,
        referer,
        consent,
        language,
        accept_language,
        raw[12] if len(raw) > 12 else None,
    )


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


def primary_language(state_language: object, accept: bytes | None) -> str | None:
    """The consent state's language, else the first Accept-Language primary subtag."""
    if isinstance(state_language, str) and _LANG_RE.match(state_language):
        return state_language.lower()
    if not accept:
        return None
    first = accept[:64].split(b",", 1)[0].split(b";", 1)[0].strip()
    tag = first.split(b"-", 1)[0].decode("latin-1")
    return tag.lower() if _LANG_RE.match(tag) else None


def visitor_of(extra: object) -> str | None:
    """The visitor key the middleware put in ``extra``, if it is one."""
    if type(extra) is tuple and len(extra) > 2:
        key = extra[2]
        if type(key) is str and _VISITOR_RE.match(key):
            return key
    return None


def country_of(extra: object) -> str | None:
    """The visitor's country code the middleware put in ``extra`` (fourth item), if any."""
    if type(extra) is tuple and len(extra) > 3:
        code = extra[3]
        if type(code) is str and len(code) == 2 and code.isascii() and code.isalpha():
            return code
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
        "language": primary_language(p.language, p.accept_language),
        **analytics_fields(
            method, p.status, p.path, p.user_agent, ua.device, p.extra, consent_prefix
        ),
    }
    if visitors:  # page views only: a key on every asset would link more than is counted
        record[VISITOR_FIELD] = visitor_of(p.extra) if record["kind"] == "page" else None
    if countries:  # from an optional GeoIP country database (country_database=)
        record[COUNTRY_FIELD] = country_of(p.extra)
    return record


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # ensure_ascii, as json.dumps


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSON line; ``ensure_ascii`` keeps odd paths from breaking line-based tools."""
    return _ENCODER.encode(record).encode("ascii") + b"\n"


# -- the writer's fast path ------------------------------------------------------------
#
# ``make_encoder`` gives the writer one function from a pending record to its line, equal
# byte for byte to ``encode_record(build_record(...))`` but built from cached JSON
# fragments: the time string per second, the UA-derived fields per User-Agent, the path
# per raw path, the language per header value. Anything unusual (a type the request path
# never produces, a non-finite float, an exception) takes the slow, generic path, which
# also decides whether the record is lost.

_REFERRER_FAST = re.compile(rb"https?://([A-Za-z0-9.\-]{1,253})(?:[/?#]|\Z)")
_REFERRER_ORIGIN = re.compile(rb"https?://[A-Za-z0-9.\-]{1,253}")
_MS = tuple(f'{ms:03d}Z"' for ms in range(1000))
#: ``.001`` ... ``.999`` as ``repr`` writes them (no trailing zeros, ``.0`` for none).
_FRACTION = (".0", *(f".{ms:03d}".rstrip("0") for ms in range(1, 1000)))
_CONSENT_JSON = {state: f'"{state}"' for state in CONSENT_STATES}
_UTC = timezone.utc
_CACHE_LIMIT = 4096  # per small cache: cleared when full (a miss costs about a microsecond)
_MAX_CACHED_KEY = 1024  # longer keys are computed every time, never pinned in memory


def _json_value(value: object) -> str:
    return _ENCODER.encode(value)


def _ua_fragment(info: UAInfo) -> str:
    browser, browser_version, os_name, os_version, device = map(_json_value, info)
    return (
        f'"browser":{browser},"browser_version":{browser_version},"os":{os_name},'
        f'"os_version":{os_version},"device":{device}'
    )


def _bounded_put(cache: dict[Any, str], key: Any, value: str, limit: int) -> None:
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


def make_encoder(
    parse_ua: UAParser | Callable[[str | None], UAInfo],
    redact_path: Callable[[str], str] | None = None,
    cache_size: int = _CACHE_LIMIT,
    consent_prefix: str = "/_consent",
    visitors: bool = False,
    countries: bool = False,
) -> Callable[[Sequence[Any]], str]:
    """``record -> line`` (``str``, ASCII, ending in a newline) for the writer thread.

    ``record`` is a :class:`PendingRecord`, a plain tuple in its field order, or a tuple of
    :data:`RAW_FIELDS` (what the middleware enqueues). Not thread-safe: one encoder per
    writer thread.
    """
    seconds: dict[float, str] = {}
    uas: dict[bytes, str] = {}
    unknown_ua = _ua_fragment(parse_ua(None))
    paths: dict[bytes | str, str] = {}
    methods: dict[str, str] = {}
    origins: dict[bytes, str] = {}  # b"https://host" -> '"host"', nothing longer
    state_langs: dict[str, str] = {}
    accepts: dict[bytes, str] = {}
    ua_limit = max(cache_size, 1)
    fields_json = make_fields_json(parse_ua, consent_prefix)

    def slow(p: Sequence[Any]) -> str:
        if type(p) is not PendingRecord:
            p = PendingRecord(*(from_raw(p) if len(p) in (12, 13) else p))
        record = build_record(p, parse_ua, redact_path, consent_prefix, visitors, countries)
        return _ENCODER.encode(record) + "\n"

    def referrer_json(ref: bytes) -> str:
        m = _REFERRER_FAST.match(ref)
        if m is None:
            return _json_value(referrer_host(ref))
        host = m.group(1)
        rj = '"' + host.decode("ascii").lower() + '"'
        end = m.end(1)
        if end == len(ref) or ref[end] == 47:  # "/": the origin alone decides the host
            _bounded_put(origins, ref[:end], rj, 256)
        return rj

    def encode(p: Sequence[Any]) -> str:
        try:
            if len(p) <= 13:  # RAW_FIELDS, from the middleware
                p = from_raw(p)
            extra = p[14] if len(p) > 14 else None
            t, ip, asn, isp, method, path, status, size, dur, ua, ref, consent, lang, accept = (
                p if len(p) == 14 else p[:14]
            )
            if (
                type(status) is not int
                or type(size) is not int
                or type(dur) is not float
                or type(ip) is not str
            ):
                return slow(p)
            # time: as datetime.fromtimestamp rounds (half-even to the microsecond)
            frac, whole = modf(t)
            us = round(frac * 1e6)
            if us >= 1000000:
                whole += 1.0
                us -= 1000000
            elif us < 0:
                whole -= 1.0
                us += 1000000
            head = seconds.get(whole)
            if head is None:
                moment = datetime.fromtimestamp(whole, _UTC)
                head = moment.strftime('{"time":"%Y-%m-%dT%H:%M:%S.')
                _bounded_put(seconds, whole, head, 64)
            if isp is None and asn is None:
                ipj = f'"ip":{_json_str(ip)},"isp":null,"asn":null'
            elif (isp is None or type(isp) is str) and (asn is None or type(asn) is int):
                ispj = "null" if isp is None else _json_str(isp)
                ipj = f'"ip":{_json_str(ip)},"isp":{ispj},"asn":{"null" if asn is None else asn}'
            else:
                return slow(p)
            mj = methods.get(method)
            if mj is None:
                if type(method) is not str:
                    return slow(p)
                mj = _json_str(method if _METHOD_RE.match(method) else "OTHER")
                _bounded_put(methods, method, mj, 64)
            if redact_path is None:
                pj = paths.get(path)
                if pj is None:
                    pj = _json_str(decode_path(path))
                    query = "?" if type(path) is str else b"?"
                    if len(path) <= _MAX_CACHED_KEY and query not in path:
                        _bounded_put(paths, path, pj, _CACHE_LIMIT)
            else:
                pj = _json_str(str(redact_path(decode_path(path)))[:MAX_PATH_LENGTH])
            # duration: repr(round(dur, 3)) from whole microseconds... thousandths, exactly
            # as round() would give them unless x * 1000 lands on a tie (then ask round).
            y = dur * 1000.0
            if 0.0 < y < 1e15:
                n = round(y)
                if y - n != 0.5 and n - y != 0.5:
                    q, r = divmod(n, 1000)
                    dj = f"{q}{_FRACTION[r]}"
                else:
                    dj = repr(round(dur, 3))
            else:
                d = round(dur, 3)
                if d - d:  # nan or infinity: JSON's spelling, not repr's
                    return slow(p)
                dj = repr(d)
            uaj = uas.get(ua)
            if uaj is None:
                if not ua:
                    uaj = unknown_ua
                else:
                    uaj = _ua_fragment(parse_ua(ua.decode("latin-1")))
                    _bounded_put(uas, ua, uaj, ua_limit)
            if not ref:
                rj = "null"
            else:
                slash = ref.find(b"/", 8)
                rj = origins.get(ref[:slash] if slash > 0 else ref)
                if rj is None:
                    rj = referrer_json(ref)
            cj = _CONSENT_JSON.get(consent, '"undecided"')
            lj = ""
            if type(lang) is str:
                lj = state_langs.get(lang)
                if lj is None:
                    lj = _json_str(lang.lower()) if _LANG_RE.match(lang) else ""
                    if len(lang) <= 64:
                        _bounded_put(state_langs, lang, lj, 256)
            elif isinstance(lang, str):
                return slow(p)
            if not lj:
                if not accept:
                    lj = "null"
                else:
                    lj = accepts.get(accept)
                    if lj is None:
                        lj = _json_value(primary_language(None, accept))
                        if len(accept) <= _MAX_CACHED_KEY:
                            _bounded_put(accepts, accept, lj, _CACHE_LIMIT)
            aj = fields_json(method, status, path, ua, extra)
            if visitors:
                key = visitor_of(extra) if aj.startswith(_PAGE_KIND) else None
                aj += ',"visitor":null' if key is None else f',"visitor":"{key}"'
            if countries:
                code = country_of(extra)
                aj += ',"country":null' if code is None else f',"country":"{code}"'
        except Exception:
            return slow(p)
        return (
            f'{head}{_MS[us // 1000]},{ipj},"method":{mj},"path":{pj},"status":{status},'
            f'"bytes":{size},"duration_ms":{dj},{uaj},"referrer":{rj},"consent":{cj},'
            f'"language":{lj}{aj}}}\n'
        )

    return encode
