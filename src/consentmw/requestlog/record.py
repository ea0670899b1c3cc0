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

from consentmw.requestlog.periods import utc_iso
from consentmw.requestlog.useragent import UAInfo, UAParser

__all__ = ["RECORD_FIELDS", "PendingRecord", "build_record", "encode_record", "make_encoder"]

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
_MS = tuple(f'{ms:03d}Z"' for ms in range(1000))
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


def make_encoder(
    parse_ua: UAParser | Callable[[str | None], UAInfo],
    redact_path: Callable[[str], str] | None = None,
    cache_size: int = _CACHE_LIMIT,
) -> Callable[[Sequence[Any]], str]:
    """``record -> line`` (``str``, ASCII, ending in a newline) for the writer thread.

    ``record`` is a :class:`PendingRecord` or a plain tuple in its field order (what the
    middleware enqueues). Not thread-safe: one encoder per writer thread.
    """
    seconds: dict[float, str] = {}
    uas: dict[bytes | None, str] = {}
    paths: dict[bytes | str, str] = {}
    methods: dict[str, str] = {}
    state_langs: dict[str, str] = {}
    accepts: dict[bytes, str] = {}
    unknown_ua = _ua_fragment(parse_ua(None))
    ua_limit = max(cache_size, 1)

    def slow(p: Sequence[Any]) -> str:
        pending = p if type(p) is PendingRecord else PendingRecord._make(p)
        return _ENCODER.encode(build_record(pending, parse_ua, redact_path)) + "\n"

    def encode(p: Sequence[Any]) -> str:
        try:
            t, ip, asn, isp, method, path, status, size, dur, ua, ref, consent, lang, accept = p
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
                if len(seconds) >= 64:
                    seconds.clear()
                moment = datetime.fromtimestamp(whole, _UTC)
                head = seconds[whole] = moment.strftime('{"time":"%Y-%m-%dT%H:%M:%S.')
            ipj = _json_str(ip)
            if isp is None:
                ispj = "null"
            elif type(isp) is str:
                ispj = _json_str(isp)
            else:
                return slow(p)
            if asn is None:
                asnj = "null"
            elif type(asn) is int:
                asnj = str(asn)
            else:
                return slow(p)
            mj = methods.get(method)
            if mj is None:
                if type(method) is not str:
                    return slow(p)
                mj = _json_str(method if _METHOD_RE.match(method) else "OTHER")
                if len(methods) >= 64:
                    methods.clear()
                methods[method] = mj
            if redact_path is None:
                pj = paths.get(path)
                if pj is None:
                    pj = _json_str(decode_path(path))
                    query = "?" if type(path) is str else b"?"
                    if len(path) <= _MAX_CACHED_KEY and query not in path:
                        if len(paths) >= _CACHE_LIMIT:
                            paths.clear()
                        paths[path] = pj
            else:
                pj = _json_str(str(redact_path(decode_path(path)))[:MAX_PATH_LENGTH])
            d = round(dur, 3)
            if d - d:  # nan or infinity: JSON's spelling, not repr's
                return slow(p)
            uaj = uas.get(ua)
            if uaj is None:
                if ua is None or ua == b"":
                    uaj = unknown_ua
                else:
                    uaj = _ua_fragment(parse_ua(ua.decode("latin-1")))
                    if len(uas) >= ua_limit:
                        uas.clear()
                    uas[ua] = uaj
            if not ref:
                rj = "null"
            else:
                m = _REFERRER_FAST.match(ref)
                if m is not None:
                    rj = '"' + m.group(1).decode("ascii").lower() + '"'
                else:
                    rj = _json_value(referrer_host(ref))
            cj = _CONSENT_JSON.get(consent, '"undecided"')
            lj = ""
            if type(lang) is str:
                lj = state_langs.get(lang)
                if lj is None:
                    lj = _json_str(lang.lower()) if _LANG_RE.match(lang) else ""
                    if len(lang) <= 64:
                        if len(state_langs) >= 256:
                            state_langs.clear()
                        state_langs[lang] = lj
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
                            if len(accepts) >= _CACHE_LIMIT:
                                accepts.clear()
                            accepts[accept] = lj
        except Exception:
            return slow(p)
        return (
            f'{head}{_MS[us // 1000]},"ip":{ipj},"isp":{ispj},"asn":{asnj},"method":{mj},'
            f'"path":{pj},"status":{status},"bytes":{size},"duration_ms":{d!r},{uaj},'
            f'"referrer":{rj},"consent":{cj},"language":{lj}}}\n'
        )

    return encode
